"""RFC 3339 timestamps as Kubernetes writes them (UTC, second precision, trailing Z)."""

from __future__ import annotations

from datetime import datetime, timezone


def format_time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_time_precise(moment: datetime) -> str:
    """Keeps milliseconds: for due times where a second of rounding would matter."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str | None) -> datetime | None:
    """Parses an RFC 3339 timestamp; None for None or an empty string. Raises ValueError when malformed."""
    if not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone; use RFC 3339, e.g. 2026-01-02T15:04:05Z")
    return moment.astimezone(timezone.utc)
