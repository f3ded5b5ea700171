"""Shared fixtures live in plugin modules beside this file, one per concern."""

pytest_plugins = ["emulator_fixtures", "auth_fixtures"]
