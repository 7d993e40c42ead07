"""Duration strings as used in manifests (``spec.for``, ``spec.cooldown``, ...).

The accepted form is a sequence of ``<integer><unit>`` parts, largest unit first, each unit at most
once, with units ``d`` (days), ``h``, ``m``, ``s`` and ``ms`` -- the subset of Prometheus / Go
duration syntax people actually write: ``"0s"``, ``"30s"``, ``"10m"``, ``"1h30m"``, ``"1d"``,
``"1500ms"``. A bare ``"0"`` is accepted for zero. Pure; no I/O.

The one home of durations: :func:`parse_duration` (the language), :func:`duration_value` (a value
from a manifest or the operator configuration: such a string, a bare number of seconds or a
``timedelta``), :func:`format_duration` (the exact inverse) and :func:`format_age` (a rounded,
human reading for messages: ``"2h05m"``).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

__all__ = ["parse_duration", "duration_value", "format_duration", "format_age", "DURATION_PATTERN"]

_UNITS: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_ORDER = ["d", "h", "m", "s", "ms"]
_PART = re.compile(r"(\d+)(ms|d|h|m|s)")

#: A regular expression suitable for a CRD ``pattern`` (same language as :func:`parse_duration`).
DURATION_PATTERN = r"^(0|(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?)$"


def parse_duration(text: str) -> float:
    """Return the number of seconds in ``text`` (e.g. ``"1h30m"`` -> ``5400.0``).

    Raises :class:`ValueError` with a message that says what is accepted.
    """
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string like '30s', '10m', '1h30m' or '1d', got {text!r}")
    s = text.strip()
    if s == "0":
        return 0.0
    if not s:
        raise ValueError("duration is empty; write e.g. '0s', '30s', '10m', '1h30m' or '1d'")
    pos = 0
    total = 0.0
    last_rank = -1
    for match in _PART.finditer(s):
        if match.start() != pos:
            break
        unit = match.group(2)
        rank = _ORDER.index(unit)
        if rank <= last_rank:
            raise ValueError(
                f"invalid duration {text!r}: units must appear at most once, largest first (d, h, m, s, ms)"
            )
        last_rank = rank
        total += int(match.group(1)) * _UNITS[unit]
        pos = match.end()
    if pos != len(s) or last_rank < 0:
        raise ValueError(
            f"invalid duration {text!r}: expected <number><unit> parts with units d, h, m, s, ms "
            "(e.g. '0s', '30s', '10m', '1h30m', '1d')"
        )
    return total


def duration_value(value: object, *, field: str = "duration") -> timedelta:
    """A duration from a manifest or the configuration: ``"30s"``, ``"1h30m"``, ... (:func:`parse_duration`),
    a bare number of seconds (YAML ``300``) or a ``timedelta``. Negative values are refused.

    Raises ``ValueError`` whose message starts with ``field``.
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"{field}: invalid duration {value!r}")
        result = _timedelta(value, field, value)
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError as error:
            raise ValueError(f"{field}: {error}") from None
        result = _timedelta(seconds, field, value)
    else:
        raise ValueError(f"{field}: expected a duration string such as '30m', got {value!r}")
    if result < timedelta(0):
        raise ValueError(f"{field}: duration must not be negative, got {value!r}")
    return result


def _timedelta(seconds: float, field: str, original: object) -> timedelta:
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{field}: duration {original!r} is too large") from None


_FORMAT_UNITS_MS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))


def format_duration(value: float | timedelta) -> str:
    """Inverse of :func:`parse_duration` to the millisecond: ``5400`` or ``timedelta(minutes=90)`` ->
    ``"1h30m"``, ``1.5`` -> ``"1s500ms"``."""
    if isinstance(value, timedelta):
        milliseconds = round(value / timedelta(milliseconds=1))
    else:
        milliseconds = round(value * 1000)
    if milliseconds < 0:
        raise ValueError(f"duration must not be negative, got {value}")
    if milliseconds == 0:
        return "0s"
    out = []
    rest = milliseconds
    for unit, size in _FORMAT_UNITS_MS:
        amount, rest = divmod(rest, size)
        if amount:
            out.append(f"{amount}{unit}")
    return "".join(out)


def format_age(seconds: float) -> str:
    """A rounded reading for people (the sign is dropped): ``"45s"``, ``"12m"``, ``"3h05m"``, ``"2d4h"``."""
    whole = int(abs(seconds))
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 120:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"
