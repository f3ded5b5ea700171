"""Emulator throughput: small files per second and MB/s of one large file over loopback TLS.

The emulator runs as a separate process (`python -m onedrive_backup.emulator`), as it would
for a client, so server and client each get a core. Each small file costs three requests:
metadata, /content (302) and the download of the pre-authenticated link.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx

SMALL_FILES = int(os.environ.get("BENCH_SMALL_FILES", "3000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
LARGE_SIZE = int(os.environ.get("BENCH_LARGE_BYTES", str(1 << 30)))


@dataclass
class Server:
    graph_url: str
    ca: str
    key: str
    proc: subprocess.Popen[str]

    def ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)


@contextmanager
def emulator(*args: str) -> Iterator[Server]:
    cmd = [sys.executable, "-m", "onedrive_backup.emulator", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    found: dict[str, str] = {}
    for line in proc.stdout:
        if m := re.match(r"export (\w+)=(\S+)", line):
            found[m.group(1)] = m.group(2)
        if m := re.match(r"# Admin key: (\S+)", line):
            found["key"] = m.group(1)
            break
    try:
        yield Server(
            found["ONEDRIVE_BACKUP_GRAPH_URL"],
            found["ONEDRIVE_BACKUP_CA_BUNDLE"],
            found["key"],
            proc,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()


def setup(server: Server) -> tuple[str, list[tuple[str, int]]]:
    """An access token and (id, size) of every file, via the admin API."""
    origin = server.graph_url.removesuffix("/v1.0")
    headers = {"X-Admin-Key": server.key}
    with httpx.Client(base_url=origin, verify=server.ssl(), timeout=600) as c:
        token = c.post("/_admin/token", json={}, headers=headers).json()["access_token"]
        files = [(f["id"], f["size"]) for f in c.get("/_admin/files", headers=headers).json()]
    return token, files


Fetch = Callable[[str, dict[str, str], bool], Awaitable[tuple[int, dict[str, str], int]]]


async def small_files(fetch: Fetch, server: Server, token: str, ids: list[str]) -> float:
    auth = {"Authorization": f"Bearer {token}"}
    queue = list(reversed(ids))

    async def worker() -> None:
        while queue:
            item_id = queue.pop()
            status, _, _ = await fetch(f"{server.graph_url}/me/drive/items/{item_id}", auth, True)
            assert status == 200
            url = f"{server.graph_url}/me/drive/items/{item_id}/content"
            status, headers, _ = await fetch(url, auth, True)
            assert status == 302
            status, _, n = await fetch(headers["location"], {}, True)
            assert status == 200 and n == 1024, (status, n)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return len(ids) / (time.perf_counter() - started)


async def large_file(fetch: Fetch, server: Server, token: str, item_id: str, size: int) -> float:
    auth = {"Authorization": f"Bearer {token}"}
    _, headers, _ = await fetch(f"{server.graph_url}/me/drive/items/{item_id}/content", auth, True)
    started = time.perf_counter()
    _, _, n = await fetch(headers["location"], {}, False)
    assert n == size
    return size / (time.perf_counter() - started) / 1e6


def httpx_fetch(client: httpx.AsyncClient) -> Fetch:
    async def fetch(
        url: str, headers: dict[str, str], small: bool
    ) -> tuple[int, dict[str, str], int]:
        async with client.stream("GET", url, headers=headers) as resp:
            n = 0
            async for chunk in resp.aiter_raw(1 << 20):
                n += len(chunk)
            return resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, n

    return fetch


def aiohttp_fetch(session: aiohttp.ClientSession) -> Fetch:
    async def fetch(
        url: str, headers: dict[str, str], small: bool
    ) -> tuple[int, dict[str, str], int]:
        async with session.get(url, headers=headers, allow_redirects=False) as resp:
            n = 0
            async for chunk in resp.content.iter_chunked(1 << 20):
                n += len(chunk)
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, n

    return fetch


async def run_client(
    name: str, server: Server, token: str, work: Callable[[Fetch], Awaitable[Any]]
) -> Any:
    if name == "httpx":
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(verify=server.ssl(), limits=limits, timeout=600) as client:
            return await work(httpx_fetch(client))
    connector = aiohttp.TCPConnector(ssl=server.ssl(), limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await work(aiohttp_fetch(session))


def main() -> None:
    print(f"Emulator throughput ({os.cpu_count()} CPUs, Python {sys.version.split()[0]})")
    small_args = ("--files", str(SMALL_FILES), "--min-size", "1024", "--max-size", "1024")
    with emulator(*small_args, "--no-notebook", "--zero-byte-files", "0") as server:
        token, files = setup(server)
        ids = [i for i, size in files if size == 1024]
        for name in ("httpx", "aiohttp"):
            for _ in range(2):  # the first round also warms connections and hashes
                rate = asyncio.run(
                    run_client(name, server, token, lambda f: small_files(f, server, token, ids))
                )
            print(f"  small 1 KiB files, {CONCURRENCY} concurrent, {name}: {rate:,.0f} files/s")
    with emulator("--files", "1", "--large-file", str(LARGE_SIZE)) as server:
        token, files = setup(server)
        item_id, size = max(files, key=lambda f: f[1])
        for name in ("httpx", "aiohttp"):
            mbps = asyncio.run(
                run_client(
                    name, server, token, lambda f: large_file(f, server, token, item_id, size)
                )
            )
            print(f"  one {size / (1 << 30):.2f} GiB file, {name}: {mbps:,.0f} MB/s")


if __name__ == "__main__":
    main()
