"""`onedrive-backup demo`: back up a built-in emulated OneDrive, with real-world faults."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from onedrive_backup.demo import DemoOptions, run_demo
from onedrive_backup.redact import install_log_redaction

HELP = "back up a built-in emulated OneDrive (no account needed)"
DESCRIPTION = """\
Start a local OneDrive emulator in this process, sign in to it (the code is approved by
itself), and back it up into ./demo-backup (or --dest) while the faults that break naive
tools happen: access tokens that expire every 15 s, download links every 5 s, throttling
(HTTP 429) and a 5 s network outage mid-download. Then verify every file. Your own sign-in
and configuration are not touched.
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser("demo", help=HELP, description=DESCRIPTION)
    p.add_argument(
        "--dest", metavar="DIR", default="demo-backup", help="where to back up (./demo-backup)"
    )
    p.add_argument("--files", type=int, default=3000, metavar="N", help="files in the drive")
    p.add_argument(
        "--large-mb", type=int, default=250, metavar="MB", help="size of the large video (0: none)"
    )
    p.add_argument(
        "--outage", type=float, default=5.0, metavar="SECONDS", help="network outage (0: none)"
    )
    p.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")
    return p


def run(args: argparse.Namespace) -> int:
    install_log_redaction()
    opts = DemoOptions(
        dest=Path(args.dest).expanduser(),
        files=max(10, int(args.files)),
        large_bytes=max(0, int(args.large_mb)) * 1000 * 1000,
        outage_seconds=max(0.0, float(args.outage)),
        plain=bool(args.plain),
    )
    return run_demo(opts, sys.stdout)
