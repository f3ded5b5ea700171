"""The large-file writer that syncs in the background: real files and descriptors, no mocks."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import pytest

from onedrive_backup.download import _WriteBehind
from onedrive_backup.errors import BackupError, DestinationError


def as_destination_error(exc: OSError) -> BackupError:
    return DestinationError(f"cannot write: {exc.strerror}")


class Small(_WriteBehind):
    FLUSH_EVERY = 4096


def test_chunks_land_in_order_while_syncs_run_in_the_background(tmp_path: Path) -> None:
    target = tmp_path / "big.part"
    chunks = [bytes([i % 251]) * (1000 + i) for i in range(200)]
    syncs = 0

    async def main() -> None:
        nonlocal syncs
        with target.open("wb") as fh:
            writer = Small(fh, as_destination_error)
            for chunk in chunks:
                writer.write(chunk)
                if writer.syncing is not None:
                    syncs += 1
                await asyncio.sleep(0)  # let a sync finish now and then, as network reads do
            await writer.close()
            assert writer.syncing is None or writer.syncing.done()

    asyncio.run(main())
    assert target.read_bytes() == b"".join(chunks)
    assert syncs > 0, "200 KB in 4 KiB steps must have started background syncs"


@pytest.mark.skipif(os.name == "nt", reason="fsync of a pipe is a POSIX failure")
def test_a_failed_background_sync_stops_the_transfer_as_a_destination_error() -> None:
    """fsync of a pipe fails (EINVAL) the way a removed drive would: it reaches the caller."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)

    def drain() -> None:  # keep the pipe from filling up
        with contextlib.suppress(BlockingIOError):
            os.read(read_end, 1 << 16)

    async def main() -> None:
        with os.fdopen(write_end, "wb") as fh:
            writer = Small(fh, as_destination_error)
            with pytest.raises(DestinationError):
                for _ in range(100):
                    writer.write(b"x" * 1024)
                    drain()
                    await asyncio.sleep(0.01)
                await writer.close()

    try:
        asyncio.run(main())
    finally:
        os.close(read_end)
