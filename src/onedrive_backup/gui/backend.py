"""The GUI's only doorway into the rest of the tool: sign-in, destinations, the drive tree, runs.

Everything here returns plain data (dicts of str/int/bool) made of our own types, never
tokens, download links or Graph's JSON shapes, because what it returns may reach the page.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from onedrive_backup import auth
from onedrive_backup.config import Settings
from onedrive_backup.errors import BackupError, DestinationError
from onedrive_backup.events import EventSink
from onedrive_backup.selection import Selection

log = logging.getLogger(__name__)

MAX_CHILDREN = 5000  # a folder picker does not need more; keeps a huge folder from stalling


@dataclass(frozen=True)
class DeviceCode:
    verification_uri: str
    user_code: str


def cached_username(settings: Settings) -> str | None:
    """The account stored in the token cache, if any (offline)."""
    accounts = auth.cached_accounts(settings)
    return accounts[0].username if accounts else None


def device_sign_in(
    settings: Settings, on_code: Callable[[DeviceCode], None]
) -> asyncio.Future[str]:
    """Start a device-code sign-in; the future gets the username (or the BackupError).

    MSAL polls synchronously until the code is used or expires, so it runs in a daemon thread
    (not the default executor, which would hold up shutdown for the code's whole lifetime).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def settle(value: str | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value or "?")

    def work() -> None:
        try:
            account = auth.login_device_code(
                settings,
                out=io.StringIO(),
                on_code=lambda uri, code: on_code(DeviceCode(uri, code)),
            )
            loop.call_soon_threadsafe(settle, account.username, None)
        except BaseException as exc:  # handed to the loop: the controller words it
            if not isinstance(exc, BackupError):
                log.exception("Sign-in failed")
            loop.call_soon_threadsafe(settle, None, exc)

    threading.Thread(target=work, name="gui-sign-in", daemon=True).start()
    return future


def sign_out(settings: Settings) -> None:
    auth.logout(settings)


def token_source(
    settings: Settings, emit: EventSink | None = None, *, shared: bool = False
) -> auth.MsalTokenSource:
    if emit is None:
        return auth.MsalTokenSource(settings, shared=shared)
    return auth.MsalTokenSource(settings, shared=shared, emit=emit)


async def identity(settings: Settings, tokens: auth.MsalTokenSource) -> dict[str, Any]:
    """Who is signed in and their drive's quota, as plain values."""
    from dataclasses import asdict

    from onedrive_backup.graph import GraphClient, fetch_identity

    async with GraphClient(
        settings.endpoints().graph_url, tokens, ca_bundle=settings.ca_bundle
    ) as graph:
        return asdict(await fetch_identity(graph))


async def list_folder(
    settings: Settings, tokens: auth.MsalTokenSource, item_id: str | None
) -> list[dict[str, Any]]:
    """The children of a drive folder (the root when `item_id` is None), folders first."""
    from onedrive_backup.graph import GraphClient

    if item_id is None:
        url: str | None = "/me/drive/root/children?$top=500"
    else:
        url = f"/me/drive/items/{quote(item_id, safe='')}/children?$top=500"
    children: list[dict[str, Any]] = []
    async with GraphClient(
        settings.endpoints().graph_url, tokens, ca_bundle=settings.ca_bundle
    ) as graph:
        while url and len(children) < MAX_CHILDREN:
            page = await graph.get_json(url)
            for raw in page.get("value") or []:
                if isinstance(raw, dict):
                    children.append(_child(raw))
            next_link = page.get("@odata.nextLink")
            url = next_link if isinstance(next_link, str) else None
    children.sort(key=lambda c: (not c["folder"], c["name"].casefold()))
    return children


def _child(raw: dict[str, Any]) -> dict[str, Any]:
    folder = raw.get("folder")
    return {
        "id": str(raw.get("id") or ""),
        "name": str(raw.get("name") or ""),
        "folder": isinstance(folder, dict),
        "child_count": int(folder.get("childCount") or 0) if isinstance(folder, dict) else 0,
        "size": int(raw.get("size") or 0) if isinstance(raw.get("size"), int) else 0,
    }


def inspect_destination(path_text: str) -> dict[str, Any]:
    """Validate a destination folder; its free space and the backups already in it."""
    from onedrive_backup.engine import check_destination
    from onedrive_backup.state import find_backups

    text = path_text.strip()
    result: dict[str, Any] = {"path": text, "ok": False, "error": None, "hint": None}
    if not text:
        result["error"] = "Enter the folder to back up into."
        return result
    path = Path(text).expanduser()
    if not path.is_absolute():
        result["error"] = f"{text} is not a full path."
        result["hint"] = "Give the whole path, for example /media/disk/OneDrive or D:\\Backups."
        return result
    result["path"] = str(path)
    try:
        check_destination(path)
    except DestinationError as exc:
        result["error"], result["hint"] = exc.message, exc.hint
        return result
    usage = shutil.disk_usage(path)
    result.update(ok=True, free=usage.free, total=usage.total)
    result["backups"] = [asdict(b) for b in reversed(find_backups(path))]  # newest first
    return result


def backup_summary(dest: Path, name: str) -> dict[str, Any] | None:
    """What the state of one backup in `dest` says (files and bytes done), if it is readable."""
    from onedrive_backup.state import find_backups

    for summary in find_backups(dest):
        if summary.name == name:
            return asdict(summary)
    return None


def make_selection(
    categories: list[str],
    folders: list[str],
    include: list[str],
    exclude: list[str],
    *,
    include_shared: bool = False,
) -> Selection:
    """A validated Selection from the page's choices (all files when nothing is chosen)."""
    return Selection.build(categories, folders, include, exclude, include_shared)


def describe_selection(selection: Selection | None) -> str:
    return selection.describe() if selection is not None else "as stored in the backup"


@dataclass(frozen=True)
class RunInputs:
    """What the page chose; the engine's BackupPlan is made from these."""

    dest: str
    resume: str | None
    selection: Selection | None = None  # None: the selection stored in the backup


async def run_backup(
    settings: Settings,
    inputs: RunInputs,
    emit: EventSink,
    on_backup_dir: Callable[[Path], None],
) -> tuple[int, Path | None, dict[str, Any]]:
    """One engine run; cancelling the awaiting task stops it gracefully (resumable)."""
    from onedrive_backup.engine import BackupPlan, Engine, wants_shared_scope

    plan = BackupPlan(dest=Path(inputs.dest), resume=inputs.resume, selection=inputs.selection)
    tokens = token_source(settings, emit, shared=wants_shared_scope(plan))
    engine = Engine(plan, settings, tokens, emit)
    watcher = asyncio.create_task(_watch_backup_dir(engine, on_backup_dir))
    try:
        result = await engine.run()
    finally:
        watcher.cancel()
        if engine.backup_dir is not None:
            on_backup_dir(engine.backup_dir)
    return result.exit_code, result.backup_dir, result.summary


async def _watch_backup_dir(engine: Any, on_backup_dir: Callable[[Path], None]) -> None:
    """Report the backup folder as soon as the engine has made or opened it."""
    while engine.backup_dir is None:
        await asyncio.sleep(0.1)
    on_backup_dir(engine.backup_dir)


def verify(backup_dir: Path) -> dict[str, Any]:
    """Re-hash every file of a backup against its record (blocking: run it in a thread)."""
    from onedrive_backup.verify import describe_result, verify_backup

    result = verify_backup(backup_dir)
    return {
        "ok": result.ok,
        "checked": result.checked,
        "bytes_checked": result.bytes_checked,
        "problems": len(result.problems),
        "lines": describe_result(result, backup_dir, quick=False, limit=50),
    }


def open_folder(path: Path) -> None:
    """Show a folder in the system's file manager (never a path the page made up)."""
    if not path.is_dir():
        raise BackupError(f"The folder {path} does not exist any more.")
    try:
        if sys.platform == "win32":
            os.startfile(path)  # type: ignore[attr-defined]
        elif sys.platform == "darwin":
            subprocess.Popen(["open", str(path)])
        else:
            subprocess.Popen(
                ["xdg-open", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
    except OSError as exc:
        raise BackupError(
            f"Could not open a file manager ({exc.strerror or exc}).", f"The folder is {path}"
        ) from exc
