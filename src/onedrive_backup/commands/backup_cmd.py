"""`onedrive-backup backup`: run a backup from flags, or through the interactive flow on a TTY.

This module turns answers (flags or the wizard's) into an engine `BackupPlan`, runs the engine
with the renderers attached, handles Ctrl-C, and writes the report. No backup logic lives here.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from onedrive_backup import auth
from onedrive_backup.cli import settings_flags
from onedrive_backup.config import ENV_PREFIX, Settings, load_settings
from onedrive_backup.errors import BackupError, ExitCode, Interrupted, SignInRequired, UsageError
from onedrive_backup.events import Event
from onedrive_backup.progress import PlainRenderer, RichRenderer, fan_out, make_renderer
from onedrive_backup.redact import install_log_redaction, redact
from onedrive_backup.report import RunRecorder, state_summary, summary_lines, write_report
from onedrive_backup.runlog import RunLog
from onedrive_backup.selection import CATEGORY_NAMES

HELP = "back up your OneDrive into a folder (interactive on a terminal)"
DESCRIPTION = """\
Back up the signed-in OneDrive into DEST/OneDrive_Backup_YYYYMMDD_HHMMSS/.

On a terminal without --yes it asks for whatever is missing (destination, which backup to
resume, what to back up). With --yes, or without a terminal (cron, systemd, scripts), it never
asks: --dest is then required and everything else takes its default. Without --new or
--resume, the latest backup in DEST is resumed (brought up to date when it is complete), or a
new one is started when DEST holds none.

Every flag also reads an environment variable: ONEDRIVE_BACKUP_DEST, ONEDRIVE_BACKUP_WORKERS,
ONEDRIVE_BACKUP_BWLIMIT, ONEDRIVE_BACKUP_MAX_OUTAGE.

examples:
  onedrive-backup backup --dest "/Volumes/T7 2TB"
  onedrive-backup backup --dest /mnt/backup --resume latest --yes
  onedrive-backup backup --dest /mnt/backup --new --category photos,videos --yes
  onedrive-backup backup --dest /mnt/backup --new --folder Documents --exclude "*.tmp" --yes
"""
DEFAULT_WORKERS = 8
DEFAULT_MAX_OUTAGE = 2 * 3600.0


def register(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser("backup", help=HELP, description=DESCRIPTION)
    p.add_argument("--dest", metavar="DIR", help="folder (or disk) to keep backups in")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--new", action="store_true", help="start a new backup folder")
    mode.add_argument(
        "--resume",
        metavar="latest|NAME",
        help="continue (or bring up to date) the latest backup, or the one named NAME",
    )
    what = p.add_argument_group(
        "what to back up (default: everything, or what the resumed backup was set to)"
    )
    what.add_argument(
        "--category",
        action="append",
        metavar="|".join(CATEGORY_NAMES),
        help="only files of these kinds; repeat or give a comma list (e.g. photos,videos)",
    )
    what.add_argument(
        "--folder", action="append", metavar="PATH", help="only this OneDrive folder (repeatable)"
    )
    what.add_argument(
        "--include", action="append", metavar="GLOB", help="only files matching (repeatable)"
    )
    what.add_argument(
        "--exclude", action="append", metavar="GLOB", help="skip files matching (repeatable)"
    )
    what.add_argument(
        "--include-shared",
        action="store_true",
        help="also back up items shared with you (asks for Files.Read.All at sign-in)",
    )
    how = p.add_argument_group("how")
    how.add_argument(
        "--workers", metavar="N", help=f"parallel downloads (default {DEFAULT_WORKERS})"
    )
    how.add_argument(
        "--bwlimit",
        metavar="RATE",
        help="bandwidth limit in bytes/s, e.g. 500K, 5M (default: none)",
    )
    how.add_argument(
        "--max-outage",
        metavar="TIME",
        help="how long to wait out a network outage before stopping, e.g. 30m, 2h (default 2h)",
    )
    how.add_argument(
        "--ignore-space", action="store_true", help="start even if the free space looks too small"
    )
    versions = how.add_mutually_exclusive_group()
    versions.add_argument(
        "--keep-versions",
        metavar="DAYS",
        help="after a clean run, delete kept versions (.versions/) older than DAYS "
        "(default: keep them forever)",
    )
    versions.add_argument(
        "--no-versions",
        action="store_true",
        help="mirror exactly: files deleted or replaced in OneDrive are removed, not kept",
    )
    how.add_argument("-y", "--yes", action="store_true", help="never ask: take the defaults")
    how.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")
    p.set_defaults(interactive=False)
    return p


# --- answers -----------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?(?:/s)?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$", re.IGNORECASE)


def parse_rate(text: str, flag: str = "--bwlimit") -> int:
    """ "500K" → 500_000 bytes/s; "5M", "1.5MB/s", "200000" also work."""
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"{flag} {text!r} is not a rate.", "Use bytes per second: 500K, 5M.")
    factor = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}[m.group(2).lower()]
    value = int(float(m.group(1)) * factor)
    if value <= 0:
        raise UsageError(f"{flag} must be more than zero.")
    return value


def parse_duration(text: str, flag: str = "--max-outage") -> float:
    """ "90" → 90 s; "30m", "2h", "1d" also work."""
    m = _DURATION.match(text)
    if not m:
        raise UsageError(f"{flag} {text!r} is not a duration.", "Use seconds or 30m, 2h, 1d.")
    unit = (m.group(2) or "s").lower()[0]
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def split_list(values: list[str] | None) -> list[str]:
    """Repeated flags and comma lists, flattened."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


@dataclass
class Answers:
    """Everything the user decided, from flags, environment and the wizard."""

    dest: Path | None = None
    new: bool = False
    resume: str | None = None
    categories: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    include_shared: bool = False
    workers: int = DEFAULT_WORKERS
    bwlimit: int | None = None
    max_outage: float = DEFAULT_MAX_OUTAGE
    ignore_space: bool = False
    keep_versions_days: float | None = None
    no_versions: bool = False
    yes: bool = False
    plain: bool = False

    @property
    def selection_given(self) -> bool:
        return bool(
            self.categories or self.folders or self.include or self.exclude or self.include_shared
        )

    def selection(self) -> Any:
        """The Selection the answers describe, or None to keep the stored one."""
        from onedrive_backup.selection import Selection

        if not self.selection_given:
            return None
        return Selection.build(
            categories=self.categories,
            folders=self.folders,
            include=self.include,
            exclude=self.exclude,
            include_shared=self.include_shared,
        )


def answers_from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Answers:
    env = dict(os.environ if environ is None else environ)

    def pick(name: str) -> str | None:
        value = getattr(args, name, None)
        if value not in (None, ""):
            return str(value)
        return env.get(ENV_PREFIX + name.upper()) or None

    a = Answers()
    dest = pick("dest")
    a.dest = Path(dest).expanduser() if dest else None
    a.new = bool(getattr(args, "new", False))
    a.resume = getattr(args, "resume", None)
    a.categories = [c.lower() for c in split_list(getattr(args, "category", None))]
    unknown = [c for c in a.categories if c not in CATEGORY_NAMES]
    if unknown:
        raise UsageError(
            f"--category {', '.join(unknown)} is not a category.",
            f"Choose from: {', '.join(CATEGORY_NAMES)}.",
        )
    a.folders = list(getattr(args, "folder", None) or [])
    a.include = list(getattr(args, "include", None) or [])
    a.exclude = list(getattr(args, "exclude", None) or [])
    a.include_shared = bool(getattr(args, "include_shared", False))
    workers = pick("workers")
    if workers is not None:
        if not workers.isdigit() or not 1 <= int(workers) <= 32:
            raise UsageError(f"--workers {workers!r}: give a number from 1 to 32.")
        a.workers = int(workers)
    rate = pick("bwlimit")
    a.bwlimit = parse_rate(rate) if rate else None
    outage = pick("max_outage")
    a.max_outage = parse_duration(outage) if outage else DEFAULT_MAX_OUTAGE
    a.ignore_space = bool(getattr(args, "ignore_space", False))
    keep = pick("keep_versions")
    if keep is not None:
        try:
            a.keep_versions_days = float(keep)
        except ValueError:
            a.keep_versions_days = -1.0
        if a.keep_versions_days < 0:
            raise UsageError(f"--keep-versions {keep!r}: give a number of days, e.g. 90.")
    a.no_versions = bool(getattr(args, "no_versions", False))
    a.yes = bool(getattr(args, "yes", False))
    a.plain = bool(getattr(args, "plain", False))
    return a


def default_resume(dest: Path) -> str | None:
    """Without --new/--resume: the latest backup in `dest`, or None for a new one."""
    from onedrive_backup.state import find_backups

    backups = [b for b in find_backups(dest) if b.error is None]
    return backups[-1].name if backups else None


def make_plan(a: Answers) -> Any:
    """The engine plan for complete answers (the destination is known)."""
    from onedrive_backup.engine import BackupPlan

    assert a.dest is not None
    resume = None if a.new else (a.resume or default_resume(a.dest))
    return BackupPlan(
        dest=a.dest,
        resume=resume,
        selection=a.selection(),
        workers=a.workers,
        bwlimit=a.bwlimit,
        ignore_space=a.ignore_space,
        max_outage=a.max_outage,
        include_shared=a.include_shared,
        keep_versions_days=a.keep_versions_days,
        no_versions=a.no_versions,
    )


# --- running -----------------------------------------------------------------------------------


class _Interrupts:
    """First Ctrl-C: cancel the run gracefully. Second: leave at once (state is crash-safe)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.count = 0
        self.task: asyncio.Task[Any] | None = None
        self._old: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
        self.task, self._loop = task, loop
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            loop.add_signal_handler(signal.SIGINT, self._on_sigint)
        except (NotImplementedError, RuntimeError):  # Windows: plain signal handler
            self._old = signal.signal(
                signal.SIGINT, lambda *_: loop.call_soon_threadsafe(self._on_sigint)
            )

    def uninstall(self) -> None:
        if self._loop is None or threading.current_thread() is not threading.main_thread():
            return
        try:
            self._loop.remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError):
            if self._old is not None:
                signal.signal(signal.SIGINT, self._old)

    def _on_sigint(self) -> None:
        self.count += 1
        if self.count == 1:
            self.say(
                "Stopping: finishing what is safe to finish and saving the state "
                "(press Ctrl-C again to quit at once)..."
            )
            if self.task is not None:
                self.task.cancel()
            return
        self.say("Quitting now. The backup can still be resumed.")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(ExitCode.INTERRUPTED))


def _engine_and_tokens(
    plan: Any, settings: Settings, emit: Callable[[Event], None], plain_cache: bool | None
) -> Any:
    from onedrive_backup.engine import Engine, wants_shared_scope

    tokens = auth.MsalTokenSource(
        settings, shared=wants_shared_scope(plan), emit=emit, plain_cache=plain_cache
    )
    return Engine(plan, settings, tokens, emit)


def execute(
    plan: Any,
    settings: Settings,
    *,
    plain: bool,
    out: TextIO | None = None,
    renderer: RichRenderer | PlainRenderer | None = None,
    plain_cache: bool | None = None,
) -> int:
    """Run `plan` with progress, a run log and a report; print the summary; return the exit code."""
    out = out or sys.stdout
    render = renderer or make_renderer(plain=plain, out=out)
    recorder = RunRecorder()
    holder: dict[str, Any] = {}
    runlog = RunLog(lambda: holder["engine"].backup_dir if "engine" in holder else None)
    emit = fan_out(render, recorder, runlog)
    engine = _engine_and_tokens(plan, settings, emit, plain_cache)
    holder["engine"] = engine
    runlog.attach()
    runlog.write(f"onedrive-backup backup into {plan.dest} (resume={plan.resume})")
    interrupts = _Interrupts(lambda text: render.line(text, "yellow"))

    async def main() -> Any:
        task = asyncio.ensure_future(engine.run())
        interrupts.install(asyncio.get_running_loop(), task)
        try:
            return await task
        finally:
            interrupts.uninstall()

    restore_console = _quiet_console_logging()
    render.start()
    summary: dict[str, Any]
    error: BackupError | None = None
    try:
        result = asyncio.run(main())
        summary = result.summary
        code = int(result.exit_code)
    except BackupError as exc:
        error = exc
        code = int(exc.exit_code)
        summary = _stopped_summary(engine, plan, exc)
    except (KeyboardInterrupt, asyncio.CancelledError):
        error = Interrupted("Stopped. Everything finished so far is saved.")
        code = int(ExitCode.INTERRUPTED)
        summary = _stopped_summary(engine, plan, error)
    finally:
        render.stop()
        restore_console()
        engine.tokens.close()
    if error is not None and engine.backup_dir is None:
        runlog.close()
        raise error  # nothing was started (no destination, no sign-in): just the error
    report_path = None
    if engine.backup_dir is not None:
        try:
            report_path, _ = write_report(engine.backup_dir, summary, recorder)
        except OSError as exc:
            runlog.write(f"could not write the report: {exc}")
    lines = summary_lines(summary, recorder, report_path)
    if runlog.path is not None:
        lines.append(f"  Log:  {runlog.path}")
    for line in lines:
        runlog.write(line)
        print(line, file=out, flush=True)
    runlog.close()
    if error is not None and not isinstance(error, Interrupted):
        raise error  # cli.main prints it (message and hint) and exits with its code
    return code


def _quiet_console_logging() -> Callable[[], None]:
    """During a run the renderer says what happened; the console log shows only errors
    (unless --verbose). Everything still goes to the run's log file."""
    root = logging.getLogger()
    if root.level <= logging.DEBUG:
        return lambda: None
    saved = [(h, h.level) for h in root.handlers]
    for handler, level in saved:
        handler.setLevel(max(level, logging.ERROR))

    def restore() -> None:
        for handler, level in saved:
            handler.setLevel(level)

    return restore


def _stopped_summary(engine: Any, plan: Any, exc: BackupError) -> dict[str, Any]:
    from onedrive_backup.engine import resume_command

    outcome = "interrupted" if isinstance(exc, Interrupted) else type(exc).__name__
    summary: dict[str, Any] = {
        "outcome": outcome,
        "exit_code": int(exc.exit_code),
        "error": redact(exc.message),
        "started": getattr(engine, "started", time.time()),
        "finished": time.time(),
        "resume_command": resume_command(plan.dest, engine.backup_dir),
    }
    if engine.backup_dir is not None:
        summary["backup_dir"] = str(engine.backup_dir)
        summary.update(state_summary(engine.backup_dir))
    return summary


def require_dest(a: Answers) -> Path:
    if a.dest is None:
        raise UsageError(
            "No destination given: --dest DIR is required when nothing can be asked "
            "(no terminal, or --yes).",
            "Pass --dest /path/to/backup-disk (or set ONEDRIVE_BACKUP_DEST).",
        )
    return a.dest


def run(args: argparse.Namespace) -> int:
    install_log_redaction()
    settings = load_settings(settings_flags(args))
    answers = answers_from_args(args)
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    if tty and not answers.yes:
        from onedrive_backup import wizard

        plan = wizard.run(settings, answers)
        if plan is None:
            return int(ExitCode.OK)
        return execute(plan, settings, plain=answers.plain)
    require_dest(answers)
    if not auth.cached_accounts(settings):
        raise SignInRequired(
            "You are not signed in.",
            "Run `onedrive-backup login` once (it works over SSH too), then run this again.",
        )
    return execute(make_plan(answers), settings, plain=answers.plain or not tty)
