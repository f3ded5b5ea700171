"""A log file per run in `<backup>/.onedrive-backup/logs/`: every event and log record, redacted.

The backup folder is only known once the engine has opened or created it, so lines are held in
memory until then (a handful: nothing is emitted before the state is open).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from onedrive_backup import events
from onedrive_backup.events import Event
from onedrive_backup.redact import RedactingFilter, redact

LOGS_DIR = Path(".onedrive-backup") / "logs"
PROGRESS_EVERY = 30.0  # seconds between DownloadProgress lines in the log


class RunLog:
    """An event sink and a logging handler writing one redacted file per run."""

    def __init__(self, backup_dir: Callable[[], Path | None], *, level: int = logging.INFO) -> None:
        self._backup_dir = backup_dir
        self._level = level
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._file: IO[str] | None = None
        self.path: Path | None = None
        self._handler: logging.Handler | None = None
        self._last_progress = 0.0
        self.started = time.time()

    # -- lifecycle --------------------------------------------------------------------------

    def attach(self) -> None:
        """Also capture log records of the whole package (INFO and above by default)."""
        handler = _Handler(self)
        handler.setLevel(self._level)
        handler.addFilter(RedactingFilter())
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        package = logging.getLogger("onedrive_backup")
        if package.getEffectiveLevel() > self._level:
            # Records now pass the logger's level, so keep the console handlers at the level
            # the user chose: the file gets INFO, the terminal still only warnings.
            console = logging.getLogger()
            for h in console.handlers:
                if h.level == logging.NOTSET:
                    h.setLevel(console.level)
            package.setLevel(self._level)
        package.addHandler(handler)
        self._handler = handler

    def close(self) -> None:
        if self._handler is not None:
            logging.getLogger("onedrive_backup").removeHandler(self._handler)
            self._handler = None
        with self._lock:
            self._open_if_possible()
            if self._file is not None:
                self._file.close()
                self._file = None

    # -- writing ----------------------------------------------------------------------------

    def write(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        line = redact(f"{stamp} {text}")
        with self._lock:
            self._pending.append(line)
            self._open_if_possible()
            if self._file is not None:
                self._file.write("\n".join(self._pending) + "\n")
                self._file.flush()
                self._pending.clear()

    def _open_if_possible(self) -> None:
        if self._file is not None:
            return
        backup_dir = self._backup_dir()
        if backup_dir is None:
            return
        folder = backup_dir / LOGS_DIR
        try:
            folder.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(self.started))
            self.path = folder / f"run-{stamp}.log"
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        except OSError:
            self._backup_dir = lambda: None  # the disk went away: keep the run going
            return
        if self._pending:
            self._file.write("\n".join(self._pending) + "\n")
            self._pending.clear()

    def __call__(self, event: Event) -> None:
        if isinstance(event, events.DownloadProgress | events.ScanProgress):
            now = time.monotonic()
            if now - self._last_progress < PROGRESS_EVERY:
                return
            self._last_progress = now
        if isinstance(event, events.RunFinished):
            summary = {k: v for k, v in event.summary.items() if k != "failures"}
            self.write(
                f"RunFinished exit_code={event.exit_code} {json.dumps(summary, default=str)}"
            )
            return
        fields = {k: v for k, v in event.to_dict().items() if k not in ("kind", "at")}
        self.write(f"{event.kind} {json.dumps(fields, ensure_ascii=False, default=str)}")


class _Handler(logging.Handler):
    def __init__(self, runlog: RunLog) -> None:
        super().__init__()
        self.runlog = runlog

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.runlog.write(self.format(record))
        except Exception:  # never let logging break the run
            self.handleError(record)
