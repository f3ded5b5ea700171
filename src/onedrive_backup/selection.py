"""What to back up: categories by extension, folder subtrees, include/exclude globs.

All matching is on the remote display path ("/Pictures/2020/IMG_1.JPG"), case-insensitive.
A glob without "/" matches any one name along the path, as in .gitignore ("*.tmp", "Cache",
"*private*"); with "/" it matches the whole path from the top ("*" crosses folders).
A file is selected when it is in one of the folders (if any), in one of the categories,
matches an include (if any) and no exclude: exclude wins.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from onedrive_backup.errors import UsageError

_PHOTOS = "jpg jpeg png gif bmp tif tiff webp heic heif cr2 cr3 nef arw dng orf rw2 raf srw pef"
_VIDEOS = "mov mp4 m4v avi mkv wmv 3gp mts m2ts webm"
_DOCUMENTS = (
    "doc docx xls xlsx ppt pptx pdf txt md rtf odt ods odp csv pages numbers key one onetoc2"
)
_MUSIC = "mp3 m4a aac flac wav aiff aif ogg opus wma"
_ARCHIVES = "zip 7z rar tar gz tgz bz2 xz iso dmg"
CATEGORIES: dict[str, frozenset[str]] = {
    name: frozenset(extensions.split(" "))
    for name, extensions in (
        ("photos", _PHOTOS),
        ("videos", _VIDEOS),
        ("documents", _DOCUMENTS),
        ("music", _MUSIC),
        ("archives", _ARCHIVES),
    )
}
CATEGORY_NAMES = ("all", *CATEGORIES)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def normalize_folder(path: str) -> str:
    """ "Pictures/2020/" → "/pictures/2020" (folded, leading slash, no trailing slash)."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"--folder {path!r}: '..' is not allowed in a OneDrive path.")
    return "/" + "/".join(_fold(p) for p in parts) if parts else "/"


@dataclass(frozen=True)
class Selection:
    categories: frozenset[str] = frozenset({"all"})
    folders: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_shared: bool = False

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def all(cls) -> Selection:
        return cls()

    @classmethod
    def build(
        cls,
        categories: Iterable[str] = (),
        folders: Iterable[str] = (),
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        include_shared: bool = False,
    ) -> Selection:
        """Validate and normalise user input (flags, wizard, GUI)."""
        cats = frozenset(c.strip().lower() for c in categories if c.strip()) or {"all"}
        unknown = sorted(c for c in cats if c not in CATEGORY_NAMES)
        if unknown:
            raise UsageError(
                f"Unknown category {', '.join(unknown)}.",
                hint=f"Choose from: {', '.join(CATEGORY_NAMES)}.",
            )
        if "all" in cats:
            cats = {"all"}
        normalized = sorted({normalize_folder(f) for f in folders})
        if "/" in normalized:
            normalized = []
        return cls(
            categories=frozenset(cats),
            folders=tuple(normalized),
            include=tuple(dict.fromkeys(g.strip() for g in include if g.strip())),
            exclude=tuple(dict.fromkeys(g.strip() for g in exclude if g.strip())),
            include_shared=include_shared,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "categories": sorted(self.categories),
            "folders": list(self.folders),
            "include": list(self.include),
            "exclude": list(self.exclude),
            "include_shared": self.include_shared,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Selection:
        return cls.build(
            categories=data.get("categories") or (),
            folders=data.get("folders") or (),
            include=data.get("include") or (),
            exclude=data.get("exclude") or (),
            include_shared=bool(data.get("include_shared", False)),
        )

    def describe(self) -> str:
        parts = [", ".join(sorted(self.categories))]
        if self.folders:
            parts.append("in " + ", ".join(self.folders))
        if self.include:
            parts.append("including " + ", ".join(self.include))
        if self.exclude:
            parts.append("excluding " + ", ".join(self.exclude))
        return "; ".join(parts)

    # -- matching ------------------------------------------------------------------------------

    @cached_property
    def _extensions(self) -> frozenset[str] | None:
        if "all" in self.categories:
            return None
        return frozenset().union(*(CATEGORIES[c] for c in self.categories))

    @cached_property
    def _include(self) -> list[tuple[bool, re.Pattern[str]]]:
        return [_compile(g) for g in self.include]

    @cached_property
    def _exclude(self) -> list[tuple[bool, re.Pattern[str]]]:
        return [_compile(g) for g in self.exclude]

    def matches(self, remote_path: str) -> bool:
        """Is the file at `remote_path` ("/a/b.jpg") selected?"""
        path = _fold(remote_path)
        names = path.strip("/").split("/")
        name = names[-1]
        extensions = self._extensions
        if extensions is not None:
            ext = name.rsplit(".", 1)[-1] if "." in name else ""
            if ext not in extensions:
                return False
        if self.folders and not any(
            path.startswith(folder + "/") or path == folder for folder in self.folders
        ):
            return False
        if self._include and not any(_glob_hit(g, path, names) for g in self._include):
            return False
        return not any(_glob_hit(g, path, names) for g in self._exclude)

    __call__ = matches


def _compile(glob: str) -> tuple[bool, re.Pattern[str]]:
    """(matches the whole path?, compiled pattern) for a case-insensitive glob."""
    folded = _fold(glob.replace("\\", "/"))
    on_path = "/" in folded
    if on_path and not folded.startswith(("/", "*")):
        folded = "/" + folded
    return on_path, re.compile(fnmatch.translate(folded))


def _glob_hit(glob: tuple[bool, re.Pattern[str]], path: str, names: list[str]) -> bool:
    on_path, pattern = glob
    if on_path:
        return pattern.match(path) is not None
    return any(pattern.match(name) for name in names)
