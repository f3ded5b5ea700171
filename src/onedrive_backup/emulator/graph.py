"""Graph v1.0 drive endpoints: /me, drives, items by id or path, children, delta, content."""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from onedrive_backup.emulator import delta as deltamod
from onedrive_backup.emulator.drive import MALWARE, PACKAGE, Drive, Item, iso
from onedrive_backup.emulator.errors import graph_error, json_response, not_found, unauthorized
from onedrive_backup.emulator.itemjson import render, select
from onedrive_backup.emulator.links import mint_link
from onedrive_backup.emulator.state import STATE, State
from onedrive_backup.emulator.tokens import b64url

MAX_TOP = 1000
INLINE_HASH_BYTES = 4 << 20  # hash bigger batches in a worker thread, off the event loop
_DELTA_FN = re.compile(r"^/delta\(token='?([^')]*)'?\)$")


@dataclass
class Target:
    prefix: str  # "/me/drive" or "/drives/<id>", as the client addressed the drive
    item: Item | None  # None: the drive itself
    suffix: str  # "", "/children", "/content", "/delta", "/delta(token=...)"
    drive: Drive  # the user's own, or another user's drive that shares items with them


def _bearer_ok(st: State, request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and st.tokens.access_valid(token.strip())


def _parse(st: State, raw: str) -> Target | None:
    """Split a raw (still percent-encoded) path after /v1.0 into drive, item and suffix.

    Another user's drive answers only for the items it shares (and what is under them):
    anything else there is "<denied>"."""
    drive: Drive | None = st.drive
    if raw.startswith("/me/drive"):
        prefix, rest = "/me/drive", raw[len("/me/drive") :]
    elif raw.startswith("/drive/") or raw == "/drive":
        prefix, rest = "/drive", raw[len("/drive") :]
    elif raw.startswith("/drives/"):
        drive_part, _, rest = raw[len("/drives/") :].partition("/")
        drive = st.drive_by_id(unquote(drive_part))
        if drive is None:
            return None
        prefix, rest = f"/drives/{drive_part}", "/" + rest if rest else ""
    else:
        return None
    assert drive is not None
    target = _parse_in(drive, prefix, rest)
    foreign = target is not None and drive is not st.drive and target.suffix != "<missing>"
    if foreign and (target is None or target.item is None or not drive.is_shared(target.item)):
        return Target(prefix, None, "<denied>", drive)
    return target


def _parse_in(drive: Drive, prefix: str, rest: str) -> Target | None:
    if rest in ("", "/"):
        return Target(prefix, None, "", drive)
    if rest.startswith("/root"):
        base, tail = drive.root, rest[len("/root") :]
    elif rest.startswith("/items/"):
        ident, sep, tail = rest[len("/items/") :].partition("/")
        ident, colon, path_tail = ident.partition(":")
        tail = (colon + path_tail + sep + tail) if colon else (sep + tail)
        found = drive.by_id(unquote(ident))
        if found is None:
            return Target(prefix, None, "<missing>", drive)
        base = found
    else:
        return None
    if tail.startswith(":"):  # path addressing: root:/a/b:/children, items/{id}:/rel:
        rel, _, after = tail[1:].partition(":")
        found = drive.find(unquote(rel), base)
        if found is None:
            return Target(prefix, None, "<missing>", drive)
        base, tail = found, after
    return Target(prefix, base, tail, drive)


def _fields(request: web.Request) -> set[str] | None:
    raw = request.query.get("$select")
    return {f.strip() for f in raw.split(",") if f.strip()} if raw else None


def _top(request: web.Request, default: int, cap: int) -> int:
    try:
        return max(1, min(int(request.query.get("$top", default)), cap))
    except ValueError:
        return default


async def _hashed(drive: Drive, items: list[Item]) -> None:
    if drive.unhashed_bytes(items) > INLINE_HASH_BYTES:
        await asyncio.get_running_loop().run_in_executor(None, drive.ensure_hashes, items)
    else:
        drive.ensure_hashes(items)


async def _render_many(
    st: State, items: list[Item], fields: set[str] | None, delta: bool, drive: Drive | None = None
) -> list[Any]:
    drive = drive or st.drive
    await _hashed(drive, items)
    with drive.lock:
        return [select(render(st, i, delta=delta, drive=drive), fields) for i in items]


async def handle(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    if not _bearer_ok(st, request):
        return unauthorized()
    if request.method != "GET":
        return graph_error(405, "notSupported", "The emulator is read-only.")
    raw = request.raw_path.split("?", 1)[0][len("/v1.0") :]
    if raw in ("/me", "/me/"):
        return json_response(_me(st))
    target = _parse(st, raw)
    if target is None:
        return graph_error(400, "invalidRequest", f"Resource not found for the segment '{raw}'.")
    if target.suffix == "<missing>":
        return not_found()
    if target.suffix == "<denied>":
        return graph_error(403, "accessDenied", "Access denied.")
    if target.item is None:
        return json_response(_drive_json(st))
    suffix = target.suffix.rstrip("/")
    if suffix == "":
        fields = _fields(request)
        items = await _render_many(st, [target.item], fields, delta=False, drive=target.drive)
        return json_response(items[0])
    if suffix == "/children":
        return await _children(st, request, target)
    if suffix == "/content":
        return _content(st, target.drive, target.item)
    match = _DELTA_FN.match(suffix)
    if suffix == "/delta" or match:
        token = unquote(match.group(1)) if match else request.query.get("token")
        return await _delta(st, request, target, token)
    return graph_error(400, "invalidRequest", f"Unsupported segment '{suffix}'.")


def _me(st: State) -> dict[str, Any]:
    first, _, last = st.spec.user_name.partition(" ")
    return {
        "@odata.context": f"{st.graph_origin}/v1.0/$metadata#users/$entity",
        "id": st.user_id,
        "displayName": st.spec.user_name,
        "givenName": first,
        "surname": last,
        "userPrincipalName": st.spec.user_email,
        "mail": st.spec.user_email,
    }


def _drive_json(st: State) -> dict[str, Any]:
    drive = st.drive
    with drive.lock:
        used = drive.root.size
    return {
        "@odata.context": f"{st.graph_origin}/v1.0/$metadata#drives/$entity",
        "id": drive.id,
        "driveType": drive.drive_type,
        "name": "OneDrive",
        "createdDateTime": iso(drive.root.ctime),
        "lastModifiedDateTime": iso(drive.root.smtime),
        "webUrl": f"https://onedrive.live.com/?cid={drive.id.lower()}",
        "owner": {"user": {"displayName": st.spec.user_name, "id": st.user_id}},
        "quota": {
            "deleted": 0,
            "remaining": max(0, drive.quota_total - used),
            "state": "normal",
            "total": drive.quota_total,
            "used": used,
        },
    }


async def _children(st: State, request: web.Request, target: Target) -> web.StreamResponse:
    assert target.item is not None
    if target.item.children is None:
        return json_response({"value": []})
    top = _top(request, st.faults.children_page_size, MAX_TOP)
    try:
        token = request.query.get("$skiptoken", "MA")
        skip = int(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        return graph_error(400, "invalidRequest", "Invalid $skiptoken.")
    drive = target.drive
    with drive.lock:
        kids = list(target.item.children[skip : skip + top])
        more = skip + top < len(target.item.children)
    body: dict[str, Any] = {
        "@odata.context": f"{st.graph_origin}/v1.0/$metadata#Collection(driveItem)",
        "value": await _render_many(st, kids, _fields(request), delta=False, drive=drive),
    }
    if more:
        query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
        query["$skiptoken"] = b64url(str(skip + top).encode())
        body["@odata.nextLink"] = _link(st, request.raw_path.split("?")[0], query)
    return json_response(body)


def _link(st: State, raw_path: str, query: dict[str, str]) -> str:
    qs = "&".join(f"{quote(k, safe='$')}={quote(v, safe=',*')}" for k, v in query.items())
    return f"{st.graph_origin}{raw_path}" + (f"?{qs}" if qs else "")


def _content(st: State, drive: Drive, item: Item) -> web.StreamResponse:
    shortcut = drive.shortcuts.get(item.num)
    if shortcut is not None:  # a shortcut's content is its target's
        drive, item = shortcut
    if item.flags & MALWARE:
        return graph_error(403, "malwareDetected", "Malware detected in the requested item.")
    if item.children is not None or item.flags & PACKAGE:
        return not_found()
    location = mint_link(st, item.num, st.drives.index(drive))
    return web.Response(status=302, headers={"Location": location})


async def _delta(
    st: State, request: web.Request, target: Target, token: str | None
) -> web.StreamResponse:
    drive = st.drive
    base = f"/v1.0{target.prefix}/root/delta"
    if target.drive is not drive or target.item is not drive.root:
        return graph_error(400, "notSupported", "Delta is only supported on the root.")
    cursor = deltamod.start_cursor(drive, token, st.faults.delta_token_lifetime)
    if cursor is None:
        return _resync(st, base)
    top = _top(request, 200, st.faults.delta_max_top)
    items, after = deltamod.page(drive, cursor, top, st.faults.delta_shuffle)
    query = {k: v for k, v in request.query.items() if k in ("$select", "$top", "$expand")}
    query["token"] = after.encode()
    key = "@odata.deltaLink" if after.kind == "D" else "@odata.nextLink"
    body = {
        "@odata.context": f"{st.graph_origin}/v1.0/$metadata#Collection(driveItem)",
        "value": await _render_many(st, items, _fields(request), delta=True),
        key: _link(st, base, query),
    }
    return json_response(body)


def _resync(st: State, base: str) -> web.StreamResponse:
    return graph_error(
        410,
        "resyncRequired",
        "Resync required. Replace any local items with the server's version (including "
        "deletes) if you're sure that the service was up to date with your local changes "
        "when you last sync'd. Upload any local changes that the server doesn't know about.",
        {"Location": f"{st.graph_origin}{base}"},
        inner_code="resyncChangesApplyDifferences",
    )


def add_routes(app: web.Application) -> None:
    app.router.add_route("*", "/v1.0/{tail:.*}", handle)
