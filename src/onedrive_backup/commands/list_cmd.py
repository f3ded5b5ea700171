"""`onedrive-backup list --dest DIR`: the backups in a destination and how far each got."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from onedrive_backup.config import ENV_PREFIX
from onedrive_backup.errors import DestinationError, UsageError
from onedrive_backup.state import find_backups
from onedrive_backup.wizard import describe_backup

HELP = "list the backups in a destination folder"
DESCRIPTION = """\
List the OneDrive_Backup_* folders in DIR: complete or unfinished, files done/total, size and
the last run. Works while a backup is running (it only reads).
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser("list", help=HELP, description=DESCRIPTION)
    p.add_argument("--dest", metavar="DIR", help="the destination folder (ONEDRIVE_BACKUP_DEST)")
    return p


def run(args: argparse.Namespace) -> int:
    dest_text = getattr(args, "dest", None) or os.environ.get(ENV_PREFIX + "DEST")
    if not dest_text:
        raise UsageError("--dest DIR is required.", "Example: onedrive-backup list --dest /mnt/usb")
    dest = Path(dest_text).expanduser()
    if not dest.is_dir():
        raise DestinationError(f"The destination {dest} does not exist or is not a folder.")
    backups = find_backups(dest)
    if not backups:
        print(f"No backups in {dest}.")
        return 0
    print(f"Backups in {dest}:")
    for b in backups:
        print(f"  {describe_backup(b)}")
    latest = backups[-1]
    print(f'\nResume or update the latest: onedrive-backup backup --dest "{dest}" --resume latest')
    if latest.error is None and not latest.complete:
        print(f"({latest.name} is unfinished.)")
    return 0
