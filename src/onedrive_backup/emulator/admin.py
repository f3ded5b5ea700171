"""The admin API of a standalone emulator: faults, counters, changes, approvals, outages.

Every call needs the admin key (header X-Admin-Key or ?key=), printed when the emulator starts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from onedrive_backup.emulator.errors import json_response
from onedrive_backup.emulator.state import STATE, State

OutageHook = Callable[[float], Coroutine[Any, Any, None]]
OUTAGE: web.AppKey[OutageHook] = web.AppKey("outage")
CHANGE_OPS = ("add_file", "add_folder", "modify_file", "delete", "rename", "move", "set_malware")


def _authorised(st: State, request: web.Request) -> bool:
    given = request.headers.get("X-Admin-Key") or request.query.get("key") or ""
    return hmac.compare_digest(given.encode(), st.admin_key.encode())


async def _body(request: web.Request) -> Any:
    return await request.json() if request.can_read_body else {}


async def handle(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    if not _authorised(st, request):
        return json_response({"error": "admin key required"}, 403)
    name = request.match_info["name"]
    try:
        result = await _dispatch(request, st, name)
    except (KeyError, ValueError, TypeError, FileExistsError, IsADirectoryError) as exc:
        return json_response({"error": f"{type(exc).__name__}: {exc}"}, 400)
    if result is None:
        return json_response({"error": f"unknown admin call {request.method} {name}"}, 404)
    return json_response(result)


async def _dispatch(request: web.Request, st: State, name: str) -> Any:
    post = request.method == "POST"
    if name == "faults":
        if post:
            st.faults.update(await _body(request))
        return st.faults.snapshot()
    if name == "token" and post:  # for benchmarks and scripts that skip sign-in
        lifetime = float((await _body(request)).get("lifetime", st.faults.access_token_lifetime))
        return {"access_token": st.tokens.mint_access(lifetime)}
    if name == "counters":
        return st.counters.snapshot()
    if name == "counters/reset" and post:
        st.counters.reset()
        return {"ok": True}
    if name == "changes" and post:
        return [_apply_change(st, change) for change in await _body(request)]
    if name == "approve" and post:
        return {"approved": st.tokens.approve((await _body(request)).get("user_code"))}
    if name == "revoke" and post:
        st.tokens.revoke_refresh()
        return {"ok": True}
    if name == "invalidate_delta" and post:
        st.drive.invalidate_delta_tokens()
        return {"ok": True}
    if name == "outage" and post:
        seconds = float((await _body(request))["seconds"])
        hook, loop = request.app[OUTAGE], asyncio.get_running_loop()
        # Answer first: the outage cuts every open connection, this one included.
        loop.call_later(0.05, lambda: _keep(loop.create_task(hook(seconds))))
        return {"ok": True, "starts_in": 0.05}
    if name == "files":
        return [
            dataclasses.asdict(v) | {"mtime": v.mtime.isoformat()} for v in st.drive.iter_files()
        ]
    return None


_tasks: set[asyncio.Task[None]] = set()


def _keep(task: asyncio.Task[None]) -> None:
    """Hold a reference so the task is not garbage-collected mid-flight."""
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _apply_change(st: State, change: dict[str, Any]) -> Any:
    args = dict(change)
    op = args.pop("op")
    if op not in CHANGE_OPS:
        raise ValueError(f"unknown op {op!r}")
    if isinstance(args.get("content"), str):
        args["content"] = args["content"].encode()
    result = getattr(st.drive, op)(**args)
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result) | {"mtime": str(getattr(result, "mtime", ""))}
    return {"ok": True}


def add_routes(app: web.Application) -> None:
    app.router.add_route("*", "/_admin/{name:.+}", handle)
