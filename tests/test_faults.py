"""Issue 5, "shows it works": the download engine against the emulator's fault knobs.

Each scenario runs the whole Engine (scan → space check → download) in-process over real HTTPS
and the real MSAL (or, where the exit code and the report are what counts, the CLI in a child
process), injects one family of failures, and ends with the oracle: every drive file is in the
backup, done, with its size, quickXorHash and mtime. On top of that each asserts on what the
emulator saw the client do (deliveries, bytes, Retry-After windows), not on logs.

ENOSPC is covered in test_download.py (a real tmpfs) and is not repeated here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from auth_fixtures import subprocess_env
from engine_helpers import of_kind, run_engine
from onedrive_backup import events
from onedrive_backup.emulator import DriveSpec, Emulator
from onedrive_backup.state import BackupState
from oracle import assert_backup_matches

MiB = 1024 * 1024
MB = 1000 * 1000


def nonempty_files(emu: Emulator) -> list[Any]:
    return [f for f in emu.drive.iter_files() if f.size > 0 and not f.malware]


def assert_nothing_restarted_from_zero(emu: Emulator) -> None:
    c = emu.counters
    again = [f.path for f in emu.drive.iter_files() if c.full_deliveries[f.id] > 1]
    assert not again, f"downloaded from byte 0 more than once: {again[:5]}"


# 1 -------------------------------------------------------------------------------------------


def test_two_second_links_with_2000_files_and_8_workers(
    emulator_factory: Callable[..., Emulator], signed_in_factory: Any, dest: Path
) -> None:
    """Download links live 2 s; every file is still fetched correctly and never from zero twice.

    A fresh link is taken just before each transfer, so with small files a link only expires
    when a transfer is held up after it started. As on OneDrive, a transfer in progress is not
    cut when its link expires; what meets the expiry is the *retry* of a cut transfer. So:
    latency on every request, 1% resets mid-body (retried within the link's life: no refresh
    needed) and four stalls that outlast the 2 s link (the client's stall timeout, 2.2 s, drops
    the connection; the Range retry then meets a 401 and must get a new link and continue).
    """
    spec = DriveSpec(files=2000, seed=11, size_range=(1, 16 * 1024), deep_levels=2)
    emu = emulator_factory(spec)
    s = signed_in_factory(emu)
    emu.faults.update(
        {
            "link_lifetime": 2.0,
            "latency": 0.01,
            "reset_rate": 0.01,
            "reset_after_bytes": 512,
            "stall_next": 4,
            "stall_seconds": 3.0,
            "stall_after_bytes": 512,
        }
    )
    result, seen = run_engine(s, dest, workers=8, stall_timeout=2.2)
    assert result.exit_code == 0, result.summary
    assert_backup_matches(emu, result.backup_dir)
    c = emu.counters
    refreshed = of_kind(seen, events.LinkRefreshed)
    assert len(refreshed) >= 4, "each stalled transfer outlived its link and needed a new one"
    assert c.count("download.get", 401) == len(refreshed), "every refusal led to a new link"
    assert c.faults_injected["reset"] >= 5 and c.faults_injected["stall"] == 4
    assert_nothing_restarted_from_zero(emu)
    assert not of_kind(seen, events.ItemFailed)
    assert c.download_auth_headers == 0


# 2 -------------------------------------------------------------------------------------------


def test_429_and_503_with_retry_after_and_resets_are_all_honoured(
    emulator_factory: Callable[..., Emulator], signed_in_factory: Any, dest: Path
) -> None:
    """10% 429 (Retry-After 1 s), 5% 503 (Retry-After 1 s) and resets mid-body.

    The emulator has one throttle status at a time, so the run has two phases set from the
    event callback: throttle_rate 0.10 with status 429 until half of the files are done,
    then throttle_rate 0.05 with status 503. Both apply to Graph and the download host; resets
    (10% of download responses, cut after 2 KB) run throughout. The rates are draws, so each
    phase also starts with one certain throttle (throttle_next) and the run with two certain
    resets, which keeps the "both kinds happened" assertions from depending on luck.
    """
    spec = DriveSpec(files=80, seed=12, size_range=(4 * 1024, 64 * 1024), deep_levels=2)
    emu = emulator_factory(spec)
    s = signed_in_factory(emu)
    emu.faults.update(
        {
            "throttle_targets": "both",
            "throttle_status": 429,
            "throttle_rate": 0.10,
            "throttle_next": 1,
            "retry_after": 1.0,
            "reset_rate": 0.10,
            "reset_next": 2,
            "reset_after_bytes": 2048,
            "latency": 0.005,
        }
    )
    switch_at = len(nonempty_files(emu)) // 2
    switched = threading.Event()
    done = [0]

    def on_event(event: events.Event) -> None:
        if isinstance(event, events.ItemDone):
            done[0] += 1
            if done[0] >= switch_at and not switched.is_set():
                switched.set()
                emu.faults.update(
                    {"throttle_status": 503, "throttle_rate": 0.05, "throttle_next": 1}
                )

    result, seen = run_engine(s, dest, on_event=on_event, workers=8)
    assert result.exit_code == 0, result.summary
    assert_backup_matches(emu, result.backup_dir)
    c = emu.counters
    assert c.retry_after_violations == 0, c.retry_after_violations_by_origin
    assert switched.is_set()
    statuses = {t.status for t in of_kind(seen, events.Throttled)}
    assert statuses == {429, 503}, statuses
    assert c.throttled >= 4
    assert c.faults_injected["reset"] >= 2
    assert result.summary["resumed_transfers"] >= 1
    assert_nothing_restarted_from_zero(emu)
    assert not of_kind(seen, events.ItemFailed)


# 3 -------------------------------------------------------------------------------------------


def test_ten_second_outage_mid_run_is_waited_out(
    emulator_factory: Callable[..., Emulator], signed_in_factory: Any, dest: Path
) -> None:
    spec = DriveSpec(files=100, seed=13, size_range=(1, 32 * 1024), large_files=[12 * MiB])
    emu = emulator_factory(spec)
    s = signed_in_factory(emu)
    (big,) = [f for f in emu.drive.iter_files() if f.size == 12 * MiB]
    started: list[float] = []
    begun: set[str] = set()
    done: set[str] = set()

    # Mid-run: once 10 files are done and the large one (slowed by bwlimit) has begun and is
    # not finished, so that new requests and a transfer in flight both meet the outage.
    def on_event(event: events.Event) -> None:
        if isinstance(event, events.ItemStarted):
            begun.add(event.path)
        elif isinstance(event, events.ItemDone):
            done.add(event.path)
        if not started and big.path in begun and big.path not in done and len(done) >= 10:
            started.append(time.monotonic())
            emu.outage(10.0)

    result, seen = run_engine(s, dest, on_event=on_event, workers=8, bwlimit=4 * MiB)
    ended = time.monotonic()
    assert started, "the outage never started"
    assert result.exit_code == 0, result.summary
    assert_backup_matches(emu, result.backup_dir)
    assert not of_kind(seen, events.ItemFailed)
    waiting = of_kind(seen, events.NetworkWaiting)
    restored = of_kind(seen, events.NetworkRestored)
    assert len(waiting) >= 2, "a countdown: one notice per probe interval"
    assert all(w.retry_in > 0 for w in waiting)
    downs = [w.down_for for w in waiting]
    assert downs == sorted(downs) and downs[-1] > 5.0
    assert restored and restored[-1].down_for >= 9.0
    assert result.summary["outages"] >= 1 and result.summary["outage_seconds"] >= 9.0
    assert ended - started[0] >= 10.0, "the run waited for the network to come back"
    assert_nothing_restarted_from_zero(emu)


# 4 -------------------------------------------------------------------------------------------


def test_200mb_file_with_three_resets_resumes_each_time(
    emulator_factory: Callable[..., Emulator], signed_in_factory: Any, dest: Path
) -> None:
    size = 200 * MB
    spec = DriveSpec(
        files=0, seed=14, notebook=False, zero_byte_files=0, deep_levels=0, large_files=[size]
    )
    emu = emulator_factory(spec)
    s = signed_in_factory(emu)
    (big,) = [f for f in emu.drive.iter_files() if f.size == size]
    emu.faults.reset_after_bytes = 45 * MB

    # The drive also holds two tiny files; arm the resets when the big one starts (one worker,
    # so its three responses are the next three) so that they all land in the big file.
    def on_event(event: events.Event) -> None:
        if isinstance(event, events.ItemStarted) and event.path == big.path:
            emu.faults.reset_next = 3

    result, seen = run_engine(s, dest, on_event=on_event, workers=1)
    assert result.exit_code == 0, result.summary
    assert_backup_matches(emu, result.backup_dir)
    c = emu.counters
    assert c.faults_injected["reset"] == 3
    assert c.count("download.get", 206) == 3, "each reset continued with a Range request"
    assert c.full_deliveries[big.id] == 0 and c.complete_deliveries[big.id] == 1
    # bytes_served counts what went into the socket, including what a reset threw away.
    assert c.bytes_served[big.id] <= 1.3 * size, c.bytes_served[big.id] / size
    assert result.summary["resumed_transfers"] == 3


# 5 -------------------------------------------------------------------------------------------


def test_one_percent_corrupted_deliveries_are_caught_and_fetched_again(
    emulator_factory: Callable[..., Emulator], signed_in_factory: Any, dest: Path
) -> None:
    """1% of deliveries carry a wrong byte (random place and value): every one is detected by
    the hash check and fetched again; the run ends with exit 0. Then one file whose server hash
    is permanently wrong (same bytes every time) is updated through the CLI: exit 1, reported
    as unverified, and never recorded as done."""
    spec = DriveSpec(files=1000, seed=15, size_range=(1, 16 * 1024), deep_levels=2)
    emu = emulator_factory(spec)
    s = signed_in_factory(emu)
    files = nonempty_files(emu)
    wanted = len(files) // 100
    emu.faults.corrupt_mode = "random"
    armed = [0]
    done = [0]

    # One corrupted delivery per 100 files done, spread over the run (there is no corrupt_rate
    # knob; corrupt_next corrupts the very next delivery of any file).
    def on_event(event: events.Event) -> None:
        if isinstance(event, events.ItemDone):
            done[0] += 1
            if armed[0] < wanted and done[0] >= 100 * armed[0] + 50:
                armed[0] += 1
                emu.faults.corrupt_next += 1

    result, seen = run_engine(s, dest, on_event=on_event, workers=8)
    c = emu.counters
    assert armed[0] == wanted and emu.faults.corrupt_next == 0
    assert c.faults_injected["corrupt"] == wanted
    assert result.exit_code == 0, result.summary
    assert_backup_matches(emu, result.backup_dir)
    twice = [f for f in files if c.full_deliveries[f.id] == 2]
    assert len(twice) == wanted, "each corrupted delivery was caught and fetched once more"
    assert all(c.full_deliveries[f.id] == 1 for f in files if f not in twice)
    assert not of_kind(seen, events.ItemFailed) and not of_kind(seen, events.ItemUnverified)

    # One file changes remotely and its server hash disagrees with its bytes for good.
    victim = files[len(files) // 2]
    emu.drive.modify_file(victim.id, size=victim.size + 100)
    emu.faults.corrupt_items = {victim.id: "consistent"}
    run = subprocess.run(
        [sys.executable, "-m", "onedrive_backup", "backup", "--dest", str(dest)]
        + ["--resume", "latest", "--yes", "--plain"],
        env=subprocess_env(s.env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "server metadata disagrees" in run.stdout
    backup_dir = result.backup_dir
    assert backup_dir is not None
    assert_backup_matches(emu, backup_dir, allow_unverified=frozenset({victim.id}))
    with BackupState.open(backup_dir, read_only=True) as state:
        rec = state.get_file(victim.id)
        assert rec is not None and rec.status == "unverified", rec
        assert state.totals().count("unverified") == 1
    reports = sorted((backup_dir / ".onedrive-backup" / "reports").glob("run-*.json"))
    report = json.loads(reports[-1].read_text())
    assert report["exit_code"] == 1
    assert report["files"]["unverified"] == 1, report["files"]
    assert [u["path"] for u in report["unverified"]] == [victim.path]
