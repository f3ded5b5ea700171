"""`onedrive-backup whoami`: the signed-in account, its drive type and quota."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from onedrive_backup import auth
from onedrive_backup.cli import settings_flags
from onedrive_backup.config import Settings, load_settings
from onedrive_backup.errors import SignInRequired
from onedrive_backup.graph import GraphClient, Identity
from onedrive_backup.graph import fetch_identity as graph_identity
from onedrive_backup.redact import install_log_redaction

HELP = "show the signed-in account, drive type and quota"


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser("whoami", help=HELP, description=HELP)
    return parser


async def fetch_identity(settings: Settings) -> Identity:
    """Ask Graph who is signed in and about their drive, with the stored sign-in."""
    tokens = auth.MsalTokenSource(settings)
    try:
        async with GraphClient(
            settings.endpoints().graph_url, tokens, ca_bundle=settings.ca_bundle
        ) as graph:
            return await graph_identity(graph)
    finally:
        tokens.close()


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def render(identity: Identity) -> str:
    name = f" ({identity.display_name})" if identity.display_name else ""
    if identity.quota_used is not None and identity.quota_total:
        percent = 100 * identity.quota_used / identity.quota_total
        quota = (
            f"{human_size(identity.quota_used)} used of {human_size(identity.quota_total)}"
            f" ({percent:.0f}%)"
        )
    else:
        quota = "unknown"
    return f"Account: {identity.username}{name}\nDrive:   {identity.drive_type}\nQuota:   {quota}"


def run(args: argparse.Namespace) -> int:
    install_log_redaction()
    settings = load_settings(settings_flags(args))
    auth.require_client_id(settings)
    if not auth.cached_accounts(settings):
        raise SignInRequired("You are not signed in.", "Run `onedrive-backup login` first.")
    print(render(asyncio.run(fetch_identity(settings))))
    return 0
