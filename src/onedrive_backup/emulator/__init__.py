"""A local OneDrive (identity platform, Graph drive API, download host) for tests and demos.

with Emulator(spec=DriveSpec(files=200, seed=1)) as emu:
    env = emu.env()   # ONEDRIVE_BACKUP_* for a client
    emu.faults.throttle_next = 3
"""

from onedrive_backup.emulator.counters import Counters
from onedrive_backup.emulator.drive import Drive, FileView
from onedrive_backup.emulator.faults import Faults
from onedrive_backup.emulator.generate import DriveSpec
from onedrive_backup.emulator.server import Emulator

__all__ = ["Counters", "Drive", "DriveSpec", "Emulator", "FileView", "Faults"]
