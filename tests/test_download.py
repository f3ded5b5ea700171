"""The download engine against the emulator: real HTTPS, real MSAL, faults injected on purpose.

Each test runs the whole Engine in-process (scan → space check → download) and then checks the
files on disk against the emulated drive and the emulator's counters of what the client did.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine_helpers import of_kind, run_engine
from onedrive_backup import events
from onedrive_backup.emulator import DriveSpec, Emulator
from onedrive_backup.engine import BackupPlan, Engine
from onedrive_backup.errors import DestinationError, DiskFullError, Interrupted, SignInRequired
from onedrive_backup.state import BackupState
from oracle import assert_backup_matches

MiB = 1024 * 1024


def test_full_backup_is_verified_and_keeps_mtimes(emulator: Emulator, signed_in: Any, dest: Path):
    result, seen = run_engine(signed_in, dest)
    assert result.exit_code == 0, result.summary
    assert result.backup_dir is not None
    assert_backup_matches(emulator, result.backup_dir)
    counters = emulator.counters
    assert counters.download_auth_headers == 0, "Authorization must never reach the link host"
    assert not of_kind(seen, events.ItemFailed)
    # Nothing left in the partial folder.
    assert not list((result.backup_dir / ".onedrive-backup" / "partial").glob("*.part"))


@pytest.fixture
def big_drive(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory(DriveSpec(files=30, seed=7, large_files=[24 * MiB, 16 * MiB]))


def test_expiring_links_and_tokens_never_restart_a_transfer(
    big_drive: Emulator, signed_in_factory: Any, dest: Path
):
    signed_in = signed_in_factory(big_drive)
    big_drive.faults.access_token_lifetime = 3
    big_drive.faults.link_lifetime = 0.4
    big_drive.faults.latency = 0.02
    # A link stays good for a transfer that has started (as on OneDrive); a cut transfer
    # resumed after the link's lifetime meets a 401 and must get a new link.
    big_drive.faults.reset_rate = 0.3
    big_drive.faults.reset_after_bytes = 2 * MiB
    result, seen = run_engine(signed_in, dest, workers=4, bwlimit=40 * MiB)
    assert result.exit_code == 0, result.summary
    assert_backup_matches(big_drive, result.backup_dir)
    assert of_kind(seen, events.LinkRefreshed), "links expired mid-transfer and were refreshed"
    c = big_drive.counters
    for f in big_drive.drive.iter_files():
        assert c.full_deliveries[f.id] <= 1, f"{f.path} was downloaded from zero twice"
        assert c.bytes_served[f.id] <= f.size + 2 * MiB, f"{f.path}: bytes re-sent"
    assert c.download_auth_headers == 0


@pytest.fixture
def only_big_files(emulator_factory: Callable[..., Emulator]) -> Emulator:
    spec = DriveSpec(
        files=0,
        seed=8,
        notebook=False,
        zero_byte_files=0,
        deep_levels=0,
        large_files=[24 * MiB, 16 * MiB, 12 * MiB],
    )
    return emulator_factory(spec)


def test_resets_truncation_and_stalls_resume_with_range(
    only_big_files: Emulator, signed_in_factory: Any, dest: Path
):
    big_drive = only_big_files
    signed_in = signed_in_factory(big_drive)
    big_drive.faults.reset_next = 4
    big_drive.faults.reset_after_bytes = 3 * MiB
    big_drive.faults.truncate_next = 2
    big_drive.faults.stall_next = 1
    big_drive.faults.stall_seconds = 4
    big_drive.faults.stall_after_bytes = 2 * MiB
    result, seen = run_engine(signed_in, dest, workers=3, stall_timeout=1.0)
    assert result.exit_code == 0, result.summary
    assert_backup_matches(big_drive, result.backup_dir)
    c = big_drive.counters
    assert (
        c.faults_injected["reset"] + c.faults_injected["truncate"] + c.faults_injected["stall"] >= 5
    )
    for f in big_drive.drive.iter_files():
        assert c.full_deliveries[f.id] <= 1, f"{f.path} restarted from zero"
        if f.size >= MiB:
            assert c.bytes_served[f.id] <= f.size + MiB, f"{f.path}: bytes sent again"
    assert result.summary["resumed_transfers"] >= 3
    assert c.count("download.get", 206) >= 3
    assert not of_kind(seen, events.ItemFailed)


def test_throttling_pauses_every_worker_and_honours_fractional_retry_after(
    emulator: Emulator, signed_in: Any, dest: Path
):
    emulator.faults.throttle_targets = "both"
    emulator.faults.throttle_next = 4
    emulator.faults.retry_after = 1.25
    result, seen = run_engine(signed_in, dest, workers=8)
    assert result.exit_code == 0, result.summary
    assert_backup_matches(emulator, result.backup_dir)
    assert emulator.counters.throttled >= 4
    assert emulator.counters.retry_after_violations == 0
    throttles = of_kind(seen, events.Throttled)
    assert throttles and throttles[0].seconds == 1.25


def test_network_outage_is_waited_out_not_failed(
    big_drive: Emulator, signed_in_factory: Any, dest: Path
):
    signed_in = signed_in_factory(big_drive)
    triggered = threading.Event()

    def on_event(event: events.Event) -> None:
        big = isinstance(event, events.DownloadProgress) and event.bytes_done > 4 * MiB
        if big and not triggered.is_set():
            triggered.set()
            big_drive.outage(2.5)

    result, seen = run_engine(signed_in, dest, on_event=on_event, workers=4, bwlimit=20 * MiB)
    assert triggered.is_set()
    assert result.exit_code == 0, result.summary
    assert_backup_matches(big_drive, result.backup_dir)
    assert of_kind(seen, events.NetworkWaiting)
    assert of_kind(seen, events.NetworkRestored)
    assert not of_kind(seen, events.ItemFailed)
    assert result.summary["outages"] >= 1


def _some_files(emu: Emulator, n: int) -> list[Any]:
    return [f for f in emu.drive.iter_files() if f.size > 0][:n]


def test_consistently_wrong_bytes_are_kept_but_flagged_unverified(
    emulator: Emulator, signed_in: Any, dest: Path
):
    bad = _some_files(emulator, 2)
    emulator.faults.corrupt_items = {f.id: "consistent" for f in bad}
    result, seen = run_engine(signed_in, dest)
    assert result.exit_code == 1
    assert result.summary["files"]["unverified"] == 2
    unverified = of_kind(seen, events.ItemUnverified)
    assert {e.path for e in unverified} == {f.path for f in bad}
    assert all("server metadata disagrees" in e.reason for e in unverified)
    assert result.backup_dir is not None
    state = BackupState.open(result.backup_dir)
    try:
        for f in bad:
            rec = state.get_file(f.id)
            assert rec is not None and rec.status == "unverified"
    finally:
        state.close()


def test_randomly_wrong_bytes_fail_with_content_mismatch(
    emulator: Emulator, signed_in: Any, dest: Path
):
    bad = _some_files(emulator, 3)
    emulator.faults.corrupt_items = {f.id: "random" for f in bad}
    result, seen = run_engine(signed_in, dest)
    assert result.exit_code == 1
    failed = of_kind(seen, events.ItemFailed)
    assert {e.path for e in failed} == {f.path for f in bad}
    assert all(e.reason == "content mismatch" for e in failed)
    for f in bad:  # never left in the live tree as if it were good
        assert not (result.backup_dir / f.path.lstrip("/")).exists()
    # A later run (corruption gone) completes the backup.
    emulator.faults.corrupt_items = {}
    result2, _ = run_engine(signed_in, dest, resume="latest")
    assert result2.exit_code == 0, result2.summary
    assert_backup_matches(emulator, result2.backup_dir)


def test_file_changed_after_scan_is_downloaded_as_its_new_version(
    emulator: Emulator, signed_in: Any, dest: Path
):
    target = _some_files(emulator, 1)[0]

    def on_event(event: events.Event) -> None:
        if isinstance(event, events.PhaseStarted) and event.phase == "download":
            emulator.drive.modify_file(target.id, size=target.size + 1000)

    result, _ = run_engine(signed_in, dest, on_event=on_event, workers=2)
    assert result.exit_code == 0, result.summary
    assert_backup_matches(emulator, result.backup_dir)


def test_resume_adopts_files_already_on_disk(emulator: Emulator, signed_in: Any, dest: Path):
    result, _ = run_engine(signed_in, dest)
    assert result.exit_code == 0
    before = dict(emulator.counters.full_deliveries)
    result2, seen = run_engine(signed_in, dest, resume="latest")
    assert result2.exit_code == 0
    assert dict(emulator.counters.full_deliveries) == before, "nothing downloaded again"
    assert result2.backup_dir == result.backup_dir


# --- a real, small disk -------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.name != "posix" or shutil.which("mount") is None:
        pytest.skip("needs mount(8) for a size-limited tmpfs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_space_check_refuses_before_downloading(
    big_drive: Emulator, signed_in_factory: Any, small_disk: Path
):
    signed_in = signed_in_factory(big_drive)
    with pytest.raises(DestinationError, match="needed .* free"):
        run_engine(signed_in, small_disk)
    assert sum(big_drive.counters.bytes_served.values()) == 0


def test_disk_full_mid_run_stops_cleanly_and_resumes(
    big_drive: Emulator, signed_in_factory: Any, small_disk: Path
):
    signed_in = signed_in_factory(big_drive)
    with pytest.raises(DiskFullError) as info:
        run_engine(signed_in, small_disk, ignore_space=True, workers=2)
    assert info.value.exit_code == 4
    assert "--resume" in (info.value.hint or "")
    backups = [p for p in small_disk.iterdir() if p.name.startswith("OneDrive_Backup_")]
    assert len(backups) == 1
    subprocess.run(["mount", "-o", "remount,size=200m", str(small_disk)], check=True)
    time.sleep(0.1)
    result, _ = run_engine(signed_in, small_disk, resume="latest", workers=2)
    assert result.exit_code == 0, result.summary
    assert_backup_matches(big_drive, result.backup_dir)


def test_stopped_mid_transfer_resumes_from_the_partial_bytes(
    only_big_files: Emulator, signed_in_factory: Any, dest: Path
):
    """Ctrl-C (task cancelled) in the middle of large files: the next run continues each file
    from the bytes already on disk, never from zero."""
    signed_in = signed_in_factory(only_big_files)

    async def stop_midway() -> None:
        tokens = signed_in.token_source()
        reached = asyncio.Event()

        def emit(event: events.Event) -> None:
            if isinstance(event, events.DownloadProgress) and event.bytes_done > 10 * MiB:
                reached.set()

        plan = BackupPlan(dest=dest, workers=3, bwlimit=12 * MiB)
        task = asyncio.create_task(Engine(plan, signed_in.settings, tokens, emit).run())
        await reached.wait()
        task.cancel()
        with pytest.raises(Interrupted):
            await task

    asyncio.run(stop_midway())
    c = only_big_files.counters
    files = list(only_big_files.drive.iter_files())
    (backup_dir,) = dest.iterdir()
    partial = [p for p in (backup_dir / ".onedrive-backup" / "partial").glob("*.part")]
    untouched = [f for f in files if c.bytes_served[f.id] == 0]
    assert partial, "the stop came in the middle of at least one file"
    c.reset()
    result, _ = run_engine(signed_in, dest, resume="latest", workers=3)
    assert result.exit_code == 0, result.summary
    assert_backup_matches(only_big_files, result.backup_dir)
    # Each file cut by the stop continues with a Range request; none starts again from zero.
    assert c.count("download.get", 206) == len(partial)
    assert c.count("download.get", 200) == len(untouched)
    assert sum(c.full_deliveries.values()) == len(untouched)


def test_dead_sign_in_mid_run_stops_cleanly_then_resumes_after_login(
    only_big_files: Emulator, signed_in_factory: Any, dest: Path
):
    """Revoked refresh token mid-download: the run stops at once with exit 3 and the exact
    commands; nothing finished is lost; after `login` the backup resumes and completes."""
    only_big_files.faults.access_token_lifetime = 2  # before sign-in: no long-lived token
    signed_in = signed_in_factory(only_big_files)
    revoked = threading.Event()

    def on_event(event: events.Event) -> None:
        moving = isinstance(event, events.DownloadProgress) and event.bytes_done > 6 * MiB
        if moving and not revoked.is_set():
            revoked.set()
            only_big_files.revoke_refresh_tokens()

    with pytest.raises(SignInRequired) as info:
        run_engine(signed_in, dest, on_event=on_event, workers=1, bwlimit=16 * MiB)
    assert info.value.exit_code == 3
    hint = info.value.hint or ""
    assert "onedrive-backup login" in hint and "--resume OneDrive_Backup_" in hint
    (backup_dir,) = dest.iterdir()
    state = BackupState.open(backup_dir, read_only=True)
    try:
        assert state.totals().count("failed") == 0, "a dead sign-in must not fail files"
    finally:
        state.close()
    signed_in.login()
    result, _ = run_engine(signed_in, dest, resume="latest", workers=3)
    assert result.exit_code == 0, result.summary
    assert_backup_matches(only_big_files, result.backup_dir)


def test_hostile_names_land_inside_and_the_renames_are_reported(
    emulator_factory: Callable[..., Emulator], signed_in_factory: Any, dest: Path
):
    from onedrive_backup.report import summary_lines

    emu = emulator_factory(DriveSpec(files=20, seed=3, hostile_names=True))
    signed_in = signed_in_factory(emu)
    result, _ = run_engine(signed_in, dest)
    assert result.exit_code == 0, result.summary
    assert_backup_matches(emu, result.backup_dir)
    renamed = result.summary["renamed"]
    assert renamed["count"] >= 5
    assert all(not pair["local"].startswith("/") for pair in renamed["examples"])
    text = "\n".join(summary_lines(result.summary))
    assert "Names changed to fit the disk" in text
    # Nothing was written outside the backup folder.
    assert {p.name for p in dest.iterdir()} == {result.backup_dir.name}


def test_items_with_only_a_sha256_are_verified_against_it(
    emulator: Emulator, signed_in: Any, dest: Path
):
    good, bad = _some_files(emulator, 2)
    emulator.drive.report_sha256_only(good.id)
    emulator.drive.report_sha256_only(bad.id)
    emulator.faults.corrupt_items = {bad.id: "random"}
    result, seen = run_engine(signed_in, dest)
    assert result.exit_code == 1
    failed = of_kind(seen, events.ItemFailed)
    assert [(e.path, e.reason) for e in failed] == [(bad.path, "content mismatch")]
    assert result.backup_dir is not None
    state = BackupState.open(result.backup_dir, read_only=True)
    try:
        rec = state.get_file(good.id)
        assert rec is not None and rec.status == "done" and rec.sha256
        local = result.backup_dir / (rec.local_path or "")
        assert local.read_bytes() == emulator.drive.read(good.id)
    finally:
        state.close()
