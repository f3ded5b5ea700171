"""Running the whole Engine in-process against the emulator, for engine-level tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from onedrive_backup import events
from onedrive_backup.engine import BackupPlan, Engine, RunResult


def run_engine(
    signed_in: Any,
    dest: Path,
    on_event: Callable[[events.Event], None] | None = None,
    **plan: Any,
) -> tuple[RunResult, list[events.Event]]:
    seen: list[events.Event] = []

    def emit(event: events.Event) -> None:
        seen.append(event)
        if on_event is not None:
            on_event(event)

    plan.setdefault("workers", 6)
    tokens = signed_in.token_source(emit=emit)
    engine = Engine(BackupPlan(dest=dest, **plan), signed_in.settings, tokens, emit)
    return asyncio.run(engine.run()), seen


def of_kind(seen: list[events.Event], kind: type[events.Event]) -> list[Any]:
    return [e for e in seen if isinstance(e, kind)]
