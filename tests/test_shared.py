"""Items shared with the user ("Add to My files" shortcuts into another user's drive).

The whole Engine against the emulator (real HTTPS, real MSAL): with --include-shared the shared
folder and file are backed up under the shortcuts' places and kept up to date; without it they
are listed as skipped and nothing is fetched from the owner's drive.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from auth_fixtures import SignedIn, sign_in
from onedrive_backup import auth, events
from onedrive_backup.download import file_quickxorhash
from onedrive_backup.emulator import DriveSpec, Emulator
from onedrive_backup.emulator.drive import Drive
from onedrive_backup.engine import BackupPlan, Engine, RunResult
from onedrive_backup.models import ItemKey, RemoteItem, state_key
from onedrive_backup.selection import Selection
from onedrive_backup.state import BackupState, shared_key
from oracle import assert_backup_matches

SHARED_DRIVE = DriveSpec(files=40, seed=11, size_range=(1, 32 * 1024), shared_items=True)
ALBUM = "Family Photos"
BUDGET = "Budget 2024.xlsx"


def owner_of(emu: Emulator) -> Drive:
    return emu.drive.others[0]


def run(signed_in: SignedIn, dest: Path, *, shared: bool, **plan: Any) -> RunResult:
    """One engine run; with `shared`, as `backup --include-shared` sets it up."""
    if shared:  # sign-in asks for Files.Read.All, as the backup command does
        auth.login_device_code(signed_in.settings, shared=True, out=io.StringIO(), plain_cache=True)
    seen: list[events.Event] = []
    tokens = signed_in.token_source(emit=seen.append, shared=shared)
    selection = Selection.build(include_shared=shared)
    engine = Engine(
        BackupPlan(dest=dest, selection=selection, include_shared=shared, workers=4, **plan),
        signed_in.settings,
        tokens,
        seen.append,
    )
    result = asyncio.run(engine.run())
    assert result.exit_code == 0, result.summary
    assert not [e for e in seen if isinstance(e, events.ItemFailed)]
    return result


def owner_ids(emu: Emulator) -> set[str]:
    return {f.id for f in owner_of(emu).iter_files()}


def delivered(emu: Emulator, ids: set[str]) -> set[str]:
    return {i for i, n in emu.counters.full_deliveries.items() if n and i in ids}


def assert_shared_match(emu: Emulator, backup_dir: Path) -> set[str]:
    """Every file reachable through the shortcuts is done, at the shortcut's path, with the
    owner's bytes; returns their local paths."""
    paths: set[str] = set()
    with BackupState.open(backup_dir, read_only=True) as state:
        for shortcut, _drive, f, path in emu.drive.shortcut_files():
            key = shortcut.id if path == shortcut.path else shared_key(shortcut.id, f.id)
            rec = state.get_file(key)
            assert rec is not None, f"{path}: not in the state"
            assert rec.status == "done", f"{path}: {rec.status} ({rec.last_error})"
            assert rec.drive_id == owner_of(emu).id, f"{path}: recorded in the wrong drive"
            assert rec.remote_path == path
            assert rec.local_path is not None
            local = backup_dir / rec.local_path
            assert local.is_file(), f"{path}: missing at {rec.local_path}"
            assert local.stat().st_size == f.size
            if f.quickxorhash is not None:
                assert file_quickxorhash(local)[0].b64digest() == f.quickxorhash, path
            assert abs(local.stat().st_mtime - f.mtime.timestamp()) < 1.0, f"{path}: mtime"
            paths.add(rec.local_path)
    return paths


@pytest.fixture
def emu(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory(SHARED_DRIVE)


@pytest.fixture
def signed(emu: Emulator, tmp_path: Path) -> Iterator[SignedIn]:
    signed = sign_in(emu, tmp_path / "config")
    yield signed
    signed.close()


def test_without_include_shared_they_are_listed_as_skipped(
    emu: Emulator, signed: SignedIn, dest: Path
) -> None:
    result = run(signed, dest, shared=False)
    assert result.backup_dir is not None
    assert sorted(result.summary["scan"]["shared"]) == [f"/{BUDGET}", f"/{ALBUM}"]
    assert not delivered(emu, owner_ids(emu)), "nothing may come from the owner's drive"
    assert_backup_matches(emu, result.backup_dir)  # our own files, and nothing else
    with BackupState.open(result.backup_dir, read_only=True) as state:
        assert not state.get_meta("shared_anchors")


def test_include_shared_backs_up_the_shared_folder_and_file_under_the_shortcuts(
    emu: Emulator, signed: SignedIn, dest: Path
) -> None:
    result = run(signed, dest, shared=True)
    assert result.backup_dir is not None
    assert result.summary["scan"]["shared"] == [], "followed, so not listed as skipped"
    shared_paths = assert_shared_match(emu, result.backup_dir)
    assert f"{ALBUM}/2023 Beach/Beach.jpg" in shared_paths
    assert BUDGET in shared_paths
    # The awkward name is made safe like any other.
    assert any(p.startswith(f"{ALBUM}/2023 Beach/Q&A") and ":" not in p for p in shared_paths)
    assert_backup_matches(emu, result.backup_dir, also=shared_paths)
    private = owner_of(emu).find("/Private/not shared.txt")
    assert private is not None
    assert owner_of(emu).item_id(private) not in emu.counters.full_deliveries


def test_an_update_downloads_only_what_changed_inside_the_shared_folder(
    emu: Emulator, signed: SignedIn, dest: Path
) -> None:
    first = run(signed, dest, shared=True)
    assert first.backup_dir is not None
    owner = owner_of(emu)
    before = dict(emu.counters.full_deliveries)
    added = owner.add_file(f"/{ALBUM}/2023 Beach/new.jpg", size=5000)
    modified = owner.modify_file(f"/{ALBUM}/IMG_0002.JPG", size=777)
    old = (first.backup_dir / ALBUM / "IMG_0002.JPG").read_bytes()
    owner.delete(f"/{ALBUM}/IMG_0003.JPG")
    budget = owner.modify_file(f"/{BUDGET}", size=4321)

    second = run(signed, dest, shared=True, resume="latest")
    assert second.backup_dir == first.backup_dir
    after = dict(emu.counters.full_deliveries)
    fetched = {i for i in after if after[i] != before.get(i, 0)}
    assert fetched == {added.id, modified.id, budget.id}, "only the changed files"
    shared_paths = assert_shared_match(emu, second.backup_dir)
    assert_backup_matches(emu, second.backup_dir, also=shared_paths)
    changes = second.summary["scan"]["changes"]
    assert (changes["added"], changes["modified"], changes["deleted"]) == (1, 2, 1)
    # Replaced and deleted versions are kept, as for the user's own files.
    kept = {p.name: p for p in (second.backup_dir / ".versions").rglob("*") if p.is_file()}
    assert any(name.startswith("IMG_0003") for name in kept), sorted(kept)
    assert any(name.startswith("IMG_0002") and kept[name].read_bytes() == old for name in kept)
    assert any(name.startswith("Budget 2024") for name in kept)
    assert not (second.backup_dir / ALBUM / "IMG_0003.JPG").exists()


def test_turning_include_shared_off_keeps_what_was_backed_up_and_stops_following(
    emu: Emulator, signed: SignedIn, dest: Path
) -> None:
    first = run(signed, dest, shared=True)
    assert first.backup_dir is not None
    backed_up = assert_shared_match(emu, first.backup_dir)
    on_disk = {p: (first.backup_dir / p).read_bytes() for p in backed_up}
    owner = owner_of(emu)
    added = owner.add_file(f"/{ALBUM}/2023 Beach/later.jpg", size=3000)
    modified = owner.modify_file(f"/{ALBUM}/IMG_0002.JPG", size=555)
    before = dict(emu.counters.full_deliveries)

    off = run(signed, dest, shared=False, resume="latest")
    assert off.backup_dir == first.backup_dir
    after = dict(emu.counters.full_deliveries)
    assert not {i for i in after if after[i] != before.get(i, 0)}, "nothing may be fetched"
    assert sorted(off.summary["scan"]["shared"]) == [f"/{BUDGET}", f"/{ALBUM}"]
    for path, data in on_disk.items():  # kept as they were, not updated, not moved away
        assert (off.backup_dir / path).read_bytes() == data, path
    with BackupState.open(off.backup_dir, read_only=True) as state:
        assert not state.get_meta("shared_anchors")
        assert not any(":" in t.item_id for t in state.iter_pending_files())

    on = run(signed, dest, shared=True, resume="latest")
    after_on = dict(emu.counters.full_deliveries)
    fetched = {i for i in after_on if after_on[i] != after.get(i, 0)}
    assert fetched == {added.id, modified.id}, "following again fetches only what changed"
    assert on.backup_dir is not None
    assert_shared_match(emu, on.backup_dir)
    assert on.summary["scan"]["shared"] == []


def test_a_file_in_another_drive_is_addressed_by_its_own_id() -> None:
    key = shared_key("ME!105", "OWNER!7")
    item = ItemKey("OWNER!7", key)
    assert item == "OWNER!7" and state_key(item) == key and state_key("ME!105") == "ME!105"


def test_ids_that_collide_across_drives_keep_separate_rows(tmp_path: Path) -> None:
    """The same id in our drive and behind a shortcut: two rows, each addressed right."""
    theirs_key = shared_key("ME!9", "X!1")

    def size_of(key: str) -> int:
        rec = state.get_file(key)
        assert rec is not None
        return rec.size

    with BackupState.create(tmp_path) as state:
        ours = RemoteItem("X!1", "ME", "ME!root", "a.txt", "file", size=3)
        theirs = RemoteItem(theirs_key, "OWNER", "ME!9", "b.txt", "file", size=4)
        state.ingest_shared([ours, theirs], anchor=None)
        assert (size_of("X!1"), size_of(theirs_key)) == (3, 4)
        task = state.get_task(theirs_key)
        assert task is not None and (task.item_id, task.drive_id) == ("X!1", "OWNER")
        state.mark_failed(task.item_id, "boom")
        failed = state.get_file(task.item_id)
        assert failed is not None and failed.item_id == theirs_key and failed.status == "failed"
        ours_rec = state.get_file("X!1")
        assert ours_rec is not None and ours_rec.status == "pending"
        # The downloader refetches metadata by Graph id: the owner's row changes, not ours.
        item = {"id": "X!1", "name": "b.txt", "size": 9, "file": {}}
        refreshed = state.update_file_metadata(item | {"parentReference": {"driveId": "OWNER"}})
        assert refreshed is not None and refreshed.size == 9 and refreshed.item_id == "X!1"
        assert (size_of("X!1"), size_of(theirs_key)) == (3, 9)
        refreshed = state.update_file_metadata(item | {"parentReference": {"driveId": "ME"}})
        assert (size_of("X!1"), size_of(theirs_key)) == (9, 9)
