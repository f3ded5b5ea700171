"""The scan's resolve pass alone, without the network: steady enough for A/B of its SQL.

A state with BENCH_RESOLVE_FILES files (default 200,000) in 144 folders (random parents, shuffled
order, as delta gives them) is built once through the state API (`ingest_page`, 1,000 items a
page). Each of BENCH_RESOLVE_REPS rounds (default 3) copies it and times `scan.resolve()` on the
copy: the first placement of every item, as after a first full scan. BENCH_DIR picks the parent
of the temporary folder.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from bench._common import cpu_seconds
from onedrive_backup.models import RemoteItem
from onedrive_backup.scan import delta_start_url, resolve
from onedrive_backup.selection import Selection
from onedrive_backup.state import BackupState

FILES = int(os.environ.get("BENCH_RESOLVE_FILES", "200000"))
REPS = int(os.environ.get("BENCH_RESOLVE_REPS", "3"))
FOLDERS = 143  # plus the root


def build(folder: Path) -> Path:
    rng = random.Random(1)
    items = [RemoteItem("root", "d", None, "root", "root")]
    parents = ["root"]
    for i in range(FOLDERS):
        folder_id = f"F{i:04d}"
        items.append(RemoteItem(folder_id, "d", rng.choice(parents), f"Folder {i}", "folder"))
        parents.append(folder_id)
    for i in range(FILES):
        items.append(
            RemoteItem(
                f"I{i:07d}.{rng.getrandbits(32):08x}",
                "d",
                rng.choice(parents),
                f"IMG_{i:06d} photo.jpg",
                "file",
                size=1000,
                mtime=1.7e9,
                etag="e",
                ctag="c",
                quickxorhash="AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            )
        )
    rng.shuffle(items)
    with BackupState.create(folder) as state:
        state.begin_enumeration(delta_start_url(), full=True)
        for k in range(0, len(items), 1000):
            last = k + 1000 >= len(items)
            state.ingest_page(
                items[k : k + 1000],
                next_link=None if last else "next",
                delta_link="delta" if last else None,
            )
        return state.backup_dir


def main() -> None:
    print(f"Resolve pass, {FILES:,} files in {FOLDERS + 1} folders, {REPS} rounds")
    top = Path(tempfile.mkdtemp(prefix="bench-resolve-", dir=os.environ.get("BENCH_DIR")))
    try:
        t0 = time.perf_counter()
        (top / "source").mkdir()
        source = build(top / "source")
        print(f"  built in {time.perf_counter() - t0:.1f} s")
        for round_no in range(1, REPS + 1):
            work = top / f"round{round_no}"
            shutil.copytree(source, work)
            with BackupState.open(work) as state:
                cpu0, t0 = cpu_seconds(), time.perf_counter()
                resolve(state, Selection.all(), sweep=True)
                wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
                placed = state.count_files()
                assert not state.needs_resolve(), "the pass left items unplaced"
            print(
                f"  round {round_no}: resolve {wall:.2f} s wall / {cpu:.2f} s CPU "
                f"({placed:,} files)"
            )
            shutil.rmtree(work)
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
