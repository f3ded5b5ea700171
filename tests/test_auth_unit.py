"""auth.py without a server: client id, scopes, per-cloud authorities, cache file, messages."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from onedrive_backup import auth
from onedrive_backup.cli import main
from onedrive_backup.config import Settings
from onedrive_backup.errors import ExitCode, UsageError


class _Response:
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status_code = status
        self.text = json.dumps(body)
        self.headers: dict[str, str] = {}

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(self.status_code)


class _OfflineHttp:
    """Answers only OpenID discovery, and records every URL MSAL asks for."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def get(self, url: str, **_kwargs: Any) -> _Response:
        self.urls.append(url)
        parsed = urlparse(url)
        if not parsed.path.endswith("/v2.0/.well-known/openid-configuration"):
            return _Response(404, {})
        base = f"https://{parsed.netloc}{parsed.path.split('/v2.0/')[0]}"
        return _Response(
            200,
            {
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{base}/v2.0",
            },
        )

    def post(self, url: str, **_kwargs: Any) -> _Response:
        self.urls.append(url)
        return _Response(400, {"error": "offline"})

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("cloud", "tenant", "host"),
    [
        ("global", "consumers", "login.microsoftonline.com"),
        ("global", "organizations", "login.microsoftonline.com"),
        ("usgov", "organizations", "login.microsoftonline.us"),
        ("usgov-dod", "contoso.onmicrosoft.us", "login.microsoftonline.us"),
        ("china", "common", "login.chinacloudapi.cn"),
    ],
)
def test_msal_app_authority_per_cloud(tmp_path: Path, cloud: str, tenant: str, host: str) -> None:
    settings = Settings(config_dir=tmp_path, client_id="cid", cloud=cloud, tenant=tenant)
    http = _OfflineHttp()
    app = auth.build_app(settings, auth.open_token_cache(settings, plain=True), http_client=http)
    assert app.authority.instance == host
    assert app.authority.token_endpoint == f"https://{host}/{tenant}/oauth2/v2.0/token"
    assert {urlparse(u).hostname for u in http.urls} == {host}
    assert http.urls == [f"https://{host}/{tenant}/v2.0/.well-known/openid-configuration"]


def test_custom_authority_never_asks_microsoft(tmp_path: Path) -> None:
    settings = Settings(
        config_dir=tmp_path,
        client_id="cid",
        cloud="custom",
        authority="https://127.0.0.1:9/consumers",
        graph_url="https://127.0.0.1:9/v1.0",
    )
    http = _OfflineHttp()
    app = auth.build_app(settings, auth.open_token_cache(settings, plain=True), http_client=http)
    assert app.get_accounts() == []  # no alias lookup at login.microsoftonline.com
    assert {urlparse(u).hostname for u in http.urls} == {"127.0.0.1"}


def test_scopes_are_least_privilege() -> None:
    assert auth.scopes() == ["Files.Read", "User.Read"]
    assert auth.scopes(shared=True) == ["Files.Read.All", "User.Read"]
    reserved = {"openid", "profile", "offline_access"}
    assert not reserved & set(auth.scopes()) and not reserved & set(auth.scopes(shared=True))


def test_missing_client_id_explains_registration(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        auth.require_client_id(Settings(config_dir=tmp_path))
    text = str(info.value)
    for needle in (
        "Mobile and desktop applications",
        "http://localhost",
        "Allow public client flows",
        "Files.Read",
        "User.Read",
        "offline_access",
        "Personal Microsoft accounts",
        "--client-id",
        "ONEDRIVE_BACKUP_CLIENT_ID",
        "config.json",
    ):
        assert needle in text


@pytest.mark.parametrize("command", ["login", "whoami"])
def test_cli_without_client_id_exits_2(
    tmp_path: Path,
    command: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("ONEDRIVE_BACKUP_CLIENT_ID", raising=False)
    assert main([command, "--config-dir", str(tmp_path)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "No application (client) ID" in err and "Allow public client flows" in err


def test_plain_cache_file_is_private(tmp_path: Path) -> None:
    config_dir = tmp_path / "cfg"
    settings = Settings(config_dir=config_dir, client_id="cid")
    cache = auth.open_token_cache(settings, plain=True)
    assert not cache.is_encrypted
    notice = auth.cache_notice(cache)
    assert notice is not None and "not encrypted" in notice and "\n" not in notice
    assert stat.S_IMODE(settings.token_cache_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700


def test_existing_loose_permissions_are_tightened(tmp_path: Path) -> None:
    config_dir = tmp_path / "cfg"
    config_dir.mkdir(mode=0o755)
    os.chmod(config_dir, 0o755)
    settings = Settings(config_dir=config_dir, client_id="cid")
    settings.token_cache_path.write_text("{}")
    os.chmod(settings.token_cache_path, 0o644)
    auth.open_token_cache(settings, plain=True)
    assert stat.S_IMODE(settings.token_cache_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700


def test_plain_cache_env_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(auth.PLAIN_CACHE_ENV, "1")
    cache = auth.open_token_cache(Settings(config_dir=tmp_path, client_id="cid"))
    assert not cache.is_encrypted


def test_stale_lock_file_is_recovered(tmp_path: Path) -> None:
    settings = Settings(config_dir=tmp_path, client_id="cid")
    cache = auth.open_token_cache(settings, plain=True)
    lock = Path(str(settings.token_cache_path) + ".lockfile")
    lock.write_text("12345 killed-process")
    old = lock.stat().st_mtime - 3600
    os.utime(lock, (old, old))
    app = auth.build_app(settings, cache, http_client=_OfflineHttp())
    cache.add(
        {
            "client_id": "cid",
            "scope": ["Files.Read"],
            "token_endpoint": app.authority.token_endpoint,
            "response": {"access_token": "at-value-000000", "expires_in": 60},
        }
    )
    assert not lock.exists()
    assert "at-value-000000" in settings.token_cache_path.read_text()


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (
            {"error": "invalid_grant", "error_codes": [70008]},
            "Your sign-in has expired or was revoked (AADSTS70008).",
        ),
        (
            {"error": "invalid_grant", "error_codes": [700082]},
            "Your sign-in expired because it was not used for 90 days (AADSTS700082).",
        ),
        ({"error": "interaction_required"}, "Microsoft needs you to sign in again"),
        ({"error": "weird_error"}, "Sign-in failed (weird_error) (weird_error)."),
    ],
)
def test_oauth_errors_read_plainly(result: dict[str, Any], expected: str) -> None:
    assert auth.describe_oauth_error(result).startswith(expected)
    err = auth.sign_in_required(result)
    assert err.exit_code == ExitCode.SIGN_IN and err.hint and "onedrive-backup login" in err.hint


def test_margin_is_capped_at_a_quarter_of_the_lifetime(tmp_path: Path) -> None:
    source = auth.MsalTokenSource(Settings(config_dir=tmp_path, client_id="cid"), plain_cache=True)
    assert source.effective_margin(3600) == auth.DEFAULT_MARGIN
    assert source.effective_margin(5) == 1.25
    custom = auth.MsalTokenSource(
        Settings(config_dir=tmp_path, client_id="cid"), margin=60, plain_cache=True
    )
    assert custom.effective_margin(4000) == 60
