"""quickXorHash, the content hash OneDrive reports for every file (graph-facts §9).

Input byte ``i`` is XORed into a 160-bit accumulator at bit offset ``(11 * i) mod 160``.
Because ``11 * 160 ≡ 0 (mod 160)``, bytes 160 apart land on the same bit offset, so
the stream can first be XOR-folded, byte for byte, into a small buffer indexed by
stream position; the folded bytes are spread to their bit offsets only at digest time.
The fold is a numpy XOR-reduction over 64-bit words, which runs at memory speed
(see BENCHMARKS.md); a Python byte loop would be about a thousand times slower.
"""

from __future__ import annotations

import base64
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["QuickXorHash", "quickxorhash_b64"]

_HASH_BITS: Final = 160
_SHIFT: Final = 11
# Folding width in bytes: a multiple of 160 (so position mod 160 is preserved) and of 8
# (so rows are whole uint64 words). 8 * 160 measured fastest of the widths tried.
_WIDTH: Final = 8 * _HASH_BITS
_WORDS: Final = _WIDTH // 8
_MASK160: Final = (1 << _HASH_BITS) - 1
_MASK64: Final = (1 << 64) - 1
# Bit offset at which folded byte j (j = stream position mod 160) is XORed in.
_OFFSETS: Final = tuple((_SHIFT * j) % _HASH_BITS for j in range(_HASH_BITS))

Buffer = bytes | bytearray | memoryview


def _as_byte_view(data: Buffer) -> memoryview:
    view = memoryview(data)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class QuickXorHash:
    """Incremental quickXorHash with a hashlib-like interface."""

    name: Final = "quickxorhash"
    digest_size: Final = 20

    def __init__(self, data: Buffer = b"") -> None:
        # Byte k of this buffer holds the XOR of every input byte at stream position
        # p with p mod _WIDTH == k.
        self._acc: npt.NDArray[np.uint64] = np.zeros(_WORDS, dtype=np.uint64)
        self._length = 0
        if data:
            self.update(data)

    def update(self, data: Buffer) -> None:
        """Feed more bytes; any chunking of the same stream gives the same digest."""
        view = _as_byte_view(data)
        size = len(view)
        if size == 0:
            return
        phase = self._length % _WIDTH
        if size <= _WIDTH:
            self._xor_bytes_at(phase, np.frombuffer(view, dtype=np.uint8))
        else:
            whole = size - size % _WIDTH
            rows = np.frombuffer(view, dtype=np.uint64, count=whole // 8).reshape(-1, _WORDS)
            folded = np.bitwise_xor.reduce(rows, axis=0).view(np.uint8)
            # The fold is indexed from this chunk's start; shift it to stream positions.
            if phase:
                folded = np.roll(folded, phase)
            self._acc ^= folded.view(np.uint64)
            if whole < size:
                self._xor_bytes_at(phase, np.frombuffer(view, dtype=np.uint8, offset=whole))
        self._length += size

    def _xor_bytes_at(self, start: int, values: npt.NDArray[np.uint8]) -> None:
        # values.size <= _WIDTH, so it wraps around the buffer at most once.
        acc = self._acc.view(np.uint8)
        first = min(values.size, _WIDTH - start)
        acc[start : start + first] ^= values[:first]
        if first < values.size:
            acc[: values.size - first] ^= values[first:]

    def digest(self) -> bytes:
        """The 20-byte hash of everything fed so far (the object stays usable)."""
        folded = np.bitwise_xor.reduce(self._acc.view(np.uint8).reshape(-1, _HASH_BITS), axis=0)
        wide = 0
        for value, offset in zip(folded.tolist(), _OFFSETS, strict=True):
            wide ^= value << offset
        bits = (wide & _MASK160) ^ (wide >> _HASH_BITS)
        out = bytearray(bits.to_bytes(20, "little"))
        for i, byte in enumerate((self._length & _MASK64).to_bytes(8, "little")):
            out[12 + i] ^= byte
        return bytes(out)

    def b64digest(self) -> str:
        """The digest in base64, as Graph reports it in ``file.hashes.quickXorHash``."""
        return base64.b64encode(self.digest()).decode("ascii")

    def hexdigest(self) -> str:
        return self.digest().hex()

    def copy(self) -> QuickXorHash:
        clone = QuickXorHash()
        clone._acc = self._acc.copy()
        clone._length = self._length
        return clone


def quickxorhash_b64(data: Buffer) -> str:
    """quickXorHash of ``data`` in base64, as Graph reports it."""
    return QuickXorHash(data).b64digest()
