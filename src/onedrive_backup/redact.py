"""Mask secrets (tokens, codes, pre-authenticated link queries) in any text before it is shown.

`redact(text)` recognises secrets by shape: `Bearer …`, JWT-like strings, secret-bearing query
parameters (`tempauth=`, `token=`, `access_token=`, …) and JSON fields (`"refresh_token": "…"`).
Opaque values that have no recognisable shape (e.g. a Microsoft account refresh token) are
masked too once registered with `register_secret`, which auth.py does for every token it sees.
`RedactingFilter` applies the same to log records; `install_log_redaction()` puts it on handlers.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "[REDACTED]"

# Query/form parameters whose value is a credential (download links carry `tempauth`).
SECRET_PARAMS = (
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "tempauth",
    "code",
    "device_code",
    "client_secret",
    "client_assertion",
    "assertion",
    "sig",
    "signature",
    "password",
)
# JSON keys whose value is a credential (token responses and the MSAL cache's "secret").
SECRET_KEYS = (*SECRET_PARAMS, "secret")

_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9\-._~+/]+=*")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_PARAM = re.compile(
    r"(?i)(?<![A-Za-z0-9_])(" + "|".join(SECRET_PARAMS) + r")=[^&\s\"'<>#]+",
)
_JSON_FIELD = re.compile(
    r"(?i)([\"'](?:" + "|".join(SECRET_KEYS) + r")[\"']\s*:\s*[\"'])[^\"']*([\"'])",
)

_MIN_REGISTERED = 12  # shorter values would mask ordinary words
_registered: set[str] = set()
_registered_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember an opaque secret so `redact` masks it wherever it appears."""
    if value and len(value) >= _MIN_REGISTERED:
        with _registered_lock:
            _registered.add(value)


def redact(text: str) -> str:
    """`text` with every recognisable or registered secret replaced by [REDACTED]."""
    if not text:
        return text
    with _registered_lock:
        known = sorted(_registered, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _JWT.sub(MASK, text)
    text = _JSON_FIELD.sub(lambda m: f"{m.group(1)}{MASK}{m.group(2)}", text)
    return _PARAM.sub(lambda m: f"{m.group(1)}={MASK}", text)


class RedactingFilter(logging.Filter):
    """A logging filter that renders each record's message and redacts it in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error path
            return True
        cleaned = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


_FILTER = RedactingFilter()


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add the redacting filter to every handler of `logger` (default: the root logger)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(_FILTER)
