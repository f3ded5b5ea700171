"""`onedrive-backup verify BACKUP_DIR [--quick] [--repair]`: check the files on disk."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from onedrive_backup.errors import ExitCode
from onedrive_backup.verify import VerifyResult, describe_result, requeue, verify_backup

HELP = "check every backed-up file against its recorded hash"
DESCRIPTION = """\
Re-read every file of the backup in BACKUP_DIR and compare its quickXorHash with the one
recorded when it was downloaded and verified; --quick compares only sizes and modification
times. Exits 0 when everything matches and 1 with a list of the files that are missing or
differ. --repair marks those files so the next `backup --resume` downloads them again.
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser("verify", help=HELP, description=DESCRIPTION)
    p.add_argument("backup_dir", metavar="BACKUP_DIR", help="a OneDrive_Backup_* folder")
    p.add_argument("--quick", action="store_true", help="compare sizes and times, not content")
    p.add_argument(
        "--repair",
        action="store_true",
        help="queue missing or damaged files for download by the next resume",
    )
    return p


def run(args: argparse.Namespace) -> int:
    backup_dir = Path(args.backup_dir).expanduser().resolve()
    quick = bool(getattr(args, "quick", False))
    tty = sys.stdout.isatty()

    def progress(r: VerifyResult) -> None:
        if tty:
            print(f"\r  checked {r.checked:,} files...", end="", flush=True)

    print(f"Verifying {backup_dir} ({'sizes and times' if quick else 'content hashes'})...")
    result = verify_backup(backup_dir, quick=quick, progress=progress)
    if tty:
        print()
    repaired = False
    if result.problems and getattr(args, "repair", False):
        n = requeue(backup_dir, result.problems)
        repaired = True
        print(f"Queued {n:,} files to be downloaded again by the next resume.")
    for line in describe_result(result, backup_dir, quick=quick, repaired=repaired):
        print(line)
    return int(ExitCode.OK if result.ok else ExitCode.SOME_FAILED)
