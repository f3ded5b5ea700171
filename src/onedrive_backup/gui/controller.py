"""The one narrow object between the HTTP handlers and the engine (icloudpd's StatusExchange).

Handlers call its methods with the page's inputs and read `snapshot()`; it runs sign-in and
backups through `backend`, turns engine events into a status the page renders, and pushes
status and plain-language log lines to subscribers (the server-sent event streams).
Everything runs on the server's event loop; `emit` may also be called from other threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from onedrive_backup import events
from onedrive_backup.config import Settings
from onedrive_backup.errors import BackupError, Interrupted, SignInRequired, UsageError
from onedrive_backup.events import Event
from onedrive_backup.gui import backend
from onedrive_backup.redact import redact

log = logging.getLogger(__name__)

LOG_LINES = 300  # log lines kept for a page that (re)connects
MAX_REASONS = 50  # distinct failure reasons shown; the rest are counted under "other"
EXAMPLES_PER_REASON = 3
STATUS_INTERVAL = 0.2  # at most this often a status push while events stream in
QUEUE_LIMIT = 1000  # messages a slow page may lag behind before it is made to reconnect

SignInState = Literal["checking", "signed_out", "waiting", "signed_in", "error"]
RunState = Literal[
    "idle", "running", "stopping", "pausing", "paused", "stopped", "finished", "failed"
]
ACTIVE_RUN_STATES = frozenset({"running", "stopping", "pausing"})


def _problem(exc: BackupError) -> dict[str, str | None]:
    return {"message": redact(exc.message), "hint": redact(exc.hint) if exc.hint else None}


@dataclass
class SignInStatus:
    state: SignInState = "checking"
    user_code: str | None = None
    verification_uri: str | None = None
    account: dict[str, Any] | None = None
    error: dict[str, str | None] | None = None


@dataclass
class RunStatus:
    state: RunState = "idle"
    dest: str | None = None
    resume: str | None = None
    backup_name: str | None = None
    backup_dir: str | None = None
    selection: dict[str, Any] = field(default_factory=dict)
    phase: str | None = None
    phase_detail: str = ""
    scan: dict[str, Any] | None = None
    space: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    network: dict[str, Any] | None = None
    throttled: dict[str, Any] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    backup: dict[str, Any] | None = None  # the backup's state after the run (models.BackupSummary)
    exit_code: int | None = None
    error: dict[str, str | None] | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(eq=False)  # identity: kept in a set
class Subscriber:
    queue: asyncio.Queue[str | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_LIMIT)
    )
    stale: bool = False


class Controller:
    """Status exchange between the page and the engine; the page's only way in."""

    def __init__(
        self,
        settings: Settings,
        *,
        opener: Callable[[Path], None] = backend.open_folder,
    ) -> None:
        self.settings = settings
        self._opener = opener
        self.signin = SignInStatus()
        self.destination: dict[str, Any] | None = None
        self.run = RunStatus()
        self._log: deque[dict[str, Any]] = deque(maxlen=LOG_LINES)
        self._seq = 0
        self._subscribers: set[Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._status_timer: asyncio.TimerHandle | None = None
        self._sign_in: asyncio.Future[str] | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._describer: Any = None
        self.verify_status: dict[str, Any] = {"state": "idle"}
        self._tokens: Any = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind to the running loop and look for a stored sign-in."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._spawn(self._check_stored_sign_in())

    async def close(self) -> None:
        """Stop any run (state saved) and end every event stream."""
        if self._run_task is not None and not self._run_task.done():
            self._run_task.cancel()
            with contextlib.suppress(BaseException):
                await self._run_task
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._sign_in is not None and not self._sign_in.done():
            self._sign_in.cancel()
        if self._status_timer is not None:
            self._status_timer.cancel()
        for sub in list(self._subscribers):
            self._offer(sub, None)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- what the page reads -----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "signin": asdict(self.signin),
            "destination": self.destination,
            "run": asdict(self.run),
            "verify": dict(self.verify_status),
        }

    def log_lines(self) -> list[dict[str, Any]]:
        return list(self._log)

    def subscribe(self) -> Subscriber:
        sub = Subscriber()
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    # --- sign-in -----------------------------------------------------------------------------

    async def _check_stored_sign_in(self) -> None:
        try:
            username = await asyncio.to_thread(backend.cached_username, self.settings)
        except BackupError as exc:
            self._set_signin(SignInStatus("error", error=_problem(exc)))
            return
        if username is None:
            self._set_signin(SignInStatus("signed_out"))
            return
        self._set_signin(SignInStatus("checking", account={"username": username}))
        await self._load_identity()

    async def _load_identity(self) -> None:
        try:
            account = await backend.identity(self.settings, self._token_source())
        except SignInRequired as exc:
            self._tokens = None
            self._set_signin(SignInStatus("signed_out", error=_problem(exc)))
            return
        except BackupError as exc:
            # Signed in, but Graph is unreachable right now: say so, let the user go on.
            username = (self.signin.account or {}).get("username", "?")
            self._set_signin(
                SignInStatus("signed_in", account={"username": username}, error=_problem(exc))
            )
            return
        self._set_signin(SignInStatus("signed_in", account=account))

    def start_sign_in(self) -> None:
        """Begin a device-code sign-in; the status shows the code, then the account."""
        if self.signin.state == "waiting":
            return
        if self.run.state in ACTIVE_RUN_STATES:
            raise UsageError("Stop the backup before signing in again.")
        self._set_signin(SignInStatus("waiting"))
        try:
            future = backend.device_sign_in(self.settings, self._on_device_code)
        except BackupError as exc:
            self._set_signin(SignInStatus("error", error=_problem(exc)))
            return
        self._sign_in = future
        self._spawn(self._finish_sign_in(future))

    def _on_device_code(self, code: backend.DeviceCode) -> None:
        def show() -> None:
            self.signin.user_code = code.user_code
            self.signin.verification_uri = code.verification_uri
            self._changed()

        self._call_in_loop(show)

    async def _finish_sign_in(self, future: asyncio.Future[str]) -> None:
        try:
            username = await future
        except asyncio.CancelledError:
            raise
        except BackupError as exc:
            self._set_signin(SignInStatus("error", error=_problem(exc)))
            return
        except Exception as exc:  # MSAL or network trouble we have no words for
            log.exception("Sign-in failed")
            self._set_signin(
                SignInStatus("error", error={"message": f"Sign-in failed: {exc}", "hint": None})
            )
            return
        self._tokens = None
        self._set_signin(SignInStatus("checking", account={"username": username}))
        self._add_log("info", f"Signed in as {username}.")
        await self._load_identity()

    def sign_out(self) -> None:
        if self.run.state in ACTIVE_RUN_STATES:
            raise UsageError("Stop the backup before signing out.")
        backend.sign_out(self.settings)
        self._tokens = None
        self._set_signin(SignInStatus("signed_out"))
        self._add_log("info", "Signed out.")

    def _token_source(self) -> Any:
        if self._tokens is None:
            self._tokens = backend.token_source(self.settings)
        return self._tokens

    def _set_signin(self, status: SignInStatus) -> None:
        self.signin = status
        self._changed()

    # --- destination and drive tree ----------------------------------------------------------

    async def set_destination(self, path_text: str) -> dict[str, Any]:
        """Validate a destination; remembered (and shown) whether or not it is usable."""
        if self.run.state in ACTIVE_RUN_STATES:
            raise UsageError("A backup is running; stop it before changing the destination.")
        self.destination = await asyncio.to_thread(backend.inspect_destination, path_text)
        self._changed()
        return self.destination

    async def browse(self, item_id: str | None) -> list[dict[str, Any]]:
        self._require_signed_in()
        return await backend.list_folder(self.settings, self._token_source(), item_id)

    def _require_signed_in(self) -> None:
        if self.signin.state != "signed_in":
            raise SignInRequired("Sign in first.")

    # --- the run -----------------------------------------------------------------------------

    def start_backup(self, choices: dict[str, Any]) -> None:
        """Start a new backup or resume one, with the page's choices (validated here)."""
        self._require_signed_in()
        if self.run.state in ACTIVE_RUN_STATES:
            raise UsageError("A backup is already running.")
        if not self.destination or not self.destination.get("ok"):
            raise UsageError("Choose a usable destination folder first.")
        inputs = _run_inputs(str(self.destination["path"]), choices)
        self._launch(inputs)

    def resume(self) -> None:
        """Continue a paused or stopped run with the selection stored in the backup."""
        if self.run.state not in ("paused", "stopped", "failed") or not self.run.backup_name:
            raise UsageError("There is no stopped backup to continue.")
        self._require_signed_in()
        inputs = backend.RunInputs(dest=str(self.run.dest), resume=self.run.backup_name)
        self._launch(inputs, keep=self.run)

    def _launch(self, inputs: backend.RunInputs, keep: RunStatus | None = None) -> None:
        from onedrive_backup.progress import Describer

        self._describer = Describer()
        self.verify_status = {"state": "idle"}
        self.run = RunStatus(
            state="running",
            dest=inputs.dest,
            resume=inputs.resume,
            backup_name=keep.backup_name if keep else None,
            backup_dir=keep.backup_dir if keep else None,
            selection=keep.selection if keep else _selection_view(inputs),
            started_at=time.time(),
        )
        verb = f"Resuming {inputs.resume}" if inputs.resume else "Starting a new backup"
        self._add_log("info", f"{verb} in {inputs.dest}.")
        self._run_task = asyncio.ensure_future(self._run(inputs))
        self._changed()

    async def _run(self, inputs: backend.RunInputs) -> None:
        try:
            exit_code, backup_dir, summary = await backend.run_backup(
                self.settings, inputs, self.emit, self._on_backup_dir
            )
        except (Interrupted, asyncio.CancelledError) as exc:
            paused = self.run.state == "pausing"
            self.run.state = "paused" if paused else "stopped"
            if isinstance(exc, Interrupted):
                self.run.error = _problem(exc)
            self._add_log(
                "info",
                "Paused: everything so far is saved."
                if paused
                else "Stopped: everything so far is saved; you can resume later.",
            )
        except BackupError as exc:
            self.run.state = "failed"
            self.run.error = _problem(exc)
            self._add_log("error", exc.message)
            if isinstance(exc, SignInRequired):
                self._tokens = None
                self._set_signin(SignInStatus("signed_out", error=_problem(exc)))
        except Exception as exc:
            log.exception("The backup run failed")
            self.run.state = "failed"
            self.run.error = {"message": redact(f"Unexpected error: {exc}"), "hint": None}
            self._add_log("error", self.run.error["message"] or "")
        else:
            self.run.state = "finished"
            self.run.exit_code = exit_code
            self.run.summary = summary
            if backup_dir is not None:
                self._on_backup_dir(backup_dir)
        finally:
            self.run.finished_at = time.time()
            self.run.network = self.run.throttled = None
            self._changed()
            self._spawn(self._after_run(self.run))

    async def _after_run(self, run: RunStatus) -> None:
        """Read the backup's totals from its state, and refresh the destination's list."""
        if run.dest and run.backup_name:
            with contextlib.suppress(BackupError, OSError):
                run.backup = await asyncio.to_thread(
                    backend.backup_summary, Path(run.dest), run.backup_name
                )
                self._changed()
        if self.destination and self.destination.get("path") == run.dest:
            with contextlib.suppress(BackupError):
                await self.set_destination(str(self.destination["path"]))

    def _on_backup_dir(self, backup_dir: Path) -> None:
        if self.run.backup_dir != str(backup_dir):
            self.run.backup_dir = str(backup_dir)
            self.run.backup_name = backup_dir.name
            self._changed()

    def stop(self, *, pause: bool = False) -> None:
        """Stop the run gracefully (the engine saves its state); pause is stop + resume later."""
        if self.run.state == "paused" and not pause:
            self.run.state = "stopped"  # already stopped and saved: just leave the run screen
            self._changed()
            return
        if self.run.state != "running" or self._run_task is None:
            raise UsageError("No backup is running.")
        self.run.state = "pausing" if pause else "stopping"
        self._add_log("info", "Pausing..." if pause else "Stopping...")
        self._run_task.cancel()
        self._changed()

    def dismiss(self) -> None:
        """Leave the finished screen for a new choice (the run's record stays on disk)."""
        if self.run.state in ACTIVE_RUN_STATES:
            raise UsageError("A backup is running.")
        self.run = RunStatus()
        self.verify_status = {"state": "idle"}
        self._changed()

    def open_backup_folder(self) -> None:
        if not self.run.backup_dir:
            raise UsageError("There is no backup folder to open yet.")
        self._opener(Path(self.run.backup_dir))

    def verify(self) -> None:
        """Re-hash the finished backup's files against their records, in a thread."""
        if self.run.state not in ("finished", "stopped", "paused", "failed"):
            raise UsageError("Verify after the backup has stopped.")
        if not self.run.backup_dir:
            raise UsageError("There is no backup folder to verify yet.")
        if self.verify_status.get("state") == "running":
            return
        self.verify_status = {"state": "running", "backup_dir": self.run.backup_dir}
        self._add_log("info", "Verifying the backup...", kind="Verify")
        self._spawn(self._verify(Path(self.run.backup_dir)))
        self._changed()

    async def _verify(self, backup_dir: Path) -> None:
        try:
            result = await asyncio.to_thread(backend.verify, backup_dir)
        except BackupError as exc:
            self.verify_status = {"state": "failed", "error": _problem(exc)}
        except Exception as exc:
            log.exception("Verify failed")
            self.verify_status = {
                "state": "failed",
                "error": {"message": redact(f"Verify failed: {exc}"), "hint": None},
            }
        else:
            self.verify_status = {"state": "done", "backup_dir": str(backup_dir), **result}
            for line in result["lines"][:1]:
                self._add_log("success" if result["ok"] else "error", line, kind="Verify")
        self._changed()

    # --- events from the engine --------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """The engine's event sink; safe to call from any thread."""
        self._call_in_loop(lambda: self._apply(event))

    def _call_in_loop(self, fn: Callable[[], None]) -> None:
        if self._loop is None or threading.get_ident() == self._loop_thread:
            fn()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn)

    def _apply(self, e: Event) -> None:
        run = self.run
        if isinstance(e, events.PhaseStarted):
            run.phase, run.phase_detail = e.phase, e.detail
        elif isinstance(e, events.ScanProgress | events.SpaceChecked | events.DownloadProgress):
            slot = {events.ScanProgress: "scan", events.SpaceChecked: "space"}.get(
                type(e), "progress"
            )
            setattr(run, slot, _fields(e))
            if isinstance(e, events.SpaceChecked):
                run.phase = "space"
        elif isinstance(e, events.NetworkWaiting):
            run.network = _fields(e)
        elif isinstance(e, events.NetworkRestored):
            run.network = None
        elif isinstance(e, events.Throttled):
            run.throttled = {**_fields(e), "until": e.at + e.seconds}
        elif isinstance(e, events.ItemFailed | events.ItemUnverified):
            self._count_failure(e.reason, e.path, unverified=isinstance(e, events.ItemUnverified))
        elif isinstance(e, events.RunFinished):
            run.summary, run.exit_code = e.summary, e.exit_code
        counter = _COUNTED.get(type(e))
        if counter is not None:
            if isinstance(e, events.ItemDone) and e.adopted:
                counter = "adopted"
            run.counts[counter] = run.counts.get(counter, 0) + 1
        text = self._describer.describe(e) if self._describer is not None else None
        if text:
            self._add_log(_LEVELS.get(type(e), "info"), text, kind=e.kind, at=e.at)
        self._changed()

    def _count_failure(self, reason: str, path: str, *, unverified: bool) -> None:
        failures = self.run.failures
        key = ("Unverified: " if unverified else "") + redact(reason)
        if key not in failures and len(failures) >= MAX_REASONS:
            key = "Other reasons"
        entry = failures.setdefault(key, {"count": 0, "examples": []})
        entry["count"] += 1
        if len(entry["examples"]) < EXAMPLES_PER_REASON:
            entry["examples"].append(path)

    # --- pushing to pages --------------------------------------------------------------------

    def _add_log(
        self, level: str, text: str, *, kind: str = "Note", at: float | None = None
    ) -> None:
        self._seq += 1
        line = {
            "seq": self._seq,
            "at": at or time.time(),
            "level": level,
            "kind": kind,
            "text": redact(text),
        }
        self._log.append(line)
        self._publish("log", line)

    def _changed(self) -> None:
        """Push the status soon; many changes within STATUS_INTERVAL become one push."""
        if self._loop is None or self._status_timer is not None:
            return
        self._status_timer = self._loop.call_later(STATUS_INTERVAL, self._push_status)

    def _push_status(self) -> None:
        self._status_timer = None
        self._publish("status", self.snapshot())

    def _publish(self, name: str, data: Any) -> None:
        if not self._subscribers:
            return
        message = sse_message(name, data)
        for sub in list(self._subscribers):
            self._offer(sub, message)

    def _offer(self, sub: Subscriber, message: str | None) -> None:
        try:
            sub.queue.put_nowait(message)
        except asyncio.QueueFull:
            sub.stale = True  # the stream ends; the page reconnects and gets a fresh snapshot
            self._subscribers.discard(sub)


_COUNTED: dict[type[Event], str] = {
    events.ItemDone: "done",
    events.ItemFailed: "failed",
    events.ItemUnverified: "unverified",
    events.ItemSkipped: "skipped",
    events.TokenRefreshed: "token_refreshes",
    events.LinkRefreshed: "link_refreshes",
    events.Throttled: "throttled",
    events.NetworkWaiting: "network_waits",
}
_LEVELS: dict[type[Event], str] = {
    events.ItemFailed: "error",
    events.ItemUnverified: "warning",
    events.Throttled: "warning",
    events.NetworkWaiting: "warning",
    events.NetworkRestored: "success",
    events.TokenRefreshed: "note",
    events.LinkRefreshed: "note",
}


def _fields(e: Event) -> dict[str, Any]:
    data = e.to_dict()
    data.pop("kind", None)
    return data


def sse_message(name: str, data: Any) -> str:
    """One server-sent event (JSON data on a single line)."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _str_list(value: Any, label: str, limit: int = 200) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{label} must be a list of text values.")
    items = tuple(v.strip() for v in value if v.strip())
    if len(items) > limit:
        raise UsageError(f"Too many {label} (at most {limit}).")
    return items


def _run_inputs(dest: str, choices: dict[str, Any]) -> backend.RunInputs:
    resume = choices.get("resume")
    if resume is not None and not isinstance(resume, str):
        raise UsageError("resume must be a backup name.")
    keep = choices.get("keep_selection", False)
    if not isinstance(keep, bool):
        raise UsageError("keep_selection must be true or false.")
    if keep and resume:
        return backend.RunInputs(dest=dest, resume=resume)
    selection = backend.make_selection(
        list(_str_list(choices.get("categories"), "categories")),
        list(_str_list(choices.get("folders"), "folders")),
        list(_str_list(choices.get("include"), "include patterns")),
        list(_str_list(choices.get("exclude"), "exclude patterns")),
        include_shared=_bool(choices.get("include_shared", False), "include_shared"),
    )
    return backend.RunInputs(dest=dest, resume=resume or None, selection=selection)


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be true or false.")
    return value


def _selection_view(inputs: backend.RunInputs) -> dict[str, Any]:
    if inputs.selection is None:
        return {"stored": True, "text": "the selection stored in the backup"}
    return {**inputs.selection.to_json(), "text": inputs.selection.describe()}
