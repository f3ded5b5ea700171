"""--include-shared turned off: what came through the shortcuts is to stay on disk as it is."""

from __future__ import annotations

import asyncio
from pathlib import Path

from onedrive_backup.errors import ResyncRequired
from onedrive_backup.scan import _item_url, scan
from onedrive_backup.selection import Selection
from onedrive_backup.state import BackupState, shared_key
from test_scan import START, ReplayGraph, chain, mark_all_done, root

SHORTCUT = {
    "id": "S",
    "name": "Album",
    "parentReference": {"id": "ROOT", "driveId": "D"},
    "remoteItem": {"id": "T", "folder": {}, "parentReference": {"driveId": "O"}},
}


def _follow_pages() -> dict:
    x = {
        "id": "X",
        "name": "x.jpg",
        "size": 10,
        "cTag": "cX",
        "file": {"hashes": {"quickXorHash": "qX"}},
        "parentReference": {"id": "T", "driveId": "O"},
    }
    return {
        "/me/drive/items/S?$select=id,remoteItem": {
            "id": "S",
            **{"remoteItem": SHORTCUT["remoteItem"]},
        },
        _item_url("O", "T"): {"id": "T", "name": "Album", "folder": {}},
        _item_url("O", "T", "/children") + "&$top=1000": {"value": [x]},
    }


def test_a_full_enumeration_after_turning_include_shared_off_retires_the_shared_files(
    tmp_path: Path,
) -> None:
    key = shared_key("S", "X")
    with BackupState.create(tmp_path) as state:
        first = chain(START, [[root(), SHORTCUT]], "https://g/d1")
        asyncio.run(
            scan(
                ReplayGraph({**first, **_follow_pages()}),
                state,
                Selection.build(include_shared=True),
            )
        )
        mark_all_done(state)
        rec = state.get_file(key)
        assert rec is not None and rec.status == "done" and rec.local_path == "Album/x.jpg"

        off = Selection.build(include_shared=False)
        asyncio.run(scan(ReplayGraph(chain("https://g/d1", [[]], "https://g/d2")), state, off))
        assert state.get_file(key) is not None  # kept, deselected
        assert not list(state.iter_ops())

        # Later run, still without --include-shared: the token expired (410), delta lists
        # the drive again (the shortcut is still there).
        later = {"https://g/d2": ResyncRequired("410", location=None)}
        later.update(chain(START, [[root(), SHORTCUT]], "https://g/d3"))
        asyncio.run(scan(ReplayGraph(later), state, off))
        ops = [(o.kind, o.item_id, o.src_path) for o in state.iter_ops()]
        assert ops == [], f"the shared file's copy is retired: {ops}"
        assert state.get_file(key) is not None, "the shared file was forgotten"
