"""quickXorHash against published vectors and a bit-by-bit reference."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onedrive_backup.hashing import QuickXorHash, quickxorhash_b64

# Copied from shared/test-vectors (rclone's published quickxorhash tests) so the suite
# does not depend on where shared/ sits relative to the clone.
VECTORS_PATH = Path(__file__).parent / "data" / "quickxorhash.json"
VECTORS: list[tuple[int, str, str]] = [tuple(row) for row in json.loads(VECTORS_PATH.read_text())]


def reference_quickxorhash(data: bytes) -> bytes:
    """graph-facts §9 written out literally, one bit at a time."""
    bits = [0] * 160
    for i, byte in enumerate(data):
        for b in range(8):
            if byte >> b & 1:
                bits[(11 * i + b) % 160] ^= 1
    out = bytearray(20)
    for k, bit in enumerate(bits):
        out[k // 8] |= bit << (k % 8)
    for i, byte in enumerate(len(data).to_bytes(8, "little")):
        out[12 + i] ^= byte
    return bytes(out)


def test_vector_file_is_complete() -> None:
    assert len(VECTORS) == 70
    assert all(len(base64.b64decode(data)) == n for n, data, _ in VECTORS)


@pytest.mark.parametrize(("length", "data_b64", "expected"), VECTORS, ids=lambda v: str(v)[:12])
def test_published_vectors(length: int, data_b64: str, expected: str) -> None:
    data = base64.b64decode(data_b64)
    assert quickxorhash_b64(data) == expected
    assert reference_quickxorhash(data) == base64.b64decode(expected)


@pytest.mark.parametrize(("length", "data_b64", "expected"), VECTORS, ids=lambda v: str(v)[:12])
def test_published_vectors_fed_one_byte_at_a_time(
    length: int, data_b64: str, expected: str
) -> None:
    data = base64.b64decode(data_b64)
    h = QuickXorHash()
    for i in range(length):
        h.update(data[i : i + 1])
        h.update(b"")
    assert h.b64digest() == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        (b"J", "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
        (b"hello world", "aCgDG9jwBhDc4Q1yawMZAAAAAAA="),
        (b"abc", "YRDDGAAAAAAAAAAAAwAAAAAAAAA="),
    ],
)
def test_graph_facts_known_answers(data: bytes, expected: str) -> None:
    assert quickxorhash_b64(data) == expected
    assert QuickXorHash(data).digest() == base64.b64decode(expected)


def test_digest_shape_and_aliases() -> None:
    h = QuickXorHash(b"hello world")
    assert len(h.digest()) == 20 == h.digest_size
    assert len(h.b64digest()) == 28
    assert h.hexdigest() == h.digest().hex()


def test_digest_does_not_consume_state_and_copy_is_independent() -> None:
    h = QuickXorHash(b"hello")
    first = h.digest()
    assert h.digest() == first
    clone = h.copy()
    h.update(b" world")
    assert clone.digest() == first
    assert h.b64digest() == quickxorhash_b64(b"hello world")
    clone.update(b" there")
    assert clone.digest() == reference_quickxorhash(b"hello there")


def test_accepts_bytearray_memoryview_and_unaligned_slices() -> None:
    data = bytes(range(256)) * 40 + b"tail"
    expected = reference_quickxorhash(data[3:])
    assert QuickXorHash(bytearray(data[3:])).digest() == expected
    assert QuickXorHash(memoryview(data)[3:]).digest() == expected
    # Non-contiguous and non-byte-formatted buffers are taken as their raw bytes.
    assert QuickXorHash(memoryview(data)[::2]).digest() == reference_quickxorhash(data[::2])
    words = memoryview(bytearray(data[:4096])).cast("I")
    assert QuickXorHash(words).digest() == reference_quickxorhash(data[:4096])


def test_large_input_crossing_many_fold_rows() -> None:
    # 1 MiB + 37 bytes, fed at an odd offset, exercises the vectorised fold with a phase.
    data = bytes((i * 7 + i // 251) & 0xFF for i in range((1 << 20) + 37))
    h = QuickXorHash(data[:13])
    h.update(data[13:])
    # Cheaper reference for 1 MiB: fold by position mod 160, spread bit by bit.
    folded = bytearray(160)
    for i, byte in enumerate(data):
        folded[i % 160] ^= byte
    wide = 0
    for j, byte in enumerate(folded):
        wide ^= byte << (11 * j % 160)
    bits = (wide & ((1 << 160) - 1)) ^ (wide >> 160)
    expected = bytearray(bits.to_bytes(20, "little"))
    for i, byte in enumerate(len(data).to_bytes(8, "little")):
        expected[12 + i] ^= byte
    assert h.digest() == bytes(expected)


@st.composite
def data_and_cuts(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    # Sizes well past the 1280-byte fold width, so folds, tails and wraps all occur.
    size = draw(st.integers(min_value=0, max_value=6000))
    data = draw(st.randoms(use_true_random=False)).randbytes(size)
    cuts = draw(st.lists(st.integers(min_value=0, max_value=len(data)), max_size=8))
    return data, sorted(cuts)


@settings(max_examples=150, deadline=None)
@given(data_and_cuts())
def test_matches_reference_for_any_chunking(case: tuple[bytes, list[int]]) -> None:
    data, cuts = case
    h = QuickXorHash()
    start = 0
    for cut in [*cuts, len(data)]:
        h.update(data[start:cut])  # repeated cuts give 0-length updates
        start = cut
    assert h.digest() == reference_quickxorhash(data)
    assert h.b64digest() == base64.b64encode(reference_quickxorhash(data)).decode()


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=1, max_size=600), st.integers(min_value=1, max_value=3000))
def test_long_repetitive_streams(block: bytes, repeats_seed: int) -> None:
    # Same block many times: bytes 160 apart must cancel or reinforce exactly as reference.
    data = (block * (repeats_seed // len(block) + 3))[: repeats_seed + 1500]
    h = QuickXorHash()
    for i in range(0, len(data), 1279):
        h.update(data[i : i + 1279])
    assert h.digest() == reference_quickxorhash(data)


@pytest.mark.parametrize(
    "sizes",
    [
        [1279, 1279, 1281, 2561, 7, 1280, 160, 3000],  # small updates that wrap the buffer
        [1, 2560, 1279, 2, 1281, 0, 4000],  # folds and tails at odd phases
        [160] * 20 + [11] * 30,
    ],
)
def test_fixed_awkward_chunkings(sizes: list[int]) -> None:
    data = bytes((i * 131 + 17) & 0xFF for i in range(sum(sizes)))
    h = QuickXorHash()
    start = 0
    for size in sizes:
        h.update(data[start : start + size])
        start += size
    assert h.digest() == reference_quickxorhash(data)
