"""`onedrive-backup login`: sign in (device code by default, --browser for a local browser)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from onedrive_backup import auth
from onedrive_backup.cli import settings_flags
from onedrive_backup.config import load_settings
from onedrive_backup.redact import install_log_redaction

HELP = "sign in to your Microsoft account"
DESCRIPTION = """\
Sign in to the Microsoft account whose OneDrive you want to back up.

By default this prints a link and a short code: open the link on any device with a browser,
enter the code and sign in; this works over SSH and without a terminal. With --browser a
browser on this computer opens instead. The sign-in is remembered in the config folder
(encrypted where the system offers a keyring, otherwise a file only you can read), so
backups can run unattended for months; `onedrive-backup logout` forgets it.
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "login", help=HELP, description=DESCRIPTION
    )
    parser.add_argument(
        "--browser",
        action="store_true",
        help="sign in with a browser on this computer instead of a device code",
    )
    parser.add_argument(
        "--shared",
        action="store_true",
        help="also ask to read items others shared with you (Files.Read.All)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    install_log_redaction()
    settings = load_settings(settings_flags(args))
    auth.require_client_id(settings)
    notice = auth.cache_notice(auth.open_token_cache(settings))
    if notice:
        print(notice, file=sys.stderr, flush=True)
    shared = bool(getattr(args, "shared", False))
    if getattr(args, "browser", False):
        account = auth.login_browser(settings, shared=shared)
    else:
        account = auth.login_device_code(settings, shared=shared)
    print(f"Signed in as {account.username}.", flush=True)
    return 0
