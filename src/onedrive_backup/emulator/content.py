"""Deterministic file content: windows into one seeded random pool, so any range is a slice.

A file's bytes are the pool read cyclically from a start derived from (seed, item, version).
Reading at any offset costs a memcpy, a multi-GB file never exists in memory, and the pool
size is odd so that long files do not repeat on a 160-bit boundary (quickXorHash's period).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache

import numpy as np

from onedrive_backup.hashing import QuickXorHash

POOL_SIZE = (32 << 20) + 13
CHUNK = 1 << 20
_MASK64 = (1 << 64) - 1


def mix64(*values: int) -> int:
    """splitmix64 over several integers: a cheap, well-spread content key."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (v & _MASK64)) & _MASK64
        x = (x + 0x9E3779B97F4A7C15) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        x ^= x >> 31
    return x


@lru_cache(maxsize=4)
def _pool(seed: int) -> memoryview:
    rng = np.random.Generator(np.random.PCG64(seed))
    return memoryview(rng.bytes(POOL_SIZE))


class ContentSource:
    """Produces the bytes of generated content keys, or of explicit content given by tests."""

    def __init__(self, seed: int) -> None:
        self._view = _pool(seed)

    def chunks(
        self, key: int, offset: int, length: int, chunk: int = CHUNK
    ) -> Iterator[memoryview]:
        """The `length` bytes at `offset` of content `key`, as zero-copy views."""
        pos = (key + offset) % POOL_SIZE
        remaining = length
        while remaining > 0:
            n = min(chunk, remaining, POOL_SIZE - pos)
            yield self._view[pos : pos + n]
            remaining -= n
            pos = (pos + n) % POOL_SIZE

    def read(self, key: int, offset: int, length: int) -> bytes:
        return b"".join(self.chunks(key, offset, length))


def explicit_chunks(data: bytes, offset: int, length: int, chunk: int = CHUNK) -> Iterator[bytes]:
    view = memoryview(data)[offset : offset + length]
    for start in range(0, len(view), chunk):
        yield view[start : start + chunk].tobytes()


def quickxorhash_of(chunks: Iterable[memoryview | bytes]) -> str:
    h = QuickXorHash()
    for piece in chunks:
        h.update(piece)
    return h.b64digest()
