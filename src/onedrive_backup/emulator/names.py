"""Realistic (and deliberately hostile) file and folder names, and mime types by extension."""

from __future__ import annotations

import random
import unicodedata

MIME_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "heic": "image/heic",
    "png": "image/png",
    "cr2": "image/x-canon-cr2",
    "nef": "image/x-nikon-nef",
    "dng": "image/x-adobe-dng",
    "mov": "video/quicktime",
    "mp4": "video/mp4",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "zip": "application/zip",
    "one": "application/msonenote",
    "onetoc2": "application/msonenote",
}


def mime_type(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return MIME_TYPES.get(ext, "application/octet-stream")


MONTHS = ("01 January", "02 February", "03 March", "04 April", "05 May", "06 June")
ARTISTS = ("The Beatles", "Björk", "Sigur Rós", "坂本龍一", "AC⚡DC Tribute", "Daft Punk")
ALBUMS = ("Greatest Hits", "Live at Wembley", "Ágætis byrjun", "Discovery", "B-Sides & Rarities")
DOC_FOLDERS = ("Work", "Taxes 2021", "Résumés", "School Notes", "Recipes 🍰", "Contracts")
DOC_STEMS = ("Report Q{q} {y}", "Invoice {n}", "Budget {y}", "notes {n}", "Résumé {n}")
DOC_STEMS_UNI = (
    "Café crème {n}",
    "日本語のファイル {n}",
    "Ünïcödé Dökümënt {n}",
    "🎉 Party plan {n}",
)


def photo_name(rng: random.Random, n: int) -> str:
    kind = rng.random()
    if kind < 0.45:
        return f"IMG_{n:04d}.JPG"
    if kind < 0.65:
        return f"IMG_{n:04d}.HEIC"
    if kind < 0.75:
        return f"_MG_{n:04d}.CR2"
    if kind < 0.85:
        return f"DSC_{n:04d}.NEF"
    if kind < 0.92:
        return f"PXL_2021{n:04d}_{n * 7 % 1000000:06d}.dng"
    return f"🌅 Sunset {n}.jpg"


def video_name(rng: random.Random, n: int) -> str:
    return f"IMG_{n:04d}.MOV" if rng.random() < 0.5 else f"VID_2020{n:04d}_{n % 997:03d}.mp4"


def doc_name(rng: random.Random, n: int) -> str:
    stems = DOC_STEMS_UNI if rng.random() < 0.2 else DOC_STEMS
    stem = rng.choice(stems).format(q=n % 4 + 1, y=2015 + n % 9, n=n)
    return stem + rng.choice((".docx", ".pdf", ".xlsx", ".txt"))


def music_name(rng: random.Random, n: int) -> str:
    return f"{n % 20 + 1:02d} - Track {n}" + (".mp3" if rng.random() < 0.7 else ".flac")


def archive_name(rng: random.Random, n: int) -> str:
    return f"backup-{2010 + n % 14}-{n}.zip"


def hostile_names() -> list[str]:
    """Names OneDrive would refuse or a local filesystem cannot hold, served anyway."""
    cafe = "Café.txt"
    long_name = "é" * 148 + ".txt"  # 300 bytes of UTF-8
    return [
        "back\\slash.txt",
        "..",
        "a/b",
        "..hidden..",
        "colon:name.txt",
        "what?.txt",
        "star*.txt",
        "<angle>.txt",
        "pipe|name.txt",
        '"quoted".txt',
        " leading space.txt",
        "trailing space.txt ",
        "trailing dot.",
        ".leading dot",
        "CON",
        "nul.txt",
        "COM1.log",
        "ctrl\x01\x1fchars.txt",
        long_name,
        "emoji 👨‍👩‍👧‍👦 family.jpg",
        unicodedata.normalize("NFC", cafe),
        unicodedata.normalize("NFD", cafe),
        "README.md",
        "readme.MD",
    ]
