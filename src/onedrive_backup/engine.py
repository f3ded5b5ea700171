"""The backup run: plan → sign-in check → scan → local changes → space check → download → summary.

The engine knows nothing about terminals or browsers: it takes a `BackupPlan`, emits typed
events, and returns a `RunResult`. The CLI and the GUI are two renderers of the same events.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onedrive_backup import events, legacy
from onedrive_backup.config import Settings
from onedrive_backup.download import Downloader, DownloadOptions, DownloadStats
from onedrive_backup.errors import (
    BackupError,
    DestinationError,
    ExitCode,
    Interrupted,
    SignInRequired,
    UsageError,
)
from onedrive_backup.events import EventSink
from onedrive_backup.graph import GraphClient, close_session, make_http_client
from onedrive_backup.interfaces import TokenSource
from onedrive_backup.retry import RetryGate, make_probe
from onedrive_backup.scan import scan
from onedrive_backup.selection import Selection
from onedrive_backup.state import BackupState, find_backups
from onedrive_backup.versions import apply_local_changes, prune_versions

log = logging.getLogger(__name__)

# Keep this much free beyond what the remaining files need (filesystem overhead, the state db).
SPACE_MARGIN_BYTES = 64 * 1024 * 1024
SPACE_MARGIN_FRACTION = 0.01
# How many remote → local name mappings the summary lists (the state has all of them).
RENAMED_LISTED = 200


@dataclass
class BackupPlan:
    """What to back up, where, and how: everything a UI collects from the user."""

    dest: Path
    resume: str | None = None  # None: a new backup; "latest" or a backup folder name
    selection: Selection | None = None  # None: the stored selection (all files for a new one)
    workers: int = 8
    bwlimit: int | None = None
    ignore_space: bool = False
    max_outage: float = 2 * 3600.0
    include_shared: bool = False
    stall_timeout: float = 60.0
    keep_versions_days: float | None = None  # None: keep replaced/deleted versions forever
    no_versions: bool = False  # mirror exactly: replaced/deleted files are removed, not kept


@dataclass
class RunResult:
    exit_code: int
    backup_dir: Path | None
    summary: dict[str, Any] = field(default_factory=dict)


def check_destination(dest: Path) -> None:
    """The destination must exist and be writable; we never create a missing disk's mount point."""
    if not dest.exists():
        raise DestinationError(
            f"The destination {dest} does not exist.",
            "Check that the disk is connected and the path is spelled right; "
            "create the folder first if it is new.",
        )
    if not dest.is_dir():
        raise DestinationError(f"The destination {dest} is not a folder.")
    probe = dest / f".onedrive-backup-write-test-{time.time_ns()}"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise DestinationError(
            f"The destination {dest} is not writable ({exc.strerror or exc}).",
            "Choose a folder you can write to, or check the disk is not read-only.",
        ) from exc


def resolve_backup(dest: Path, name: str) -> Path:
    """The backup folder for `--resume latest|NAME` in `dest`."""
    backups = find_backups(dest)
    if not backups:
        raise UsageError(
            f"There is no backup to resume in {dest}.",
            "Run without --resume (or with --new) to start one.",
        )
    if name == "latest":
        return Path(backups[-1].path)
    for b in backups:
        if b.name == name or b.path == name:
            return Path(b.path)
    raise UsageError(
        f"No backup named {name!r} in {dest}.",
        "Existing backups: " + ", ".join(b.name for b in backups),
    )


def wants_shared_scope(plan: BackupPlan) -> bool:
    """Whether this run follows shared items (so sign-in must ask for Files.Read.All): asked
    for now, or stored with the backup being resumed."""
    if plan.include_shared or (plan.selection is not None and plan.selection.include_shared):
        return True
    if plan.selection is not None or not plan.resume:
        return False
    try:
        backup_dir = resolve_backup(plan.dest, plan.resume)
        with BackupState.open(backup_dir, read_only=True) as state:
            stored = state.get_meta("selection")
    except (BackupError, OSError):
        return False  # the run itself reports what is wrong with the backup
    return stored is not None and Selection.from_json(stored).include_shared


def resume_command(dest: Path, backup_dir: Path | None) -> str:
    name = backup_dir.name if backup_dir else "latest"
    return f'onedrive-backup backup --dest "{dest}" --resume {name}'


def space_needed(remaining_bytes: int) -> int:
    return remaining_bytes + SPACE_MARGIN_BYTES + int(remaining_bytes * SPACE_MARGIN_FRACTION)


class Engine:
    """One backup run."""

    def __init__(
        self,
        plan: BackupPlan,
        settings: Settings,
        tokens: TokenSource,
        emit: EventSink = events.discard,
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.tokens = tokens
        self.emit = emit
        self.backup_dir: Path | None = None
        self.started = time.time()
        # Names this run's folder under .versions/ (replaced and deleted files land there).
        self.run_stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(self.started))

    async def run(self) -> RunResult:
        plan = self.plan
        check_destination(plan.dest)
        if plan.resume:
            backup_dir = resolve_backup(plan.dest, plan.resume)
            if legacy.is_legacy_folder(backup_dir):  # made by the earlier script: take it over
                state = legacy.adopt(backup_dir, self.emit)
            else:
                state = BackupState.open(backup_dir)
        else:
            state = BackupState.create(plan.dest)
        self.backup_dir = state.backup_dir
        self.emit(
            events.BackupOpened(
                path=str(state.backup_dir), name=state.backup_dir.name, resumed=bool(plan.resume)
            )
        )
        run_id = state.start_run()
        outcome = "failed"
        summary: dict[str, Any] = {}
        http = make_http_client(self.settings.ca_bundle, max_connections=plan.workers * 2 + 8)
        gate = RetryGate(self.emit, probe=make_probe(lambda: http), max_outage=plan.max_outage)
        graph = GraphClient(
            self.settings.endpoints().graph_url, self.tokens, emit=self.emit, gate=gate, http=http
        )
        try:
            selection = self._selection(state)
            self.emit(events.PhaseStarted(phase="scan", detail="Scanning OneDrive"))
            scan_result = await scan(graph, state, selection, self.emit)
            self.emit(events.PhaseFinished(phase="scan", detail=str(scan_result)))
            legacy.after_scan(state, self.emit)
            local_changes = apply_local_changes(
                state, run_stamp=self.run_stamp, keep=not plan.no_versions, emit=self.emit
            )
            self._check_space(state)
            self.emit(events.PhaseStarted(phase="download", detail="Downloading"))
            totals = state.totals()
            downloader = Downloader(
                state=state,
                tasks=state.iter_pending_files,
                graph=graph,
                http=http,
                backup_dir=state.backup_dir,
                gate=gate,
                options=DownloadOptions(
                    workers=plan.workers, bwlimit=plan.bwlimit, stall_timeout=plan.stall_timeout
                ),
                emit=self.emit,
                totals=(totals.count("pending"), totals.bytes("pending")),
            )
            stats = await downloader.run()
            self.emit(events.PhaseFinished(phase="download"))
            summary = self._summary(state, stats, gate, scan_result)
            summary["changes"] = local_changes.to_dict()
            failed = summary["files"]["failed"] + summary["files"]["unverified"]
            if not failed and plan.keep_versions_days is not None and not plan.no_versions:
                summary["versions_pruned"] = prune_versions(
                    state.backup_dir, older_than_days=plan.keep_versions_days, emit=self.emit
                )
            outcome = "complete" if not failed else "complete_with_failures"
            exit_code = ExitCode.OK if not failed else ExitCode.SOME_FAILED
            summary["outcome"] = outcome
            summary["exit_code"] = int(exit_code)
            self.emit(events.RunFinished(exit_code=int(exit_code), summary=summary))
            return RunResult(int(exit_code), state.backup_dir, summary)
        except SignInRequired as exc:
            outcome = "sign_in_required"
            raise SignInRequired(
                exc.message,
                "Sign in again, then resume where this run stopped:\n"
                "  onedrive-backup login\n"
                f"  {resume_command(plan.dest, self.backup_dir)}",
            ) from exc
        except (asyncio.CancelledError, KeyboardInterrupt) as exc:
            outcome = "interrupted"
            raise Interrupted(
                "Stopped. Everything finished so far is saved.",
                f"Resume with:\n  {resume_command(plan.dest, self.backup_dir)}",
            ) from exc
        except BackupError as exc:
            outcome = type(exc).__name__
            command = resume_command(plan.dest, self.backup_dir)
            if command not in (exc.hint or ""):
                exc.hint = (exc.hint + "\n" if exc.hint else "") + f"Resume with:\n  {command}"
            raise
        finally:
            await graph.aclose()
            await close_session(http)
            try:
                state.finish_run(run_id, outcome, summary)
            except BackupError as exc:  # e.g. the disk is full: the run's record is what is lost
                log.warning("could not record the end of the run: %s", exc)
            finally:
                state.close()

    def _selection(self, state: BackupState) -> Selection:
        stored = state.get_meta("selection")
        if self.plan.selection is not None:
            if stored is not None and stored != self.plan.selection.to_json():
                self.emit(events.Message(text="The selection changed since the last run."))
            state.set_meta("selection", self.plan.selection.to_json())
            return self.plan.selection
        if stored is not None:
            return Selection.from_json(stored)
        selection = Selection.all()
        state.set_meta("selection", selection.to_json())
        return selection

    def _check_space(self, state: BackupState) -> None:
        totals = state.totals()
        needed = space_needed(totals.bytes("pending"))
        free = shutil.disk_usage(state.backup_dir).free
        ok = free >= needed
        self.emit(events.SpaceChecked(needed=needed, free=free, ok=ok))
        if not ok and not self.plan.ignore_space:
            raise DestinationError(
                f"Not enough free space: needed {human_bytes(needed)}, free {human_bytes(free)} "
                f"on {self.plan.dest}.",
                "Free some space or choose another disk; --ignore-space skips this check.",
            )

    def _summary(
        self, state: BackupState, stats: DownloadStats, gate: RetryGate, scan_result: Any
    ) -> dict[str, Any]:
        totals = state.totals()
        renamed_count, renamed = state.renamed_for_disk(limit=RENAMED_LISTED)
        return {
            "renamed": {
                "count": renamed_count,
                "examples": [{"remote": r, "local": loc} for r, loc in renamed],
            },
            "backup_dir": str(state.backup_dir),
            "started": self.started,
            "finished": time.time(),
            "files": {
                **totals.file_counts(),
                "downloaded_this_run": stats.files_done - stats.files_adopted,
                "adopted_this_run": stats.files_adopted,
            },
            "bytes": {"selected": totals.total_bytes, "downloaded": stats.bytes_downloaded},
            "link_refreshes": stats.link_refreshes,
            "resumed_transfers": stats.resumed_transfers,
            "throttled": gate.throttle_count,
            "outages": gate.outage_count,
            "outage_seconds": round(gate.outage_seconds, 1),
            "failures": [{"path": p, "reason": r} for p, r in stats.failures],
            "scan": scan_result.to_dict() if hasattr(scan_result, "to_dict") else {},
            "resume_command": resume_command(self.plan.dest, state.backup_dir),
        }


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
