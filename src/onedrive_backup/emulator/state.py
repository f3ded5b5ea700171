"""What every handler of both origins shares, stored on the aiohttp apps."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from aiohttp import web

from onedrive_backup.emulator.counters import Counters
from onedrive_backup.emulator.drive import Drive
from onedrive_backup.emulator.faults import Faults
from onedrive_backup.emulator.generate import DriveSpec
from onedrive_backup.emulator.tokens import TokenStore


@dataclass
class State:
    drive: Drive
    spec: DriveSpec
    faults: Faults
    counters: Counters
    client_id: str
    tokens: TokenStore = field(default_factory=TokenStore)
    link_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    admin_key: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    graph_origin: str = ""  # https://127.0.0.1:PORT, known once listening
    download_origin: str = ""
    outage_until: float = 0.0  # time.monotonic() until which both origins are down

    @property
    def user_id(self) -> str:
        return self.drive.id.lower()[-16:]

    @property
    def drives(self) -> list[Drive]:
        """The user's drive first, then the drives its shortcuts point into."""
        return [self.drive, *self.drive.others]

    def drive_by_id(self, drive_id: str) -> Drive | None:
        folded = drive_id.lower()
        return next((d for d in self.drives if d.id.lower() == folded), None)


STATE = web.AppKey("state", State)
ORIGIN = web.AppKey("origin", str)  # graph | download
