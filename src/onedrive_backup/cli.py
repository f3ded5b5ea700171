"""Command-line entry point: global settings, one module per command, errors to exit codes.

Each command lives in `onedrive_backup/commands/<name>.py` and provides
`register(subparsers) -> argparse.ArgumentParser` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType

from onedrive_backup import __version__
from onedrive_backup.config import CLOUD_NAMES
from onedrive_backup.errors import BackupError, ExitCode
from onedrive_backup.redact import install_log_redaction, redact

# Order is the order shown in --help.
COMMAND_MODULES = (
    "login",
    "logout",
    "whoami",
    "backup",
    "list",
    "status",
    "verify",
    "gui",
    "demo",
    "emulator",
)

EPILOG = """\
exit codes:
  0    all selected files backed up and verified
  1    some files failed (listed in the report)
  2    usage error
  3    sign-in needed (run `onedrive-backup login`)
  4    destination problem (missing, not writable, full)
  5    state problem (locked by another run, unreadable)
  130  interrupted (state saved; resume with --resume latest)

Run `onedrive-backup` alone on a terminal for the interactive flow.
"""


def add_global_options(parser: argparse.ArgumentParser, *, sub: bool = False) -> None:
    """Settings every command shares; each also reads ONEDRIVE_BACKUP_<NAME>.

    They are accepted before and after the command name; on a subcommand the default is
    SUPPRESS so that a value given before the command name is not overwritten.
    """
    g = parser.add_argument_group("settings (also ONEDRIVE_BACKUP_* variables)")
    if sub:
        g.argument_default = argparse.SUPPRESS
    g.add_argument("--config-dir", help="where the token cache and config.json live")
    g.add_argument("--client-id", help="application (client) id of your Azure app registration")
    g.add_argument("--cloud", choices=CLOUD_NAMES, help="national cloud (default: global)")
    g.add_argument("--tenant", help="consumers (default), organizations, common or a tenant id")
    g.add_argument("--authority", help="custom authority URL, e.g. https://host/consumers")
    g.add_argument("--graph-url", help="custom Graph URL, e.g. https://host/v1.0")
    g.add_argument("--ca-bundle", help="extra CA (PEM) trusted for every HTTPS call")
    g.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=g.argument_default or False,
        help="log debug details to stderr",
    )


def settings_flags(args: argparse.Namespace) -> dict[str, object]:
    """The global settings given as flags, in the shape config.load_settings takes."""
    names = ("config_dir", "client_id", "cloud", "tenant", "authority", "graph_url", "ca_bundle")
    return {name: getattr(args, name, None) for name in names}


def _load_commands() -> dict[str, ModuleType]:
    modules: dict[str, ModuleType] = {}
    for name in COMMAND_MODULES:
        full = f"onedrive_backup.commands.{name}_cmd"
        try:
            modules[name] = importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name != full:
                raise
    return modules


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    parser = argparse.ArgumentParser(
        prog="onedrive-backup",
        description="Back up a whole Microsoft OneDrive to a local or external disk.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"onedrive-backup {__version__}")
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = _load_commands()
    for module in commands.values():
        cmd_parser = module.register(sub)
        cmd_parser.epilog = EPILOG
        cmd_parser.formatter_class = argparse.RawDescriptionHelpFormatter
        add_global_options(cmd_parser, sub=True)
    return parser, commands


def _interactive_default(raw: list[str], commands: dict[str, ModuleType]) -> bool:
    """`onedrive-backup [backup flags]` alone on a terminal starts the interactive backup."""
    if any(token in commands for token in raw):
        return False
    if any(token in ("-h", "--help", "--version") for token in raw):
        return False
    return "backup" in commands and sys.stdin.isatty() and sys.stdout.isatty()


def main(argv: list[str] | None = None) -> int:
    parser, commands = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    interactive = _interactive_default(raw, commands)
    try:
        args = parser.parse_args(["backup", *raw] if interactive else raw)
    except SystemExit as exc:  # argparse: --help is 0, bad usage is 2
        return int(exc.code or 0)
    if interactive:
        args.interactive = True
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    install_log_redaction()
    command = args.command
    if command is None:
        parser.print_help()
        return int(ExitCode.USAGE)
    try:
        return int(commands[command].run(args))
    except BackupError as exc:
        print(f"Error: {redact(exc.message)}", file=sys.stderr)
        if exc.hint:
            print(redact(exc.hint), file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
