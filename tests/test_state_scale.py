"""Scale: 100,000 synthetic items through ingest and resolve, in a child process for a clean RSS.

No timing assertions (machines differ): the figures are printed (`pytest -s`). The memory bound
is generous so it cannot flake, but it still catches an accidental "load everything" design.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, random, resource, sys, tempfile, time
    from pathlib import Path
    from onedrive_backup.scan import delta_start_url, scan
    from onedrive_backup.state import BackupState

    N_ITEMS, N_FOLDERS, TOP = int(sys.argv[1]), int(sys.argv[2]), 1000

    def peak_rss_mb():
        # VmHWM belongs to this process image; ru_maxrss survives exec on Linux, so a child
        # of a big pytest process would report the parent's peak.
        try:
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

    def items():
        rng = random.Random(7)
        out = [{"id": "ROOT", "name": "root", "root": {}, "folder": {}}]
        for i in range(N_FOLDERS):
            parent = "ROOT" if i < 50 else f"D{rng.randrange(i):06d}"
            out.append({"id": f"D{i:06d}", "name": f"Folder {i % 997}", "folder": {},
                        "parentReference": {"id": parent, "driveId": "X"}})
        for i in range(N_ITEMS - N_FOLDERS - 1):
            parent = f"D{rng.randrange(N_FOLDERS):06d}"
            out.append({"id": f"F{i:07d}", "name": f"IMG_{i % 5000:04d}.JPG", "size": i,
                        "eTag": f"e{i}", "cTag": f"c{i}",
                        "file": {"hashes": {"quickXorHash": f"h{i}"}},
                        "fileSystemInfo": {"lastModifiedDateTime": "2020-01-01T00:00:00Z"},
                        "parentReference": {"id": parent, "driveId": "X"}})
        rng.shuffle(out)  # children before parents, as Graph may send them
        return out

    class Pages:
        def __init__(self, everything):
            self.everything = everything
        async def get_json(self, url):
            start = 0 if url.startswith("/me") else int(url.rsplit("=", 1)[1])
            chunk = self.everything[start:start + TOP]
            end = start + TOP
            link = ("@odata.nextLink", f"https://g/next?skip={end}") if end < len(
                self.everything) else ("@odata.deltaLink", "https://g/delta?token=z")
            return {"value": chunk, link[0]: link[1]}
        async def get_page(self, url):
            page = await self.get_json(url)
            return page, json.dumps(page).encode()

    everything = items()
    rss_before = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        state = BackupState.create(Path(tmp))
        t0 = time.perf_counter()
        result = asyncio.run(scan(Pages(everything), state, None))
        t1 = time.perf_counter()
        n = sum(1 for _ in state.iter_pending_files())
        t2 = time.perf_counter()
        state.close()
    print(json.dumps({
        "items": N_ITEMS, "files": result.files_total, "pending": n,
        "orphans": result.orphans, "scan_s": round(t1 - t0, 2), "iter_s": round(t2 - t1, 2),
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
    }))
    """
)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_100k_items_scan_and_resolve_with_flat_memory() -> None:
    figures = []
    for n in (10_000, 100_000):
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(n), str(n // 20)],
            capture_output=True,
            text=True,
            timeout=190,
            check=True,
        )
        figures.append(json.loads(out.stdout))
    small, big = figures
    print("\nscale figures:", json.dumps(figures, indent=1))
    assert big["files"] == big["pending"] == 100_000 - 5_000 - 1
    assert big["orphans"] == 0
    # The synthetic JSON itself is held in memory by the fake; the state work on top of it must
    # not grow with the item count like a "load everything" design would.
    growth_small = small["peak_rss_mb"] - small["rss_before_mb"]
    growth_big = big["peak_rss_mb"] - big["rss_before_mb"]
    assert growth_big < 250, figures
    assert growth_big < 4 * max(growth_small, 25), figures
