"""DriveSpec and the deterministic drive generator."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from onedrive_backup.emulator import names
from onedrive_backup.emulator.content import mix64
from onedrive_backup.emulator.drive import FOLDER, MALWARE, PACKAGE, Drive, Item

T2015 = 1420070400  # 2015-01-01T00:00:00Z
YEARS = range(2015, 2025)


@dataclass
class DriveSpec:
    """What drive to generate; the same spec always gives the same drive."""

    files: int = 200
    seed: int = 1
    size_range: tuple[int, int] = (1, 256 * 1024)  # log-uniform, bytes
    large_files: list[int] = field(default_factory=list)  # extra videos of these sizes
    drive_type: str = "personal"  # or "business"
    hostile_names: bool = False
    notebook: bool = True
    zero_byte_files: int = 2
    deep_levels: int = 12
    malware_files: int = 0
    user_name: str = "Emulated User"
    user_email: str = "emulated.user@outlook.com"
    # A second drive (another user's) with a folder and a file shared with this user, and
    # "Add to My files" shortcuts to both at the top of this drive (see _shared_items).
    shared_items: bool = False


_CATEGORIES: list[tuple[float, str, Callable[[random.Random, int], str]]] = [
    (0.45, "photos", names.photo_name),
    (0.10, "videos", names.video_name),
    (0.25, "documents", names.doc_name),
    (0.12, "music", names.music_name),
    (0.08, "archives", names.archive_name),
]


class _Builder:
    def __init__(self, spec: DriveSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        drive_id = f"{mix64(spec.seed, 7) & ((1 << 64) - 1):016X}"
        if spec.drive_type == "business":
            drive_id = "b!" + f"{mix64(spec.seed, 8):016x}{mix64(spec.seed, 9):016x}"
        quota = (1 << 40) if spec.drive_type == "business" else 5 * (1 << 30)
        self.drive = Drive(
            drive_id=drive_id,
            drive_type=spec.drive_type,
            seed=spec.seed,
            created=T2015,
            quota_total=quota,
        )
        self.folders: dict[str, Item] = {}
        self.used: dict[int, set[str]] = {}
        self.counter = 1000

    def time(self) -> int:
        return T2015 + self.rng.randrange(10 * 365 * 86400)

    def folder(self, path: str, flags: int = FOLDER) -> Item:
        if path in self.folders:
            return self.folders[path]
        parent_path, _, name = path.rpartition("/")
        parent = self.folder(parent_path) if parent_path else self.drive.root
        item = self.drive.new_folder(parent, name, self.time(), flags)
        self.folders[path] = item
        return item

    def file(self, parent: Item, name: str, size: int | None = None, flags: int = 0) -> Item:
        taken = self.used.setdefault(parent.num, set())
        base, dot, ext = name.rpartition(".")
        stem, n = (base, 2) if dot else (name, 2)
        while name.casefold() in taken:  # OneDrive is case-insensitive
            name = f"{stem} ({n}).{ext}" if dot else f"{stem} ({n})"
            n += 1
        taken.add(name.casefold())
        return self.drive.new_file(
            parent, name, self.size() if size is None else size, self.time(), flags
        )

    def size(self) -> int:
        lo, hi = self.spec.size_range
        return int(math.exp(self.rng.uniform(math.log(max(1, lo)), math.log(max(1, hi)))))

    def category_folder(self, category: str) -> str:
        r = self.rng
        if category == "photos":
            return f"Photos/{r.choice(YEARS)}/{r.choice(names.MONTHS)}"
        if category == "videos":
            return f"Videos/{r.choice(YEARS)}"
        if category == "documents":
            return f"Documents/{r.choice(names.DOC_FOLDERS)}"
        if category == "music":
            return f"Music/{r.choice(names.ARTISTS)}/{r.choice(names.ALBUMS)}"
        return "Archives"

    def regular_files(self, count: int) -> None:
        weights = [w for w, _, _ in _CATEGORIES]
        for _ in range(count):
            _, category, make = self.rng.choices(_CATEGORIES, weights)[0]
            self.counter += 1
            self.file(self.folder(self.category_folder(category)), make(self.rng, self.counter))


def build_drive(spec: DriveSpec) -> Drive:
    """Generate the drive `spec` describes."""
    b = _Builder(spec)
    special = 0
    deep = "/".join(["Projects", *(f"level {i:02d}" for i in range(1, spec.deep_levels + 1))])
    b.file(b.folder(deep), "deep file.txt")
    special += 1
    for i in range(spec.zero_byte_files):
        b.file(b.folder("Documents"), "empty.txt" if i == 0 else f"empty {i}.log", size=0)
        special += 1
    if spec.notebook:
        book = b.folder("Documents/My Notebook", PACKAGE)
        for name in ("Open Notebook.onetoc2", "Quick Notes.one", "Section 1.one"):
            b.file(book, name)
            special += 1
    b.file(b.folder("Shared Stuff/Ünïcödé Földer 🎉"), "Café crème.txt")
    special += 1
    for size in spec.large_files:
        b.file(b.folder("Videos/Large"), f"VID_LARGE_{size}.MP4", size=size)
    for i in range(spec.malware_files):
        b.file(b.folder("Downloads"), f"totally-safe-{i}.exe", flags=MALWARE)
        special += 1
    if spec.hostile_names:
        special += _hostile(b)
    b.regular_files(max(0, spec.files - special))
    if spec.shared_items:
        _shared_items(b)
    return b.drive


SHARED_OWNER = "Sharing Owner"
SHARED_FOLDER = "Family Photos"
SHARED_FILE = "Budget 2024.xlsx"


def _shared_items(b: _Builder) -> None:
    """The owner's drive: a shared folder (with a subfolder, an awkward name and an empty
    file), a shared file, and a private folder; shortcuts to the shared two in ours."""
    spec = b.spec
    owner = _Builder(
        DriveSpec(files=0, seed=spec.seed + 7919, drive_type=spec.drive_type, notebook=False)
    )
    owner.drive.owner_name = SHARED_OWNER
    album = owner.folder(SHARED_FOLDER)
    for i in range(1, 4):
        owner.file(album, f"IMG_{i:04d}.JPG")
    owner.file(owner.folder(f"{SHARED_FOLDER}/2023 Beach"), "Beach.jpg")
    owner.file(owner.folder(f"{SHARED_FOLDER}/2023 Beach"), "Q&A: plans?.txt")
    owner.file(album, "empty.txt", size=0)
    budget = owner.file(owner.drive.root, SHARED_FILE)
    owner.file(owner.folder("Private"), "not shared.txt")
    owner.drive.share(album)
    owner.drive.share(budget)
    b.drive.add_shortcut(b.drive.root, SHARED_FOLDER, owner.drive, album)
    b.drive.add_shortcut(b.drive.root, SHARED_FILE, owner.drive, budget)


def _hostile(b: _Builder) -> int:
    folder = b.folder("Hostile")
    for name in names.hostile_names():
        b.drive.new_file(folder, name, b.size(), b.time())
    b.drive.new_file(b.folder("Hostile/nested"), "inside.txt", 10, b.time())
    return len(names.hostile_names()) + 1
