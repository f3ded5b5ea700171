"""Pre-authenticated download links: /dl/<opaque>, naming the item and the time of issue."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import time

from onedrive_backup.emulator.state import State
from onedrive_backup.emulator.tokens import b64url

DRIVE_SHIFT = 56  # the drive's index in State.drives rides in the top byte of the number


def mint_link(st: State, num: int, drive_index: int = 0) -> str:
    payload = struct.pack(">QQ", num | drive_index << DRIVE_SHIFT, int(time.time() * 1000))
    mac = hmac.new(st.link_key, payload, hashlib.sha256).digest()[:16]
    st.counters.link_issued()
    return f"{st.download_origin}/dl/{b64url(payload + mac)}"


def parse_link(st: State, opaque: str) -> tuple[int, float] | None:
    """(item number, issue time) if the link is genuine; None if it was tampered with.

    The number carries the drive's index above DRIVE_SHIFT (0: the user's own drive)."""
    try:
        raw = base64.urlsafe_b64decode(opaque + "=" * (-len(opaque) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 32:
        return None
    payload, mac = raw[:16], raw[16:]
    if not hmac.compare_digest(mac, hmac.new(st.link_key, payload, hashlib.sha256).digest()[:16]):
        return None
    num, issued_ms = struct.unpack(">QQ", payload)
    return num, issued_ms / 1000
