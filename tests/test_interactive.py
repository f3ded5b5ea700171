"""The interactive flow, driven through a real pseudo-terminal the way a person meets it."""

from __future__ import annotations

import sys
from pathlib import Path

import pexpect

from auth_fixtures import SignedIn, subprocess_env
from onedrive_backup.emulator import Emulator
from onedrive_backup.selection import Selection
from oracle import assert_backup_matches


def _spawn(signed: SignedIn, *args: str) -> pexpect.spawn:
    env = subprocess_env(signed.env)
    env.update({"TERM": "xterm", "COLUMNS": "160", "LINES": "50"})
    env.pop("ONEDRIVE_BACKUP_DEST", None)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "onedrive_backup", *args],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(50, 160),
    )
    return child


def test_new_backup_of_pictures_stopped_with_ctrl_c_then_resumed_from_the_list(
    emulator: Emulator, signed_in: SignedIn, tmp_path: Path
) -> None:
    dest = tmp_path / "usb disk"
    dest.mkdir()

    # First run: a new backup of pictures, slowed down so Ctrl-C lands mid-download.
    child = _spawn(signed_in, "backup", "--bwlimit", "60K")
    try:
        child.expect("Signed in as")
        child.expect(r"Backup destination folder \(--dest\)")
        child.sendline(str(tmp_path / "no such disk"))
        child.expect("does not exist")
        child.expect(r"Backup destination folder \(--dest\)")
        child.sendline(str(dest))
        child.expect("Free space:")
        child.expect("No earlier backups here")
        child.expect("What to back up")
        child.expect("8. All files")
        child.expect("Choose")
        child.sendline("2")
        child.expect("Selected: Pictures")
        child.expect("Phase 1: Scanning OneDrive")
        child.expect("Phase 2: Checking disk space")
        child.expect("Phase 3: Downloading")
        child.expect(r"\d+/\d+ files")  # the live progress
        child.sendintr()
        child.expect("Stopping")
        child.expect(r"--resume OneDrive_Backup_\d{8}_\d{6}")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 130, child.before

    # Second run: the unfinished backup is listed and resumed (Enter takes the defaults).
    child = _spawn(signed_in)
    try:
        child.expect(r"Backup destination folder \(--dest\)")
        child.sendline(str(dest))
        child.expect("Backups already in this folder")
        child.expect(r"1\. OneDrive_Backup_\d+_\d+: unfinished")
        child.expect("2. Start a new backup")
        child.expect(r"Resume which backup\? \(1-2\)\S* \[1\]")
        child.sendline("")
        child.expect("Will resume")
        child.expect("Enter keeps what this backup was set to")
        child.sendline("")
        child.expect("Phase 3: Downloading")
        child.expect("Backup complete")
        child.expect("What to do next")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    (backup_dir,) = dest.glob("OneDrive_Backup_*")
    pictures = Selection.build(categories=["photos"])
    assert_backup_matches(emulator, backup_dir, selected=lambda f: pictures.matches(f.path))
