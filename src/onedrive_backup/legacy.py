"""Backups made by the earlier script: recognise, list and take over a `OneDrive_Backup_*` folder.

The earlier script (``onedrive_backup_enhanced.py``) left, beside the files it downloaded, a
``.progress.json`` of this shape::

    {"downloaded_files": {"<item id>": {"size": 13200000, "path": "...", "timestamp": "..."}},
     "timestamp": "2024-12-04T21:54:57"}

Taking such a folder over (``backup --resume NAME``):

1. `adopt` reads and checks ``.progress.json`` *before* writing anything, then creates our
   state inside the folder (`BackupState.adopt`) and keeps a copy of the file in
   ``.onedrive-backup/``. ``.progress.json`` itself and the user's files stay as they are.
2. The normal scan places every remote item at its safe local path (paths.safe_name).
3. `after_scan` (once): a file the earlier script stored under another path than ours (it
   named some files differently) is moved to our path when its size matches the drive's.
   A path in ``.progress.json`` may be absolute or relative; one that leads outside the
   folder is never followed.
4. The downloader adopts every file already at its path whose size and quickXorHash match the
   drive (no download); anything truncated or different is downloaded again and replaces it.

Files the earlier script left that the drive no longer has, or that are not selected, stay
where they are, untouched. A run cut short after step 1 does step 3 on its next run (the
state records whether it was done). Should the drive itself hold a top-level file named
``.progress.json``, the backup of that file takes its place; the copy in ``.onedrive-backup/``
keeps the earlier script's record.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from onedrive_backup import events
from onedrive_backup.errors import StateError
from onedrive_backup.events import EventSink
from onedrive_backup.models import BackupSummary
from onedrive_backup.paths import UnsafePathError, ensure_inside
from onedrive_backup.scan import epoch_seconds
from onedrive_backup.state import RESERVED_TOP_NAMES, STATE_DIR, STATE_FILE, BackupState

log = logging.getLogger(__name__)

PROGRESS_FILE = ".progress.json"
SAVED_COPY = "earlier-script-progress.json"  # in .onedrive-backup/, taken at adoption
META_KEY = "earlier_script"  # {"progress": ..., "entries": n, "prepass_done": bool}
OUTCOME = "made by the earlier script"

_REPAIR_HINT = (
    "It was left untouched, and so were the files in the folder. Repair the file or restore "
    'it from a copy; or replace its content with {"downloaded_files": {}} to resume anyway '
    "(files already in the folder are still checked against OneDrive and kept when they "
    "match); or start a new backup with --new."
)


@dataclass(frozen=True, slots=True)
class LegacyEntry:
    """One file the earlier script recorded as downloaded."""

    item_id: str
    size: int | None
    path: str | None


@dataclass(frozen=True)
class LegacyProgress:
    """What `.progress.json` says: the files it recorded, and when it last wrote."""

    file: Path
    entries: dict[str, LegacyEntry]
    saved_at: float | None
    ignored: int  # entries of a shape we do not understand (their files are re-checked anyway)

    @property
    def bytes_recorded(self) -> int:
        return sum(e.size or 0 for e in self.entries.values())


@dataclass(frozen=True)
class PrepassResult:
    """What `after_scan` did with the earlier script's records."""

    recorded: int = 0
    in_place: int = 0  # already at our path: the downloader checks and adopts them
    moved: int = 0  # moved from the earlier script's path to ours
    left: int = 0  # left where they are (size differs, not on disk, our path taken, ...)
    not_selected: int = 0  # gone from the drive, not selected, or already done


# --- recognising and reading -----------------------------------------------------------------


def is_legacy_folder(folder: Path) -> bool:
    """A folder with the earlier script's progress file and none of our state yet."""
    return (folder / PROGRESS_FILE).is_file() and not (folder / STATE_DIR / STATE_FILE).exists()


def read_progress(file: Path) -> LegacyProgress:
    """Parse `.progress.json`; a file that is not JSON of the expected shape is a StateError."""
    try:
        raw = json.loads(file.read_bytes().decode("utf-8-sig"))
    except OSError as exc:
        raise _bad(file, exc.strerror or str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise _bad(file, "it is not UTF-8 text") from exc
    except ValueError as exc:
        raise _bad(file, f"it is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise _bad(file, "it does not hold a JSON object")
    files = raw.get("downloaded_files", {})
    if not isinstance(files, dict):
        raise _bad(file, '"downloaded_files" is not an object of item ids')
    entries: dict[str, LegacyEntry] = {}
    ignored = 0
    for item_id, value in files.items():
        entry = _entry(item_id, value)
        if entry is None:
            ignored += 1
        else:
            entries[item_id] = entry
    if ignored:
        log.warning("%s: %d entries of an unknown shape ignored", file, ignored)
    return LegacyProgress(file, entries, epoch_seconds(raw.get("timestamp")), ignored)


def _bad(file: Path, why: str) -> StateError:
    return StateError(
        f"The progress file of the earlier script, {file}, cannot be read ({why}).", _REPAIR_HINT
    )


def _entry(item_id: str, value: Any) -> LegacyEntry | None:
    if not item_id or not isinstance(value, dict):
        return None
    size = value.get("size")
    path = value.get("path")
    if isinstance(size, bool) or not (size is None or (isinstance(size, int) and size >= 0)):
        return None
    if path is not None and not isinstance(path, str):
        return None
    return LegacyEntry(item_id, size, path or None)


def summary(folder: Path) -> BackupSummary:
    """The line `list` and the resume prompt show; the drive's total is known after a scan."""
    progress = read_progress(folder / PROGRESS_FILE)
    done = len(progress.entries)
    saved_at = progress.saved_at
    if saved_at is None:
        try:
            saved_at = progress.file.stat().st_mtime
        except OSError:
            saved_at = None
    return BackupSummary(
        name=folder.name,
        path=str(folder),
        complete=False,
        files_done=done,
        files_total=done,
        bytes_done=progress.bytes_recorded,
        bytes_total=progress.bytes_recorded,
        last_run_at=saved_at,
        last_outcome=OUTCOME,
        legacy=True,
    )


# --- taking the folder over ------------------------------------------------------------------


def adopt(folder: Path, emit: EventSink = events.discard) -> BackupState:
    """Our state inside the earlier script's folder; nothing is written if its file is bad."""
    progress = read_progress(folder / PROGRESS_FILE)
    record = {"progress": PROGRESS_FILE, "entries": len(progress.entries), "prepass_done": False}
    meta: dict[str, Any] = {META_KEY: record}
    created = _created(folder, progress)
    if created is not None:
        meta["created"] = created
    state = BackupState.adopt(folder, meta=meta)
    try:
        copy = state.state_dir / SAVED_COPY
        if not copy.exists():
            shutil.copy2(progress.file, copy)
    except OSError as exc:  # only a safety copy: the original stays where it is
        log.warning("could not copy %s: %s", progress.file, exc)
    except BaseException:
        state.close()
        raise
    emit(
        events.Message(
            text=f"This backup was made by the earlier script ({len(progress.entries):,} files "
            f"recorded in {PROGRESS_FILE}). Files already here are checked against OneDrive "
            "(size and hash) and kept when they match; the rest is downloaded."
        )
    )
    log.info("adopted %s (%d entries, %d ignored)", folder, len(progress.entries), progress.ignored)
    return state


def _created(folder: Path, progress: LegacyProgress) -> float | None:
    try:
        return datetime.strptime(folder.name[-15:], "%Y%m%d_%H%M%S").timestamp()
    except ValueError:
        return progress.saved_at


def after_scan(state: BackupState, emit: EventSink = events.discard) -> PrepassResult | None:
    """Once, after the first scan of an adopted folder: bring its files to our paths."""
    meta = state.get_meta(META_KEY)
    if not isinstance(meta, dict) or meta.get("prepass_done"):
        return None
    copy = state.state_dir / SAVED_COPY
    progress = read_progress(copy if copy.is_file() else state.backup_dir / PROGRESS_FILE)
    result = prepass(state, progress)
    state.set_meta(META_KEY, {**meta, "prepass_done": True})
    if result.moved or result.left:
        emit(
            events.Message(
                text=f"Earlier script's files: {result.moved:,} moved to their new names, "
                f"{result.left:,} left where they were (downloaded again instead)."
            )
        )
    log.info("earlier script's files: %s", result)
    return result


def prepass(state: BackupState, progress: LegacyProgress) -> PrepassResult:
    """Move each recorded file that is not at our local path there, if its size is right."""
    folder = state.backup_dir
    counts = {"in_place": 0, "moved": 0, "left": 0, "not_selected": 0}
    for entry in progress.entries.values():
        rec = state.get_file(entry.item_id)
        if rec is None or not rec.selected or rec.status != "pending" or not rec.local_path:
            counts["not_selected"] += 1
            continue
        outcome = _bring_to_place(folder, entry, rec.local_path, rec.size)
        counts[outcome] += 1
    return PrepassResult(recorded=len(progress.entries), **counts)


def _bring_to_place(folder: Path, entry: LegacyEntry, local_path: str, size: int) -> str:
    rel = relative_path(folder, entry.path) if entry.path else None
    if rel is None:
        return "left"
    if rel.as_posix() == local_path:
        return "in_place"
    try:
        src = ensure_inside(folder, rel)
        dst = ensure_inside(folder, local_path)
        st = os.lstat(src)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return "left"  # truncated or different: the downloader fetches it afresh
        if os.path.lexists(dst) and not os.path.samefile(src, dst):
            return "left"  # something is at our path already: the downloader decides
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, dst)  # same folder tree, same disk; a case-only rename included
    except (OSError, UnsafePathError) as exc:
        log.info("earlier script's file for item %s left in place: %s", entry.item_id, exc)
        return "left"
    return "moved"


def relative_path(folder: Path, raw: str) -> PurePosixPath | None:
    """The earlier script's path as a path inside `folder`, or None if it leads elsewhere.

    Relative paths are taken from the folder (or from its parent, if they start with the
    folder's name); absolute ones must lie inside the folder, also when the disk is now
    mounted elsewhere (the folder's own name is looked for in the path).
    """
    if not raw or "\x00" in raw:
        return None
    windows = "\\" in raw or bool(PureWindowsPath(raw).drive)
    pure = PureWindowsPath(raw) if windows else PurePosixPath(raw)
    anchored = bool(pure.anchor)
    parts = list(pure.parts[1:] if anchored else pure.parts)
    if anchored:
        inside = _strip_folder(folder, parts)
        if inside is None:
            return None
        parts = inside
    elif parts and parts[0] == folder.name and not (folder / parts[0]).exists():
        parts = parts[1:]
    if not parts or any(p in ("", ".", "..") for p in parts) or parts[0] in RESERVED_TOP_NAMES:
        return None
    rel = PurePosixPath(*parts)
    try:
        ensure_inside(folder, rel)
    except UnsafePathError:
        return None
    return rel


def _strip_folder(folder: Path, parts: list[str]) -> list[str] | None:
    for base in (folder.absolute(), folder.resolve()):
        prefix = list(base.parts[1:])
        if parts[: len(prefix)] == prefix:
            return parts[len(prefix) :]
    if folder.name in parts:  # the same folder, on a disk mounted under another path
        return parts[parts.index(folder.name) + 1 :]
    return None
