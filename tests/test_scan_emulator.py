"""Scan against the emulator over real HTTPS through the real GraphClient."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from onedrive_backup import events
from onedrive_backup.emulator import DriveSpec, Emulator
from onedrive_backup.graph import GraphClient
from onedrive_backup.models import ScanResult
from onedrive_backup.paths import ensure_inside
from onedrive_backup.scan import scan
from onedrive_backup.selection import Selection
from onedrive_backup.state import BackupState

EmulatorFactory = Callable[..., Emulator]


class EmulatorTokens:
    """A TokenSource for module tests: sign-in itself is tested elsewhere."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.token = emu.mint_access_token()

    async def get(self) -> str:
        return self.token

    async def refresh(self, rejected: str) -> str:
        if rejected == self.token:
            self.token = self.emu.mint_access_token()
        return self.token


class StopAfter(Exception):
    pass


def run_scan(
    emu: Emulator,
    state: BackupState,
    *,
    page_size: int = 1000,
    emit: events.EventSink = events.discard,
    selection: Selection | None = None,
) -> ScanResult:
    async def go() -> ScanResult:
        async with GraphClient(emu.graph_url, EmulatorTokens(emu), ca_bundle=emu.ca_path) as g:
            return await scan(g, state, selection, emit, page_size=page_size)

    return asyncio.run(go())


def stop_after_pages(k: int) -> events.EventSink:
    """An event sink that interrupts the scan right after page k was committed."""

    def sink(event: events.Event) -> None:
        if isinstance(event, events.ScanProgress) and event.pages >= k:
            raise StopAfter

    return sink


def delta_requests(emu: Emulator) -> int:
    return emu.counters.count("graph.delta")


def assert_inventory_matches(emu: Emulator, state: BackupState) -> None:
    """Every live drive file is in the state at its path with its size and hash; no extras;
    every local path is unique (case-insensitively) and inside the backup."""
    files = {f.id: f for f in emu.drive.iter_files()}
    rows = state._db.execute(
        "SELECT item_id, remote_path, local_path, size, quickxorhash FROM items WHERE kind = 'file'"
    ).fetchall()
    assert {r[0] for r in rows} == set(files)
    locals_seen: set[str] = set()
    for item_id, remote_path, local_path, size, qxh in rows:
        f = files[item_id]
        assert (remote_path, size, qxh) == (f.path, f.size, f.quickxorhash), f.path
        assert local_path, f"{f.path}: not placed"
        ensure_inside(state.backup_dir, local_path)
        assert local_path.casefold() not in locals_seen, f"{local_path}: used twice"
        locals_seen.add(local_path.casefold())
    assert state.count_unplaced() == 0


def mark_all_done(state: BackupState) -> None:
    tasks = list(state.iter_pending_files())
    state.mark_done_many(
        [
            {
                "item_id": t.item_id,
                "size": t.size,
                "quickxorhash": t.quickxorhash,
                "mtime": t.mtime,
                "etag": t.etag,
            }
            for t in tasks
        ]
    )


@pytest.fixture
def state(tmp_path: Path) -> Iterator[BackupState]:
    s = BackupState.create(tmp_path)
    yield s
    s.close()


def test_full_scan_matches_the_drive(emulator: Emulator, state: BackupState) -> None:
    result = run_scan(emulator, state, page_size=25)
    assert_inventory_matches(emulator, state)
    n_files = sum(1 for _ in emulator.drive.iter_files())
    assert result.files_total == n_files
    assert result.pages == delta_requests(emulator) > 1
    assert result.notebooks, "the small drive has a OneNote notebook"
    assert result.zero_byte_files == 2
    assert state.get_cursor().phase == "complete"


def test_interrupted_scan_resumes_without_refetching(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    emu = emulator_factory(DriveSpec(files=300, seed=5))
    (tmp_path / "a").mkdir()
    with BackupState.create(tmp_path / "a") as s:
        with pytest.raises(StopAfter):
            run_scan(emu, s, page_size=20, emit=stop_after_pages(4))
        # The fifth page may already have been asked for: it is fetched while the fourth
        # is applied, and dropped uncommitted when the scan stops.
        asked = delta_requests(emu)
        assert asked in (4, 5)
        run_scan(emu, s, page_size=20)
        interrupted_total = delta_requests(emu)
        assert_inventory_matches(emu, s)
    # The same drive scanned in one go, for the page count.
    (tmp_path / "b").mkdir()
    with BackupState.create(tmp_path / "b") as fresh:
        before = delta_requests(emu)
        result = run_scan(emu, fresh, page_size=20)
        uninterrupted = delta_requests(emu) - before
    assert result.pages == uninterrupted
    assert interrupted_total == uninterrupted + (asked - 4), "a committed page was fetched twice"


def test_second_scan_fetches_only_the_changes(emulator: Emulator, state: BackupState) -> None:
    run_scan(emulator, state, page_size=25)
    mark_all_done(state)
    drive = emulator.drive
    files = [f for f in drive.iter_files() if f.size > 0 and "/" in f.path[1:]]
    renamed, modified, removed, moved = files[0], files[1], files[2], files[3]
    drive.add_file("/New folder/brand new.jpg", size=1234)
    drive.modify_file(modified.id, size=modified.size + 7)
    drive.delete(removed.id)
    drive.rename(renamed.id, "renamed " + renamed.name)
    drive.move(moved.id, "/Moved here")
    before = delta_requests(emulator)
    result = run_scan(emulator, state, page_size=1000)
    assert delta_requests(emulator) - before == 1, "an incremental scan is one small delta"
    assert not result.full_enumeration
    assert_inventory_matches(emulator, state)
    assert result.changes.added == 1 and result.changes.modified == 1
    assert result.changes.deleted == 1 and result.changes.moved == 2
    kinds = sorted((o.kind, o.reason) for o in state.iter_ops())
    assert kinds == [
        ("move", "moved"),
        ("move", "renamed"),
        ("retire", "deleted"),
        ("retire", "replaced"),
    ]
    pending = {t.item_id for t in state.iter_pending_files()}
    assert modified.id in pending and renamed.id not in pending and moved.id not in pending


def test_folder_rename_moves_every_descendant(emulator: Emulator, state: BackupState) -> None:
    run_scan(emulator, state)
    mark_all_done(state)
    top = sorted(
        (f for f in emulator.drive.iter_items() if f.is_folder and f.path.count("/") == 1),
        key=lambda f: f.path,
    )[0]
    inside = [f for f in emulator.drive.iter_files() if f.path.startswith(top.path + "/")]
    assert inside
    emulator.drive.rename(top.id, top.name + " (renamed)")
    run_scan(emulator, state)
    assert_inventory_matches(emulator, state)
    moves = [o for o in state.iter_ops() if o.kind == "move"]
    assert sorted(o.item_id for o in moves) == sorted(f.id for f in inside)
    assert {t.item_id for t in state.iter_pending_files()} == set()


def test_410_resync_keeps_done_files_done(emulator: Emulator, state: BackupState) -> None:
    run_scan(emulator, state, page_size=50)
    mark_all_done(state)
    done_before = state.totals().count("done")
    victim = next(f for f in emulator.drive.iter_files() if f.size > 0)
    emulator.drive.delete(victim.id)
    emulator.invalidate_delta_tokens()
    seen: list[Any] = []
    result = run_scan(emulator, state, page_size=50, emit=seen.append)
    assert result.resynced and result.full_enumeration
    assert emulator.counters.count("graph.delta", 410) == 1
    assert_inventory_matches(emulator, state)
    assert state.totals().count("done") == done_before - 1
    assert list(state.iter_pending_files()) == []
    assert [(o.kind, o.reason) for o in state.iter_ops()] == [("retire", "deleted")]
    for e in seen:
        assert "token" not in repr(e.to_dict()).lower()


def test_hostile_names_map_to_safe_unique_paths(
    emulator_factory: EmulatorFactory, state: BackupState
) -> None:
    emu = emulator_factory(DriveSpec(files=80, seed=3, hostile_names=True))
    run_scan(emu, state)
    assert_inventory_matches(emu, state)


def test_category_selection_against_the_drive(emulator: Emulator, state: BackupState) -> None:
    photos = Selection.build(categories=["photos"])
    result = run_scan(emulator, state, selection=photos)
    expected = [f for f in emulator.drive.iter_files() if photos.matches(f.path)]
    assert result.files_selected == len(expected) > 0
    assert {t.item_id for t in state.iter_pending_files()} == {f.id for f in expected}


def test_a_large_resolve_pass_rebuilds_its_indexes_and_stays_exact(
    emulator_factory: EmulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above a threshold the pass drops and rebuilds two indexes; force that path here."""
    import onedrive_backup.state as state_module

    monkeypatch.setattr(state_module, "_REBUILD_INDEXES_AT", 0)
    emu = emulator_factory(DriveSpec(files=200, seed=8))
    with BackupState.create(tmp_path) as s:
        run_scan(emu, s, page_size=50)
        assert_inventory_matches(emu, s)
        names = {r[0] for r in s._db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"items_work", "items_dirty", "items_parent"} <= names
        assert not s.needs_resolve()
        pending = s._db.execute(
            "SELECT count(*) FROM items INDEXED BY items_work "
            "WHERE kind = 'file' AND selected = 1 AND status = 'pending'"
        ).fetchone()[0]
        assert pending == sum(1 for _ in emu.drive.iter_files())  # zero-byte files too
        emu.drive.add_file("/After/new.txt", size=10)
        run_scan(emu, s, page_size=50)
        assert_inventory_matches(emu, s)
