"""The interactive flow on a terminal: account, destination, resume or new, what to back up.

UI only: it asks what the flags did not say, checks the destination the way the engine will,
and returns a `BackupPlan`. Every question has a flag (shown next to it) and a default.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from onedrive_backup import auth
from onedrive_backup.commands.backup_cmd import Answers, make_plan, split_list
from onedrive_backup.config import Settings
from onedrive_backup.errors import BackupError, UsageError
from onedrive_backup.models import BackupSummary
from onedrive_backup.progress import human_bytes

# The menu the earlier script's users know by heart (1-3 and 8).
MENU: tuple[tuple[str, str], ...] = (
    ("1", "Documents"),
    ("2", "Pictures"),
    ("3", "Videos"),
    ("4", "Music"),
    ("5", "Archives"),
    ("6", "Choose folders"),
    ("7", "Custom patterns"),
    ("8", "All files"),
)
MENU_CATEGORIES = {"1": "documents", "2": "photos", "3": "videos", "4": "music", "5": "archives"}
# Filesystems that cannot hold every OneDrive name or file (checked cheaply from /proc/mounts).
LIMITED_FILESYSTEMS = {
    "vfat": 'FAT32: files over 4 GB cannot be stored; names with : * ? " < > | are renamed',
    "msdos": 'FAT: files over 4 GB cannot be stored; names with : * ? " < > | are renamed',
    "exfat": 'exFAT: names with : * ? " < > | are renamed; upper/lower case is not kept apart',
    "fuseblk": "a FUSE disk (often exFAT or NTFS): some names may be renamed",
    "ntfs": 'NTFS: names with : * ? " < > | are renamed',
}


class Prompter:
    """Reads answers from the terminal; Ctrl-D ends the flow as a usage error."""

    def __init__(self, console: Console, read: Callable[[str], str] | None = None) -> None:
        self.console = console
        self._read = read or (lambda prompt: console.input(prompt))

    def ask(self, question: str, default: str = "") -> str:
        suffix = f" [{default}]" if default else ""
        try:
            answer = self._read(f"[bold]{question}[/bold]{suffix}: ").strip()
        except EOFError:
            raise UsageError("No answer given (end of input).") from None
        return answer or default

    def confirm(self, question: str, default: bool = True) -> bool:
        while True:
            answer = self.ask(question + (" (Y/n)" if default else " (y/N)")).lower()
            if not answer:
                return default
            if answer in ("y", "yes"):
                return True
            if answer in ("n", "no"):
                return False
            self.console.print("Please answer y or n.")


def _mount_table() -> list[tuple[str, str]]:
    """(mount point, filesystem type) pairs: /proc/mounts on Linux, `mount` on macOS."""
    try:
        lines = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    table: list[tuple[str, str]] = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 3:
            table.append((parts[1].replace("\\040", " "), parts[2]))
    if table or sys.platform != "darwin":
        return table
    try:  # macOS: "/dev/disk4s1 on /Volumes/T7 2TB (exfat, local, nodev, nosuid)"
        out = subprocess.run(["mount"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    for line in out.splitlines():
        m = re.match(r"^.+? on (.+) \(([^,)]+)", line)
        if m:
            table.append((m.group(1), m.group(2)))
    return table


def filesystem_type(path: Path) -> str | None:
    """The filesystem type of the mount holding `path`, where cheaply known (Linux, macOS)."""
    target = os.path.realpath(path)
    best, best_type = "", None
    for mount_point, fs_type in _mount_table():
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fs_type
    return best_type


def check_destination_interactive(dest: Path) -> list[str]:
    """Validate like the engine does; return notes to show (filesystem, free space)."""
    from onedrive_backup.engine import check_destination

    check_destination(dest)
    notes = []
    fs = filesystem_type(dest)
    free = shutil.disk_usage(dest).free
    notes.append(f"Free space: {human_bytes(free)}" + (f" (filesystem: {fs})" if fs else ""))
    if fs in LIMITED_FILESYSTEMS:
        notes.append(f"Note: {LIMITED_FILESYSTEMS[fs]}.")
    return notes


def describe_backup(b: BackupSummary) -> str:
    if b.error:
        return f"{b.name}: cannot be read ({b.error})"
    state = "complete" if b.complete else "unfinished"
    when = (
        time.strftime("%Y-%m-%d %H:%M", time.localtime(b.last_run_at)) if b.last_run_at else "never"
    )
    outcome = f", {b.last_outcome.replace('_', ' ')}" if b.last_outcome else ""
    return (
        f"{b.name}: {state}, {b.files_done:,}/{b.files_total:,} files, "
        f"{human_bytes(b.bytes_done)} of {human_bytes(b.bytes_total)}, last run {when}{outcome}"
    )


class Wizard:
    def __init__(self, settings: Settings, answers: Answers, prompter: Prompter) -> None:
        self.settings = settings
        self.a = answers
        self.p = prompter
        self.say = prompter.console.print

    def run(self) -> Any:
        self.say("[bold]onedrive-backup[/bold]: back up your whole OneDrive to a disk.\n")
        self.account()
        self.destination()
        resuming = self.existing_backups()
        self.what_to_back_up(resuming)
        return make_plan(self.a)

    # -- steps ------------------------------------------------------------------------------

    def account(self) -> None:
        accounts = auth.cached_accounts(self.settings)
        if accounts:
            self.say(f"Signed in as [bold]{accounts[0].username}[/bold].")
            return
        self.say("You are not signed in to OneDrive yet.")
        if not self.p.confirm("Sign in now?"):
            raise UsageError("Not signed in.", "Run `onedrive-backup login`, then try again.")
        account = auth.login_device_code(
            self.settings, shared=self.a.include_shared, out=sys.stdout
        )
        self.say(f"Signed in as [bold]{account.username}[/bold].")

    def destination(self) -> None:
        """Ask until the destination exists and is writable (flag: --dest)."""
        default = str(self.a.dest) if self.a.dest else ""
        while True:
            text = self.p.ask("\nBackup destination folder (--dest)", default)
            if not text:
                self.say("Type the path of the folder or disk to keep the backup in.")
                continue
            dest = Path(text).expanduser()
            try:
                notes = check_destination_interactive(dest)
            except BackupError as exc:
                self.say(f"[red]{exc.message}[/red]")
                if exc.hint:
                    self.say(exc.hint)
                default = ""
                continue
            self.a.dest = dest
            self.say(f"Destination: {dest}")
            for note in notes:
                self.say("  " + note)
            return

    def existing_backups(self) -> bool:
        """Resume one of the backups in the destination, or start a new one (--resume/--new)."""
        from onedrive_backup.state import find_backups

        assert self.a.dest is not None
        if self.a.new:
            return False
        backups = [b for b in find_backups(self.a.dest) if b.error is None]
        if self.a.resume or not backups:
            if not backups:
                self.say("No earlier backups here: a new one will be started.")
            return bool(self.a.resume)
        self.say("\nBackups already in this folder:")
        for i, b in enumerate(backups, 1):
            self.say(f"  {i}. {describe_backup(b)}")
        new_choice = str(len(backups) + 1)
        self.say(f"  {new_choice}. Start a new backup")
        unfinished = [i for i, b in enumerate(backups, 1) if not b.complete]
        default = str(unfinished[-1] if unfinished else len(backups))
        while True:
            choice = self.p.ask(f"Resume which backup? (1-{new_choice})", default)
            if choice == new_choice:
                self.a.new, self.a.resume = True, None
                self.say("Will start a new backup.")
                return False
            if choice.isdigit() and 1 <= int(choice) <= len(backups):
                chosen = backups[int(choice) - 1]
                self.a.resume = chosen.name
                self.say(f"Will resume: {chosen.name}")
                return True
            self.say(f"Please type a number from 1 to {new_choice}.")

    def what_to_back_up(self, resuming: bool) -> None:
        """The menu (flags: --category, --folder, --include, --exclude)."""
        if self.a.selection_given:
            return
        self.say("\nWhat to back up?")
        for key, label in MENU:
            self.say(f"  {key}. {label}")
        hint = "several combine, e.g. 1,2"
        default = "" if resuming else "8"
        if resuming:
            hint += "; Enter keeps what this backup was set to"
        while True:
            text = self.p.ask(f"Choose ({hint})", default)
            if not text and resuming:
                return
            choices = split_list([text])
            if choices and all(c in dict(MENU) for c in choices):
                break
            self.say("Please type numbers from 1 to 8, separated by commas.")
        if "8" in choices:
            self.a.categories = ["all"]
            self.say("Selected: all files")
            return
        self.a.categories = [MENU_CATEGORIES[c] for c in choices if c in MENU_CATEGORIES]
        if "6" in choices:
            folders = self.p.ask(
                "OneDrive folders, comma-separated (e.g. Pictures/2020, Documents)"
            )
            self.a.folders = split_list([folders])
        if "7" in choices:
            self.a.include = split_list([self.p.ask("Include patterns (e.g. *.pdf, Taxes/*)", "")])
            self.a.exclude = split_list([self.p.ask("Exclude patterns (e.g. *.tmp)", "")])
        if not self.a.selection_given:
            self.a.categories = ["all"]
        labels = [label for key, label in MENU if key in choices]
        self.say("Selected: " + ", ".join(labels))


def run(settings: Settings, answers: Answers, console: Console | None = None) -> Any:
    """Ask what is missing and return the plan to run."""
    console = console or Console(highlight=False)
    return Wizard(settings, answers, Prompter(console)).run()
