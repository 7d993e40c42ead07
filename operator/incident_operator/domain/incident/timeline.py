"""The incident timeline: a bounded list, oldest first, newest kept."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..common.timeutil import format_time

DEFAULT_TIMELINE_LIMIT = 100
MESSAGE_LIMIT = 1000


def timeline_entry(now: datetime, type_: str, message: str, actor: str = "incident-operator") -> dict[str, Any]:
    return {"time": format_time(now), "type": type_, "message": message[:MESSAGE_LIMIT], "actor": actor}


def append_entries(
    timeline: list[dict[str, Any]] | None, entries: list[dict[str, Any]], limit: int = DEFAULT_TIMELINE_LIMIT
) -> list[dict[str, Any]]:
    combined = list(timeline or []) + list(entries)
    return combined[-limit:] if limit > 0 else []
