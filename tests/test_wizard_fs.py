"""The destination's filesystem is named on Linux (/proc/mounts) and macOS (`mount`)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from onedrive_backup import wizard


def test_linux_mount_table_names_the_filesystem() -> None:
    if not Path("/proc/mounts").exists():
        pytest.skip("no /proc/mounts on this system")
    assert wizard.filesystem_type(Path("/proc")) == "proc"


def test_macos_mount_output_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    output = (
        "/dev/disk3s1s1 on / (apfs, sealed, local, read-only, journaled)\n"
        "/dev/disk4s1 on /Volumes/T7 2TB (exfat, local, nodev, nosuid, noowners)\n"
    )

    def fake_run(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 0, stdout=output, stderr="")

    monkeypatch.setattr(wizard.Path, "read_text", lambda *a, **k: (_ for _ in ()).throw(OSError()))
    monkeypatch.setattr(wizard.sys, "platform", "darwin")
    monkeypatch.setattr(wizard.subprocess, "run", fake_run)
    monkeypatch.setattr(wizard.os.path, "realpath", lambda p: str(p))
    assert wizard.filesystem_type(Path("/Volumes/T7 2TB/backups")) == "exfat"
    assert wizard.filesystem_type(Path("/Users/me")) == "apfs"
