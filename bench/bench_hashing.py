"""quickXorHash throughput: 256 MiB of random data fed in 1 MiB chunks, best of N runs."""

from __future__ import annotations

import importlib
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

from onedrive_backup.hashing import QuickXorHash

TOTAL = 256 * 1024 * 1024
CHUNK = 1024 * 1024
RUNS = 5


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def best_mb_per_s(feed: Callable[[list[bytes]], object], chunks: list[bytes], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        feed(chunks)
        best = min(best, time.perf_counter() - start)
    return TOTAL / best / 1e6


def ours(chunks: list[bytes]) -> str:
    h = QuickXorHash()
    for chunk in chunks:
        h.update(chunk)
    return h.b64digest()


def bigint_fold(chunks: list[bytes]) -> bytes:
    """The alternative considered: fold with Python big ints (kept to re-measure the choice)."""
    acc = offset = 0
    for chunk in chunks:
        # Shifting by the stream phase keeps every byte at a position congruent mod 160.
        acc ^= int.from_bytes(chunk, "little") << (8 * (offset % 160))
        offset += len(chunk)
    raw = acc.to_bytes((acc.bit_length() + 7) // 8 + 160, "little")
    folded = bytearray(160)
    for start in range(0, len(raw) - 159, 160):
        block = int.from_bytes(raw[start : start + 160], "little")
        folded = bytearray((int.from_bytes(folded, "little") ^ block).to_bytes(160, "little"))
    wide = 0
    for j, byte in enumerate(folded):
        wide ^= byte << (11 * j % 160)
    bits = (wide & ((1 << 160) - 1)) ^ (wide >> 160)
    out = bytearray(bits.to_bytes(20, "little"))
    for i, byte in enumerate(offset.to_bytes(8, "little")):
        out[12 + i] ^= byte
    return bytes(out)


def main() -> None:
    chunks = [os.urandom(CHUNK) for _ in range(TOTAL // CHUNK)]
    print(f"machine: nproc={os.cpu_count()}, cpu={cpu_model()}, python={platform.python_version()}")
    print(
        f"onedrive_backup.hashing: {best_mb_per_s(ours, chunks, RUNS):,.0f} MB/s "
        f"(256 MiB in 1 MiB chunks, best of {RUNS})"
    )
    if bigint_fold(chunks[:3]) != QuickXorHash(b"".join(chunks[:3])).digest():
        raise AssertionError("big-int variant disagrees with QuickXorHash")
    print(
        f"big-int fold (alternative considered): {best_mb_per_s(bigint_fold, chunks, 2):,.0f} MB/s"
    )
    try:  # Only if someone happens to have it; never a project dependency.
        pypi = importlib.import_module("quickxorhash")
    except ImportError:
        print("quickxorhash (PyPI): not installed, skipped")
        return

    def theirs(chunks: list[bytes]) -> bytes:
        h = pypi.quickxorhash()
        for chunk in chunks:
            h.update(chunk)
        return bytes(h.digest())

    print(f"quickxorhash (PyPI): {best_mb_per_s(theirs, chunks, 2):,.0f} MB/s (best of 2)")


if __name__ == "__main__":
    main()
