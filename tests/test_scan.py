"""Scan logic against recorded delta pages (a replaying fake of GraphLike; pure logic)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from onedrive_backup import events
from onedrive_backup.errors import ResyncRequired
from onedrive_backup.models import ScanResult
from onedrive_backup.paths import ensure_inside
from onedrive_backup.scan import DELTA_SELECT, delta_start_url, parse_item, scan
from onedrive_backup.selection import Selection
from onedrive_backup.state import STATE_FILE, BackupState

START = delta_start_url()


class ReplayGraph:
    """Serves recorded pages by URL; `fail_at` raises instead of answering that URL."""

    def __init__(self, pages: dict[str, dict[str, Any] | BaseException]) -> None:
        self.pages = pages
        self.fetched: list[str] = []

    async def get_json(self, url: str) -> dict[str, Any]:
        self.fetched.append(url)
        page = self.pages[url]
        if isinstance(page, BaseException):
            raise page
        return page

    async def get_page(self, url: str) -> tuple[dict[str, Any], bytes]:
        page = await self.get_json(url)
        return page, json.dumps(page).encode()


def root() -> dict[str, Any]:
    return {"id": "ROOT", "name": "root", "root": {}, "folder": {}}


def folder(item_id: str, name: str, parent: str = "ROOT", **extra: Any) -> dict[str, Any]:
    return {
        "id": item_id,
        "name": name,
        "folder": {"childCount": 0},
        "parentReference": {"id": parent, "driveId": "D"},
        **extra,
    }


def file(
    item_id: str, name: str, parent: str = "ROOT", size: int = 10, rev: str = "1", **extra: Any
) -> dict[str, Any]:
    return {
        "id": item_id,
        "name": name,
        "size": size,
        "eTag": f"e{item_id}{rev}",
        "cTag": f"c{item_id}{rev}",
        "file": {"hashes": {"quickXorHash": f"q{item_id}{rev}"}},
        "fileSystemInfo": {"lastModifiedDateTime": "2021-03-04T05:06:07.1234567Z"},
        "parentReference": {"id": parent, "driveId": "D"},
        **extra,
    }


def deleted(item_id: str, parent: str = "ROOT") -> dict[str, Any]:
    return {"id": item_id, "deleted": {}, "parentReference": {"id": parent, "driveId": "D"}}


def chain(prefix: str, pages: list[list[dict[str, Any]]], delta: str) -> dict[str, Any]:
    """Pages served at START (or prefix), prefix/1, prefix/2, … ending with `delta`."""
    served: dict[str, Any] = {}
    for i, value in enumerate(pages):
        url = prefix if i == 0 else f"{prefix}/page{i}?token=secret{i}"
        last = i == len(pages) - 1
        nxt = delta if last else f"{prefix}/page{i + 1}?token=secret{i + 1}"
        served[url] = {"value": value, ("@odata.deltaLink" if last else "@odata.nextLink"): nxt}
    return served


@pytest.fixture
def state(tmp_path: Path) -> Iterator[BackupState]:
    s = BackupState.create(tmp_path, now=datetime(2024, 1, 2, 3, 4, 5))
    yield s
    s.close()


def run(graph: ReplayGraph, state: BackupState, sel: Selection | None = None) -> ScanResult:
    return asyncio.run(scan(graph, state, sel))


def paths(state: BackupState) -> dict[str, tuple[str | None, str | None, str | None]]:
    rows = state._db.execute("SELECT item_id, remote_path, local_path, status FROM items")
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def mark_all_done(state: BackupState) -> None:
    for task in list(state.iter_pending_files()):
        state.mark_done(
            task.item_id, size=task.size, quickxorhash=task.quickxorhash, mtime=1.0, etag=task.etag
        )


def ops(state: BackupState) -> list[tuple[str, str, str | None, str]]:
    return [(o.kind, o.src_path, o.dst_path, o.reason) for o in state.iter_ops()]


# --- parsing ----------------------------------------------------------------------------------


def test_parse_item_shapes() -> None:
    item = parse_item(file("A", "a.jpg"))
    assert (item.kind, item.size, item.quickxorhash, item.parent_id) == ("file", 10, "qA1", "ROOT")
    assert item.mtime == datetime.fromisoformat("2021-03-04T05:06:07.123456+00:00").timestamp()
    assert parse_item(root()).kind == "root"
    odb_notebook = folder("N", "Notes", package={"type": "oneNote"})
    assert (parse_item(odb_notebook).kind, parse_item(odb_notebook).special) == (
        "package",
        "onenote",
    )
    assert parse_item(deleted("X")).deleted
    assert parse_item(file("Z", "empty.txt", size=0)).special == "zero"
    assert parse_item(file("M", "bad.exe", malware={"description": "Trojan"})).special_reason
    shared = {"id": "S", "name": "Shared", "remoteItem": {"id": "r", "folder": {}}}
    assert (parse_item(shared).kind, parse_item(shared).special) == ("folder", "remote")
    assert "parentReference" in DELTA_SELECT and "$top=1000" in START


# --- a first, full scan ----------------------------------------------------------------------


def test_children_before_parents_and_last_occurrence_wins(state: BackupState) -> None:
    pages = [
        [file("F1", "deep.jpg", parent="B"), file("F2", "old-name.jpg", parent="A")],
        [folder("B", "Beta", parent="A"), file("F2", "new-name.jpg", parent="A", rev="2")],
        [folder("A", "Alpha"), root(), file("F3", "top.pdf")],
    ]
    graph = ReplayGraph(chain(START, pages, "https://g/delta?token=d1"))
    result = run(graph, state)
    got = paths(state)
    assert got["F1"] == ("/Alpha/Beta/deep.jpg", "Alpha/Beta/deep.jpg", "pending")
    assert got["F2"] == ("/Alpha/new-name.jpg", "Alpha/new-name.jpg", "pending")
    assert got["F3"] == ("/top.pdf", "top.pdf", "pending")
    rec = state.get_file("F2")
    assert rec is not None and rec.quickxorhash == "qF22"
    assert result.files_total == 3 and result.files_selected == 3 and result.pages == 3
    assert result.orphans == 0 and result.full_enumeration
    assert state.get_cursor().phase == "complete"
    assert state.get_cursor().delta_link == "https://g/delta?token=d1"


def test_colliding_and_hostile_names_get_safe_unique_local_paths(state: BackupState) -> None:
    hostile = [
        "../../etc/passwd",
        "..",
        ".",
        "a/b",
        "C:\\Windows",
        "nul\x00byte",
        "CON",
        "trailing. ",
        "Photo.JPG",
        "photo.jpg",
        "Cafe\u0301.txt",
        "Caf\u00e9.txt",
        ".onedrive-backup",
        ".versions",
        "x" * 400,
    ]
    items = [root()] + [file(f"H{i:02d}", n) for i, n in enumerate(hostile)]
    items.append(folder("D", ".ONEDRIVE-BACKUP"))
    items.append(file("IN", "inside.txt", parent="D"))
    run(ReplayGraph(chain(START, [items], "https://g/d")), state)
    got = paths(state)
    local = [got[k][1] for k in got if k != "ROOT"]
    assert all(p for p in local)
    keys = {p.casefold() for p in local if p}
    assert len(keys) == len(local), "two items share a local path"
    for p in local:
        assert p is not None
        ensure_inside(state.backup_dir, p)  # raises if it escapes
        assert p.split("/")[0].casefold() not in (".onedrive-backup", ".versions")
    # Deterministic: the name sorting first keeps its name, the other gets " (2)".
    assert got["H08"][1] == "Photo.JPG" and got["H09"][1] == "photo (2).jpg"
    assert got["IN"][0] == "/.ONEDRIVE-BACKUP/inside.txt"


def test_orphans_are_counted_not_placed(state: BackupState) -> None:
    items = [root(), file("A", "a.txt"), file("O", "lost.txt", parent="NOWHERE")]
    result = run(ReplayGraph(chain(START, [items], "https://g/d")), state)
    assert result.orphans == 1
    assert [t.item_id for t in state.iter_pending_files()] == ["A"]


def test_special_items_are_counted_and_named(state: BackupState) -> None:
    items = [
        root(),
        folder("DOCS", "Documents"),
        {
            "id": "NB",
            "name": "My Notebook",
            "package": {"type": "oneNote"},
            "parentReference": {"id": "DOCS", "driveId": "D"},
        },
        file("SEC", "Section.one", parent="NB"),
        file("TOC", "Open Notebook.onetoc2", parent="NB"),
        folder("V", "Personal Vault", specialFolder={"name": "vault"}),
        file("VF", "passport.pdf", parent="V"),
        file("MAL", "virus.exe", malware={}),
        {
            "id": "SH",
            "name": "Shared album",
            "remoteItem": {"id": "x", "folder": {}},
            "parentReference": {"id": "ROOT", "driveId": "D"},
        },
        file("Z", "empty.txt", size=0),
    ]
    result = run(ReplayGraph(chain(START, [items], "https://g/d")), state)
    assert result.notebooks == ["/Documents/My Notebook"]
    assert result.vault == ["/Personal Vault"]
    assert result.malware == ["/virus.exe"]
    assert result.shared == ["/Shared album"]
    assert result.zero_byte_files == 1
    pending = {t.item_id for t in state.iter_pending_files()}
    assert pending == {"SEC", "TOC", "Z"}
    vf = state.get_file("VF")
    assert vf is not None and vf.status == "skipped" and vf.special == "vault"
    mal = state.get_file("MAL")
    assert mal is not None and mal.status == "skipped" and "malware" in (mal.last_error or "")


# --- interruption and resume -----------------------------------------------------------------


def test_interrupted_scan_resumes_from_the_last_committed_page(state: BackupState) -> None:
    pages = [[root()]] + [[file(f"F{i}", f"f{i}.jpg")] for i in range(6)]
    served = chain(START, pages, "https://g/delta?token=final")
    third = f"{START}/page3?token=secret3"
    answer = served[third]
    served[third] = ConnectionError("cable pulled")
    graph = ReplayGraph(served)
    with pytest.raises(ConnectionError):
        run(graph, state)
    assert len(graph.fetched) == 4
    assert state.get_cursor().next_link == third
    served[third] = answer
    graph2 = ReplayGraph(served)
    result = run(graph2, state)
    assert graph2.fetched[0] == third, "resume must not start over"
    assert len(graph.fetched) - 1 + len(graph2.fetched) == len(pages)
    assert result.files_total == 6 and result.pages == len(pages)


def test_progress_events_never_carry_links(state: BackupState) -> None:
    pages = [[root()], [file("A", "a.jpg")]]
    seen: list[events.Event] = []
    graph = ReplayGraph(chain(START, pages, "https://g/delta?token=TOPSECRET"))
    asyncio.run(scan(graph, state, None, seen.append))
    assert any(isinstance(e, events.ScanProgress) for e in seen)
    for e in seen:
        text = repr(e.to_dict())
        assert "token" not in text and "https://" not in text


# --- incremental changes (issue 7 groundwork) ---------------------------------------------------


def _full_then_done(state: BackupState) -> None:
    items = [
        root(),
        folder("A", "Albums"),
        folder("S", "Summer", parent="A"),
        file("S1", "s1.jpg", parent="S"),
        file("S2", "s2.jpg", parent="S"),
        folder("T", "Trash me"),
        file("T1", "t1.jpg", parent="T"),
        folder("T2", "Sub", parent="T"),
        file("T21", "t21.jpg", parent="T2"),
        file("R", "rename-me.txt"),
        file("M", "modify-me.txt"),
        file("X", "delete-me.txt"),
        file("P", "pending.txt"),
    ]
    run(ReplayGraph(chain(START, [items], "https://g/delta?token=1")), state)
    mark_all_done(state)
    state.requeue("P", "not yet")  # one file never made it to disk


def test_incremental_changes_queue_moves_and_retirements(state: BackupState) -> None:
    _full_then_done(state)
    changes = [
        file("R", "renamed.txt"),
        file("M", "modify-me.txt", rev="2", size=11),
        deleted("X"),
        folder("S", "Summer 2020", parent="ROOT"),  # folder moved and renamed
        deleted("T"),  # folder deleted; Graph may or may not list its children
        deleted("T1", parent="T"),
        file("N", "new.jpg", parent="A"),
        file("P", "pending-renamed.txt"),
    ]
    graph = ReplayGraph(chain("https://g/delta?token=1", [changes], "https://g/delta?token=2"))
    result = run(graph, state)
    assert graph.fetched == ["https://g/delta?token=1"]  # only the delta: no re-enumeration
    got = paths(state)
    assert got["R"] == ("/renamed.txt", "renamed.txt", "done")
    assert got["M"][2] == "pending"
    assert got["S1"] == ("/Summer 2020/s1.jpg", "Summer 2020/s1.jpg", "done")
    assert got["N"] == ("/Albums/new.jpg", "Albums/new.jpg", "pending")
    assert got["P"] == ("/pending-renamed.txt", "pending-renamed.txt", "pending")
    for gone in ("X", "T", "T1", "T2", "T21"):
        assert gone not in got
    assert sorted(ops(state)) == sorted(
        [
            ("move", "rename-me.txt", "renamed.txt", "renamed"),
            ("retire", "modify-me.txt", None, "replaced"),
            ("retire", "delete-me.txt", None, "deleted"),
            ("move", "Albums/Summer/s1.jpg", "Summer 2020/s1.jpg", "moved"),
            ("move", "Albums/Summer/s2.jpg", "Summer 2020/s2.jpg", "moved"),
            ("retire", "Trash me/t1.jpg", None, "deleted"),
            ("retire", "Trash me/Sub/t21.jpg", None, "deleted"),
        ]
    )
    assert result.changes.added == 1 and result.changes.modified == 1
    assert result.changes.moved == 3 and result.changes.deleted == 3  # files
    assert state.get_cursor().delta_link == "https://g/delta?token=2"
    # Applying ops is the engine's job; once applied they are gone from the queue.
    state.complete_ops(o.op_id for o in state.iter_ops())
    assert state.count_ops() == 0


def test_new_sibling_never_renames_a_file_on_disk(state: BackupState) -> None:
    run(ReplayGraph(chain(START, [[root(), file("A", "Photo.jpg")]], "https://g/d1")), state)
    mark_all_done(state)
    changes = [file("B", "PHOTO.JPG"), file("C", "photo.jpg")]
    run(ReplayGraph(chain("https://g/d1", [changes], "https://g/d2")), state)
    got = paths(state)
    assert got["A"][1] == "Photo.jpg"
    assert {got["B"][1], got["C"][1]} == {"PHOTO (2).JPG", "photo (3).jpg"}
    assert ops(state) == []


def test_no_changes_means_no_work(state: BackupState) -> None:
    _full_then_done(state)
    graph = ReplayGraph(chain("https://g/delta?token=1", [[]], "https://g/delta?token=2"))
    before = paths(state)
    result = run(graph, state)
    assert paths(state) == before and ops(state) == []
    assert result.changes.added == result.changes.moved == 0


# --- 410 resync -------------------------------------------------------------------------------


def test_resync_keeps_unchanged_done_files_and_retires_what_vanished(state: BackupState) -> None:
    _full_then_done(state)
    everything_now = [
        root(),
        folder("A", "Albums"),
        folder("S", "Summer", parent="A"),
        file("S1", "s1.jpg", parent="S"),
        file("S2", "s2.jpg", parent="S", rev="2", size=99),  # changed while we were away
        folder("T", "Trash me"),
        file("T1", "t1.jpg", parent="T"),
        folder("T2", "Sub", parent="T"),
        file("T21", "t21.jpg", parent="T2"),
        file("R", "rename-me.txt"),
        file("M", "modify-me.txt"),
        file("P", "pending.txt"),
        # X is gone and the 410 means we were never told
    ]
    served: dict[str, Any] = {
        "https://g/delta?token=1": ResyncRequired("410", location="https://g/resync?token=r0"),
        **chain(
            "https://g/resync?token=r0", [everything_now[:6], everything_now[6:]], "https://g/d9"
        ),
    }
    graph = ReplayGraph(served)
    result = run(graph, state)
    assert result.resynced
    got = paths(state)
    done = {k for k, v in got.items() if v[2] == "done"}
    assert done == {"S1", "T1", "T21", "R", "M"}
    assert got["S2"][2] == "pending" and "X" not in got
    assert sorted(ops(state)) == [
        ("retire", "Albums/Summer/s2.jpg", None, "replaced"),
        ("retire", "delete-me.txt", None, "deleted"),
    ]
    assert state.get_cursor().delta_link == "https://g/d9"


def test_resync_without_location_restarts_the_enumeration(state: BackupState) -> None:
    run(ReplayGraph(chain(START, [[root(), file("A", "a.jpg")]], "https://g/d1")), state)
    mark_all_done(state)
    served: dict[str, Any] = {
        "https://g/d1": ResyncRequired("410"),
        **chain(START, [[root(), file("A", "a.jpg")]], "https://g/d2"),
    }
    graph = ReplayGraph(served)
    run(graph, state)
    assert graph.fetched == ["https://g/d1", START]
    assert paths(state)["A"][2] == "done" and ops(state) == []


# --- selection changes ------------------------------------------------------------------------


def test_changed_selection_reevaluates_every_file(state: BackupState) -> None:
    items = [root(), file("J", "a.jpg"), file("D", "b.pdf"), file("V", "c.mov")]
    run(ReplayGraph(chain(START, [items], "https://g/d1")), state, Selection.build(["photos"]))
    assert [t.item_id for t in state.iter_pending_files()] == ["J"]
    mark_all_done(state)
    graph = ReplayGraph(chain("https://g/d1", [[]], "https://g/d2"))
    result = run(graph, state, Selection.build(["documents", "videos"]))
    assert sorted(t.item_id for t in state.iter_pending_files()) == ["D", "V"]
    assert result.deselected_on_disk == 1  # a.jpg stays on disk, reported
    # Without an explicit selection the stored one is reused.
    result = run(ReplayGraph(chain("https://g/d2", [[]], "https://g/d3")), state)
    assert result.files_selected == 2


def test_a_new_scan_gives_failed_files_another_chance(state: BackupState) -> None:
    run(ReplayGraph(chain(START, [[root(), file("A", "a.jpg")]], "https://g/d1")), state)
    state.record_attempt("A", "content mismatch")
    state.mark_failed("A", "content mismatch")
    assert state.totals().count("failed") == 1
    run(ReplayGraph(chain("https://g/d1", [[]], "https://g/d2")), state)
    (task,) = state.iter_pending_files()
    assert task.item_id == "A" and task.attempts == 0


def test_each_page_is_kept_before_the_next_is_asked_for(state: BackupState) -> None:
    """So a kill costs only the page in flight: when page n+1 is requested, the committed
    cursor already points at it (page n is applied, or kept to be applied on resume)."""
    pages = [[root()]] + [[file(f"F{i}", f"f{i}.jpg")] for i in range(5)]
    served = chain(START, pages, "https://g/delta?token=final")
    db_file = state.state_dir / STATE_FILE
    seen: list[str] = []

    class Checking(ReplayGraph):
        async def get_json(self, url: str) -> dict[str, Any]:
            if url != START:
                with sqlite3.connect(db_file) as other:
                    (committed,) = other.execute("SELECT next_link FROM cursor").fetchone()
                assert committed == url, "the next page was asked for before this one was kept"
                seen.append(url)
            return await super().get_json(url)

    run(Checking(served), state)
    assert len(seen) == len(pages) - 1


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])  # UTF-16: kept re-encoded
def test_a_kept_page_is_applied_on_resume_without_fetching_it_again(
    state: BackupState, encoding: str
) -> None:
    pages = [[root()]] + [[file(f"F{i}", f"f{i}.jpg")] for i in range(4)]
    served = chain(START, pages, "https://g/delta?token=final")
    second = f"{START}/page1?token=secret1"
    third = f"{START}/page2?token=secret2"
    # As a kill leaves it: page 0 applied, page 1 kept with the cursor past it.
    state.begin_enumeration(START, full=True)
    first = served[START]
    state.ingest_page([parse_item(v) for v in first["value"]], next_link=second, delta_link=None)
    kept = served[second]
    state.journal_page(kept, json.dumps(kept, ensure_ascii=False).encode(encoding), third)
    graph = ReplayGraph(served)
    result = run(graph, state)
    assert graph.fetched[0] == third and second not in graph.fetched
    assert result.files_total == 4 and result.pages == len(pages)
    assert state.journaled_page() is None
