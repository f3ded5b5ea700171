"""The end of a run in words: a readable summary and a JSON report per run.

Failures are grouped by reason with a count and a few examples: thirty thousand identical
failures are one line, not thirty thousand. Everything written goes through `redact`.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onedrive_backup import events
from onedrive_backup.errors import BackupError
from onedrive_backup.events import Event
from onedrive_backup.progress import human_bytes, human_duration
from onedrive_backup.redact import redact
from onedrive_backup.state import BackupState

EXAMPLES_PER_REASON = 3
REPORTS_DIR = Path(".onedrive-backup") / "reports"
UNVERIFIED_SHOWN = 10


@dataclass(frozen=True)
class FailureGroup:
    reason: str
    count: int
    examples: list[str]


def group_failures(
    failures: list[dict[str, str]], examples: int = EXAMPLES_PER_REASON
) -> list[FailureGroup]:
    """Failures by reason, most frequent first, each with up to `examples` paths."""
    counts: Counter[str] = Counter()
    samples: dict[str, list[str]] = {}
    for failure in failures:
        reason = failure.get("reason") or "unknown reason"
        counts[reason] += 1
        bucket = samples.setdefault(reason, [])
        if len(bucket) < examples:
            bucket.append(failure.get("path") or "?")
    return [FailureGroup(r, n, samples[r]) for r, n in counts.most_common()]


@dataclass
class RunRecorder:
    """An event sink that keeps what the summary needs beyond the engine's summary dict."""

    started: float = field(default_factory=time.time)
    token_refreshes: int = 0
    link_refreshes: int = 0
    throttled: int = 0
    outages: int = 0
    unverified: list[dict[str, str]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    files_done: int = 0
    bytes_done: int = 0
    last_progress: events.DownloadProgress | None = None

    @property
    def token_renewals(self) -> int:
        """Access tokens fetched from the token endpoint during the run (auth emits only those)."""
        return self.token_refreshes

    finished: events.RunFinished | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, events.TokenRefreshed):
            self.token_refreshes += 1
        elif isinstance(event, events.LinkRefreshed):
            self.link_refreshes += 1
        elif isinstance(event, events.Throttled):
            self.throttled += 1
        elif isinstance(event, events.NetworkRestored):
            self.outages += 1
        elif isinstance(event, events.ItemUnverified):
            self.unverified.append({"path": event.path, "reason": event.reason})
        elif isinstance(event, events.ItemFailed) and len(self.failures) < 100_000:
            self.failures.append({"path": event.path, "reason": event.reason})
        elif isinstance(event, events.ItemSkipped) and len(self.skipped) < 100_000:
            self.skipped.append({"path": event.path, "reason": event.reason})
        elif isinstance(event, events.ItemDone):
            self.files_done += 1
            self.bytes_done += event.size
        elif isinstance(event, events.DownloadProgress):
            self.last_progress = event
        elif isinstance(event, events.RunFinished):
            self.finished = event


# --- the readable summary ----------------------------------------------------------------------


def _count(n: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith(("sh", "ch", "s")) else "s")
    return f"{n:,} {noun if n == 1 else plural}"


def _headline(summary: dict[str, Any]) -> str:
    files = summary.get("files", {})
    failed, unverified = files.get("failed", 0), files.get("unverified", 0)
    outcome = summary.get("outcome")
    if outcome == "interrupted":
        return "Backup stopped before it finished. Everything done so far is saved."
    if outcome and outcome not in ("complete", "complete_with_failures"):
        return f"Backup stopped: {summary.get('error') or outcome}."
    if failed or unverified:
        parts = []
        if failed:
            parts.append(f"{failed:,} failed")
        if unverified:
            parts.append(f"{unverified:,} unverified")
        return f"Backup finished with problems: {', '.join(parts)}."
    return (
        f"Backup complete: all {files.get('selected', 0):,} selected files backed up and verified."
    )


def _special_lines(scan: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    table = (
        (
            "notebooks",
            "OneNote notebooks",
            "their section files are backed up, but OneNote cannot open them from disk; "
            "keep a usable copy with File > Export in OneNote",
        ),
        ("vault", "Personal Vault", "locked by OneDrive: not backed up; copy it out by hand"),
        ("malware", "Flagged as malware by OneDrive", "OneDrive refuses to serve these: skipped"),
        ("shared", "Shared with you", "not part of your drive: add --include-shared to back up"),
    )
    for key, label, note in table:
        paths = scan.get(key) or []
        if not paths:
            continue
        shown = ", ".join(paths[:EXAMPLES_PER_REASON])
        more = f" and {len(paths) - EXAMPLES_PER_REASON:,} more" if len(paths) > 3 else ""
        lines.append(f"  {label} ({len(paths):,}): {shown}{more}")
        lines.append(f"      {note}.")
    return lines


def _changes_line(summary: dict[str, Any]) -> str | None:
    """What an update changed: added/updated from the scan, moves and kept versions on disk."""
    scan = summary.get("scan") or {}
    # A first, full enumeration "adds" everything: only updates have changes worth listing.
    first = scan.get("full_enumeration") and not scan.get("resynced")
    scan_changes = {} if first else (scan.get("changes") or {})
    local = summary.get("changes") or {}
    counted = [
        (int(scan_changes.get("added", 0)), "added"),
        (int(scan_changes.get("modified", 0)), "updated"),
        (int(local.get("moved", 0)), "moved or renamed without downloading"),
        (int(local.get("retired_deleted", 0)), "deleted in OneDrive and kept in .versions/"),
        (int(local.get("retired_replaced", 0)), "previous versions kept in .versions/"),
        (int(local.get("removed", 0)), "removed (--no-versions)"),
        (int(summary.get("versions_pruned", 0)), "old versions pruned"),
    ]
    parts = [f"{n:,} {label}" for n, label in counted if n > 0]
    return "  Changes: " + ", ".join(parts) if parts else None


def summary_lines(
    summary: dict[str, Any], recorder: RunRecorder | None = None, report_path: Path | None = None
) -> list[str]:
    """The human summary of a run; ends with what to do next."""
    rec = recorder or RunRecorder()
    files = summary.get("files", {})
    sizes = summary.get("bytes", {})
    lines = [_headline(summary)]
    if summary.get("backup_dir"):
        lines.append(f"  Backup folder: {summary['backup_dir']}")
    if files:
        lines.append(
            f"  Files:   {files.get('done', 0):,} of {files.get('selected', 0):,} backed up"
            f" ({files.get('downloaded_this_run', 0):,} downloaded this run,"
            f" {files.get('adopted_this_run', 0):,} already on disk);"
            f" {files.get('failed', 0):,} failed, {files.get('unverified', 0):,} unverified,"
            f" {files.get('pending', 0):,} left"
        )
    if sizes:
        lines.append(
            f"  Data:    {human_bytes(sizes.get('selected', 0))} selected,"
            f" {human_bytes(sizes.get('downloaded', 0))} downloaded this run"
        )
    change_line = _changes_line(summary)
    if change_line:
        lines.append(change_line)
    started, finished = summary.get("started"), summary.get("finished")
    if isinstance(started, int | float) and isinstance(finished, int | float):
        lines.append(f"  Time:    {human_duration(max(0.0, finished - started))}")
    outages = int(summary.get("outages", rec.outages))
    handled = [
        _count(rec.token_renewals, "access token renewal"),
        _count(int(summary.get("link_refreshes", rec.link_refreshes)), "download link refresh"),
        _count(int(summary.get("throttled", rec.throttled)), "throttling pause"),
        _count(outages, "network outage")
        + (f" ({human_duration(float(summary.get('outage_seconds', 0.0)))})" if outages else ""),
        _count(int(summary.get("resumed_transfers", 0)), "resumed transfer"),
    ]
    lines.append("  Handled: " + ", ".join(h for h in handled if h))
    failures = summary.get("failures") or rec.failures
    groups = group_failures(list(failures))
    if groups:
        lines.append("Failures by reason:")
        for g in groups:
            lines.append(f"  {g.reason}: {g.count:,} {'file' if g.count == 1 else 'files'}")
            lines.extend(f"      e.g. {p}" for p in g.examples)
            if g.count > len(g.examples):
                lines.append(f"      ... and {g.count - len(g.examples):,} more (see the report)")
    if rec.unverified:
        lines.append(
            "Unverified files (kept; OneDrive's recorded hash disagrees with the bytes it sent):"
        )
        lines.extend(f"  {u['path']}" for u in rec.unverified[:UNVERIFIED_SHOWN])
        if len(rec.unverified) > UNVERIFIED_SHOWN:
            lines.append(f"  ... and {len(rec.unverified) - UNVERIFIED_SHOWN:,} more")
    renamed = summary.get("renamed") or {}
    if renamed.get("count"):
        lines.append(
            f"Names changed to fit the disk ({renamed['count']:,}; the report lists "
            f"{'them' if renamed['count'] <= len(renamed.get('examples', [])) else 'the first'}):"
        )
        for pair in renamed.get("examples", [])[:EXAMPLES_PER_REASON]:
            lines.append(f"  {pair['remote']}  ->  {pair['local']}")
    special = _special_lines(summary.get("scan") or {})
    if special:
        lines.append("Special items:")
        lines.extend(special)
    lines.append("What to do next:")
    lines.extend(next_steps(summary, report_path))
    return [redact(line) for line in lines]


def next_steps(summary: dict[str, Any], report_path: Path | None = None) -> list[str]:
    files = summary.get("files", {})
    resume = summary.get("resume_command")
    left = files.get("failed", 0) + files.get("pending", 0)
    steps = []
    if summary.get("outcome") not in (None, "complete", "complete_with_failures"):
        steps.append(f"  Resume where it stopped:  {resume or '(see above)'}")
    elif left:
        steps.append(f"  Retry what is left:  {resume}")
    elif resume:
        steps.append(f"  Bring it up to date later (only changes are fetched):  {resume}")
    if summary.get("backup_dir"):
        steps.append(
            f'  Check the files on disk:  onedrive-backup verify "{summary["backup_dir"]}"'
        )
    if report_path is not None:
        steps.append(f"  Full report:  {report_path}")
    return steps


# --- files on disk ---------------------------------------------------------------------------


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def report_data(summary: dict[str, Any], recorder: RunRecorder) -> dict[str, Any]:
    """The JSON report: the engine's summary, failures grouped, and what the events added."""
    failures = list(summary.get("failures") or recorder.failures)
    data = {k: v for k, v in summary.items() if k != "failures"}
    data["failure_groups"] = [
        {"reason": g.reason, "count": g.count, "examples": g.examples}
        for g in group_failures(failures)
    ]
    data["failures"] = failures
    data["unverified"] = recorder.unverified
    data["skipped"] = recorder.skipped
    data["token_renewals"] = recorder.token_renewals
    return data


def write_report(
    backup_dir: Path, summary: dict[str, Any], recorder: RunRecorder, stamp: str | None = None
) -> tuple[Path, Path]:
    """Write `run-STAMP.json` and `run-STAMP.txt` into the backup's reports folder."""
    folder = backup_dir / REPORTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stamp = stamp or time.strftime("%Y%m%d_%H%M%S", time.localtime(recorder.started))
    json_path = folder / f"run-{stamp}.json"
    text_path = folder / f"run-{stamp}.txt"
    data = report_data(summary, recorder)
    _write_atomic(json_path, redact(json.dumps(data, indent=2, ensure_ascii=False, default=str)))
    text = "\n".join(summary_lines(summary, recorder, json_path)) + "\n"
    _write_atomic(text_path, redact(text))
    return json_path, text_path


def state_summary(backup_dir: Path) -> dict[str, Any]:
    """Counts from the state itself, for runs that stopped before the engine's summary."""
    try:
        with BackupState.open(backup_dir, read_only=True) as state:
            totals = state.totals()
    except BackupError:
        return {}
    return {
        "files": totals.file_counts(),
        "bytes": {"selected": totals.total_bytes, "done": totals.bytes("done")},
    }


def latest_report(backup_dir: Path) -> dict[str, Any] | None:
    """The newest JSON report of a backup, or None."""
    folder = backup_dir / REPORTS_DIR
    reports = sorted(folder.glob("run-*.json")) if folder.is_dir() else []
    for path in reversed(reports):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return None
