"""Remote names to safe local names and paths; nothing escapes the backup folder (invariant 6).

A local name must be creatable on every filesystem our users back up to (exFAT, NTFS,
APFS/HFS+, ext4), so the rules are the union of theirs (graph-facts §10):

==========================  ===========================================================
remote                      local
==========================  ===========================================================
``/ \\ : * ? " < > |``      fullwidth forms ``／ ＼ ： ＊ ？ ＂ ＜ ＞ ｜`` (U+FF0F, U+FF3C,
                            U+FF1A, U+FF0A, U+FF1F, U+FF02, U+FF1C, U+FF1E, U+FF5C)
control U+0000-U+001F       Control Pictures ``␀``-``␟`` (U+2400-U+241F)
DEL U+007F                  ``␡`` (U+2421)
lone surrogate              ``�`` (U+FFFD), since no filesystem can store one
leading space               ``␠`` (U+2420), first character only
trailing space              ``␠`` (U+2420), last character only
trailing ``.``              ``．`` (U+FF0E), last character only; so ``.`` → ``．`` and
                            ``..`` → ``.．``
empty name                  ``_``
CON PRN AUX NUL COM0-9      ``_`` prefixed (``con.txt`` → ``_con.txt``); also COM¹²³,
LPT0-9 CONIN$ CONOUT$       LPT¹²³; matched case-insensitively on the part before the
                            first ``.``, ignoring trailing spaces, as Windows does
over 255 UTF-8 bytes or     stem cut at a character boundary (never inside a combining
255 UTF-16 units            sequence), then ``~`` + 8 hex digits of SHA-256 of the full
                            mapped name, then the extension (if 16 characters or fewer)
==========================  ===========================================================

The replacements follow rclone's encoder (lib/encoder) so names look the same as they do
in other tools, but unlike rclone we do not escape pre-existing fullwidth characters: the
mapping is one way and the state database stores the remote name beside the local one.
Two remote names may therefore map to one local name (``a:b`` and ``a：b``), and names
differing only in case or normalisation collide on most of those filesystems; callers
detect both with :func:`collision_key` and resolve them with :func:`disambiguate`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import unicodedata
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Final

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_NAME_UTF16",
    "UnsafePathError",
    "collision_key",
    "disambiguate",
    "ensure_inside",
    "is_probably_case_insensitive",
    "local_relpath",
    "safe_name",
]

MAX_NAME_BYTES: Final = 255  # ext4, btrfs, XFS, APFS: bytes of UTF-8
# NTFS, exFAT: UTF-16 code units. No character takes more UTF-16 units than UTF-8 bytes,
# so the byte limit always binds first; the check stays to state the rule in code.
MAX_NAME_UTF16: Final = 255
_MAX_EXT_CHARS: Final = 16  # a longer "extension" is treated as part of the stem

_CHAR_MAP: Final[dict[int, str]] = {
    ord("/"): "\uff0f",
    ord("\\"): "\uff3c",
    ord(":"): "\uff1a",
    ord("*"): "\uff0a",
    ord("?"): "\uff1f",
    ord('"'): "\uff02",
    ord("<"): "\uff1c",
    ord(">"): "\uff1e",
    ord("|"): "\uff5c",
    0x7F: "\u2421",
    **{c: chr(0x2400 + c) for c in range(0x20)},
    **{c: "\ufffd" for c in range(0xD800, 0xE000)},
}
_SPACE_PICTURE: Final = "\u2420"
_FULLWIDTH_DOT: Final = "\uff0e"

_RESERVED: Final = frozenset(
    ["con", "prn", "aux", "nul", "conin$", "conout$"]
    + [f"{dev}{d}" for dev in ("com", "lpt") for d in "0123456789\u00b9\u00b2\u00b3"]
)

# Characters that continue the previous one visually: a cut must not fall before them.
_ZWJ: Final = "\u200d"


class UnsafePathError(ValueError):
    """A local path would leave the backup folder or is not a plain relative path."""


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fits(text: str) -> bool:
    size = len(text.encode("utf-8"))
    # A character never takes more UTF-16 units than UTF-8 bytes: most names stop here.
    return size <= MAX_NAME_BYTES and (
        size <= MAX_NAME_UTF16 or _utf16_units(text) <= MAX_NAME_UTF16
    )


def _continues_previous(ch: str) -> bool:
    cp = ord(ch)
    return (
        unicodedata.combining(ch) != 0
        or unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or ch == _ZWJ
        or 0xFE00 <= cp <= 0xFE0F  # variation selectors
        or 0xE0100 <= cp <= 0xE01EF
        or 0x1F3FB <= cp <= 0x1F3FF  # emoji skin tones
        or 0xE0020 <= cp <= 0xE007F  # emoji tag sequences
    )


def _split_ext(name: str) -> tuple[str, str]:
    dot = name.rfind(".")
    if dot <= 0 or len(name) - dot > _MAX_EXT_CHARS:
        return name, ""
    return name[:dot], name[dot:]


def _fit(stem: str, tag: str, ext: str) -> str:
    """``stem + tag + ext`` with the stem cut short, at a cluster boundary, to fit the limits."""
    if not _fits(ext):  # an extension this long cannot be kept whole
        stem, ext = stem + ext, ""
    budget_bytes = MAX_NAME_BYTES - len((tag + ext).encode("utf-8"))
    budget_units = MAX_NAME_UTF16 - _utf16_units(tag + ext)
    cut = 0
    for ch in stem:
        budget_bytes -= len(ch.encode("utf-8"))
        budget_units -= 2 if ord(ch) > 0xFFFF else 1
        if budget_bytes < 0 or budget_units < 0:
            break
        cut += 1
    while 0 < cut < len(stem) and (
        _continues_previous(stem[cut]) or stem[cut - 1] == _ZWJ or _regional_pair(stem, cut)
    ):
        cut -= 1
    return stem[:cut] + tag + ext


def _regional_pair(text: str, cut: int) -> bool:
    # Flags are pairs of regional indicators; do not keep half of one.
    def is_ri(ch: str) -> bool:
        return 0x1F1E6 <= ord(ch) <= 0x1F1FF

    if not (is_ri(text[cut - 1]) and is_ri(text[cut])):
        return False
    run = 0
    while cut - run - 1 >= 0 and is_ri(text[cut - run - 1]):
        run += 1
    return run % 2 == 1


def _is_reserved(name: str) -> bool:
    return name.split(".", 1)[0].rstrip(" ").casefold() in _RESERVED


def safe_name(name: str) -> str:
    """One path component for ``name`` that every supported filesystem accepts (table above)."""
    mapped = unicodedata.normalize("NFC", name).translate(_CHAR_MAP)
    if not mapped:
        return "_"
    if mapped[0] == " ":
        mapped = _SPACE_PICTURE + mapped[1:]
    if mapped[-1] == " ":
        mapped = mapped[:-1] + _SPACE_PICTURE
    elif mapped[-1] == ".":
        mapped = mapped[:-1] + _FULLWIDTH_DOT
    if _is_reserved(mapped):
        mapped = "_" + mapped
    if _fits(mapped):
        return mapped
    # The hash keeps long names that share a prefix apart after the cut.
    tag = "~" + hashlib.sha256(mapped.encode("utf-8")).hexdigest()[:8]
    stem, ext = _split_ext(mapped)
    return _fit(stem, tag, ext)


def collision_key(name: str) -> str:
    """Names with equal keys are one file on a case- and normalisation-insensitive disk.

    Case folding is Unicode's, a little broader than NTFS's upcase table (``ß`` = ``ss``),
    so it may report a collision the disk would not have: harmless, the name gets a suffix.
    """
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def disambiguate(name: str, n: int) -> str:
    """``photo.jpg``, 2 → ``photo (2).jpg``: the ``n``-th variant of a safe name."""
    if n < 1:
        raise ValueError(f"variant number must be positive, got {n}")
    stem, ext = _split_ext(safe_name(name))
    return _fit(stem, f" ({n})", ext)


def local_relpath(components: Sequence[str]) -> PurePosixPath:
    """Join already-safe names into a relative path; refuses names :func:`safe_name` changes."""
    if not components:
        raise UnsafePathError("a local path needs at least one name")
    for component in components:
        if safe_name(component) != component:
            raise UnsafePathError(f"not a safe local name: {component!r}")
    return PurePosixPath(*components)


def ensure_inside(root: Path, relpath: PurePosixPath | str) -> Path:
    """The absolute path of ``relpath`` under ``root``, refusing anything that would land outside.

    Refused: absolute paths, drive letters and UNC prefixes, ``..``, backslashes, NUL, and any
    path that leaves ``root`` once existing symlinks are followed (parents and the final name).
    The check is as good as the disk at the moment of the call; the download code writes to a
    temporary file in the same folder and renames, which keeps the window small.
    """
    text = str(relpath)
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        raise UnsafePathError(f"path cannot be stored on this system: {text!r}") from None
    if not text or text == "." or "\x00" in text or "\\" in text:
        raise UnsafePathError(f"not a plain relative path: {text!r}")
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).anchor:
        raise UnsafePathError(f"absolute path where a relative one was expected: {text!r}")
    parts = PurePosixPath(text).parts
    if any(part in ("..", ".") for part in parts):
        raise UnsafePathError(f"path steps outside its folder: {text!r}")
    base = root.resolve()
    candidate = base.joinpath(*parts)
    # resolve() follows every symlink that exists along the way, the last name included.
    real = candidate.resolve()
    if real != base and not real.is_relative_to(base):
        raise UnsafePathError(f"path leads outside the backup folder: {text!r}")
    return candidate


def is_probably_case_insensitive(directory: Path) -> bool:
    """Probe ``directory`` with a temporary file: does a case-swapped name find it?"""
    probe = directory / f".onedrive-backup-case-probe-{secrets.token_hex(4)}-aB"
    fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.close(fd)
        try:
            os.stat(directory / probe.name.swapcase())
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return False
            raise
        return True
    finally:
        probe.unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    """Make renames in `path` durable on POSIX (best effort); Windows has no directory handles
    to fsync, and a folder removed meanwhile needs nothing."""
    if os.name == "nt":
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
