"""Delta paging: opaque tokens for enumeration pages, change pages and delta links."""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass

from onedrive_backup.emulator.drive import Drive, Item
from onedrive_backup.emulator.tokens import b64url


@dataclass(frozen=True)
class Cursor:
    """Where a delta request continues: kind E (enumerate), C (changes) or D (delta link)."""

    kind: str
    epoch: int
    seq: int  # E: snapshot seq the final deltaLink carries; C: last seq of this round
    pos: int = 0  # E: listing position; C: change-log index
    end: int = 0  # E: number of items when the enumeration started
    issued: int = 0

    def encode(self) -> str:
        raw = f"{self.kind}.{self.epoch}.{self.seq}.{self.pos}.{self.end}.{self.issued}"
        return b64url(raw.encode())

    @staticmethod
    def decode(token: str) -> Cursor | None:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            kind, *nums = raw.split(".")
            epoch, seq, pos, end, issued = (int(n) for n in nums)
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
        if kind not in ("E", "C", "D"):
            return None
        return Cursor(kind, epoch, seq, pos, end, issued)


def start_cursor(drive: Drive, token: str | None, lifetime: float | None = None) -> Cursor | None:
    """The cursor a request starts from; None: the token is unknown, stale or expired (410)."""
    with drive.lock:
        now = int(time.time())
        if token is None:
            return Cursor("E", drive.epoch, drive.seq, 0, len(drive.items), now)
        if token == "latest":
            return Cursor("D", drive.epoch, drive.seq, issued=now)
        cursor = Cursor.decode(token)
        if cursor is None or cursor.epoch != drive.epoch or cursor.seq > drive.seq:
            return None
        if lifetime is not None and now - cursor.issued > lifetime:
            return None
        if cursor.kind == "D":  # a new round: everything logged after the link's seq
            return Cursor("C", drive.epoch, drive.seq, drive.log_position(cursor.seq), 0, now)
        return cursor


def page(drive: Drive, cursor: Cursor, top: int, shuffle: bool) -> tuple[list[Item], Cursor]:
    """One page of items and the cursor after it (kind D when the round is complete)."""
    if cursor.kind == "D":  # token=latest
        return [], cursor
    now = int(time.time())
    if cursor.kind == "E":
        items, pos = drive.enumeration(cursor.pos, cursor.end, top, shuffle)
        if pos >= cursor.end:
            return items, Cursor("D", cursor.epoch, cursor.seq, issued=now)
        return items, Cursor("E", cursor.epoch, cursor.seq, pos, cursor.end, cursor.issued)
    items, pos = drive.changes(cursor.pos, cursor.seq, top)
    if pos < 0:
        return items, Cursor("D", cursor.epoch, cursor.seq, issued=now)
    return items, Cursor("C", cursor.epoch, cursor.seq, pos, 0, cursor.issued)
