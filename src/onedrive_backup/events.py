"""Typed events the engine emits; the terminal, the GUI and the report are renderers of these.

Events never carry secrets: no tokens, no download URLs. Paths are remote display paths.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Phase = Literal["sign-in", "scan", "space", "download", "finalize", "verify"]


@dataclass(frozen=True)
class Event:
    at: float = field(default_factory=time.time, kw_only=True)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items()}
        data["kind"] = self.kind
        return data


@dataclass(frozen=True)
class BackupOpened(Event):
    """The backup folder this run writes to (new, or the one being resumed)."""

    path: str
    name: str
    resumed: bool


@dataclass(frozen=True)
class PhaseStarted(Event):
    phase: Phase
    detail: str = ""


@dataclass(frozen=True)
class PhaseFinished(Event):
    phase: Phase
    detail: str = ""


@dataclass(frozen=True)
class ScanProgress(Event):
    items_seen: int
    pages: int
    files_selected: int
    bytes_selected: int


@dataclass(frozen=True)
class SpaceChecked(Event):
    needed: int
    free: int
    ok: bool


@dataclass(frozen=True)
class DownloadProgress(Event):
    """Emitted periodically (not per chunk) with cumulative totals for the download phase."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    active: int
    rate: float  # bytes per second over the recent window


@dataclass(frozen=True)
class ItemStarted(Event):
    path: str
    size: int


@dataclass(frozen=True)
class ItemDone(Event):
    path: str
    size: int
    adopted: bool = False  # already on disk and matching: not downloaded again


@dataclass(frozen=True)
class ItemFailed(Event):
    path: str
    reason: str


@dataclass(frozen=True)
class ItemUnverified(Event):
    """Kept, but the server's hash disagrees with the (consistently) delivered bytes."""

    path: str
    reason: str


@dataclass(frozen=True)
class ItemSkipped(Event):
    path: str
    reason: str


@dataclass(frozen=True)
class TokenRefreshed(Event):
    expires_in: float


@dataclass(frozen=True)
class LinkRefreshed(Event):
    path: str


@dataclass(frozen=True)
class Throttled(Event):
    seconds: float
    status: int


@dataclass(frozen=True)
class NetworkWaiting(Event):
    """The network is down; the next probe is in `retry_in` seconds."""

    retry_in: float
    down_for: float
    reason: str


@dataclass(frozen=True)
class NetworkRestored(Event):
    down_for: float


@dataclass(frozen=True)
class Message(Event):
    """A plain-language notice for the user."""

    text: str
    level: Literal["info", "warning", "error"] = "info"


@dataclass(frozen=True)
class RunFinished(Event):
    exit_code: int
    summary: dict[str, Any]


EventSink = Callable[[Event], None]


def discard(_event: Event) -> None:
    """An event sink that ignores everything."""
