"""HTTP client for Microsoft Graph: auth header, retries, throttling, outages, typed errors.

Every request takes its token from the run's TokenSource at send time, so a refresh by any
worker is seen by every later request (the original tool's bug was a stale local header copy).
A 401 InvalidAuthenticationToken triggers one shared refresh and one retry of that request.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp

from onedrive_backup import events
from onedrive_backup.errors import (
    BackupError,
    ItemError,
    NetworkDown,
    ResyncRequired,
    SignInRequired,
    TransientError,
)
from onedrive_backup.events import EventSink
from onedrive_backup.interfaces import TokenSource
from onedrive_backup.retry import (
    NETWORK_ERRORS,
    SERVER_ERROR_STATUSES,
    THROTTLE_STATUSES,
    RetryGate,
    backoff_delay,
    make_probe,
    parse_retry_after,
)
from onedrive_backup.tls import ssl_context

log = logging.getLogger(__name__)

USER_AGENT = "onedrive-backup/0.1 (+https://github.com/onedrive-backup)"
MAX_SERVER_ERROR_ATTEMPTS = 8
# Error codes that mean "this item cannot be had", not "try later".
ITEM_GONE_STATUSES = frozenset({404, 410})


@dataclass(frozen=True)
class Reply:
    """A complete, already-read HTTP answer (small: Graph JSON, redirects, errors)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    reason: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


def graph_error(reply: Reply) -> tuple[str, str]:
    """(code, message) from a Graph error body; tolerant of non-JSON bodies."""
    fallback = (f"http{reply.status}", reply.reason)
    try:
        body = reply.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return fallback
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return (str(err.get("code") or f"http{reply.status}"), str(err.get("message", "")))
    return fallback


def safe_url(url: str) -> str:
    """The URL without its query string: query strings carry delta tokens and tempauth."""
    parts = urlsplit(str(url))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def make_http_client(ca_bundle: Path | None, *, max_connections: int = 64) -> aiohttp.ClientSession:
    """An HTTP session with our TLS trust and timeouts that suit a slow, flaky connection.

    aiohttp rather than httpx: on loopback it moves 3-4x the bytes per CPU second and needs a
    quarter of the time per request (BENCHMARKS.md), and the client must never be what limits
    a backup. Must be called with an event loop running.
    """
    connector = aiohttp.TCPConnector(
        ssl=ssl_context(ca_bundle),
        limit=max_connections,
        limit_per_host=max_connections,
        ttl_dns_cache=60,
        enable_cleanup_closed=True,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=20.0, sock_read=60.0),
        headers={"User-Agent": USER_AGENT},
        trust_env=False,  # REQUESTS_CA_BUNDLE & co. point at unrelated things on users' machines
        auto_decompress=False,
        raise_for_status=False,
    )


class GraphClient:
    """Async Graph client; implements interfaces.GraphLike."""

    def __init__(
        self,
        graph_url: str,
        tokens: TokenSource,
        *,
        ca_bundle: Path | None = None,
        emit: EventSink = events.discard,
        gate: RetryGate | None = None,
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base = graph_url.rstrip("/")
        self.tokens = tokens
        self.emit = emit
        self._ca_bundle = ca_bundle
        self._http = http
        self._own_http = http is None
        self.gate = gate or RetryGate(emit, probe=make_probe(lambda: self.http))
        self.requests = 0
        self.auth_retries = 0

    async def __aenter__(self) -> GraphClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def http(self) -> aiohttp.ClientSession:
        """The session, created on first use (aiohttp needs a running event loop)."""
        if self._http is None:
            self._http = make_http_client(self._ca_bundle)
        return self._http

    async def aclose(self) -> None:
        if self._own_http and self._http is not None:
            await close_session(self._http)
            self._http = None

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith("https://") or path_or_url.startswith("http://"):
            return path_or_url
        return self.base + ("" if path_or_url.startswith("/") else "/") + path_or_url

    async def request(self, method: str, path_or_url: str) -> Reply:
        """Send with the current token; wait out throttling/outages; refresh once on 401.

        Returns any final response that is not transient (2xx, 3xx, 4xx other than 401/429).
        """
        url = self.url(path_or_url)
        server_errors = 0
        refreshed = False
        while True:
            await self.gate.wait()
            try:
                token = await self.tokens.get()
            except NetworkDown as exc:  # the sign-in service is unreachable: an outage
                await self.gate.network_error(exc.url or url, exc)
                continue
            try:
                self.requests += 1
                async with self.http.request(
                    method,
                    url,
                    headers={"Authorization": f"Bearer {token}"},
                    allow_redirects=False,
                ) as resp:
                    response = Reply(
                        resp.status, resp.headers, await resp.read(), resp.reason or ""
                    )
            except NETWORK_ERRORS as exc:
                log.debug("network error on %s %s: %s", method, safe_url(url), type(exc).__name__)
                await self.gate.network_error(url, exc)
                continue
            status = response.status
            if status == 401:
                code, _ = graph_error(response)
                if refreshed:
                    raise SignInRequired(
                        f"Microsoft Graph rejected a freshly refreshed sign-in ({code}).",
                        "Run `onedrive-backup login` to sign in again.",
                    )
                refreshed = True
                self.auth_retries += 1
                try:
                    await self.tokens.refresh(token)
                except NetworkDown as exc:
                    refreshed = False
                    await self.gate.network_error(exc.url or url, exc)
                continue
            if status in THROTTLE_STATUSES:
                wait = parse_retry_after(response.headers.get("Retry-After"))
                self.gate.throttled(
                    wait if wait is not None else backoff_delay(server_errors), status
                )
                server_errors += 1
                continue
            if status in SERVER_ERROR_STATUSES:
                server_errors += 1
                if server_errors >= MAX_SERVER_ERROR_ATTEMPTS:
                    code, message = graph_error(response)
                    raise TransientError(f"Graph kept failing with HTTP {status} ({code}).")
                self.gate.throttled(backoff_delay(server_errors), status)
                continue
            return response

    async def get_json(self, url: str) -> dict[str, Any]:
        return (await self.get_page(url))[0]

    async def get_page(self, url: str) -> tuple[dict[str, Any], bytes]:
        """A JSON object and the body it was read from (the scan keeps the body)."""
        response = await self.request("GET", url)
        if response.status == 410:
            raise ResyncRequired(
                "The change-tracking token expired (HTTP 410); a resync is needed.",
                location=response.headers.get("Location"),
            )
        if response.status >= 300:
            code, message = graph_error(response)
            if response.status in ITEM_GONE_STATUSES or response.status == 403:
                raise ItemError(f"{code}: {message}" if message else code)
            raise BackupError(
                f"Microsoft Graph answered HTTP {response.status} ({code}) "
                f"for {safe_url(self.url(url))}."
            )
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BackupError(
                f"Unreadable answer from Microsoft Graph for {safe_url(url)}."
            ) from exc
        if not isinstance(data, dict):
            raise BackupError(f"Unexpected answer from Microsoft Graph for {safe_url(url)}.")
        return data, response.body

    async def download_link(self, drive_id: str, item_id: str) -> str:
        """A fresh pre-authenticated link for an item's content (the 302 of /content)."""
        path = f"/drives/{quote(drive_id, safe='')}/items/{quote(item_id, safe='')}/content"
        response = await self.request("GET", path)
        if response.status in (301, 302, 303, 307, 308):
            location = response.headers.get("Location")
            if location:
                return location
        if response.status < 300:
            raise ItemError("Graph returned content without a download link")
        code, message = graph_error(response)
        if response.status in ITEM_GONE_STATUSES:
            raise ItemError("deleted in OneDrive since the scan")
        if code == "malwareDetected":
            raise ItemError("OneDrive flagged this file as malware and blocks its download")
        raise ItemError(f"cannot download ({response.status} {code})")

    async def get_item(self, drive_id: str, item_id: str) -> dict[str, Any]:
        """Current metadata of one item (used when a file changed after the scan)."""
        path = f"/drives/{quote(drive_id, safe='')}/items/{quote(item_id, safe='')}"
        return await self.get_json(path)


@dataclass(frozen=True)
class Identity:
    """Who is signed in and their drive, in our own terms."""

    username: str
    display_name: str
    drive_type: str
    quota_used: int | None
    quota_total: int | None


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


async def fetch_identity(graph: GraphClient) -> Identity:
    """Ask Graph who is signed in (/me) and about their drive (/me/drive)."""
    me = await graph.get_json("/me")
    drive = await graph.get_json("/me/drive")
    quota = drive.get("quota") or {}
    return Identity(
        username=str(me.get("userPrincipalName") or me.get("mail") or "?"),
        display_name=str(me.get("displayName") or ""),
        drive_type=str(drive.get("driveType") or "unknown"),
        quota_used=_int_or_none(quota.get("used")),
        quota_total=_int_or_none(quota.get("total")),
    )


async def close_session(session: aiohttp.ClientSession) -> None:
    """Close a session and give SSL transports a moment to shut down (no ResourceWarnings)."""
    await session.close()
    await asyncio.sleep(0)
