"""The emulator's identity platform, driven by the real MSAL library over HTTPS."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import msal
import pytest

from onedrive_backup.emulator import Emulator

SCOPES = ["Files.Read", "User.Read"]


@pytest.fixture(autouse=True)
def _no_env_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests lets REQUESTS_CA_BUNDLE replace MSAL's `verify`; the machine sets it."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def _app(emu: Emulator, client_id: str | None = None) -> msal.PublicClientApplication:
    return msal.PublicClientApplication(
        client_id or emu.client_id,
        authority=emu.authority,
        instance_discovery=False,
        verify=str(emu.ca_path),
    )


def _device_login(emu: Emulator, app: msal.PublicClientApplication) -> dict[str, Any]:
    flow = app.initiate_device_flow(scopes=SCOPES)
    assert flow["interval"] <= 1 and flow["user_code"] in flow["message"]
    return app.acquire_token_by_device_flow(flow)  # type: ignore[no-any-return]


def test_device_flow_auto_approve_puts_account_in_cache(emulator: Emulator) -> None:
    app = _app(emulator)
    result = _device_login(emulator, app)
    assert "access_token" in result, result
    assert result["id_token_claims"]["aud"] == emulator.client_id
    (account,) = app.get_accounts()
    assert account["username"] == emulator.spec.user_email
    assert emulator.counters.grants["device_code"] == 1
    assert emulator.counters.grants["device_code_poll"] == 2  # pending once, then approved
    with httpx.Client(verify=emulator.client_ssl_context()) as client:
        me = client.get(
            f"{emulator.graph_url}/me",
            headers={"Authorization": f"Bearer {result['access_token']}"},
        )
    assert me.status_code == 200 and me.json()["userPrincipalName"] == emulator.spec.user_email


def test_device_flow_explicit_approval(emulator: Emulator) -> None:
    emulator.faults.auto_approve = False
    app = _app(emulator)
    flow = app.initiate_device_flow(scopes=SCOPES)
    pending = app.acquire_token_by_device_flow(flow, exit_condition=lambda f: True)
    assert pending["error"] == "authorization_pending"
    assert emulator.approve_device_code(flow["user_code"]) == 1
    time.sleep(flow["interval"])
    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda f: True)
    assert "access_token" in result, result


def test_device_flow_declined_and_expired(emulator: Emulator) -> None:
    emulator.faults.auto_approve = False
    app = _app(emulator)
    flow = app.initiate_device_flow(scopes=SCOPES)
    emulator.decline_device_code()
    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda f: True)
    assert result["error"] == "authorization_declined"
    emulator.faults.device_code_lifetime = 0
    flow = app.initiate_device_flow(scopes=SCOPES)
    time.sleep(0.05)
    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda f: True)
    assert result["error"] == "expired_token"
    assert "AADSTS70019" in result["error_description"]


def test_silent_refresh_after_expiry_then_revocation(emulator: Emulator) -> None:
    emulator.faults.access_token_lifetime = 2
    app = _app(emulator)
    first = _device_login(emulator, app)
    (account,) = app.get_accounts()
    time.sleep(2.1)
    second = app.acquire_token_silent(SCOPES, account=account)
    assert second is not None and second["access_token"] != first["access_token"]
    assert emulator.counters.grants["refresh_token"] == 1
    # The old access token has expired: Graph says so the way Graph does.
    with httpx.Client(verify=emulator.client_ssl_context()) as client:
        old = client.get(
            f"{emulator.graph_url}/me/drive",
            headers={"Authorization": f"Bearer {first['access_token']}"},
        )
    assert old.status_code == 401
    assert old.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert old.headers["WWW-Authenticate"].startswith("Bearer ")
    emulator.revoke_refresh_tokens()
    third = app.acquire_token_silent_with_error(SCOPES, account=account, force_refresh=True)
    assert third is not None and third["error"] == "invalid_grant"
    assert "AADSTS70008" in third["error_description"] and third["error_codes"] == [70008]


def test_refresh_tokens_rotate_and_old_ones_keep_working(emulator: Emulator) -> None:
    app = _app(emulator)
    first = _device_login(emulator, app)
    (account,) = app.get_accounts()
    again = app.acquire_token_silent(SCOPES, account=account, force_refresh=True)
    assert again is not None and again["refresh_token"] != first["refresh_token"]
    old = app.acquire_token_by_refresh_token(first["refresh_token"], SCOPES)
    assert "access_token" in old, old


def test_auth_code_flow_with_pkce(emulator: Emulator) -> None:
    app = _app(emulator)
    flow = app.initiate_auth_code_flow(
        SCOPES, redirect_uri="http://localhost:8765/", response_mode="form_post"
    )
    with httpx.Client(verify=emulator.client_ssl_context()) as client:
        page = client.get(flow["auth_uri"])
    assert page.status_code == 200 and 'action="http://localhost:8765/"' in page.text
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
    assert fields["state"] == flow["state"]
    result = app.acquire_token_by_auth_code_flow(flow, fields)
    assert "access_token" in result, result
    assert emulator.counters.grants["authorization_code"] == 1


def test_auth_code_with_wrong_verifier_is_refused(emulator: Emulator) -> None:
    verifier = secrets.token_urlsafe(43)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "client_id": emulator.client_id,
        "redirect_uri": "http://localhost:1/",
        "response_type": "code",
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    base = f"{emulator.authority}/oauth2/v2.0"
    with httpx.Client(verify=emulator.client_ssl_context()) as client:
        loc = client.get(f"{base}/authorize", params=params).headers["Location"]
        code = parse_qs(urlparse(loc).query)["code"][0]
        form = {
            "client_id": emulator.client_id,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "http://localhost:1/",
            "code_verifier": "wrong",
        }
        bad = client.post(f"{base}/token", data=form)
    assert bad.status_code == 400
    body = bad.json()
    assert body["error"] == "invalid_grant"
    assert {"error_codes", "timestamp", "trace_id", "correlation_id"} <= body.keys()


def test_unknown_client_is_refused(emulator: Emulator) -> None:
    app = _app(emulator, "someone-else")
    flow = app.initiate_device_flow(scopes=SCOPES)
    assert flow.get("error") == "unauthorized_client"


@pytest.mark.parametrize("path", ["/me", "/me/drive", "/me/drive/root/delta"])
def test_graph_needs_a_valid_bearer_token(emulator: Emulator, path: str) -> None:
    with httpx.Client(verify=emulator.client_ssl_context()) as client:
        for headers in ({}, {"Authorization": "Bearer nonsense"}):
            resp = client.get(emulator.graph_url + path, headers=headers)
            assert resp.status_code == 401
            assert "WWW-Authenticate" in resp.headers
    assert emulator.counters.graph_401 == 2
