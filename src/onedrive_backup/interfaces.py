"""The narrow interfaces between layers, so each module can be built and tested on its own."""

from __future__ import annotations

from typing import Any, Protocol


class TokenSource(Protocol):
    """Where every Graph request gets its access token (implemented in auth.py).

    `get()` returns a token that stays valid for at least the refresh margin, refreshing first
    when needed. `refresh(rejected)` is called after Graph rejected `rejected` with 401: if the
    current token is already a different one (another worker refreshed), it returns that one
    without refreshing; otherwise it refreshes exactly once however many callers wait on it.
    Both raise errors.SignInRequired when the refresh token is dead.
    """

    async def get(self) -> str: ...

    async def refresh(self, rejected: str) -> str: ...


class GraphLike(Protocol):
    """What scan.py needs from graph.py.

    `url` is absolute (an @odata.nextLink/deltaLink) or a path relative to the Graph base URL,
    e.g. "/me/drive/root/delta?$top=1000". Transient failures (throttling, 5xx, network) are
    waited out inside; a 410 raises errors.ResyncRequired; a dead sign-in raises
    errors.SignInRequired.
    """

    async def get_json(self, url: str) -> dict[str, Any]: ...

    async def get_page(self, url: str) -> tuple[dict[str, Any], bytes]:
        """What get_json gives, and the JSON body it was parsed from."""
        ...
