"""The download origin: pre-authenticated links with Range, If-Range, HEAD and body faults."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import web

from onedrive_backup.emulator.drive import MALWARE, Drive, Item
from onedrive_backup.emulator.errors import graph_error
from onedrive_backup.emulator.links import DRIVE_SHIFT, parse_link
from onedrive_backup.emulator.names import mime_type
from onedrive_backup.emulator.state import STATE, State

SMALL_BODY = 256 * 1024  # bodies up to this size go out with their headers in one write
RESET_FLUSH_DELAY = 0.05  # let the client read the prefix before the RST discards buffers


@dataclass
class Plan:
    """What one response sends: bytes [start, start+length) and an optional mid-body fault."""

    start: int
    length: int
    action: str | None = None  # reset | truncate | stall
    cut: int = 0  # body bytes sent before the action
    corrupt_at: int = -1  # absolute offset of a wrong byte, -1 for none
    corrupt_xor: int = 0


def _unauthenticated(message: str) -> web.Response:
    return graph_error(401, "unauthenticated", message, inner_code="expiredToken")


def _lookup(st: State, request: web.Request) -> tuple[Drive, Item] | web.Response:
    parsed = parse_link(st, request.match_info["opaque"])
    if parsed is None:
        return _unauthenticated("The download link is invalid.")
    num, issued = parsed
    if time.time() - issued > st.faults.link_lifetime:
        return _unauthenticated("The download link has expired.")
    index, num = num >> DRIVE_SHIFT, num & ((1 << DRIVE_SHIFT) - 1)
    drives = st.drives
    if index >= len(drives):
        return _unauthenticated("The download link is invalid.")
    drive = drives[index]
    with drive.lock:
        item = drive.items[num] if num < len(drive.items) else None
        if item is None or item.deleted or item.children is not None:
            return graph_error(404, "itemNotFound", "The resource could not be found.")
        if item.flags & MALWARE:
            return graph_error(403, "malwareDetected", "Malware detected in the requested item.")
    return drive, item


def _parse_range(header: str, size: int) -> tuple[int, int] | None | str:
    """(start, length) for a single byte range; None when absent/ignored; "416" if unsatisfiable."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None  # multiple ranges: serve the whole file, as a server may
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            n = int(last)
            return (max(0, size - n), min(n, size)) if n > 0 else "416"
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "416"
    return start, end - start + 1


def _plan(st: State, item_id: str, size: int, start: int, length: int) -> Plan:
    f = st.faults
    plan = Plan(start, length)
    if length > 1:
        if f.take("reset_next") or f.chance(f.reset_rate):
            plan.action, plan.cut = "reset", min(f.reset_after_bytes, length // 2)
        elif f.take("truncate_next"):
            cut = f.truncate_after_bytes if f.truncate_after_bytes is not None else length // 2
            plan.action, plan.cut = "truncate", max(0, min(cut, length - 1))
        elif f.take("stall_next"):
            plan.action, plan.cut = "stall", min(f.stall_after_bytes, length // 2)
        if plan.action:
            st.counters.fault(plan.action)
    mode = f.corrupt_items.get(item_id)
    if mode is None and length > 0 and f.take("corrupt_next"):
        mode = f.corrupt_mode
    if mode == "consistent" and start <= size // 2 < start + length:
        plan.corrupt_at, plan.corrupt_xor = size // 2, 0xA5
    elif mode == "random" and length > 0:
        plan.corrupt_at = start + f.rng_int(length)
        plan.corrupt_xor = 1 + f.rng_int(255)
    if plan.corrupt_at >= 0:
        st.counters.fault("corrupt")
    return plan


async def handle(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    if "Authorization" in request.headers:
        st.counters.auth_header_on_download()
    found = _lookup(st, request)
    if isinstance(found, web.Response):
        return found
    drive, item = found
    st.counters.connection_reused(request.protocol)
    with drive.lock:
        size, item_id = item.size, drive.item_id(item)
        etag, ctag = drive.etag(item), drive.ctag(item)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Type": mime_type(item.name),
        "Cache-Control": "no-cache",
    }
    start, length, status = 0, size, 200
    want = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if want and (if_range is None or if_range in (etag, ctag)):
        parsed = _parse_range(want, size)
        if parsed == "416":
            headers["Content-Range"] = f"bytes */{size}"
            return graph_error(
                416,
                "invalidRange",
                "The requested range is not satisfiable.",
                headers={"Content-Range": f"bytes */{size}"},
            )
        if isinstance(parsed, tuple):
            start, length = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    if request.method == "HEAD":
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = length
        await resp.prepare(request)
        return resp
    plan = _plan(st, item_id, size, start, length)
    if length <= SMALL_BODY and plan.action is None:
        return _small(request, st, drive, item, item_id, plan, status, headers)
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = length
    await resp.prepare(request)
    await _send(request, resp, st, drive, item, item_id, plan)
    return resp


def _small(
    request: web.Request,
    st: State,
    drive: Drive,
    item: Item,
    item_id: str,
    plan: Plan,
    status: int,
    headers: dict[str, str],
) -> web.Response:
    """Headers and body in one write: small files are latency-bound, not bandwidth-bound."""
    body = b"".join(bytes(p) for p in _pieces(drive, item, plan))
    whole = plan.start + plan.length == item.size
    _count(request, st, item_id, len(body), whole, plan.start == 0)
    return web.Response(body=body, status=status, headers=headers)


def _pieces(drive: Drive, item: Item, plan: Plan) -> Iterator[bytes | memoryview]:
    """The body in chunks, split at the fault cut and with the corrupted byte applied."""
    pos = plan.start
    for chunk in drive.chunks(item, plan.start, plan.length):
        n = len(chunk)
        if pos <= plan.corrupt_at < pos + n:
            buf = bytearray(chunk)
            buf[plan.corrupt_at - pos] ^= plan.corrupt_xor
            chunk = buf  # type: ignore[assignment]
        rel = pos - plan.start
        if plan.action and rel < plan.cut < rel + n:
            yield chunk[: plan.cut - rel]
            yield chunk[plan.cut - rel :]
        else:
            yield chunk
        pos += n


async def _send(
    request: web.Request,
    resp: web.StreamResponse,
    st: State,
    drive: Drive,
    item: Item,
    item_id: str,
    plan: Plan,
) -> int:
    """Write the body; returns the bytes sent before the client left or a fault cut it.

    Bytes and deliveries are counted *before* each write, so a test that has just read the
    last byte already sees them; a failed write takes its count back.
    """
    sent = 0
    whole = plan.start + plan.length == item.size
    if plan.length == 0:  # a zero-byte file: the empty body is the whole file
        _count(request, st, item_id, 0, whole, True)
    try:
        for piece in _pieces(drive, item, plan):
            if plan.action and sent == plan.cut:
                if await _act(request, st, plan):
                    return sent
                plan.action = None
            n = len(piece)
            last = sent + n == plan.length
            done = last and whole
            _count(request, st, item_id, n, done, plan.start == 0)
            try:
                await resp.write(piece)
            except (ConnectionError, OSError):
                _count(request, st, item_id, -n, done, plan.start == 0, undo=True)
                raise
            sent += n
        if plan.action and sent == plan.cut:
            await _act(request, st, plan)
    except (ConnectionError, OSError):
        pass
    return sent


def _count(
    request: web.Request,
    st: State,
    item_id: str,
    n: int,
    complete: bool,
    from_zero: bool,
    undo: bool = False,
) -> None:
    st.counters.add_bytes(item_id, n)
    if complete:
        st.counters.delivered(
            item_id, from_zero=from_zero, n=-1 if undo else 1, conn=request.protocol
        )


async def _act(request: web.Request, st: State, plan: Plan) -> bool:
    """Carry out a mid-body fault; True if the connection is now gone."""
    transport = request.transport
    if plan.action == "stall":
        await asyncio.sleep(st.faults.stall_seconds)
        return False
    if transport is None:
        return True
    if plan.action == "truncate":
        transport.close()  # flushes what was written, then a clean TLS close and FIN
        return True
    await asyncio.sleep(RESET_FLUSH_DELAY)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    st.counters.connection_cut(request.protocol)
    transport.abort()  # with SO_LINGER 0: a real RST
    return True


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dl/{opaque}", handle)  # aiohttp answers HEAD through GET routes
