"""Case-only renames on a real case-insensitive disk: exFAT (what most external disks use),
mounted through FUSE from an image (see TESTING.md). Skipped where mounting is refused."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import test_incremental
from auth_fixtures import SignedIn
from engine_helpers import run_engine
from onedrive_backup.emulator import Emulator
from oracle import assert_backup_matches
from test_incremental import deliveries, full_backup, new_deliveries, version_files

# The scenario's drive and sign-in, shared with test_incremental.py.
emu = test_incremental.emu
signed = test_incremental.signed

pytestmark = pytest.mark.skipif(
    not (shutil.which("mkfs.exfat") and shutil.which("mount.exfat-fuse") and os.geteuid() == 0),
    reason="needs root, exfatprogs and exfat-fuse (apt-get install -y exfatprogs exfat-fuse)",
)


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout


@pytest.fixture
def exfat_dest(tmp_path: Path) -> Iterator[Path]:
    image = tmp_path / "exfat.img"
    mount = tmp_path / "mnt"
    mount.mkdir()
    with open(image, "wb") as fh:
        fh.truncate(96 * 1024 * 1024)
    try:
        _run("mkfs.exfat", str(image))
        loop = _run("losetup", "-f", "--show", str(image)).strip()
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"cannot make an exFAT image here: {exc}")
    try:
        try:
            _run("mount.exfat-fuse", loop, str(mount))
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot mount exFAT here: {exc.stderr}")
        try:
            yield mount
        finally:
            subprocess.run(["umount", str(mount)], check=False, timeout=60)
    finally:
        subprocess.run(["losetup", "-d", loop], check=False, timeout=60)


def test_case_only_renames_on_exfat(emu: Emulator, signed: SignedIn, exfat_dest: Path) -> None:
    probe = exfat_dest / "Probe"
    probe.write_text("x")
    assert (exfat_dest / "probe").exists(), "the test disk must be case-insensitive"
    probe.unlink()
    backup = full_backup(signed, exfat_dest)
    photo = (backup / "Case/Photo.jpg").read_bytes()
    bulk = (backup / "Bulk/file0007.txt").read_bytes()
    d = emu.drive
    d.rename("/Case/Photo.jpg", "photo.jpg")  # file and folder, both only in case
    d.rename("/Case", "case")
    d.rename("/Bulk", "BULK")  # a folder of many files, only in case
    d.rename("/Swap/a.txt", "tmp.txt")
    d.rename("/Swap/b.txt", "A.TXT")  # a swap where one side also changes case
    d.rename("/Swap/tmp.txt", "b.txt")
    before = deliveries(emu)

    result, _ = run_engine(signed, exfat_dest, resume="latest")

    assert result.exit_code == 0, result.summary
    assert_backup_matches(emu, backup)
    assert new_deliveries(emu, before) == {}, "case-only renames download nothing"
    top = set(os.listdir(backup))
    assert {"case", "BULK"} <= top and not {"Case", "Bulk"} & top
    assert os.listdir(backup / "case") == ["photo.jpg"]
    assert (backup / "case/photo.jpg").read_bytes() == photo
    assert (backup / "BULK/file0007.txt").read_bytes() == bulk
    assert sorted(os.listdir(backup / "Swap")) == ["A.TXT", "b.txt"]
    assert version_files(backup) == {}
    assert result.summary["changes"]["missing"] == 0
