"""The backup's state: SQLite inside the backup folder, its schema and migrations, and the lock.

This is the only module that writes SQL. Layout of a backup (a user-facing contract):

    DEST/OneDrive_Backup_YYYYMMDD_HHMMSS/            the drive's tree
    DEST/OneDrive_Backup_YYYYMMDD_HHMMSS/.onedrive-backup/{state.sqlite,lock,logs/,reports/}

Writes are batched: one transaction per delta page, per resolve batch, per batch of done files.
Iteration uses keyset pagination so memory stays flat however many items the drive has.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal, Protocol, cast

from onedrive_backup import __version__
from onedrive_backup.errors import DestinationError, DiskFullError, StateError, UsageError
from onedrive_backup.models import (
    ON_DISK,
    SKIPPED_SPECIALS,
    STATUSES,
    BackupSummary,
    DoneRecord,
    FileTask,
    ItemKey,
    ItemRecord,
    LocalOp,
    RemoteItem,
    StatusTotal,
    Totals,
    state_key,
)

log = logging.getLogger(__name__)

STATE_DIR = ".onedrive-backup"
STATE_FILE = "state.sqlite"
LOCK_FILE = "lock"
BACKUP_PREFIX = "OneDrive_Backup_"
BACKUP_NAME_RE = re.compile(r"^OneDrive_Backup_\d{8}_\d{6}$")
# Names the backup itself uses at the top of the live tree; no remote item may take them.
RESERVED_TOP_NAMES = (STATE_DIR, ".versions")
# "ODBK": marks a SQLite file as ours, so a foreign database is refused, never overwritten.
APPLICATION_ID = 0x4F44424B
SCHEMA_VERSION = 2
_IN_CHUNK = 500  # ids per `IN (...)` query, well below SQLite's variable limit

Phase = Literal["new", "paging", "resolving", "complete"]

# --- schema -------------------------------------------------------------------------------

_SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    phase TEXT NOT NULL DEFAULT 'new',
    next_link TEXT,            -- where paging continues (carries a token: never log it)
    delta_link TEXT,           -- the last deltaLink received (ditto)
    full INTEGER NOT NULL DEFAULT 1,        -- current enumeration lists everything
    generation INTEGER NOT NULL DEFAULT 0,  -- number of full enumerations started
    resynced INTEGER NOT NULL DEFAULT 0,
    stats TEXT NOT NULL DEFAULT '{}',
    updated_at REAL
);
INSERT INTO cursor (id) VALUES (1);
CREATE TABLE items (
    item_id TEXT PRIMARY KEY,  -- BINARY collation: ids are case-sensitive
    drive_id TEXT,
    parent_id TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('file', 'folder', 'package', 'root')),
    size INTEGER NOT NULL DEFAULT 0,
    mtime REAL,
    ctime REAL,
    etag TEXT,
    ctag TEXT,
    quickxorhash TEXT,
    sha256 TEXT,
    remote_path TEXT,
    local_name TEXT,
    local_path TEXT,
    selected INTEGER NOT NULL DEFAULT 0,
    status TEXT CHECK (status IS NULL
        OR status IN ('pending', 'done', 'failed', 'skipped', 'unverified')),
    special TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    done_size INTEGER,
    done_hash TEXT,
    done_mtime REAL,
    done_etag TEXT,
    dirty INTEGER NOT NULL DEFAULT 1,    -- name/parent/path changed: place it (and its children)
    deleted INTEGER NOT NULL DEFAULT 0,  -- reported deleted; removed by the resolve pass
    seen_gen INTEGER NOT NULL DEFAULT 0  -- last full enumeration that listed it
);
CREATE INDEX items_parent ON items (parent_id);
CREATE INDEX items_work ON items (status, item_id) WHERE kind = 'file' AND selected = 1;
CREATE INDEX items_dirty ON items (parent_id) WHERE dirty = 1;
CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT,
    counts TEXT,
    host TEXT,
    pid INTEGER,
    version TEXT
);
"""

# v2: incremental updates (issue 7): a queue of changes to files already on disk, and the cTag
# a done file was verified against (an eTag also changes on rename, a cTag only on content).
_SCHEMA_V2 = """
CREATE TABLE ops (
    op_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('move', 'retire')),
    item_id TEXT NOT NULL,
    src_path TEXT NOT NULL,
    dst_path TEXT,
    reason TEXT NOT NULL,
    created_at REAL NOT NULL
);
ALTER TABLE items ADD COLUMN done_ctag TEXT;
UPDATE items SET done_ctag = ctag WHERE status IN ('done', 'unverified');
"""


def _migrate_0_to_1(db: sqlite3.Connection) -> None:
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    for statement in _split_sql(_SCHEMA_V1):
        db.execute(statement)


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    for statement in _split_sql(_SCHEMA_V2):
        db.execute(statement)


# MIGRATIONS[n] brings a database from version n to n + 1; a new database runs them all.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migrate_0_to_1, _migrate_1_to_2)
assert len(MIGRATIONS) == SCHEMA_VERSION


def _split_sql(script: str) -> list[str]:
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


_ITEM_COLUMNS = (
    "item_id, drive_id, parent_id, name, kind, size, mtime, ctime, etag, ctag, quickxorhash, "
    "sha256, remote_path, local_path, selected, status, special, attempts, last_error, "
    "done_size, done_hash, done_mtime, done_etag"
)
_TASK_COLUMNS = (
    "item_id, drive_id, remote_path, local_path, size, quickxorhash, sha256, mtime, ctime, "
    "etag, ctag, attempts"
)


def _item_record(row: Sequence[Any]) -> ItemRecord:
    values = list(row)
    values[14] = bool(values[14])
    return ItemRecord(*values)


def _file_task(row: Sequence[Any], graph_ids: Mapping[str, str] | None = None) -> FileTask:
    item_id, drive_id, *rest = row
    graph_id = graph_ids.get(item_id) if graph_ids else None
    if graph_id is None and ":" in item_id:  # "<shortcut>:<id>": a file in another drive
        graph_id = item_id.rpartition(":")[2]
    if graph_id is not None:
        item_id = ItemKey(graph_id, item_id)
    return FileTask(item_id, drive_id or "", *rest)


def shared_key(shortcut_id: str, item_id: str) -> str:
    """The state key of an item of another drive reached through the shortcut `shortcut_id`.

    Item ids are unique per drive only, and one item can be reached through two shortcuts;
    a Graph id never contains ":" (Graph addresses paths with it), so the key is unambiguous.
    """
    return f"{shortcut_id}:{item_id}"


# --- rows the resolve pass works with -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FolderRow:
    item_id: str
    parent_id: str | None
    name: str
    kind: str
    special: str | None
    local_name: str | None
    local_path: str | None
    remote_path: str | None
    dirty: bool
    deleted: bool


@dataclass(frozen=True, slots=True)
class ChildRow:
    item_id: str
    name: str
    kind: str
    special: str | None
    local_name: str | None
    local_path: str | None
    remote_path: str | None
    status: str | None
    dirty: bool


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the resolve pass put one item; `selected` only matters for files."""

    item_id: str
    local_name: str
    local_path: str
    remote_path: str
    selected: bool
    special: str | None
    keep_dirty: bool = False  # a folder whose children still need placing


@dataclass(frozen=True)
class Cursor:
    phase: Phase
    next_link: str | None
    delta_link: str | None
    full: bool
    generation: int
    resynced: bool
    stats: dict[str, int] = field(default_factory=dict)


# --- the lock -------------------------------------------------------------------------------


class BackupLock:
    """An OS file lock on `.onedrive-backup/lock`: the kernel releases it if the holder dies.

    The file also holds pid/host/start time of the holder, only to word the message.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
        try:
            _lock_file(fh)
        except OSError:
            fh.seek(0)
            holder = fh.read()
            fh.close()
            raise StateError(
                f"This backup is in use by another onedrive-backup run ({_describe(holder)}).",
                hint="Wait for that run to finish, or stop it; then run this command again.",
            ) from None
        fh.seek(0)
        fh.truncate()
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        fh.write(json.dumps(info))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.seek(0)
                self._fh.truncate()
                self._fh.flush()
            self._fh.close()  # closing drops the lock
            self._fh = None


_WIN_LOCK_OFFSET = 1 << 20  # lock a byte past the info text so others can still read it

if sys.platform == "win32":
    import msvcrt

    def _lock_file(fh: IO[str]) -> None:
        fd = fh.fileno()
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock_file(fh: IO[str]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        started = datetime.fromtimestamp(float(info["started"])).strftime("%Y-%m-%d %H:%M:%S")
        return f"pid {info['pid']} on {info['host']}, started {started}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


# --- opening --------------------------------------------------------------------------------


def _unreadable(path: Path, why: object) -> StateError:
    return StateError(
        f"The backup state file {path} cannot be used ({why}).",
        hint="It was left untouched. Start a new backup with --new (files already backed up "
        "stay where they are), or restore that file from a copy.",
    )


def _connect(path: Path, mode: Literal["ro", "rw", "rwc"]) -> sqlite3.Connection:
    uri = path.resolve().as_uri() + f"?mode={mode}"
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 10000")
        # Reading the header fails here for a file that is not an SQLite database.
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise _unreadable(path, exc) from exc
    return db


def _pragma_int(db: sqlite3.Connection, name: str) -> int:
    return int(db.execute(f"PRAGMA {name}").fetchone()[0])


def _check_and_migrate(db: sqlite3.Connection, path: Path, *, writable: bool) -> int:
    """Refuse foreign, damaged or newer files; bring older ones to SCHEMA_VERSION."""
    try:
        app_id = _pragma_int(db, "application_id")
        version = _pragma_int(db, "user_version")
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise _unreadable(path, exc) from exc
    if app_id != APPLICATION_ID and not (app_id == 0 and version == 0 and tables == 0):
        raise _unreadable(path, "it is not an onedrive-backup state file")
    if version > SCHEMA_VERSION:
        raise StateError(
            f"The backup state file {path} was written by a newer onedrive-backup "
            f"(schema {version}; this version understands up to {SCHEMA_VERSION}).",
            hint="Update onedrive-backup (pip install -U onedrive-backup) and run again.",
        )
    if version < SCHEMA_VERSION:
        if not writable:
            raise StateError(
                f"The backup state file {path} uses an older schema ({version}).",
                hint="Resume or check it once with this version to upgrade it.",
            )
        migrate(db, version)
    return version


def _open_checked(path: Path, mode: Literal["ro", "rw", "rwc"]) -> sqlite3.Connection:
    """Connect, refuse what is not ours (before writing a single byte), migrate, tune."""
    db = _connect(path, mode)
    try:
        _check_and_migrate(db, path, writable=mode != "ro")
        if mode != "ro":
            _init_connection(db)
    except BaseException:
        db.close()
        raise
    return db


def migrate(db: sqlite3.Connection, from_version: int) -> None:
    """Apply every migration after `from_version`, each in its own transaction."""
    for version in range(from_version, SCHEMA_VERSION):
        db.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        log.info("state schema migrated to version %d", version + 1)


def backup_folder_name(when: datetime) -> str:
    return BACKUP_PREFIX + when.strftime("%Y%m%d_%H%M%S")


# --- the state ------------------------------------------------------------------------------


class BackupState:
    """One backup's state. Create or open it; close it when the run ends (releases the lock)."""

    def __init__(self, backup_dir: Path, db: sqlite3.Connection, lock: BackupLock | None) -> None:
        self.backup_dir = backup_dir
        self.state_dir = backup_dir / STATE_DIR
        self._db = db
        self._lock = lock
        self._mutex = threading.RLock()  # callers may use worker threads; one connection

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def create(cls, dest_dir: Path | str, *, now: datetime | None = None) -> BackupState:
        """Make `DEST/OneDrive_Backup_YYYYMMDD_HHMMSS/` with its state, logs and reports."""
        dest = Path(dest_dir)
        if not dest.is_dir():
            raise DestinationError(
                f"The destination {dest} does not exist or is not a folder.",
                hint="Connect the disk or create the folder, then run again.",
            )
        when = now or datetime.now()
        for _attempt in range(5):
            backup_dir = dest / backup_folder_name(when)
            try:
                backup_dir.mkdir()
                break
            except FileExistsError:  # two backups in one second: take the next second
                when = datetime.fromtimestamp(when.timestamp() + 1)
            except OSError as exc:
                raise DestinationError(f"Cannot create a backup folder in {dest}: {exc}") from exc
        else:
            raise DestinationError(f"Cannot find a free backup folder name in {dest}.")
        return cls._start(backup_dir, {"created": when.timestamp()})

    @classmethod
    def adopt(cls, backup_dir: Path | str, *, meta: Mapping[str, Any] | None = None) -> BackupState:
        """Our state inside an existing folder (the earlier script's, see legacy.py).

        Only `.onedrive-backup/` is added; nothing else in the folder is touched. `meta` is
        stored with the new state; a folder that already has our state is simply opened.
        """
        backup_dir = Path(backup_dir)
        if not backup_dir.is_dir():
            raise DestinationError(f"The backup folder {backup_dir} does not exist.")
        return cls._start(backup_dir, {"created": time.time(), **(meta or {})})

    @classmethod
    def _start(cls, backup_dir: Path, meta: Mapping[str, Any]) -> BackupState:
        """Make `.onedrive-backup/` (logs, reports) in `backup_dir`, take the lock, and open
        the state, creating it with `meta` if it is new."""
        state_dir = backup_dir / STATE_DIR
        try:
            for sub in ("logs", "reports"):
                (state_dir / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DestinationError(f"Cannot write to {backup_dir}: {exc}") from exc
        lock = BackupLock(state_dir / LOCK_FILE)
        lock.acquire()
        try:
            fresh = not (state_dir / STATE_FILE).exists()
            state = cls(backup_dir, _open_checked(state_dir / STATE_FILE, "rwc"), lock)
            if fresh:
                state.set_meta_many({"created_by": __version__, **meta})
        except BaseException:
            lock.release()
            raise
        return state

    @classmethod
    def open(cls, backup_dir: Path | str, *, read_only: bool = False) -> BackupState:
        """Open an existing backup: takes the lock unless `read_only` (for list and status)."""
        backup_dir = Path(backup_dir)
        path = backup_dir / STATE_DIR / STATE_FILE
        if not path.is_file():
            raise StateError(
                f"{backup_dir} is not an onedrive-backup backup folder (no {STATE_DIR}/"
                f"{STATE_FILE}).",
                hint="Pick the OneDrive_Backup_… folder itself, or start a new backup with --new.",
            )
        lock = None
        if not read_only:
            lock = BackupLock(backup_dir / STATE_DIR / LOCK_FILE)
            lock.acquire()
        try:
            db = _open_checked(path, "ro" if read_only else "rw")
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return cls(backup_dir, db, lock)

    def close(self) -> None:
        with self._mutex:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> BackupState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return _pragma_int(self._db, "user_version")

    # -- plumbing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; SQLite errors become our own errors."""
        with self._mutex:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if "full" in str(exc).lower():
                    raise DiskFullError(
                        f"The destination is full; the backup state could not be saved ({exc}).",
                        hint="Free some space, then resume.",
                    ) from exc
                raise StateError(f"Saving the backup state failed: {exc}") from exc

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._mutex:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise _unreadable(self.state_dir / STATE_FILE, exc) from exc

    # -- meta ----------------------------------------------------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set_meta(self, key: str, value: Any) -> None:
        with self._tx() as db:
            _set_meta(db, key, value)

    def set_meta_many(self, values: Mapping[str, Any]) -> None:
        """Several meta values in one transaction."""
        with self._tx() as db:
            for key, value in values.items():
                _set_meta(db, key, value)

    # -- runs ----------------------------------------------------------------------------------

    def start_run(self) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs (started_at, host, pid, version) VALUES (?, ?, ?, ?)",
                (time.time(), socket.gethostname(), os.getpid(), __version__),
            )
            return int(cast(int, cur.lastrowid))

    def finish_run(self, run_id: int, outcome: str, counts: Mapping[str, Any] | None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, outcome = ?, counts = ? WHERE run_id = ?",
                (time.time(), outcome, json.dumps(counts or {}, default=str), run_id),
            )

    def last_run(self) -> tuple[float, float | None, str | None] | None:
        """(started_at, finished_at, outcome) of the most recent run, if any."""
        rows = self._query(
            "SELECT started_at, finished_at, outcome FROM runs ORDER BY run_id DESC LIMIT 1"
        )
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    # -- cursor --------------------------------------------------------------------------------

    def get_cursor(self) -> Cursor:
        row = self._query(
            "SELECT phase, next_link, delta_link, full, generation, resynced, stats FROM cursor"
        )[0]
        return Cursor(
            row[0], row[1], row[2], bool(row[3]), row[4], bool(row[5]), json.loads(row[6])
        )

    def begin_enumeration(self, url: str, *, full: bool, resync: bool = False) -> None:
        """Start paging from `url`: a full enumeration bumps the generation (for the sweep).

        A full enumeration also drops the indexes only the resolve pass reads (see
        _RESOLVE_INDEXES); the page that ends it builds them again.
        """
        with self._tx() as db:
            db.execute("DELETE FROM meta WHERE key = 'scan_journal'")
            for name, create in _RESOLVE_INDEXES:
                db.execute(f"DROP INDEX IF EXISTS {name}" if full else create)
            stats = "{}"
            if resync:  # keep the counts of pages already applied in this scan
                stats = db.execute("SELECT stats FROM cursor").fetchone()[0]
            db.execute(
                "UPDATE cursor SET phase = 'paging', next_link = ?, full = ?, "
                "generation = generation + ?, resynced = ?, stats = ?, updated_at = ?",
                (url, int(full), int(full), int(resync), stats, time.time()),
            )

    def finish_scan(self) -> None:
        """The resolve pass is complete: later runs start from the stored deltaLink."""
        with self._tx() as db:
            db.execute("DELETE FROM meta WHERE key IN ('reselect', 'eager', 'scan_journal')")
            db.execute(
                "UPDATE cursor SET phase = 'complete', next_link = NULL, updated_at = ?",
                (time.time(),),
            )

    # -- ingest (one delta page, one transaction) ------------------------------------------------

    # The scan fetches page n+1 while page n is applied. So that a kill then costs only the
    # page in flight, page n's body is kept first, with the cursor moved past it, in one
    # small transaction (`journal_page`); the transaction that applies it drops it. A scan
    # that finds a kept page applies it before fetching anything (`journaled_page`).

    def journal_page(self, page: Mapping[str, Any], body: bytes, next_link: str) -> None:
        """Keep a fetched delta page (its JSON body, as received: no second encoding) and
        move the cursor past it."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        # A BOM, or JSON in another encoding (never seen from Graph): kept re-encoded.
        if not text.startswith("{") or "\x00" in text[:4]:
            text = json.dumps(page)
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('scan_journal', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (text,),
            )
            db.execute("UPDATE cursor SET next_link = ?, updated_at = ?", (next_link, time.time()))

    def journaled_page(self) -> dict[str, Any] | None:
        """The page kept by journal_page and not yet applied, if any."""
        page = self.get_meta("scan_journal")
        return page if isinstance(page, dict) else None

    def ingest_page(
        self,
        items: Sequence[RemoteItem],
        *,
        next_link: str | None,
        delta_link: str | None,
        placer: IngestPlacer | None = None,
    ) -> dict[str, int]:
        """Apply one page and advance the cursor in the same transaction (invariant 2).

        The last occurrence of an item wins. A done file whose content changed goes back to
        pending and its old version is queued for retirement. With a `placer`, a new item it
        can place is stored placed and clean (see scan._EagerPlacer); the placer hears of
        every other item of the page. Returns the scan's running stats.
        """
        latest: dict[str, RemoteItem] = {}
        for item in items:
            latest.pop(item.item_id, None)  # keep page order of the last occurrence
            latest[item.item_id] = item
        with self._tx() as db:
            generation, stats_json = db.execute("SELECT generation, stats FROM cursor").fetchone()
            stats: dict[str, int] = json.loads(stats_json)
            existing = _existing_rows(db, list(latest))
            upserts: list[tuple[Any, ...]] = []
            placed: list[tuple[Any, ...]] = []
            replaced: list[tuple[str]] = []
            deletions: list[tuple[str]] = []
            ops: list[tuple[Any, ...]] = []
            now = time.time()
            for item in latest.values():
                old = existing.get(item.item_id)
                if item.deleted:
                    if placer is not None:
                        placer.forget(item.item_id)
                    if old is not None:
                        deletions.append((item.item_id,))
                    continue
                values = _upsert_values(item, old, generation, stats, ops, now)
                placement = None
                if placer is not None:
                    if old is None:
                        placement = placer.place(item)
                    else:  # listed again in a first scan: left to the resolve pass, unplaced
                        placer.forget(item.item_id)
                        values = (*values[:-2], 1, values[-1])
                        replaced.append((item.item_id,))
                if placement is None:
                    upserts.append(values)
                else:
                    placed.append((*values[:-2], *placement, values[-1]))
                if item.kind == "file":
                    stats["files_seen"] = stats.get("files_seen", 0) + 1
                    stats["bytes_seen"] = stats.get("bytes_seen", 0) + item.size
            db.executemany(_UPSERT_SQL, upserts)
            db.executemany(_INSERT_PLACED_SQL, placed)
            db.executemany(
                "UPDATE items SET local_name = NULL, local_path = NULL, remote_path = NULL, "
                "selected = 0 WHERE item_id = ?",
                replaced,
            )
            db.execute("DELETE FROM meta WHERE key = 'scan_journal'")
            db.executemany("UPDATE items SET deleted = 1, dirty = 1 WHERE item_id = ?", deletions)
            db.executemany(_OP_SQL, ops)
            stats["pages"] = stats.get("pages", 0) + 1
            stats["items_seen"] = stats.get("items_seen", 0) + len(items)
            if delta_link is not None:
                for _name, create in _RESOLVE_INDEXES:
                    db.execute(create)
                db.execute(
                    "UPDATE cursor SET phase = 'resolving', next_link = NULL, delta_link = ?, "
                    "stats = ?, updated_at = ?",
                    (delta_link, json.dumps(stats), now),
                )
            else:
                db.execute(
                    "UPDATE cursor SET next_link = ?, stats = ?, updated_at = ?",
                    (next_link, json.dumps(stats), now),
                )
        return stats

    # -- resolve pass support ----------------------------------------------------------------------

    def mark_unseen_deleted(self, *, keep_shared: bool = False) -> int:
        """After a full enumeration: whatever it did not list is gone from the drive
        (`keep_shared`: except what came through shortcuts, which were not followed)."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE items SET deleted = 1, dirty = 1 "
                "WHERE seen_gen < (SELECT generation FROM cursor) AND deleted = 0"
                + (" AND instr(item_id, ':') = 0" if keep_shared else "")
            )
            return cur.rowcount

    def load_folders(self) -> list[FolderRow]:
        """Every folder, package and root (a small fraction of the items; kept in memory)."""
        rows = self._query(
            "SELECT item_id, parent_id, name, kind, special, local_name, local_path, "
            "remote_path, dirty, deleted FROM items WHERE kind != 'file'"
        )
        return [
            FolderRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), bool(r[9]))
            for r in rows
        ]

    def dirty_children(self) -> list[tuple[str, str]]:
        """(parent id, name) of every item left to place."""
        rows = self._query(
            "SELECT parent_id, name FROM items WHERE dirty = 1 AND deleted = 0 "
            "AND parent_id IS NOT NULL"
        )
        return [(r[0], r[1]) for r in rows]

    def root_id(self) -> str | None:
        rows = self._query("SELECT item_id FROM items WHERE kind = 'root' AND deleted = 0")
        return str(rows[0][0]) if rows else None

    def dirty_parents(self) -> set[str]:
        rows = self._query("SELECT DISTINCT parent_id FROM items WHERE dirty = 1 AND deleted = 0")
        return {r[0] for r in rows if r[0] is not None}

    def mark_children_dirty(self, parent_ids: Iterable[str]) -> None:
        """Have the resolve pass place every child of these folders again."""
        with self._tx() as db:
            db.executemany(
                "UPDATE items SET dirty = 1 WHERE parent_id = ? AND dirty = 0 AND deleted = 0",
                [(p,) for p in parent_ids],
            )

    def placed_rows(self, batch: int = 5000) -> Iterator[tuple[str, str, str, str, str, str]]:
        """(item id, parent id, kind, local name, local path, remote path) of every clean,
        placed item below the root: during a first scan, what was placed at ingest."""
        cur = self._db.cursor()
        with self._mutex:
            cur.execute(
                "SELECT item_id, parent_id, kind, local_name, local_path, remote_path FROM items "
                "WHERE dirty = 0 AND deleted = 0 AND local_name IS NOT NULL "
                "AND parent_id IS NOT NULL AND kind IN ('file', 'folder')"
            )
        while True:
            with self._mutex:
                rows = cur.fetchmany(batch)
            if not rows:
                return
            yield from rows

    def deleted_file_ids(self) -> list[str]:
        rows = self._query("SELECT item_id FROM items WHERE deleted = 1 AND kind = 'file'")
        return [r[0] for r in rows]

    def children(self, parent_id: str, *, dirty_only: bool = False) -> list[ChildRow]:
        rows = self._query(
            "SELECT item_id, name, kind, special, local_name, local_path, remote_path, status, "
            "dirty FROM items WHERE parent_id = ? AND deleted = 0"
            + (" AND dirty = 1" if dirty_only else ""),
            (parent_id,),
        )
        return [ChildRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8])) for r in rows]

    def remove_items(self, item_ids: Sequence[str], *, files_under: Sequence[str] = ()) -> int:
        """Forget deleted items (and the files under deleted folders); files on disk are
        queued for retirement, never deleted (invariant 7). Returns files retired."""
        retired = 0
        now = time.time()
        with self._tx() as db:
            ids = list(item_ids)
            for chunk in _chunks(list(files_under)):
                marks = ",".join("?" * len(chunk))
                ids += [
                    r[0]
                    for r in db.execute(
                        f"SELECT item_id FROM items WHERE parent_id IN ({marks})", chunk
                    )
                ]
            stats = json.loads(db.execute("SELECT stats FROM cursor").fetchone()[0])
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT item_id, kind, status, local_path FROM items "
                    f"WHERE item_id IN ({marks})",
                    chunk,
                ).fetchall()
                ops = [
                    ("retire", item_id, local_path, None, "deleted", now)
                    for item_id, kind, status, local_path in rows
                    if kind == "file" and status in ON_DISK and local_path
                ]
                db.executemany(_OP_SQL, ops)
                retired += len(ops)
                stats["deleted"] = stats.get("deleted", 0) + sum(1 for r in rows if r[1] == "file")
                db.execute(f"DELETE FROM items WHERE item_id IN ({marks})", chunk)
            db.execute("UPDATE cursor SET stats = ?", (json.dumps(stats),))
        return retired

    def apply_placements(
        self, placements: Sequence[Placement], *, placed_parents: Sequence[str] = ()
    ) -> int:
        """Store resolved names/paths/selection; queue a move for each file on disk whose path
        changed; clear `dirty` on the placed items and on `placed_parents`. Returns moves."""
        self.begin_placements()
        self.stage_placements(placements, placed_parents=placed_parents)
        return self.commit_placements()

    # A resolve pass places children folder by folder, which is random order in the table:
    # updating rows in that order rewrote one table page per row. So placements are staged in
    # a temporary table (this connection's own, gone if the process dies) and applied in one
    # transaction in row order, each table page written once. A killed resolve applied
    # nothing and runs again.

    def begin_placements(self) -> None:
        """Start staging a resolve pass's placements (anything staged before is dropped)."""
        with self._mutex:
            for statement in _STAGE_SQL:
                self._db.execute(statement)

    def stage_placements(
        self, placements: Sequence[Placement], *, placed_parents: Sequence[str] = ()
    ) -> None:
        """Keep placements (in the order given) until commit_placements."""
        with self._tx() as db:
            db.executemany(
                "INSERT INTO temp.placement (item_id, local_name, local_path, remote_path, "
                "selected, special, keep_dirty) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        p.item_id,
                        p.local_name,
                        p.local_path,
                        p.remote_path,
                        int(p.selected),
                        p.special,
                        int(p.keep_dirty),
                    )
                    for p in placements
                ],
            )
            db.executemany(
                "INSERT OR IGNORE INTO temp.placed_parent (item_id) VALUES (?)",
                [(i,) for i in placed_parents],
            )

    def commit_placements(self, batch: int = 5000) -> int:
        """Apply what was staged in one transaction: names, paths, selection and status of
        the placed items, a move queued for each file on disk whose path changed (in the
        order placed), `dirty` cleared on placed parents. Returns the moves queued."""
        now = time.time()
        with self._tx() as db:
            stats = json.loads(db.execute("SELECT stats FROM cursor").fetchone()[0])
            moves = 0
            on_disk = "SELECT 1 FROM items WHERE status IN ('done', 'unverified')"
            cur = db.execute(  # (a first scan has nothing on disk: skip the join)
                "SELECT p.item_id, i.local_path, p.local_path FROM temp.placement p "
                "JOIN items i ON i.item_id = p.item_id WHERE i.kind = 'file' "
                "AND i.status IN ('done', 'unverified') AND i.local_path IS NOT NULL "
                f"AND i.local_path != p.local_path AND EXISTS ({on_disk}) ORDER BY p.seq"
            )
            while rows := cur.fetchmany(batch):
                ops = []
                for item_id, src, dst in rows:
                    same_folder = PurePosixPath(src).parent == PurePosixPath(dst).parent
                    reason = "renamed" if same_folder else "moved"
                    ops.append(("move", item_id, src, dst, reason, now))
                db.executemany(_OP_SQL, ops)
                moves += len(ops)
            db.execute(
                "INSERT INTO temp.placement_rows SELECT i.rowid, i.kind, i.status, "
                "i.last_error, p.local_name, p.local_path, p.remote_path, p.selected, p.special, "
                "p.keep_dirty FROM temp.placement p JOIN items i ON i.item_id = p.item_id "
                "ORDER BY i.rowid"
            )
            # A large pass (a first scan) rewrites most rows: maintaining the indexes on the
            # columns it changes row by row costs more than building them again afterwards.
            staged = db.execute("SELECT count(*) FROM temp.placement_rows").fetchone()[0]
            rebuild: list[str] = []
            if staged > _REBUILD_INDEXES_AT:
                rebuild = [
                    r[0]
                    for r in db.execute(
                        "SELECT sql FROM sqlite_master WHERE type = 'index' AND name IN "
                        "('items_work', 'items_dirty')"
                    )
                ]
                db.execute("DROP INDEX IF EXISTS items_work")
                db.execute("DROP INDEX IF EXISTS items_dirty")
            # In row order, all in SQL; the CASEs are _status_for's rules for files.
            db.execute(_APPLY_PLACEMENTS_SQL)
            for create in rebuild:
                db.execute(create)
            db.execute(
                "UPDATE items SET dirty = 0 WHERE item_id IN (SELECT item_id FROM "
                "temp.placed_parent)"
            )
            stats["moved"] = stats.get("moved", 0) + moves
            db.execute("UPDATE cursor SET stats = ?", (json.dumps(stats),))
        self.begin_placements()  # empties the stage
        return moves

    def needs_resolve(self) -> bool:
        """Anything to place or remove? (Uses the partial index: instant when nothing is.)"""
        return bool(self._query("SELECT EXISTS (SELECT 1 FROM items WHERE dirty = 1)")[0][0])

    def count_files(self) -> int:
        return int(self._query("SELECT count(*) FROM items WHERE kind = 'file'")[0][0])

    def count_dirty(self) -> int:
        return int(self._query("SELECT count(*) FROM items WHERE dirty = 1 AND deleted = 0")[0][0])

    def reevaluate_selection(
        self, is_selected: Callable[[str], bool], *, include_shared: bool = True, batch: int = 2000
    ) -> tuple[int, int]:
        """Recompute `selected` for every placed file from its remote path; files reached
        through a shortcut into another drive are selected only with `include_shared`.

        Returns (newly selected, deselected). Deselected files stay on disk as they are.
        """
        newly = dropped = 0
        after = ""
        while True:
            rows = self._query(
                "SELECT item_id, remote_path, selected, special FROM items "
                "WHERE kind = 'file' AND item_id > ? AND remote_path IS NOT NULL "
                "ORDER BY item_id LIMIT ?",
                (after, batch),
            )
            if not rows:
                return newly, dropped
            changes = []
            for item_id, remote_path, selected, special in rows:
                want = (
                    special not in SKIPPED_SPECIALS
                    and (include_shared or ":" not in item_id)
                    and is_selected(remote_path)
                )
                if want != bool(selected):
                    changes.append((int(want), item_id))
                    newly += want
                    dropped += not want
            if changes:
                with self._tx() as db:
                    db.executemany("UPDATE items SET selected = ? WHERE item_id = ?", changes)
            after = rows[-1][0]

    # -- local operations queue (issue 7) ------------------------------------------------------

    def iter_ops(self, batch: int = 500) -> Iterator[LocalOp]:
        """Pending moves/retirements in the order they must be applied (before downloads)."""
        after = 0
        while True:
            rows = self._query(
                "SELECT op_id, kind, item_id, src_path, dst_path, reason, created_at FROM ops "
                "WHERE op_id > ? ORDER BY op_id LIMIT ?",
                (after, batch),
            )
            if not rows:
                return
            for row in rows:
                yield LocalOp(*row)
            after = rows[-1][0]

    def complete_ops(self, op_ids: Iterable[int]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM ops WHERE op_id = ?", [(i,) for i in op_ids])

    def set_op_source(self, op_id: int, src_path: str) -> None:
        """The file of a pending op now waits at `src_path` (moved aside for a swap)."""
        with self._tx() as db:
            db.execute("UPDATE ops SET src_path = ? WHERE op_id = ?", (src_path, op_id))

    def count_ops(self) -> int:
        return int(self._query("SELECT count(*) FROM ops")[0][0])

    def requeue_failed(self) -> int:
        """Give failed files another chance (a new run); returns how many."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE items SET status = 'pending', attempts = 0 "
                "WHERE kind = 'file' AND status = 'failed'"
            )
            return cur.rowcount

    def requeue(self, item_id: str, reason: str) -> None:
        """A done file is not where the state says (e.g. removed locally): fetch it again."""
        with self._tx() as db:
            db.execute(
                "UPDATE items SET status = 'pending', last_error = ?, done_size = NULL, "
                "done_hash = NULL, done_mtime = NULL, done_etag = NULL, done_ctag = NULL "
                "WHERE item_id = ? AND kind = 'file'",
                (reason, state_key(item_id)),
            )

    # -- the download engine's API ---------------------------------------------------------------

    def iter_pending_files(self, batch: int = 500) -> Iterator[FileTask]:
        """Selected files still to download, in batches (keyset pagination: flat memory)."""
        yield from self._iter_files("pending", batch)

    def iter_done_files(self, batch: int = 500) -> Iterator[ItemRecord]:
        """Files on disk (done or unverified), for `verify`."""
        after = ""
        while True:
            rows = self._query(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE kind = 'file' "
                "AND status IN ('done', 'unverified') AND item_id > ? ORDER BY item_id LIMIT ?",
                (after, batch),
            )
            if not rows:
                return
            yield from (_item_record(r) for r in rows)
            after = rows[-1][0]

    def _iter_files(self, status: str, batch: int) -> Iterator[FileTask]:
        after = ""
        while True:
            rows = self._query(
                f"SELECT {_TASK_COLUMNS} FROM items WHERE kind = 'file' AND selected = 1 "
                "AND status = ? AND local_path IS NOT NULL AND item_id > ? "
                "ORDER BY item_id LIMIT ?",
                (status, after, batch),
            )
            if not rows:
                return
            graph_ids = self.shared_file_ids()
            yield from (_file_task(r, graph_ids) for r in rows)
            after = rows[-1][0]

    def get_file(self, item_id: str) -> ItemRecord | None:
        rows = self._query(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE item_id = ?", (state_key(item_id),)
        )
        return _item_record(rows[0]) if rows else None

    def get_task(self, item_id: str) -> FileTask | None:
        rows = self._query(
            f"SELECT {_TASK_COLUMNS} FROM items WHERE item_id = ? AND kind = 'file'",
            (state_key(item_id),),
        )
        return _file_task(rows[0], self.shared_file_ids()) if rows else None

    def mark_done(
        self,
        item_id: str,
        *,
        size: int,
        quickxorhash: str | None,
        mtime: float | None,
        etag: str | None,
    ) -> None:
        self.mark_done_many([DoneRecord(item_id, size, quickxorhash, mtime, etag)])

    def mark_done_many(self, records: Iterable[DoneRecord | Mapping[str, Any]]) -> None:
        """Record verified files in one transaction (dicts with the DoneRecord keys also do)."""
        rows = []
        for r in records:
            rec = r if isinstance(r, DoneRecord) else DoneRecord(**r)
            rows.append((rec.size, rec.quickxorhash, rec.mtime, rec.etag, state_key(rec.item_id)))
        with self._tx() as db:
            db.executemany(
                "UPDATE items SET status = 'done', last_error = NULL, done_size = ?, "
                "done_hash = ?, done_mtime = ?, done_etag = ?, done_ctag = ctag "
                "WHERE item_id = ?",
                rows,
            )

    def mark_unverified(self, item_id: str, reason: str) -> None:
        """Kept on disk, but the server's hash disagrees with the delivered bytes."""
        with self._tx() as db:
            db.execute(
                "UPDATE items SET status = 'unverified', last_error = ?, done_size = size, "
                "done_hash = quickxorhash, done_mtime = mtime, done_etag = etag, "
                "done_ctag = ctag WHERE item_id = ?",
                (reason, state_key(item_id)),
            )

    def mark_failed(self, item_id: str, reason: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE items SET status = 'failed', last_error = ? WHERE item_id = ?",
                (reason, state_key(item_id)),
            )

    def record_attempt(self, item_id: str, error: str | None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE items SET attempts = attempts + 1, last_error = ? WHERE item_id = ?",
                (error, state_key(item_id)),
            )

    def update_file_metadata(self, item: RemoteItem | Mapping[str, Any]) -> FileTask | None:
        """The file changed after the scan: store its new size/etag/hash; return the new task.

        Takes our RemoteItem; a Graph item dict is accepted and parsed by scan.parse_item.
        Returns None when the item is no longer a file.
        """
        if isinstance(item, RemoteItem):
            remote = item
        else:
            from onedrive_backup.scan import parse_item  # scan owns Graph's JSON shapes

            remote = parse_item(item)
        if remote.kind != "file" or remote.deleted:
            return None
        key = self._key_of(remote.item_id, remote.drive_id)
        with self._tx() as db:
            db.execute(
                "UPDATE items SET size = ?, mtime = ?, ctime = ?, etag = ?, ctag = ?, "
                "quickxorhash = ?, sha256 = ? WHERE item_id = ? AND kind = 'file'",
                (
                    remote.size,
                    remote.mtime,
                    remote.ctime,
                    remote.etag,
                    remote.ctag,
                    remote.quickxorhash,
                    remote.sha256,
                    key,
                ),
            )
        return self.get_task(key)

    def _key_of(self, graph_id: str, drive_id: str | None) -> str:
        """The row of a file Graph calls `graph_id` in `drive_id` (see shared_key)."""
        rows = self._query("SELECT drive_id FROM items WHERE item_id = ?", (graph_id,))
        if drive_id is None or (rows and (rows[0][0] or drive_id).lower() == drive_id.lower()):
            return graph_id
        for key, rid in self.shared_file_ids().items():
            if rid == graph_id:
                return key
        tail = ":" + graph_id
        rows = self._query(
            "SELECT item_id FROM items WHERE kind = 'file' AND drive_id = ? COLLATE NOCASE "
            "AND substr(item_id, -?) = ? LIMIT 1",
            (drive_id, len(tail), tail),
        )
        return str(rows[0][0]) if rows else graph_id

    # -- reporting -----------------------------------------------------------------------------

    def totals(self) -> Totals:
        """Selected files per status (count, bytes), special counts over all items."""
        by_status: dict[str, StatusTotal] = {s: StatusTotal() for s in STATUSES}
        for status, count, size in self._query(
            "SELECT status, count(*), coalesce(sum(size), 0) FROM items "
            "WHERE kind = 'file' AND selected = 1 GROUP BY status"
        ):
            by_status[status] = StatusTotal(count, size)
        special = {
            s: n
            for s, n in self._query(
                "SELECT special, count(*) FROM items WHERE special IS NOT NULL GROUP BY special"
            )
        }
        deselected = self._query(
            "SELECT count(*) FROM items WHERE kind = 'file' AND selected = 0 "
            "AND status IN ('done', 'unverified')"
        )[0][0]
        return Totals(by_status, special, deselected)

    def iter_special(self, limit: int = 1000) -> Iterator[tuple[str, str, str | None]]:
        """(special, remote path, reason) of items other than zero-byte files."""
        for special in ("onenote", "vault", "malware", "remote"):
            rows = self._query(
                "SELECT remote_path, name, last_error FROM items WHERE special = ? "
                "AND (kind != 'file' OR special != 'vault' OR parent_id NOT IN "
                "(SELECT item_id FROM items WHERE special = 'vault')) "
                "ORDER BY remote_path LIMIT ?",
                (special, limit),
            )
            for remote_path, name, reason in rows:
                yield special, remote_path or name, reason

    def renamed_for_disk(self, limit: int = 1000) -> tuple[int, list[tuple[str, str]]]:
        """Selected items whose local name differs from the remote one (illegal characters,
        reserved or over-long names, collisions): (count, [(remote path, local path)])."""
        where = (
            "FROM items WHERE selected = 1 AND local_name IS NOT NULL AND local_name != name "
            "AND deleted = 0"
        )
        count = int(self._query(f"SELECT count(*) {where}")[0][0])
        rows = self._query(
            f"SELECT remote_path, local_path {where} ORDER BY remote_path LIMIT ?", (limit,)
        )
        return count, [(str(remote), str(local)) for remote, local in rows]

    def summary(self) -> BackupSummary:
        return _summary(self)

    def count_unplaced(self) -> int:
        """Items that could not be placed (their parent never appeared)."""
        return self.count_dirty()

    # -- items shared from other drives (scan.follow_shared) -------------------------------------

    def shortcut_rows(self) -> list[FolderRow]:
        """Shortcuts in our drive to items of other drives: reported ones (special "remote")
        and those followed before (whatever their special is now)."""
        followed = set(self.get_meta("shared_anchors", []))
        rows = self._query(
            "SELECT item_id, parent_id, name, kind, special, local_name, local_path, "
            "remote_path, dirty, deleted FROM items WHERE deleted = 0 AND special = 'remote'"
        )
        for chunk in _chunks(sorted(followed)):
            marks = ",".join("?" * len(chunk))
            rows += self._query(
                "SELECT item_id, parent_id, name, kind, special, local_name, local_path, "
                "remote_path, dirty, deleted FROM items WHERE deleted = 0 "
                f"AND special IS NOT 'remote' AND item_id IN ({marks})",
                chunk,
            )
        return [
            FolderRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), bool(r[9]))
            for r in rows
            if ":" not in r[0]  # a shortcut inside a shared folder is not followed
        ]

    def unfollow_shared(self) -> int:
        """--include-shared was turned off: the shortcuts followed so far are reported as
        skipped again (placed again by the resolve pass); what was backed up through them
        stays on disk as it is, no longer selected nor updated. Returns the shortcuts."""
        anchors = list(self.get_meta("shared_anchors", []))
        with self._tx() as db:
            db.executemany(
                "UPDATE items SET special = 'remote', dirty = 1 WHERE item_id = ?",
                [(a,) for a in anchors],
            )
            db.execute("UPDATE items SET selected = 0 WHERE instr(item_id, ':') > 0")
            _set_meta(db, "shared_anchors", [])
            _set_meta(db, "shared_files", {})
        return len(anchors)

    def shared_file_ids(self) -> dict[str, str]:
        """Followed shortcuts to single files: state key → the file's id in its own drive."""
        return dict(self.get_meta("shared_files", {}))

    def set_shared(self, anchors: Iterable[str], files: Mapping[str, str]) -> None:
        """Record the shortcuts followed by this scan (`files`: see shared_file_ids)."""
        self.set_meta_many({"shared_anchors": sorted(anchors), "shared_files": dict(files)})

    def ingest_shared(self, items: Sequence[RemoteItem], *, anchor: RemoteItem | None) -> None:
        """Store items of another drive (keys already made with shared_key) in one
        transaction, like a delta page but without moving the cursor: changed files go back to
        pending and their old versions are queued for retirement. `anchor` is the shortcut's
        own row as followed; it is placed again when what it is changes (e.g. from skipped)."""
        latest: dict[str, RemoteItem] = {}
        for item in [anchor, *items] if anchor is not None else items:
            latest.pop(item.item_id, None)
            latest[item.item_id] = item
        with self._tx() as db:
            generation, stats_json = db.execute("SELECT generation, stats FROM cursor").fetchone()
            stats: dict[str, int] = json.loads(stats_json)
            existing = _existing_rows(db, list(latest))
            if anchor is not None:
                db.execute(
                    "UPDATE items SET dirty = 1 WHERE item_id = ? AND special IS NOT ?",
                    (anchor.item_id, anchor.special),
                )
            ops: list[tuple[Any, ...]] = []
            now = time.time()
            upserts = [
                _upsert_values(item, existing.get(item.item_id), generation, stats, ops, now)
                for item in latest.values()
            ]
            db.executemany(_UPSERT_SQL, upserts)
            db.executemany(_OP_SQL, ops)
            db.execute("UPDATE cursor SET stats = ?", (json.dumps(stats),))

    def mark_shared_gone(self, anchor_id: str, seen: set[str]) -> int:
        """After a complete listing through shortcut `anchor_id`: its items not listed are
        gone (deleted like a delta deletion: the resolve pass retires them). Returns how many."""
        rows = self._query(
            "SELECT item_id FROM items WHERE item_id > ? AND item_id < ? AND deleted = 0",
            (anchor_id + ":", anchor_id + ";"),
        )
        gone = [(r[0],) for r in rows if r[0] not in seen]
        with self._tx() as db:
            db.executemany("UPDATE items SET deleted = 1, dirty = 1 WHERE item_id = ?", gone)
        return len(gone)


# --- SQL helpers for ingest ------------------------------------------------------------------

_UPSERT_SQL = """
INSERT INTO items (item_id, drive_id, parent_id, name, kind, size, mtime, ctime, etag, ctag,
    quickxorhash, sha256, status, special, attempts, last_error, done_size, done_hash,
    done_mtime, done_etag, done_ctag, dirty, deleted, seen_gen)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)
ON CONFLICT (item_id) DO UPDATE SET drive_id = excluded.drive_id,
    parent_id = excluded.parent_id, name = excluded.name, kind = excluded.kind,
    size = excluded.size, mtime = excluded.mtime, ctime = excluded.ctime, etag = excluded.etag,
    ctag = excluded.ctag, quickxorhash = excluded.quickxorhash, sha256 = excluded.sha256,
    status = excluded.status, special = excluded.special, attempts = excluded.attempts,
    last_error = excluded.last_error, done_size = excluded.done_size,
    done_hash = excluded.done_hash, done_mtime = excluded.done_mtime,
    done_etag = excluded.done_etag, done_ctag = excluded.done_ctag,
    dirty = max(items.dirty, excluded.dirty), deleted = 0, seen_gen = excluded.seen_gen
"""
# A new item placed at ingest (see BackupState.ingest_page): the upsert's values with dirty
# replaced by the placement (local name, local path, remote path, selected) and dirty = 0.
_INSERT_PLACED_SQL = """
INSERT INTO items (item_id, drive_id, parent_id, name, kind, size, mtime, ctime, etag, ctag,
    quickxorhash, sha256, status, special, attempts, last_error, done_size, done_hash,
    done_mtime, done_etag, done_ctag, local_name, local_path, remote_path, selected, dirty,
    deleted, seen_gen)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?)
"""


class IngestPlacer(Protocol):
    """Places new items while pages are ingested (scan._EagerPlacer)."""

    def place(self, item: RemoteItem) -> tuple[str, str, str, int] | None:
        """(local name, local path, remote path, selected) for a new item, or None."""

    def forget(self, item_id: str) -> None:
        """`item_id` was listed again or deleted: nothing more is placed under it."""


# Indexes on parent ids, read only by the resolve pass. Ingest would update them at random
# places (hundreds of index pages written per delta page, most of a first scan's time), so a
# full enumeration runs without them and they are built once, sorted, when it ends.
_RESOLVE_INDEXES = (
    ("items_parent", "CREATE INDEX IF NOT EXISTS items_parent ON items (parent_id)"),
    ("items_dirty", "CREATE INDEX IF NOT EXISTS items_dirty ON items (parent_id) WHERE dirty = 1"),
)
# The resolve pass's staging tables (see BackupState.begin_placements).
_STAGE_SQL = (
    "DROP TABLE IF EXISTS temp.placement",
    "DROP TABLE IF EXISTS temp.placed_parent",
    "DROP TABLE IF EXISTS temp.placement_rows",
    "CREATE TEMP TABLE placement (seq INTEGER PRIMARY KEY, item_id TEXT NOT NULL, "
    "local_name TEXT, local_path TEXT, remote_path TEXT, selected INTEGER, special TEXT, "
    "keep_dirty INTEGER)",
    "CREATE TEMP TABLE placed_parent (item_id TEXT PRIMARY KEY)",
    "CREATE TEMP TABLE placement_rows (rid INTEGER PRIMARY KEY, kind TEXT, status TEXT, "
    "last_error TEXT, local_name TEXT, local_path TEXT, remote_path TEXT, selected INTEGER, "
    "special TEXT, keep_dirty INTEGER)",
)
_OP_SQL = (
    "INSERT INTO ops (kind, item_id, src_path, dst_path, reason, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class _Old:
    parent_id: str | None
    name: str
    kind: str
    size: int
    ctag: str | None
    quickxorhash: str | None
    status: str | None
    attempts: int
    last_error: str | None
    local_path: str | None
    done_size: int | None
    done_hash: str | None
    done_mtime: float | None
    done_etag: str | None
    done_ctag: str | None
    deleted: int


def _existing_rows(db: sqlite3.Connection, ids: list[str]) -> dict[str, _Old]:
    found: dict[str, _Old] = {}
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        for row in db.execute(
            "SELECT item_id, parent_id, name, kind, size, ctag, quickxorhash, status, attempts, "
            "last_error, local_path, done_size, done_hash, done_mtime, done_etag, done_ctag, "
            f"deleted FROM items WHERE item_id IN ({marks})",
            chunk,
        ):
            found[row[0]] = _Old(*row[1:])
    return found


def _chunks(values: list[str], size: int = _IN_CHUNK) -> Iterator[list[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def content_changed(old: _Old, item: RemoteItem) -> bool:
    """Did a done file's content change? cTag/hash/size; the eTag also moves on a rename."""
    if old.done_size is not None and old.done_size != item.size:
        return True
    if old.done_hash and item.quickxorhash:
        return old.done_hash != item.quickxorhash
    if old.done_ctag and item.ctag:
        return old.done_ctag != item.ctag
    return False


def _remote_changed(old: _Old, item: RemoteItem) -> bool:
    if old.size != item.size:
        return True
    if old.quickxorhash and item.quickxorhash:
        return old.quickxorhash != item.quickxorhash
    return bool(old.ctag and item.ctag and old.ctag != item.ctag)


def _status_for(
    special: str | None, status: str | None, last_error: str | None
) -> tuple[str | None, str | None]:
    """A file's status given what it is: skipped specials stay skipped unless already on disk."""
    if special in SKIPPED_SPECIALS:
        if status in ON_DISK:
            return status, last_error
        return "skipped", _SKIP_REASONS.get(special or "", last_error)
    if status == "skipped":
        return "pending", None
    return status, last_error


_SKIP_REASONS = {
    "malware": "OneDrive flagged this file as malware",
    "vault": "in the Personal Vault (not reachable by apps)",
    "remote": "shared with you from another drive (use --include-shared)",
}

_REBUILD_INDEXES_AT = 20_000  # placements in one pass; above, two indexes are rebuilt
_SKIPPED_IN = ", ".join(f"'{k}'" for k in sorted(SKIPPED_SPECIALS))
_ON_DISK_IN = ", ".join(f"'{k}'" for k in sorted(ON_DISK))
# A placed file's new status: a skipped special stays skipped unless already on disk; a file
# no longer special comes back from "skipped" to "pending" (see _status_for).
_NEW_STATUS = (
    f"CASE WHEN r.kind != 'file' THEN r.status "
    f"WHEN r.special IN ({_SKIPPED_IN}) THEN "
    f"CASE WHEN r.status IN ({_ON_DISK_IN}) THEN r.status ELSE 'skipped' END "
    f"WHEN r.status = 'skipped' THEN 'pending' ELSE r.status END"
)
_SKIP_REASON_CASES = " ".join(
    "WHEN '{}' THEN '{}'".format(k, v.replace("'", "''")) for k, v in _SKIP_REASONS.items()
)
_NEW_LAST_ERROR = (
    f"CASE WHEN r.kind != 'file' THEN r.last_error "
    f"WHEN r.special IN ({_SKIPPED_IN}) THEN "
    f"CASE WHEN r.status IN ({_ON_DISK_IN}) THEN r.last_error "
    f"ELSE coalesce(CASE r.special {_SKIP_REASON_CASES} END, r.last_error) END "
    "WHEN r.status = 'skipped' THEN NULL ELSE r.last_error END"
)
# Selected: asked for, has a status and is no skipped special. (Outside the skipped specials
# _NEW_STATUS is NULL exactly when r.status is, so the old status can stand in for it.)
_NEW_SELECTED = (
    f"(r.selected AND r.status IS NOT NULL AND coalesce(r.special NOT IN ({_SKIPPED_IN}), 1))"
)
_APPLY_PLACEMENTS_SQL = (
    "UPDATE items SET local_name = r.local_name, local_path = r.local_path, "
    "remote_path = r.remote_path, special = r.special, dirty = r.keep_dirty, "
    f"status = {_NEW_STATUS}, last_error = {_NEW_LAST_ERROR}, selected = {_NEW_SELECTED} "
    "FROM (SELECT rid, kind, status, last_error, local_name, local_path, remote_path, "
    "selected, special, keep_dirty FROM temp.placement_rows) AS r WHERE items.rowid = r.rid"
)


def _upsert_values(
    item: RemoteItem,
    old: _Old | None,
    generation: int,
    stats: dict[str, int],
    ops: list[tuple[Any, ...]],
    now: float,
) -> tuple[Any, ...]:
    is_file = item.kind == "file"
    status: str | None = "pending" if is_file else None
    attempts = 0
    last_error = item.special_reason
    done: tuple[Any, ...] = (None, None, None, None, None)
    dirty = 1
    if old is None:
        if is_file:
            stats["added"] = stats.get("added", 0) + 1
    else:
        dirty = int(bool(old.deleted) or old.parent_id != item.parent_id or old.name != item.name)
        if is_file and old.kind == "file":
            status, attempts, last_error = old.status, old.attempts, old.last_error
            done = (old.done_size, old.done_hash, old.done_mtime, old.done_etag, old.done_ctag)
            if status in ON_DISK and content_changed(old, item):
                if old.local_path:
                    ops.append(("retire", item.item_id, old.local_path, None, "replaced", now))
                status, attempts, last_error = "pending", 0, None
                done = (None, None, None, None, None)
                stats["modified"] = stats.get("modified", 0) + 1
            elif status in ("failed", "pending") and _remote_changed(old, item):
                status, attempts, last_error = "pending", 0, None
        elif is_file:
            stats["added"] = stats.get("added", 0) + 1
    if is_file:
        status, last_error = _status_for(item.special, status, last_error or item.special_reason)
    return (
        item.item_id,
        item.drive_id,
        item.parent_id,
        item.name,
        item.kind,
        item.size,
        item.mtime,
        item.ctime,
        item.etag,
        item.ctag,
        item.quickxorhash,
        item.sha256,
        status,
        item.special,
        attempts,
        last_error,
        *done,
        dirty,
        generation,
    )


def _set_meta(db: sqlite3.Connection, key: str, value: Any) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value)),
    )


def _init_connection(db: sqlite3.Connection) -> None:
    # WAL + synchronous=NORMAL: a commit is in the WAL (in the OS cache) before COMMIT returns,
    # so it survives the process being killed (-9), which is what a run must survive; only an
    # OS crash or power cut may lose the last few transactions, and never corrupts the file.
    # FULL would fsync every commit, which costs too much with one commit per page/batch.
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA cache_size = -32768")
    db.execute("PRAGMA foreign_keys = OFF")


# --- finding backups --------------------------------------------------------------------------


def find_backups(dest: Path | str) -> list[BackupSummary]:
    """The backups in `dest`, oldest first. Readable while another run holds the lock."""
    dest = Path(dest)
    found: list[BackupSummary] = []
    try:
        candidates = sorted(p for p in dest.iterdir() if BACKUP_NAME_RE.match(p.name))
    except OSError:
        return []
    for path in candidates:
        if not (path / STATE_DIR / STATE_FILE).is_file():
            found.extend(_legacy_summary(path))
            continue
        try:
            with BackupState.open(path, read_only=True) as state:
                found.append(state.summary())
        except StateError as exc:
            found.append(
                BackupSummary(path.name, str(path), False, 0, 0, 0, 0, None, None, exc.message)
            )
    return found


def resolve_backup(dest: Path | str, name: str) -> Path:
    """`latest` or a backup folder name (or path) → the backup folder."""
    dest = Path(dest)
    backups = find_backups(dest)
    if name == "latest":
        if not backups:
            raise UsageError(
                f"There is no backup in {dest} to resume.", hint="Start one with --new."
            )
        return Path(backups[-1].path)
    candidate = Path(name) if os.sep in name or "/" in name else dest / name
    if (candidate / STATE_DIR / STATE_FILE).is_file() or _legacy_summary(candidate):
        return candidate
    names = ", ".join(b.name for b in backups) or "none"
    raise UsageError(f"No backup named {name!r} in {dest}.", hint=f"Existing backups: {names}.")


def _legacy_summary(path: Path) -> list[BackupSummary]:
    """A folder made by the earlier script (its .progress.json), as one summary; else none."""
    from onedrive_backup import legacy  # legacy builds on this module

    if not legacy.is_legacy_folder(path):
        return []
    try:
        return [legacy.summary(path)]
    except StateError as exc:
        return [
            BackupSummary(
                path.name, str(path), False, 0, 0, 0, 0, None, None, exc.message, legacy=True
            )
        ]


def _summary(state: BackupState) -> BackupSummary:
    """How far a backup got (for `list` and the resume prompt)."""
    totals = state.totals()
    cursor = state.get_cursor()
    last = state.last_run()
    done = totals.count("done") + totals.count("unverified")
    complete = (
        cursor.phase == "complete" and totals.count("pending") == 0 and totals.count("failed") == 0
    )
    return BackupSummary(
        name=state.backup_dir.name,
        path=str(state.backup_dir),
        complete=complete,
        files_done=done,
        files_total=totals.files,
        bytes_done=totals.bytes("done") + totals.bytes("unverified"),
        bytes_total=totals.total_bytes,
        last_run_at=(last[1] or last[0]) if last else None,
        last_outcome=last[2] if last else None,
    )
