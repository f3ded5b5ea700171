"""The whole workflow from the command line, against the emulator over real HTTPS and MSAL.

Subprocess runs are what cron and a person at a shell get: no TTY, real signals, real exit codes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from auth_fixtures import SignedIn, sign_in, subprocess_env
from onedrive_backup.emulator import DriveSpec, Emulator
from onedrive_backup.state import BackupState
from oracle import assert_backup_matches

MB = 1000 * 1000
# Small files plus two larger ones, so a run can be caught mid-download.
KILL_DRIVE = DriveSpec(files=60, seed=5, size_range=(1, 32 * 1024), large_files=[6 * MB, 6 * MB])


def cli(signed: SignedIn, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "onedrive_backup", *args],
        env=subprocess_env(signed.env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def spawn(signed: SignedIn, out: Path, *args: str) -> subprocess.Popen[bytes]:
    """A CLI run in its own process group, output to `out` (never blocks on a full pipe)."""
    with open(out, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "onedrive_backup", *args],
            env=subprocess_env(signed.env),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for(condition: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def served(emu: Emulator) -> int:
    return sum(emu.counters.snapshot()["bytes_served"].values())


def total_bytes(emu: Emulator) -> int:
    return sum(f.size for f in emu.drive.iter_files())


def only_backup(dest: Path) -> Path:
    backups = sorted(dest.glob("OneDrive_Backup_*"))
    assert len(backups) == 1, backups
    return backups[0]


@pytest.fixture
def kill_emulator(emulator_factory: Any) -> Emulator:
    emu: Emulator = emulator_factory(KILL_DRIVE)
    return emu


@pytest.fixture
def kill_signed_in(kill_emulator: Emulator, tmp_path: Path) -> Any:
    signed = sign_in(kill_emulator, tmp_path / "config")
    yield signed
    signed.close()


def _secrets(signed: SignedIn) -> set[str]:
    """Every token value in the sign-in cache (the subprocess refreshes them into it)."""
    cache = json.loads((signed.config_dir / "token_cache.bin").read_text())
    values = set()
    for section in ("AccessToken", "RefreshToken", "IdToken"):
        for entry in (cache.get(section) or {}).values():
            values.add(entry["secret"])
    assert values, "no tokens in the cache"
    return values


def test_unattended_backup_matches_the_drive_and_leaks_no_secret(
    emulator: Emulator, signed_in: SignedIn, dest: Path
) -> None:
    emulator.faults.update({"access_token_lifetime": 3.0, "link_lifetime": 2.0})
    emulator.faults.update({"throttle_next": 2, "throttle_targets": "both", "retry_after": 0.3})
    before = _secrets(signed_in)
    run = cli(signed_in, "backup", "--dest", str(dest), "--yes")
    assert run.returncode == 0, run.stdout + run.stderr
    backup_dir = only_backup(dest)
    assert_backup_matches(emulator, backup_dir)
    assert "Phase 1: Scanning OneDrive" in run.stdout
    assert "Phase 3: Downloading" in run.stdout
    assert "Throttled by OneDrive (HTTP 429)" in run.stdout
    assert "Backup complete" in run.stdout
    reports = backup_dir / ".onedrive-backup" / "reports"
    logs = backup_dir / ".onedrive-backup" / "logs"
    (report_json,) = reports.glob("run-*.json")
    (report_txt,) = reports.glob("run-*.txt")
    (log,) = logs.glob("run-*.log")
    report = json.loads(report_json.read_text())
    assert report["outcome"] == "complete" and report["exit_code"] == 0
    assert "ItemDone" in log.read_text() and "Throttled" in log.read_text()
    secrets = before | _secrets(signed_in)
    for name, text in [
        ("stdout", run.stdout),
        ("stderr", run.stderr),
        (report_json.name, report_json.read_text()),
        (report_txt.name, report_txt.read_text()),
        (log.name, log.read_text()),
    ]:
        for secret in secrets:
            assert secret not in text, f"a token leaked into {name}"
        assert "/dl/" not in text, f"a download link leaked into {name}"
        assert "Bearer " not in text, name


def test_no_tty_and_no_destination_is_a_usage_error_naming_the_flag(
    signed_in: SignedIn,
) -> None:
    run = cli(signed_in, "backup")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "--dest" in run.stderr
    run = cli(signed_in, "backup", "--yes", "--category", "pictures")
    assert run.returncode == 2 and "--category" in run.stderr


def on_disk(emu: Emulator, backup_dir: Path) -> set[str]:
    """Items recorded done, or complete in their final place (to be adopted on resume)."""
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


def test_kill_9_mid_download_then_resume_downloads_nothing_twice(
    kill_emulator: Emulator, kill_signed_in: SignedIn, dest: Path, tmp_path: Path
) -> None:
    emu = kill_emulator
    total = total_bytes(emu)
    args = ("backup", "--dest", str(dest), "--bwlimit", "3M")  # slow enough to catch mid-way
    proc = spawn(kill_signed_in, tmp_path / "run1.log", *args)
    try:
        wait_for(lambda: served(emu) > 0.5 * total or proc.poll() is not None, what="bytes")
        assert proc.poll() is None, (tmp_path / "run1.log").read_text()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    backup_dir = only_backup(dest)
    done_at_kill = on_disk(emu, backup_dir)
    before = emu.counters.snapshot()
    assert done_at_kill, "the kill came before any file was complete on disk"
    run = cli(kill_signed_in, "backup", "--dest", str(dest), "--resume", "latest", "--plain")
    assert run.returncode == 0, run.stdout + run.stderr
    assert_backup_matches(emu, backup_dir)
    after = emu.counters.snapshot()
    # Files done before the kill are not fetched again at all; a file in flight at the kill
    # may be fetched again (the server may have sent bytes the client never wrote), but a
    # large one continues from its partial file instead of starting over.
    for item_id in done_at_kill:
        assert after["bytes_served"].get(item_id) == before["bytes_served"].get(item_id)
    # (bytes_served counts what the server pushed into socket buffers, which a slowed client
    # had not read at the kill, so it is no measure here; full deliveries are.)


def test_corrupted_downloads_fail_grouped_by_reason(
    emulator: Emulator, signed_in: SignedIn, dest: Path
) -> None:
    victims = [f for f in emulator.drive.iter_files() if f.size > 1000][:3]
    emulator.faults.corrupt_items = {f.id: "random" for f in victims}
    run = cli(signed_in, "backup", "--dest", str(dest), "--yes")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "  content mismatch: 3 files" in run.stdout
    assert "Retry what is left:" in run.stdout
    backup_dir = only_backup(dest)
    (report,) = (backup_dir / ".onedrive-backup" / "reports").glob("run-*.json")
    groups = json.loads(report.read_text())["failure_groups"]
    assert [(g["reason"], g["count"]) for g in groups] == [("content mismatch", 3)]
    assert sorted(groups[0]["examples"]) == sorted(f.path for f in victims)
    # The drive heals; a resume fetches exactly what failed.
    emulator.faults.corrupt_items = {}
    run = cli(signed_in, "backup", "--dest", str(dest), "--resume", "latest")
    assert run.returncode == 0, run.stdout + run.stderr
    assert_backup_matches(emulator, backup_dir)
