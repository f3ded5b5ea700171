"""Folders made by the earlier script: listed, resumed, their intact files adopted (issue 6.10).

A legacy folder is built by hand from the emulated drive, as `onedrive_backup_enhanced.py`
left it: files at their remote paths with their exact bytes (one truncated), and its
`.progress.json` ({"downloaded_files": {id: {size, path, timestamp}}, "timestamp"}).
Resuming it must download none of the intact files, fetch the truncated one again, fetch
everything else, and leave the folder with our state, `.progress.json` untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from auth_fixtures import SignedIn, subprocess_env
from engine_helpers import run_engine
from onedrive_backup import events, legacy
from onedrive_backup.emulator import Emulator
from onedrive_backup.emulator.drive import FileView
from onedrive_backup.errors import StateError
from onedrive_backup.legacy import (
    META_KEY,
    PROGRESS_FILE,
    SAVED_COPY,
    read_progress,
    relative_path,
)
from onedrive_backup.paths import safe_name
from onedrive_backup.state import BackupState, find_backups, resolve_backup
from oracle import assert_backup_matches

NAME = "OneDrive_Backup_20251204_215457"
STAMP = "2025-12-04T22:10:31.482113"


# --- building the earlier script's folder ----------------------------------------------------


def entry(size: int, path: str) -> dict[str, Any]:
    return {"size": size, "path": path, "timestamp": STAMP}


def write_progress(folder: Path, files: dict[str, dict[str, Any]]) -> bytes:
    """`.progress.json` as the earlier script wrote it (indented); returns its bytes."""
    data = json.dumps({"downloaded_files": files, "timestamp": "2025-12-04T21:54:57"}, indent=2)
    (folder / PROGRESS_FILE).write_text(data, encoding="utf-8")
    return (folder / PROGRESS_FILE).read_bytes()


def put(folder: Path, rel: str, data: bytes) -> Path:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (1_700_000_000, 1_700_000_000))  # the earlier script kept no mtimes
    return path


def ordinary_files(emu: Emulator, count: int) -> list[FileView]:
    """Files whose local path is their remote path (no mapped names, not in a notebook)."""
    out = [
        f
        for f in emu.drive.iter_files()
        if f.size >= 2
        and "Notebook" not in f.path
        and all(safe_name(c) == c for c in f.path.split("/")[1:])
    ]
    out.sort(key=lambda f: f.path)
    assert len(out) >= count
    return out[:count]


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@contextlib.contextmanager
def progress_aside(folder: Path) -> Iterator[None]:
    """The oracle allows nothing in the live tree the drive lacks; `.progress.json` stays ours
    to check, so it steps aside while the oracle looks."""
    aside = folder.parent / (folder.name + ".progress.json")
    (folder / PROGRESS_FILE).rename(aside)
    try:
        yield
    finally:
        aside.rename(folder / PROGRESS_FILE)


def cli(signed: SignedIn, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "onedrive_backup", *args],
        env=subprocess_env(signed.env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- paths in .progress.json ------------------------------------------------------------------


def test_relative_path_takes_every_form_and_never_leaves_the_folder(tmp_path: Path):
    folder = tmp_path / NAME
    (folder / "Docs").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (folder / "link").symlink_to(tmp_path / "outside")
    want = PurePosixPath("Docs/a.txt")
    assert relative_path(folder, "Docs/a.txt") == want
    assert relative_path(folder, "./Docs/a.txt") == want
    assert relative_path(folder, f"{NAME}/Docs/a.txt") == want  # relative to the destination
    assert relative_path(folder, str(folder / "Docs" / "a.txt")) == want
    # The same disk, mounted elsewhere when the earlier script ran (macOS /Volumes).
    assert relative_path(folder, f"/Volumes/T7 2TBW/{NAME}/Docs/a.txt") == want
    assert relative_path(folder, f"E:\\Backups\\{NAME}\\Docs\\a.txt") == want
    assert relative_path(folder, "Docs\\a.txt") == want
    for outside in (
        "../outside/a.txt",
        "Docs/../../outside/a.txt",
        str(tmp_path / "outside" / "a.txt"),
        "/etc/passwd",
        "C:\\Windows\\win.ini",
        "link/a.txt",  # a symlink out of the folder
        ".onedrive-backup/state.sqlite",
        "",
        "Docs/\x00a.txt",
    ):
        assert relative_path(folder, outside) is None, outside


def test_read_progress_ignores_odd_entries_and_refuses_a_bad_file(tmp_path: Path):
    file = tmp_path / PROGRESS_FILE
    file.write_text(
        json.dumps(
            {
                "downloaded_files": {
                    "A!1": entry(10, "x/a.txt"),
                    "A!2": {"size": 3},  # no path: still counted
                    "A!3": "not an object",
                    "A!4": {"size": -1, "path": "y"},
                    "A!5": {"size": 1, "path": 7},
                },
                "timestamp": "2025-12-04T21:54:57",
            }
        )
    )
    progress = read_progress(file)
    assert sorted(progress.entries) == ["A!1", "A!2"]
    assert progress.ignored == 3 and progress.bytes_recorded == 13
    assert progress.saved_at is not None
    for bad, why in (
        ('{"downloaded_files": {"A!1": {"size": 1', "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"downloaded_files": [1]}', "downloaded_files"),
        (b"\xff\xfe\x00junk", "UTF-8"),
    ):
        if isinstance(bad, bytes):
            file.write_bytes(bad)
        else:
            file.write_text(bad)
        with pytest.raises(StateError) as err:
            read_progress(file)
        assert str(file) in err.value.message and why in err.value.message
        assert '{"downloaded_files": {}}' in (err.value.hint or "")


# --- listing ----------------------------------------------------------------------------------


def test_find_backups_lists_the_earlier_scripts_folder(tmp_path: Path):
    dest = tmp_path / "dest"
    legacy_dir = dest / NAME
    legacy_dir.mkdir(parents=True)
    write_progress(legacy_dir, {"A!1": entry(1000, "a.txt"), "A!2": entry(234, "b/c.txt")})
    (dest / "OneDrive_Backup_20251205_000000").mkdir()  # neither ours nor the script's
    broken = dest / "OneDrive_Backup_20251203_000000"
    broken.mkdir()
    (broken / PROGRESS_FILE).write_text("{truncated")
    with BackupState.create(dest) as ours:
        ours_name = ours.backup_dir.name
    found = find_backups(dest)
    assert [b.name for b in found] == ["OneDrive_Backup_20251203_000000", NAME, ours_name]
    bad, old, new = found
    assert bad.legacy and bad.error is not None and PROGRESS_FILE in bad.error
    assert old.legacy and old.error is None and not old.complete
    assert (old.files_done, old.bytes_done) == (2, 1234)
    assert old.last_outcome == "made by the earlier script" and old.last_run_at is not None
    assert not new.legacy
    assert resolve_backup(dest, NAME) == legacy_dir
    assert not (legacy_dir / ".onedrive-backup").exists(), "listing must not write"


# --- resuming ---------------------------------------------------------------------------------


def test_resume_adopts_intact_files_and_refetches_a_truncated_one(
    emulator: Emulator, signed_in: SignedIn, dest: Path, tmp_path: Path
):
    emu = emulator
    odd = emu.drive.add_file("/Documents/Notes: 2024?.txt", content=b"colon and question " * 40)
    files = ordinary_files(emu, 12)
    intact, truncated, outside = files[:10], files[10], files[11]
    folder = dest / NAME
    folder.mkdir()
    recorded: dict[str, dict[str, Any]] = {}
    for i, f in enumerate(intact):
        rel = f.path.lstrip("/")
        put(folder, rel, emu.drive.read(f.id))
        # The earlier script's paths: absolute, from another mount, or relative.
        path = (str(folder / rel), f"/Volumes/T7 2TBW/{NAME}/{rel}", rel)[i % 3]
        recorded[f.id] = entry(f.size, path)
    put(folder, truncated.path.lstrip("/"), emu.drive.read(truncated.id)[: truncated.size // 2])
    recorded[truncated.id] = entry(truncated.size, truncated.path.lstrip("/"))
    # Stored under the raw name; ours maps ":" and "?" to fullwidth forms.
    put(folder, odd.path.lstrip("/"), emu.drive.read(odd.id))
    recorded[odd.id] = entry(odd.size, str(folder / odd.path.lstrip("/")))
    # A record pointing outside the folder (hand-edited, or a moved disk): never followed.
    stray = put(tmp_path / "elsewhere", "file.bin", emu.drive.read(outside.id))
    recorded[outside.id] = entry(outside.size, str(stray))
    recorded["GONE!1"] = entry(5, "deleted since.txt")  # no longer in the drive
    progress_bytes = write_progress(folder, recorded)

    result, seen = run_engine(signed_in, dest, resume=NAME)

    assert result.exit_code == 0, result.summary
    assert result.backup_dir == folder
    c = emu.counters
    for f in intact:
        assert c.full_deliveries[f.id] == 0 and c.bytes_served[f.id] == 0, f.path
    assert c.bytes_served[odd.id] == 0, "the renamed file was moved into place, not fetched"
    assert c.full_deliveries[truncated.id] == 1, "the truncated file is fetched again"
    assert c.full_deliveries[outside.id] == 1
    skip = {f.id for f in intact} | {odd.id}
    for f in emu.drive.iter_files():
        if f.id not in skip and f.size > 0:
            assert c.full_deliveries[f.id] == 1, f"{f.path} was not downloaded"
    assert result.summary["files"]["adopted_this_run"] == len(intact) + 1
    messages = " ".join(e.text for e in seen if isinstance(e, events.Message))
    assert "earlier script" in messages
    with progress_aside(folder):
        assert_backup_matches(emu, folder)
    with BackupState.open(folder, read_only=True) as state:
        rec = state.get_file(odd.id)
        assert rec is not None and rec.local_path == "Documents/Notes： 2024？.txt"
        assert state.get_meta(META_KEY)["prepass_done"] is True
    assert not (folder / odd.path.lstrip("/")).exists()
    assert (folder / ".onedrive-backup" / "state.sqlite").is_file()
    assert (folder / PROGRESS_FILE).read_bytes() == progress_bytes, ".progress.json untouched"
    assert (folder / ".onedrive-backup" / SAVED_COPY).read_bytes() == progress_bytes
    assert stray.read_bytes() == emu.drive.read(outside.id), "a file outside stays as it was"

    # From now on it is one of ours: listed as such, and a second run has nothing to fetch.
    [summary] = find_backups(dest)
    assert not summary.legacy and summary.complete
    served = sum(c.bytes_served.values())
    again, _ = run_engine(signed_in, dest, resume="latest")
    assert again.exit_code == 0 and again.backup_dir == folder
    assert sum(c.bytes_served.values()) == served
    assert (folder / PROGRESS_FILE).read_bytes() == progress_bytes


def test_a_takeover_cut_short_still_moves_files_on_the_next_run(
    emulator: Emulator, signed_in: SignedIn, dest: Path
):
    emu = emulator
    odd = emu.drive.add_file("/Music/AC:DC?.mp3", content=b"riff " * 300)
    folder = dest / NAME
    put(folder, "Music/AC_DC_.mp3", emu.drive.read(odd.id))  # the earlier script's own mapping
    progress_bytes = write_progress(folder, {odd.id: entry(odd.size, "Music/AC_DC_.mp3")})
    # Killed right after our state was created, before the first scan.
    legacy.adopt(folder).close()
    with legacy.adopt(folder) as again:  # a second take-over only opens it
        assert again.get_meta(META_KEY)["prepass_done"] is False
    [summary] = find_backups(dest)
    assert not summary.legacy and summary.error is None

    result, _ = run_engine(signed_in, dest, resume=NAME)

    assert result.exit_code == 0, result.summary
    assert emu.counters.bytes_served[odd.id] == 0
    assert not (folder / "Music/AC_DC_.mp3").exists()
    with progress_aside(folder):
        assert_backup_matches(emu, folder)
    assert (folder / PROGRESS_FILE).read_bytes() == progress_bytes


def test_cli_lists_and_resumes_the_earlier_scripts_folder(
    emulator: Emulator, signed_in: SignedIn, dest: Path
):
    emu = emulator
    files = ordinary_files(emu, 6)
    intact, truncated = files[:5], files[5]
    folder = dest / NAME
    recorded = {}
    for f in intact:
        put(folder, f.path.lstrip("/"), emu.drive.read(f.id))
        recorded[f.id] = entry(f.size, f.path.lstrip("/"))
    put(folder, truncated.path.lstrip("/"), emu.drive.read(truncated.id)[:1])
    recorded[truncated.id] = entry(truncated.size, truncated.path.lstrip("/"))
    progress_bytes = write_progress(folder, recorded)

    listed = cli(signed_in, "list", "--dest", str(dest))
    assert listed.returncode == 0, listed.stderr
    assert NAME in listed.stdout and "made by the earlier script" in listed.stdout
    assert "6/6 files" in listed.stdout

    run = cli(signed_in, "backup", "--dest", str(dest), "--resume", NAME, "--yes")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "earlier script" in run.stdout + run.stderr
    c = emu.counters
    for f in intact:
        assert c.full_deliveries[f.id] == 0 and c.bytes_served[f.id] == 0, f.path
    assert c.full_deliveries[truncated.id] == 1
    with progress_aside(folder):
        assert_backup_matches(emu, folder)
    assert (folder / ".onedrive-backup" / "state.sqlite").is_file()
    assert (folder / PROGRESS_FILE).read_bytes() == progress_bytes


def test_a_corrupt_progress_file_is_named_and_nothing_is_touched(
    emulator: Emulator, signed_in: SignedIn, dest: Path
):
    emu = emulator
    folder = dest / NAME
    for f in ordinary_files(emu, 3):
        put(folder, f.path.lstrip("/"), emu.drive.read(f.id))
    (folder / PROGRESS_FILE).write_text('{"downloaded_files": {"A!1": {"size": 12, "pa')
    before = tree(folder)

    listed = cli(signed_in, "list", "--dest", str(dest))
    assert listed.returncode == 0, listed.stderr
    assert f"{NAME}: cannot be read" in listed.stdout and PROGRESS_FILE in listed.stdout

    with pytest.raises(StateError) as err:
        run_engine(signed_in, dest, resume=NAME)
    assert str(folder / PROGRESS_FILE) in err.value.message

    run = cli(signed_in, "backup", "--dest", str(dest), "--resume", NAME, "--yes")
    output = run.stdout + run.stderr
    assert run.returncode == 5, output
    assert str(folder / PROGRESS_FILE) in output and "not valid JSON" in output
    assert "downloaded_files" in output  # what to do about it
    assert tree(folder) == before, "nothing in the folder changed"
    assert not (folder / ".onedrive-backup").exists()
    assert sum(emu.counters.bytes_served.values()) == 0
