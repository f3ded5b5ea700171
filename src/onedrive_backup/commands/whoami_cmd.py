"""`onedrive-backup whoami`: the signed-in account, its drive type and quota."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from typing import Any

from onedrive_backup import auth
from onedrive_backup.cli import settings_flags
from onedrive_backup.config import Settings, load_settings
from onedrive_backup.errors import SignInRequired
from onedrive_backup.graph import GraphClient
from onedrive_backup.redact import install_log_redaction

HELP = "show the signed-in account, drive type and quota"


@dataclass(frozen=True)
class Identity:
    username: str
    display_name: str
    drive_type: str
    quota_used: int | None
    quota_total: int | None


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser("whoami", help=HELP, description=HELP)
    return parser


async def fetch_identity(settings: Settings) -> Identity:
    """Ask Graph who is signed in (/me) and about their drive (/me/drive)."""
    tokens = auth.MsalTokenSource(settings)
    try:
        async with GraphClient(
            settings.endpoints().graph_url, tokens, ca_bundle=settings.ca_bundle
        ) as graph:
            me = await graph.get_json("/me")
            drive = await graph.get_json("/me/drive")
    finally:
        tokens.close()
    quota = drive.get("quota") or {}
    return Identity(
        username=str(me.get("userPrincipalName") or me.get("mail") or "?"),
        display_name=str(me.get("displayName") or ""),
        drive_type=str(drive.get("driveType") or "unknown"),
        quota_used=_int_or_none(quota.get("used")),
        quota_total=_int_or_none(quota.get("total")),
    )


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


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
