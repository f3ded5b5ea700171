"""Run the emulator in the foreground: shared by `python -m onedrive_backup.emulator` and
`onedrive-backup emulator`."""

from __future__ import annotations

import argparse
import shlex
import threading

from onedrive_backup.emulator.generate import DriveSpec
from onedrive_backup.emulator.server import Emulator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0, help="Graph + sign-in port (default: any)")
    parser.add_argument("--download-port", type=int, default=0, help="download port")
    parser.add_argument("--files", type=int, default=200, help="number of files to generate")
    parser.add_argument("--seed", type=int, default=1, help="drive generator seed")
    parser.add_argument("--min-size", type=int, default=1, help="smallest file, bytes")
    parser.add_argument("--max-size", type=int, default=256 * 1024, help="largest file, bytes")
    parser.add_argument(
        "--large-file",
        type=int,
        action="append",
        default=[],
        metavar="BYTES",
        help="add a large video of this size (repeatable)",
    )
    parser.add_argument("--business", action="store_true", help="a work/school drive")
    parser.add_argument("--no-notebook", action="store_true", help="leave out the OneNote notebook")
    parser.add_argument("--zero-byte-files", type=int, default=2, metavar="N")
    parser.add_argument("--hostile-names", action="store_true", help="add hostile names")
    parser.add_argument(
        "--emulator-client-id", default="emulator-client-id", help="client id the emulator accepts"
    )
    parser.add_argument("--access-token-lifetime", type=float, default=3600.0, metavar="S")
    parser.add_argument("--link-lifetime", type=float, default=3600.0, metavar="S")
    parser.add_argument("--latency", type=float, default=0.0, metavar="S")
    parser.add_argument(
        "--no-auto-approve",
        action="store_true",
        help="device codes wait for the admin API or /devicelogin",
    )


def build(args: argparse.Namespace) -> Emulator:
    spec = DriveSpec(
        files=args.files,
        seed=args.seed,
        size_range=(args.min_size, args.max_size),
        large_files=args.large_file,
        hostile_names=args.hostile_names,
        drive_type="business" if args.business else "personal",
    )
    faults = {
        "access_token_lifetime": args.access_token_lifetime,
        "link_lifetime": args.link_lifetime,
        "latency": args.latency,
        "auto_approve": not args.no_auto_approve,
    }
    return Emulator(
        spec,
        args.emulator_client_id,
        port=args.port,
        download_port=args.download_port,
        faults=faults,
    )


def serve(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Start, print what a client needs, and run until Ctrl-C (or `stop` is set)."""
    emu = build(args)
    emu.start()
    try:
        print("# OneDrive emulator running. Point a client at it with:")
        for name, value in emu.env().items():
            print(f"export {name}={shlex.quote(value)}")
        print(f"# CA certificate: {emu.ca_path}")
        print(f"# Download origin: {emu.download_origin}")
        print(f"# Admin key: {emu.admin_key}  (header X-Admin-Key; {emu.graph_origin}/_admin/...)")
        print("# Press Ctrl-C to stop.", flush=True)
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m onedrive_backup.emulator", description="A local OneDrive emulator."
    )
    add_arguments(parser)
    return serve(parser.parse_args(argv))
