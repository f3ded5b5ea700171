"""An outage while the access token needs renewing is waited out, not counted as a failure."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from onedrive_backup import events
from onedrive_backup.emulator import Emulator
from onedrive_backup.graph import GraphClient


def test_token_refresh_during_outage_waits_for_the_network(
    emulator: Emulator, signed_in: Any
) -> None:
    seen: list[events.Event] = []
    tokens = signed_in.token_source(emit=seen.append, max_failures=3, backoff=0.1)
    emulator.faults.access_token_lifetime = 2

    async def scenario() -> dict[str, Any]:
        async with GraphClient(
            signed_in.settings.endpoints().graph_url,
            tokens,
            ca_bundle=signed_in.settings.ca_bundle,
            emit=seen.append,
        ) as graph:
            await tokens.refresh(await tokens.get())  # now holding a 2 s token
            await graph.get_json("/me")
            await asyncio.sleep(2.1)  # the token has expired: the next call must renew it
            emulator.outage(3.0)
            started = time.monotonic()
            me = await graph.get_json("/me")
            assert time.monotonic() - started >= 2.0
            return me

    me = asyncio.run(scenario())
    assert me.get("userPrincipalName") or me.get("mail")
    assert any(isinstance(e, events.NetworkWaiting) for e in seen)
    assert any(isinstance(e, events.NetworkRestored) for e in seen)
    assert tokens.refresh_count >= 2
