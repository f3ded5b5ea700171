"""`list`, `status` and `verify` on a real backup made from the emulator (in-process CLI)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from auth_fixtures import SignedIn
from onedrive_backup.cli import main
from onedrive_backup.demo import DemoOptions, run_demo
from onedrive_backup.emulator import Emulator
from onedrive_backup.state import BackupState
from oracle import assert_backup_matches


def _backup(signed: SignedIn, dest: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in signed.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ONEDRIVE_BACKUP_DEST", raising=False)
    assert main(["backup", "--dest", str(dest), "--yes"]) == 0
    (backup_dir,) = dest.glob("OneDrive_Backup_*")
    return backup_dir


def _done_paths(backup_dir: Path) -> list[str]:
    with BackupState.open(backup_dir, read_only=True) as state:
        return sorted(r.local_path for r in state.iter_done_files() if r.size > 10 and r.local_path)


def test_list_status_verify_and_repair(
    emulator: Emulator,
    signed_in: SignedIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    backup_dir = _backup(signed_in, dest, monkeypatch)
    capsys.readouterr()

    assert main(["list", "--dest", str(dest)]) == 0
    out = capsys.readouterr().out
    total = sum(1 for f in emulator.drive.iter_files())
    assert f"{backup_dir.name}: complete, {total}/{total} files" in out

    assert main(["status", str(backup_dir)]) == 0
    out = capsys.readouterr().out
    assert "(complete)" in out and f"{total:,} of {total:,} backed up" in out

    assert main(["verify", str(backup_dir)]) == 0
    assert f"All {total:,} files match" in capsys.readouterr().out

    flipped, truncated, missing = _done_paths(backup_dir)[:3]
    path = backup_dir / flipped
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(
        path, ns=(stat.st_atime_ns, stat.st_mtime_ns)
    )  # same size and time: only a hash sees it
    with open(backup_dir / truncated, "r+b") as fh:
        fh.truncate(5)
    (backup_dir / missing).unlink()

    assert main(["verify", str(backup_dir)]) == 1
    out = capsys.readouterr().out
    assert "3 of" in out
    assert f"{flipped}: content differs (hash mismatch)" in out
    assert f"{truncated}: size differs" in out
    assert f"{missing}: missing" in out

    assert main(["verify", str(backup_dir), "--quick"]) == 1
    out = capsys.readouterr().out
    assert flipped not in out and truncated in out and missing in out

    # --repair queues them; the next resume fetches exactly those and all is well again.
    assert main(["verify", str(backup_dir), "--repair"]) == 1
    assert "Queued 3 files" in capsys.readouterr().out
    assert main(["status", str(backup_dir)]) == 0
    assert "3 left" in capsys.readouterr().out
    assert main(["backup", "--dest", str(dest), "--resume", "latest", "--yes"]) == 0
    assert main(["verify", str(backup_dir)]) == 0
    assert_backup_matches(emulator, backup_dir)


def test_list_and_status_work_while_a_run_holds_the_lock(
    emulator: Emulator,
    signed_in: SignedIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    backup_dir = _backup(signed_in, dest, monkeypatch)
    capsys.readouterr()
    with BackupState.open(backup_dir):  # what a running backup holds
        assert main(["list", "--dest", str(dest)]) == 0
        assert main(["status", str(backup_dir)]) == 0
        assert main(["verify", str(backup_dir), "--quick"]) == 0
    assert "complete" in capsys.readouterr().out


def test_status_of_a_folder_that_is_no_backup_is_a_state_error(tmp_path: Path) -> None:
    assert main(["status", str(tmp_path)]) == 5
    assert main(["list", "--dest", str(tmp_path / "nope")]) == 4


def test_demo_end_to_end_shows_every_fault_handled(tmp_path: Path) -> None:
    out = io.StringIO()
    opts = DemoOptions(
        dest=tmp_path / "demo-backup",
        files=120,
        large_bytes=16 * 1000 * 1000,
        token_lifetime=3.0,
        link_lifetime=1.5,
        outage_seconds=2.0,
        throttles=2,
        bwlimit=4 * 1000 * 1000,
    )
    assert run_demo(opts, out) == 0, out.getvalue()
    text = out.getvalue()
    assert "enter the code" in text
    assert "Access token refreshed" in text
    assert "Download link expired for" in text  # the outage outlived a transfer's link
    assert "Throttled by OneDrive (HTTP 429)" in text
    assert "Network down" in text and "Network back after" in text
    assert "Backup complete" in text
    assert "files match (content hashes checked)" in text
