"""Check a backup's files on disk against what the state recorded when they were verified.

A full check re-hashes every file (quickXorHash) and compares it with the recorded hash; the
quick check compares only sizes and modification times. Nothing is changed on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from onedrive_backup.hashing import QuickXorHash
from onedrive_backup.models import ItemRecord
from onedrive_backup.state import BackupState

CHUNK = 4 * 1024 * 1024
# FAT32 keeps modification times to 2 s, exFAT to 10 ms: anything closer than this is equal.
MTIME_TOLERANCE = 2.0
HASH_THREADS = 4


@dataclass(frozen=True)
class Problem:
    item_id: str
    remote_path: str
    local_path: str
    problem: str


@dataclass
class VerifyResult:
    checked: int = 0
    bytes_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    unverified: int = 0  # kept files whose remote hash was already known to disagree
    no_hash: int = 0  # files without a recorded hash: compared by size only

    @property
    def ok(self) -> bool:
        return not self.problems


def file_hash(path: Path) -> str:
    """quickXorHash (base64, as Graph reports it) of a file, read in chunks."""
    hasher = QuickXorHash()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            hasher.update(chunk)
    return hasher.b64digest()


def check_file(backup_dir: Path, record: ItemRecord, *, quick: bool) -> str | None:
    """What is wrong with one recorded file on disk, or None when it matches."""
    if not record.local_path:
        return "no local path recorded"
    path = backup_dir / record.local_path
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    expected_size = record.done_size if record.done_size is not None else record.size
    if st.st_size != expected_size:
        return f"size differs ({st.st_size:,} bytes on disk, {expected_size:,} expected)"
    if quick:
        expected_mtime = record.done_mtime if record.done_mtime is not None else record.mtime
        if expected_mtime is not None and abs(st.st_mtime - expected_mtime) > MTIME_TOLERANCE:
            return "modified time differs (changed on disk since the backup?)"
        return None
    if record.status == "unverified" or not record.done_hash or expected_size == 0:
        return None  # nothing trustworthy to hash against: size matched
    try:
        actual = file_hash(path)
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    if actual != record.done_hash:
        return "content differs (hash mismatch)"
    return None


def _records(state: BackupState) -> Iterator[ItemRecord]:
    yield from state.iter_done_files()


def verify_backup(
    backup_dir: Path,
    *,
    quick: bool = False,
    progress: Callable[[VerifyResult], None] | None = None,
    threads: int = HASH_THREADS,
) -> VerifyResult:
    """Check every done file of the backup in `backup_dir` (read-only; works during a run)."""
    result = VerifyResult()
    with BackupState.open(backup_dir, read_only=True) as state:
        records = list(_records(state))

    def one(record: ItemRecord) -> tuple[ItemRecord, str | None]:
        return record, check_file(backup_dir, record, quick=quick)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for record, problem in pool.map(one, records):
            result.checked += 1
            result.bytes_checked += record.size
            if record.status == "unverified":
                result.unverified += 1
            elif not record.done_hash and record.size:
                result.no_hash += 1
            if problem is not None:
                result.problems.append(
                    Problem(
                        record.item_id,
                        record.remote_path or record.name,
                        record.local_path or "",
                        problem,
                    )
                )
            if progress is not None and result.checked % 500 == 0:
                progress(result)
    if progress is not None:
        progress(result)
    result.problems.sort(key=lambda p: p.local_path)
    return result


def describe_result(
    result: VerifyResult, backup_dir: Path, *, quick: bool, repaired: bool = False, limit: int = 200
) -> list[str]:
    """The lines `verify` prints: a verdict, then each problem (up to `limit`)."""
    how = "sizes and times" if quick else "content hashes"
    lines: list[str] = []
    if result.ok:
        lines.append(f"All {result.checked:,} files match ({how} checked) in {backup_dir}.")
    else:
        lines.append(
            f"{len(result.problems):,} of {result.checked:,} files do not match ({how} checked):"
        )
        for p in result.problems[:limit]:
            lines.append(f"  {p.local_path}: {p.problem}")
        if len(result.problems) > limit:
            lines.append(f"  ... and {len(result.problems) - limit:,} more")
        lines.append("To download them again:")
        if not repaired:
            lines.append(f'  onedrive-backup verify "{backup_dir}" --repair')
        lines.append(
            f'  onedrive-backup backup --dest "{backup_dir.parent}" --resume {backup_dir.name}'
        )
    if result.unverified:
        lines.append(
            f"Note: {result.unverified:,} files were kept unverified (OneDrive's own hash "
            "disagreed with the bytes it sent); only their sizes were checked."
        )
    if result.no_hash and not quick:
        lines.append(f"Note: {result.no_hash:,} files have no recorded hash; sizes checked.")
    return lines


def requeue(backup_dir: Path, problems: list[Problem]) -> int:
    """Mark the files behind `problems` as pending so the next resume downloads them again.

    Takes the backup's lock (it writes the state): fails with StateError while a run is active.
    """
    with BackupState.open(backup_dir) as state:
        for p in problems:
            state.requeue(p.item_id, f"verify: {p.problem}")
    return len(problems)
