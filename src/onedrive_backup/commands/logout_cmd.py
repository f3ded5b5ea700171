"""`onedrive-backup logout`: forget the stored sign-in (accounts and all their tokens)."""

from __future__ import annotations

import argparse
from typing import Any

from onedrive_backup import auth
from onedrive_backup.cli import settings_flags
from onedrive_backup.config import load_settings
from onedrive_backup.redact import install_log_redaction

HELP = "forget the stored sign-in"
DESCRIPTION = """\
Remove the signed-in account and all its tokens from this computer's token cache. Works
offline. Backups already made are not touched; `onedrive-backup login` signs in again.
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "logout", help=HELP, description=DESCRIPTION
    )
    return parser


def run(args: argparse.Namespace) -> int:
    install_log_redaction()
    settings = load_settings(settings_flags(args))
    removed = auth.logout(settings)
    if not removed:
        print("No account was signed in.")
    for account in removed:
        print(f"Signed out {account.username}; its tokens were removed from this computer.")
    return 0
