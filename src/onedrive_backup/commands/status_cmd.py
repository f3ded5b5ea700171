"""`onedrive-backup status BACKUP_DIR`: last run, progress and failures of one backup."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from onedrive_backup.progress import human_bytes, human_duration
from onedrive_backup.report import group_failures, latest_report
from onedrive_backup.state import BackupState

HELP = "show the progress, last run and failures of one backup"
DESCRIPTION = """\
Show how far the backup in BACKUP_DIR (a OneDrive_Backup_* folder) got: files and bytes done,
what is left, the last run and how it ended, and the failures of the last run grouped by
reason. Works while a backup is running (it only reads).
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser("status", help=HELP, description=DESCRIPTION)
    p.add_argument("backup_dir", metavar="BACKUP_DIR", help="a OneDrive_Backup_* folder")
    return p


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "never"


def run(args: argparse.Namespace) -> int:
    backup_dir = Path(args.backup_dir).expanduser().resolve()
    with BackupState.open(backup_dir, read_only=True) as state:
        summary = state.summary()
        totals = state.totals()
        last = state.last_run()
    verdict = "complete" if summary.complete else "unfinished"
    print(f"Backup {backup_dir} ({verdict})")
    print(
        f"  Files:  {summary.files_done:,} of {summary.files_total:,} backed up; "
        f"{totals.count('pending'):,} left, {totals.count('failed'):,} failed, "
        f"{totals.count('unverified'):,} unverified"
    )
    print(f"  Data:   {human_bytes(summary.bytes_done)} of {human_bytes(summary.bytes_total)}")
    if last is not None:
        started, finished, outcome = last
        took = f" (took {human_duration(finished - started)})" if finished else " (running?)"
        print(f"  Last run: started {_when(started)}{took}, outcome: {outcome or 'unknown'}")
    special = {k: v for k, v in totals.special.items() if k != "zero"}
    if special:
        print("  Special items: " + ", ".join(f"{v:,} {k}" for k, v in sorted(special.items())))
    report = latest_report(backup_dir)
    if report is not None:
        groups = group_failures(list(report.get("failures") or []))
        if groups:
            print("Failures in the last run, by reason:")
            for g in groups:
                print(f"  {g.reason}: {g.count:,}")
                for path in g.examples:
                    print(f"      e.g. {path}")
    if not summary.complete:
        print(
            f'Resume: onedrive-backup backup --dest "{backup_dir.parent}" '
            f"--resume {backup_dir.name}"
        )
    return 0
