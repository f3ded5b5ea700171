"""Fault knobs: mutable from any thread, read by the servers on every request.

Deterministic `*_next` counters are consumed one per matching request; `*_rate` knobs draw
from a seeded RNG so a failing run can be replayed.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, fields
from typing import Any

THROTTLE_TARGETS = ("graph", "download", "both", "identity", "all")
CORRUPT_MODES = ("consistent", "random")


@dataclass
class Faults:
    """Every knob the emulator offers; assigning a field takes effect on the next request."""

    # Lifetimes (seconds).
    access_token_lifetime: float = 3600.0
    link_lifetime: float = 3600.0
    device_code_lifetime: int = 900
    delta_token_lifetime: float | None = None  # None: delta links never expire
    # Sign-in.
    device_poll_interval: int = 1  # MSAL sleeps this many whole seconds between polls
    auto_approve: bool = True  # approve a device code on its second poll
    # Every response.
    latency: float = 0.0
    # Throttling (429/503 with Retry-After).
    throttle_next: int = 0
    throttle_rate: float = 0.0
    throttle_status: int = 429
    retry_after: float | None = 1.0  # sent as given ("2.128"); None: no header
    throttle_targets: str = "graph"  # graph | download | both | identity | all
    retry_after_grace: float = 0.05  # requests already in flight when a 429 went out
    # Graph server errors.
    graph_5xx_next: int = 0
    graph_5xx_status: int = 500
    # Mid-body failures on the download origin.
    reset_next: int = 0
    reset_rate: float = 0.0
    reset_after_bytes: int = 65536
    truncate_next: int = 0
    truncate_after_bytes: int | None = None  # None: half of what the response should carry
    stall_next: int = 0
    stall_seconds: float = 5.0
    stall_after_bytes: int = 65536
    # Corruption: {item_id: "consistent" | "random"}; corrupt_next uses corrupt_mode.
    corrupt_items: dict[str, str] = field(default_factory=dict)
    corrupt_next: int = 0
    corrupt_mode: str = "random"
    # Delta.
    delta_shuffle: bool = True  # let children come before their parents, as Graph does
    delta_max_top: int = 1000
    children_page_size: int = 200
    # Seed for the *_rate draws.
    seed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def take(self, name: str) -> bool:
        """Consume one unit of the `<name>_next` counter; True if there was one."""
        if getattr(self, name) <= 0:  # the common case: no lock on the hot path
            return False
        with self._lock:
            left: int = getattr(self, name)
            if left <= 0:
                return False
            setattr(self, name, left - 1)
            return True

    def chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def rng_int(self, upper: int) -> int:
        with self._lock:
            return self._rng.randrange(max(1, upper))

    def throttles(self, origin: str) -> bool:
        """Whether this request to `origin` (graph | download | identity) gets throttled."""
        targets = self.throttle_targets
        hit = targets == "all" or targets == origin or (targets == "both" and origin != "identity")
        if not hit:
            return False
        return self.take("throttle_next") or self.chance(self.throttle_rate)

    def update(self, values: dict[str, Any]) -> None:
        """Set knobs from a JSON object (the admin API); unknown names raise KeyError."""
        known = {f.name for f in fields(self) if not f.name.startswith("_")}
        for name in values:
            if name not in known:
                raise KeyError(name)
        with self._lock:
            for name, value in values.items():
                setattr(self, name, value)
            if "seed" in values:
                self._rng.seed(self.seed)

    def snapshot(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
