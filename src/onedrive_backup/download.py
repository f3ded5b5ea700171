"""Download engine: concurrent, verified, resumable transfers that survive expiring links.

Per file: a fresh link just before the transfer; bytes stream into
`<backup>/.onedrive-backup/partial/<key>.part` (inside the backup, never beside the user's
files) while being hashed; a cut transfer continues with a Range request from the bytes on disk,
guarded by If-Range; a 401/403/410 from the download host gets a new link and the transfer goes
on. Only when size and quickXorHash match is the data fsynced, given its modification time,
renamed into place atomically and recorded as done (ARCHITECTURE invariant 1).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from onedrive_backup import events
from onedrive_backup.errors import BackupError, DestinationError, DiskFullError, ItemError
from onedrive_backup.events import EventSink
from onedrive_backup.graph import GraphClient
from onedrive_backup.hashing import QuickXorHash
from onedrive_backup.models import DoneRecord, FileTask
from onedrive_backup.paths import ensure_inside, fsync_dir
from onedrive_backup.retry import (
    NETWORK_ERRORS,
    SERVER_ERROR_STATUSES,
    THROTTLE_STATUSES,
    RetryGate,
    backoff_delay,
    parse_retry_after,
)

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
# Files up to this size are received into memory and written in one go at the end.
SMALL_FILE = 1024 * 1024
LINK_REFUSED = frozenset({401, 403, 410})
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
UNVERIFIED_REASON = "unverified: server metadata disagrees"


@dataclass
class DownloadOptions:
    workers: int = 8
    bwlimit: int | None = None  # bytes per second for the whole run
    stall_timeout: float = 60.0  # no byte for this long: drop the connection and resume
    hash_attempts: int = 3  # full downloads before concluding on a hash mismatch
    max_link_refreshes: int = 20  # per file, without progress in between
    max_network_retries: int = 50  # per file, without progress in between
    progress_interval: float = 0.5


@dataclass
class DownloadStats:
    files_done: int = 0
    files_adopted: int = 0
    files_failed: int = 0
    files_unverified: int = 0
    bytes_downloaded: int = 0
    link_refreshes: int = 0
    resumed_transfers: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (remote path, reason)


class DownloadState(Protocol):
    """The part of state.BackupState the downloader uses."""

    def mark_done_many(self, records: list[DoneRecord]) -> None: ...

    def mark_failed(self, item_id: str, reason: str) -> None: ...

    def mark_unverified(self, item_id: str, reason: str) -> None: ...

    def record_attempt(self, item_id: str, error: str | None) -> None: ...

    def update_file_metadata(self, item: dict[str, Any]) -> FileTask | None: ...


class _Restart(Exception):
    """Start this file over from byte 0 (server ignored Range, or the file changed)."""


class RateLimiter:
    """A token bucket shared by all workers (--bwlimit)."""

    def __init__(self, rate: int) -> None:
        self.rate = float(rate)
        self.allowance = float(rate)
        self.last = time.monotonic()
        self.lock = asyncio.Lock()

    async def consume(self, n: int) -> None:
        async with self.lock:
            now = time.monotonic()
            self.allowance = min(self.rate, self.allowance + (now - self.last) * self.rate)
            self.last = now
            self.allowance -= n
            if self.allowance < 0:
                await asyncio.sleep(-self.allowance / self.rate)


def _part_key(item_id: str) -> str:
    """A filesystem-safe, case-insensitive-safe name for an item's partial file."""
    return hashlib.sha256(item_id.encode()).hexdigest()[:32]


def _is_disk_full(exc: OSError) -> bool:
    return exc.errno in DISK_FULL_ERRNOS


class ContentHash:
    """What a download is checked against: quickXorHash (the hash Graph guarantees), plus
    SHA-256 only for an item whose metadata carries SHA-256 and no quickXorHash."""

    def __init__(self, sha256: bool = False) -> None:
        self.qxh = QuickXorHash()
        self.sha = hashlib.sha256() if sha256 else None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.qxh.update(data)
        if self.sha is not None:
            self.sha.update(data)

    def b64digest(self) -> str:
        return self.qxh.b64digest()

    def matches(self, task: FileTask) -> bool | None:
        """True/False against the item's hash; None when the item has no hash to check."""
        if task.quickxorhash:
            return self.qxh.b64digest() == task.quickxorhash
        if task.sha256 and self.sha is not None:
            return self.sha.hexdigest().lower() == task.sha256.lower()
        return None

    def fingerprint(self) -> str:
        """Identifies the bytes received (to tell consistent from random corruption)."""
        return self.qxh.b64digest() + (self.sha.hexdigest() if self.sha is not None else "")

    @classmethod
    def for_task(cls, task: FileTask) -> ContentHash:
        return cls(sha256=not task.quickxorhash and bool(task.sha256))


class _Updatable(Protocol):
    def update(self, data: bytes | bytearray | memoryview) -> None: ...


def _hash_file(path: Path, hasher: _Updatable, limit: int | None) -> int:
    """Feed a local file (or its first `limit` bytes) to `hasher`; returns the bytes read."""
    read = 0
    with path.open("rb") as fh:
        while limit is None or read < limit:
            block = fh.read(CHUNK if limit is None else min(CHUNK, limit - read))
            if not block:
                break
            hasher.update(block)
            read += len(block)
    return read


def file_content_hash(
    path: Path, task: FileTask, limit: int | None = None
) -> tuple[ContentHash, int]:
    """Hash a local file (or its first `limit` bytes) for `task`; (hasher, bytes read)."""
    hasher = ContentHash.for_task(task)
    return hasher, _hash_file(path, hasher, limit)


def file_quickxorhash(path: Path, limit: int | None = None) -> tuple[QuickXorHash, int]:
    """Hash a local file (or its first `limit` bytes); returns the hasher and bytes read."""
    hasher = QuickXorHash()
    return hasher, _hash_file(path, hasher, limit)


def set_times(path: Path, task: FileTask) -> None:
    """Modification time from fileSystemInfo (access time too); creation time is not settable
    portably from Python, so it is left to the platform."""
    if task.mtime is not None:
        os.utime(path, (task.mtime, task.mtime))


class Downloader:
    """Runs the download phase over every pending file in the state."""

    def __init__(
        self,
        *,
        state: DownloadState,
        tasks: Callable[[], Any],
        graph: GraphClient,
        http: aiohttp.ClientSession,
        backup_dir: Path,
        gate: RetryGate,
        options: DownloadOptions | None = None,
        emit: EventSink = events.discard,
        totals: tuple[int, int] = (0, 0),
    ) -> None:
        self.state = state
        self._tasks = tasks  # callable returning an iterator of FileTask (pending, selected)
        self.graph = graph
        self.http = http
        self.backup_dir = backup_dir
        self.partial_dir = backup_dir / ".onedrive-backup" / "partial"
        self.gate = gate
        self.opt = options or DownloadOptions()
        self.emit = emit
        self.stats = DownloadStats()
        self.files_total, self.bytes_total = totals
        self.limiter = RateLimiter(self.opt.bwlimit) if self.opt.bwlimit else None
        self._active = 0
        self._bytes_window: list[tuple[float, int]] = []
        self._done_batch: list[DoneRecord] = []
        self._last_flush = time.monotonic()
        self._fatal: BaseException | None = None
        self._workers: list[asyncio.Task[None]] = []

    # -- orchestration -------------------------------------------------------------------------

    async def run(self) -> DownloadStats:
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        queue: asyncio.Queue[FileTask | None] = asyncio.Queue(maxsize=self.opt.workers * 4)
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(self.opt.workers)]
        self._workers = workers
        ticker = asyncio.create_task(self._ticker())
        try:
            await self._produce(queue, workers)
            # Workers cancelled by _stop_all end as CancelledError; the fatal error is raised
            # below. Cancelling run() itself (Ctrl-C) still propagates out of this gather.
            await asyncio.gather(*workers, return_exceptions=True)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            self._flush_done(force=True)
            self._emit_progress()
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    async def _produce(
        self, queue: asyncio.Queue[FileTask | None], workers: list[asyncio.Task[None]]
    ) -> None:
        for task in self._tasks():
            if self._fatal is not None or not await self._put(queue, task, workers):
                return
        for _ in workers:
            if not await self._put(queue, None, workers):
                return

    @staticmethod
    async def _put(
        queue: asyncio.Queue[FileTask | None],
        item: FileTask | None,
        workers: list[asyncio.Task[None]],
    ) -> bool:
        """Queue `item`; False if every worker has ended (a full queue would block forever)."""
        put = asyncio.create_task(queue.put(item))
        try:
            while not put.done():
                await asyncio.wait([put, *workers], return_when=asyncio.FIRST_COMPLETED)
                if all(w.done() for w in workers) and not put.done():
                    put.cancel()
                    return False
        except asyncio.CancelledError:
            put.cancel()
            raise
        return True

    async def _worker(self, queue: asyncio.Queue[FileTask | None]) -> None:
        while True:
            task = await queue.get()
            if task is None or self._fatal is not None:
                return
            self._active += 1
            try:
                await self._one(task)
            except BackupError as exc:
                # Disk full, sign-in dead, outage too long, state unwritable: the whole run
                # stops now (partial files stay for the resume), not file after file.
                self._stop_all(exc)
                return
            except ItemError as exc:
                self._fail(task, exc.reason)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug or an unexpected answer: fail the file, not the run
                log.exception("unexpected error downloading %s", task.remote_path)
                self._fail(task, f"unexpected error: {type(exc).__name__}: {exc}")
            finally:
                self._active -= 1

    def _stop_all(self, exc: BackupError) -> None:
        if self._fatal is None:
            self._fatal = exc
        current = asyncio.current_task()
        for worker in self._workers:
            if worker is not current:
                worker.cancel()

    def _fail(self, task: FileTask, reason: str) -> None:
        self.state.mark_failed(task.item_id, reason)
        self.stats.files_failed += 1
        if len(self.stats.failures) < 10_000:
            self.stats.failures.append((task.remote_path, reason))
        self.emit(events.ItemFailed(path=task.remote_path, reason=reason))

    # -- one file ------------------------------------------------------------------------------

    async def _one(self, task: FileTask) -> None:
        final, adopted = await asyncio.to_thread(self._place, task)
        if adopted:
            self._done(task, adopted=True)
            return
        self.emit(events.ItemStarted(path=task.remote_path, size=task.size))
        wrong_digests: list[str] = []
        versions_seen = 0
        while True:
            part = self.partial_dir / f"{_part_key(task.item_id)}.part"
            try:
                xfer = await self._fetch(task, part)
            except _RemoteChanged:
                part.unlink(missing_ok=True)
                versions_seen += 1
                fresh = await self._refetch_metadata(task)
                if fresh is None or versions_seen > 5:
                    raise ItemError(
                        "the file kept changing in OneDrive during the download"
                    ) from None
                task = fresh
                continue
            digest = xfer.hasher.fingerprint()
            if xfer.hasher.matches(task) is not False:
                await asyncio.to_thread(self._finalize, xfer, final, task)
                self._done(task, digest=xfer.hasher.b64digest())
                return
            # Hash mismatch: the file may have changed remotely since the scan.
            fresh = await self._refetch_metadata(task)
            if fresh is not None and (fresh.etag != task.etag or fresh.size != task.size):
                task = fresh
                part.unlink(missing_ok=True)
                continue
            wrong_digests.append(digest)
            self.state.record_attempt(task.item_id, "content mismatch")
            if len(wrong_digests) < self.opt.hash_attempts:
                part.unlink(missing_ok=True)
                continue
            if len(set(wrong_digests)) == 1:
                # Same wrong bytes every time: the server's stored hash is what is wrong.
                await asyncio.to_thread(self._finalize, xfer, final, task)
                self.state.mark_unverified(task.item_id, UNVERIFIED_REASON)
                self.stats.files_unverified += 1
                self.emit(events.ItemUnverified(path=task.remote_path, reason=UNVERIFIED_REASON))
                return
            part.unlink(missing_ok=True)
            raise ItemError("content mismatch")

    def _place(self, task: FileTask) -> tuple[Path, bool]:
        """(final path, adopted): one thread hop for the path check and the adoption check."""
        final = ensure_inside(self.backup_dir, task.local_path)
        if self._adoptable(final, task):
            set_times(final, task)
            return final, True
        return final, False

    def _adoptable(self, final: Path, task: FileTask) -> bool:
        """A file already in place that matches the record is adopted, not downloaded again."""
        try:
            if not final.is_file() or final.stat().st_size != task.size:
                return False
        except OSError:
            return False
        if task.quickxorhash is None:
            return task.size == 0
        hasher, _ = file_content_hash(final, task)
        return hasher.matches(task) is True

    async def _refetch_metadata(self, task: FileTask) -> FileTask | None:
        try:
            item = await self.graph.get_item(task.drive_id, task.item_id)
        except ItemError as exc:
            raise ItemError("deleted in OneDrive since the scan") from exc
        return self.state.update_file_metadata(item)

    async def _fetch(self, task: FileTask, part: Path) -> _Transfer:
        """All of the file's bytes, hashed: in memory for a small file, else in `part`."""
        if task.size <= SMALL_FILE:
            # Small files are kept in memory and written once at the end (one thread hop);
            # a cut transfer still resumes with Range from the bytes received in this run.
            xfer = _Transfer(part, task, in_memory=True)
        else:
            xfer = await asyncio.to_thread(self._resume_point, part, task)
        link: str | None = None
        link_refreshes = network_retries = server_errors = restarts = 0
        while xfer.offset < task.size:
            await self.gate.wait()
            if link is None:
                link = await self.graph.download_link(task.drive_id, task.item_id)
                # Another worker may have been throttled while the link was on its way.
                await self.gate.wait()
            before = xfer.offset
            try:
                await self._stream(task, xfer, link)
            except _LinkRefused:
                link = None
                link_refreshes += 1
                self.stats.link_refreshes += 1
                self.emit(events.LinkRefreshed(path=task.remote_path))
                if link_refreshes > self.opt.max_link_refreshes:
                    raise ItemError("the download host keeps refusing fresh links") from None
            except _Throttle as t:
                server_errors += 1
                wait = t.seconds if t.seconds is not None else backoff_delay(server_errors)
                self.gate.throttled(wait, t.status)
            except _ServerError as s:
                server_errors += 1
                if server_errors > 8:
                    raise ItemError(f"the download host kept failing (HTTP {s.status})") from None
                await asyncio.sleep(backoff_delay(server_errors))
            except _Restart:
                restarts += 1
                if restarts > 10:
                    raise ItemError("the download host keeps sending unusable ranges") from None
                await asyncio.to_thread(xfer.reset)
            except TRANSFER_ERRORS as exc:
                if xfer.offset > before:
                    network_retries = 0
                network_retries += 1
                if network_retries > self.opt.max_network_retries:
                    raise ItemError("the connection keeps failing for this file") from None
                log.debug("transfer of %s cut at %d: %s", task.remote_path, xfer.offset, exc)
                await self.gate.network_error(link, exc)
                await asyncio.sleep(backoff_delay(network_retries, base=0.2, cap=10.0))
            if xfer.offset > before:
                link_refreshes = network_retries = 0
        return xfer

    async def _stream(self, task: FileTask, xfer: _Transfer, link: str) -> None:
        """One GET of the download link, appending to the partial file from `xfer.offset`."""
        headers = {}
        if xfer.offset:
            self.stats.resumed_transfers += 1
            headers["Range"] = f"bytes={xfer.offset}-"
            if xfer.validator:
                headers["If-Range"] = xfer.validator
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=20.0, sock_read=self.opt.stall_timeout
        )
        # No Authorization header, ever: the link is pre-authenticated (invariant 3).
        async with self.http.get(
            link, headers=headers, timeout=timeout, allow_redirects=False
        ) as response:
            status = response.status
            if status in LINK_REFUSED:
                raise _LinkRefused()
            if status in THROTTLE_STATUSES:
                raise _Throttle(parse_retry_after(response.headers.get("Retry-After")), status)
            if status in SERVER_ERROR_STATUSES:
                raise _ServerError(status)
            if status == 404:
                raise ItemError("deleted in OneDrive since the scan")
            if status == 416 or (status == 200 and xfer.offset):
                raise _Restart()  # Range refused/ignored, or If-Range said the file changed
            if status not in (200, 206):
                raise ItemError(f"download failed (HTTP {status})")
            if status == 206 and not response.headers.get("Content-Range", "").startswith(
                f"bytes {xfer.offset}-"
            ):
                raise _Restart()
            if _announced_size(response.status, response.headers, xfer.offset) not in (
                None,
                task.size,
            ):
                raise _RemoteChanged()  # the host serves another version than the scan saw
            xfer.validator = response.headers.get("ETag") or xfer.validator
            if xfer.buffer is not None:
                await self._receive(task, xfer, response, xfer.buffer.extend)
                return
            await asyncio.to_thread(self._write_meta, xfer, task)
            fh = self._open_part(xfer)
            with fh:
                behind = _WriteBehind(fh, self._dest_error)
                try:
                    await self._receive(task, xfer, response, behind.write)
                finally:
                    await behind.close()

    async def _receive(
        self,
        task: FileTask,
        xfer: _Transfer,
        response: aiohttp.ClientResponse,
        write: Callable[[bytes], Any],
    ) -> None:
        """Append the body to the transfer; every byte that arrived is kept if it drops."""
        async for chunk in response.content.iter_any():
            if xfer.offset + len(chunk) > task.size:
                raise _RemoteChanged()  # more bytes than the metadata says
            write(chunk)
            xfer.hasher.update(chunk)
            xfer.offset += len(chunk)
            self._count_bytes(len(chunk))
            if self.limiter is not None:
                await self.limiter.consume(len(chunk))
        if xfer.offset < task.size:
            raise _Truncated()  # the body ended early without an error

    # -- file system ---------------------------------------------------------------------------

    def _open_part(self, xfer: _Transfer) -> Any:
        try:
            if not xfer.offset:
                xfer.part.unlink(missing_ok=True)
                # A new file, not a truncated one: ext4 flushes a file truncated to zero when
                # it is closed (auto_da_alloc), which would block the event loop for the
                # whole file; the data is fsynced once, at finalize, in a worker thread.
                return xfer.part.open("xb")
            fh = xfer.part.open("r+b")
            fh.seek(xfer.offset)
            fh.truncate()  # drop bytes past what was verified as received
        except OSError as exc:
            raise self._dest_error(exc) from exc
        return fh

    def _dest_error(self, exc: OSError) -> DestinationError:
        if _is_disk_full(exc):
            return DiskFullError(
                f"The destination disk is full ({self.backup_dir}).",
                "Free some space, then resume; finished files are kept and partial ones resume.",
            )
        return DestinationError(
            f"Writing to the destination failed: {exc.strerror or exc}.",
            "Check that the disk is still connected and writable, then resume.",
        )

    def _resume_point(self, part: Path, task: FileTask) -> _Transfer:
        """Continue a partial file only if it belongs to this version of the item."""
        xfer = _Transfer(part, task)
        try:
            meta = json.loads(xfer.meta_path.read_text())
        except (OSError, ValueError):
            meta = None
        if (
            not part.exists()
            or not isinstance(meta, dict)
            or meta.get("etag") != task.etag
            or meta.get("size") != task.size
        ):
            xfer.reset()
            return xfer
        xfer.hasher, xfer.offset = file_content_hash(part, task, limit=task.size)
        xfer.validator = meta.get("validator")
        return xfer

    def _write_meta(self, xfer: _Transfer, task: FileTask) -> None:
        data = {"item_id": task.item_id, "etag": task.etag, "size": task.size}
        data["validator"] = xfer.validator
        try:
            xfer.meta_path.write_text(json.dumps(data))
        except OSError as exc:
            raise self._dest_error(exc) from exc

    def _finalize(self, xfer: _Transfer, final: Path, task: FileTask) -> None:
        """Write (small files) or fsync the data, set times, rename into place atomically,
        fsync the folder: one thread hop per file."""
        part = xfer.part
        try:
            with part.open("wb" if xfer.buffer is not None else "rb+") as fh:
                if xfer.buffer is not None:
                    fh.write(xfer.buffer)
                    fh.flush()
                os.fsync(fh.fileno())
            set_times(part, task)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, final)
            fsync_dir(final.parent)
        except OSError as exc:
            raise self._dest_error(exc) from exc
        if xfer.buffer is None:
            xfer.meta_path.unlink(missing_ok=True)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _done(self, task: FileTask, *, adopted: bool = False, digest: str | None = None) -> None:
        # The quickXorHash of the bytes on disk (computed even where Graph gave none) is what
        # `verify` checks the file against later.
        self._done_batch.append(
            DoneRecord(task.item_id, task.size, digest or task.quickxorhash, task.mtime, task.etag)
        )
        self.stats.files_done += 1
        if adopted:
            self.stats.files_adopted += 1
        self.emit(events.ItemDone(path=task.remote_path, size=task.size, adopted=adopted))
        self._flush_done()

    def _flush_done(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self._done_batch and (
            force or len(self._done_batch) >= 200 or now - self._last_flush > 0.5
        ):
            batch, self._done_batch = self._done_batch, []
            self.state.mark_done_many(batch)
            self._last_flush = now

    def _count_bytes(self, n: int) -> None:
        self.stats.bytes_downloaded += n
        self._bytes_window.append((time.monotonic(), n))

    def _rate(self) -> float:
        now = time.monotonic()
        self._bytes_window = [(t, n) for t, n in self._bytes_window if now - t <= 5.0]
        if not self._bytes_window:
            return 0.0
        span = max(1.0, now - self._bytes_window[0][0])
        return sum(n for _, n in self._bytes_window) / span

    def _emit_progress(self) -> None:
        self.emit(
            events.DownloadProgress(
                files_done=self.stats.files_done,
                files_total=self.files_total,
                bytes_done=self.stats.bytes_downloaded,
                bytes_total=self.bytes_total,
                active=self._active,
                rate=self._rate(),
            )
        )

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.opt.progress_interval)
            self._flush_done()
            self._emit_progress()


class _WriteBehind:
    """Writes a large file's chunks and has the OS write them to the disk as they come.

    Left to itself the kernel holds gigabytes of a large download in the page cache and the
    fsync at finalize then writes it all while the transfer stands still (2.5 s for 2 GiB
    here). Instead, every FLUSH_EVERY bytes a worker thread syncs what was written so far,
    while the event loop goes on receiving; the fsync at finalize finds little left to do.
    One sync at a time; errors (a full disk, a removed drive) come back through `dest_error`.
    """

    FLUSH_EVERY = 32 * 1024 * 1024

    def __init__(self, fh: Any, dest_error: Callable[[OSError], BackupError]) -> None:
        self.fh = fh
        self.dest_error = dest_error
        self.unsynced = 0
        self.syncing: asyncio.Future[None] | None = None

    def write(self, chunk: bytes) -> None:
        try:
            self.fh.write(chunk)
        except OSError as exc:
            raise self.dest_error(exc) from exc
        self.unsynced += len(chunk)
        if self.unsynced >= self.FLUSH_EVERY and (self.syncing is None or self.syncing.done()):
            self._check()
            self._flush()
            self.unsynced = 0
            # On a duplicate descriptor: a cancelled transfer may close the file meanwhile.
            fd = os.dup(self.fh.fileno())
            self.syncing = asyncio.get_running_loop().run_in_executor(None, _datasync, fd)
            self.syncing.add_done_callback(_retrieve)

    def _check(self) -> None:
        """Raise what the last background sync met, if anything."""
        if self.syncing is not None and self.syncing.done():
            failed, self.syncing = self.syncing.exception(), None
            if isinstance(failed, OSError):
                raise self.dest_error(failed) from failed
            if failed is not None:
                raise failed

    async def close(self) -> None:
        """Wait for the sync in progress (the file is closed next) and flush the buffer."""
        if self.syncing is not None:
            await asyncio.wait([self.syncing])
        try:
            self._check()
        finally:
            self._flush()

    def _flush(self) -> None:
        try:
            self.fh.flush()
        except OSError as exc:
            raise self.dest_error(exc) from exc


def _datasync(fd: int) -> None:
    sync = getattr(os, "fdatasync", os.fsync)  # Windows and macOS have no fdatasync
    try:
        sync(fd)
    finally:
        os.close(fd)


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a background sync's error as seen (it is raised by _WriteBehind if still wanted)."""
    if not future.cancelled():
        future.exception()


class _Transfer:
    """Where one file's transfer stands: survives a cut connection within the run."""

    def __init__(self, part: Path, task: FileTask, *, in_memory: bool = False) -> None:
        self.part = part
        self.meta_path = part.with_suffix(".json")
        self.hasher = ContentHash.for_task(task)
        self.offset = 0
        self.validator: str | None = None
        self.buffer: bytearray | None = bytearray() if in_memory else None

    def reset(self) -> None:
        if self.buffer is not None:
            self.buffer.clear()
        else:
            self.part.unlink(missing_ok=True)
        self.hasher = ContentHash(self.hasher.sha is not None)
        self.offset, self.validator = 0, None


class _Truncated(Exception):
    """The body ended before the promised length: treat like a cut connection."""

    def __init__(self) -> None:
        super().__init__("the download ended early")


# A transfer cut by the network: continue from the bytes on disk.
TRANSFER_ERRORS: tuple[type[Exception], ...] = (*NETWORK_ERRORS, _Truncated)


class _RemoteChanged(Exception):
    """The download host serves a different version than the state knows: re-read metadata."""


def _announced_size(status: int, headers: Any, offset: int) -> int | None:
    """The whole file's size as the download host states it (Content-Range or Content-Length)."""
    content_range = headers.get("Content-Range")
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1].strip()
        return int(total) if total.isdigit() else None
    length = headers.get("Content-Length")
    if status == 200 and length and length.isdigit():
        return int(length)
    return None


class _LinkRefused(Exception):
    pass


class _Throttle(Exception):
    def __init__(self, seconds: float | None, status: int) -> None:
        self.seconds = seconds
        self.status = status


class _ServerError(Exception):
    def __init__(self, status: int) -> None:
        self.status = status
