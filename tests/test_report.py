"""The summary, the JSON report and the plain progress lines: pure rendering, no network."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from onedrive_backup import events
from onedrive_backup.commands.backup_cmd import (
    answers_from_args,
    parse_duration,
    parse_rate,
    split_list,
)
from onedrive_backup.errors import UsageError
from onedrive_backup.progress import Describer, PlainRenderer, human_duration, short_reason
from onedrive_backup.redact import register_secret
from onedrive_backup.report import RunRecorder, group_failures, summary_lines, write_report


def _summary(failures: list[dict[str, str]], **files: int) -> dict[str, object]:
    counts = {"selected": 30_010, "done": 10, "failed": len(failures), "unverified": 0}
    counts.update({"pending": 0, "downloaded_this_run": 10, "adopted_this_run": 0, **files})
    return {
        "backup_dir": "/mnt/usb/OneDrive_Backup_20250101_000000",
        "started": 1000.0,
        "finished": 1000.0 + 3725,
        "files": counts,
        "bytes": {"selected": 5 * 10**9, "downloaded": 10**9},
        "link_refreshes": 12,
        "throttled": 3,
        "outages": 1,
        "outage_seconds": 42.0,
        "resumed_transfers": 2,
        "failures": failures,
        "scan": {"notebooks": ["/Documents/Notebook"], "vault": [], "malware": ["/x.exe"]},
        "resume_command": 'onedrive-backup backup --dest "/mnt/usb" --resume OneDrive_Backup_1',
        "outcome": "complete_with_failures",
    }


def test_thirty_thousand_identical_failures_are_one_line_with_a_count() -> None:
    failures = [{"path": f"/Photos/IMG_{i}.JPG", "reason": "HTTP 401"} for i in range(30_000)]
    failures.append({"path": "/Docs/a.pdf", "reason": "content mismatch"})
    lines = summary_lines(_summary(failures))
    text = "\n".join(lines)
    assert len(lines) < 40
    assert "  HTTP 401: 30,000 files" in lines
    assert "  content mismatch: 1 file" in lines
    assert text.count("e.g. /Photos/IMG_") == 3
    assert "... and 29,997 more (see the report)" in text
    # Most frequent first, and the summary ends with what to do next.
    assert text.index("HTTP 401") < text.index("content mismatch")
    assert lines[-3].startswith("What to do next")
    assert "--resume OneDrive_Backup_1" in lines[-2]
    assert "1 h 02 min" in text
    assert "OneNote notebooks (1)" in text and "malware by OneDrive (1)" in text


def test_group_failures_orders_by_count_and_keeps_three_examples() -> None:
    failures = [{"path": f"/f{i}", "reason": "a" if i % 3 else "b"} for i in range(9)]
    groups = group_failures(failures)
    assert [(g.reason, g.count) for g in groups] == [("a", 6), ("b", 3)]
    assert groups[0].examples == ["/f1", "/f2", "/f4"]


def test_clean_run_says_complete_and_how_to_update() -> None:
    lines = summary_lines(_summary([], selected=10))
    assert lines[0] == "Backup complete: all 10 selected files backed up and verified."
    assert any("Bring it up to date later" in line for line in lines)


def test_report_files_are_written_and_redacted(tmp_path: Path) -> None:
    secret = "very-secret-refresh-token-value-123"
    register_secret(secret)
    failures = [{"path": f"/a{i}", "reason": f"weird {secret}"} for i in range(5)]
    recorder = RunRecorder()
    recorder(events.ItemUnverified(path="/odd.bin", reason="unverified: server disagrees"))
    json_path, text_path = write_report(tmp_path, _summary(failures), recorder, stamp="x")
    data = json.loads(json_path.read_text())
    assert data["failure_groups"][0]["count"] == 5
    assert data["unverified"] == [{"path": "/odd.bin", "reason": "unverified: server disagrees"}]
    for path in (json_path, text_path):
        assert secret not in path.read_text()
    assert "/odd.bin" in text_path.read_text()


def test_plain_renderer_prints_events_and_progress_every_interval() -> None:
    now = [0.0]
    out = io.StringIO()
    r = PlainRenderer(out, interval=10, clock=lambda: now[0], timestamps=False)
    r.start()
    r(events.PhaseStarted(phase="download"))
    for i in range(1, 61):  # 30 s of progress every 0.5 s
        now[0] = i * 0.5
        r(events.DownloadProgress(i, 100, i * 1000, 100_000, 8, 2000.0))
    r(events.Throttled(seconds=2.1, status=429))
    r(events.NetworkWaiting(retry_in=8, down_for=3, reason="DNS lookup failed"))
    r(events.LinkRefreshed(path="/Videos/big.mov"))
    r(events.ItemFailed(path="/x.jpg", reason="content mismatch"))
    lines = out.getvalue().splitlines()
    assert lines[0] == "Phase 3: Downloading 100 files (100.0 KB)"
    assert sum(line.startswith("  Progress:") for line in lines) == 3
    assert "  Progress: 20/100 files, 20.0 KB/100.0 KB, 2.0 KB/s, ETA 40 s, 8 active" in lines
    assert "Throttled by OneDrive (HTTP 429) — waiting 2.1 s" in lines
    assert "Network down (DNS lookup failed) — retrying in 8.0 s (down for 3.0 s)" in lines
    assert "Download link expired for /Videos/big.mov — got a fresh one" in lines
    assert "Failed: /x.jpg (content mismatch)" in lines


def test_per_file_notices_stop_after_a_limit() -> None:
    words = Describer()
    shown = [words.describe(events.ItemFailed(path=f"/{i}", reason="r")) for i in range(500)]
    assert sum(s is not None for s in shown) == 20
    assert words.suppressed["failure"] == 480


def test_words() -> None:
    assert human_duration(3725) == "1 h 02 min"
    assert human_duration(61) == "1 min 01 s"
    assert short_reason("RemoteProtocolError: peer closed (received 1 bytes)") == (
        "RemoteProtocolError: peer closed (received 1 bytes)"
    )
    assert short_reason("X: " + "y" * 40 + " (received 104987837 bytes, expected 25)") == (
        "X: " + "y" * 40
    )


def test_flag_values() -> None:
    assert parse_rate("500K") == 500_000
    assert parse_rate("1.5MB/s") == 1_500_000
    assert parse_duration("2h") == 7200
    assert parse_duration("90") == 90
    assert split_list(["photos,videos", "music"]) == ["photos", "videos", "music"]
    with pytest.raises(UsageError, match="--bwlimit"):
        parse_rate("fast")
    with pytest.raises(UsageError, match="--max-outage"):
        parse_duration("soon")


def test_answers_from_flags_and_environment() -> None:
    from onedrive_backup.cli import build_parser

    parser, _ = build_parser()
    args = parser.parse_args(["backup", "--category", "photos,videos", "--workers", "4"])
    a = answers_from_args(args, {"ONEDRIVE_BACKUP_DEST": "/mnt/usb"})
    assert str(a.dest) == "/mnt/usb" and a.workers == 4
    assert sorted(a.selection().categories) == ["photos", "videos"]
    with pytest.raises(UsageError, match="--category"):
        answers_from_args(parser.parse_args(["backup", "--category", "pictures"]), {})
    with pytest.raises(UsageError, match="--workers"):
        answers_from_args(parser.parse_args(["backup", "--workers", "0"]), {})
