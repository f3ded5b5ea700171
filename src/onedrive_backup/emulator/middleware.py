"""Cross-cutting behaviour of both origins: counting, latency, throttling, injected 5xx."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from onedrive_backup.emulator.errors import graph_error, retry_after_value
from onedrive_backup.emulator.state import ORIGIN, STATE, State

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def endpoint_of(origin: str, request: web.Request) -> str:
    """A short name for counters: graph.delta, identity.token, download.get, ..."""
    path = request.path
    if origin == "download":
        return "download.head" if request.method == "HEAD" else "download.get"
    if path.startswith("/_admin"):
        return "admin"
    if not path.startswith("/v1.0"):
        tail = path.rstrip("/").rsplit("/", 1)[-1]
        return "identity." + ("openid" if tail == "openid-configuration" else tail)
    if "/delta" in path:
        return "graph.delta"
    if path.endswith("/children"):
        return "graph.children"
    if path.endswith("/content"):
        return "graph.content"
    if path.rstrip("/") == "/v1.0/me":
        return "graph.me"
    if path.rstrip("/").endswith(("/drive", "/me/drive")) or path.count("/") == 3:
        return "graph.drive"
    return "graph.item"


def _throttle(st: State, kind: str) -> web.StreamResponse | None:
    """The injected 429/503 or 5xx for this request, if any."""
    f = st.faults
    if f.throttles(kind):
        headers = {}
        if f.retry_after is not None:
            headers["Retry-After"] = retry_after_value(f.retry_after)
            st.counters.retry_after_sent(kind, f.retry_after)
        if f.throttle_status == 503:
            return graph_error(503, "serviceNotAvailable", "Service unavailable.", headers)
        return graph_error(
            429,
            "activityLimitReached",
            "Too many requests.",
            headers,
            inner_code="throttledRequest",
        )
    if kind == "graph" and f.take("graph_5xx_next"):
        st.counters.fault(f"graph_{f.graph_5xx_status}")
        return graph_error(f.graph_5xx_status, "generalException", "An internal error occurred.")
    return None


@web.middleware
async def emulate(request: web.Request, handler: Handler) -> web.StreamResponse:
    st = request.app[STATE]
    origin = request.app[ORIGIN]
    if time.monotonic() < st.outage_until:
        # A connection the outage's cut missed (its TLS handshake was still running, so the
        # server did not list it yet) must not serve requests through the outage either.
        st.counters.connection_cut(request.protocol)
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # aiohttp's own way out for a vanished connection
    if request.path.startswith("/_admin"):
        return await handler(request)
    endpoint = endpoint_of(origin, request)
    kind = endpoint.split(".", 1)[0]
    st.counters.request_started(kind, st.faults.retry_after_grace)
    status = 499  # the client went away before we answered
    try:
        if st.faults.latency > 0:
            await asyncio.sleep(st.faults.latency)
        response = _throttle(st, kind) or await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        st.counters.request_finished(kind, endpoint, status)
