"""login / whoami / logout as a user runs them: subprocesses without a TTY, real MSAL, emulator."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from auth_fixtures import SignedIn, client_env, subprocess_env
from onedrive_backup import redact
from onedrive_backup.errors import SignInRequired
from onedrive_backup.graph import GraphClient


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "onedrive_backup", *args],
        env=subprocess_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cache_secrets(cache_file: Path) -> set[str]:
    """Every access, refresh and id token value stored in the (plain) MSAL cache file."""
    data = json.loads(cache_file.read_text() or "{}")
    found = set()
    for kind in ("AccessToken", "RefreshToken", "IdToken"):
        for entry in (data.get(kind) or {}).values():
            found.add(entry["secret"])
    return found


def test_device_code_login_without_tty(emulator: Any, tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    env = client_env(emulator, config_dir)
    result = cli(env, "login")
    assert result.returncode == 0, result.stderr
    assert re.search(r"open https://127\.0\.0\.1:\d+/\S*devicelogin\S* in a browser", result.stdout)
    assert re.search(r"enter the code [A-Z0-9]{6,}\b", result.stdout)
    assert "Signed in as " in result.stdout
    assert "not encrypted" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    cache_file = config_dir / "token_cache.bin"
    assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    secrets = cache_secrets(cache_file)
    assert len(secrets) == 3
    assert emulator.counters.grants["device_code"] == 1
    for secret in secrets:
        assert secret not in result.stdout + result.stderr


def test_whoami_logout_and_not_signed_in(signed_in: SignedIn) -> None:
    result = cli(signed_in.env, "whoami")
    assert result.returncode == 0, result.stderr
    assert re.search(r"Account: \S+@\S+", result.stdout)
    assert re.search(r"Drive:\s+(personal|business)", result.stdout)
    assert re.search(r"Quota:\s+[\d.]+ \w?B used of [\d.]+ \w?B \(\d+%\)", result.stdout)

    result = cli(signed_in.env, "logout")
    assert result.returncode == 0 and "Signed out" in result.stdout
    assert cache_secrets(signed_in.config_dir / "token_cache.bin") == set()

    result = cli(signed_in.env, "whoami")
    assert result.returncode == 3
    assert "not signed in" in result.stderr and "onedrive-backup login" in result.stderr
    assert cli(signed_in.env, "logout").stdout.startswith("No account was signed in")


def test_missing_client_id_exits_2_with_registration_help(tmp_path: Path) -> None:
    result = cli({"ONEDRIVE_BACKUP_CONFIG_DIR": str(tmp_path)}, "login")
    assert result.returncode == 2
    assert "No application (client) ID" in result.stderr
    assert "Allow public client flows" in result.stderr and "--client-id" in result.stderr


FAKE_BROWSER = textwrap.dedent(
    """
    # A stand-in for a person with a browser: load the sign-in page and do what its
    # auto-submitting form (response_mode=form_post) does: post the code to the redirect URI.
    import html.parser, os, ssl, subprocess, sys, urllib.parse, urllib.request
    if os.environ.get("FAKE_BROWSER_CHILD") != "1":  # webbrowser waits for us: detach
        env = dict(os.environ, FAKE_BROWSER_CHILD="1")
        subprocess.Popen([sys.executable, *sys.argv], env=env, start_new_session=True)
        sys.exit(0)

    class Form(html.parser.HTMLParser):
        action, fields = None, {}

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "form":
                self.action = a.get("action")
            elif tag == "input" and a.get("name"):
                self.fields[a["name"]] = a.get("value", "")

    ctx = ssl.create_default_context(cafile=os.environ["ONEDRIVE_BACKUP_CA_BUNDLE"])
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=ctx), urllib.request.ProxyHandler({})
    )
    form = Form()
    form.feed(opener.open(sys.argv[1], timeout=30).read().decode())
    data = urllib.parse.urlencode(form.fields).encode()
    opener.open(urllib.request.Request(form.action, data=data), timeout=30).read()
    """
)


def test_browser_login_with_localhost_redirect(emulator: Any, tmp_path: Path) -> None:
    browser = tmp_path / "fake_browser.py"
    browser.write_text(FAKE_BROWSER)
    env = client_env(emulator, tmp_path / "config")
    env["BROWSER"] = f"{sys.executable} {browser} %s"
    result = cli(env, "login", "--browser")
    assert result.returncode == 0, result.stderr
    assert "Signed in as " in result.stdout
    assert emulator.counters.grants["authorization_code"] == 1
    assert len(cache_secrets(tmp_path / "config" / "token_cache.bin")) == 3


def test_no_secret_in_any_output(
    emulator: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Login, whoami and a workload with refreshes and a forced failure, all at debug level."""
    config_dir = tmp_path / "config"
    cache_file = config_dir / "token_cache.bin"
    env = client_env(emulator, config_dir)
    outputs: list[str] = []
    secrets: set[str] = set()
    for args in (("-v", "login"), ("-v", "whoami")):
        result = cli(env, *args)
        assert result.returncode == 0, result.stderr
        outputs += [result.stdout, result.stderr]
        secrets |= cache_secrets(cache_file)

    from auth_fixtures import sign_in

    emulator.faults.access_token_lifetime = 1
    signed = sign_in(emulator, config_dir)
    outputs.append(signed.login_output)
    secrets |= cache_secrets(cache_file)
    source = signed.token_source()
    caplog.set_level(logging.DEBUG)
    logging.getLogger().addHandler(caplog.handler)
    redact.install_log_redaction()

    async def workload() -> None:
        async with GraphClient(
            signed.settings.endpoints().graph_url, source, ca_bundle=signed.settings.ca_bundle
        ) as graph:
            for _ in range(4):
                await graph.get_json("/me/drive")
                secrets.update(cache_secrets(cache_file))
                await asyncio.sleep(0.8)
            emulator.revoke_refresh_tokens()
            await asyncio.sleep(1.0)
            await graph.get_json("/me/drive")

    with pytest.raises(SignInRequired) as info:
        asyncio.run(workload())
    logging.getLogger("onedrive_backup.auth").warning("failure: %s", info.value)
    outputs += [str(info.value), repr(info.value), caplog.text]
    captured = capsys.readouterr()
    outputs += [captured.out, captured.err]
    assert source.refresh_count >= 3
    assert len(secrets) >= 3 + 2 * source.refresh_count
    everything = "\n".join(outputs)
    assert "AADSTS70008" in everything and "DEBUG" in everything
    leaked = [s[:8] + "..." for s in secrets if s in everything]
    assert not leaked, f"{len(leaked)} secrets leaked: {leaked}"
