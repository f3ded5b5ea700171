"""One oracle for every scenario: the emulated drive, the files on disk and the state agree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from onedrive_backup.download import file_quickxorhash
from onedrive_backup.state import BackupState

STATE_DIR = ".onedrive-backup"
VERSIONS_DIR = ".versions"


def live_files(backup_dir: Path) -> set[str]:
    """Relative POSIX paths of every file in the live tree (state and versions excluded)."""
    out: set[str] = set()
    for path in backup_dir.rglob("*"):
        rel = path.relative_to(backup_dir)
        if rel.parts[0] in (STATE_DIR, VERSIONS_DIR) or not path.is_file():
            continue
        out.add(rel.as_posix())
    return out


def assert_backup_matches(
    emu: Any,
    backup_dir: Path | None,
    *,
    selected: Callable[[Any], bool] | None = None,
    allow_unverified: frozenset[str] = frozenset(),
    also: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Every selected drive file is done, on disk at its recorded path, with the same size,
    quickXorHash and mtime; the live tree holds nothing else (but the local paths `also`,
    checked by the caller, e.g. shared items); no partial files are left."""
    assert backup_dir is not None, "the run produced no backup folder"
    expected = [
        f
        for f in emu.drive.iter_files()
        if not f.is_folder and not f.malware and (selected is None or selected(f))
    ]
    state = BackupState.open(backup_dir, read_only=True)
    try:
        seen_paths: set[str] = set()
        for f in expected:
            rec = state.get_file(f.id)
            assert rec is not None, f"{f.path}: not in the state"
            want = "unverified" if f.id in allow_unverified else "done"
            assert rec.status == want, f"{f.path}: status {rec.status} ({rec.last_error})"
            assert rec.local_path, f"{f.path}: no local path"
            local = backup_dir / rec.local_path
            assert local.is_file(), f"{f.path}: missing on disk at {rec.local_path}"
            assert local.stat().st_size == f.size, f"{f.path}: size differs"
            if f.quickxorhash is not None and f.id not in allow_unverified:
                digest = file_quickxorhash(local)[0].b64digest()
                assert digest == f.quickxorhash, f"{f.path}: content differs"
            assert abs(local.stat().st_mtime - f.mtime.timestamp()) < 1.0, f"{f.path}: mtime"
            seen_paths.add(rec.local_path)
    finally:
        state.close()
    extra = live_files(backup_dir) - seen_paths - set(also)
    assert not extra, f"files in the backup that the drive does not have: {sorted(extra)[:5]}"
    partial = backup_dir / STATE_DIR / "partial"
    leftovers = list(partial.glob("*.part")) if partial.exists() else []
    assert not leftovers, f"partial files left behind: {leftovers[:3]}"
