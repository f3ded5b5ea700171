"""Selection: categories, folder subtrees, include/exclude globs (exclude wins)."""

from __future__ import annotations

import pytest

from onedrive_backup.errors import UsageError
from onedrive_backup.selection import CATEGORIES, Selection


def test_all_selects_everything() -> None:
    sel = Selection.all()
    assert sel.matches("/a/b/no-extension")
    assert sel.matches("/x.exe")


@pytest.mark.parametrize(
    ("category", "path"),
    [
        ("photos", "/Pictures/IMG_0001.JPG"),
        ("photos", "/raw/_MG_1.CR2"),
        ("photos", "/raw/a.rw2"),
        ("photos", "/p/x.HEIC"),
        ("videos", "/v/clip.m2ts"),
        ("documents", "/Docs/Notebook/Section.one"),
        ("documents", "/Docs/Notebook/Open Notebook.onetoc2"),
        ("documents", "/Docs/budget.numbers"),
        ("music", "/m/song.aif"),
        ("archives", "/a/backup.tgz"),
    ],
)
def test_category_extensions(category: str, path: str) -> None:
    assert Selection.build(categories=[category]).matches(path)
    others = [c for c in CATEGORIES if c != category]
    assert not Selection.build(categories=others).matches(path)


def test_categories_combine() -> None:
    sel = Selection.build(categories=["photos", "videos"])
    assert sel.matches("/a.jpg") and sel.matches("/a.mov")
    assert not sel.matches("/a.pdf")
    assert not sel.matches("/jpg")  # no extension


def test_unknown_category_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        Selection.build(categories=["pictures"])


def test_folders_are_case_insensitive_subtrees() -> None:
    sel = Selection.build(folders=["pictures/2020/", "/Documents"])
    assert sel.folders == ("/documents", "/pictures/2020")
    assert sel.matches("/Pictures/2020/a.jpg")
    assert sel.matches("/PICTURES/2020/deep/er/a.jpg")
    assert not sel.matches("/Pictures/2020b/a.jpg")  # a sibling with the same prefix
    assert not sel.matches("/Pictures/a.jpg")
    assert sel.matches("/documents/x.txt")


def test_folder_root_means_everything_and_dotdot_refused() -> None:
    assert Selection.build(folders=["/"]).folders == ()
    with pytest.raises(UsageError):
        Selection.build(folders=["/a/../b"])


def test_globs_name_and_path_and_exclude_wins() -> None:
    sel = Selection.build(include=["*.JPG", "/Docs/*"], exclude=["*private*"])
    assert sel.matches("/Pictures/a.jpg")  # name glob, case-insensitive
    assert sel.matches("/docs/sub/report.pdf")  # path glob: * crosses folders
    assert not sel.matches("/Other/report.pdf")
    assert not sel.matches("/Docs/private/report.pdf")  # exclude wins over include
    assert not sel.matches("/Pictures/private.jpg")


def test_exclude_only() -> None:
    sel = Selection.build(exclude=["*.tmp", "Cache/*"])
    assert sel.matches("/a.txt")
    assert not sel.matches("/x/y.TMP")
    assert not sel.matches("/Cache/z.bin")
    assert sel.matches("/Other/Cache.bin")


def test_json_round_trip_and_equality() -> None:
    sel = Selection.build(
        categories=["videos", "photos"], folders=["/A"], include=["*.x"], exclude=["*.y"]
    )
    again = Selection.from_json(sel.to_json())
    assert again == sel
    assert again.to_json() == sel.to_json()
    assert Selection.from_json(Selection.all().to_json()) == Selection.all()
    assert "photos" in sel.describe()


def test_unicode_normalisation_in_folders() -> None:
    nfd_folder = "Re\u0301sume\u0301s"  # decomposed é
    sel = Selection.build(folders=[nfd_folder])
    assert sel.matches("/R\u00e9sum\u00e9s/cv.pdf")  # composed é


def test_name_glob_matches_any_folder_along_the_path() -> None:
    sel = Selection.build(exclude=["node_modules"])
    assert not sel.matches("/code/app/node_modules/x/index.js")
    assert sel.matches("/code/app/src/index.js")
