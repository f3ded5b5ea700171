"""An update killed with SIGKILL and resumed ends in the same state as an uninterrupted one.

One full backup is copied into several destinations; the drive then changes once. One copy is
updated without interruption (the reference); each other copy is updated by the real CLI in a
child process that is killed -9 at a chosen moment, then resumed with `--resume latest`.
The moments: right after one of the first renames of the op queue, in the middle of a folder
rename, just after a swap parked a file under `.onedrive-backup/moving/`, and (from outside,
watching the emulator's counters) during the downloads that follow the ops.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from auth_fixtures import SignedIn, sign_in, subprocess_env
from engine_helpers import run_engine
from onedrive_backup.emulator import Emulator
from oracle import assert_backup_matches
from test_incremental import BASE, BULK, change_drive, deliveries, new_deliveries, populate

MB = 1000 * 1000

# Runs the real CLI; kills itself (SIGKILL, no cleanup at all) right after the N-th file move
# of the op queue, or after the first file parked for a swap when KILL_AT is "moving".
CHILD = """
import os, signal, sys
from onedrive_backup import versions
from onedrive_backup.cli import main

kill_at = os.environ["KILL_AT"]
original = versions._Applier._replace
count = 0

def _replace(self, src, dst):
    global count
    original(self, src, dst)
    count += 1
    if (kill_at == "moving" and ".onedrive-backup/moving" in dst.as_posix()) or (
        kill_at.isdigit() and count == int(kill_at)
    ):
        os.kill(os.getpid(), signal.SIGKILL)

versions._Applier._replace = _replace
sys.exit(main(sys.argv[1:]))
"""


def tree(backup: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(live tree, versions under any stamp): relative path → sha256 of the content."""
    live: dict[str, str] = {}
    kept: dict[str, str] = {}
    for p in backup.rglob("*"):
        rel = p.relative_to(backup).parts
        if rel[0] == ".onedrive-backup" or not p.is_file():
            continue
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        if rel[0] == ".versions":
            kept["/".join(rel[2:])] = digest
        else:
            live["/".join(rel)] = digest
    return live, kept


def the_backup(dest: Path) -> Path:
    (backup,) = [p for p in dest.iterdir() if p.name.startswith("OneDrive_Backup_")]
    return backup


def resume_cli(signed: SignedIn, dest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "onedrive_backup", "backup", "--dest", str(dest)]
        + ["--resume", "latest", "--yes", "--plain"],
        env=subprocess_env(signed.env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def spawn(
    signed: SignedIn, dest: Path, log: Path, *extra: str, kill_at: str = ""
) -> subprocess.Popen[bytes]:
    """Start an update in its own process group."""
    env = subprocess_env(signed.env)
    argv = [sys.executable, "-m", "onedrive_backup"]
    if kill_at:
        env["KILL_AT"] = kill_at
        argv = [sys.executable, "-c", CHILD]
    argv += ["backup", "--dest", str(dest), "--resume", "latest", "--yes", "--plain", *extra]
    with open(log, "wb") as fh:
        return subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_killed(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """The child kills itself at its kill point: it must end by SIGKILL, not by finishing."""
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError("the run did not reach the kill point") from None
    assert code == -signal.SIGKILL, f"the run was not killed ({code}): {log.read_text()}"


def kill_when(
    proc: subprocess.Popen[bytes], condition: Callable[[], bool], log: Path, timeout: float = 60
) -> None:
    """SIGKILL the process group once `condition` holds (fails if the run ends first)."""
    deadline = time.monotonic() + timeout
    try:
        while not condition():
            assert proc.poll() is None, f"the run ended before the kill point: {log.read_text()}"
            assert time.monotonic() < deadline, "timed out waiting for the kill point"
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()


@pytest.mark.slow
def test_update_killed_and_resumed_equals_uninterrupted(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = emulator_factory(BASE)
    populate(emu)
    signed = sign_in(emu, tmp_path / "config")
    try:
        base = tmp_path / "base"
        base.mkdir()
        result, _ = run_engine(signed, base)
        assert result.exit_code == 0, result.summary
        kill_points = ["2", str(BULK // 2), "moving", "download"]
        for name in ["reference", *kill_points]:
            shutil.copytree(base, tmp_path / name)

        changed = change_drive(emu)
        d = emu.drive
        d.rename("/Swap/a.txt", "tmp.txt")
        d.rename("/Swap/b.txt", "a.txt")
        d.rename("/Swap/tmp.txt", "b.txt")
        big = d.add_file("/New/big.bin", size=4 * MB).id
        expected = {i: 1 for i in changed["added"] | changed["edited"] | {big}}

        before = deliveries(emu)
        ref, _ = run_engine(signed, tmp_path / "reference", resume="latest")
        assert ref.exit_code == 0, ref.summary
        assert new_deliveries(emu, before) == expected
        reference = tree(the_backup(tmp_path / "reference"))
        assert_backup_matches(emu, the_backup(tmp_path / "reference"))

        for point in kill_points:
            dest = tmp_path / point
            log = tmp_path / f"{point}.log"
            before = deliveries(emu)
            if point == "download":
                proc = spawn(signed, dest, log, "--bwlimit", "1M")
                kill_when(proc, lambda: emu.counters.bytes_served[big] > 0, log)
            else:
                wait_killed(spawn(signed, dest, log, kill_at=point), log)
            run = resume_cli(signed, dest)
            assert run.returncode == 0, f"{point}: {run.stdout}{run.stderr}"
            backup = the_backup(dest)
            assert_backup_matches(emu, backup)
            assert tree(backup) == reference, f"killed at {point}: differs from uninterrupted"
            fetched = new_deliveries(emu, before)
            if point == "download":  # bytes in flight at the kill may be sent again
                assert set(fetched) <= set(expected), point
            else:  # killed before any download: each changed file exactly once
                assert fetched == expected, point
            assert not (backup / ".onedrive-backup" / "moving").exists()
    finally:
        signed.close()
