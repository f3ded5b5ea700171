"""The update summary names what changed (issue 7: added, updated, moved, deleted-and-kept)."""

from __future__ import annotations

from onedrive_backup.report import summary_lines


def test_update_summary_lists_changes() -> None:
    summary = {
        "files": {"selected": 10, "done": 10},
        "scan": {"changes": {"added": 3, "modified": 2, "deleted": 1, "moved": 4}},
        "changes": {"moved": 4, "retired_deleted": 1, "retired_replaced": 2, "removed": 0},
        "bytes": {"selected": 100, "downloaded": 50},
    }
    text = "\n".join(summary_lines(summary))
    assert (
        "Changes: 3 added, 2 updated, 4 moved or renamed without downloading, "
        "1 deleted in OneDrive and kept in .versions/, 2 previous versions kept in .versions/"
    ) in text
    assert "removed" not in text


def test_first_backup_has_no_changes_line() -> None:
    scan = {"full_enumeration": True, "resynced": False, "changes": {"added": 60}}
    text = "\n".join(summary_lines({"files": {"selected": 60, "done": 60}, "scan": scan}))
    assert "Changes:" not in text
