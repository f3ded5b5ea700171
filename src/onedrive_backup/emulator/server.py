"""The Emulator: two HTTPS origins on loopback, served from a background event loop."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import trustme
from aiohttp import web

from onedrive_backup.emulator import admin, download, graph, identity
from onedrive_backup.emulator.counters import Counters
from onedrive_backup.emulator.faults import Faults
from onedrive_backup.emulator.generate import DriveSpec, build_drive
from onedrive_backup.emulator.middleware import emulate
from onedrive_backup.emulator.state import ORIGIN, STATE, State

T = TypeVar("T")
SHUTDOWN_TIMEOUT = 0.5  # stalled downloads must not hold up stop()


@dataclass
class _Origin:
    runner: web.AppRunner
    port: int
    site: web.TCPSite | None = None


class Emulator:
    """A local OneDrive: identity platform + Graph on one origin, downloads on another."""

    def __init__(
        self,
        spec: DriveSpec | None = None,
        client_id: str = "test-client-id",
        *,
        port: int = 0,
        download_port: int = 0,
        host: str = "127.0.0.1",
        faults: dict[str, Any] | None = None,
    ) -> None:
        self.spec = spec or DriveSpec()
        self.client_id = client_id
        self.host = host
        self.drive = build_drive(self.spec)
        self.faults = Faults(seed=self.spec.seed)
        if faults:
            self.faults.update(faults)
        self.counters = Counters()
        self.state = State(self.drive, self.spec, self.faults, self.counters, client_id)
        self._ports = {"graph": port, "download": download_port}
        self._tmp = Path(tempfile.mkdtemp(prefix="onedrive-emulator-"))
        self.ca_path = self._tmp / "emulator-ca.pem"
        self._ssl = self._make_tls()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._origins: dict[str, _Origin] = {}
        self._outage_handle: asyncio.TimerHandle | None = None

    def _make_tls(self) -> ssl.SSLContext:
        ca = trustme.CA(organization_name="onedrive-backup emulator")
        ca.cert_pem.write_to_path(str(self.ca_path))
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        return ctx

    # Addresses ----------------------------------------------------------------------------

    @property
    def tenant(self) -> str:
        return "organizations" if self.spec.drive_type == "business" else "consumers"

    @property
    def graph_origin(self) -> str:
        return self.state.graph_origin

    @property
    def graph_url(self) -> str:
        return f"{self.state.graph_origin}/v1.0"

    @property
    def authority(self) -> str:
        return f"{self.state.graph_origin}/{self.tenant}"

    @property
    def download_origin(self) -> str:
        return self.state.download_origin

    @property
    def admin_key(self) -> str:
        return self.state.admin_key

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only this emulator's CA (for httpx/aiohttp in tests)."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def env(self) -> dict[str, str]:
        """The environment a client needs to use this emulator."""
        return {
            "ONEDRIVE_BACKUP_CLOUD": "custom",
            "ONEDRIVE_BACKUP_AUTHORITY": self.authority,
            "ONEDRIVE_BACKUP_GRAPH_URL": self.graph_url,
            "ONEDRIVE_BACKUP_CA_BUNDLE": str(self.ca_path),
            "ONEDRIVE_BACKUP_CLIENT_ID": self.client_id,
        }

    # Life cycle -----------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Serve from a background thread; returns once both origins are listening."""
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        self._loop = asyncio.new_event_loop()
        started: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._serve, args=(started,), name="onedrive-emulator", daemon=True
        )
        self._thread.start()
        started.result(timeout=30)
        return self

    def _serve(self, started: Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._setup())
        except BaseException as exc:  # report to start() instead of dying silently
            started.set_exception(exc)
            loop.run_until_complete(self._teardown())
            loop.close()
            return
        started.set_result(None)
        loop.run_forever()
        loop.run_until_complete(self._teardown())
        loop.close()

    def _app(self, origin: str) -> web.Application:
        app = web.Application(middlewares=[emulate], client_max_size=1 << 20)
        app[STATE] = self.state
        app[ORIGIN] = origin
        if origin == "graph":
            app[admin.OUTAGE] = self._begin_outage
            identity.add_routes(app)
            graph.add_routes(app)
            admin.add_routes(app)
        else:
            download.add_routes(app)
        return app

    async def _setup(self) -> None:
        for origin in ("graph", "download"):
            runner = web.AppRunner(
                self._app(origin), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
            )
            await runner.setup()
            self._origins[origin] = _Origin(runner, self._ports[origin])
            await self._listen(origin)
        self.state.graph_origin = f"https://{self.host}:{self._origins['graph'].port}"
        self.state.download_origin = f"https://{self.host}:{self._origins['download'].port}"

    async def _listen(self, origin: str) -> None:
        o = self._origins[origin]
        o.site = web.TCPSite(o.runner, self.host, o.port, ssl_context=self._ssl, reuse_address=True)
        await o.site.start()
        server = o.site._server  # the port is known only once bound (port 0)
        assert isinstance(server, asyncio.base_events.Server)
        o.port = server.sockets[0].getsockname()[1]

    async def _teardown(self) -> None:
        if self._outage_handle is not None:
            self._outage_handle.cancel()
        for o in self._origins.values():
            _abort_connections(o.runner, self.state.counters)
            await o.runner.cleanup()
        await asyncio.sleep(0.01)  # let aborted transports close their sockets
        loop = asyncio.get_running_loop()
        await loop.shutdown_asyncgens()
        await loop.shutdown_default_executor()

    def stop(self) -> None:
        """Stop serving and remove the temporary CA; safe to call twice."""
        if self._thread is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._thread = None
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None, "emulator not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    # Outages --------------------------------------------------------------------------------

    def outage(self, seconds: float) -> None:
        """Both origins refuse connections for `seconds` (no listener at all), then return.

        Returns once the listeners are closed; open connections are cut too.
        """
        self._call(self._begin_outage(seconds))

    @property
    def outage_active(self) -> bool:
        return time.monotonic() < self.state.outage_until

    def wait_until_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.outage_active or any(o.site is None for o in self._origins.values()):
            if time.monotonic() > deadline:
                raise TimeoutError("emulator still down")
            time.sleep(0.01)

    async def _begin_outage(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self.state.outage_until = max(self.state.outage_until, time.monotonic() + seconds)
        if self._outage_handle is not None:
            self._outage_handle.cancel()
        for o in self._origins.values():
            if o.site is not None:
                await o.site.stop()
                o.site = None
            _abort_connections(o.runner, self.state.counters)
        delay = self.state.outage_until - time.monotonic()
        self._outage_handle = loop.call_later(delay, lambda: loop.create_task(self._end_outage()))

    async def _end_outage(self) -> None:
        self._outage_handle = None
        for origin, o in self._origins.items():
            if o.site is None:
                await self._listen(origin)

    # Test helpers ---------------------------------------------------------------------------

    def mint_access_token(self, lifetime: float | None = None) -> str:
        """A valid access token without signing in, for tests of layers below auth."""
        return self.state.tokens.mint_access(
            self.faults.access_token_lifetime if lifetime is None else lifetime
        )

    def approve_device_code(self, user_code: str | None = None) -> int:
        """Approve one pending device code (or all); returns how many were approved."""
        return self.state.tokens.approve(user_code)

    def decline_device_code(self, user_code: str | None = None) -> int:
        return self.state.tokens.approve(user_code, state="declined")

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token issued so far now gets invalid_grant (AADSTS70008)."""
        self.state.tokens.revoke_refresh()

    def invalidate_delta_tokens(self) -> None:
        """Every delta and next link issued so far now gets 410 Gone."""
        self.drive.invalidate_delta_tokens()

    def download_url(self, path_or_id: str) -> str:
        """A fresh pre-authenticated link for an item (what /content would redirect to)."""
        from onedrive_backup.emulator.links import mint_link

        return mint_link(self.state, self.drive.resolve(path_or_id).num)


def _abort_connections(runner: web.AppRunner, counters: Counters) -> None:
    """Cut every open connection at once (a TLS close would wait for the peer)."""
    server = runner.server
    for conn in list(server.connections if server else []):
        counters.connection_cut(conn)
        if conn.transport is not None:
            conn.transport.abort()
