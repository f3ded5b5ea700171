"""Incremental updates against the emulator (issue 7): only changes are fetched, moves happen on
disk, and what the cloud deleted or replaced is kept in `.versions/<run stamp>/`.

Each test makes a full backup, changes the emulated drive, runs `resume="latest"` and checks the
tree (oracle), the versions folder and the emulator's per-item delivery counters.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from auth_fixtures import SignedIn, sign_in
from engine_helpers import run_engine
from onedrive_backup.emulator import DriveSpec, Emulator
from onedrive_backup.selection import Selection
from oracle import assert_backup_matches, live_files

BASE = DriveSpec(files=12, seed=21, size_range=(1, 4096), notebook=False, zero_byte_files=1)
BULK = 200  # files in the folder renamed in one go (the 1,000 is in the benchmark)


def populate(emu: Emulator) -> None:
    """The tree every scenario starts from (on top of a small generated drive)."""
    d = emu.drive
    for i in range(BULK):
        d.add_file(f"/Bulk/file{i:04d}.txt", size=64 + i)
    d.add_file("/Docs/edit me.txt", size=500)
    d.add_file("/Docs/delete me.txt", size=300)
    d.add_file("/Trash/one.txt", size=10)
    d.add_file("/Trash/two.txt", size=20)
    d.add_file("/From/moving.txt", size=700)
    d.add_folder("/To")
    d.add_file("/Swap/a.txt", size=111)
    d.add_file("/Swap/b.txt", size=222)
    d.add_file("/Case/Photo.jpg", size=333)


@pytest.fixture
def emu(emulator_factory: Callable[..., Emulator]) -> Emulator:
    emu = emulator_factory(BASE)
    populate(emu)
    return emu


@pytest.fixture
def signed(emu: Emulator, tmp_path: Path) -> Iterator[SignedIn]:
    s = sign_in(emu, tmp_path / "config")
    yield s
    s.close()


def full_backup(signed: SignedIn, dest: Path, **plan: Any) -> Path:
    result, _ = run_engine(signed, dest, **plan)
    assert result.exit_code == 0, result.summary
    assert result.backup_dir is not None
    return result.backup_dir


def deliveries(emu: Emulator) -> Counter[str]:
    return Counter(emu.counters.snapshot()["full_deliveries"])


def new_deliveries(emu: Emulator, before: Counter[str]) -> dict[str, int]:
    after = deliveries(emu)
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def version_files(backup_dir: Path) -> dict[str, bytes]:
    """`<path under the stamp>` → bytes, over every `.versions/<stamp>/` folder."""
    root = backup_dir / ".versions"
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix().split("/", 1)[1]: p.read_bytes()
        for p in root.rglob("*")
        if p.is_file()
    }


def change_drive(emu: Emulator) -> dict[str, set[str]]:
    """Adds, an edit, deletes (a file, a folder), a folder rename, a move between folders."""
    d = emu.drive
    moved = {f.id for f in d.iter_files() if f.path.startswith(("/Bulk/", "/From/"))}
    edited = d.modify_file("/Docs/edit me.txt", size=510).id
    added = {d.add_file("/New/added.txt", size=50).id, d.add_file("/Docs/new.txt", size=60).id}
    d.delete("/Docs/delete me.txt")
    d.delete("/Trash")
    d.rename("/Bulk", "Bulk renamed")
    d.move("/From/moving.txt", "/To")
    return {"moved": moved, "edited": {edited}, "added": added}


def test_update_moves_on_disk_keeps_versions_and_fetches_only_changes(
    emu: Emulator, signed: SignedIn, dest: Path
) -> None:
    backup = full_backup(signed, dest)
    old = {
        rel: (backup / rel).read_bytes()
        for rel in ("Docs/edit me.txt", "Docs/delete me.txt", "Trash/one.txt", "Trash/two.txt")
    }
    changed = change_drive(emu)
    before = deliveries(emu)

    result, seen = run_engine(signed, dest, resume="latest")

    assert result.exit_code == 0, result.summary
    assert result.backup_dir == backup
    assert_backup_matches(emu, backup)
    # One new delivery per added or edited file; none for anything else (moves included).
    assert new_deliveries(emu, before) == {i: 1 for i in changed["added"] | changed["edited"]}
    assert version_files(backup) == old
    assert not (backup / "Bulk").exists() and not (backup / "Trash").exists()
    assert not (backup / "From").exists(), "emptied folders are removed"
    changes = result.summary["changes"]
    assert changes == {
        "moved": BULK + 1,
        "retired_deleted": 3,
        "retired_replaced": 1,
        "removed": 0,
        "missing": 0,
    }
    scan = result.summary["scan"]["changes"]
    assert scan == {"added": 2, "modified": 1, "deleted": 3, "moved": BULK + 1}
    stamp = next((backup / ".versions").iterdir()).name
    texts = [e.text for e in seen if type(e).__name__ == "Message"]
    assert f"Kept 3 files deleted in OneDrive in .versions/{stamp}." in texts
    assert not (backup / ".onedrive-backup" / "moving").exists()

    # Nothing changed since: the next update does nothing at all.
    before = deliveries(emu)
    again, _ = run_engine(signed, dest, resume="latest")
    assert again.exit_code == 0 and again.summary["changes"]["moved"] == 0
    assert new_deliveries(emu, before) == {}
    assert_backup_matches(emu, backup)


def test_no_versions_mirrors_exactly(emu: Emulator, signed: SignedIn, dest: Path) -> None:
    backup = full_backup(signed, dest)
    change_drive(emu)
    result, _ = run_engine(signed, dest, resume="latest", no_versions=True)
    assert result.exit_code == 0, result.summary
    assert_backup_matches(emu, backup)
    assert not (backup / ".versions").exists()
    assert result.summary["changes"]["removed"] == 4
    assert result.summary["changes"]["retired_deleted"] == 0


def test_keep_versions_days_prunes_old_version_folders(
    emu: Emulator, signed: SignedIn, dest: Path
) -> None:
    backup = full_backup(signed, dest)
    old_stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(time.time() - 40 * 86400))
    recent_stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(time.time() - 5 * 86400))
    for stamp in (old_stamp, recent_stamp):
        (backup / ".versions" / stamp / "Docs").mkdir(parents=True)
        (backup / ".versions" / stamp / "Docs" / "x.txt").write_text(stamp)
    (backup / ".versions" / "notes").mkdir()  # not a stamp: never touched
    emu.drive.delete("/Docs/delete me.txt")

    result, _ = run_engine(signed, dest, resume="latest", keep_versions_days=30)

    assert result.exit_code == 0, result.summary
    assert result.summary["versions_pruned"] == 1
    names = {p.name for p in (backup / ".versions").iterdir()}
    assert old_stamp not in names
    assert {recent_stamp, "notes"} <= names
    assert len(names) == 3, "this run's own versions folder stays"
    assert_backup_matches(emu, backup)


def test_swap_and_case_only_renames(emu: Emulator, signed: SignedIn, dest: Path) -> None:
    backup = full_backup(signed, dest)
    a_bytes = (backup / "Swap/a.txt").read_bytes()
    b_bytes = (backup / "Swap/b.txt").read_bytes()
    d = emu.drive
    d.rename("/Swap/a.txt", "tmp.txt")
    d.rename("/Swap/b.txt", "a.txt")
    d.rename("/Swap/tmp.txt", "b.txt")
    d.rename("/Case/Photo.jpg", "photo.jpg")
    d.rename("/Case", "case")
    before = deliveries(emu)

    result, _ = run_engine(signed, dest, resume="latest")

    assert result.exit_code == 0, result.summary
    assert_backup_matches(emu, backup)
    assert new_deliveries(emu, before) == {}
    assert (backup / "Swap/a.txt").read_bytes() == b_bytes
    assert (backup / "Swap/b.txt").read_bytes() == a_bytes
    assert "case/photo.jpg" in live_files(backup)
    assert version_files(backup) == {}
    assert result.summary["changes"]["moved"] == 3


def test_changed_selection_fetches_new_and_keeps_deselected(
    emu: Emulator, signed: SignedIn, dest: Path
) -> None:
    photos = Selection.build(categories=["photos"])
    backup = full_backup(signed, dest, selection=photos)
    photo_ids = {f.id for f in emu.drive.iter_files() if photos.matches(f.path)}
    assert photo_ids, "the drive has photos"
    assert_backup_matches(emu, backup, selected=lambda f: photos.matches(f.path))
    before = deliveries(emu)

    result, _ = run_engine(signed, dest, resume="latest", selection=Selection.all())

    assert result.exit_code == 0, result.summary
    assert_backup_matches(emu, backup)
    fetched = new_deliveries(emu, before)
    assert not set(fetched) & photo_ids, "nothing already backed up is fetched again"
    others = {f.id for f in emu.drive.iter_files() if f.size and f.id not in photo_ids}
    assert set(fetched) == others

    # Back to photos only: the others stay on disk, reported, and nothing is fetched.
    before = deliveries(emu)
    result, _ = run_engine(signed, dest, resume="latest", selection=photos)
    assert result.exit_code == 0, result.summary
    assert new_deliveries(emu, before) == {}
    all_files = [f for f in emu.drive.iter_files() if not f.is_folder]
    assert result.summary["scan"]["deselected_on_disk"] == len(all_files) - len(photo_ids)
    assert len(live_files(backup)) == len(all_files)
    assert version_files(backup) == {}
