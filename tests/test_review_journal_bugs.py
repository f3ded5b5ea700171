"""The page journal keeps the body as received; a body json.loads(bytes) accepts (as
GraphClient.get_page does: Reply.json() is json.loads(self.body)) may not be readable back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from onedrive_backup.scan import scan
from onedrive_backup.selection import Selection
from onedrive_backup.state import BackupState
from test_scan import START, ReplayGraph, chain, file, root


class KillAfterJournal(Exception):
    pass


def _kill_after_first_journal(state: BackupState, served, encode) -> None:
    """A scan that journals page 0 with the body `encode` gives, then is 'killed' before
    page 0 is applied (the apply raises, standing in for SIGKILL at that moment)."""

    class G(ReplayGraph):
        async def get_page(self, url):
            page = await self.get_json(url)
            return page, encode(page)

    real = state.ingest_page

    def boom(*a, **k):
        raise KillAfterJournal()

    state.ingest_page = boom  # type: ignore[method-assign]
    with pytest.raises(KillAfterJournal):
        asyncio.run(scan(G(served), state, Selection.all()))
    state.ingest_page = real  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda p: b"\xef\xbb\xbf" + json.dumps(p).encode(), id="utf8-bom"),
        pytest.param(lambda p: json.dumps(p).encode("utf-16-le"), id="utf16le-ascii"),
    ],
)
def test_resume_after_a_kill_with_a_kept_page(tmp_path: Path, encode) -> None:
    pages = [[root()], [file("F", "f.jpg")]]
    served = chain(START, pages, "https://g/delta?token=final")
    body = encode(served[START])
    assert json.loads(body) == served[START], "what GraphClient.get_page accepts"
    with BackupState.create(tmp_path) as state:
        _kill_after_first_journal(state, served, encode)
        assert state.get_meta  # the state is as a kill leaves it: a page kept
        result = asyncio.run(scan(ReplayGraph(served), state, Selection.all()))
        assert result.files_total == 1
