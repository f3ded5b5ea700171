"""Fixtures that sign in through the real MSAL against the emulator (filled in with auth)."""
