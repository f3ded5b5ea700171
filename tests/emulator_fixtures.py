"""Fixtures for the local OneDrive emulator: a started Emulator per test, stopped after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

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
