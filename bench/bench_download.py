"""Download engine: our Engine against the fastest plain clients we could write, same run.

Layout: the emulator runs as its own process (`python -m onedrive_backup.emulator`), and every
measured client -- our Engine and each reference -- runs in a fresh child process of this
script (`python -m bench.bench_download --child JSON`), so peak RSS (VmHWM) is the client's
alone and no run inherits another's warm caches or leaked objects. Repetitions are
interleaved (rep 1 of every variant, then rep 2, ...) so background load hits all variants
alike. Medians and min-max are reported.

Small files (default 3,000 files of 1-16 KiB, log-uniform):
  - ours: the whole `Engine.run()` (scan with delta, download with quickXorHash, .part file,
    fsync, mtime, atomic rename, folder fsync, state batches) with MSAL tokens; the download
    phase alone is timed between PhaseStarted("download") and PhaseFinished("download").
  - references (aiohttp and httpx.AsyncClient): list with delta ($top=1000), then for each file
    GET /drives/{d}/items/{id}/content with the bearer token (302), GET the Location, write the
    bytes to a file (flat folder, plain open/write, no fsync, no hash). N concurrent workers;
    N is tuned first (BENCH_TUNE_N) and the best N of each client is used.
One large file (default 1 GiB): ours (Engine, download phase) against aiohttp and httpx
streaming the link to a file; plus aiohttp that also hashes with our QuickXorHash, that
fsyncs at the end (the bytes on the disk, as ours must have them before a file counts as done),
and that does both, so the cost split is visible.
Memory: VmHWM of our Engine child at BENCH_FILES and at BENCH_MEM_FILES (default 30,000).

Environment: BENCH_FILES (3000), BENCH_REPS (3), BENCH_LARGE_MB (1024, 0 skips),
BENCH_MEM_FILES (30000, 0 skips), BENCH_WORKERS ("8,32"), BENCH_TUNE_N ("8,16,32,64"; one
value skips tuning), BENCH_TUNE_FILES (1000: files per tuning run), BENCH_DIR (parent of the
destination folders; default: the temp dir), BENCH_PROFILE (a folder: each child also writes a
cProfile .pstats there; slower), BENCH_PYSPY (a folder: each child runs under `py-spy record`,
all threads, raw folded stacks; py-spy must be in the venv), BENCH_SRC (another source tree of
the package to measure, e.g. a patched copy).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import cpu_seconds, emulator_process, sign_in, vmhwm_kib

FILES = int(os.environ.get("BENCH_FILES", "3000"))
REPS = int(os.environ.get("BENCH_REPS", "3"))
LARGE_MB = int(os.environ.get("BENCH_LARGE_MB", "1024"))
MEM_FILES = int(os.environ.get("BENCH_MEM_FILES", "30000"))
WORKERS = [int(w) for w in os.environ.get("BENCH_WORKERS", "8,32").split(",")]
TUNE_N = [int(n) for n in os.environ.get("BENCH_TUNE_N", "8,16,32,64").split(",")]
TUNE_FILES = int(os.environ.get("BENCH_TUNE_FILES", "1000"))  # files per tuning run
# Emulator latency per response for the small-file case (issue 5's target uses 0.02 s).
LATENCY = float(os.environ.get("BENCH_LATENCY", "0"))
BASE_DIR = os.environ.get("BENCH_DIR") or None
PROFILE_DIR = os.environ.get("BENCH_PROFILE") or None
# Another source tree of onedrive_backup to measure (e.g. `git archive HEAD src | tar -x -C DIR`
# then BENCH_SRC=DIR/src, or a patched copy); default: the package the venv imports.
SRC = os.environ.get("BENCH_SRC") or None
# A folder: run every child under `py-spy record` (all threads, raw folded stacks) into it.
PYSPY_DIR = os.environ.get("BENCH_PYSPY") or None
SMALL_MIN, SMALL_MAX = 1024, 16 * 1024
CHUNK = 1 << 20
REPO = Path(__file__).resolve().parent.parent


# --- the emulator, in its own process ------------------------------------------------------


# --- children: one measured client each -----------------------------------------------------


async def _engine(env: dict[str, str], dest: Path, workers: int) -> dict[str, Any]:
    from onedrive_backup import auth, events
    from onedrive_backup.config import load_settings
    from onedrive_backup.engine import BackupPlan, Engine

    settings = load_settings({}, env)
    tokens = auth.MsalTokenSource(settings, plain_cache=True)
    marks: dict[str, float] = {}

    def emit(event: events.Event) -> None:
        if isinstance(event, events.PhaseStarted | events.PhaseFinished):
            marks[f"{type(event).__name__}:{event.phase}"] = time.perf_counter()

    await tokens.get()  # sign-in is not what we measure
    plan = BackupPlan(dest=dest, workers=workers)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    result = await Engine(plan, settings, tokens, emit).run()
    total = time.perf_counter() - t0
    tokens.close()
    files = result.summary["files"]
    assert result.exit_code == 0 and files["failed"] == 0, result.summary
    return {
        "seconds": total,
        "download_seconds": marks["PhaseFinished:download"] - marks["PhaseStarted:download"],
        "scan_seconds": marks["PhaseFinished:scan"] - marks["PhaseStarted:scan"],
        "files": files["downloaded_this_run"],
        "bytes": result.summary["bytes"]["downloaded"],
        "cpu_seconds": cpu_seconds() - cpu0,
    }


async def _token(env: dict[str, str]) -> str:
    from onedrive_backup import auth
    from onedrive_backup.config import load_settings

    tokens = auth.MsalTokenSource(load_settings({}, env), plain_cache=True)
    try:
        return await tokens.get()
    finally:
        tokens.close()


DELTA = "/me/drive/root/delta?$select=id,size,file,parentReference,deleted&$top=1000"


def _files_of(pages: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [
        (v["parentReference"]["driveId"], v["id"], v["size"])
        for page in pages
        for v in page["value"]
        if "file" in v and "deleted" not in v and v.get("size", 0) > 0
    ]


async def _ref_aiohttp(
    env: dict[str, str], dest: Path, n: int, large: bool, hash_: bool, fsync: bool, limit: int
) -> dict[str, Any]:
    import aiohttp

    from onedrive_backup.hashing import QuickXorHash

    graph = env["ONEDRIVE_BACKUP_GRAPH_URL"]
    ctx = ssl.create_default_context(cafile=env["ONEDRIVE_BACKUP_CA_BUNDLE"])
    auth = {"Authorization": f"Bearer {await _token(env)}"}
    connector = aiohttp.TCPConnector(ssl=ctx, limit=0)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as s:
        pages, url = [], graph + DELTA
        while url:
            async with s.get(url, headers=auth) as r:
                page = await r.json()
            pages.append(page)
            url = page.get("@odata.nextLink")
        files = _files_of(pages)[: limit or None]
        t_list = time.perf_counter()
        done_bytes = 0

        async def one(drive: str, item: str, size: int) -> None:
            nonlocal done_bytes
            url = f"{graph}/drives/{drive}/items/{item}/content"
            async with s.get(url, headers=auth, allow_redirects=False) as r:
                assert r.status == 302, r.status
                location = r.headers["Location"]
            async with s.get(location, allow_redirects=False) as r:
                assert r.status == 200, r.status
                if not large:
                    data = await r.read()
                    with open(dest / item, "wb") as fh:
                        fh.write(data)
                    done_bytes += len(data)
                    return
                hasher = QuickXorHash() if hash_ else None
                with open(dest / item, "wb") as fh:
                    async for chunk in r.content.iter_chunked(CHUNK):
                        fh.write(chunk)
                        if hasher is not None:
                            hasher.update(chunk)
                        done_bytes += len(chunk)
                    if fsync:
                        fh.flush()
                        os.fsync(fh.fileno())

        queue = list(reversed(files))

        async def worker() -> None:
            while queue:
                await one(*queue.pop())

        await asyncio.gather(*(worker() for _ in range(n)))
    t_end = time.perf_counter()
    return {
        "seconds": t_end - t0,
        "download_seconds": t_end - t_list,
        "scan_seconds": t_list - t0,
        "files": len(files),
        "bytes": done_bytes,
        "cpu_seconds": cpu_seconds() - cpu0,
    }


async def _ref_httpx(
    env: dict[str, str], dest: Path, n: int, large: bool, hash_: bool, fsync: bool, limit: int
) -> dict[str, Any]:
    if "sniffio" not in sys.modules:
        # httpcore imports sniffio on every lock operation; sniffio is not installed here, so
        # each import fails after a search of sys.path (about 0.3 ms, several per request).
        # What sniffio would answer under asyncio, so the reference is not slowed by that.
        import types

        sys.modules["sniffio"] = types.SimpleNamespace(  # type: ignore[assignment]
            current_async_library=lambda: "asyncio"
        )
    import httpx

    from onedrive_backup.hashing import QuickXorHash

    graph = env["ONEDRIVE_BACKUP_GRAPH_URL"]
    ctx = ssl.create_default_context(cafile=env["ONEDRIVE_BACKUP_CA_BUNDLE"])
    auth = {"Authorization": f"Bearer {await _token(env)}"}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=2 * n + 8)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    async with httpx.AsyncClient(verify=ctx, limits=limits, timeout=600) as c:
        pages, url = [], graph + DELTA
        while url:
            page = (await c.get(url, headers=auth)).json()
            pages.append(page)
            url = page.get("@odata.nextLink")
        files = _files_of(pages)[: limit or None]
        t_list = time.perf_counter()
        done_bytes = 0

        async def one(drive: str, item: str, size: int) -> None:
            nonlocal done_bytes
            r = await c.get(f"{graph}/drives/{drive}/items/{item}/content", headers=auth)
            assert r.status_code == 302, r.status_code
            location = r.headers["Location"]
            if not large:
                r = await c.get(location)
                assert r.status_code == 200, r.status_code
                with open(dest / item, "wb") as fh:
                    fh.write(r.content)
                done_bytes += len(r.content)
                return
            hasher = QuickXorHash() if hash_ else None
            async with c.stream("GET", location) as r:
                assert r.status_code == 200, r.status_code
                with open(dest / item, "wb") as fh:
                    async for chunk in r.aiter_raw(CHUNK):
                        fh.write(chunk)
                        if hasher is not None:
                            hasher.update(chunk)
                        done_bytes += len(chunk)
                    if fsync:
                        fh.flush()
                        os.fsync(fh.fileno())

        queue = list(reversed(files))

        async def worker() -> None:
            while queue:
                await one(*queue.pop())

        await asyncio.gather(*(worker() for _ in range(n)))
    t_end = time.perf_counter()
    return {
        "seconds": t_end - t0,
        "download_seconds": t_end - t_list,
        "scan_seconds": t_list - t0,
        "files": len(files),
        "bytes": done_bytes,
        "cpu_seconds": cpu_seconds() - cpu0,
    }


def child(spec: dict[str, Any]) -> None:
    """Run one measured client; print one JSON line with its figures and VmHWM."""
    env = spec["env"]
    dest = Path(spec["dest"])
    kind = spec["kind"]
    if kind == "engine":
        coro = _engine(env, dest, spec["n"])
    else:
        fn = _ref_aiohttp if kind == "aiohttp" else _ref_httpx
        coro = fn(
            env,
            dest,
            spec["n"],
            spec.get("large", False),
            spec.get("hash", False),
            spec.get("fsync", False),
            spec.get("limit", 0),
        )
    if PROFILE_DIR:
        import cProfile

        prof = cProfile.Profile()
        out = prof.runcall(asyncio.run, coro)
        prof.dump_stats(str(Path(PROFILE_DIR) / f"{spec['label']}.pstats"))
    else:
        out = asyncio.run(coro)
    out["vmhwm_kib"] = vmhwm_kib()
    print("RESULT " + json.dumps(out), flush=True)


def _child_env(src: str | None = None) -> dict[str, str]:
    src = src or SRC
    path = [src, str(REPO)] if src else [str(REPO)]
    return os.environ | {"PYTHONPATH": os.pathsep.join(path)}


def run_child(spec: dict[str, Any], parent: Path) -> dict[str, Any]:
    dest = Path(tempfile.mkdtemp(prefix="dest-", dir=parent))
    try:
        cmd = [
            sys.executable,
            "-m",
            "bench.bench_download",
            "--child",
            json.dumps(spec | {"dest": str(dest)}),
        ]
        if PYSPY_DIR:
            out = Path(PYSPY_DIR) / f"{spec['label']}.txt"
            pyspy = Path(sys.executable).parent / "py-spy"
            cmd = [str(pyspy), "record", "-r", "250", "-f", "raw", "-o", str(out), "--", *cmd]
        done = subprocess.run(
            cmd,
            cwd=REPO,
            capture_output=True,
            text=True,
            env=_child_env(spec.get("src")),
        )
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"child {spec['label']} failed:\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return result


# --- reporting ----------------------------------------------------------------------------------


def med_spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def fmt(values: list[float], digits: int = 0) -> str:
    m, lo, hi = med_spread(values)
    return f"{m:,.{digits}f} ({lo:,.{digits}f}-{hi:,.{digits}f})"


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


def emulator(*args: str) -> Any:
    return emulator_process(*args, env=_child_env())


def _small_emulator(files: int) -> Any:
    return emulator(
        "--files",
        str(files),
        "--min-size",
        str(SMALL_MIN),
        "--max-size",
        str(SMALL_MAX),
        "--no-notebook",
        "--zero-byte-files",
        "0",
        "--latency",
        str(LATENCY),
    )


def small_files(parent: Path, config: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with _small_emulator(FILES) as emu_env:
        env = sign_in(emu_env, config)
        base = {"env": env}
        # Warm-up: the emulator computes each file's hash on first listing.
        run_child(base | {"label": "warmup", "kind": "aiohttp", "n": 32}, parent)
        best: dict[str, int] = {}
        for kind in ("aiohttp", "httpx"):
            if len(TUNE_N) == 1:
                best[kind] = TUNE_N[0]
                continue
            rates = {}
            for n in TUNE_N:
                tune = {"label": f"tune-{kind}-{n}", "kind": kind, "n": n, "limit": TUNE_FILES}
                r = run_child(base | tune, parent)
                rates[n] = r["files"] / r["download_seconds"]
            best[kind] = max(rates, key=rates.__getitem__)
            print(
                f"  tuning {kind}: "
                + ", ".join(f"N={n}: {v:,.0f} files/s" for n, v in rates.items())
                + f" -> N={best[kind]}"
            )
        variants = [(f"ours, {w} workers", "engine", w) for w in WORKERS] + [
            (f"aiohttp reference, N={best['aiohttp']}", "aiohttp", best["aiohttp"]),
            (f"httpx reference, N={best['httpx']}", "httpx", best["httpx"]),
        ]
        for rep in range(REPS):
            for label, kind, n in variants:
                r = run_child(
                    base | {"label": f"small-{kind}-{n}-{rep}", "kind": kind, "n": n}, parent
                )
                results.setdefault(label, []).append(r)
                print(
                    f"  rep {rep + 1} {label}: {r['files'] / r['seconds']:,.0f} files/s "
                    f"whole, {r['files'] / r['download_seconds']:,.0f} files/s transfers, "
                    f"VmHWM {r['vmhwm_kib'] / 1024:.0f} MiB, load {load()}",
                    flush=True,
                )
    return results


def large_file(parent: Path, config: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    size = LARGE_MB << 20
    args = ("--files", "0", "--large-file", str(size), "--no-notebook", "--zero-byte-files", "0")
    with emulator(*args) as emu_env:
        env = sign_in(emu_env, config)
        base = {"env": env, "large": True}
        variants = [
            ("ours (Engine)", {"kind": "engine", "n": 8}),
            ("aiohttp reference", {"kind": "aiohttp", "n": 1}),
            ("httpx reference", {"kind": "httpx", "n": 1}),
            ("aiohttp reference + QuickXorHash", {"kind": "aiohttp", "n": 1, "hash": True}),
            ("aiohttp reference + fsync", {"kind": "aiohttp", "n": 1, "fsync": True}),
            (
                "aiohttp reference + QuickXorHash + fsync",
                {"kind": "aiohttp", "n": 1, "hash": True, "fsync": True},
            ),
        ]
        for rep in range(REPS):
            for label, v in variants:
                r = run_child(base | v | {"label": f"large-{label}-{rep}"}, parent)
                results.setdefault(label, []).append(r)
                print(
                    f"  rep {rep + 1} {label}: {r['bytes'] / r['download_seconds'] / 1e6:,.0f}"
                    f" MB/s, load {load()}",
                    flush=True,
                )
    return results


def memory(parent: Path, config: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with _small_emulator(MEM_FILES) as emu_env:
        env = sign_in(emu_env, config)
        base = {"env": env}
        run_child(base | {"label": "mem-warmup", "kind": "aiohttp", "n": 32}, parent)
        for label, kind, n in (
            ("ours, 8 workers", "engine", 8),
            ("aiohttp reference, N=32", "aiohttp", 32),
        ):
            r = run_child(base | {"label": f"mem-{kind}", "kind": kind, "n": n}, parent)
            results[label] = r
            print(
                f"  {MEM_FILES:,} files, {label}: VmHWM {r['vmhwm_kib'] / 1024:.0f} MiB, "
                f"{r['files'] / r['seconds']:,.0f} files/s, load {load()}",
                flush=True,
            )
    return results


def report(small: dict[str, Any], large: dict[str, Any], mem: dict[str, Any]) -> None:
    print()
    print(
        f"| many small files ({FILES:,} x 1-16 KiB), {REPS} reps: median (min-max) | "
        "whole run files/s | transfers files/s | ratio whole / best ref | "
        "ratio transfers / best ref | CPU s | VmHWM MiB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    refs = {k: v for k, v in small.items() if "reference" in k}
    whole = {k: [r["files"] / r["seconds"] for r in v] for k, v in small.items()}
    xfer = {k: [r["files"] / r["download_seconds"] for r in v] for k, v in small.items()}
    best_whole = max(statistics.median(whole[k]) for k in refs) if refs else float("nan")
    best_xfer = max(statistics.median(xfer[k]) for k in refs) if refs else float("nan")
    for k, v in small.items():
        print(
            f"| {k} | {fmt(whole[k])} | {fmt(xfer[k])} | "
            f"{statistics.median(whole[k]) / best_whole:.2f} | "
            f"{statistics.median(xfer[k]) / best_xfer:.2f} | "
            f"{fmt([r['cpu_seconds'] for r in v], 1)} | "
            f"{fmt([r['vmhwm_kib'] / 1024 for r in v])} |"
        )
    if large:
        print()
        print(
            f"| one {LARGE_MB:,} MiB file, {REPS} reps | MB/s (transfer) | ratio / best plain "
            "ref | CPU s |"
        )
        print("| --- | --- | --- | --- |")
        mbps = {k: [r["bytes"] / r["download_seconds"] / 1e6 for r in v] for k, v in large.items()}
        plain = [k for k in large if k in ("aiohttp reference", "httpx reference")]
        best = max(statistics.median(mbps[k]) for k in plain)
        for k, v in large.items():
            print(
                f"| {k} | {fmt(mbps[k])} | {statistics.median(mbps[k]) / best:.2f} | "
                f"{fmt([r['cpu_seconds'] for r in v], 1)} |"
            )
    if mem:
        print()
        print(
            "| peak RSS (VmHWM) of the client process | "
            f"{FILES:,} files (median) | {MEM_FILES:,} files |"
        )
        print("| --- | --- | --- |")
        for k, r in mem.items():
            at_small = [
                x["vmhwm_kib"] / 1024
                for kk, v in small.items()
                for x in v
                if kk.split(",")[0] == k.split(",")[0] and kk == k
            ]
            small_txt = f"{statistics.median(at_small):.0f} MiB" if at_small else "-"
            print(f"| {k} | {small_txt} | {r['vmhwm_kib'] / 1024:.0f} MiB |")


def main() -> None:
    if SRC:
        sys.path.insert(0, SRC)
    print(f"Download engine ({machine()})")
    import onedrive_backup

    print(f"  onedrive_backup from {Path(onedrive_backup.__file__).parent}")
    print(f"  load average at start: {load()}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-download-", dir=BASE_DIR) as tmp:
        parent = Path(tmp)
        fs = subprocess.run(["df", "-T", str(parent)], capture_output=True, text=True).stdout
        print(f"  destination: {parent} ({fs.splitlines()[-1].split()[1] if fs else '?'})")
        small = small_files(parent, parent / "config-small")
        large = large_file(parent, parent / "config-large") if LARGE_MB else {}
        mem = memory(parent, parent / "config-mem") if MEM_FILES else {}
    report(small, large, mem)
    print(f"\n  load average at end: {load()}; took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
    else:
        main()
