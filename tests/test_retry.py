"""Unit tests of the shared retry policy (pure logic; the HTTP behaviour is tested end to end)."""

from __future__ import annotations

import asyncio
import time

from onedrive_backup import events
from onedrive_backup.errors import OutageTooLong
from onedrive_backup.retry import (
    RetryGate,
    backoff_delay,
    describe,
    origin_of,
    parse_retry_after,
)


def test_retry_after_fractional_and_integer() -> None:
    assert parse_retry_after("2.128") == 2.128
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("999999") == 3600.0


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    header = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 30))
    wait = parse_retry_after(header, now=now)
    assert wait is not None and 29 <= wait <= 31


def test_backoff_grows_and_is_capped() -> None:
    for attempt in range(30):
        d = backoff_delay(attempt, base=0.5, cap=60)
        assert 0.25 <= d <= 60
    assert max(backoff_delay(1) for _ in range(200)) <= 1.0


def test_origin_strips_path_and_query() -> None:
    assert origin_of("https://127.0.0.1:8443/dl/x?tempauth=secret") == "https://127.0.0.1:8443"


def test_describe_never_leaks_url() -> None:
    exc = OSError("failed to connect https://host/dl?tempauth=SECRET: refused")
    assert "SECRET" not in describe(exc)


def test_throttle_pauses_every_waiter() -> None:
    seen: list[events.Event] = []

    async def scenario() -> list[float]:
        gate = RetryGate(seen.append)
        gate.throttled(0.3, 429)
        start = time.monotonic()

        async def waiter() -> float:
            await gate.wait()
            return time.monotonic() - start

        return list(await asyncio.gather(*(waiter() for _ in range(5))))

    waits = asyncio.run(scenario())
    assert all(w >= 0.29 for w in waits)
    assert [e for e in seen if isinstance(e, events.Throttled)][0].seconds == 0.3


def test_outage_is_waited_out_by_one_prober() -> None:
    probes: list[str] = []
    seen: list[events.Event] = []

    async def scenario() -> None:
        up_at = time.monotonic() + 1.5

        async def probe(origin: str) -> bool:
            probes.append(origin)
            return time.monotonic() >= up_at

        gate = RetryGate(seen.append, probe=probe, probe_cap=0.5)
        await asyncio.gather(
            *(gate.network_error("https://h:1/x", ConnectionError("refused")) for _ in range(8))
        )

    asyncio.run(scenario())
    assert any(isinstance(e, events.NetworkWaiting) for e in seen)
    assert any(isinstance(e, events.NetworkRestored) for e in seen)
    # One immediate probe per caller at most, then a single leader probing on a schedule.
    assert len(probes) < 8 + 6


def test_outage_longer_than_limit_stops() -> None:
    async def scenario() -> None:
        async def probe(origin: str) -> bool:
            return False

        gate = RetryGate(probe=probe, max_outage=0.5, probe_cap=0.2)
        await gate.network_error("https://h:1/", ConnectionError("refused"))

    try:
        asyncio.run(scenario())
    except OutageTooLong as exc:
        assert "unreachable" in str(exc)
    else:
        raise AssertionError("expected OutageTooLong")


def test_describe_is_plain_words() -> None:
    import aiohttp

    assert describe(aiohttp.ClientPayloadError("Response payload is not completed: <...>")) == (
        "the transfer was cut off"
    )
    assert describe(TimeoutError()) == "no answer (timed out)"
    assert describe(OSError("[Errno -2] Name or service not known")) == "DNS lookup failed"
    assert describe(ConnectionResetError("Connection reset by peer")) == "connection reset"
