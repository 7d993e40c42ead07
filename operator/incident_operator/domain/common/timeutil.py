"""Time: the clock, and RFC 3339 timestamps as Kubernetes writes them (UTC, second precision, trailing Z).

The one home of "parse a timestamp": :func:`parse_time` (strict: raises on a malformed value),
:func:`time_or_none` and :func:`epoch_or_none` (for values read back from objects, where a malformed
or missing timestamp means "unknown", never a crash). Everything is timezone-aware UTC.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import overload

__all__ = ["utcnow", "format_time", "format_time_precise", "parse_time", "time_or_none", "epoch_or_none"]

# Go writes up to nine fractional digits; Python reads at most six.
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")


def utcnow() -> datetime:
    """The operator's clock (aware UTC). Services take a ``clock`` argument defaulting to this."""
    return datetime.now(timezone.utc)


@overload
def format_time(moment: datetime) -> str: ...
@overload
def format_time(moment: None) -> None: ...
@overload
def format_time(moment: datetime | None) -> str | None: ...


def format_time(moment: datetime | None) -> str | None:
    """``2026-01-02T15:04:05Z``; None for None."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_time_precise(moment: datetime) -> str:
    """Keeps milliseconds: for due times where a second of rounding would matter."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str | None, *, assume_utc: bool = False) -> datetime | None:
    """Parses an RFC 3339 timestamp; None for None or an empty string. Raises ValueError when malformed.

    A timestamp without a zone is refused, unless ``assume_utc`` (recorded series such as NAB's).
    """
    if not value:
        return None
    text = _LONG_FRACTION.sub(r"\1", value.strip())
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        if not assume_utc:
            raise ValueError(f"timestamp {value!r} has no time zone; use RFC 3339, e.g. 2026-01-02T15:04:05Z")
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def time_or_none(value: object) -> datetime | None:
    """A timestamp read back from an object: None when it is missing, not a string or malformed."""
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def epoch_or_none(value: object) -> float | None:
    """:func:`time_or_none` as epoch seconds."""
    moment = time_or_none(value)
    return moment.timestamp() if moment is not None else None
