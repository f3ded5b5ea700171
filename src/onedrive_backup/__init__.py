"""onedrive-backup: back up a whole Microsoft OneDrive to a local or external disk."""

__version__ = "0.1.0"
