"""Issued credentials: access and refresh tokens, device codes, authorization codes."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

CONSUMERS_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """An id_token MSAL accepts: it decodes the payload without checking the signature."""
    header = b64url(json.dumps({"typ": "JWT", "alg": "none"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


@dataclass
class DeviceCode:
    user_code: str
    scope: str
    expires_at: float
    state: str = "pending"  # pending | approved | declined | redeemed
    polls: int = 0


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str | None
    method: str | None
    nonce: str | None
    expires_at: float


@dataclass
class TokenStore:
    """Everything the identity platform has handed out; all methods are thread-safe."""

    access: dict[str, float] = field(default_factory=dict)  # token -> expiry (time.time())
    refresh: set[str] = field(default_factory=set)
    devices: dict[str, DeviceCode] = field(default_factory=dict)  # device_code -> state
    auth_codes: dict[str, AuthCode] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def mint_access(self, lifetime: float) -> str:
        token = "EwA" + secrets.token_urlsafe(48)
        with self.lock:
            self.access[token] = time.time() + lifetime
        return token

    def access_valid(self, token: str) -> bool:
        with self.lock:
            expiry = self.access.get(token)
        return expiry is not None and time.time() < expiry

    def mint_refresh(self) -> str:
        token = "M.C5" + secrets.token_urlsafe(64)
        with self.lock:
            self.refresh.add(token)
        return token

    def refresh_valid(self, token: str) -> bool:
        with self.lock:
            return token in self.refresh

    def revoke_refresh(self) -> None:
        with self.lock:
            self.refresh.clear()

    def new_device_code(self, scope: str, lifetime: float) -> tuple[str, DeviceCode]:
        code = secrets.token_urlsafe(32)
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
        user_code = "".join(secrets.choice(alphabet) for _ in range(9))
        entry = DeviceCode(user_code, scope, time.time() + lifetime)
        with self.lock:
            self.devices[code] = entry
        return code, entry

    def approve(self, user_code: str | None = None, state: str = "approved") -> int:
        """Approve (or decline) one pending device code, or all of them; returns how many."""
        n = 0
        with self.lock:
            for entry in self.devices.values():
                if entry.state == "pending" and user_code in (None, entry.user_code):
                    entry.state = state
                    n += 1
        return n

    def new_auth_code(self, entry: AuthCode) -> str:
        code = "M.C5_" + secrets.token_urlsafe(32)
        with self.lock:
            self.auth_codes[code] = entry
        return code

    def take_auth_code(self, code: str) -> AuthCode | None:
        with self.lock:
            return self.auth_codes.pop(code, None)


def pkce_ok(entry: AuthCode, verifier: str | None) -> bool:
    if entry.challenge is None:
        return True
    if verifier is None:
        return False
    if (entry.method or "plain") == "S256":
        return b64url(hashlib.sha256(verifier.encode()).digest()) == entry.challenge
    return verifier == entry.challenge
