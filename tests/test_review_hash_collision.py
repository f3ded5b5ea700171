"""unsettled_parents under a (forced) hash collision between two dirty children of different
folders: `extra` keeps one parent per hash, so the other folder's real collision is missed."""

from __future__ import annotations

import builtins
from pathlib import Path

import onedrive_backup.scan as scan_mod
from test_scan import file, folder, root
from test_scan_eager import scan_both


def test_hash_collision_between_folders_hides_a_real_collision(tmp_path: Path, monkeypatch) -> None:
    real = builtins.hash

    def fake(value):
        if value in (("P1", "a"), ("P2", "z")):
            return 12345
        return real(value)

    monkeypatch.setattr(scan_mod, "hash", fake, raising=False)
    pages = [
        [
            root(),
            file("A", "A", "P1"),
            file("Z", "z", "P2"),
            folder("P1", "one"),
            folder("P2", "two"),
            file("a", "a", "P1"),
            file("q", "q", "P2"),
        ]
    ]
    runs = scan_both(tmp_path, pages)
    names = {r[0]: r[3] for r in runs[True]}
    assert runs[True] == runs[False], names
