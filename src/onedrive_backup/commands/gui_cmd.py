"""`onedrive-backup gui`: the same backup with buttons, as a local web app in your browser."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import webbrowser
from typing import Any

from onedrive_backup.cli import settings_flags
from onedrive_backup.config import Settings, load_settings
from onedrive_backup.errors import UsageError
from onedrive_backup.redact import install_log_redaction

HELP = "open the backup in your web browser (a local app; nothing leaves this computer)"
DESCRIPTION = """\
Start the graphical backup: a small web app served from this computer only (127.0.0.1),
opened in your default browser. It signs in, lets you choose the destination and what to
back up, and shows the backup's progress, exactly like the terminal flow.

The address carries a one-time key; keep it to yourself. Stop with Ctrl-C: a running backup
stops gracefully and can be resumed later.
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "gui", help=HELP, description=DESCRIPTION
    )
    parser.add_argument(
        "--no-browser",
        action="store_true",
        help="print the address instead of opening a browser",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)"
    )
    return parser


async def serve(settings: Settings, port: int, open_browser: bool) -> None:
    from onedrive_backup.gui import GuiServer

    server = GuiServer(settings, port=port)
    try:
        url = await server.start()
    except OSError as exc:
        raise UsageError(
            f"Could not listen on 127.0.0.1:{port} ({exc.strerror or exc}).",
            "Choose another --port, or leave it out to use any free port.",
        ) from exc
    print(f"onedrive-backup is running at {url}", flush=True)
    print("Keep this address private (it carries a one-time key). Ctrl-C stops.", flush=True)
    if open_browser and not webbrowser.open(url):
        print("Could not open a browser; open the address above yourself.", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()


def run(args: argparse.Namespace) -> int:
    install_log_redaction()
    settings = load_settings(settings_flags(args))
    port = int(getattr(args, "port", 0) or 0)
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}.")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, port, not getattr(args, "no_browser", False)))
    print("Stopped.", file=sys.stderr)
    return 0
