"""`onedrive-backup emulator`: run a local OneDrive for trying the tool without an account."""

from __future__ import annotations

import argparse
from typing import Any

from onedrive_backup.emulator.cli import add_arguments, serve


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "emulator",
        help="run a local OneDrive emulator (for tests and demos)",
        description="Run a local OneDrive emulator in the foreground and print the "
        "ONEDRIVE_BACKUP_* variables a client needs. Stop it with Ctrl-C.",
    )
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    return serve(args)
