"""Fixtures for the local OneDrive emulator (filled in with the emulator)."""
