"""The GUI's status exchange: engine events become a status the page renders, nothing secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onedrive_backup import events
from onedrive_backup.config import Settings
from onedrive_backup.errors import UsageError
from onedrive_backup.gui.controller import EXAMPLES_PER_REASON, Controller, sse_message
from onedrive_backup.progress import Describer


@pytest.fixture
def controller(tmp_path: Path) -> Controller:
    c = Controller(Settings(config_dir=tmp_path / "config"), opener=lambda _p: None)
    c._describer = Describer()  # as a run would have
    return c


def test_progress_events_fill_the_run_status(controller: Controller) -> None:
    controller.emit(events.PhaseStarted(phase="scan", detail="Scanning OneDrive"))
    controller.emit(
        events.ScanProgress(items_seen=10, pages=1, files_selected=7, bytes_selected=70)
    )
    controller.emit(events.SpaceChecked(needed=100, free=1000, ok=True))
    controller.emit(
        events.DownloadProgress(
            files_done=3, files_total=7, bytes_done=30, bytes_total=70, active=2, rate=10.0
        )
    )
    controller.emit(events.ItemDone(path="/a.jpg", size=10))
    controller.emit(events.ItemDone(path="/b.jpg", size=10, adopted=True))
    run = controller.snapshot()["run"]
    assert run["phase"] == "space"
    assert run["scan"]["files_selected"] == 7
    assert run["progress"]["files_done"] == 3 and run["progress"]["rate"] == 10.0
    assert run["counts"] == {"done": 1, "adopted": 1}
    texts = [line["text"] for line in controller.log_lines()]
    assert "Phase 1: Scanning OneDrive..." in texts
    assert any(t.startswith("Phase 2: Checking disk space") for t in texts)


def test_failures_are_grouped_by_reason_with_a_few_examples(controller: Controller) -> None:
    for i in range(500):
        controller.emit(events.ItemFailed(path=f"/x/{i}.doc", reason="accessDenied: no"))
    controller.emit(events.ItemUnverified(path="/y.jpg", reason="hash differs"))
    failures = controller.snapshot()["run"]["failures"]
    assert failures["accessDenied: no"]["count"] == 500
    assert len(failures["accessDenied: no"]["examples"]) == EXAMPLES_PER_REASON
    assert failures["Unverified: hash differs"]["count"] == 1
    # The log does not get one line per failed file.
    assert sum("accessDenied" in line["text"] for line in controller.log_lines()) < 25


def test_nothing_secret_reaches_the_status(controller: Controller) -> None:
    token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.sig"
    controller.emit(events.ItemFailed(path="/a", reason=f"server said Bearer {token}"))
    controller.emit(events.Message(text=f"odd: https://dl.example/x?tempauth={token}"))
    dump = json.dumps(controller.snapshot()) + json.dumps(controller.log_lines())
    assert token not in dump


def test_inputs_are_validated_before_anything_runs(controller: Controller) -> None:
    controller.signin.state = "signed_in"
    with pytest.raises(UsageError, match="destination"):
        controller.start_backup({})
    controller.destination = {"path": "/tmp", "ok": True}
    with pytest.raises(UsageError, match="Unknown category"):
        controller.start_backup({"categories": ["photos", "spreadsheets"]})
    with pytest.raises(UsageError, match="list of text"):
        controller.start_backup({"folders": "/Pictures"})
    with pytest.raises(UsageError, match="'..'"):
        controller.start_backup({"folders": ["/a/../b"]})
    assert controller.run.state == "idle"


def test_server_sent_event_format() -> None:
    message = sse_message("status", {"a": "line\nbreak"})
    assert message.startswith("event: status\ndata: ") and message.endswith("\n\n")
    assert message.count("\n") == 3  # JSON escapes newlines: one data line


def test_shared_items_choice_reaches_the_selection() -> None:
    from onedrive_backup.errors import UsageError
    from onedrive_backup.gui.controller import _run_inputs

    chosen = _run_inputs("/tmp/x", {"categories": ["photos"], "include_shared": True})
    assert chosen.selection is not None and chosen.selection.include_shared
    plain = _run_inputs("/tmp/x", {"categories": ["photos"]})
    assert plain.selection is not None and not plain.selection.include_shared
    with pytest.raises(UsageError):
        _run_inputs("/tmp/x", {"include_shared": "yes"})
