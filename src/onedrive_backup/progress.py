"""Renderers of engine events for the terminal: rich live progress on a TTY, plain lines otherwise.

Both renderers say the same things in the same words (`describe`); they differ only in how
progress is drawn. The plain one prints a progress line every `interval` seconds plus the
events as they happen, which is what cron mail and log files want.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.text import Text

from onedrive_backup import events
from onedrive_backup.events import Event

log = logging.getLogger(__name__)

# After this many lines of one kind of per-file notice, further ones are only counted (the
# report lists them all, summarised); a run with 30,000 failures must not print 30,000 lines.
PER_KIND_LINE_LIMIT = 20
PHASE_NUMBERS = {"scan": 1, "space": 2, "download": 3}


class Renderer(Protocol):
    def __call__(self, event: Event) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def line(self, text: str, style: str = "") -> None: ...


# --- words -----------------------------------------------------------------------------------


def human_bytes(n: float) -> str:
    """1.2 GB, 340.0 MB, 12 B (decimal units, as disks are sold)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover - the loop always returns


def human_duration(seconds: float) -> str:
    """ "2 h 03 min", "4 min 07 s", "12 s", "0.4 s"."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def eta_text(remaining_bytes: int, rate: float) -> str:
    if remaining_bytes <= 0:
        return "0 s"
    if rate <= 0:
        return "unknown"
    return human_duration(remaining_bytes / rate)


def download_line(p: events.DownloadProgress) -> str:
    """One line of download progress: files, bytes, rate, ETA, active transfers."""
    return (
        f"{p.files_done:,}/{p.files_total:,} files, "
        f"{human_bytes(p.bytes_done)}/{human_bytes(p.bytes_total)}, "
        f"{human_bytes(p.rate)}/s, ETA {eta_text(p.bytes_total - p.bytes_done, p.rate)}, "
        f"{p.active} active"
    )


def scan_line(p: events.ScanProgress) -> str:
    return (
        f"{p.items_seen:,} items seen, {p.files_selected:,} files selected "
        f"({human_bytes(p.bytes_selected)})"
    )


def short_reason(reason: str, limit: int = 60) -> str:
    """A network failure reason short enough for one line (details go to the log)."""
    if len(reason) <= limit:
        return reason
    head = reason.split(" (", 1)[0].split(": <", 1)[0]
    return head if len(head) <= limit else head[: limit - 1] + "…"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


class Describer:
    """Turns events into plain sentences; remembers just enough to word them well."""

    def __init__(self) -> None:
        self.token_grants = 0
        self.per_kind: Counter[str] = Counter()
        self.suppressed: Counter[str] = Counter()
        self.last_scan: events.ScanProgress | None = None
        self.announced_download = False

    def _limited(self, kind: str, text: str) -> str | None:
        self.per_kind[kind] += 1
        n = self.per_kind[kind]
        if n < PER_KIND_LINE_LIMIT:
            return text
        if n == PER_KIND_LINE_LIMIT:
            return f"{text}\n(further {kind} notices are counted in the summary, not shown)"
        self.suppressed[kind] += 1
        return None

    def describe(self, event: Event) -> str | None:
        """The sentence for `event`, or None for events shown only as progress."""
        e = event
        if isinstance(e, events.PhaseStarted):
            if e.phase == "scan":
                return "Phase 1: Scanning OneDrive..."
            if e.phase == "download":
                return None  # announced with the first progress, which knows the counts
            if e.phase == "verify":
                return "Verifying the backup..."
            return e.detail or None
        if isinstance(e, events.PhaseFinished):
            if e.phase == "scan" and self.last_scan is not None:
                return f"  Scan finished: {scan_line(self.last_scan)}"
            if e.phase == "download":
                return "  Downloads finished."
            return None
        if isinstance(e, events.ScanProgress):
            self.last_scan = e
            return None
        if isinstance(e, events.SpaceChecked):
            verdict = "enough space" if e.ok else "NOT enough space"
            return (
                f"Phase 2: Checking disk space: {human_bytes(e.needed)} needed, "
                f"{human_bytes(e.free)} free: {verdict}"
            )
        if isinstance(e, events.DownloadProgress):
            if self.announced_download:
                return None
            self.announced_download = True
            already = ""
            if self.last_scan is not None:
                done = self.last_scan.files_selected - e.files_total
                if done > 0:
                    already = f"; {done:,} already backed up"
            return (
                f"Phase 3: Downloading {_plural(e.files_total, 'file')} "
                f"({human_bytes(e.bytes_total)}){already}"
            )
        if isinstance(e, events.TokenRefreshed):
            self.token_grants += 1
            return f"Access token refreshed (valid for {human_duration(e.expires_in)})"
        if isinstance(e, events.LinkRefreshed):
            return self._limited(
                "link refresh", f"Download link expired for {e.path} — got a fresh one"
            )
        if isinstance(e, events.Throttled):
            return f"Throttled by OneDrive (HTTP {e.status}) — waiting {human_duration(e.seconds)}"
        if isinstance(e, events.NetworkWaiting):
            return (
                f"Network down ({short_reason(e.reason)}) — "
                f"retrying in {human_duration(e.retry_in)} (down for {human_duration(e.down_for)})"
            )
        if isinstance(e, events.NetworkRestored):
            return f"Network back after {human_duration(e.down_for)} — continuing"
        if isinstance(e, events.ItemFailed):
            return self._limited("failure", f"Failed: {e.path} ({e.reason})")
        if isinstance(e, events.ItemUnverified):
            return self._limited("unverified", f"Kept but unverified: {e.path} ({e.reason})")
        if isinstance(e, events.ItemSkipped):
            return self._limited("skip", f"Skipped: {e.path} ({e.reason})")
        if isinstance(e, events.Message):
            prefix = {"info": "", "warning": "Warning: ", "error": "Error: "}[e.level]
            return prefix + e.text
        return None  # ItemStarted, ItemDone, RunFinished: progress and summary show these


STYLES: dict[type[Event], str] = {
    events.ItemFailed: "red",
    events.ItemUnverified: "yellow",
    events.Throttled: "yellow",
    events.NetworkWaiting: "yellow",
    events.NetworkRestored: "green",
    events.TokenRefreshed: "cyan",
    events.LinkRefreshed: "cyan",
    events.SpaceChecked: "bold",
    events.DownloadProgress: "bold",
}


# --- plain lines -----------------------------------------------------------------------------


class PlainRenderer:
    """Timestamped lines: the events as they happen, and progress every `interval` seconds."""

    def __init__(
        self,
        out: TextIO | None = None,
        *,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        timestamps: bool = True,
    ) -> None:
        self.out = out or sys.stdout
        self.interval = interval
        self.clock = clock
        self.timestamps = timestamps
        self.words = Describer()
        self._lock = threading.Lock()
        self._last_line = clock()
        self._phase = ""

    def start(self) -> None:
        self._last_line = self.clock()

    def stop(self) -> None:
        self.out.flush()

    def line(self, text: str, style: str = "") -> None:
        with self._lock:
            self._write(text)

    def _write(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S ") if self.timestamps else ""
        for part in text.splitlines() or [""]:
            self.out.write(f"{stamp}{part}\n" if part else "\n")
        self.out.flush()

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, events.PhaseStarted):
                self._phase = event.phase
                self._last_line = self.clock()
            text = self.words.describe(event)
            if text is not None:
                self._write(text)
            progress = self._progress_text(event)
            if progress is not None and self.clock() - self._last_line >= self.interval:
                self._last_line = self.clock()
                self._write(progress)

    def _progress_text(self, event: Event) -> str | None:
        if isinstance(event, events.DownloadProgress):
            return "  Progress: " + download_line(event)
        if isinstance(event, events.ScanProgress):
            return "  Scanning: " + scan_line(event)
        return None


# --- rich live display -------------------------------------------------------------------------


class _StatsColumn(ProgressColumn):
    """The task's `stats` text; a countdown when the task carries a `deadline`."""

    def render(self, task: Task) -> Text:
        deadline = task.fields.get("deadline")
        if deadline:
            left = max(0.0, float(deadline) - time.monotonic())
            return Text(f"{task.fields.get('stats', '')} {left:.0f} s", style="yellow")
        return Text(str(task.fields.get("stats", "")))


class RichRenderer:
    """A live progress display per phase, with the events printed above it as they happen."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.words = Describer()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=30),
            _StatsColumn(),
            console=self.console,
            transient=False,
            refresh_per_second=4,
        )
        self._lock = threading.Lock()
        self._scan: TaskID | None = None
        self._download: TaskID | None = None
        self._network: TaskID | None = None
        self._started = False

    def start(self) -> None:
        if not self._started:
            self.progress.start()
            self._started = True

    def stop(self) -> None:
        if self._started:
            self.progress.stop()
            self._started = False

    def line(self, text: str, style: str = "") -> None:
        self.console.print(Text(text, style=style))

    def __call__(self, event: Event) -> None:
        with self._lock:
            text = self.words.describe(event)
            if text is not None:
                self.console.print(Text(text, style=STYLES.get(type(event), "")))
            self._update(event)

    def _update(self, e: Event) -> None:
        p = self.progress
        if isinstance(e, events.PhaseStarted) and e.phase == "scan" and self._scan is None:
            self._scan = p.add_task("Scanning", total=None, stats="starting")
        elif isinstance(e, events.ScanProgress):
            if self._scan is None:
                self._scan = p.add_task("Scanning", total=None, stats="")
            p.update(self._scan, stats=scan_line(e))
        elif isinstance(e, events.PhaseFinished) and e.phase == "scan" and self._scan is not None:
            p.update(self._scan, total=1, completed=1, description="Scanned")
        elif isinstance(e, events.DownloadProgress):
            if self._download is None:
                self._download = p.add_task("Downloading", total=max(1, e.bytes_total), stats="")
            p.update(
                self._download,
                total=max(1, e.bytes_total),
                completed=e.bytes_done if e.bytes_total else 1,
                stats=download_line(e),
            )
        elif isinstance(e, events.NetworkWaiting):
            deadline = time.monotonic() + e.retry_in
            label = f"Network down ({short_reason(e.reason)}), retrying in"
            if self._network is None:
                self._network = p.add_task("Waiting", total=None, stats=label, deadline=deadline)
            else:
                p.update(self._network, stats=label, deadline=deadline, visible=True)
        elif isinstance(e, events.NetworkRestored) and self._network is not None:
            p.update(self._network, visible=False)


def make_renderer(*, plain: bool, out: TextIO | None = None) -> RichRenderer | PlainRenderer:
    """Rich on a terminal unless `plain`; plain lines otherwise (cron, pipes, --plain)."""
    stream = out or sys.stdout
    if not plain and stream.isatty():
        return RichRenderer(Console(file=stream))
    return PlainRenderer(stream)


def fan_out(*sinks: Callable[[Event], Any]) -> Callable[[Event], None]:
    """One event sink feeding several; a failing renderer never breaks the backup."""

    def emit(event: Event) -> None:
        for sink in sinks:
            try:
                sink(event)
            except Exception:  # a display problem must not stop a backup
                log.exception("event renderer failed")

    return emit
