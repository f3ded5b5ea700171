"""Paging is complete: a folder of 10,000 children, and a drive of 20,000 items, over many
delta pages of the emulator (children shuffled before their parents, as Graph may send them).

The 200,000-item drive is covered by bench/bench_scan.py (too slow for the suite: about 30 s of
scan alone on the 2-CPU machine, with the emulator in the same process here); the bench checks
that our scan saw as many items and files as a bare loop over the same pages, with no orphans.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from onedrive_backup.emulator import DriveSpec, Emulator
from onedrive_backup.state import BackupState
from test_scan_emulator import (
    EmulatorFactory,
    assert_inventory_matches,
    delta_requests,
    run_scan,
)

BIG_FOLDER = 10_000


def add_big_folder(emu: Emulator, path: str, n: int) -> None:
    """n files in one folder, added before any scan (drive.add_file is O(siblings) per file)."""
    drive = emu.drive
    with drive.lock:
        folder = drive.resolve(drive.add_folder(path).id)
        for i in range(n):
            drive.new_file(folder, f"IMG_{i:05d}.JPG", 1 + i % 700, 1_600_000_000 + i)


@pytest.mark.slow
def test_a_folder_of_10000_children_is_listed_completely(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    emu = emulator_factory(DriveSpec(files=50, seed=3, size_range=(1, 1024)))
    add_big_folder(emu, "/Camera Roll", BIG_FOLDER)
    with BackupState.create(tmp_path) as state:
        result = run_scan(emu, state, page_size=1000)
        assert_inventory_matches(emu, state)
        big = [f for f in emu.drive.iter_files() if f.path.startswith("/Camera Roll/")]
        assert len(big) == BIG_FOLDER
        in_state = state._db.execute(
            "SELECT count(*) FROM items WHERE kind = 'file' AND remote_path LIKE '/Camera Roll/%'"
        ).fetchone()[0]
        assert in_state == BIG_FOLDER
        assert result.pages == delta_requests(emu) > BIG_FOLDER // 1000
        assert result.orphans == 0


@pytest.mark.slow
def test_a_drive_of_20000_items_is_listed_completely(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    emu = emulator_factory(DriveSpec(files=20_000, seed=4, size_range=(1, 1024)))
    items = sum(1 for _ in emu.drive.iter_items()) + 1  # + the root
    with BackupState.create(tmp_path) as state:
        result = run_scan(emu, state, page_size=1000)
        assert_inventory_matches(emu, state)
        assert result.items_seen == items
        assert result.pages == delta_requests(emu) == -(-items // 1000)
        assert result.files_total == sum(1 for _ in emu.drive.iter_files())
        assert result.orphans == 0
