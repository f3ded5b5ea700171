"""The standalone emulator (a real subprocess) and its admin API."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from onedrive_backup.emulator import DriveSpec, Emulator


@pytest.fixture
def standalone() -> Iterator[dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "onedrive_backup.emulator", "--files", "15", "--seed", "2"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    info: dict[str, str] = {}
    for line in proc.stdout:
        if m := re.match(r"export (\w+)=(\S+)", line):
            info[m.group(1)] = m.group(2)
        if m := re.match(r"# Admin key: (\S+)", line):
            info["key"] = m.group(1)
            break
    try:
        yield info
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()


def test_standalone_prints_env_and_serves_admin_api(standalone: dict[str, str]) -> None:
    ca = standalone["ONEDRIVE_BACKUP_CA_BUNDLE"]
    assert Path(ca).exists() and standalone["ONEDRIVE_BACKUP_CLOUD"] == "custom"
    origin = standalone["ONEDRIVE_BACKUP_GRAPH_URL"].removesuffix("/v1.0")
    headers = {"X-Admin-Key": standalone["key"]}
    import ssl

    with httpx.Client(base_url=origin, verify=ssl.create_default_context(cafile=ca)) as c:
        assert c.get("/_admin/counters").status_code == 403
        faults = c.post("/_admin/faults", json={"latency": 0.01}, headers=headers).json()
        assert faults["latency"] == 0.01
        assert c.post("/_admin/faults", json={"nope": 1}, headers=headers).status_code == 400
        changes = [{"op": "add_file", "path": "/admin/added.txt", "size": 5}]
        added = c.post("/_admin/changes", json=changes, headers=headers).json()
        assert added[0]["path"] == "/admin/added.txt"
        files = c.get("/_admin/files", headers=headers).json()
        assert any(f["path"] == "/admin/added.txt" for f in files)
        assert c.post("/_admin/approve", json={}, headers=headers).json() == {"approved": 0}
        assert c.post("/_admin/revoke", headers=headers).json() == {"ok": True}
        assert c.post("/_admin/invalidate_delta", headers=headers).json() == {"ok": True}
        assert "requests" in c.get("/_admin/counters", headers=headers).json()
        assert c.post("/_admin/outage", json={"seconds": 0.3}, headers=headers).json()["ok"]


def test_emulator_command_is_registered() -> None:
    from onedrive_backup.cli import build_parser

    parser, commands = build_parser()
    assert "emulator" in commands
    args = parser.parse_args(["emulator", "--files", "3", "--port", "0"])
    assert args.files == 3


def test_env_and_context_manager() -> None:
    with Emulator(DriveSpec(files=5, seed=3), client_id="cid") as emu:
        env = emu.env()
        assert env["ONEDRIVE_BACKUP_CLIENT_ID"] == "cid"
        assert env["ONEDRIVE_BACKUP_AUTHORITY"] == emu.authority
        assert os.path.exists(env["ONEDRIVE_BACKUP_CA_BUNDLE"])
    assert not os.path.exists(env["ONEDRIVE_BACKUP_CA_BUNDLE"])


def test_generation_is_deterministic() -> None:
    a = Emulator(DriveSpec(files=50, seed=11))
    b = Emulator(DriveSpec(files=50, seed=11))
    try:
        fa = [(f.path, f.size, f.quickxorhash) for f in a.drive.iter_files()]
        fb = [(f.path, f.size, f.quickxorhash) for f in b.drive.iter_files()]
        assert fa == fb and len(fa) == 50
        paths = [f.path for f in a.drive.iter_files()]
        assert max(p.count("/") for p in paths) > 10
        assert any(f.size == 0 and f.quickxorhash is None for f in a.drive.iter_files())
    finally:
        a.stop()
        b.stop()
