"""Issue 5: kill -9 at three random moments, then resume: the tree equals the drive, and no file
completed before a kill is delivered again.

The real CLI runs in a child process (its own process group); the test watches the emulator's
counters and the backup's state from outside and SIGKILLs the group when the moment comes. The
moments are drawn from a seeded RNG (change SEED to explore others; the chosen ones appear in
every assertion message so a failure can be replayed):

1. during the scan, after the k-th delta page was served;
2. during the downloads of the first resume, after N bytes were served;
3. right after the second resume's m-th file was recorded done in the state.

After each kill the state is opened read-only and every file it records as done (plus any file
already complete at its final path, which a resume adopts) is remembered with its delivery
counts; after the last, uninterrupted resume none of them may have been delivered again.
"""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from auth_fixtures import SignedIn, sign_in, subprocess_env
from onedrive_backup.emulator import DriveSpec, Emulator
from onedrive_backup.state import BackupState
from oracle import assert_backup_matches

SEED = int(os.environ.get("KILL_TEST_SEED", "20240605"))  # replay another draw
MB = 1000 * 1000
PAGE = 20  # delta page size (delta_max_top), so the scan has pages to be killed between
SPEC = DriveSpec(
    files=300, seed=16, size_range=(1, 32 * 1024), large_files=[3 * MB, 3 * MB], deep_levels=3
)


def spawn(signed: SignedIn, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "onedrive_backup", "backup", *args],
            env=subprocess_env(signed.env),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_when(
    proc: subprocess.Popen[bytes], moment: Callable[[], bool], log: Path, what: str
) -> None:
    """SIGKILL the run's process group once `moment()` holds; the run must not end first."""
    deadline = time.monotonic() + 60
    try:
        while not moment():
            if proc.poll() is not None:
                raise AssertionError(f"{what}: the run ended first: {log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: timed out waiting for the moment")
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"{what}: {proc.returncode} {log.read_text()}"


def the_backup(dest: Path) -> Path:
    (backup,) = [p for p in dest.iterdir() if p.name.startswith("OneDrive_Backup_")]
    return backup


def done_count(dest: Path) -> int:
    backups = [p for p in dest.iterdir() if p.name.startswith("OneDrive_Backup_")]
    if not backups:
        return 0
    with BackupState.open(backups[0], read_only=True) as state:
        return state.totals().count("done")


def completed(emu: Emulator, backup_dir: Path) -> set[str]:
    """Files the state records done, or complete at their final path (a resume adopts them)."""
    found = set()
    with BackupState.open(backup_dir, read_only=True) as state:
        for f in emu.drive.iter_files():
            rec = state.get_file(f.id)
            if rec is None or not rec.local_path:
                continue
            final = backup_dir / rec.local_path
            if rec.status == "done" or (final.is_file() and final.stat().st_size == f.size):
                found.add(f.id)
    return found


def test_kill_9_at_three_random_moments_then_resume(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    emu = emulator_factory(SPEC)
    c = emu.counters
    signed = sign_in(emu, tmp_path / "config")
    dest = tmp_path / "dest"
    dest.mkdir()
    total = sum(f.size for f in emu.drive.iter_files())
    pages = math.ceil((len(list(emu.drive.iter_items())) + 1) / PAGE)  # + the root
    k = rng.randint(2, pages // 2)
    n = int(rng.uniform(0.15, 0.45) * total)
    m = rng.randint(10, 60)
    moments = f"seed {SEED}: delta page {k} of {pages}, {n:,} of {total:,} bytes, {m} files"
    # Remembered at each kill: item -> (full deliveries, bytes served) at that moment.
    frozen: dict[str, tuple[int, int]] = {}

    def freeze() -> set[str]:
        ids = completed(emu, the_backup(dest))
        for item_id in ids:
            frozen.setdefault(item_id, (c.full_deliveries[item_id], c.bytes_served[item_id]))
        return ids

    resume = ("--dest", str(dest), "--resume", "latest", "--yes")
    try:
        # 1. During the scan: slow pages so that the scan is still running at page k.
        emu.faults.update({"delta_max_top": PAGE, "latency": 0.05})
        log = tmp_path / "run1.log"
        proc = spawn(signed, log, "--dest", str(dest), "--yes", "--bwlimit", "2M")
        kill_when(proc, lambda: c.count("graph.delta", 200) >= k, log, f"scan ({moments})")
        with BackupState.open(the_backup(dest), read_only=True) as state:
            cursor = state.get_cursor()
            assert cursor.phase != "complete" and cursor.next_link, f"{cursor} ({moments})"
            committed = cursor.stats.get("pages", 0)
        assert committed >= k - 1, moments
        assert sum(c.bytes_served.values()) == 0
        freeze()
        # A page request cut by the kill is counted when the server finishes it: wait for it.
        deadline = time.monotonic() + 10
        while c.inflight["graph"] and time.monotonic() < deadline:
            time.sleep(0.01)
        pages_before = c.count("graph.delta")

        # 2. During the downloads of the first resume, after n bytes.
        emu.faults.latency = 0.005
        log = tmp_path / "run2.log"
        proc = spawn(signed, log, *resume, "--bwlimit", "2M")
        kill_when(proc, lambda: sum(c.bytes_served.values()) >= n, log, f"bytes ({moments})")
        # The killed scan went on from its last committed page, not from the start.
        assert c.count("graph.delta") - pages_before == pages - committed, moments
        first = freeze()
        partial = list((the_backup(dest) / ".onedrive-backup" / "partial").glob("*.part"))
        assert first or partial, f"the second kill came before any download ({moments})"

        # 3. Right after m more files were recorded done by the second resume.
        done_before = done_count(dest)
        log = tmp_path / "run3.log"
        proc = spawn(signed, log, *resume, "--bwlimit", "2M")
        kill_when(proc, lambda: done_count(dest) >= done_before + m, log, f"files ({moments})")
        second = freeze()
        assert len(second) >= done_before + m and second >= first, moments

        # The last resume runs to the end.
        run = subprocess.run(
            [sys.executable, "-m", "onedrive_backup", "backup", *resume],
            env=subprocess_env(signed.env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout + run.stderr
    finally:
        signed.close()
    backup = the_backup(dest)
    assert_backup_matches(emu, backup)
    again = {
        item_id: (was, (c.full_deliveries[item_id], c.bytes_served[item_id]))
        for item_id, was in frozen.items()
        if (c.full_deliveries[item_id], c.bytes_served[item_id]) != was
    }
    assert not again, f"completed before a kill, delivered again: {again} ({moments})"
    # Every file of the drive was delivered complete at least once, and none of those done
    # before a kill twice; files cut by a kill may have been sent again (bytes in flight).
    for f in emu.drive.iter_files():
        if f.size:
            assert c.complete_deliveries[f.id] >= 1, f.path
