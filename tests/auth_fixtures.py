"""Fixtures that sign in through the real MSAL against the emulator.

`signed_in` performs a real device-code login (auto-approved by the emulator) into a temporary
config dir and returns a `SignedIn`:
  - `settings`: config.Settings pointing at the emulator (custom cloud, its CA bundle);
  - `env`: ONEDRIVE_BACKUP_* variables (incl. CONFIG_DIR) for subprocess CLI tests;
  - `token_source(**kwargs)`: a new auth.MsalTokenSource for in-process tests;
  - `emulator`, `config_dir`, and `login()` to sign in again (e.g. after a revocation).
`sign_in(emulator, config_dir)` does the same for emulators made by `emulator_factory`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from onedrive_backup import auth
from onedrive_backup.config import ENV_PREFIX, Settings, load_settings


@dataclass
class SignedIn:
    emulator: Any
    config_dir: Path
    env: dict[str, str]
    settings: Settings
    login_output: str = ""
    sources: list[auth.MsalTokenSource] = field(default_factory=list)

    def token_source(self, **kwargs: Any) -> auth.MsalTokenSource:
        """A fresh MsalTokenSource over this sign-in (kwargs: margin, emit, backoff, ...)."""
        kwargs.setdefault("plain_cache", True)
        source = auth.MsalTokenSource(self.settings, **kwargs)
        self.sources.append(source)
        return source

    def close(self) -> None:
        for source in self.sources:
            source.close()

    def login(self) -> auth.Account:
        """Sign in again (device code, auto-approved) into the same config dir."""
        out = io.StringIO()
        account = auth.login_device_code(self.settings, out=out, plain_cache=True)
        self.login_output = out.getvalue()
        return account


def client_env(emulator: Any, config_dir: Path) -> dict[str, str]:
    """The ONEDRIVE_BACKUP_* variables a CLI subprocess needs to use `emulator`."""
    env = {k: str(v) for k, v in emulator.env().items()}
    env[ENV_PREFIX + "CONFIG_DIR"] = str(config_dir)
    env[auth.PLAIN_CACHE_ENV] = "1"
    return env


def subprocess_env(extra: dict[str, str]) -> dict[str, str]:
    """os.environ without any ONEDRIVE_BACKUP_* leftovers, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(extra)
    return env


def sign_in(emulator: Any, config_dir: Path) -> SignedIn:
    env = client_env(emulator, config_dir)
    settings = load_settings({}, env)
    signed = SignedIn(emulator=emulator, config_dir=config_dir, env=env, settings=settings)
    signed.login()
    return signed


@pytest.fixture
def signed_in(emulator: Any, tmp_path: Path) -> Iterator[SignedIn]:
    signed = sign_in(emulator, tmp_path / "config")
    yield signed
    signed.close()


@pytest.fixture
def signed_in_factory(tmp_path: Path) -> Iterator[Callable[[Any], SignedIn]]:
    """Sign in (device code through the real MSAL) to emulators a test makes itself."""
    made: list[SignedIn] = []

    def make(emulator: Any) -> SignedIn:
        signed = sign_in(emulator, tmp_path / f"config{len(made)}")
        made.append(signed)
        return signed

    yield make
    for signed in made:
        signed.close()
