"""The demo: a real backup of an emulated OneDrive with the faults that sank the earlier script.

The emulator runs in this process (real HTTPS, real MSAL sign-in with the device code approved
by itself); access tokens live 15 s, download links 10 s, a few requests are throttled and the
network drops for 5 s mid-download. The backup and the verify that follows are the real ones.
A temporary config folder keeps the user's own sign-in untouched.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from onedrive_backup import auth
from onedrive_backup.config import Settings
from onedrive_backup.emulator import DriveSpec, Emulator
from onedrive_backup.errors import ExitCode
from onedrive_backup.progress import human_bytes, human_duration
from onedrive_backup.verify import describe_result, verify_backup

DEMO_CLIENT_ID = "demo-client-id"


@dataclass(frozen=True)
class DemoOptions:
    dest: Path
    files: int = 3000
    large_bytes: int = 250 * 1000 * 1000
    token_lifetime: float = 15.0
    link_lifetime: float = 5.0
    outage_seconds: float = 5.0
    throttles: int = 3
    workers: int = 16
    plain: bool = False
    bwlimit: int | None = None  # bytes/s; tests slow the run down to see every fault


def demo_spec(opts: DemoOptions) -> DriveSpec:
    """A few thousand files across the categories, a large video, unicode names, a notebook."""
    return DriveSpec(
        files=opts.files,
        seed=2025,
        size_range=(1, 200 * 1024),
        large_files=[opts.large_bytes] if opts.large_bytes else [],
        notebook=True,
        hostile_names=False,
        user_name="Demo User",
        user_email="demo.user@outlook.com",
    )


class FaultScript(threading.Thread):
    """Throws throttling and the network outage at the run once downloads are underway.

    The outage comes while the large video is transferring and its link is old enough to
    expire during the outage, so the run must also fetch a fresh link to continue it.
    """

    def __init__(self, emu: Emulator, opts: DemoOptions, total_bytes: int) -> None:
        super().__init__(name="demo-faults", daemon=True)
        self.emu, self.opts, self.total_bytes = emu, opts, total_bytes
        self.stop = threading.Event()
        large = [i for i in emu.drive.items if i.children is None and i.size == opts.large_bytes]
        self.large_id = emu.drive.item_id(large[0]) if large and opts.large_bytes else None

    def served(self) -> dict[str, int]:
        counts: dict[str, int] = self.emu.counters.snapshot()["bytes_served"]
        return counts

    def run(self) -> None:
        while not self.stop.wait(0.05):  # a few 429s once downloads are underway
            if self.emu.counters.snapshot()["links_issued"] > 10 and self.opts.throttles:
                self.emu.faults.update(
                    {"throttle_targets": "both", "throttle_next": self.opts.throttles}
                )
                break
        # Past this age, the large file's link will have expired by the end of the outage.
        link_age = max(0.0, self.opts.link_lifetime - self.opts.outage_seconds + 1.0)
        large_started: float | None = None
        while not self.stop.wait(0.05) and self.opts.outage_seconds:
            served = self.served()
            now = time.monotonic()
            large = served.get(self.large_id, 0) if self.large_id else 0
            if large and large_started is None:
                large_started = now
            in_flight = large_started is not None and large < self.opts.large_bytes
            large_done = self.large_id is None or large >= self.opts.large_bytes
            if (in_flight and large_started is not None and now - large_started >= link_age) or (
                large_done and sum(served.values()) > 0.6 * self.total_bytes
            ):
                self.emu.outage(self.opts.outage_seconds)
                return


def demo_settings(emu: Emulator, config_dir: Path) -> Settings:
    return Settings(
        config_dir=config_dir,
        client_id=emu.client_id,
        cloud="custom",
        tenant=emu.tenant,
        authority=emu.authority,
        graph_url=emu.graph_url,
        ca_bundle=emu.ca_path,
    )


def run_demo(opts: DemoOptions, out: TextIO) -> int:
    """Start the emulator, sign in, back up, verify; the exit code of the worst step."""
    from onedrive_backup.commands.backup_cmd import execute
    from onedrive_backup.engine import BackupPlan

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    started = time.monotonic()
    opts.dest.mkdir(parents=True, exist_ok=True)
    spec = demo_spec(opts)
    say("onedrive-backup demo: a real backup of an emulated OneDrive, on this computer.")
    say(
        f"The emulated drive: {opts.files:,} files (photos, videos, documents, music, archives),"
        f" a {human_bytes(opts.large_bytes)} video, unicode names and a OneNote notebook."
    )
    say(
        f"Faults switched on: access tokens expire after {opts.token_lifetime:.0f} s, download "
        f"links after {opts.link_lifetime:.0f} s, {opts.throttles} requests throttled (429), "
        f"and a {opts.outage_seconds:.0f} s network outage mid-download."
    )
    faults = {
        "access_token_lifetime": opts.token_lifetime,
        "link_lifetime": opts.link_lifetime,
        "retry_after": 1.5,
        "auto_approve": True,
    }
    config_dir = Path(tempfile.mkdtemp(prefix="onedrive-backup-demo-"))
    emu = Emulator(spec=spec, client_id=DEMO_CLIENT_ID, faults=faults)
    script: FaultScript | None = None
    try:
        emu.start()
        settings = demo_settings(emu, config_dir)
        say("\nSigning in (the emulator approves the code by itself)...")
        account = auth.login_device_code(settings, out=out, plain_cache=True)
        say(f"Signed in as {account.username}.\n")
        total = drive_bytes(emu)
        script = FaultScript(emu, opts, total)
        script.start()
        plan = BackupPlan(dest=opts.dest, resume=None, workers=opts.workers, bwlimit=opts.bwlimit)
        code = execute(plan, settings, plain=opts.plain, out=out, plain_cache=True)
        script.stop.set()
        backup_dir = _newest_backup(opts.dest)
        verify_code = int(ExitCode.OK)
        if backup_dir is not None:
            say(f"\nNow checking every file on disk: onedrive-backup verify {backup_dir}")
            result = verify_backup(backup_dir)
            for line in describe_result(result, backup_dir, quick=False):
                say(line)
            verify_code = int(ExitCode.OK if result.ok else ExitCode.SOME_FAILED)
        say(f"\nDemo finished in {human_duration(time.monotonic() - started)}.")
        if backup_dir is not None:
            say(f"The backup is in {backup_dir}; its report and log are under")
            say(f"{backup_dir / '.onedrive-backup'}.")
        return code or verify_code
    finally:
        if script is not None:
            script.stop.set()
        emu.stop()
        shutil.rmtree(config_dir, ignore_errors=True)


def _newest_backup(dest: Path) -> Path | None:
    from onedrive_backup.state import find_backups

    backups = find_backups(dest)
    return Path(backups[-1].path) if backups else None


def drive_bytes(emu: Emulator) -> int:
    """Total size of the drive's files (without hashing them, as iter_files would)."""
    with emu.drive.lock:
        return sum(i.size for i in emu.drive.items if i.children is None and not i.deleted)
