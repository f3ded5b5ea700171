"""versions.py against a tmp backup folder: ops queued by the real scan resolve pass over a
state built through BackupState's API (no network), then applied to real files."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onedrive_backup import events, versions
from onedrive_backup.hashing import quickxorhash_b64
from onedrive_backup.models import DoneRecord, RemoteItem
from onedrive_backup.scan import resolve
from onedrive_backup.selection import Selection
from onedrive_backup.state import BackupState
from onedrive_backup.versions import LocalChanges, apply_local_changes, prune_versions

STAMP = "20260101_120000"


def folder(item_id: str, parent: str | None, name: str, kind: str = "folder") -> RemoteItem:
    return RemoteItem(item_id, "d", parent, name, kind)  # type: ignore[arg-type]


def file(item_id: str, parent: str, name: str, content: bytes) -> RemoteItem:
    return RemoteItem(
        item_id, "d", parent, name, "file", size=len(content), mtime=1_600_000_000.0,
        ctag=f"c-{quickxorhash_b64(content)}", quickxorhash=quickxorhash_b64(content),
    )  # fmt: skip


class Backup:
    """A backup folder whose state went through a full scan and whose files are on disk."""

    def __init__(self, dest: Path, tree: dict[str, bytes]) -> None:
        self.state = BackupState.create(dest)
        self.root = self.state.backup_dir
        self.items: dict[str, RemoteItem] = {}
        self.contents = dict(tree)
        items = [folder("root", None, "root", "root")]
        for path in tree:
            parent = "root"
            parts = path.split("/")
            for i, name in enumerate(parts[:-1]):
                fid = "F:" + "/".join(parts[: i + 1])
                if fid not in self.items:
                    self.items[fid] = folder(fid, parent, name)
                    items.append(self.items[fid])
                parent = fid
            self.items[path] = file(path, parent, parts[-1], tree[path])
            items.append(self.items[path])
        self.state.begin_enumeration("/start", full=True)
        self._scan(items, sweep=True)
        recs = [DoneRecord(i, len(c), quickxorhash_b64(c), None, None) for i, c in tree.items()]
        self.state.mark_done_many(recs)
        for item_id, content in tree.items():
            rec = self.state.get_file(item_id)
            assert rec is not None and rec.local_path
            (self.root / rec.local_path).parent.mkdir(parents=True, exist_ok=True)
            (self.root / rec.local_path).write_bytes(content)

    def _scan(self, items: list[RemoteItem], *, sweep: bool) -> None:
        self.state.ingest_page(items, next_link=None, delta_link="/delta")
        resolve(self.state, Selection.all(), sweep=sweep)
        self.state.finish_scan()

    def change(self, *items: RemoteItem) -> None:
        """One incremental scan with these changed items (the delta page)."""
        self.state.begin_enumeration("/delta", full=False)
        self._scan(list(items), sweep=False)

    def rename(self, item_id: str, name: str, parent: str | None = None) -> RemoteItem:
        old = self.items[item_id]
        new = RemoteItem(**{**_fields(old), "name": name, "parent_id": parent or old.parent_id})
        self.items[item_id] = new
        return new

    def deleted(self, item_id: str) -> RemoteItem:
        return RemoteItem(**{**_fields(self.items[item_id]), "deleted": True})

    def live(self) -> dict[str, bytes]:
        out = {}
        for p in self.root.rglob("*"):
            rel = p.relative_to(self.root).as_posix()
            if p.is_file() and not rel.startswith((".onedrive-backup", ".versions")):
                out[rel] = p.read_bytes()
        return out

    def kept(self) -> dict[str, bytes]:
        base = self.root / ".versions"
        if not base.exists():
            return {}
        return {
            p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()
        }

    def apply(self, keep: bool = True) -> tuple[LocalChanges, list[events.Event]]:
        seen: list[events.Event] = []
        return apply_local_changes(self.state, run_stamp=STAMP, keep=keep, emit=seen.append), seen


def _fields(item: RemoteItem) -> dict[str, Any]:
    return {k: getattr(item, k) for k in RemoteItem.__slots__}


TREE = {
    "a.txt": b"A" * 10,
    "b.txt": b"B" * 20,
    "c.txt": b"C" * 30,
    "Docs/old.txt": b"old",
    "Docs/keep.txt": b"keep",
    "Photos/p1.jpg": b"p1",
    "Photos/p2.jpg": b"p2",
}


@pytest.fixture
def backup(tmp_path: Path) -> Iterator[Backup]:
    dest = tmp_path / "dest"
    dest.mkdir()
    b = Backup(dest, TREE)
    yield b
    b.state.close()


def test_swap_and_cycle(backup: Backup) -> None:
    b = backup
    # a→b, b→c, c→a (a cycle) and p1↔p2 (a swap), all in one delta page.
    b.change(
        b.rename("a.txt", "b.txt"),
        b.rename("b.txt", "c.txt"),
        b.rename("c.txt", "a.txt"),
        b.rename("Photos/p1.jpg", "p2.jpg"),
        b.rename("Photos/p2.jpg", "p1.jpg"),
    )
    changes, _ = b.apply()
    assert changes == LocalChanges(moved=5)
    live = b.live()
    assert live["b.txt"] == b"A" * 10 and live["c.txt"] == b"B" * 20 and live["a.txt"] == b"C" * 30
    assert live["Photos/p2.jpg"] == b"p1" and live["Photos/p1.jpg"] == b"p2"
    assert b.kept() == {}
    assert b.state.count_ops() == 0
    assert not (b.root / ".onedrive-backup" / "moving").exists()


def _scenario(b: Backup) -> None:
    """Moves, a swap, a folder rename, a delete and a replace, in one scan."""
    replaced = file("Docs/keep.txt", "F:Docs", "keep.txt", b"keep v2")
    b.items["Docs/keep.txt"] = replaced
    b.change(
        b.rename("a.txt", "b.txt"),
        b.rename("b.txt", "a.txt"),
        b.rename("F:Photos", "Pictures"),
        b.rename("c.txt", "c.txt", parent="F:Docs"),
        b.deleted("Docs/old.txt"),
        replaced,
    )


def _expected_after_scenario() -> tuple[dict[str, bytes], dict[str, bytes]]:
    live = {
        "a.txt": b"B" * 20,
        "b.txt": b"A" * 10,
        "Docs/c.txt": b"C" * 30,
        "Pictures/p1.jpg": b"p1",
        "Pictures/p2.jpg": b"p2",
    }  # Docs/keep.txt v2 is pending download
    kept = {f"{STAMP}/Docs/old.txt": b"old", f"{STAMP}/Docs/keep.txt": b"keep"}
    return live, kept


def test_moves_retirements_and_messages(backup: Backup) -> None:
    _scenario(backup)
    changes, seen = backup.apply()
    assert changes == LocalChanges(moved=5, retired_deleted=1, retired_replaced=1)
    assert (backup.live(), backup.kept()) == _expected_after_scenario()
    assert not (backup.root / "Photos").exists(), "emptied folders are removed"
    texts = [e.text for e in seen if isinstance(e, events.Message)]
    assert f"Kept 1 file deleted in OneDrive in .versions/{STAMP}." in texts
    assert f"Kept the previous version of 1 changed file in .versions/{STAMP}." in texts
    assert changes.to_dict()["moved"] == 5


def test_no_versions_deletes_only_retired_files(backup: Backup) -> None:
    _scenario(backup)
    changes, _ = backup.apply(keep=False)
    assert changes == LocalChanges(moved=5, removed=2)
    assert backup.kept() == {}
    assert backup.live() == _expected_after_scenario()[0]


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_at_any_rename_then_a_rerun_gives_the_same_result(
    tmp_path: Path, when: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stop just before or just after the n-th rename, for every n (as kill -9 would: the op
    in flight is not recorded as done): the next run must end where an uninterrupted one does."""
    original = versions._Applier._replace
    live, kept = _expected_after_scenario()
    n = 0
    while True:
        n += 1
        dest = tmp_path / f"{when}{n}"
        dest.mkdir()
        b = Backup(dest, TREE)
        _scenario(b)
        calls = 0

        def crashing(self: Any, src: Path, dst: Path, stop_at: int = n) -> None:
            nonlocal calls
            calls += 1
            if when == "before" and calls == stop_at:
                raise SystemExit("killed")
            original(self, src, dst)
            if when == "after" and calls == stop_at:
                raise SystemExit("killed")

        monkeypatch.setattr(versions._Applier, "_replace", crashing)
        try:
            b.apply()
        except SystemExit:
            crashed = True
        else:
            crashed = False
        monkeypatch.setattr(versions._Applier, "_replace", original)
        changes, _ = b.apply()
        assert changes.missing == 0, (when, n)
        assert b.live() == live, (when, n)
        assert b.kept() == kept, (when, n)
        assert b.state.count_ops() == 0
        for item_id in ("a.txt", "b.txt", "c.txt", "Photos/p1.jpg"):
            rec = b.state.get_file(item_id)
            assert rec is not None and rec.status == "done", (when, n, item_id)
        b.state.close()
        if not crashed:
            break
    assert n > 8, "every rename of the scenario was a crash point"


def test_missing_file_is_requeued(backup: Backup) -> None:
    (backup.root / "a.txt").unlink()  # removed by hand since the last run
    backup.change(backup.rename("a.txt", "z.txt"))
    changes, seen = backup.apply()
    assert changes == LocalChanges(missing=1)
    rec = backup.state.get_file("a.txt")
    assert rec is not None and rec.status == "pending" and rec.local_path == "z.txt"
    assert any(isinstance(e, events.Message) and e.level == "warning" for e in seen)


def test_unknown_file_in_the_way_is_set_aside_not_overwritten(backup: Backup) -> None:
    (backup.root / "z.txt").write_bytes(b"mine")  # not known to the backup
    backup.change(backup.rename("a.txt", "z.txt"))
    changes, _ = backup.apply()
    assert changes == LocalChanges(moved=1)
    assert backup.live()["z.txt"] == b"A" * 10
    assert backup.kept() == {f"{STAMP}/z.txt": b"mine"}


def test_retired_name_clash_in_versions_gets_a_suffix(backup: Backup) -> None:
    clash = backup.root / ".versions" / STAMP / "Docs" / "old.txt"
    clash.parent.mkdir(parents=True)
    clash.write_bytes(b"earlier")
    backup.change(backup.deleted("Docs/old.txt"))
    backup.apply()
    assert backup.kept() == {
        f"{STAMP}/Docs/old.txt": b"earlier",
        f"{STAMP}/Docs/old (2).txt": b"old",
    }


def test_a_symlink_leading_outside_is_never_followed(backup: Backup, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    for p in (backup.root / "Photos").iterdir():
        p.unlink()
    (backup.root / "Photos").rmdir()
    (backup.root / "Photos").symlink_to(outside, target_is_directory=True)
    backup.change(backup.rename("a.txt", "x.jpg", parent="F:Photos"))
    backup.apply()
    assert list(outside.iterdir()) == []
    assert (backup.root / "a.txt").read_bytes() == b"A" * 10, "left in place"
    assert backup.state.count_ops() == 0


def test_prune_versions(tmp_path: Path) -> None:
    root = tmp_path / ".versions"
    now = time.time()
    stamps = {
        "old": time.strftime("%Y%m%d_%H%M%S", time.localtime(now - 10 * 86400)),
        "new": time.strftime("%Y%m%d_%H%M%S", time.localtime(now - 2 * 86400)),
    }
    for stamp in stamps.values():
        (root / stamp / "a").mkdir(parents=True)
        (root / stamp / "a" / "1.txt").write_text("1")
        (root / stamp / "2.txt").write_text("2")
    (root / "20000101_000000.txt").write_text("a file, not a folder")
    (root / "mine").mkdir()
    seen: list[events.Event] = []
    assert prune_versions(tmp_path, older_than_days=7, emit=seen.append) == 2
    assert sorted(os.listdir(root)) == sorted([stamps["new"], "20000101_000000.txt", "mine"])
    assert [e.text for e in seen if isinstance(e, events.Message)] == [
        "Removed 2 old versions (1 folder older than 7 days) from .versions."
    ]
    assert prune_versions(tmp_path, older_than_days=7) == 0
    assert prune_versions(tmp_path / "none", older_than_days=0) == 0


def test_stamp_time() -> None:
    assert versions.stamp_time("20260101_120000") == time.mktime((2026, 1, 1, 12, 0, 0, 0, 0, -1))
    assert versions.stamp_time("2026-01-01") is None
    assert versions.stamp_time("20261301_120000") is None
