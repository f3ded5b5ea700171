"""Error bodies shaped like the real services send them."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

GRAPH_401_CHALLENGE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
    'authorize", client_id="00000003-0000-0000-c000-000000000000"'
)


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


def graph_error(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    inner_code: str | None = None,
) -> web.Response:
    """Graph's error shape: {"error": {"code", "message", "innerError": {...}}}."""
    inner: dict[str, str] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": str(uuid.uuid4()),
        "client-request-id": str(uuid.uuid4()),
    }
    if inner_code:
        inner["code"] = inner_code
    body = {"error": {"code": code, "message": message, "innerError": inner}}
    return json_response(body, status, headers)


def unauthorized() -> web.Response:
    return graph_error(
        401,
        "InvalidAuthenticationToken",
        "Access token has expired or is not yet valid.",
        {"WWW-Authenticate": GRAPH_401_CHALLENGE},
    )


def not_found() -> web.Response:
    return graph_error(404, "itemNotFound", "The resource could not be found.")


def oauth_error(error: str, aadsts: int, description: str, status: int = 400) -> web.Response:
    """Entra's token-endpoint error shape."""
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    text = (
        f"AADSTS{aadsts}: {description} Trace ID: {trace} Correlation ID: {corr} Timestamp: {now}"
    )
    body = {
        "error": error,
        "error_description": text,
        "error_codes": [aadsts],
        "timestamp": now,
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": f"https://login.microsoftonline.com/error?code={aadsts}",
    }
    return json_response(body, status)


def retry_after_value(seconds: float) -> str:
    """As given: "2.128" stays fractional, 2.0 becomes "2"."""
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def request_id() -> str:
    return f"{int(time.time())}-{secrets.token_hex(4)}"
