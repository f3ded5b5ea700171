"""Delta enumeration into the state, then a resolve pass that places every item on disk.

Paging: each delta page's items and the next link are committed in one transaction
(invariant 2), so a killed scan continues from its last committed page. After the last page
the deltaLink is stored; later runs start from it and receive only changes. A 410 starts a
full enumeration again (from its Location header when given); items already done whose
content still matches stay done, and whatever the new enumeration does not list is gone.

Resolve: delta gives no paths and no order (a child may come before its parent), so paths are
rebuilt from parent ids once every page is in: folders in memory, files per parent in SQL.
Safe local names come from paths.py; siblings that collide on a case- and
normalisation-insensitive disk get deterministic " (n)" suffixes; names already on disk
never change because a new sibling arrived. Files on disk that moved or were renamed get a
queued move, deleted ones a queued retirement (state.LocalOp); nothing is deleted here.

A first scan does most of that placing while it pages (_EagerPlacer): a new item whose parent
is already placed is stored with its name and paths in the same insert, and the resolve pass
only places what was left and, where siblings collide, places the folder again by its own
rules, so the outcome is the same as without it (tests/test_scan_eager.py holds it to that).

Graph's JSON shapes stop here: `parse_item` turns them into models.RemoteItem.
"""

from __future__ import annotations

import asyncio
import logging
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import numpy as np

from onedrive_backup import events
from onedrive_backup.errors import BackupError, ItemError, ResyncRequired
from onedrive_backup.events import EventSink
from onedrive_backup.interfaces import GraphLike
from onedrive_backup.models import ChangeCounts, Kind, RemoteItem, ScanResult, Special
from onedrive_backup.paths import UnsafePathError, collision_key, disambiguate, safe_name
from onedrive_backup.selection import Selection
from onedrive_backup.state import (
    RESERVED_TOP_NAMES,
    BackupState,
    ChildRow,
    FolderRow,
    Placement,
    shared_key,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Only the fields we use: smaller pages, faster scans.
DELTA_SELECT = (
    "id,name,size,eTag,cTag,parentReference,file,folder,package,root,deleted,remoteItem,"
    "malware,fileSystemInfo,specialFolder"
)
# The emulator allows up to 1000; Graph documents no maximum, and larger pages mean fewer
# round trips on slow links (rclone lists 1000 at a time too).
DEFAULT_PAGE_SIZE = 1000
MAX_RESYNCS = 3  # 410s in one scan before we give up instead of looping
_FLUSH_ROWS = 2000  # placements staged at a time


def delta_start_url(page_size: int = DEFAULT_PAGE_SIZE) -> str:
    return f"/me/drive/root/delta?$select={quote(DELTA_SELECT, safe=',')}&$top={page_size}"


# --- Graph JSON → RemoteItem ----------------------------------------------------------------


def epoch_seconds(value: Any) -> float | None:
    """An ISO 8601 timestamp (Graph's, or the earlier script's) as epoch seconds."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _kind(d: Mapping[str, Any], remote: Mapping[str, Any] | None) -> Kind:
    if "root" in d:
        return "root"
    facets = d if any(k in d for k in ("package", "folder", "file")) else (remote or {})
    if "package" in facets:  # ODB notebooks carry folder and package: package wins
        return "package"
    if "folder" in facets:
        return "folder"
    return "file"


def parse_item(d: Mapping[str, Any]) -> RemoteItem:
    """One driveItem from delta (or GET item) as our own type."""
    remote = d.get("remoteItem") if isinstance(d.get("remoteItem"), Mapping) else None
    parent = d.get("parentReference") or {}
    file_facet = d.get("file") or (remote or {}).get("file") or {}
    hashes = file_facet.get("hashes") or {}
    fsi = d.get("fileSystemInfo") or (remote or {}).get("fileSystemInfo") or {}
    kind = _kind(d, remote)
    size_value = d.get("size", (remote or {}).get("size"))
    size = int(size_value) if isinstance(size_value, int | float) else 0
    special: Special | None = None
    reason: str | None = None
    if "malware" in d:
        special = "malware"
        detail = (d.get("malware") or {}).get("description")
        reason = "OneDrive flagged this file as malware" + (f": {detail}" if detail else "")
    elif remote is not None:
        special = "remote"  # scan.follow_shared follows it with --include-shared
    elif (d.get("specialFolder") or {}).get("name") == "vault":
        special = "vault"
    elif kind == "package" and (d.get("package") or {}).get("type") == "oneNote":
        special = "onenote"
    elif kind == "file" and size == 0:
        special = "zero"
    return RemoteItem(
        item_id=str(d["id"]),
        drive_id=parent.get("driveId"),
        parent_id=parent.get("id"),
        name=str(d.get("name") or (remote or {}).get("name") or ""),
        kind=kind,
        size=size,
        mtime=epoch_seconds(fsi.get("lastModifiedDateTime") or d.get("lastModifiedDateTime")),
        ctime=epoch_seconds(fsi.get("createdDateTime") or d.get("createdDateTime")),
        etag=d.get("eTag"),
        # A shortcut's own cTag says nothing about the content it points to.
        ctag=d.get("cTag") if remote is None else None,
        quickxorhash=hashes.get("quickXorHash"),
        sha256=hashes.get("sha256Hash"),
        deleted="deleted" in d,
        special=special,
        special_reason=reason,
        remote_drive_id=((remote or {}).get("parentReference") or {}).get("driveId"),
        remote_id=str(remote["id"]) if remote is not None and remote.get("id") else None,
    )


# --- the scan ---------------------------------------------------------------------------------


async def scan(
    graph: GraphLike,
    state: BackupState,
    selection: Selection | None = None,
    emit: EventSink = events.discard,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> ScanResult:
    """Bring the inventory up to date with the drive; see the module docstring."""
    selection = _settle_selection(state, selection)
    # Each run gives failed files another chance: what failed may have been fixed since.
    retried = state.requeue_failed()
    if retried:
        log.info("%d previously failed files will be tried again", retried)
    start_url = delta_start_url(page_size)
    cursor = state.get_cursor()
    eager: _EagerPlacer | None = None
    if cursor.phase == "new":  # a first scan: place what can be placed while paging
        state.begin_enumeration(start_url, full=True)
        state.set_meta("eager", True)
        eager = _EagerPlacer(selection)
    elif cursor.phase == "complete" and not cursor.delta_link:
        state.begin_enumeration(start_url, full=True)
    elif cursor.phase == "complete" and cursor.delta_link:
        state.begin_enumeration(cursor.delta_link, full=False)
    elif state.get_meta("eager"):  # a first scan resumed after a kill
        eager = await asyncio.to_thread(_EagerPlacer.from_state, state, selection)
    resyncs = 0
    cursor = state.get_cursor()
    # Pipelined: while one page is applied (in a worker thread: SQLite lets go of the GIL),
    # the next is already being fetched. Before the next is asked for, the page is kept with
    # the cursor moved past it (BackupState.journal_page), so a kill costs only the page in
    # flight; a page kept before a kill is applied first, without being fetched again.
    kept = state.journaled_page() if cursor.phase == "paging" else None
    if kept is not None and cursor.next_link:
        await _in_thread(_apply_page, state, kept, cursor.next_link, None, eager)
        cursor = state.get_cursor()
    fetching: asyncio.Task[tuple[dict[str, Any], bytes]] | None = None
    try:
        while cursor.phase == "paging" and cursor.next_link:
            if fetching is None:
                fetching = asyncio.ensure_future(graph.get_page(cursor.next_link))
            try:
                page, body = await fetching
            except ResyncRequired as exc:
                fetching = None
                resyncs += 1
                if resyncs > MAX_RESYNCS:
                    raise BackupError(
                        "OneDrive keeps asking for a resync (HTTP 410); the scan cannot continue.",
                        hint="Try again later; the backup state is saved.",
                    ) from exc
                log.warning("delta token expired (410): enumerating the drive again")
                emit(events.Message(text="OneDrive asked for a full resync; unchanged files stay."))
                state.begin_enumeration(exc.location or start_url, full=True, resync=True)
                cursor = state.get_cursor()
                continue
            next_link = page.get("@odata.nextLink")
            delta_link = page.get("@odata.deltaLink")
            if not next_link and not delta_link:
                raise BackupError("OneDrive ended a change listing without a next or delta link.")
            fetching = None
            if next_link:
                await _in_thread(state.journal_page, page, body, next_link)
                fetching = asyncio.ensure_future(graph.get_page(next_link))
            stats = await _in_thread(_apply_page, state, page, next_link, delta_link, eager)
            emit(
                events.ScanProgress(
                    items_seen=stats.get("items_seen", 0),
                    pages=stats.get("pages", 0),
                    files_selected=stats.get("files_seen", 0),
                    bytes_selected=stats.get("bytes_seen", 0),
                )
            )
            cursor = state.get_cursor()
    finally:
        if fetching is not None and not fetching.done():
            fetching.cancel()
            await asyncio.gather(fetching, return_exceptions=True)
    if cursor.phase == "resolving":
        if selection.include_shared:
            await follow_shared(graph, state, emit, page_size=page_size)
        elif state.get_meta("shared_anchors"):
            n = state.unfollow_shared()
            log.info("--include-shared is off: %d shortcuts are no longer followed", n)
        resolve(state, selection, sweep=cursor.full, eager=eager)
        state.finish_scan()
    result = _result(state, resynced=resyncs > 0 or cursor.resynced)
    emit(
        events.ScanProgress(
            items_seen=result.items_seen,
            pages=result.pages,
            files_selected=result.files_selected,
            bytes_selected=result.bytes_selected,
        )
    )
    return result


async def _in_thread(fn: Callable[..., _T], *args: Any) -> _T:
    """fn(*args) in a worker thread; if cancelled, wait for it to end (a transaction must
    not be cut off by the state closing) before passing the cancellation on."""
    running = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.gather(running, return_exceptions=True)
        raise


def _apply_page(
    state: BackupState,
    page: Mapping[str, Any],
    next_link: str | None,
    delta_link: str | None,
    eager: _EagerPlacer | None,
) -> dict[str, int]:
    items = [parse_item(v) for v in page.get("value") or ()]
    return state.ingest_page(items, next_link=next_link, delta_link=delta_link, placer=eager)


# --- items shared with the user: followed into their owners' drives -------------------------


async def follow_shared(
    graph: GraphLike,
    state: BackupState,
    emit: EventSink = events.discard,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> None:
    """Bring what our shortcuts into other drives point to ("Add to My files") up to date.

    Delta on our drive reports the shortcut, never what happens inside the shared folder, and
    delta below the root is Personal-only; so each run lists every shared folder again with
    `children` (paged, recursively) and diffs the listing against the state: new, changed and
    gone items are handled as the delta's changes are. Items are stored under
    shared_key(shortcut, id) with the owner's drive id, below the shortcut's own row, which
    itself takes the shared item's place (a shared file is downloaded through it).
    A shortcut whose target cannot be reached (403/404) stays listed as shared, not followed.
    """
    anchors: set[str] = set()
    files: dict[str, str] = {}
    before = state.shared_file_ids()
    for row in state.shortcut_rows():
        try:
            followed = await _follow_one(graph, state, row, page_size)
        except ItemError as exc:
            log.warning("a shared item cannot be reached; it is skipped: %s", exc)
            emit(events.Message(text=f"Shared item {row.remote_path or row.name} is skipped."))
            if row.special != "remote":  # followed before: keep what we know of it
                anchors.add(row.item_id)
                if row.item_id in before:
                    files[row.item_id] = before[row.item_id]
            continue
        if followed is not None:
            anchors.add(row.item_id)
            if followed.kind == "file":
                files[row.item_id] = followed.remote_id or row.item_id
    state.set_shared(anchors, files)


async def _follow_one(
    graph: GraphLike, state: BackupState, row: FolderRow, page_size: int
) -> RemoteItem | None:
    """Follow one shortcut; returns its target (with remote_id set) or None if it is none."""
    me = await graph.get_json(
        f"/me/drive/items/{quote(row.item_id, safe='')}?$select=id,remoteItem"
    )
    link = parse_item(me)
    if link.remote_drive_id is None or link.remote_id is None:
        return None
    drive_id, target_id = link.remote_drive_id, link.remote_id
    target = parse_item(await graph.get_json(_item_url(drive_id, target_id)))
    special = target.special if target.special in ("zero", "malware", "onenote") else "shared"
    anchor = replace(
        target,
        item_id=row.item_id,
        drive_id=drive_id,
        parent_id=row.parent_id,
        name=row.name,
        kind="folder" if target.kind == "root" else target.kind,
        special=special,
        remote_id=target_id,
    )
    if anchor.kind == "file":
        state.ingest_shared([], anchor=anchor)
        return anchor
    seen: set[str] = set()
    folders = deque([(target_id, row.item_id)])
    first = True
    while folders:
        folder_id, parent_key = folders.popleft()
        url: str | None = _item_url(drive_id, folder_id, "/children") + f"&$top={page_size}"
        while url:
            try:
                page = await graph.get_json(url)
            except ItemError:
                if first:
                    raise
                break  # a subfolder deleted while we list: its items are gone
            items = []
            for value in page.get("value") or ():
                child = parse_item(value)
                key = shared_key(row.item_id, child.item_id)
                items.append(replace(child, item_id=key, drive_id=drive_id, parent_id=parent_key))
                seen.add(key)
                if child.kind in ("folder", "package") and child.special != "remote":
                    folders.append((child.item_id, key))
            state.ingest_shared(items, anchor=anchor if first else None)
            first = False
            next_link = page.get("@odata.nextLink")
            url = next_link if isinstance(next_link, str) else None
    gone = state.mark_shared_gone(row.item_id, seen)
    if gone:
        log.info("%d items are gone from the shared folder %s", gone, row.name)
    return anchor


def _item_url(drive_id: str, item_id: str, suffix: str = "") -> str:
    return (
        f"/drives/{quote(drive_id, safe='')}/items/{quote(item_id, safe='')}{suffix}"
        f"?$select={quote(DELTA_SELECT, safe=',')}"
    )


def _settle_selection(state: BackupState, selection: Selection | None) -> Selection:
    """The selection to apply; a different one than last time re-evaluates every file."""
    stored = state.get_meta("scan_selection")
    if selection is None:
        return Selection.from_json(stored) if stored is not None else Selection.all()
    if stored != selection.to_json():
        state.set_meta_many({"scan_selection": selection.to_json(), "reselect": stored is not None})
    return selection


def _result(state: BackupState, *, resynced: bool) -> ScanResult:
    cursor = state.get_cursor()
    stats = cursor.stats
    totals = state.totals()
    named: dict[str, list[str]] = {"onenote": [], "vault": [], "malware": [], "remote": []}
    for special, path, _reason in state.iter_special():
        named[special].append(path)
    return ScanResult(
        pages=stats.get("pages", 0),
        items_seen=stats.get("items_seen", 0),
        full_enumeration=cursor.full,
        resynced=resynced,
        files_total=state.count_files(),
        files_selected=totals.files,
        bytes_selected=totals.total_bytes,
        changes=ChangeCounts(
            added=stats.get("added", 0),
            modified=stats.get("modified", 0),
            deleted=stats.get("deleted", 0),
            moved=stats.get("moved", 0),
        ),
        ops_queued=state.count_ops(),
        deselected_on_disk=totals.deselected_on_disk,
        zero_byte_files=totals.special.get("zero", 0),
        orphans=state.count_unplaced(),
        notebooks=named["onenote"],
        vault=named["vault"],
        malware=named["malware"],
        shared=named["remote"],
    )


# --- resolve: parent ids → paths -------------------------------------------------------------


@dataclass(slots=True)
class _Node:
    """A folder's place, as stored or as just computed."""

    remote_path: str
    local_path: str
    in_vault: bool
    dirty: bool


def resolve(
    state: BackupState,
    selection: Selection,
    *,
    sweep: bool,
    eager: _EagerPlacer | None = None,
) -> None:
    """Remove deleted items, then place every new, renamed or moved item (see module doc).

    `eager`: what a first scan placed at ingest; where that placement may differ from this
    pass's, the folder's children are placed again here (see _EagerPlacer).
    """
    if sweep:
        state.mark_unseen_deleted(keep_shared=not selection.include_shared)
    if not state.needs_resolve():
        if state.get_meta("reselect"):
            state.reevaluate_selection(selection.matches, include_shared=selection.include_shared)
        return
    folders = {f.item_id: f for f in state.load_folders()}
    kids: dict[str, list[str]] = {}
    for f in folders.values():
        if f.parent_id is not None:
            kids.setdefault(f.parent_id, []).append(f.item_id)
    _remove_deleted(state, folders, kids)
    dirty_parents = state.dirty_parents()
    settled: set[str] = set()
    if eager is not None:
        again = eager.unsettled_parents(state.dirty_children())
        state.mark_children_dirty(sorted(again))
        dirty_parents |= again
        settled = set(eager.parent_index) - again
    state.begin_placements()
    _Placer(state, selection, folders, kids, dirty_parents, settled).run()
    state.commit_placements()
    if state.get_meta("reselect"):
        state.reevaluate_selection(selection.matches, include_shared=selection.include_shared)


def _remove_deleted(
    state: BackupState, folders: dict[str, FolderRow], kids: dict[str, list[str]]
) -> None:
    gone: set[str] = set()
    todo = [f.item_id for f in folders.values() if f.deleted]
    while todo:
        folder_id = todo.pop()
        if folder_id in gone:
            continue
        gone.add(folder_id)
        todo.extend(kids.get(folder_id, ()))
    files = state.deleted_file_ids()
    if gone or files:
        state.remove_items([*files, *gone], files_under=sorted(gone))
    for folder_id in gone:
        folders.pop(folder_id, None)


class _Placer:
    """Walks the folder tree from the root; places the children of every folder that changed."""

    def __init__(
        self,
        state: BackupState,
        selection: Selection,
        folders: dict[str, FolderRow],
        kids: dict[str, list[str]],
        dirty_parents: set[str],
        settled: set[str],
    ) -> None:
        """`settled`: folders whose dirty children collide with no sibling (known from
        _EagerPlacer.unsettled_parents): their clean children need not be read."""
        self.state = state
        self.settled = settled
        self.selection = selection
        self.folders = folders
        self.kids = kids
        self.dirty_parents = dirty_parents
        self.nodes: dict[str, _Node] = {}
        self.batch: list[Placement] = []
        self.placed_parents: list[str] = []

    def run(self) -> None:
        roots = [f for f in self.folders.values() if f.kind == "root"]
        if not roots:
            return
        root = roots[0]
        root_dirty = root.dirty or root.local_path != ""
        self.nodes[root.item_id] = _Node("/", "", False, root_dirty)
        if root_dirty:
            self.batch.append(Placement(root.item_id, "", "", "/", False, None, keep_dirty=True))
        queue = deque([root.item_id])
        while queue:
            folder_id = queue.popleft()
            node = self._node(folder_id)
            if node is None:
                continue
            if node.dirty or folder_id in self.dirty_parents:
                self._place_children(folder_id, node, is_root=folder_id == root.item_id)
            queue.extend(k for k in self.kids.get(folder_id, ()) if k in self.folders)
        self._flush()

    def _node(self, folder_id: str) -> _Node | None:
        node = self.nodes.get(folder_id)
        if node is None:  # never placed in this pass: take what is stored
            f = self.folders[folder_id]
            if f.local_path is None or f.remote_path is None:
                return None  # unplaced and unchanged under an unchanged parent: not reached
            node = _Node(f.remote_path, f.local_path, f.special == "vault", f.dirty)
            self.nodes[folder_id] = node
        return node

    def _place_children(self, folder_id: str, node: _Node, *, is_root: bool) -> None:
        # A clean folder places only its dirty children, against its clean children's names;
        # in a settled folder none of those collide, so they need not be read.
        dirty_only = not node.dirty and folder_id in self.settled
        children = self.state.children(folder_id, dirty_only=dirty_only)
        names = self._assign_names(children, node.dirty, is_root)
        for child in children:
            if not (node.dirty or child.dirty):
                continue
            local_name = names.get(child.item_id) or child.local_name
            if local_name is None:
                continue
            remote_path, local_path = _child_paths(
                node.remote_path, node.local_path, child.name, local_name
            )
            in_vault = node.in_vault or child.special == "vault"
            special = "vault" if in_vault else child.special
            keep_dirty = False
            if child.kind != "file":
                keep_dirty = (
                    child.dirty
                    or local_path != child.local_path
                    or remote_path != child.remote_path
                    or in_vault != (child.special == "vault")
                )
                self.nodes[child.item_id] = _Node(remote_path, local_path, in_vault, keep_dirty)
            selected = (
                child.kind == "file"
                and (self.selection.include_shared or ":" not in child.item_id)
                and self.selection.matches(remote_path)
            )
            self.batch.append(
                Placement(
                    child.item_id,
                    local_name,
                    local_path,
                    remote_path,
                    selected,
                    special,
                    keep_dirty=keep_dirty,
                )
            )
        self.placed_parents.append(folder_id)
        if len(self.batch) >= _FLUSH_ROWS:
            self._flush()

    def _assign_names(
        self, children: list[ChildRow], parent_dirty: bool, is_root: bool
    ) -> dict[str, str]:
        """Local names for the dirty children; names on disk are kept as they are."""
        taken = {collision_key(c.local_name) for c in children if not c.dirty and c.local_name}
        if is_root:
            taken.update(collision_key(n) for n in RESERVED_TOP_NAMES)
        assigned: dict[str, str] = {}
        for child in sorted((c for c in children if c.dirty), key=lambda c: (c.name, c.item_id)):
            candidate = safe_name(child.name)
            n = 1
            while collision_key(candidate) in taken:
                n += 1
                candidate = disambiguate(child.name, n)
            try:
                _check_component(candidate)
            except UnsafePathError:
                log.error("refusing unsafe local name for item %s", child.item_id)
                continue
            taken.add(collision_key(candidate))
            assigned[child.item_id] = candidate
        return assigned

    def _flush(self) -> None:
        if self.batch or self.placed_parents:
            self.state.stage_placements(self.batch, placed_parents=self.placed_parents)
        self.batch = []
        self.placed_parents = []


class _EagerPlacer:
    """Places a first scan's new items while their pages are ingested.

    Delta lists most parents before their children, so during a first scan most items can be
    stored with their final name and paths at once, in the same insert, instead of every row
    being written a second time by the resolve pass (most of a first scan's cost after the
    paging itself). An item is placed at ingest when its parent was placed at ingest (or is
    the root), it is a plain file or folder (no special), and its safe name is a valid
    component that is not reserved at the top. It gets exactly what the resolve pass would give
    it if it has no colliding sibling: so the resolve pass places all the children of a folder
    again, by its own rules, when two children placed at ingest collide (`keys`) or when a
    child was not placed at ingest (arrived before its parent, listed twice, special...).
    A folder listed again or deleted is forgotten: nothing more is placed under it (its
    children already placed are placed again by the resolve pass if it moved or was renamed,
    as for any dirty folder).

    Only a first scan (nothing ever resolved) uses it: the state marks that with meta "eager",
    and after a kill the placer is rebuilt from the rows placed so far (`from_state`).
    """

    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self.folders: dict[str, tuple[str, str]] = {}  # id -> (remote path, local path)
        self.root_id: str | None = None
        self.parent_ids: list[str] = []
        self.parent_index: dict[str, int] = {}
        self.keys = array("q")  # hash of (parent, collision key) of each item placed here
        self.parents = array("q")  # ... and the index of its parent in parent_ids
        self.reserved = {collision_key(n) for n in RESERVED_TOP_NAMES}

    @classmethod
    def from_state(cls, state: BackupState, selection: Selection) -> _EagerPlacer:
        placer = cls(selection)
        root = state.root_id()
        if root is not None:
            placer.root_id = root
            placer.folders[root] = ("/", "")
        for item_id, parent_id, kind, local_name, local_path, remote_path in state.placed_rows():
            placer._record(parent_id, collision_key(local_name))
            if kind == "folder":
                placer.folders[item_id] = (remote_path, local_path)
        return placer

    def place(self, item: RemoteItem) -> tuple[str, str, str, int] | None:
        if item.kind == "root":
            if self.root_id is None:
                self.root_id = item.item_id
                self.folders[item.item_id] = ("/", "")
            return None
        parent = self.folders.get(item.parent_id or "")
        if parent is None or item.special not in (None, "zero"):
            return None
        if item.kind != "file" and item.kind != "folder":
            return None
        local_name = safe_name(item.name)
        try:
            _check_component(local_name)
        except UnsafePathError:
            return None  # the resolve pass refuses it, with a log line
        key = collision_key(local_name)
        parent_remote, parent_local = parent
        if parent_local == "" and any(key.startswith(r) for r in self.reserved):
            return None  # a reserved name's " (n)" may take it: left to the resolve pass
        remote_path, local_path = _child_paths(parent_remote, parent_local, item.name, local_name)
        self._record(item.parent_id or "", key)
        if item.kind == "folder":
            self.folders[item.item_id] = (remote_path, local_path)
            return local_name, local_path, remote_path, 0
        return local_name, local_path, remote_path, int(self.selection.matches(remote_path))

    def forget(self, item_id: str) -> None:
        self.folders.pop(item_id, None)

    def _record(self, parent_id: str, key: str) -> None:
        index = self.parent_index.get(parent_id)
        if index is None:
            index = self.parent_index[parent_id] = len(self.parent_ids)
            self.parent_ids.append(parent_id)
        self.keys.append(hash((parent_id, key)))
        self.parents.append(index)

    def unsettled_parents(self, dirty_children: Iterable[tuple[str, str]]) -> set[str]:
        """Folders whose children the resolve pass must place again, by its own rules, for
        its result to be what it would have been without this placer: those where two
        children collide (or their hashes do), among the children placed here and the
        `dirty_children` ((parent id, name) of every child left to the resolve pass). Where
        nothing collides, every child gets its plain safe name either way."""
        again: set[str] = set()
        extra: dict[int, set[str]] = {}
        for parent_id, name in dirty_children:
            if parent_id in self.parent_index:
                key = hash((parent_id, collision_key(safe_name(name))))
                if key in extra:  # (or a hash collision: every folder concerned)
                    again.update(extra[key])
                    again.add(parent_id)
                extra.setdefault(key, set()).add(parent_id)
        if len(self.keys) > 1 or extra:
            keys = np.frombuffer(self.keys, dtype=np.int64)
            order = np.argsort(keys, kind="stable")
            ordered = keys[order]
            same = ordered[1:] == ordered[:-1]
            if same.any():
                parents = np.frombuffer(self.parents, dtype=np.int64)
                hits = np.concatenate([order[1:][same], order[:-1][same]])
                again.update(self.parent_ids[int(i)] for i in np.unique(parents[hits]))
            if extra and len(ordered):
                wanted = np.fromiter(extra, dtype=np.int64, count=len(extra))
                at = np.minimum(np.searchsorted(ordered, wanted), len(ordered) - 1)
                for key in wanted[ordered[at] == wanted]:
                    again.update(extra[int(key)])
        return again


def _child_paths(
    parent_remote: str, parent_local: str, name: str, local_name: str
) -> tuple[str, str]:
    """(remote path, local path) of a child, from its parent's ("/" and "" at the root)."""
    remote_path = ("" if parent_remote == "/" else parent_remote) + "/" + name
    return remote_path, f"{parent_local}/{local_name}" if parent_local else local_name


def _check_component(name: str) -> None:
    """Defence in depth for invariant 6: one plain component, whatever paths.py returned."""
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise UnsafePathError(f"not a single safe path component: {name!r}")
