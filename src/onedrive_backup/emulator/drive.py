"""The drive model: a tree of compact items, its change log for delta, and its content.

Every method takes `lock`, so tests on the main thread and the server's event loop can use the
drive at the same time. Deleted items stay in `items` as tombstones so delta can report them.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import threading
import time
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from onedrive_backup.emulator.content import ContentSource, explicit_chunks, mix64, quickxorhash_of

FOLDER, PACKAGE, MALWARE, DELETED = 1, 2, 4, 8
REMOTE = 16  # a shortcut to an item in another drive ("Add to My files"); see Drive.shortcuts
PERSONAL_ID_BASE = 101  # a personal drive's root is "<DRIVEID>!101"


class Item:
    """One drive item; `__slots__` and ints keep a million of them in a few hundred MB."""

    __slots__ = (
        "num",
        "name",
        "parent",
        "flags",
        "size",
        "ckey",
        "cver",
        "mver",
        "ctime",
        "mtime",
        "smtime",
        "seq",
        "qxh",
        "children",
    )

    num: int
    name: str
    parent: Item | None
    flags: int
    size: int  # files: content length; folders: total of the subtree (as Graph reports)
    ckey: int  # content key into the pool; -1 when tests gave explicit bytes
    cver: int  # content version (cTag)
    mver: int  # metadata version (eTag)
    ctime: int
    mtime: int  # fileSystemInfo.lastModifiedDateTime, whole seconds
    smtime: int  # server lastModifiedDateTime
    seq: int  # change sequence number of the latest change (0: as generated)
    qxh: str | None  # computed lazily, per content version
    children: list[Item] | None

    @property
    def is_folder(self) -> bool:
        return bool(self.flags & (FOLDER | PACKAGE))

    @property
    def deleted(self) -> bool:
        return bool(self.flags & DELETED)


@dataclass(frozen=True)
class FileView:
    """A snapshot of an item for test oracles (safe to keep after the drive changes)."""

    id: str
    path: str
    name: str
    size: int
    quickxorhash: str | None
    mtime: datetime
    etag: str
    ctag: str
    parent_id: str | None
    is_folder: bool
    package: bool
    malware: bool


def iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Drive:
    """A whole drive: items by number, paths, changes, content and hashes."""

    def __init__(
        self, *, drive_id: str, drive_type: str, seed: int, created: int, quota_total: int
    ) -> None:
        self.lock = threading.RLock()
        self.id = drive_id
        self.drive_type = drive_type
        self.seed = seed
        self.quota_total = quota_total
        self.items: list[Item] = []
        self.seq = 0
        self.epoch = 0  # bumped by invalidate_delta_tokens(): older tokens get 410
        # Items whose metadata carries only a sha256Hash (no quickXorHash), as some old
        # OneDrive Personal items did: item number -> hex digest of the current content.
        self.sha256_only: dict[int, str] = {}
        self._log_nums = array("q")
        self._log_seqs = array("q")
        self._explicit: dict[int, bytes] = {}
        self.content = ContentSource(seed)
        self._id_prefix = mix64(seed, 12345).to_bytes(8, "big") + b"ODBE"
        # Sharing: this drive's shortcuts (item num -> target in another drive), the other
        # drives they point into, and which of this drive's items are shared with the user.
        self.shortcuts: dict[int, tuple[Drive, Item]] = {}
        self.others: list[Drive] = []
        self.shared: set[int] = set()
        self.owner_name = "Emulated User"
        self.root = self._new(None, "root", FOLDER, created)

    # Identity ---------------------------------------------------------------------------

    def item_id(self, item: Item) -> str:
        if self.drive_type == "personal":
            return f"{self.id}!{item.num + PERSONAL_ID_BASE}"
        raw = self._id_prefix + item.num.to_bytes(8, "big")
        return "01" + base64.b32encode(raw).decode()

    def by_id(self, item_id: str) -> Item | None:
        num = self._num_of(item_id)
        if num is None or not 0 <= num < len(self.items):
            return None
        item = self.items[num]
        return None if item.deleted else item

    def _num_of(self, item_id: str) -> int | None:
        try:
            if self.drive_type == "personal":
                drive, _, n = item_id.partition("!")
                ok = drive.upper() == self.id.upper()
                return int(n) - PERSONAL_ID_BASE if ok else None
            if not item_id.startswith("01") or len(item_id) != 34:
                return None
            raw = base64.b32decode(item_id[2:])
            return int.from_bytes(raw[12:], "big") if raw[:12] == self._id_prefix else None
        except ValueError:
            return None

    # Sharing ----------------------------------------------------------------------------

    def share(self, item: Item) -> None:
        """Share `item` (and, for a folder, everything under it) with the signed-in user."""
        with self.lock:
            self.shared.add(item.num)

    def is_shared(self, item: Item) -> bool:
        """Can the signed-in user (not this drive's owner) read `item`?"""
        with self.lock:
            node: Item | None = item
            while node is not None:
                if node.num in self.shared:
                    return True
                node = node.parent
            return False

    def add_shortcut(self, parent: Item, name: str, target_drive: Drive, target: Item) -> Item:
        """A shortcut in this drive to `target` in another drive, as "Add to My files" makes."""
        with self.lock:
            flags = REMOTE | (FOLDER if target.is_folder else 0)
            item = self._new(parent, name, flags, int(time.time()))
            self.shortcuts[item.num] = (target_drive, target)
            if target_drive not in self.others:
                self.others.append(target_drive)
            return item

    # Paths ------------------------------------------------------------------------------

    def path_of(self, item: Item) -> str:
        names: list[str] = []
        node: Item | None = item
        while node is not None and node.parent is not None:
            names.append(node.name)
            node = node.parent
        return "/" + "/".join(reversed(names))

    def find(self, path: str, base: Item | None = None) -> Item | None:
        """Resolve a remote path (case-insensitive, exact spelling preferred)."""
        with self.lock:
            node = base or self.root
            for part in (p for p in path.split("/") if p):
                kids = node.children or []
                match = next((k for k in kids if k.name == part), None)
                if match is None:
                    folded = part.casefold()
                    match = next((k for k in kids if k.name.casefold() == folded), None)
                if match is None:
                    return None
                node = match
            return node

    def resolve(self, path_or_id: str) -> Item:
        item = self.find(path_or_id) if path_or_id.startswith("/") else self.by_id(path_or_id)
        if item is None:
            raise KeyError(path_or_id)
        return item

    # Creation (generator and changes) ---------------------------------------------------

    def _new(self, parent: Item | None, name: str, flags: int, mtime: int, size: int = 0) -> Item:
        it = Item()
        it.num = len(self.items)
        it.name, it.parent, it.flags, it.size = name, parent, flags, 0
        it.ckey = mix64(self.seed, it.num, 1)
        it.cver = it.mver = 1
        it.ctime, it.mtime, it.smtime = mtime - 86400, mtime, mtime + 7
        it.seq = 0
        it.qxh = None
        it.children = [] if flags & (FOLDER | PACKAGE) else None
        self.items.append(it)
        if parent is not None:
            assert parent.children is not None
            parent.children.append(it)
        self._grow(it, size)
        return it

    def _grow(self, item: Item, delta: int) -> None:
        node: Item | None = item
        while node is not None:
            node.size += delta
            node = node.parent

    def new_folder(self, parent: Item, name: str, mtime: int, flags: int = FOLDER) -> Item:
        with self.lock:
            return self._new(parent, name, flags, mtime)

    def new_file(self, parent: Item, name: str, size: int, mtime: int, flags: int = 0) -> Item:
        with self.lock:
            return self._new(parent, name, flags, mtime, size)

    # Changes (each one is logged so delta reports it) ----------------------------------

    def _record(self, item: Item, *, ancestors: bool = True) -> None:
        now = int(time.time())
        node: Item | None = item
        while node is not None:
            self.seq += 1
            node.seq = self.seq
            node.smtime = max(now, node.smtime)
            self._log_nums.append(node.num)
            self._log_seqs.append(self.seq)
            if node is not item:
                node.cver += 1  # a folder's cTag follows its descendants
            node = node.parent if ancestors else None

    def _mkdirs(self, path: str) -> Item:
        node = self.root
        for part in (p for p in path.split("/") if p):
            found = self.find(part, node)
            if found is None:
                found = self._new(node, part, FOLDER, int(time.time()))
                self._record(found)
            node = found
        return node

    def add_folder(self, path: str) -> FileView:
        with self.lock:
            return self.view(self._mkdirs(path))

    def add_file(
        self,
        path: str,
        size: int | None = None,
        seed: int | None = None,
        content: bytes | None = None,
        mtime: float | None = None,
    ) -> FileView:
        with self.lock:
            parent_path, _, name = path.rstrip("/").rpartition("/")
            parent = self._mkdirs(parent_path)
            if any(k.name == name for k in parent.children or []):
                raise FileExistsError(path)
            length = len(content) if content is not None else (1024 if size is None else size)
            item = self._new(parent, name, 0, int(mtime or time.time()), length)
            self._set_content(item, content, seed)
            self._record(item)
            return self.view(item)

    def _set_content(self, item: Item, content: bytes | None, seed: int | None) -> None:
        item.qxh = None
        if content is not None:
            self._explicit[item.num] = bytes(content)
            item.ckey = -1
        else:
            self._explicit.pop(item.num, None)
            salt = seed if seed is not None else item.cver
            item.ckey = mix64(self.seed, item.num, salt, 0 if seed is None else 1)

    def modify_file(
        self, path_or_id: str, size: int | None = None, content: bytes | None = None
    ) -> FileView:
        """New content (same size unless given), new eTag, cTag, hash and mtime."""
        with self.lock:
            item = self.resolve(path_or_id)
            if item.is_folder:
                raise IsADirectoryError(path_or_id)
            new_size = len(content) if content is not None else item.size if size is None else size
            self._grow(item, new_size - item.size)
            item.cver += 1
            item.mver += 1
            self._set_content(item, content, None)
            item.mtime = max(int(time.time()), item.mtime + 1)
            self._record(item)
            return self.view(item)

    def delete(self, path_or_id: str) -> None:
        """Delete an item; a folder takes its whole subtree with it."""
        with self.lock:
            item = self.resolve(path_or_id)
            if item is self.root:
                raise PermissionError("cannot delete the root")
            assert item.parent is not None and item.parent.children is not None
            self._grow(item.parent, -item.size)
            item.parent.children.remove(item)
            for node in self._subtree(item):
                node.flags |= DELETED
                node.mver += 1
                self._record(node, ancestors=False)
            self._record(item.parent)

    def _subtree(self, item: Item) -> Iterator[Item]:
        for child in list(item.children or []):
            yield from self._subtree(child)
        yield item

    def rename(self, path_or_id: str, new_name: str) -> FileView:
        with self.lock:
            item = self.resolve(path_or_id)
            item.name = new_name
            item.mver += 1
            self._record(item)
            return self.view(item)

    def move(self, path_or_id: str, new_parent_path: str) -> FileView:
        with self.lock:
            item = self.resolve(path_or_id)
            new_parent = self._mkdirs(new_parent_path)
            old_parent = item.parent
            assert old_parent is not None and old_parent.children is not None
            old_parent.children.remove(item)
            self._grow(old_parent, -item.size)
            self._record(old_parent)
            item.parent = new_parent
            assert new_parent.children is not None
            new_parent.children.append(item)
            self._grow(new_parent, item.size)
            item.mver += 1
            self._record(item)
            return self.view(item)

    def report_sha256_only(self, path_or_id: str) -> None:
        """From now on this file's metadata offers a sha256Hash instead of a quickXorHash."""
        with self.lock:
            item = self.resolve(path_or_id)
            digest = hashlib.sha256(self.read(path_or_id)).hexdigest().upper()
            self.sha256_only[item.num] = digest
            item.mver += 1
            self._record(item)

    def set_malware(self, path_or_id: str, flagged: bool = True) -> None:
        with self.lock:
            item = self.resolve(path_or_id)
            item.flags = item.flags | MALWARE if flagged else item.flags & ~MALWARE
            item.mver += 1
            self._record(item)

    def invalidate_delta_tokens(self) -> None:
        with self.lock:
            self.epoch += 1

    # Delta support ----------------------------------------------------------------------

    def enumeration(self, start: int, end: int, top: int, shuffle: bool) -> tuple[list[Item], int]:
        """Live items at positions [start, end) of the full listing, at most `top` of them.

        With `shuffle`, numbers are reversed within blocks of 7 so that a child sometimes
        precedes its parent while positions stay stable across pages.
        """
        out: list[Item] = []
        with self.lock:
            pos = start
            while pos < end and len(out) < top:
                num = _shuffled(pos, end) if shuffle else pos
                item = self.items[num]
                if not item.deleted:
                    out.append(item)
                pos += 1
            return out, pos

    def log_position(self, seq: int) -> int:
        """Index of the first change log entry after sequence number `seq`."""
        with self.lock:
            return bisect.bisect_right(self._log_seqs, seq)

    def changes(self, start: int, end_seq: int, top: int) -> tuple[list[Item], int]:
        """Items whose latest change (up to `end_seq`) is logged from index `start` on."""
        out: list[Item] = []
        with self.lock:
            pos = start
            n = len(self._log_seqs)
            while pos < n and self._log_seqs[pos] <= end_seq and len(out) < top:
                item = self.items[self._log_nums[pos]]
                if item.seq == self._log_seqs[pos]:  # otherwise a later entry reports it
                    out.append(item)
                pos += 1
            done = pos >= n or self._log_seqs[pos] > end_seq
            return out, (-1 if done else pos)

    # Content and hashes ------------------------------------------------------------------

    def chunks(self, item: Item, offset: int, length: int) -> Iterator[memoryview | bytes]:
        with self.lock:
            data = self._explicit.get(item.num) if item.ckey == -1 else None
            key = item.ckey
        if data is not None:
            return explicit_chunks(data, offset, length)
        return self.content.chunks(key, offset, length)

    def read(self, item_id: str, offset: int = 0, length: int | None = None) -> bytes:
        """The item's current bytes, for test oracles."""
        item = self.resolve(item_id)
        length = item.size - offset if length is None else min(length, item.size - offset)
        return b"".join(bytes(c) for c in self.chunks(item, offset, max(0, length)))

    def unhashed_bytes(self, items: Iterable[Item]) -> int:
        return sum(i.size for i in items if i.qxh is None and i.children is None and i.size)

    def ensure_hashes(self, items: Iterable[Item]) -> None:
        """Compute missing quickXorHashes (outside the lock: content is a pure function)."""
        for item in items:
            if item.children is not None or item.qxh is not None or item.size == 0:
                continue
            with self.lock:
                cver, size = item.cver, item.size
            digest = quickxorhash_of(self.chunks(item, 0, size))
            with self.lock:
                if item.cver == cver:
                    item.qxh = digest

    # Oracle views -----------------------------------------------------------------------

    def etag(self, item: Item) -> str:
        return f'"{{{self.item_id(item)}}},{item.mver}"'

    def ctag(self, item: Item) -> str:
        return f'"c:{{{self.item_id(item)}}},{item.cver}"'

    def view(self, item: Item) -> FileView:
        self.ensure_hashes([item])
        with self.lock:
            parent = item.parent
            return FileView(
                id=self.item_id(item),
                path=self.path_of(item),
                name=item.name,
                size=item.size,
                quickxorhash=item.qxh,
                mtime=datetime.fromtimestamp(item.mtime, UTC),
                etag=self.etag(item),
                ctag=self.ctag(item),
                parent_id=self.item_id(parent) if parent else None,
                is_folder=item.is_folder,
                package=bool(item.flags & PACKAGE),
                malware=bool(item.flags & MALWARE),
            )

    def item_by_path(self, path: str) -> FileView | None:
        item = self.find(path)
        return None if item is None else self.view(item)

    def item_by_id(self, item_id: str) -> FileView | None:
        item = self.by_id(item_id)
        return None if item is None else self.view(item)

    def _live(self) -> list[Item]:
        with self.lock:
            return [i for i in self.items if not i.deleted]

    def iter_items(self) -> Iterator[FileView]:
        """Every live item, folders and packages included (root excluded)."""
        for item in self._live():
            if item is not self.root:
                yield self.view(item)

    def iter_files(self) -> Iterator[FileView]:
        """Every live file (items with content), in creation order; shortcuts have none."""
        for item in self._live():
            if item.children is None and not item.flags & REMOTE:
                yield self.view(item)

    def shortcut_files(self) -> Iterator[tuple[FileView, Drive, FileView, str]]:
        """Files reachable through this drive's live shortcuts, for test oracles:
        (shortcut, target drive, target file, its path in this drive through the shortcut)."""
        with self.lock:
            links = [
                (self.items[num], target_drive, target)
                for num, (target_drive, target) in self.shortcuts.items()
                if not self.items[num].deleted
            ]
        for shortcut, target_drive, target in links:
            if target.deleted:
                continue
            base = self.view(shortcut)
            if not target.is_folder:
                yield base, target_drive, target_drive.view(target), base.path
                continue
            top = target_drive.path_of(target)
            for f in target_drive.iter_files():
                if f.path.startswith(top + "/"):
                    yield base, target_drive, f, base.path + f.path[len(top) :]


def _shuffled(pos: int, end: int) -> int:
    block, rest = divmod(pos, 7)
    width = min(7, end - block * 7)
    return block * 7 + (width - 1 - rest)
