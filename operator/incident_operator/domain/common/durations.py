"""Duration strings as used in manifests (``spec.for``, ``spec.cooldown``, ...).

The accepted form is a sequence of ``<integer><unit>`` parts, largest unit first, each unit at most
once, with units ``d`` (days), ``h``, ``m``, ``s`` and ``ms`` -- the subset of Prometheus / Go
duration syntax people actually write: ``"0s"``, ``"30s"``, ``"10m"``, ``"1h30m"``, ``"1d"``,
``"1500ms"``. A bare ``"0"`` is accepted for zero. Pure; no I/O.
"""

from __future__ import annotations

import re

__all__ = ["parse_duration", "format_duration", "DURATION_PATTERN"]

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


def format_duration(seconds: float) -> str:
    """Inverse of :func:`parse_duration` for whole seconds (``5400`` -> ``"1h30m"``)."""
    if seconds < 0:
        raise ValueError("duration cannot be negative")
    rest = int(round(seconds))
    if rest == 0:
        return "0s"
    out = []
    for unit in ("d", "h", "m", "s"):
        size = int(_UNITS[unit])
        n, rest = divmod(rest, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)
