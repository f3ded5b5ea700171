"""The GUI server refuses requests without the secret, with a foreign Host or Origin, or CSRF."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from onedrive_backup.config import Settings
from onedrive_backup.gui.security import CSRF_HEADER, KEY_HEADER
from onedrive_backup.gui.server import GuiServer, ServerThread


@pytest.fixture
def gui(tmp_path: Path) -> Iterator[ServerThread]:
    server = GuiServer(Settings(config_dir=tmp_path / "config"), opener=lambda _p: None)
    with ServerThread(server) as thread:
        yield thread


@pytest.fixture
def client(gui: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{gui.server.port}", timeout=10) as c:
        yield c


def _signed(gui: ServerThread, client: httpx.Client) -> httpx.Client:
    """Trade the launch key for the session cookie, as the browser does."""
    response = client.get(gui.server.url.split(str(gui.server.port), 1)[1])
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    return client


def test_binds_loopback_only(gui: ServerThread) -> None:
    assert gui.server.url.startswith(f"http://127.0.0.1:{gui.server.port}/?key=")


def test_requests_without_the_secret_are_refused(gui: ServerThread, client: httpx.Client) -> None:
    for path in ("/", "/api/status", "/api/events", "/static/app.js", "/api/browse"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "Access refused" in response.text
    assert client.get("/?key=wrong").status_code == 403
    assert client.get("/api/status", headers={KEY_HEADER: "wrong"}).status_code == 403


def test_the_launch_key_gives_a_cookie_that_opens_the_app(
    gui: ServerThread, client: httpx.Client
) -> None:
    _signed(gui, client)
    page = client.get("/")
    assert page.status_code == 200 and "OneDrive Backup" in page.text
    assert gui.server.guard.csrf_token in page.text
    assert gui.server.guard.secret not in page.text  # the cookie is HttpOnly: never in the page
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    status = client.get("/api/status")
    assert status.status_code == 200 and status.json()["signin"]["state"] in (
        "checking",
        "signed_out",
    )


def test_header_key_works_without_cookie(gui: ServerThread, client: httpx.Client) -> None:
    response = client.get("/api/status", headers={KEY_HEADER: gui.server.guard.secret})
    assert response.status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1:1", "[::1]"])
def test_foreign_host_is_refused(gui: ServerThread, client: httpx.Client, host: str) -> None:
    _signed(gui, client)
    response = client.get("/api/status", headers={"Host": host.format(port=gui.server.port)})
    assert response.status_code == 403 and "foreign Host" in response.text
    # Even the launch key is no use through a rebound name.
    launch = client.get(
        f"/?key={gui.server.guard.secret}", headers={"Host": host.format(port=gui.server.port)}
    )
    assert launch.status_code == 403


def test_localhost_host_is_accepted(gui: ServerThread, client: httpx.Client) -> None:
    _signed(gui, client)
    response = client.get("/api/status", headers={"Host": f"localhost:{gui.server.port}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1:{port}"]
)
def test_foreign_origin_is_refused(gui: ServerThread, client: httpx.Client, origin: str) -> None:
    _signed(gui, client)
    headers = {
        "Origin": origin.format(port=gui.server.port),
        CSRF_HEADER: gui.server.guard.csrf_token,
    }
    response = client.post("/api/signin/signout", json={}, headers=headers)
    assert response.status_code == 403 and "foreign Origin" in response.text
    assert client.get("/api/status", headers={"Origin": headers["Origin"]}).status_code == 403


def test_cross_site_fetch_metadata_is_refused(gui: ServerThread, client: httpx.Client) -> None:
    _signed(gui, client)
    response = client.get("/api/status", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403


def test_posts_need_json_and_the_csrf_token(gui: ServerThread, client: httpx.Client) -> None:
    _signed(gui, client)
    origin = {"Origin": f"http://127.0.0.1:{gui.server.port}"}
    token = {CSRF_HEADER: gui.server.guard.csrf_token}
    no_token = client.post("/api/destination", json={"path": "/tmp"}, headers=origin)
    assert no_token.status_code == 403 and "CSRF" in no_token.text
    form = client.post(
        "/api/destination", data={"path": "/tmp"}, headers={**origin, **token}
    )  # what a cross-site <form> could send
    assert form.status_code == 403 and "not JSON" in form.text
    ok = client.post(
        "/api/destination", json={"path": "/nonexistent/x"}, headers={**origin, **token}
    )
    assert ok.status_code == 200
    assert ok.json()["data"]["ok"] is False and "does not exist" in ok.json()["data"]["error"]


def test_api_errors_are_sentences_not_tracebacks(gui: ServerThread, client: httpx.Client) -> None:
    _signed(gui, client)
    token = {CSRF_HEADER: gui.server.guard.csrf_token}
    response = client.post("/api/backup/start", json={}, headers=token)
    assert response.status_code == 401  # not signed in
    assert response.json()["error"]["message"] == "Sign in first."
    bad = client.post("/api/backup/stop", json={}, headers=token)
    assert bad.status_code == 400 and "No backup is running" in bad.json()["error"]["message"]
    garbage = client.post(
        "/api/destination", content=b"[1,2", headers={**token, "Content-Type": "application/json"}
    )
    assert garbage.status_code == 400


def test_static_files_cannot_escape(gui: ServerThread, client: httpx.Client) -> None:
    _signed(gui, client)
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/static/..%2F..%2Fauth.py").status_code == 404
    assert client.get("/static/%2e%2e/server.py").status_code == 404
