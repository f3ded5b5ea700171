"""State: layout, lock, refusal of damaged/foreign/newer files, migrations, the download API."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from onedrive_backup.errors import ExitCode, StateError, UsageError
from onedrive_backup.models import DoneRecord, RemoteItem
from onedrive_backup.state import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    STATE_DIR,
    STATE_FILE,
    BackupState,
    Placement,
    find_backups,
    resolve_backup,
)


def _file(item_id: str, size: int = 10, qx: str = "hash", **kw: object) -> RemoteItem:
    return RemoteItem(
        item_id=item_id,
        drive_id="drive",
        parent_id=str(kw.pop("parent", "root")),
        name=str(kw.pop("name", f"{item_id}.jpg")),
        kind="file",
        size=size,
        etag=f"e-{qx}",
        ctag=f"c-{qx}",
        quickxorhash=qx,
        **kw,  # type: ignore[arg-type]
    )


def _populate(state: BackupState, n: int) -> None:
    """n placed, selected, pending files directly under the root."""
    root = RemoteItem("root", "drive", None, "root", "root")
    state.begin_enumeration("/start", full=True)
    state.ingest_page(
        [root, *(_file(f"f{i:05d}", size=i) for i in range(n))], next_link=None, delta_link="/delta"
    )
    state.apply_placements(
        [Placement("root", "", "", "/", False, None)]
        + [
            Placement(f"f{i:05d}", f"f{i:05d}.jpg", f"f{i:05d}.jpg", f"/f{i:05d}.jpg", True, None)
            for i in range(n)
        ]
    )
    state.finish_scan()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[BackupState]:
    s = BackupState.create(tmp_path, now=datetime(2024, 5, 6, 7, 8, 9))
    yield s
    s.close()


# --- layout and lifecycle ---------------------------------------------------------------------


def test_create_makes_the_contract_layout(tmp_path: Path) -> None:
    with BackupState.create(tmp_path, now=datetime(2024, 5, 6, 7, 8, 9)) as s:
        assert s.backup_dir == tmp_path / "OneDrive_Backup_20240506_070809"
        for sub in ("state.sqlite", "logs", "reports", "lock"):
            assert (s.backup_dir / ".onedrive-backup" / sub).exists()
        assert s.schema_version == SCHEMA_VERSION
        mode = s._db.execute("PRAGMA journal_mode").fetchone()[0]
        sync = s._db.execute("PRAGMA synchronous").fetchone()[0]
        assert (mode, sync) == ("wal", 1)  # 1 = NORMAL
    # Same second again: the next second, never the same folder.
    with BackupState.create(tmp_path, now=datetime(2024, 5, 6, 7, 8, 9)) as s2:
        assert s2.backup_dir.name == "OneDrive_Backup_20240506_070810"


def test_reopen_keeps_meta_and_runs(tmp_path: Path) -> None:
    with BackupState.create(tmp_path) as s:
        s.set_meta("selection", {"categories": ["photos"]})
        run = s.start_run()
        s.finish_run(run, "complete", {"files": 3})
        backup_dir = s.backup_dir
    with BackupState.open(backup_dir) as s:
        assert s.get_meta("selection") == {"categories": ["photos"]}
        assert s.get_meta("missing", 7) == 7
        last = s.last_run()
        assert last is not None and last[2] == "complete"


def test_open_a_folder_that_is_not_a_backup(tmp_path: Path) -> None:
    with pytest.raises(StateError) as err:
        BackupState.open(tmp_path)
    assert err.value.exit_code == ExitCode.STATE


# --- refusing what is not ours, never overwriting it -------------------------------------------


def _state_file(tmp_path: Path) -> Path:
    with BackupState.create(tmp_path) as s:
        return s.backup_dir / STATE_DIR / STATE_FILE


def test_corrupt_state_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = _state_file(tmp_path)
    garbage = b"this is not a database, it is a shopping list\n" * 200
    for extra in ("-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)
    path.write_bytes(garbage)
    with pytest.raises(StateError) as err:
        BackupState.open(path.parent.parent)
    assert str(path) in err.value.message
    assert err.value.hint
    assert path.read_bytes() == garbage


def test_foreign_sqlite_is_refused(tmp_path: Path) -> None:
    path = _state_file(tmp_path)
    for extra in ("", "-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE photos (id INTEGER)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(StateError, match="not an onedrive-backup state file"):
        BackupState.open(path.parent.parent)
    assert path.read_bytes() == before


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = _state_file(tmp_path)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="newer onedrive-backup"):
        BackupState.open(path.parent.parent)


# --- migrations ---------------------------------------------------------------------------


def test_migration_v1_to_v2_keeps_data(tmp_path: Path) -> None:
    backup = tmp_path / "OneDrive_Backup_20200101_000000"
    (backup / STATE_DIR).mkdir(parents=True)
    path = backup / STATE_DIR / STATE_FILE
    db = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](db)  # the v1 schema exactly as v1 wrote it
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO items (item_id, name, kind, size, ctag, status, selected, local_path, "
        "done_size, done_hash) VALUES ('A', 'a.jpg', 'file', 5, 'cA', 'done', 1, 'a.jpg', 5, 'h')"
    )
    db.execute(
        "INSERT INTO items (item_id, name, kind, size, ctag, status, selected) "
        "VALUES ('B', 'b.jpg', 'file', 5, 'cB', 'pending', 1)"
    )
    db.close()
    with BackupState.open(backup) as s:
        assert s.schema_version == SCHEMA_VERSION == 2
        assert s.count_ops() == 0
        rows = dict(s._db.execute("SELECT item_id, done_ctag FROM items").fetchall())
        assert rows == {"A": "cA", "B": None}
        record = s.get_file("A")
        assert record is not None and record.status == "done" and record.done_hash == "h"
        assert s._db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_read_only_open_does_not_migrate(tmp_path: Path) -> None:
    backup = tmp_path / "OneDrive_Backup_20200101_000000"
    (backup / STATE_DIR).mkdir(parents=True)
    db = sqlite3.connect(backup / STATE_DIR / STATE_FILE, isolation_level=None)
    MIGRATIONS[0](db)
    db.execute("PRAGMA user_version = 1")
    db.close()
    with pytest.raises(StateError, match="older schema"):
        BackupState.open(backup, read_only=True)


# --- the lock -----------------------------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import sys, time
    from onedrive_backup.state import BackupState
    s = BackupState.open(sys.argv[1])
    print("locked", flush=True)
    time.sleep(60)
    """
)


def test_second_run_is_refused_and_lock_dies_with_its_holder(tmp_path: Path) -> None:
    with BackupState.create(tmp_path) as s:
        backup_dir = s.backup_dir
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(backup_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StateError) as err:
            BackupState.open(backup_dir)
        assert err.value.exit_code == ExitCode.STATE
        assert "in use by another onedrive-backup run" in err.value.message
        assert f"pid {holder.pid}" in err.value.message
        assert re.search(r"started \d{4}-\d\d-\d\d", err.value.message)
        # Reading for `list` works while the run holds the lock.
        (summary,) = find_backups(tmp_path)
        assert summary.error is None
        os.kill(holder.pid, signal.SIGKILL)  # no cleanup: the kernel drops the lock
        holder.wait(timeout=10)
        with BackupState.open(backup_dir) as again:
            assert again.schema_version == SCHEMA_VERSION
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_lock_is_released_on_close(tmp_path: Path) -> None:
    s = BackupState.create(tmp_path)
    with pytest.raises(StateError):
        BackupState.open(s.backup_dir)
    s.close()
    BackupState.open(s.backup_dir).close()


# --- invariant 2: a page and its next link in one transaction ----------------------------------


def test_failed_page_write_does_not_advance_the_cursor(state: BackupState) -> None:
    state.begin_enumeration("/start", full=True)
    state.ingest_page([_file("a")], next_link="https://next/1", delta_link=None)
    bad = RemoteItem("b", "drive", "root", "b", "symlink")  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        state.ingest_page([_file("c"), bad], next_link="https://next/2", delta_link=None)
    assert state.get_cursor().next_link == "https://next/1"
    assert state.get_file("c") is None  # nothing of the failed page was kept
    assert state.get_cursor().stats["pages"] == 1


# --- the download engine's API ------------------------------------------------------------------


def test_pending_iteration_is_keyset_paginated_and_complete(state: BackupState) -> None:
    _populate(state, 1234)
    seen = [t.item_id for t in state.iter_pending_files(batch=100)]
    assert seen == sorted(seen) and len(set(seen)) == 1234
    # Marking done while iterating does not skip or repeat anything.
    it = state.iter_pending_files(batch=50)
    got = []
    for task in it:
        got.append(task.item_id)
        state.mark_done(
            task.item_id, size=task.size, quickxorhash=task.quickxorhash, mtime=1.0, etag=task.etag
        )
    assert len(got) == 1234
    assert list(state.iter_pending_files()) == []
    totals = state.totals()
    assert totals.count("done") == 1234 and totals.bytes("done") == sum(range(1234))


def test_done_failed_unverified_and_totals(state: BackupState) -> None:
    _populate(state, 5)
    state.mark_done_many(
        [
            DoneRecord("f00000", 0, "hash", 1.0, "e-hash"),
            {"item_id": "f00001", "size": 1, "quickxorhash": "hash", "mtime": 2, "etag": "e"},
        ]
    )
    state.record_attempt("f00002", "connection reset")
    state.mark_failed("f00002", "gone")
    state.mark_unverified("f00003", "server hash disagrees")
    rec = state.get_file("f00002")
    assert rec is not None and rec.attempts == 1 and rec.last_error == "gone"
    rec = state.get_file("f00001")
    assert rec is not None and (rec.done_size, rec.done_mtime, rec.done_etag) == (1, 2, "e")
    totals = state.totals()
    assert (totals.count("done"), totals.count("failed"), totals.count("unverified")) == (2, 1, 1)
    assert totals.count("pending") == 1 and totals.files == 5
    assert [r.item_id for r in state.iter_done_files()] == ["f00000", "f00001", "f00003"]


def test_update_file_metadata_from_our_type_and_from_graph_json(state: BackupState) -> None:
    _populate(state, 2)
    task = state.update_file_metadata(_file("f00000", size=99, qx="new"))
    assert task is not None and (task.size, task.quickxorhash, task.etag) == (99, "new", "e-new")
    graph_item = {
        "id": "f00001",
        "name": "f00001.jpg",
        "size": 7,
        "eTag": "E7",
        "cTag": "C7",
        "parentReference": {"id": "root", "driveId": "drive"},
        "file": {"hashes": {"quickXorHash": "Q7"}},
    }
    task = state.update_file_metadata(graph_item)
    assert task is not None and (task.size, task.quickxorhash, task.etag) == (7, "Q7", "E7")
    assert task.local_path == "f00001.jpg"


# --- finding backups ------------------------------------------------------------------------


def test_find_backups_and_latest(tmp_path: Path) -> None:
    with BackupState.create(tmp_path, now=datetime(2023, 1, 1, 0, 0, 0)) as old:
        _populate(old, 3)
        old.mark_done("f00000", size=0, quickxorhash="hash", mtime=None, etag=None)
        run = old.start_run()
        old.finish_run(run, "interrupted", {})
    with BackupState.create(tmp_path, now=datetime(2024, 1, 1, 0, 0, 0)) as new:
        _populate(new, 2)
        new.mark_done_many([DoneRecord(f"f{i:05d}", i, "hash", None, None) for i in range(2)])
    (tmp_path / "OneDrive_Backup_20250101_000000").mkdir()  # not a backup: no state
    (tmp_path / "unrelated").mkdir()
    backups = find_backups(tmp_path)
    assert [b.name for b in backups] == [
        "OneDrive_Backup_20230101_000000",
        "OneDrive_Backup_20240101_000000",
    ]
    first, second = backups
    assert (first.files_done, first.files_total, first.complete) == (1, 3, False)
    assert first.last_outcome == "interrupted"
    assert (second.files_done, second.files_total, second.complete) == (2, 2, True)
    assert second.bytes_done == second.bytes_total == 1
    assert resolve_backup(tmp_path, "latest") == Path(second.path)
    assert resolve_backup(tmp_path, first.name) == Path(first.path)
    with pytest.raises(UsageError):
        resolve_backup(tmp_path, "OneDrive_Backup_19990101_000000")
    with pytest.raises(UsageError):
        resolve_backup(tmp_path / "unrelated", "latest")


def test_find_backups_reports_unreadable_ones(tmp_path: Path) -> None:
    path = _state_file(tmp_path)
    for extra in ("-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)
    path.write_bytes(b"garbage" * 1000)
    (summary,) = find_backups(tmp_path)
    assert summary.error and "cannot be used" in summary.error


def test_placement_sql_follows_status_for_on_every_combination() -> None:
    """The resolve pass applies _status_for's rules in SQL: the two must never drift apart."""
    import itertools
    import sqlite3

    from onedrive_backup.models import SKIPPED_SPECIALS
    from onedrive_backup.state import _NEW_LAST_ERROR, _NEW_SELECTED, _NEW_STATUS, _status_for

    kinds = ("file", "folder", "package")
    statuses = (None, "pending", "done", "unverified", "failed", "skipped")
    specials = (None, "zero", "onenote", *sorted(SKIPPED_SPECIALS))
    errors = (None, "an earlier error")
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE r (kind, status, last_error, special, selected)")
    rows = list(itertools.product(kinds, statuses, errors, specials, (0, 1)))
    db.executemany("INSERT INTO r VALUES (?, ?, ?, ?, ?)", rows)
    got = db.execute(
        f"SELECT kind, status, last_error, special, selected, {_NEW_STATUS}, "
        f"{_NEW_LAST_ERROR}, {_NEW_SELECTED} FROM r"
    ).fetchall()
    assert len(got) == len(rows)
    for kind, status, error, special, sel, new_status, new_error, new_selected in got:
        want_status, want_error = status, error
        if kind == "file":
            want_status, want_error = _status_for(special, status, error)
        want_selected = bool(sel) and want_status is not None and special not in SKIPPED_SPECIALS
        case = (kind, status, error, special, sel)
        assert (new_status, new_error) == (want_status, want_error), case
        assert bool(new_selected) == want_selected, case
