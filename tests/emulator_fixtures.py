"""Fixtures for the local OneDrive emulator: a started Emulator per test, stopped after it.

Also plain-httpx helpers (`graph_client`, `download_client`, `delta_round`) for tests that talk
to the emulator below our own client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from onedrive_backup.emulator import DriveSpec, Emulator

SMALL_DRIVE = DriveSpec(files=60, seed=1, size_range=(1, 64 * 1024))
EmulatorFactory = Callable[..., Emulator]


@pytest.fixture
def emulator_factory() -> Iterator[EmulatorFactory]:
    """Start emulators with a given DriveSpec and fault overrides; all are stopped after."""
    started: list[Emulator] = []

    def make(
        spec: DriveSpec | None = None, client_id: str = "test-client-id", **faults: Any
    ) -> Emulator:
        emu = Emulator(spec=spec or SMALL_DRIVE, client_id=client_id, faults=faults or None)
        started.append(emu)
        return emu.start()

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def emulator(emulator_factory: EmulatorFactory) -> Emulator:
    """A started emulator with a small drive (~60 files, a notebook, zero-byte files)."""
    return emulator_factory()


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
