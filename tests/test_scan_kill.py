"""A scan killed with SIGKILL mid-way continues from its last committed page.

The client is a real process (a scan through GraphClient into a BackupState), killed in its
own process group once the emulator has answered a few delta pages. Pages are small (the
emulator's delta_max_top) and every answer is delayed, so the kill lands mid-scan. After the
resume no page was fetched twice except the one in flight at the kill (the scan applies one
page while it fetches the next, but keeps the page it applies, with the cursor past it,
before it asks for the next), and the inventory equals the drive's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from onedrive_backup.emulator import DriveSpec, Emulator
from onedrive_backup.state import BackupState
from test_scan_emulator import EmulatorFactory, assert_inventory_matches, delta_requests, run_scan

PAGE = 20  # items per delta page (the emulator's cap on $top)
KILL_AFTER = 5  # delta pages answered before the kill

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from onedrive_backup.graph import GraphClient
    from onedrive_backup.scan import scan
    from onedrive_backup.state import BackupState

    graph_url, ca, token, dest, mode = sys.argv[1:]

    class Tokens:
        async def get(self):
            return token
        async def refresh(self, rejected):
            return token

    async def main():
        if mode == "new":
            state = BackupState.create(Path(dest))
        else:
            state = BackupState.open(next(Path(dest).iterdir()))
        with state:
            async with GraphClient(graph_url, Tokens(), ca_bundle=Path(ca)) as graph:
                result = await scan(graph, state)
        print("PAGES", result.pages)

    asyncio.run(main())
    """
)


def start_scan(emu: Emulator, dest: Path, mode: str) -> subprocess.Popen[str]:
    args = [emu.graph_url, str(emu.ca_path), emu.mint_access_token(), str(dest), mode]
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, killed as a whole
    )


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigkill_mid_scan_then_resume_fetches_no_page_twice(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    emu = emulator_factory(
        DriveSpec(files=300, seed=8, size_range=(1, 1024)), delta_max_top=PAGE, latency=0.05
    )
    killed_dest = tmp_path / "killed"
    killed_dest.mkdir()
    proc = start_scan(emu, killed_dest, "new")
    deadline = time.monotonic() + 60
    while delta_requests(emu) < KILL_AFTER:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the scan never got going"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    fetched_before_kill = delta_requests(emu)

    backup = next(killed_dest.iterdir())
    with BackupState.open(backup, read_only=True) as state:
        cursor = state.get_cursor()
        committed = cursor.stats.get("pages", 0) + (state.journaled_page() is not None)
    assert cursor.phase == "paging", "the kill must land mid-scan"
    # Every page answered before the kill is applied or kept, but for the one in flight.
    assert fetched_before_kill - 1 <= committed <= fetched_before_kill

    proc = start_scan(emu, killed_dest, "resume")
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    fetched_in_all = delta_requests(emu)

    # The same drive scanned in one go gives the number of pages there are.
    (tmp_path / "fresh").mkdir()
    with BackupState.create(tmp_path / "fresh") as fresh:
        result = run_scan(emu, fresh, page_size=1000)
    pages = delta_requests(emu) - fetched_in_all
    assert result.pages == pages > KILL_AFTER + 2
    assert fetched_in_all <= pages + 1, "a page other than the one in flight was fetched twice"
    assert fetched_in_all >= pages

    with BackupState.open(backup) as state:
        assert state.get_cursor().phase == "complete"
        assert state.get_cursor().stats["pages"] == pages
        assert_inventory_matches(emu, state)
