"""Scan: our delta scan against a bare loop over the same pages, peak memory, and resume time.

Layout: the emulator runs as its own process (`python -m onedrive_backup.emulator`, no latency,
files of 1-2,048 bytes so its lazy hashing is cheap) and every measured client runs in a fresh
child process of this script (`python -m bench.bench_scan --child JSON`), so VmHWM is the
client's alone. Sign-in is a real MSAL device-code login (auto-approved), done once.

1. CPU cost (BENCH_SCAN_ITEMS, default 200,000 files): `scan()` (delta paging into the state,
   then the resolve pass and the result summary) against a bare aiohttp loop that fetches the
   same pages (same URL: $select and $top=1000), parses each with `json.loads` and does nothing
   else. A warm-up bare loop runs first (the emulator hashes each file on its first listing),
   then BENCH_SCAN_REPS rounds alternate bare, ours. Wall time is measured inside each child
   from the first request to the end (imports and sign-in excluded); CPU is the child's
   getrusage over the same span. The ratio is ours / bare, per round.
2. Memory (BENCH_SCAN_MEM_ITEMS, default 1,000,000; 0 skips): VmHWM of the scan child.
3. Resume (BENCH_SCAN_RESUME_ITEMS, default 100,000; 0 skips): a child scans into a new backup
   and marks every selected file done through the state API (no file is downloaded or written:
   the resume's scan and local-change phases never read the files; a real download of 100,000
   files takes about 11 minutes here). Then a child runs `Engine.run()` with `--resume latest`
   semantics and no remote changes; the figure is the time from the parent's Popen to the
   PhaseStarted("download") event (interpreter start, imports, MSAL token, state open, the
   incremental delta call, resolve, local changes, space check).

Environment: BENCH_SCAN_ITEMS, BENCH_SCAN_REPS (3), BENCH_SCAN_MEM_ITEMS,
BENCH_SCAN_RESUME_ITEMS, BENCH_DIR (parent of temporary folders), BENCH_PROFILE (a folder: each
child also writes a cProfile .pstats there; slower).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import cpu_seconds, emulator_process, sign_in, vmhwm_kib

ITEMS = int(os.environ.get("BENCH_SCAN_ITEMS", "200000"))
REPS = int(os.environ.get("BENCH_SCAN_REPS", "3"))
MEM_ITEMS = int(os.environ.get("BENCH_SCAN_MEM_ITEMS", "1000000"))
RESUME_ITEMS = int(os.environ.get("BENCH_SCAN_RESUME_ITEMS", "100000"))
BASE_DIR = os.environ.get("BENCH_DIR") or None
PROFILE_DIR = os.environ.get("BENCH_PROFILE") or None
REPO = Path(__file__).resolve().parent.parent


# --- the emulator, in its own process ------------------------------------------------------


def emulator(files: int) -> Any:
    """The scan benchmark's drive: `files` small files, fixed seed."""
    args = ("--files", str(files), "--min-size", "1", "--max-size", "2048", "--seed", "11")
    return emulator_process(*args, cwd=REPO)


# --- children: one measured client each -----------------------------------------------------


def _tokens(env: dict[str, str]) -> Any:
    from onedrive_backup import auth
    from onedrive_backup.config import load_settings

    return auth.MsalTokenSource(load_settings({}, env), plain_cache=True)


async def _bare(env: dict[str, str], dest: Path) -> dict[str, Any]:
    """Fetch every delta page with aiohttp and json.loads it; nothing else."""
    import aiohttp

    from onedrive_backup.scan import delta_start_url

    tokens = _tokens(env)
    auth = {"Authorization": f"Bearer {await tokens.get()}"}
    ctx = ssl.create_default_context(cafile=env["ONEDRIVE_BACKUP_CA_BUNDLE"])
    items = pages = files = 0
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        url: str | None = env["ONEDRIVE_BACKUP_GRAPH_URL"] + delta_start_url()
        while url:
            async with s.get(url, headers=auth) as r:
                page = json.loads(await r.read())
            items += len(page["value"])
            files += sum(1 for v in page["value"] if "file" in v and "deleted" not in v)
            pages += 1
            url = page.get("@odata.nextLink")
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    tokens.close()
    return {"seconds": seconds, "cpu_seconds": cpu, "items": items, "pages": pages, "files": files}


async def _scan(env: dict[str, str], dest: Path, mark_done: bool) -> dict[str, Any]:
    """Our scan() into a new backup in `dest` (optionally marking every file done after)."""
    from onedrive_backup import events
    from onedrive_backup.config import load_settings
    from onedrive_backup.graph import GraphClient
    from onedrive_backup.models import DoneRecord
    from onedrive_backup.scan import scan
    from onedrive_backup.state import BackupState

    settings = load_settings({}, env)
    tokens = _tokens(env)
    await tokens.get()  # sign-in is not what we measure
    marks: list[float] = []

    def emit(event: events.Event) -> None:
        if isinstance(event, events.ScanProgress):
            marks.append(time.perf_counter())

    state = BackupState.create(dest)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    async with GraphClient(
        settings.endpoints().graph_url, tokens, ca_bundle=settings.ca_bundle
    ) as graph:
        result = await scan(graph, state, None, emit)
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    if mark_done:
        batch: list[DoneRecord] = []
        for task in state.iter_pending_files():
            batch.append(DoneRecord(task.item_id, task.size, task.quickxorhash, task.mtime, None))
        for i in range(0, len(batch), 5000):
            state.mark_done_many(batch[i : i + 5000])
        state.set_meta("selection", state.get_meta("scan_selection"))
    state.close()
    tokens.close()
    return {
        "seconds": seconds,
        "paging_seconds": marks[-2] - t0 if len(marks) >= 2 else seconds,
        "cpu_seconds": cpu,
        "items": result.items_seen,
        "pages": result.pages,
        "files": result.files_total,
        "orphans": result.orphans,
    }


async def _resume(env: dict[str, str], dest: Path) -> dict[str, Any]:
    """`backup --resume latest` through the Engine; prints the moment download starts."""
    from onedrive_backup import events
    from onedrive_backup.config import load_settings
    from onedrive_backup.engine import BackupPlan, Engine

    settings = load_settings({}, env)
    tokens = _tokens(env)
    marks: dict[str, float] = {}

    def emit(event: events.Event) -> None:
        if isinstance(event, events.PhaseStarted | events.PhaseFinished):
            marks[f"{type(event).__name__}:{event.phase}"] = time.time()

    result = await Engine(BackupPlan(dest=dest, resume="latest"), settings, tokens, emit).run()
    tokens.close()
    assert result.exit_code == 0, result.summary
    scan = result.summary["scan"]
    return {
        "download_started_at": marks["PhaseStarted:download"],
        "scan_started_at": marks["PhaseStarted:scan"],
        "scan_finished_at": marks["PhaseFinished:scan"],
        "downloaded": result.summary["files"]["downloaded_this_run"],
        "full_enumeration": scan["full_enumeration"],
        "pages": scan["pages"],
    }


def child(spec: dict[str, Any]) -> None:
    """Run one measured client; print one JSON line with its figures and VmHWM."""
    env, dest, kind = spec["env"], Path(spec["dest"]), spec["kind"]
    if kind == "bare":
        coro = _bare(env, dest)
    elif kind == "resume":
        coro = _resume(env, dest)
    else:
        coro = _scan(env, dest, mark_done=kind == "setup")
    if PROFILE_DIR:
        import cProfile

        prof = cProfile.Profile()
        out = prof.runcall(asyncio.run, coro)
        prof.dump_stats(str(Path(PROFILE_DIR) / f"{spec['label']}.pstats"))
    else:
        out = asyncio.run(coro)
    out["vmhwm_kib"] = vmhwm_kib()
    print("RESULT " + json.dumps(out), flush=True)


def run_child(spec: dict[str, Any], dest: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "bench.bench_scan",
        "--child",
        json.dumps(spec | {"dest": str(dest)}),
    ]
    started = time.time()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"child {spec['label']} failed:\n{done.stdout}\n{done.stderr}")
    out: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    out["popen_at"] = started
    return out


# --- reporting ----------------------------------------------------------------------------------


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"nproc={os.cpu_count()}, CPU {model!r}, Python {platform.python_version()}"


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# --- the benchmark -----------------------------------------------------------------------------


def cpu_cost(work: Path) -> None:
    print(f"\n1. Scan CPU cost: {ITEMS:,} files, emulator without latency (load {load()})")
    with emulator(ITEMS) as emu_env:
        env = sign_in(emu_env, work / "config-cost")
        base = {"env": env}
        warm = run_child(base | {"label": "warmup", "kind": "bare"}, work)
        print(
            f"  warm-up bare loop: {warm['items']:,} items, {warm['pages']} pages, "
            f"{warm['seconds']:.2f} s"
        )
        for rep in range(1, REPS + 1):
            bare = run_child(base | {"label": f"bare{rep}", "kind": "bare"}, work)
            dest = Path(tempfile.mkdtemp(prefix="scan-", dir=work))
            ours = run_child(base | {"label": f"scan{rep}", "kind": "scan"}, dest)
            shutil.rmtree(dest, ignore_errors=True)
            # Paging is complete: as many items and files as the bare loop saw, none orphaned.
            assert ours["items"] == bare["items"] and ours["files"] == bare["files"], (ours, bare)
            assert ours["orphans"] == 0, ours
            print(
                f"  round {rep} (load {load()}): bare {bare['seconds']:.2f} s wall / "
                f"{bare['cpu_seconds']:.2f} s CPU; scan {ours['seconds']:.2f} s wall "
                f"(paging {ours['paging_seconds']:.2f} s) / {ours['cpu_seconds']:.2f} s CPU, "
                f"VmHWM {ours['vmhwm_kib'] // 1024} MB; "
                f"ratio wall {ours['seconds'] / bare['seconds']:.2f}x, "
                f"CPU {ours['cpu_seconds'] / bare['cpu_seconds']:.2f}x"
            )


def memory(work: Path) -> None:
    print(f"\n2. Memory: {MEM_ITEMS:,} files (load {load()})")
    with emulator(MEM_ITEMS) as emu_env:
        env = sign_in(emu_env, work / "config-mem")
        dest = Path(tempfile.mkdtemp(prefix="mem-", dir=work))
        ours = run_child({"env": env, "label": "mem", "kind": "scan"}, dest)
        shutil.rmtree(dest, ignore_errors=True)
        print(
            f"  scan of {ours['items']:,} items in {ours['pages']} pages: "
            f"{ours['seconds']:.1f} s wall (paging {ours['paging_seconds']:.1f} s), "
            f"{ours['cpu_seconds']:.1f} s CPU; peak RSS (VmHWM) {ours['vmhwm_kib'] / 1024:.0f} MB"
            f" (load {load()})"
        )


def resume(work: Path) -> None:
    print(f"\n3. Resume of a finished {RESUME_ITEMS:,}-file backup, no changes (load {load()})")
    with emulator(RESUME_ITEMS) as emu_env:
        env = sign_in(emu_env, work / "config-resume")
        dest = Path(tempfile.mkdtemp(prefix="resume-", dir=work))
        setup = run_child({"env": env, "label": "setup", "kind": "setup"}, dest)
        print(
            f"  set-up scan of {setup['items']:,} items: {setup['seconds']:.1f} s; "
            "every selected file marked done through the state API"
        )
        for rep in range(1, REPS + 1):
            out = run_child({"env": env, "label": f"resume{rep}", "kind": "resume"}, dest)
            assert out["downloaded"] == 0 and not out["full_enumeration"], out
            print(
                f"  resume {rep} (load {load()}): process start → download phase "
                f"{out['download_started_at'] - out['popen_at']:.2f} s "
                f"(before the scan phase {out['scan_started_at'] - out['popen_at']:.2f} s, "
                f"scan {out['scan_finished_at'] - out['scan_started_at']:.2f} s, "
                f"{out['pages']} delta page); VmHWM {out['vmhwm_kib'] // 1024} MB"
            )
        shutil.rmtree(dest, ignore_errors=True)


def main() -> None:
    print(f"Scan benchmark ({machine()})")
    work = Path(tempfile.mkdtemp(prefix="bench-scan-", dir=BASE_DIR))
    try:
        if ITEMS:
            cpu_cost(work)
        if MEM_ITEMS:
            memory(work)
        if RESUME_ITEMS:
            resume(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
    else:
        main()
