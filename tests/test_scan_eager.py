"""A first scan places most items while paging (scan._EagerPlacer); the result must be exactly
what the resolve pass alone gives, whatever the order, names, collisions, repeats, deletions,
specials and interruptions. Pure logic: recorded pages (test_scan.ReplayGraph), a real state."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onedrive_backup.scan import scan
from onedrive_backup.selection import Selection
from onedrive_backup.state import BackupState
from test_scan import START, ReplayGraph, chain, deleted, file, folder, root

# Names that collide (case, Unicode normalisation, what safe_name makes of them), names
# reserved at the top, names safe_name rewrites or refuses.
NAMES = [
    "a",
    "A",
    "a (2)",
    "b.txt",
    "B.TXT",
    "b (2).txt",
    "Caf\u00e9.jpg",
    "Cafe\u0301.jpg",
    "con",
    "CON.txt",
    ".onedrive-backup",
    ".versions",
    "x:y.pdf",
    "x_y.pdf",
    "trail. ",
    "trail",
    "..",
    "song.mp3",
]

SNAPSHOT = (
    "SELECT item_id, parent_id, local_name, local_path, remote_path, selected, status, "
    "special, last_error, dirty, deleted FROM items ORDER BY item_id"
)


@st.composite
def listings(draw: st.DrawFn) -> tuple[list[list[dict[str, Any]]], int | None, bool]:
    """(pages, index of a page whose first fetch fails or None, select documents only)."""
    folders: list[str] = ["ROOT"]
    created: list[dict[str, Any]] = [root()]
    for i in range(draw(st.integers(0, 7))):
        parent = draw(st.sampled_from(folders))
        kind = draw(st.sampled_from(["plain"] * 6 + ["vault", "notebook"]))
        extra: dict[str, Any] = {}
        if kind == "vault":
            extra["specialFolder"] = {"name": "vault"}
        if kind == "notebook":
            extra["package"] = {"type": "oneNote"}
        created.append(folder(f"D{i}", draw(st.sampled_from(NAMES)), parent=parent, **extra))
        folders.append(f"D{i}")
    for i in range(draw(st.integers(0, 20))):
        parent = draw(st.sampled_from(folders))
        size = draw(st.sampled_from([10, 10, 10, 0]))
        extra = {"malware": {}} if draw(st.integers(0, 9)) == 0 else {}
        created.append(file(f"F{i}", draw(st.sampled_from(NAMES)), parent, size, **extra))
    # Delta's order: mostly parents first, with children moved ahead of their parents.
    order = list(created)
    for _ in range(draw(st.integers(0, 6))):
        k = draw(st.integers(0, len(order) - 1))
        j = draw(st.integers(0, k))
        order.insert(j, order.pop(k))
    # Later occurrences: renames, moves (files anywhere, folders to the top), deletions.
    for _ in range(draw(st.integers(0, 4))):
        item = dict(draw(st.sampled_from(created[1:]))) if len(created) > 1 else None
        if item is None:
            break
        what = draw(st.sampled_from(["rename", "move", "delete"]))
        if what == "rename":
            item["name"] = draw(st.sampled_from(NAMES))
        elif what == "move":
            target = draw(st.sampled_from(folders)) if "size" in item else "ROOT"
            item["parentReference"] = {"id": target, "driveId": "D"}
        else:
            item = deleted(item["id"], item["parentReference"]["id"])
        order.insert(draw(st.integers(0, len(order))), item)
    size = draw(st.integers(1, 6))
    pages = [order[k : k + size] for k in range(0, len(order), size)]
    fail_at = draw(st.none() | st.integers(1, max(1, len(pages) - 1)))
    if fail_at is not None and fail_at >= len(pages):
        fail_at = None
    return pages, fail_at, draw(st.booleans())


def _scan_into(
    folder_: Path,
    pages: list[list[dict[str, Any]]],
    *,
    eager: bool,
    fail_at: int | None,
    documents: bool,
) -> list[tuple[Any, ...]]:
    served = chain(START, pages, "https://g/delta?token=end")
    selection = Selection.build(["documents"]) if documents else Selection.all()
    with BackupState.create(folder_) as state:
        if not eager:  # an enumeration already begun is paged without eager placement
            state.begin_enumeration(START, full=True)
        if fail_at is not None:
            url = f"{START}/page{fail_at}?token=secret{fail_at}"
            answer = served[url]
            served[url] = ConnectionError("cable pulled")
            with pytest.raises(ConnectionError):
                asyncio.run(scan(ReplayGraph(served), state, selection))
            served[url] = answer
        asyncio.run(scan(ReplayGraph(served), state, selection))
        assert state.get_cursor().phase == "complete"
        assert state.get_meta("eager") is None
        return list(state._db.execute(SNAPSHOT))


def scan_both(tmp_path: Path, pages: list[list[dict[str, Any]]]) -> dict[bool, list[Any]]:
    """The same listing scanned into two new backups: {eager: rows} for False and True."""
    runs = {}
    for eager in (False, True):
        (tmp_path / str(eager)).mkdir()
        runs[eager] = _scan_into(
            tmp_path / str(eager), pages, eager=eager, fail_at=None, documents=False
        )
    return runs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(listings())
def test_eager_placement_gives_exactly_what_the_resolve_pass_gives(
    listing: tuple[list[list[dict[str, Any]]], int | None, bool],
) -> None:
    pages, fail_at, documents = listing
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp)
        (top / "plain").mkdir()
        (top / "eager").mkdir()
        (top / "resumed").mkdir()
        plain = _scan_into(top / "plain", pages, eager=False, fail_at=None, documents=documents)
        eager = _scan_into(top / "eager", pages, eager=True, fail_at=None, documents=documents)
        assert eager == plain
        if fail_at is not None:
            resumed = _scan_into(
                top / "resumed", pages, eager=True, fail_at=fail_at, documents=documents
            )
            assert resumed == plain


def test_a_first_scan_places_items_while_paging(tmp_path: Path) -> None:
    """Before the last page arrives (so before any resolve pass), what could be placed is."""
    pages = [
        [root(), folder("P", "Photos"), file("A", "a.jpg", "P")],
        [file("E", "early.txt", "Q"), folder("Q", "Docs"), file("B", "b.txt", "Q")],
        [file("C", "c.txt")],
    ]
    served = chain(START, pages, "https://g/delta?token=end")
    last = f"{START}/page2?token=secret2"
    answer = served[last]
    served[last] = ConnectionError("cable pulled")
    with BackupState.create(tmp_path) as state:
        with pytest.raises(ConnectionError):
            asyncio.run(scan(ReplayGraph(served), state, Selection.all()))
        rows = {
            r[0]: r[1:]
            for r in state._db.execute("SELECT item_id, local_path, selected, dirty FROM items")
        }
        assert rows["A"] == ("Photos/a.jpg", 1, 0)
        assert rows["B"] == ("Docs/b.txt", 1, 0)
        assert rows["E"] == (None, 0, 1), "a child listed before its parent waits for resolve"
        served[last] = answer
        asyncio.run(scan(ReplayGraph(served), state, Selection.all()))
        rows = {r[0]: r[1:] for r in state._db.execute("SELECT item_id, local_path FROM items")}
        assert rows["E"] == ("Docs/early.txt",) and rows["C"] == ("c.txt",)
        assert state.get_meta("eager") is None


def test_incremental_scans_leave_placing_to_the_resolve_pass(tmp_path: Path) -> None:
    first = chain(START, [[root(), folder("P", "Photos")]], "https://g/delta?token=d1")
    later = chain("https://g/delta?token=d1", [[file("N", "new.jpg", "P")], []], "https://g/d2")
    second = "https://g/delta?token=d1/page1?token=secret1"
    answer = later[second]
    later[second] = ConnectionError("cable pulled")
    with BackupState.create(tmp_path) as state:
        asyncio.run(scan(ReplayGraph(first), state, Selection.all()))
        assert state.get_meta("eager") is None
        with pytest.raises(ConnectionError):
            asyncio.run(scan(ReplayGraph(later), state, Selection.all()))
        row = state._db.execute("SELECT local_path, dirty FROM items WHERE item_id = 'N'")
        assert row.fetchone() == (None, 1)
        later[second] = answer
        asyncio.run(scan(ReplayGraph(later), state, Selection.all()))
        row = state._db.execute("SELECT local_path, dirty FROM items WHERE item_id = 'N'")
        assert row.fetchone() == ("Photos/new.jpg", 0)


def test_children_listed_before_their_parent_that_collide_with_each_other(
    tmp_path: Path,
) -> None:
    """Two early children collide; the batch rule gives the second "a (2)", which a sibling
    placed at ingest already holds: the folder must be placed again as a whole."""
    pages = [
        [
            root(),
            file("X1", "A", "Q"),
            file("X2", "a", "Q"),
            folder("Q", "Q"),
            file("X3", "a (2)", "Q"),
        ]
    ]
    runs = scan_both(tmp_path, pages)
    assert runs[True] == runs[False]
    names = {r[0]: r[2] for r in runs[True]}
    assert (names["X1"], names["X2"], names["X3"]) == ("A", "a (2)", "a (2) (2)")
