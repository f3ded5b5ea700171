"""MsalTokenSource against the emulator with the real MSAL: single flight, proactive refresh,
dead refresh tokens, transient token-endpoint failures, and re-login in the same process."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from auth_fixtures import SignedIn
from onedrive_backup import auth, events
from onedrive_backup.errors import SignInRequired
from onedrive_backup.graph import GraphClient


def _refresh_grants(signed_in: SignedIn) -> int:
    return int(signed_in.emulator.counters.grants["refresh_token"])


def test_concurrent_401s_cause_exactly_one_refresh(signed_in: SignedIn) -> None:
    seen: list[events.Event] = []
    source = signed_in.token_source(emit=seen.append)

    async def scenario() -> tuple[str, list[str]]:
        first = await source.get()
        before = _refresh_grants(signed_in)
        results = await asyncio.gather(*(source.refresh(first) for _ in range(16)))
        assert _refresh_grants(signed_in) - before == 1
        return first, results

    first, results = asyncio.run(scenario())
    assert len(set(results)) == 1 and results[0] != first
    assert any(isinstance(e, events.TokenRefreshed) for e in seen)


def test_stale_rejection_does_not_refresh_again(signed_in: SignedIn) -> None:
    source = signed_in.token_source()

    async def scenario() -> None:
        old = await source.get()
        new = await source.refresh(old)
        before = _refresh_grants(signed_in)
        assert await source.refresh(old) == new  # a late 401 for the old token
        assert await source.get() == new
        assert _refresh_grants(signed_in) == before

    asyncio.run(scenario())


def test_proactive_refresh_before_expiry(signed_in: SignedIn) -> None:
    signed_in.emulator.faults.access_token_lifetime = 2
    source = signed_in.token_source()

    async def scenario() -> None:
        # The login's token (1 h) is still good; a 401 for it brings a 2 s one.
        token = await source.refresh(await source.get())
        assert 1.0 < source.expires_in <= 2.0
        assert await source.get() == token  # still fresh: no new grant
        await asyncio.sleep(1.6)  # within the margin (a quarter of 2 s) of expiry
        assert await source.get() != token

    asyncio.run(scenario())


def test_revoked_refresh_token_raises_sign_in_required_then_relogin_works(
    signed_in: SignedIn,
) -> None:
    source = signed_in.token_source()

    async def refresh_once() -> str:
        return await source.refresh(await source.get())

    asyncio.run(refresh_once())
    signed_in.emulator.revoke_refresh_tokens()
    before = _refresh_grants(signed_in)
    with pytest.raises(SignInRequired) as info:
        asyncio.run(refresh_once())
    assert "expired or was revoked (AADSTS70008)" in info.value.message
    assert info.value.hint is not None and "onedrive-backup login" in info.value.hint
    with pytest.raises(SignInRequired):  # asking again: MSAL's 400 cache must not matter
        asyncio.run(refresh_once())
    assert _refresh_grants(signed_in) - before <= 2  # one attempt per ask, no storm

    # Sign in again in the same process: the same source picks the new sign-in up at once,
    # although MSAL's throttle cache remembers the invalid_grant for 60 s.
    signed_in.login()
    token = asyncio.run(refresh_once())
    assert token


def test_transient_token_endpoint_failure_is_retried(signed_in: SignedIn) -> None:
    faults = signed_in.emulator.faults
    source = signed_in.token_source(backoff=0.2)
    token = asyncio.run(source.get())
    faults.throttle_targets, faults.throttle_status, faults.retry_after = "identity", 503, 1
    faults.throttle_next = 1
    before = _refresh_grants(signed_in)
    started = time.monotonic()
    new = asyncio.run(source.refresh(token))
    assert new != token
    assert time.monotonic() - started >= 0.9  # Retry-After honoured
    assert _refresh_grants(signed_in) - before >= 1


@pytest.mark.parametrize("status", [429, 503])
def test_three_consecutive_failures_end_the_run(signed_in: SignedIn, status: int) -> None:
    faults = signed_in.emulator.faults
    source = signed_in.token_source(backoff=0.05)
    token = asyncio.run(source.get())
    faults.throttle_targets, faults.throttle_status, faults.retry_after = "identity", status, None
    faults.throttle_next = 100
    counters = signed_in.emulator.counters

    def refused() -> int:
        return sum(n for (_, code), n in counters.requests.items() if code == status)

    before = refused()
    with pytest.raises(auth.TokenRefreshFailed, match="3 times in a row"):
        asyncio.run(source.refresh(token))
    assert refused() - before == 3  # one request per attempt: no retry storm


def test_whoami_identity_through_graph(signed_in: SignedIn) -> None:
    from onedrive_backup.commands.whoami_cmd import fetch_identity, render

    identity = asyncio.run(fetch_identity(signed_in.settings))
    text = render(identity)
    assert identity.username and identity.username in text
    assert identity.drive_type in ("personal", "business")
    assert identity.quota_total and identity.quota_used is not None and "used of" in text


async def _workload(
    signed_in: SignedIn, source: auth.MsalTokenSource, duration: float, workers: int
) -> dict[str, Any]:
    stats: dict[str, Any] = {"ok": 0, "failed": 0, "errors": []}
    # The login's token lives 1 h; drop it so the run starts on the short lifetime.
    await source.refresh(await source.get())
    deadline = time.monotonic() + duration
    async with GraphClient(
        signed_in.settings.endpoints().graph_url, source, ca_bundle=signed_in.settings.ca_bundle
    ) as graph:

        async def worker(n: int) -> None:
            paths = ("/me", "/me/drive", "/me/drive/root/children")
            i = n
            while time.monotonic() < deadline:
                try:
                    await graph.get_json(paths[i % len(paths)])
                    stats["ok"] += 1
                except SignInRequired:
                    raise
                except Exception as exc:  # counted: the assertion says there must be none
                    stats["failed"] += 1
                    stats["errors"].append(repr(exc))
                i += 1

        try:
            async with asyncio.TaskGroup() as group:  # the first SignInRequired stops all
                for n in range(workers):
                    group.create_task(worker(n))
        except BaseExceptionGroup as failures:
            raise failures.exceptions[0] from None
        stats["auth_retries"] = graph.auth_retries
        stats["requests"] = graph.requests
    return stats


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_sixty_second_workload_with_five_second_tokens(signed_in: SignedIn) -> None:
    duration, lifetime, workers = 60.0, 5.0, 16
    signed_in.emulator.faults.access_token_lifetime = lifetime
    source = signed_in.token_source()
    before = _refresh_grants(signed_in)
    before_401 = signed_in.emulator.counters.graph_401
    started = time.monotonic()
    stats = asyncio.run(_workload(signed_in, source, duration, workers))
    elapsed = time.monotonic() - started
    grants = _refresh_grants(signed_in) - before
    print(
        f"\nworkload: {elapsed:.1f}s, {stats['ok']} ok, {stats['failed']} failed, "
        f"{grants} refresh grants, {signed_in.emulator.counters.graph_401 - before_401} 401s, "
        f"{stats['auth_retries']} auth retries"
    )
    assert stats["failed"] == 0, stats["errors"][:5]
    assert stats["ok"] > workers * 10
    expected = elapsed / lifetime
    assert expected / 2 <= grants <= expected * 2 + 2


def test_revocation_mid_workload_stops_with_sign_in_required(signed_in: SignedIn) -> None:
    signed_in.emulator.faults.access_token_lifetime = 2
    source = signed_in.token_source()

    async def scenario() -> None:
        async def revoke_later() -> None:
            await asyncio.sleep(1.0)
            signed_in.emulator.revoke_refresh_tokens()

        revoker = asyncio.create_task(revoke_later())
        try:
            await _workload(signed_in, source, 30.0, 16)
        finally:
            await revoker

    started = time.monotonic()
    with pytest.raises(SignInRequired) as info:
        asyncio.run(scenario())
    assert time.monotonic() - started < 10
    assert "Your sign-in has expired or was revoked (AADSTS70008)" in str(info.value)
