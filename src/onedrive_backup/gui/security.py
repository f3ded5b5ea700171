"""Request guard for the local web app: secret, Host, Origin and CSRF checks; safe headers.

The server listens on 127.0.0.1 only, but any page the user visits can still send requests
to it, and a DNS-rebinding page can even read answers. So every request must carry the
per-launch secret (cookie or header), name our own Host, and come from our own Origin; state
changing requests must also be JSON with the per-launch CSRF token in a header.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

KEY_PARAM = "key"
KEY_HEADER = "X-OneDrive-Backup-Key"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


@dataclass
class Guard:
    """The per-launch secrets and the checks every request passes."""

    port: int = 0
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def cookie_name(self) -> str:
        # Cookies ignore ports: name ours after the port so two instances do not clash.
        return f"obk_session_{self.port}"

    @property
    def allowed_hosts(self) -> frozenset[str]:
        return frozenset({f"127.0.0.1:{self.port}", f"localhost:{self.port}"})

    @property
    def allowed_origins(self) -> frozenset[str]:
        return frozenset(f"http://{h}" for h in self.allowed_hosts)

    def launch_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?{KEY_PARAM}={self.secret}"

    def refusal(self, request: web.Request) -> str | None:
        """Why the request is refused, or None when it may proceed."""
        if request.host not in self.allowed_hosts:
            return "foreign Host"
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.allowed_origins:
            return "foreign Origin"
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            return "cross-site request"
        if not self._has_secret(request):
            return "missing or wrong key"
        if request.method not in SAFE_METHODS:
            if request.content_type != "application/json":
                return "not JSON"
            if not _same(request.headers.get(CSRF_HEADER), self.csrf_token):
                return "missing or wrong CSRF token"
        return None

    def _has_secret(self, request: web.Request) -> bool:
        return _same(request.cookies.get(self.cookie_name), self.secret) or _same(
            request.headers.get(KEY_HEADER), self.secret
        )

    def is_launch_request(self, request: web.Request) -> bool:
        """GET /?key=SECRET from the launch URL: trade the key for a cookie."""
        return (
            request.method == "GET"
            and request.path == "/"
            and _same(request.query.get(KEY_PARAM), self.secret)
            and request.host in self.allowed_hosts
            and request.headers.get("Sec-Fetch-Site") != "cross-site"
        )

    def middleware(self) -> Middleware:
        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self.is_launch_request(request):
                response: web.StreamResponse = web.Response(status=303, headers={"Location": "/"})
                response.set_cookie(
                    self.cookie_name,
                    self.secret,
                    httponly=True,
                    samesite="Strict",
                    path="/",
                )
            else:
                reason = self.refusal(request)
                if reason is not None:
                    response = refused(reason)
                else:
                    try:
                        response = await handler(request)
                    except web.HTTPException as exc:  # returning one is deprecated: copy it
                        response = web.Response(
                            status=exc.status, text=exc.text, headers=exc.headers
                        )
            if not response.prepared:
                response.headers.update(SECURITY_HEADERS)
            return response

        return guard


REFUSED_PAGE = """<!doctype html><html lang="en"><meta charset="utf-8">
<title>onedrive-backup</title><body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>Access refused</h1><p>This page belongs to <code>onedrive-backup gui</code>.
Open it with the link the command printed or opened (it carries a one-time key).</p>
<p>Reason: {reason}.</p></body></html>"""


def refused(reason: str) -> web.Response:
    return web.Response(
        status=403, text=REFUSED_PAGE.format(reason=reason), content_type="text/html"
    )
