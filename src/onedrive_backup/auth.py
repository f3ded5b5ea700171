"""Sign-in through MSAL: the public client, a persistent token cache, and the TokenSource.

`MsalTokenSource` is the one place every Graph request gets its token: it refreshes before the
token expires, lets exactly one refresh run however many workers ask, and turns a dead refresh
token into `errors.SignInRequired`. Tokens never reach a log: every value is registered with
`redact.register_secret` the moment it is seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import stat
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import msal
import msal_extensions
import requests

from onedrive_backup import events, tls
from onedrive_backup.config import Settings
from onedrive_backup.errors import NetworkDown, SignInRequired, UsageError
from onedrive_backup.events import EventSink
from onedrive_backup.redact import register_secret

log = logging.getLogger(__name__)

# Least privilege (graph-facts §7). MSAL adds openid/profile/offline_access itself.
SCOPES = ("Files.Read", "User.Read")
SHARED_SCOPES = ("Files.Read.All", "User.Read")

PLAIN_CACHE_ENV = "ONEDRIVE_BACKUP_PLAIN_TOKEN_CACHE"
LOGIN_HINT = "Run `onedrive-backup login` to sign in again."
DEFAULT_MARGIN = 300.0  # refresh when fewer than 5 minutes remain
MAX_CONSECUTIVE_FAILURES = 3
HTTP_TIMEOUT = 30.0

CLIENT_ID_HELP = """\
onedrive-backup signs in with your own Microsoft Entra app registration (it is free):
  1. https://entra.microsoft.com > App registrations > New registration.
     Supported account types: include "Personal Microsoft accounts" for a personal OneDrive.
  2. Authentication > Add a platform > "Mobile and desktop applications",
     redirect URI http://localhost; set "Allow public client flows" to Yes.
  3. API permissions > Microsoft Graph > Delegated: Files.Read, User.Read, offline_access.
Then pass its Application (client) ID with --client-id ID, the ONEDRIVE_BACKUP_CLIENT_ID
variable, or "client_id" in config.json in the config folder."""


def scopes(shared: bool = False) -> list[str]:
    """The delegated scopes to ask for; Files.Read.All only when shared items are wanted."""
    return list(SHARED_SCOPES if shared else SCOPES)


def require_client_id(settings: Settings) -> str:
    """The configured client id, or a UsageError explaining how to get one."""
    if not settings.client_id or not settings.client_id.strip():
        raise UsageError("No application (client) ID is configured.", CLIENT_ID_HELP)
    return settings.client_id.strip()


# --- the token cache -------------------------------------------------------------------------


class TokenCache(msal_extensions.PersistedTokenCache):  # type: ignore[misc]
    """msal-extensions' locked cache, tolerant of a lock file left by a killed process."""

    STALE_LOCK_AFTER = 30.0  # a lock is held for milliseconds; one this old is abandoned

    def modify(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().modify(*args, **kwargs)
        except msal_extensions.LockError:
            if not self._remove_stale_lock():
                raise
            super().modify(*args, **kwargs)

    def _remove_stale_lock(self) -> bool:
        lock = Path(self._lock_location)
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return True
        if age < self.STALE_LOCK_AFTER:
            return False
        log.warning("Removing a stale token cache lock file %s", lock)
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        return True


def _private_dir(path: Path) -> None:
    """Create `path` (mode 0700), or tighten it if others can read it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(0o700)


def _plain_requested(plain: bool | None) -> bool:
    if plain is not None:
        return plain
    return os.environ.get(PLAIN_CACHE_ENV, "").strip().lower() in ("1", "true", "yes")


def open_token_cache(settings: Settings, *, plain: bool | None = None) -> TokenCache:
    """The persistent cache in the config dir: OS-encrypted where possible, else a 0600 file.

    `plain=True` (or ONEDRIVE_BACKUP_PLAIN_TOKEN_CACHE=1) forces the plain file. The returned
    cache's `is_encrypted` says which one it is.
    """
    _private_dir(settings.config_dir)
    location = str(settings.token_cache_path)
    persistence: Any = None
    if not _plain_requested(plain):
        try:
            persistence = msal_extensions.build_encrypted_persistence(location)
        except Exception as exc:  # no keyring/DPAPI/libsecret here: fall back, say so below
            log.debug("Encrypted token cache unavailable: %s", exc)
    if persistence is None:
        persistence = msal_extensions.FilePersistence(location)
        path = settings.token_cache_path
        if not path.exists():
            persistence.save("{}")  # created 0600 by msal-extensions
        if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) != 0o600:
            path.chmod(0o600)
    return TokenCache(persistence)


def cache_notice(cache: TokenCache) -> str | None:
    """The one-line notice shown when the token cache is not encrypted."""
    if cache.is_encrypted:
        return None
    location = cache._persistence.get_location()
    return (
        f"Note: the sign-in token cache {location} is not encrypted (no OS keyring available); "
        "it is readable only by you (mode 0600)."
    )


# --- the MSAL application --------------------------------------------------------------------


class MsalSession(requests.Session):
    """The HTTP session MSAL uses: our CA trust, a timeout, and the last status per thread.

    requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE replace a session's `verify`; users set
    those to unrelated bundles, so they are ignored here (proxies from the environment stay).
    """

    def __init__(self, verify: str, timeout: float) -> None:
        super().__init__()
        self.verify = verify
        self._timeout = timeout
        self._last = threading.local()
        adapter = requests.adapters.HTTPAdapter(max_retries=1)
        self.mount("https://", adapter)
        self.hooks["response"].append(self._remember)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        return super().request(*args, **kwargs)

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last.status = response.status_code
        self._last.retry_after = response.headers.get("Retry-After")

    def merge_environment_settings(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        merged: dict[str, Any] = super().merge_environment_settings(*args, **kwargs)
        merged["verify"] = self.verify
        return merged

    def take_last(self) -> tuple[int | None, str | None]:
        status = getattr(self._last, "status", None)
        retry_after = getattr(self._last, "retry_after", None)
        self._last.status = self._last.retry_after = None
        return status, retry_after


def _session(settings: Settings) -> MsalSession:
    return MsalSession(tls.combined_ca_file(settings.ca_bundle), HTTP_TIMEOUT)


def build_app(
    settings: Settings,
    cache: TokenCache | None = None,
    *,
    http_client: Any = None,
    http_cache: MutableMapping[str, Any] | None = None,
) -> msal.PublicClientApplication:
    """A PublicClientApplication for the configured cloud, trusting --ca-bundle.

    MSAL fetches the authority's openid-configuration here, so this does network I/O.
    """
    client_id = require_client_id(settings)
    endpoints = settings.endpoints()
    kwargs: dict[str, Any] = {
        "authority": endpoints.authority,
        "token_cache": cache if cache is not None else open_token_cache(settings),
        "http_cache": http_cache,
    }
    kwargs["http_client"] = http_client or _session(settings)
    if endpoints.is_custom:
        # Never ask login.microsoftonline.com about a host it does not know (and keep tests
        # offline): no instance discovery and no authority-alias lookups.
        kwargs["instance_discovery"] = False
        kwargs["validate_authority"] = False
    try:
        return msal.PublicClientApplication(client_id, **kwargs)
    except ValueError as exc:
        raise UsageError(
            f"The sign-in authority {endpoints.authority} could not be used: {exc}",
            "Check --cloud, --tenant and --authority.",
        ) from exc
    except (requests.RequestException, msal.exceptions.MsalServiceError) as exc:
        raise SignInRequired(
            f"Could not reach the sign-in service at {endpoints.authority} ({exc}).",
            "Check the network connection (and --ca-bundle for a custom authority), then retry.",
        ) from exc


@dataclass(frozen=True)
class Account:
    username: str
    home_account_id: str


def _accounts(app: msal.PublicClientApplication) -> list[dict[str, Any]]:
    return list(app.get_accounts())


def cached_accounts(settings: Settings) -> list[Account]:
    """Accounts that have a sign-in stored in the cache (offline: no client id or network)."""
    cache = open_token_cache(settings)
    entries = cache.search(msal.TokenCache.CredentialType.ACCOUNT)
    return list({a.home_account_id: a for a in map(_to_account, entries)}.values())


def _to_account(entry: dict[str, Any]) -> Account:
    return Account(str(entry.get("username") or "?"), str(entry.get("home_account_id") or ""))


def _register_result_secrets(result: dict[str, Any]) -> None:
    for key in ("access_token", "refresh_token", "id_token"):
        value = result.get(key)
        if isinstance(value, str):
            register_secret(value)


# --- sign-in failures -> plain sentences ------------------------------------------------------

# AADSTS codes (graph-facts §7) -> what happened, in words a user reads.
AADSTS_MESSAGES: dict[int, str] = {
    70008: "Your sign-in has expired or was revoked",
    700082: "Your sign-in expired because it was not used for 90 days",
    700084: "Your sign-in expired",
    50173: "Your sign-in was revoked (for example after a password change)",
    50076: "Your organisation requires you to sign in again (multi-factor authentication)",
    65001: "The permission for onedrive-backup was withdrawn",
    70000: "Your sign-in is no longer valid",
    700016: "The application (client) ID is not known to Microsoft sign-in",
}
OAUTH_ERROR_MESSAGES: dict[str, str] = {
    "invalid_grant": "Your sign-in has expired or was revoked",
    "interaction_required": "Microsoft needs you to sign in again",
    "consent_required": "The permission for onedrive-backup was withdrawn",
    "login_required": "Microsoft needs you to sign in again",
    "invalid_client": "The application (client) ID was rejected by Microsoft sign-in",
    "unauthorized_client": "The application (client) ID is not allowed to sign in this way",
    "authorization_declined": "The sign-in was declined",
    "expired_token": "The sign-in code expired before it was entered",
    "bad_verification_code": "The sign-in code was not recognised",
}
# Token-endpoint answers that mean "try again later", not "sign in again".
TRANSIENT_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


def describe_oauth_error(result: dict[str, Any]) -> str:
    """A plain sentence for an MSAL error dict, naming the AADSTS code when there is one."""
    codes = [c for c in result.get("error_codes") or [] if isinstance(c, int)]
    error = str(result.get("error") or "unknown_error")
    text = next((AADSTS_MESSAGES[c] for c in codes if c in AADSTS_MESSAGES), None)
    text = text or OAUTH_ERROR_MESSAGES.get(error, f"Sign-in failed ({error})")
    label = ", ".join(f"AADSTS{c}" for c in codes) or error
    return f"{text} ({label})."


def sign_in_required(result: dict[str, Any]) -> SignInRequired:
    return SignInRequired(describe_oauth_error(result), LOGIN_HINT)


# --- interactive sign-in ----------------------------------------------------------------------


def _keep_only(app: msal.PublicClientApplication, result: dict[str, Any]) -> Account:
    """After a sign-in: the new account, with any other account removed from the cache."""
    claims = result.get("id_token_claims") or {}
    username = claims.get("preferred_username")
    accounts = _accounts(app)
    chosen = next((a for a in accounts if username and a.get("username") == username), None)
    if chosen is None and len(accounts) == 1:
        chosen = accounts[0]
    if chosen is None:
        return Account(str(username or "?"), "")
    for other in accounts:
        if other.get("home_account_id") != chosen.get("home_account_id"):
            app.remove_account(other)
    return _to_account(chosen)


def login_device_code(
    settings: Settings,
    *,
    shared: bool = False,
    out: TextIO | None = None,
    plain_cache: bool | None = None,
    on_code: Callable[[str, str], None] | None = None,
) -> Account:
    """Sign in with the device-code flow: print the link and code, poll, store the tokens.

    Works without a terminal. `on_code(verification_uri, user_code)` is called once the code
    is known (for the GUI). A fresh MSAL app per login, so nothing MSAL remembered about an
    earlier failure (its HTTP throttle cache) gets in the way.
    """
    out = out or sys.stdout
    with _session(settings) as http:
        return _login_device_code(
            settings, http, shared=shared, out=out, plain_cache=plain_cache, on_code=on_code
        )


def _login_device_code(
    settings: Settings,
    http: MsalSession,
    *,
    shared: bool,
    out: TextIO,
    plain_cache: bool | None,
    on_code: Callable[[str, str], None] | None = None,
) -> Account:
    cache = open_token_cache(settings, plain=plain_cache)
    app = build_app(settings, cache, http_client=http)
    try:
        flow = app.initiate_device_flow(scopes=scopes(shared))
    except requests.RequestException as exc:
        raise SignInRequired(
            f"Could not reach the sign-in service ({type(exc).__name__}).",
            "Check the network connection, then run `onedrive-backup login` again.",
        ) from exc
    if "user_code" not in flow:
        raise sign_in_required(flow)
    print(
        f"To sign in, open {flow['verification_uri']} in a browser and enter the code "
        f"{flow['user_code']}",
        file=out,
        flush=True,
    )
    print("Waiting for you to finish signing in...", file=out, flush=True)
    if on_code is not None:
        on_code(str(flow["verification_uri"]), str(flow["user_code"]))
    try:
        result = app.acquire_token_by_device_flow(flow)
    except requests.RequestException as exc:
        raise SignInRequired(
            f"Lost the connection to the sign-in service ({type(exc).__name__}).",
            "Run `onedrive-backup login` again.",
        ) from exc
    _register_result_secrets(result)
    if "access_token" not in result:
        raise SignInRequired(describe_oauth_error(result), "Run `onedrive-backup login` again.")
    return _keep_only(app, result)


def login_browser(
    settings: Settings,
    *,
    shared: bool = False,
    out: TextIO | None = None,
    timeout: float | None = 600,
    plain_cache: bool | None = None,
) -> Account:
    """Sign in in a browser (authorization code + PKCE, redirect to http://localhost:PORT)."""
    out = out or sys.stdout
    with _session(settings) as http:
        return _login_browser(
            settings, http, shared=shared, out=out, timeout=timeout, plain_cache=plain_cache
        )


def _login_browser(
    settings: Settings,
    http: MsalSession,
    *,
    shared: bool,
    out: TextIO,
    timeout: float | None,
    plain_cache: bool | None,
) -> Account:
    cache = open_token_cache(settings, plain=plain_cache)
    app = build_app(settings, cache, http_client=http)
    print("Opening your browser to sign in...", file=out, flush=True)
    try:
        result = app.acquire_token_interactive(
            scopes(shared),
            timeout=timeout,
            prompt=msal.Prompt.SELECT_ACCOUNT,
            success_template="Signed in. You can close this window and return to onedrive-backup.",
        )
    except requests.RequestException as exc:
        raise SignInRequired(
            f"Lost the connection to the sign-in service ({type(exc).__name__}).",
            "Run `onedrive-backup login` again.",
        ) from exc
    _register_result_secrets(result)
    if "access_token" not in result:
        raise SignInRequired(describe_oauth_error(result), "Run `onedrive-backup login` again.")
    return _keep_only(app, result)


def logout(settings: Settings) -> list[Account]:
    """Remove every account and all its tokens from the cache; returns who was signed out.

    Works offline: the cache is ours alone, so it is emptied directly rather than through an
    MSAL app (which would first contact the authority).
    """
    cache = open_token_cache(settings)
    kinds = msal.TokenCache.CredentialType
    accounts = list(cache.search(kinds.ACCOUNT))
    for entry in list(cache.search(kinds.REFRESH_TOKEN)):
        cache.remove_rt(entry)
    for entry in list(cache.search(kinds.ACCESS_TOKEN)):
        cache.remove_at(entry)
    for entry in list(cache.search(kinds.ID_TOKEN)):
        cache.remove_idt(entry)
    for entry in accounts:
        cache.remove_account(entry)
    return list({a.home_account_id: a for a in map(_to_account, accounts)}.values())


# --- the TokenSource --------------------------------------------------------------------------


class _NoNetwork(Exception):
    """The token endpoint could not be reached at all: the run waits for the network."""


class _Transient(Exception):
    """A refresh attempt that failed for a reason worth retrying."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class TokenRefreshFailed(SignInRequired):
    """The token endpoint kept failing: the run ends rather than hammering it."""


def _retry_after_seconds(value: str | None) -> float | None:
    try:
        return min(max(float(value), 0.0), 600.0) if value else None
    except ValueError:
        return None


class MsalTokenSource:
    """interfaces.TokenSource over MSAL: proactive, single-flight refresh for all workers."""

    def __init__(
        self,
        settings: Settings,
        *,
        shared: bool = False,
        margin: float = DEFAULT_MARGIN,
        emit: EventSink = events.discard,
        max_failures: int = MAX_CONSECUTIVE_FAILURES,
        backoff: float = 2.0,
        plain_cache: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.scopes = scopes(shared)
        self.margin = margin
        self.emit = emit
        self.max_failures = max_failures
        self.backoff = backoff
        self._clock = clock
        self._cache = open_token_cache(settings, plain=plain_cache)
        self._http = _session(settings)
        # Our own handle on MSAL's HTTP throttle cache, so a retry we decided on (after our
        # own backoff) is not answered from MSAL's 60 s memory of the last 5xx/429 (§8).
        self._http_cache: dict[str, Any] = {}
        self._app: msal.PublicClientApplication | None = None
        self._token: str | None = None
        self._expires_at = 0.0
        self._lifetime = 0.0
        self._failures = 0
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self.refresh_count = 0  # token-endpoint grants that succeeded (for tests/diagnostics)

    # -- public API (interfaces.TokenSource) --

    def close(self) -> None:
        """Close the connections to the token endpoint."""
        self._http.close()

    async def get(self) -> str:
        token = self._fresh_token()
        if token is not None:
            return token
        async with self._get_lock():
            token = self._fresh_token()
            if token is not None:
                return token
            return await self._refresh_locked()

    async def refresh(self, rejected: str) -> str:
        async with self._get_lock():
            if self._token is not None and self._token != rejected:
                token = self._fresh_token()
                if token is not None:
                    return token  # another worker already replaced the rejected token
            return await self._refresh_locked()

    @property
    def expires_in(self) -> float:
        """Seconds the current token has left (0 when there is none)."""
        return max(0.0, self._expires_at - self._clock()) if self._token else 0.0

    def effective_margin(self, lifetime: float | None = None) -> float:
        """The refresh margin, never more than a quarter of the token's lifetime."""
        life = self._lifetime if lifetime is None else lifetime
        return min(self.margin, life / 4) if life > 0 else self.margin

    # -- internals --

    def _get_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def _fresh_token(self) -> str | None:
        if self._token and self._clock() < self._expires_at - self.effective_margin():
            return self._token
        return None

    async def _refresh_locked(self) -> str:
        while True:
            try:
                result = await asyncio.to_thread(self._acquire, force=self._token is not None)
                return self._accept(result)
            except _NoNetwork as exc:
                # An outage, not a failure of the sign-in service: the caller's outage wait
                # (graph.py / retry.py) probes the authority and retries; no failure is counted.
                self._app = None
                raise NetworkDown(str(exc), url=self.settings.endpoints().authority) from exc
            except _Transient as exc:
                self._failures += 1
                # A fresh MSAL app for the retry: MSAL's HTTP throttle cache would answer it
                # from memory, and its telemetry buffer chokes on a non-OAuth error body.
                self._app = None
                self._http_cache.clear()
                log.warning(
                    "Token refresh failed (%s), attempt %d of %d",
                    exc.reason,
                    self._failures,
                    self.max_failures,
                )
                if self._failures >= self.max_failures:
                    self._failures = 0
                    raise TokenRefreshFailed(
                        "Could not renew the sign-in: the Microsoft sign-in service failed "
                        f"{self.max_failures} times in a row (last: {exc.reason}).",
                        "Check the network connection and resume; if it keeps failing, run "
                        "`onedrive-backup login`.",
                    ) from exc
                await asyncio.sleep(self._delay(exc.retry_after))
            except SignInRequired:
                self._http_cache.clear()
                self._failures = 0
                raise

    def _delay(self, retry_after: float | None) -> float:
        ceiling = self.backoff * 4 ** (self._failures - 1)
        delay = random.uniform(ceiling / 2, ceiling)
        return max(delay, retry_after or 0.0)

    def _ensure_app(self) -> msal.PublicClientApplication:
        if self._app is None:
            try:
                self._app = build_app(
                    self.settings, self._cache, http_client=self._http, http_cache=self._http_cache
                )
            except (SignInRequired, UsageError) as exc:
                # The authority worked at sign-in; its discovery failing now (network, 429,
                # 5xx) is an outage to retry, not a configuration error.
                status, retry_after = self._http.take_last()
                if status is None:
                    raise _NoNetwork("the sign-in service could not be reached") from exc
                raise _Transient(
                    f"authority discovery failed (HTTP {status})",
                    _retry_after_seconds(retry_after),
                ) from exc
        return self._app

    def _acquire(self, force: bool) -> dict[str, Any]:
        """One synchronous attempt (runs in a thread): a token dict, or raises."""
        app = self._ensure_app()
        accounts = _accounts(app)
        if not accounts:
            raise SignInRequired("You are not signed in.", "Run `onedrive-backup login` first.")
        self._http.take_last()
        try:
            result = app.acquire_token_silent_with_error(
                self.scopes, account=accounts[0], force_refresh=force
            )
        except requests.exceptions.SSLError as exc:  # a trust problem, not an outage
            raise _Transient(f"TLS error: {type(exc).__name__}") from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _NoNetwork(
                f"the sign-in service could not be reached ({type(exc).__name__})"
            ) from exc
        except requests.RequestException as exc:
            raise _Transient(f"network error: {type(exc).__name__}") from exc
        except msal.exceptions.MsalServiceError as exc:  # a 5xx, possibly from MSAL's cache
            status, retry_after = self._http.take_last()
            raise _Transient(f"HTTP {status or '5xx'}", _retry_after_seconds(retry_after)) from exc
        except ValueError as exc:  # a token endpoint answer that was not JSON
            status, retry_after = self._http.take_last()
            raise _Transient(f"unreadable answer (HTTP {status})") from exc
        status, retry_after = self._http.take_last()
        if result is None:
            raise SignInRequired(
                "You are not signed in (no sign-in is stored for this account).",
                "Run `onedrive-backup login` first.",
            )
        _register_result_secrets(result)
        if "access_token" in result:
            return dict(result)
        error = result.get("error")
        if status == 429 or (status or 0) >= 500 or error in TRANSIENT_OAUTH_ERRORS:
            label = f"HTTP {status}" + (f" {error}" if isinstance(error, str) else "")
            raise _Transient(label, _retry_after_seconds(retry_after))
        raise sign_in_required(result)

    def _accept(self, result: dict[str, Any]) -> str:
        token = str(result["access_token"])
        lifetime = float(result.get("expires_in") or 600)
        self._token = token
        self._lifetime = lifetime
        self._expires_at = self._clock() + lifetime
        self._failures = 0
        if result.get("token_source") != "cache":  # a real grant, not MSAL's stored token
            self.refresh_count += 1
            log.debug("Access token renewed; it expires in %.0f s", lifetime)
            self.emit(events.TokenRefreshed(expires_in=lifetime))
        return token
