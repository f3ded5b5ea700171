"""Plain-httpx helpers for the emulator's own tests."""

from __future__ import annotations

from typing import Any

import httpx

from onedrive_backup.emulator import Emulator


def graph_client(emu: Emulator, **kwargs: Any) -> httpx.Client:
    token = emu.mint_access_token()
    return httpx.Client(
        base_url=emu.graph_url,
        verify=emu.client_ssl_context(),
        headers={"Authorization": f"Bearer {token}"},
        timeout=kwargs.pop("timeout", 5.0),
        **kwargs,
    )


def download_client(emu: Emulator, **kwargs: Any) -> httpx.Client:
    return httpx.Client(
        verify=emu.client_ssl_context(), timeout=kwargs.pop("timeout", 5.0), **kwargs
    )


def delta_round(
    client: httpx.Client, url: str, top: int | None = None
) -> tuple[list[dict[str, Any]], str]:
    """Follow nextLinks to the deltaLink; returns (all items, deltaLink)."""
    items: list[dict[str, Any]] = []
    if top:  # httpx would replace the link's own query with `params`
        url += ("&" if "?" in url else "?") + f"$top={top}"
    while True:
        resp = client.get(url)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        items.extend(body["value"])
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]
