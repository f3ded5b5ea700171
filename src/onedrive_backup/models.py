"""Our own item types: the rest of the code speaks these, never Graph's JSON shapes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Kind = Literal["file", "folder", "package", "root"]
Status = Literal["pending", "done", "failed", "skipped", "unverified"]
# Why an item is special. "zero" files are still backed up; the others are skipped.
# "remote": a shortcut to an item in another user's drive, not followed ("shared": followed
# with --include-shared, so backed up like our own items).
Special = Literal["onenote", "malware", "vault", "remote", "zero", "shared"]
SKIPPED_SPECIALS: frozenset[str] = frozenset({"malware", "vault", "remote"})
STATUSES: tuple[Status, ...] = ("pending", "done", "failed", "skipped", "unverified")
# Statuses whose file is on disk in the live tree (what a move or retire acts on).
ON_DISK: frozenset[str] = frozenset({"done", "unverified"})

OpKind = Literal["move", "retire"]
OpReason = Literal["renamed", "moved", "deleted", "replaced"]


@dataclass(frozen=True, slots=True)
class RemoteItem:
    """One driveItem as the scan saw it (parsed from Graph in scan.py)."""

    item_id: str
    drive_id: str | None
    parent_id: str | None
    name: str
    kind: Kind
    size: int = 0
    mtime: float | None = None  # fileSystemInfo.lastModifiedDateTime, epoch seconds
    ctime: float | None = None  # fileSystemInfo.createdDateTime, epoch seconds
    etag: str | None = None
    ctag: str | None = None
    quickxorhash: str | None = None
    sha256: str | None = None
    deleted: bool = False
    special: Special | None = None
    special_reason: str | None = None  # for malware: what the service said
    remote_drive_id: str | None = None  # a shortcut (remoteItem): the drive it points into
    remote_id: str | None = None  # ... and the item there


class ItemKey(str):
    """An item id as Graph knows it (the string itself, what URLs use) that also carries the
    key of its row in the state, when the two differ: items reached through a shortcut into
    another drive are stored under "<shortcut id>:<id>" (ids are only unique per drive).
    BackupState methods accept either and use `state_key`."""

    key: str

    def __new__(cls, graph_id: str, key: str) -> ItemKey:
        self = super().__new__(cls, graph_id)
        self.key = key
        return self

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]
        return str(self), self.key


def state_key(item_id: str) -> str:
    """The state's row key for an id handed out by the state (see ItemKey)."""
    return item_id.key if isinstance(item_id, ItemKey) else item_id


@dataclass(frozen=True, slots=True)
class FileTask:
    """A file the download engine should fetch into `local_path` (relative POSIX path).

    `item_id` and `drive_id` address the file in Graph (/drives/{drive_id}/items/{item_id});
    for a file in another user's drive `item_id` is an ItemKey that the state maps back."""

    item_id: str
    drive_id: str
    remote_path: str
    local_path: str
    size: int
    quickxorhash: str | None
    sha256: str | None
    mtime: float | None
    ctime: float | None
    etag: str | None
    ctag: str | None
    attempts: int


@dataclass(frozen=True, slots=True)
class DoneRecord:
    """What was verified on disk for one file (argument of BackupState.mark_done_many)."""

    item_id: str
    size: int
    quickxorhash: str | None
    mtime: float | None
    etag: str | None


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """One row of the inventory, as stored."""

    item_id: str
    drive_id: str | None
    parent_id: str | None
    name: str
    kind: Kind
    size: int
    mtime: float | None
    ctime: float | None
    etag: str | None
    ctag: str | None
    quickxorhash: str | None
    sha256: str | None
    remote_path: str | None
    local_path: str | None
    selected: bool
    status: Status | None  # None for folders, packages and the root
    special: Special | None
    attempts: int
    last_error: str | None
    done_size: int | None
    done_hash: str | None
    done_mtime: float | None
    done_etag: str | None


@dataclass(frozen=True, slots=True)
class LocalOp:
    """A pending change to files already on disk, queued by the scan, applied before downloads.

    move: `src_path` → `dst_path` (both relative to the backup folder).
    retire: move `src_path` out of the live tree into the versions folder (never delete).
    Ops must be applied in `op_id` order.
    """

    op_id: int
    kind: OpKind
    item_id: str
    src_path: str
    dst_path: str | None
    reason: OpReason
    created_at: float


@dataclass(frozen=True, slots=True)
class StatusTotal:
    count: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class Totals:
    """Selected files per status, plus special-item counts (all files, selected or not)."""

    by_status: dict[str, StatusTotal]
    special: dict[str, int]
    deselected_on_disk: int = 0

    def count(self, status: Status) -> int:
        return self.by_status.get(status, StatusTotal()).count

    def bytes(self, status: Status) -> int:
        return self.by_status.get(status, StatusTotal()).bytes

    @property
    def files(self) -> int:
        return sum(t.count for t in self.by_status.values())

    @property
    def total_bytes(self) -> int:
        return sum(t.bytes for t in self.by_status.values())

    def file_counts(self) -> dict[str, int]:
        """The selected files by outcome, as the summary and the report show them."""
        return {
            "selected": self.files,
            "done": self.count("done"),
            "failed": self.count("failed"),
            "unverified": self.count("unverified"),
            "pending": self.count("pending"),
        }


@dataclass(frozen=True, slots=True)
class BackupSummary:
    """One backup folder under a destination, for `list --dest` and the resume prompt."""

    name: str
    path: str
    complete: bool
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    last_run_at: float | None
    last_outcome: str | None
    error: str | None = None  # set when the state could not be read (locked runs still read)
    legacy: bool = False  # made by the earlier script (its .progress.json), not resumed yet


@dataclass(frozen=True, slots=True)
class ChangeCounts:
    """What one scan changed in the inventory (for the update summary, issue 7)."""

    added: int = 0
    modified: int = 0
    deleted: int = 0
    moved: int = 0


@dataclass(frozen=True)
class ScanResult:
    """The outcome of a scan, with special items counted and named (remote paths)."""

    pages: int
    items_seen: int
    full_enumeration: bool
    resynced: bool
    files_total: int
    files_selected: int
    bytes_selected: int
    changes: ChangeCounts
    ops_queued: int
    deselected_on_disk: int
    zero_byte_files: int
    orphans: int  # items whose parent never appeared: not placed, not downloaded
    notebooks: list[str] = field(default_factory=list)
    vault: list[str] = field(default_factory=list)
    malware: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
