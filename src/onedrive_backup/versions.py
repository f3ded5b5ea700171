"""Apply the scan's queued local changes to the live tree, and keep what the cloud removed.

The scan queues per-file ops (state.LocalOp) for files already on disk: `move` when a file or
one of its folders was renamed or moved in OneDrive (it is renamed on disk, never downloaded
again), `retire` when a file was deleted or its content replaced. A retired file goes to
`<backup>/.versions/<run stamp>/<its relative path>` (invariant 7), or is deleted with
`--no-versions`; nothing else is ever deleted.

Ops run in `op_id` order, before the downloads. Each one is idempotent, so a run killed between
a rename and the commit that records it simply repeats the op next time:

- a file a later op still has to move away is "displaced" to `.onedrive-backup/moving/<op id>`
  of the op that will pick it up; an op looks there first. That settles swaps and cycles
  (a→b, b→a) and case-only renames (Photo.jpg → photo.jpg on a case-insensitive disk, where
  both names are one file) without any extra record in the state;
- a move whose source is gone and whose destination holds the right content is done;
- a file that is nowhere is requeued for download; an unknown file in the way is set aside
  into the versions folder, never overwritten.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from onedrive_backup import events
from onedrive_backup.download import file_quickxorhash
from onedrive_backup.events import EventSink
from onedrive_backup.models import ON_DISK, LocalOp
from onedrive_backup.paths import (
    UnsafePathError,
    collision_key,
    disambiguate,
    ensure_inside,
    fsync_dir,
)
from onedrive_backup.state import STATE_DIR, BackupState

log = logging.getLogger(__name__)

VERSIONS_DIR = ".versions"
STAMP_RE = re.compile(r"^\d{8}_\d{6}$")
STAMP_FORMAT = "%Y%m%d_%H%M%S"
_MOVING = f"{STATE_DIR}/moving"  # where displaced files wait for the op that takes them
_FSYNC_EVERY = 500  # ops between flushes of the folders they changed
Level = Literal["info", "warning"]


@dataclass
class LocalChanges:
    """What one run did to files already on disk (the summary's "changes")."""

    moved: int = 0  # files moved/renamed on disk instead of downloaded again
    retired_deleted: int = 0  # deleted in the cloud: moved into .versions/
    retired_replaced: int = 0  # previous version of a modified file: moved into .versions/
    removed: int = 0  # with --no-versions: deleted/replaced files removed from the live tree
    missing: int = 0  # a file an op expected was not on disk (requeued for download)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def apply_local_changes(
    state: BackupState, *, run_stamp: str, keep: bool, emit: EventSink = events.discard
) -> LocalChanges:
    """Apply every queued op (moves, retirements) to the live tree; see the module docstring."""
    ops = list(state.iter_ops())
    if not ops:
        return LocalChanges()
    applier = _Applier(state, run_stamp=run_stamp, keep=keep, ops=ops)
    changes = applier.run()
    for text, level in _messages(changes, applier.set_aside, run_stamp, keep):
        emit(events.Message(text=text, level=level))
    return changes


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _messages(c: LocalChanges, set_aside: int, stamp: str, keep: bool) -> list[tuple[str, Level]]:
    where = f"{VERSIONS_DIR}/{stamp}"
    out: list[tuple[str, Level]] = []
    if c.moved:
        out.append(
            (
                f"Moved or renamed {_plural(c.moved, 'file')} on disk as in OneDrive "
                "(not downloaded again).",
                "info",
            )
        )
    if c.retired_deleted:
        out.append(
            (f"Kept {_plural(c.retired_deleted, 'file')} deleted in OneDrive in {where}.", "info")
        )
    if c.retired_replaced:
        out.append(
            (
                f"Kept the previous version of {_plural(c.retired_replaced, 'changed file')} "
                f"in {where}.",
                "info",
            )
        )
    if c.removed and not keep:
        out.append(
            (
                f"Removed {_plural(c.removed, 'file')} deleted or replaced in OneDrive "
                "(--no-versions).",
                "info",
            )
        )
    if c.missing:
        out.append(
            (
                f"{_plural(c.missing, 'file')} {'was' if c.missing == 1 else 'were'} not where "
                "the backup expected; downloading again.",
                "warning",
            )
        )
    if set_aside:
        out.append(
            (
                f"Set {_plural(set_aside, 'unexpected file')} that stood in the way "
                f"aside into {where}.",
                "warning",
            )
        )
    return out


class _Applier:
    """One pass over the op queue."""

    def __init__(self, state: BackupState, *, run_stamp: str, keep: bool, ops: list[LocalOp]):
        self.state = state
        self.root = state.backup_dir
        self.keep = keep
        self.versions = f"{VERSIONS_DIR}/{run_stamp}"
        self.ops = ops
        self.changes = LocalChanges()
        self.set_aside = 0
        # collision key of a source path → ops (in order) that will take a file from there
        self.sources: dict[str, list[LocalOp]] = defaultdict(list)
        for op in ops:
            self.sources[collision_key(op.src_path)].append(op)
        self.sources_moved: dict[int, str] = {}  # op id → where its file was parked
        self.since_fsync = 0
        self.touched: set[Path] = set()
        self.fixed_case: set[str] = set()

    def run(self) -> LocalChanges:
        for op in self.ops:
            try:
                if op.kind == "move" and op.dst_path is not None:
                    self._move(op)
                else:
                    self._retire(op)
            except UnsafePathError as exc:
                # A state bug or a hostile symlink on disk: never act outside the backup.
                log.error("local change %d refused: %s", op.op_id, exc)
                if op.kind == "move":
                    self.state.requeue(op.item_id, "could not be moved safely on disk")
            # One op at a time: a later op may refill a path this one emptied, so an op must
            # never be repeated once a later one has run.
            self.state.complete_ops([op.op_id])
            self.since_fsync += 1
            if self.since_fsync >= _FSYNC_EVERY:
                self._flush()
        self._flush()
        with contextlib.suppress(OSError):
            (self.root / _MOVING).rmdir()
        return self.changes

    # -- the two kinds of op ---------------------------------------------------------------------

    def _move(self, op: LocalOp) -> None:
        assert op.dst_path is not None
        dst = self._path(op.dst_path)
        self._fix_folder_case(op.src_path, op.dst_path)
        src = self._source(op)
        if src is None:
            self._recover_move(op, dst)
            return
        if _exists(dst):
            same = collision_key(op.src_path) == collision_key(op.dst_path)
            if same and src != self._staging(op.op_id) and self._one_entry(op):
                # A case-insensitive disk, where both spellings name one file.
                if not self._alias(op.dst_path):  # its folder's case fix carried it there
                    self.changes.moved += 1
                    return
                staged = self._staging(op.op_id)
                self._replace(src, staged)
                src = staged
            else:
                self._clear(op, op.dst_path, dst)
        self._replace(src, dst)
        self.changes.moved += 1

    def _retire(self, op: LocalOp) -> None:
        src = self._source(op)
        if src is None:  # already retired by a run that was stopped, or removed by hand
            log.info("nothing to retire at %s (op %d)", op.src_path, op.op_id)
            return
        self._retire_file(src, op.src_path, op)

    def _retire_file(self, src: Path, rel: str, op: LocalOp) -> None:
        """Into this run's versions folder under `rel`; deleted only with --no-versions."""
        if not self.keep and src.is_file() and not src.is_symlink():
            src.unlink()
            self._prune_empty(src.parent)
            self.touched.add(src.parent)
            self.changes.removed += 1
            return
        self._replace(src, self._version_path(rel))
        if op.reason == "replaced":
            self.changes.retired_replaced += 1
        else:
            self.changes.retired_deleted += 1

    # -- pieces ----------------------------------------------------------------------------------

    def _path(self, rel: str) -> Path:
        return ensure_inside(self.root, rel)

    def _staging(self, op_id: int) -> Path:
        return self.root / _MOVING / str(op_id)

    def _source(self, op: LocalOp) -> Path | None:
        """Where this op's file is now: displaced for it, or still at its source path."""
        staged = self._staging(op.op_id)
        if _exists(staged):
            return staged
        src = self._path(self.sources_moved.get(op.op_id, op.src_path))
        return src if _exists(src) else None

    def _one_entry(self, op: LocalOp) -> bool:
        """Do a source and a destination that differ only in case name one entry on disk?

        Inode numbers cannot tell on every disk (FUSE exFAT gives each spelling its own), so
        the listings decide: on a case-insensitive disk only one of the spellings is listed.
        """
        assert op.dst_path is not None
        return self._alias(op.src_path) or self._alias(op.dst_path)

    def _alias(self, rel: str) -> bool:
        """Is some component of `rel` found on disk only under another spelling?"""
        folder = self.root
        for part in PurePosixPath(rel).parts:
            try:
                if part not in os.listdir(folder):
                    return True
            except OSError:
                return False
            folder = folder / part
        return False

    def _clear(self, op: LocalOp, rel: str, dst: Path) -> None:
        """Something stands at `dst`: displace it for the later op that moves it, or set it
        aside (a file the state does not know is user data: it is kept, not overwritten)."""
        later = next(
            (o for o in self.sources.get(collision_key(rel), ()) if o.op_id > op.op_id), None
        )
        if later is not None and later.item_id != op.item_id:
            if later.kind == "retire":  # retire it now, under its own path
                self._retire_file(dst, rel, later)
            else:
                self._replace(dst, self._staging(later.op_id))
            # Recorded, so that once the file has left the parking place nothing else at its
            # old path can be taken for it.
            parked = f"{_MOVING}/{later.op_id}"
            self.state.set_op_source(later.op_id, parked)
            self.sources_moved[later.op_id] = parked
            self.sources[collision_key(rel)].remove(later)
            return
        log.warning("an unexpected file stood at %s: set aside into %s", rel, self.versions)
        self._replace(dst, self._version_path(rel))
        self.set_aside += 1

    def _recover_move(self, op: LocalOp, dst: Path) -> None:
        """The source is gone: done by a run that was stopped, or the file is missing."""
        assert op.dst_path is not None
        if dst.is_file() and self._matches(op.item_id, dst):
            return
        if _exists(dst):  # something else is there: keep it, the file will be fetched again
            self._clear(op, op.dst_path, dst)
        self.state.requeue(op.item_id, "not found on disk where the backup expected it")
        self.changes.missing += 1

    def _matches(self, item_id: str, path: Path) -> bool:
        """Does `path` hold this item's verified content (as far as the record tells)?"""
        rec = self.state.get_file(item_id)
        if rec is None or rec.status not in ON_DISK or rec.done_size is None:
            return True  # replaced or gone since: a later op of the queue deals with it
        try:
            if path.stat().st_size != rec.done_size:
                return False
        except OSError:
            return False
        if not rec.done_hash:
            return True
        return file_quickxorhash(path)[0].b64digest() == rec.done_hash

    def _version_path(self, rel: str) -> Path:
        """A free name for `rel` under this run's versions folder."""
        target = self._path(f"{self.versions}/{rel}")
        n = 1
        while _exists(target):
            n += 1
            name = PurePosixPath(rel).name
            target = target.with_name(disambiguate(name, n))
        return target

    def _replace(self, src: Path, dst: Path) -> None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        self.touched.update((src.parent, dst.parent))
        self._prune_empty(src.parent)

    def _prune_empty(self, folder: Path) -> None:
        """Remove folders emptied by a move, up to the backup folder (never its own folders)."""
        while folder != self.root and folder.is_relative_to(self.root):
            top = folder.relative_to(self.root).parts[0]
            if top in (STATE_DIR, VERSIONS_DIR):
                return
            try:
                folder.rmdir()
            except OSError:
                return
            self.touched.add(folder.parent)
            folder = folder.parent

    def _fix_folder_case(self, src_rel: str, dst_rel: str) -> None:
        """A folder renamed only in case: on a case-insensitive disk the old folder *is* the
        new one, so it is renamed (via a temporary name) rather than created."""
        src_parts = PurePosixPath(src_rel).parent.parts
        dst_parts = PurePosixPath(dst_rel).parent.parts
        if src_parts == dst_parts or len(src_parts) != len(dst_parts):
            return
        for i, (old, new) in enumerate(zip(src_parts, dst_parts, strict=True)):
            if old == new or collision_key(old) != collision_key(new):
                continue
            wanted_rel = "/".join(dst_parts[: i + 1])
            if wanted_rel in self.fixed_case:
                continue
            self.fixed_case.add(wanted_rel)
            wanted = self._path(wanted_rel)
            temp = wanted.with_name(f"{new}.odb-case-tmp")
            if _exists(temp) and not _exists(wanted):  # a run stopped half-way through
                os.replace(temp, wanted)
                continue
            if not _exists(wanted) or _spelled(wanted):
                continue  # a case-sensitive disk, or already spelled as wanted
            os.replace(wanted.parent / old, temp)
            os.replace(temp, wanted)
            self.touched.add(wanted.parent)

    def _flush(self) -> None:
        for folder in self.touched:
            fsync_dir(folder)
        self.touched.clear()
        self.since_fsync = 0


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _spelled(path: Path) -> bool:
    """Does the folder hold an entry spelled exactly like `path`'s name?"""
    try:
        return path.name in os.listdir(path.parent)
    except OSError:
        return False


# --- retention --------------------------------------------------------------------------------


def stamp_time(name: str) -> float | None:
    """The local time a `.versions/<stamp>` folder name stands for, or None if it is not one."""
    if not STAMP_RE.match(name):
        return None
    try:
        return time.mktime(time.strptime(name, STAMP_FORMAT))
    except (ValueError, OverflowError):
        return None


def prune_versions(
    backup_dir: Path, *, older_than_days: float, emit: EventSink = events.discard
) -> int:
    """Remove `.versions/<stamp>` folders older than the given age; returns files removed."""
    root = backup_dir / VERSIONS_DIR
    if not root.is_dir():
        return 0
    cutoff = time.time() - older_than_days * 86400
    folders = removed = 0
    for folder in sorted(root.iterdir()):
        when = stamp_time(folder.name)
        if when is None or when >= cutoff or folder.is_symlink() or not folder.is_dir():
            continue
        count = sum(1 for p in folder.rglob("*") if p.is_file() or p.is_symlink())
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            log.warning("could not remove old versions in %s: %s", folder, exc)
            emit(events.Message(text=f"Could not remove {folder}: {exc}", level="warning"))
            continue
        folders += 1
        removed += count
    if folders:
        emit(
            events.Message(
                text=f"Removed {_plural(removed, 'old version')} "
                f"({_plural(folders, 'folder')} older than {older_than_days:g} days) "
                f"from {VERSIONS_DIR}."
            )
        )
    with contextlib.suppress(OSError):
        if not any(root.iterdir()):
            root.rmdir()
    return removed
