"""The aiohttp app: static pages, a JSON API over the Controller, and the event stream.

Handlers translate HTTP to Controller calls and back; they hold no backup logic and never
see tokens. `GuiServer` binds 127.0.0.1 only; `ServerThread` runs one in a background
thread (for tests, and anywhere the caller's thread must stay free).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import socket
import threading
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from onedrive_backup.config import Settings
from onedrive_backup.errors import BackupError, SignInRequired
from onedrive_backup.gui.controller import Controller, sse_message
from onedrive_backup.gui.security import SECURITY_HEADERS, Guard
from onedrive_backup.redact import redact

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
HEARTBEAT = 15.0  # seconds between keep-alive comments on an idle event stream
MAX_BODY = 64 * 1024
STATIC_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".html": "text/html",
}
CONTROLLER = web.AppKey("controller", Controller)
GUARD = web.AppKey("guard", Guard)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _static_dir() -> Path:
    return Path(str(resources.files("onedrive_backup.gui") / "static"))


def _error(exc: BackupError) -> web.Response:
    status = 401 if isinstance(exc, SignInRequired) else 400
    body = {"error": {"message": redact(exc.message), "hint": redact(exc.hint or "") or None}}
    return web.json_response(body, status=status)


def _ok(data: Any = None) -> web.Response:
    return web.json_response({"ok": True, "data": data})


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    try:
        data = json.loads(await request.text() or "{}")
    except ValueError as exc:
        raise web.HTTPBadRequest(text="The request body is not JSON.") from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="The request body must be a JSON object.")
    return data


def api(fn: Callable[[Controller, dict[str, Any]], Awaitable[Any]]) -> Handler:
    """A POST handler: JSON in, JSON out, BackupErrors as their sentences."""

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        try:
            return _ok(await fn(request.app[CONTROLLER], body))
        except BackupError as exc:
            return _error(exc)

    return handler


# --- handlers -------------------------------------------------------------------------------


async def index(request: web.Request) -> web.StreamResponse:
    page = (_static_dir() / "index.html").read_text(encoding="utf-8")
    token = html.escape(request.app[GUARD].csrf_token, quote=True)
    return web.Response(text=page.replace("{{CSRF_TOKEN}}", token), content_type="text/html")


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    base = _static_dir().resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base) or not path.is_file() or path.suffix not in STATIC_TYPES:
        raise web.HTTPNotFound()
    return web.Response(body=path.read_bytes(), content_type=STATIC_TYPES[path.suffix])


async def status(request: web.Request) -> web.StreamResponse:
    controller = request.app[CONTROLLER]
    return web.json_response({**controller.snapshot(), "log": controller.log_lines()})


async def browse(request: web.Request) -> web.StreamResponse:
    item_id = request.query.get("id") or None
    try:
        return _ok(await request.app[CONTROLLER].browse(item_id))
    except BackupError as exc:
        return _error(exc)


async def event_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the status now, the recent log, then every change as it happens."""
    controller = request.app[CONTROLLER]
    response = web.StreamResponse(
        headers={**SECURITY_HEADERS, "Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    sub = controller.subscribe()
    try:
        await response.write(sse_message("status", controller.snapshot()).encode())
        await response.write(sse_message("backlog", controller.log_lines()).encode())
        while not sub.stale:
            try:
                message = await asyncio.wait_for(sub.queue.get(), HEARTBEAT)
            except TimeoutError:
                message = ": keep-alive\n\n"
            if message is None:
                break
            await response.write(message.encode())
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        controller.unsubscribe(sub)
    return response


async def _start_sign_in(c: Controller, _body: dict[str, Any]) -> Any:
    c.start_sign_in()


async def _sign_out(c: Controller, _body: dict[str, Any]) -> Any:
    c.sign_out()


async def _destination(c: Controller, body: dict[str, Any]) -> Any:
    path = body.get("path")
    if not isinstance(path, str):
        raise web.HTTPBadRequest(text="path must be text.")
    return await c.set_destination(path)


async def _start(c: Controller, body: dict[str, Any]) -> Any:
    c.start_backup(body)


async def _stop(c: Controller, _body: dict[str, Any]) -> Any:
    c.stop()


async def _pause(c: Controller, _body: dict[str, Any]) -> Any:
    c.stop(pause=True)


async def _resume(c: Controller, _body: dict[str, Any]) -> Any:
    c.resume()


async def _dismiss(c: Controller, _body: dict[str, Any]) -> Any:
    c.dismiss()


async def _verify(c: Controller, _body: dict[str, Any]) -> Any:
    c.verify()


async def _open_folder(c: Controller, _body: dict[str, Any]) -> Any:
    c.open_backup_folder()


def make_app(controller: Controller, guard: Guard) -> web.Application:
    app = web.Application(middlewares=[guard.middleware()], client_max_size=MAX_BODY)
    app[CONTROLLER] = controller
    app[GUARD] = guard
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/events", event_stream)
    app.router.add_get("/api/browse", browse)
    posts = {
        "/api/signin/start": _start_sign_in,
        "/api/signin/signout": _sign_out,
        "/api/destination": _destination,
        "/api/backup/start": _start,
        "/api/backup/stop": _stop,
        "/api/backup/pause": _pause,
        "/api/backup/resume": _resume,
        "/api/backup/dismiss": _dismiss,
        "/api/backup/open-folder": _open_folder,
        "/api/backup/verify": _verify,
    }
    for path, fn in posts.items():
        app.router.add_post(path, api(fn))
    return app


class GuiServer:
    """The GUI on 127.0.0.1:`port` (0: a free port), driving one Controller."""

    def __init__(
        self,
        settings: Settings,
        *,
        port: int = 0,
        opener: Callable[[Path], None] | None = None,
    ) -> None:
        kwargs = {"opener": opener} if opener is not None else {}
        self.controller = Controller(settings, **kwargs)
        self.guard = Guard()
        self._port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The launch URL: carries the secret, trades it for a cookie on first load."""
        return self.guard.launch_url()

    @property
    def port(self) -> int:
        return self.guard.port

    async def start(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((HOST, self._port))
        except OSError:
            sock.close()
            raise
        self.guard.port = int(sock.getsockname()[1])
        try:
            await self.controller.start()
            self._runner = web.AppRunner(
                make_app(self.controller, self.guard), access_log=None, shutdown_timeout=2.0
            )
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
        except BaseException:
            sock.close()
            await self.close()
            raise
        return self.url

    async def close(self) -> None:
        await self.controller.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class ServerThread:
    """A GuiServer on its own event loop in a background thread."""

    def __init__(self, server: GuiServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gui", daemon=True)

    def start(self) -> str:
        self._thread.start()
        url: str = self.call(self.server.start())
        return url

    def call(self, coro: Awaitable[Any], timeout: float = 30.0) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""

        async def wrap() -> Any:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrap(), self._loop).result(timeout)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self.call(self.server.close())
        self.call(self._cancel_leftovers())
        self.call(self._loop.shutdown_asyncgens())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    @staticmethod
    async def _cancel_leftovers() -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
