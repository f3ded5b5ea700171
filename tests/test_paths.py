"""Remote names to safe local names; every final path stays inside the backup folder."""

from __future__ import annotations

import hashlib
import os
import sys
import unicodedata
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from onedrive_backup.paths import (
    UnsafePathError,
    collision_key,
    disambiguate,
    ensure_inside,
    is_probably_case_insensitive,
    local_relpath,
    safe_name,
)

WINDOWS_FORBIDDEN = set('/\\:*?"<>|') | {chr(c) for c in range(0x20)} | {"\x7f"}
WINDOWS_DEVICES = {"con", "prn", "aux", "nul", "conin$", "conout$"} | {
    f"{dev}{d}" for dev in ("com", "lpt") for d in "0123456789¹²³"
}


def assert_portable(local: str) -> None:
    """The rules of exFAT, NTFS/Win32, APFS and ext4 together, written independently."""
    assert local not in ("", ".", "..")
    assert not set(local) & WINDOWS_FORBIDDEN, local
    assert not local.endswith((" ", ".")), local
    assert not local.startswith(" "), local
    assert local.split(".", 1)[0].rstrip(" ").lower() not in WINDOWS_DEVICES, local
    assert len(local.encode("utf-8")) <= 255
    assert len(local.encode("utf-16-le")) // 2 <= 255
    assert unicodedata.is_normalized("NFC", local)


HOSTILE: list[tuple[str, str]] = [
    ("plain.txt", "plain.txt"),
    ("a/b", "a／b"),
    ("a\\b", "a＼b"),
    ("../../etc/passwd", "..／..／etc／passwd"),
    ("..", ".．"),
    (".", "．"),
    ("...", "..．"),
    ("", "_"),
    ("x\x00y", "x␀y"),
    ("\x00", "␀"),
    ("tab\there\nnewline\x1f", "tab␉here␊newline␟"),
    ("del\x7f", "del␡"),
    ('what?*"<>|:', "what？＊＂＜＞｜："),
    ("C:", "C："),
    ("name.", "name．"),
    ("name. .", "name. ．"),
    ("name ", "name␠"),
    (" name", "␠name"),
    ("   ", "␠ ␠"),
    (" ", "␠"),
    ("CON", "_CON"),
    ("con.txt", "_con.txt"),
    ("Aux.tar.gz", "_Aux.tar.gz"),
    ("nul .txt", "_nul .txt"),
    ("COM1", "_COM1"),
    ("lpt9.log", "_lpt9.log"),
    ("COM¹", "_COM¹"),
    ("CONOUT$", "_CONOUT$"),
    ("CONSOLE.txt", "CONSOLE.txt"),
    ("COM10", "COM10"),
    ("con", "_con"),
    ("e\u0301t\u0301e\u0301.txt", "ét́é.txt"),  # NFD in, NFC out
    ("été.txt", "été.txt"),
    ("😀 party 🎉.jpg", "😀 party 🎉.jpg"),
    ("\ud800lone", "\ufffdlone"),
    (".bashrc", ".bashrc"),
    ("Photo.JPG", "Photo.JPG"),
    ("a／b", "a／b"),  # already fullwidth: unchanged (one-way mapping, see module doc)
]


@pytest.mark.parametrize(("remote", "expected"), HOSTILE)
def test_hostile_names_table(remote: str, expected: str) -> None:
    local = safe_name(remote)
    assert local == expected
    assert_portable(local)
    assert safe_name(local) == local


def tag_of(mapped: str) -> str:
    return "~" + hashlib.sha256(mapped.encode("utf-8")).hexdigest()[:8]


def test_long_ascii_name_keeps_extension_and_gets_hash() -> None:
    remote = "a" * 300 + ".jpeg"
    local = safe_name(remote)
    assert len(local.encode()) == 255
    assert local == "a" * (255 - 9 - 5) + tag_of(remote) + ".jpeg"


def test_long_multibyte_name_cut_by_bytes_not_characters() -> None:
    remote = "é" * 200 + ".txt"  # 404 bytes, 204 UTF-16 units: only the byte limit binds
    local = safe_name(remote)
    assert local.endswith(tag_of(remote) + ".txt")
    assert local.startswith("é" * 121)
    assert len(local.encode()) <= 255
    assert len(local.encode()) > 255 - 2  # no more than one character short


def test_long_emoji_name_never_splits_a_character_or_cluster() -> None:
    family = "👨\u200d👩\u200d👧"  # one visible emoji, five code points, 18 bytes
    remote = family * 20 + ".png"
    local = safe_name(remote)
    stem = local.removesuffix(tag_of(remote) + ".png")
    assert stem and len(stem) % len(family) == 0 and stem == family * (len(stem) // len(family))
    assert_portable(local)


def test_astral_characters_are_never_split() -> None:
    # Every character takes at least as many UTF-8 bytes as UTF-16 units, so the 255-byte
    # limit always binds first; this checks surrogate pairs survive the cut whole.
    remote = "a" + "𝒜" * 100  # 401 bytes, 201 UTF-16 units
    local = safe_name(remote)
    assert local == "a" + "𝒜" * 61 + tag_of(remote)
    assert_portable(local)


def test_long_names_sharing_a_prefix_stay_distinct() -> None:
    base = "Quarterly report " * 20
    one, two = safe_name(base + "draft.docx"), safe_name(base + "final.docx")
    assert one != two
    assert one.endswith(".docx") and two.endswith(".docx")


def test_overlong_extension_is_not_preserved_whole() -> None:
    remote = "x." + "y" * 300
    local = safe_name(remote)
    assert_portable(local)
    assert local.endswith(tag_of(remote))


@pytest.mark.parametrize(
    ("name", "n", "expected"),
    [
        ("photo.jpg", 2, "photo (2).jpg"),
        ("photo", 3, "photo (3)"),
        (".bashrc", 2, ".bashrc (2)"),
        ("archive.tar.gz", 2, "archive.tar (2).gz"),
        ("Photo.JPG", 10, "Photo (10).JPG"),
    ],
)
def test_disambiguate(name: str, n: int, expected: str) -> None:
    assert disambiguate(name, n) == expected


def test_disambiguate_respects_length_limit_and_rejects_bad_numbers() -> None:
    long_local = safe_name("b" * 400 + ".mp4")
    variant = disambiguate(long_local, 12)
    assert variant.endswith(" (12).mp4")
    assert len(variant.encode()) == 255
    assert_portable(variant)
    with pytest.raises(ValueError):
        disambiguate("photo.jpg", 0)


def test_collision_keys() -> None:
    assert collision_key("Photo.JPG") == collision_key("photo.jpg")
    assert collision_key("e\u0301.txt") == collision_key("é.txt") == collision_key("É.TXT")
    assert collision_key("Straße") == collision_key("STRASSE")
    assert collision_key("photo.jpg") != collision_key("photo.jpeg")
    assert collision_key("a") != collision_key("b")


def test_local_relpath_joins_safe_names_and_refuses_others() -> None:
    assert local_relpath(["Documents", "a／b", "été.txt"]) == PurePosixPath(
        "Documents/a／b/été.txt"
    )
    for bad in (["a", ".."], ["."], ["a/b"], [""], ["x\x00"], ["CON"], ["trailing."], []):
        with pytest.raises(UnsafePathError):
            local_relpath(bad)


def test_ensure_inside_accepts_nested_paths(tmp_path: Path) -> None:
    root = tmp_path / "backup"
    root.mkdir()
    assert ensure_inside(root, "a/b/c.txt") == root.resolve() / "a" / "b" / "c.txt"
    assert ensure_inside(root, PurePosixPath("x.txt")) == root.resolve() / "x.txt"
    (root / "real").mkdir()
    (root / "link").symlink_to(root / "real")
    assert ensure_inside(root, "link/f.txt") == root.resolve() / "link" / "f.txt"


@pytest.mark.parametrize(
    "relpath",
    [
        "../outside.txt",
        "a/../../outside.txt",
        "a/..",
        "..",
        "/etc/passwd",
        "C:/Windows/x",
        "C:x",
        "//server/share/x",
        "a\\..\\..\\x",
        "a/b\x00c",
        "",
        ".",
    ],
)
def test_ensure_inside_refuses_escapes(tmp_path: Path, relpath: str) -> None:
    with pytest.raises(UnsafePathError):
        ensure_inside(tmp_path, relpath)


def test_ensure_inside_refuses_symlinked_parent_and_target(tmp_path: Path) -> None:
    root, outside = tmp_path / "backup", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "evil").symlink_to(outside)
    (root / "deep").mkdir()
    (root / "deep" / "evil").symlink_to(outside, target_is_directory=True)
    (root / "file-link").symlink_to(outside / "victim.txt")
    for relpath in ("evil/x.txt", "deep/evil/sub/x.txt", "file-link"):
        with pytest.raises(UnsafePathError):
            ensure_inside(root, relpath)


def test_every_mapped_hostile_name_is_creatable(tmp_path: Path) -> None:
    names = [remote for remote, _ in HOSTILE] + [
        "a" * 300 + ".jpeg",
        "é" * 200 + ".txt",
        "👨\u200d👩\u200d👧" * 20 + ".png",
        "a" + "𝒜" * 100,
        "x." + "y" * 300,
    ]
    locals_ = {safe_name(remote) for remote in names}
    for local in locals_:
        (tmp_path / local).write_bytes(b"x")
    assert set(os.listdir(tmp_path)) == locals_


def test_case_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    result = is_probably_case_insensitive(tmp_path)
    if sys.platform.startswith("linux"):
        assert result is False
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=400))
@example("\x00")
@example("..")
@example("COM¹.")
@example(" " * 300)
@example("\u0301" * 300)
def test_safe_name_properties(remote: str) -> None:
    local = safe_name(remote)
    assert_portable(local)
    assert safe_name(local) == local
    assert local_relpath([local]) == PurePosixPath(local)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=1, max_value=10**6))
def test_disambiguate_properties(remote: str, n: int) -> None:
    variant = disambiguate(safe_name(remote), n)
    assert_portable(variant)
    assert safe_name(variant) == variant
    assert f" ({n})" in variant


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=20), min_size=1, max_size=6))
def test_ensure_inside_never_escapes(
    tmp_path_factory: pytest.TempPathFactory, parts: list[str]
) -> None:
    root = tmp_path_factory.getbasetemp() / "prop-root"
    root.mkdir(exist_ok=True)
    relpath = "/".join(parts)
    try:
        final = ensure_inside(root, relpath)
    except UnsafePathError:
        return
    assert final.is_relative_to(root.resolve()) and final != root.resolve()
    safe = local_relpath([safe_name(p) for p in parts])
    assert ensure_inside(root, safe).parent.is_relative_to(root.resolve())


@pytest.mark.skipif(sys.platform == "win32", reason="NTFS stores lone surrogates")
def test_ensure_inside_refuses_unencodable_names(tmp_path: Path) -> None:
    with pytest.raises(UnsafePathError):
        ensure_inside(tmp_path, "a/\ud800.txt")
