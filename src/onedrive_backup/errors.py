"""The project's own errors: each knows its exit code and carries the sentence a user reads.

Foreign exceptions (aiohttp, msal, sqlite3, OSError) are converted into these at the module
boundary where they happen, so the CLI and GUI only ever render `BackupError`s.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes: a promise to users' scripts (shared/ARCHITECTURE.md)."""

    OK = 0  # all selected files backed up and verified
    SOME_FAILED = 1  # some files failed (listed in the report)
    USAGE = 2  # usage error
    SIGN_IN = 3  # sign-in needed
    DESTINATION = 4  # destination problem (missing, not writable, full)
    STATE = 5  # state problem (locked by another run, unreadable)
    INTERRUPTED = 130  # interrupted (state saved)


class BackupError(Exception):
    """An error a user can act on: `message` says what happened, `hint` what to do next."""

    exit_code: ExitCode = ExitCode.SOME_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class UsageError(BackupError):
    exit_code = ExitCode.USAGE


class SignInRequired(BackupError):
    exit_code = ExitCode.SIGN_IN


class DestinationError(BackupError):
    exit_code = ExitCode.DESTINATION


class DiskFullError(DestinationError):
    """The destination ran out of space (ENOSPC). Permanent: never retried."""


class StateError(BackupError):
    exit_code = ExitCode.STATE


class Interrupted(BackupError):
    exit_code = ExitCode.INTERRUPTED


class OutageTooLong(BackupError):
    """The network stayed down longer than the configured limit; state is saved."""

    exit_code = ExitCode.SOME_FAILED


# --- errors below are raised inside the engine and decide retry behaviour -----------------


class TransientError(Exception):
    """Worth retrying after a pause: throttling, 5xx, connection and DNS failures."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NetworkDown(TransientError):
    """No connection could be made (refused, DNS, reset before any answer).

    `url` names where (without secrets), so the run's outage wait can probe that origin.
    """

    def __init__(self, message: str, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class Throttled(TransientError):
    """429/503/509 from the service; `retry_after` is what the service asked for."""


class ItemError(Exception):
    """A permanent problem with one item: it fails with `reason`, the run goes on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LinkExpired(Exception):
    """The download host refused a pre-authenticated link (401/403/410): get a new one."""


class AuthExpired(Exception):
    """Graph answered 401 InvalidAuthenticationToken: refresh once and retry."""


class ResyncRequired(Exception):
    """Graph answered 410 to a delta request: the token is no longer valid.

    `location` is the fresh enumeration link from the Location header, when Graph gave one.
    """

    def __init__(self, message: str, location: str | None = None) -> None:
        super().__init__(message)
        self.location = location
