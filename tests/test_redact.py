"""redact(): secrets are masked by shape or once registered; ordinary text is left alone."""

from __future__ import annotations

import logging

import pytest

from onedrive_backup.redact import MASK, RedactingFilter, redact, register_secret

JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJlLXBhcnQ"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.DEF-123_~+/xyz==", "abc.DEF-123_~+/xyz=="),
        (f"token {JWT} in text", JWT),
        ("https://x.files.1drv.com/y/z?tempauth=v1.eyJhbGc&foo=1", "v1.eyJhbGc"),
        ("https://h/download.aspx?UniqueId=1&tempauth=SeCrEt123", "SeCrEt123"),
        ("grant_type=refresh_token&refresh_token=M.C123_BAY.0.U.-abc!", "M.C123_BAY.0.U.-abc!"),
        ("?access_token=opaqueValue42&x=1", "opaqueValue42"),
        ("https://e/content?token=qwerty987", "qwerty987"),
        ('{"access_token": "opaque-at-1", "expires_in": 5}', "opaque-at-1"),
        ('{"secret": "cached-refresh-token-value"}', "cached-refresh-token-value"),
        ("device_code=GMMhmHCXhWEzkobqIHGG_EnNYYsRkc", "GMMhmHCXhWEzkobqIHGG_EnNYYsRkc"),
    ],
)
def test_secret_shapes_are_masked(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned
    assert MASK in cleaned


def test_ordinary_text_is_untouched() -> None:
    text = "GET /v1.0/me/drive/root/delta?$top=1000 -> 200 (3 items, user_code ABCD-EFGH)"
    assert redact(text) == text
    assert redact("") == ""


def test_parameter_names_inside_words_are_not_secrets() -> None:
    assert redact("mytoken=1 is not a secret parameter") == "mytoken=1 is not a secret parameter"


def test_registered_opaque_secret_is_masked_anywhere() -> None:
    value = "M.R3_BAY.opaque!refresh*token$value"
    register_secret(value)
    assert value not in redact(f"error while using {value}: invalid_grant")
    register_secret("short")  # too short to register: would mask ordinary words
    assert redact("a short word") == "a short word"


def test_logging_filter_redacts_message_args_and_exception() -> None:
    record = logging.LogRecord(
        "x",
        logging.WARNING,
        __file__,
        1,
        "sent %s to %s",
        ("Bearer sekrit123", "u?token=zz9"),
        None,
    )
    try:
        raise ValueError(f"bad {JWT}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    assert "sekrit123" not in record.getMessage() and "zz9" not in record.getMessage()
    assert record.exc_text is not None and JWT not in record.exc_text
