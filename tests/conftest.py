"""Shared fixtures live in plugin modules beside this file, one per concern."""

from pathlib import Path

import pytest

pytest_plugins = ["emulator_fixtures", "auth_fixtures"]


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """An empty destination folder (where backups are made)."""
    d = tmp_path / "dest"
    d.mkdir()
    return d
