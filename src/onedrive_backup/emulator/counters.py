"""What clients did, for tests to assert on behaviour: thread-safe, resettable, JSON-able."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any


class Counters:
    """Request, byte, delivery and grant counts, plus Retry-After and concurrency checks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests: Counter[tuple[str, int]] = Counter()
            self.bytes_served: Counter[str] = Counter()
            self.complete_deliveries: Counter[str] = Counter()
            self.full_deliveries: Counter[str] = Counter()
            self.download_auth_headers = 0
            self.retry_after_violations = 0
            self.retry_after_violations_by_origin: Counter[str] = Counter()
            self.inflight: Counter[str] = Counter()
            self.peak_inflight: Counter[str] = Counter()
            self.grants: Counter[str] = Counter()
            self.graph_401 = 0
            self.links_issued = 0
            self.throttled = 0
            self.faults_injected: Counter[str] = Counter()
            # connection -> complete deliveries on it that the client has not yet been seen
            # to read (it has not sent its next request on that connection)
            # (keyed by id(): aiohttp's handlers take no weak references; a recycled id is
            # cleared by the first request on the new connection)
            self._unconfirmed: dict[int, list[tuple[str, bool]]] = {}
            # origin -> (time the last Retry-After was sent, time it ends)
            self._retry_windows: dict[str, tuple[float, float]] = {}

    # Requests ---------------------------------------------------------------------------

    def request_started(self, origin: str, grace: float) -> None:
        """Count in-flight requests and any arrival inside a Retry-After window."""
        now = time.monotonic()
        with self._lock:
            self.inflight[origin] += 1
            if self.inflight[origin] > self.peak_inflight[origin]:
                self.peak_inflight[origin] = self.inflight[origin]
            window = self._retry_windows.get(origin)
            # Requests sent before the client could have seen the 429 are not violations.
            if window and window[0] + grace < now < window[1]:
                self.retry_after_violations += 1
                self.retry_after_violations_by_origin[origin] += 1

    def request_finished(self, origin: str, endpoint: str, status: int) -> None:
        with self._lock:
            self.inflight[origin] -= 1
            self.requests[(endpoint, status)] += 1
            if status == 401 and origin == "graph":
                self.graph_401 += 1

    def retry_after_sent(self, origin: str, seconds: float) -> None:
        now = time.monotonic()
        with self._lock:
            self.throttled += 1
            self._retry_windows[origin] = (now, now + seconds)

    def count(self, endpoint: str, status: int | None = None) -> int:
        """Requests to `endpoint` (e.g. "graph.delta"), optionally only with `status`."""
        with self._lock:
            return sum(
                n
                for (ep, st), n in self.requests.items()
                if ep == endpoint and (status is None or st == status)
            )

    # Downloads --------------------------------------------------------------------------

    def add_bytes(self, item_id: str, n: int) -> None:
        with self._lock:
            self.bytes_served[item_id] += n

    def delivered(
        self, item_id: str, *, from_zero: bool, n: int = 1, conn: object | None = None
    ) -> None:
        """A response sent the file's last byte (n=-1 takes one back after a failed write).

        With `conn`, the delivery stays unconfirmed until the client sends its next request on
        that connection (HTTP/1.1 without pipelining: it has read the whole body); if the
        emulator cuts the connection first (an outage, a reset), the delivery is taken back,
        because bytes still in the socket buffers were lost with it.
        """
        with self._lock:
            self._delivered(item_id, from_zero, n)
            if conn is not None and n > 0:
                self._unconfirmed.setdefault(id(conn), []).append((item_id, from_zero))

    def _delivered(self, item_id: str, from_zero: bool, n: int) -> None:
        self.complete_deliveries[item_id] += n
        if from_zero:
            self.full_deliveries[item_id] += n

    def connection_reused(self, conn: object) -> None:
        """A new request on `conn`: the client read everything sent on it before."""
        with self._lock:
            self._unconfirmed.pop(id(conn), None)

    def connection_cut(self, conn: object) -> None:
        """The emulator aborted `conn`: deliveries the client may not have read are undone."""
        with self._lock:
            for item_id, from_zero in self._unconfirmed.pop(id(conn), []):
                self._delivered(item_id, from_zero, -1)

    def auth_header_on_download(self) -> None:
        with self._lock:
            self.download_auth_headers += 1

    def link_issued(self, n: int = 1) -> None:
        with self._lock:
            self.links_issued += n

    def grant(self, kind: str) -> None:
        with self._lock:
            self.grants[kind] += 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self.faults_injected[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": {f"{ep} {st}": n for (ep, st), n in sorted(self.requests.items())},
                "bytes_served": dict(self.bytes_served),
                "complete_deliveries": dict(self.complete_deliveries),
                "full_deliveries": dict(self.full_deliveries),
                "download_auth_headers": self.download_auth_headers,
                "retry_after_violations": self.retry_after_violations,
                "retry_after_violations_by_origin": dict(self.retry_after_violations_by_origin),
                "peak_inflight": dict(self.peak_inflight),
                "grants": dict(self.grants),
                "graph_401": self.graph_401,
                "links_issued": self.links_issued,
                "throttled": self.throttled,
                "faults_injected": dict(self.faults_injected),
            }
