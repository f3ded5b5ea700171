"""`onedrive-backup gui`: prints the keyed address with --no-browser, serves it, stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEDRIVE_BACKUP_")}
    env["ONEDRIVE_BACKUP_CONFIG_DIR"] = str(tmp_path / "config")
    env["BROWSER"] = "false"  # never open a real browser from a test
    return env


def test_no_browser_prints_the_address_and_ctrl_c_stops(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "onedrive_backup", "gui", "--no-browser"]
    with subprocess.Popen(
        cmd, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.search(r"http://127\.0\.0\.1:(\d+)/\?key=\S+", line)
            assert match, line
            with httpx.Client(timeout=10) as client:
                assert client.get(f"http://127.0.0.1:{match[1]}/").status_code == 403
                opened = client.get(match[0], follow_redirects=True)
                assert opened.status_code == 200 and "OneDrive Backup" in opened.text
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert "Stopped." in err


def test_a_busy_port_is_a_usage_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "onedrive_backup", "gui", "--no-browser", "--port", str(port)],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2, result.stderr
    assert f"Could not listen on 127.0.0.1:{port}" in result.stderr
