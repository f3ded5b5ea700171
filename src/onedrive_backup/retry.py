"""One retry policy for Graph and downloads: throttling pauses everyone, outages are waited out.

`RetryGate` is shared by every worker of a run. Before each request a worker awaits `gate.wait()`;
it returns at once unless the service asked us to back off (429/503/509 + Retry-After), in which
case *all* workers pause until then (throttled calls still count against the limit), or the
network is down, in which case one leader probes with a visible countdown while everyone else
waits, and all continue when it is back. Nothing here fails a file.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp

from onedrive_backup import events
from onedrive_backup.errors import OutageTooLong
from onedrive_backup.events import EventSink

log = logging.getLogger(__name__)

# Statuses that mean "try again later" (rclone retries the same set; graph-facts §5).
THROTTLE_STATUSES = frozenset({429, 503, 509})
SERVER_ERROR_STATUSES = frozenset({500, 502, 504})

# Exceptions that mean the network (not the server) failed us: refused, reset, DNS, TLS,
# a body cut short, or no byte for the read timeout.
NETWORK_ERRORS: tuple[type[Exception], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    asyncio.TimeoutError,
    ConnectionError,
)

Probe = Callable[[str], Awaitable[bool]]


class ProbeThrottled(Exception):
    """A probe was answered with 429/503/509: the origin is up but asked for a pause.

    The pause must be honoured like any other Retry-After (the service counts the probe's
    429 against us too), so a probe raises this instead of simply saying "up".
    """

    def __init__(self, seconds: float | None, status: int) -> None:
        super().__init__(f"probe throttled (HTTP {status})")
        self.seconds = seconds
        self.status = status


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from Retry-After: delta-seconds (may be fractional) or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds < 0:  # NaN or negative
        return 0.0
    return min(seconds, 3600.0)


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 60.0) -> float:
    """Exponential backoff with full jitter: uniform in [base/2, min(cap, base * 2**attempt)]."""
    ceiling = min(cap, base * (2 ** min(attempt, 20)))
    return random.uniform(min(base / 2, ceiling), ceiling)


def origin_of(url: str) -> str:
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


class RetryGate:
    """Shared pause state for all workers of one run."""

    def __init__(
        self,
        emit: EventSink = events.discard,
        *,
        probe: Probe | None = None,
        max_outage: float = 2 * 3600.0,
        probe_cap: float = 30.0,
    ) -> None:
        self._emit = emit
        self._probe = probe
        self.max_outage = max_outage
        self._probe_cap = probe_cap
        self._resume_at = 0.0  # monotonic time before which nobody sends
        self._outage: asyncio.Task[None] | None = None
        self._fatal: OutageTooLong | None = None
        self.throttle_count = 0
        self.outage_count = 0
        self.outage_seconds = 0.0

    # -- throttling -------------------------------------------------------------------------

    def throttled(self, seconds: float, status: int) -> None:
        """The service asked for a pause: everyone waits at least `seconds` from now."""
        self.throttle_count += 1
        until = time.monotonic() + seconds
        if until > self._resume_at:
            self._resume_at = until
            self._emit(events.Throttled(seconds=round(seconds, 3), status=status))
            log.info("throttled (%s): pausing all transfers for %.3f s", status, seconds)

    async def _throttle_pause(self) -> None:
        """Sleep out any throttling pause (not outages): no request goes out inside one."""
        delay = self._resume_at - time.monotonic()
        while delay > 0:
            await asyncio.sleep(delay)
            delay = self._resume_at - time.monotonic()

    async def _probe_up(self, origin: str) -> bool:
        """Probe `origin` (itself a request: never inside a Retry-After pause). A throttled
        answer means the origin is up, and its Retry-After pauses everyone."""
        assert self._probe is not None
        await self._throttle_pause()
        try:
            return await self._probe(origin)
        except ProbeThrottled as t:
            self.throttled(t.seconds if t.seconds is not None else backoff_delay(1), t.status)
            return True

    async def wait(self) -> None:
        """Return when requests may be sent: after any throttling pause and any outage."""
        while True:
            self._raise_if_fatal()
            if self._outage is not None and not self._outage.done():
                await asyncio.shield(self._outage)
                continue
            delay = self._resume_at - time.monotonic()
            if delay <= 0:
                return
            await asyncio.sleep(delay)

    # -- outages ------------------------------------------------------------------------------

    async def network_error(self, url: str, exc: BaseException) -> None:
        """A request failed at the network level: wait until the origin answers again.

        A single reset while the network is fine (probe answers at once) costs no wait here;
        the caller still backs off per request. A real outage makes one leader probe with a
        countdown while every worker waits on it.
        """
        self._raise_if_fatal()
        origin = origin_of(url)
        if self._outage is None or self._outage.done():
            if self._probe is not None and await self._probe_up(origin):
                return
            if self._outage is None or self._outage.done():
                self._outage = asyncio.create_task(self._ride_out(origin, describe(exc)))
        await asyncio.shield(self._outage)
        self._raise_if_fatal()

    async def _ride_out(self, origin: str, reason: str) -> None:
        started = time.monotonic()
        self.outage_count += 1
        delay = 1.0
        while True:
            down_for = time.monotonic() - started
            if down_for >= self.max_outage:
                self._fatal = OutageTooLong(
                    f"The network has been unreachable for {format_duration(down_for)} "
                    f"({reason}); stopping with everything saved.",
                )
                return
            delay = min(delay, max(0.1, self.max_outage - down_for))
            self._emit(
                events.NetworkWaiting(retry_in=round(delay, 1), down_for=down_for, reason=reason)
            )
            log.warning("network down (%s); retrying in %.0f s", reason, delay)
            await asyncio.sleep(delay)
            if self._probe is None or await self._probe_up(origin):
                down_for = time.monotonic() - started
                self.outage_seconds += down_for
                self._emit(events.NetworkRestored(down_for=down_for))
                log.warning("network back after %.1f s", down_for)
                return
            delay = min(delay * 2, self._probe_cap)

    def _raise_if_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal


def make_probe(session: Callable[[], aiohttp.ClientSession], timeout: float = 5.0) -> Probe:
    """A probe that says whether `origin` answers HTTP at all (any status counts as up);
    a throttling answer raises ProbeThrottled so its Retry-After is honoured."""

    async def probe(origin: str) -> bool:
        try:
            async with session().head(
                origin + "/", timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
            ) as response:
                if response.status in THROTTLE_STATUSES:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    raise ProbeThrottled(retry_after, response.status)
                return True
        except NETWORK_ERRORS:
            return False

    return probe


def describe(exc: BaseException) -> str:
    """A short, plain, secret-free description of a network failure (never includes the URL)."""
    text = str(exc).lower()
    if "name or service not known" in text or "getaddrinfo" in text or "nodename" in text:
        return "DNS lookup failed"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "TLS error"
    if "refused" in text:
        return "connection refused"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the transfer was cut off"
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer (timed out)"
    if "reset" in text:
        return "connection reset"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "could not connect"
    return type(exc).__name__


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
