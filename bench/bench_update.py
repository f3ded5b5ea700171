"""Incremental update: after a full backup of N files (100,000 by default), change the drive
(100 file changes plus a folder of 1,000 files renamed) and time `backup --resume latest`.

The emulator runs as its own process (`python -m onedrive_backup.emulator`, no latency) and the
client is the real CLI in a subprocess, so the client's CPU time is the child's rusage (user +
sys, read with os.wait4), not mixed with the emulator's. Each update round makes new changes.
The emulator's counters (reset before each update) give the content downloads (full
deliveries per item) and the Graph requests. The reference is a bare aiohttp client doing what
an update must do at minimum over the same emulator: one delta call from the same token and
the same downloads (item metadata, /content 302, the link).

Environment: BENCH_UPDATE_FILES (100000), BENCH_UPDATE_ROUNDS (3), BENCH_UPDATE_DEST (a kept
folder to reuse; default a temporary one).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx

FILES = int(os.environ.get("BENCH_UPDATE_FILES", "100000"))
ROUNDS = int(os.environ.get("BENCH_UPDATE_ROUNDS", "3"))
BULK = 1000  # files in the folder renamed by every update
MIX = {"add": 40, "edit": 30, "delete": 15, "move": 15}  # 100 file changes per update


@dataclass
class Emu:
    env: dict[str, str]
    key: str
    origin: str
    proc: subprocess.Popen[str]

    def ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.env["ONEDRIVE_BACKUP_CA_BUNDLE"])

    def admin(self, method: str, name: str, body: Any = None) -> Any:
        with httpx.Client(base_url=self.origin, verify=self.ssl(), timeout=600) as c:
            r = c.request(method, f"/_admin/{name}", json=body, headers={"X-Admin-Key": self.key})
            r.raise_for_status()
            return r.json()


@contextmanager
def emulator(*args: str) -> Iterator[Emu]:
    cmd = [sys.executable, "-m", "onedrive_backup.emulator", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    env: dict[str, str] = {}
    key = ""
    for line in proc.stdout:
        if m := re.match(r"export (\w+)=(\S+)", line):
            env[m.group(1)] = m.group(2)
        if m := re.match(r"# Admin key: (\S+)", line):
            key = m.group(1)
            break
    try:
        yield Emu(env, key, env["ONEDRIVE_BACKUP_GRAPH_URL"].removesuffix("/v1.0"), proc)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        proc.stdout.close()


@dataclass
class ClientRun:
    code: int
    wall: float
    cpu: float  # user + sys of the client process
    output: str


def run_client(emu: Emu, config: Path, *args: str) -> ClientRun:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEDRIVE_BACKUP_")}
    env |= emu.env | {
        "ONEDRIVE_BACKUP_CONFIG_DIR": str(config),
        "ONEDRIVE_BACKUP_PLAIN_TOKEN_CACHE": "1",
    }
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "onedrive_backup", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return ClientRun(proc.returncode, wall, usage.ru_utime + usage.ru_stime, text)


def make_changes(emu: Emu, rng: random.Random, round_no: int) -> tuple[list[dict[str, Any]], int]:
    """100 file changes and the bulk folder renamed; returns (changes, expected downloads)."""
    files = [f for f in emu.admin("GET", "files") if not f["path"].startswith("/Bulk")]
    picked = rng.sample([f for f in files if f["size"] > 0], sum(MIX.values()) - MIX["add"])
    edits = picked[: MIX["edit"]]
    deletes = picked[MIX["edit"] : MIX["edit"] + MIX["delete"]]
    moves = picked[MIX["edit"] + MIX["delete"] :]
    changes: list[dict[str, Any]] = []
    changes += [{"op": "modify_file", "path_or_id": f["id"]} for f in edits]
    changes += [{"op": "delete", "path_or_id": f["id"]} for f in deletes]
    changes += [
        {"op": "move", "path_or_id": f["id"], "new_parent_path": f"/Moved {round_no}"}
        for f in moves
    ]
    changes += [
        {
            "op": "add_file",
            "path": f"/Added {round_no}/new{i:03d}.txt",
            "size": rng.randint(1, 2048),
        }
        for i in range(MIX["add"])
    ]
    bulk = next(f["path"] for f in emu.admin("GET", "files") if f["path"].startswith("/Bulk"))
    changes.append(
        {"op": "rename", "path_or_id": bulk.rsplit("/", 1)[0], "new_name": f"Bulk {round_no}"}
    )
    emu.admin("POST", "changes", changes)
    return changes, MIX["add"] + MIX["edit"]


def deliveries(counters: dict[str, Any]) -> int:
    return sum(counters["full_deliveries"].values())


def requests(counters: dict[str, Any], endpoint: str) -> int:
    return sum(n for k, n in counters["requests"].items() if k.startswith(endpoint + " "))


async def reference(emu: Emu, ids: list[str], delta_url: str) -> float:
    """One delta call (all pages) and the downloads, 8 at a time, with a bare aiohttp client."""
    graph = emu.env["ONEDRIVE_BACKUP_GRAPH_URL"]
    token = emu.admin("POST", "token", {})["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(ssl=emu.ssl(), limit=16)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as s:
        url: str | None = delta_url
        while url:
            async with s.get(url, headers=auth) as r:
                page = await r.json()
            url = page.get("@odata.nextLink")
        queue = list(ids)

        async def worker() -> None:
            while queue:
                item_id = queue.pop()
                async with s.get(f"{graph}/me/drive/items/{item_id}", headers=auth) as r:
                    await r.read()
                async with s.get(
                    f"{graph}/me/drive/items/{item_id}/content",
                    headers=auth,
                    allow_redirects=False,
                ) as r:
                    link = r.headers["location"]
                async with s.get(link) as r:
                    await r.read()

        await asyncio.gather(*(worker() for _ in range(8)))
    return time.perf_counter() - started


def stored_delta_link(backup: Path) -> str:
    import sqlite3  # read-only peek for the reference client: the link the client will use

    db = sqlite3.connect(f"file:{backup}/.onedrive-backup/state.sqlite?mode=ro", uri=True)
    try:
        return str(db.execute("SELECT delta_link FROM cursor").fetchone()[0])
    finally:
        db.close()


def main() -> None:
    print(f"Incremental update ({os.cpu_count()} CPUs, Python {sys.version.split()[0]})")
    keep = os.environ.get("BENCH_UPDATE_DEST")
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="bench-update-"))
    work.mkdir(parents=True, exist_ok=True)
    dest, config = work / "dest", work / "config"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.rmtree(config, ignore_errors=True)
    dest.mkdir()
    args = ("--files", str(FILES), "--min-size", "1", "--max-size", "2048", "--seed", "3")
    try:
        with emulator(*args) as emu:
            emu.admin(
                "POST",
                "changes",
                [
                    {"op": "add_file", "path": f"/Bulk/f{i:04d}.txt", "size": 100}
                    for i in range(BULK)
                ],
            )
            login = run_client(emu, config, "login")
            assert login.code == 0, login.output
            total = len(emu.admin("GET", "files"))
            emu.admin("POST", "counters/reset")
            full = run_client(emu, config, "backup", "--dest", str(dest), "--yes", "--plain")
            assert full.code == 0, full.output[-2000:]
            c = emu.admin("GET", "counters")
            print(
                f"  full backup of {total:,} files: {full.wall:.1f} s wall, "
                f"{full.cpu:.1f} s client CPU, {deliveries(c):,} downloads, "
                f"{requests(c, 'graph.delta')} delta requests"
            )
            backup = next(dest.iterdir())
            rng = random.Random(7)
            for round_no in range(1, ROUNDS + 1):
                delta_url = stored_delta_link(backup)
                _, expected = make_changes(emu, rng, round_no)
                emu.admin("POST", "counters/reset")
                upd = run_client(
                    emu, config, "backup", "--dest", str(dest), "--resume", "latest", "--yes",
                    "--plain",
                )  # fmt: skip
                assert upd.code == 0, upd.output[-2000:]
                c = emu.admin("GET", "counters")
                got = deliveries(c)
                ids = list(c["full_deliveries"])
                ref = asyncio.run(reference(emu, ids, delta_url))
                print(
                    f"  update {round_no} (100 file changes + {BULK:,}-file folder rename): "
                    f"{upd.wall:.2f} s wall, {upd.cpu:.2f} s client CPU; {got} downloads "
                    f"(expected {expected}); {requests(c, 'graph.delta')} delta requests, "
                    f"{sum(c['requests'].values())} requests in all; "
                    f"bare aiohttp reference (delta + same downloads): {ref:.2f} s wall"
                )
                assert got == expected, c["full_deliveries"]
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
