"""The difference between a status as read and as computed, as a JSON merge patch."""

from __future__ import annotations

import math
from typing import Any, Mapping

__all__ = ["status_patch", "finite_only"]


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning ``old`` status into ``new`` (top-level keys; None deletes)."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        if old.get(key) != value:
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def finite_only(value: Any) -> Any:
    """``value`` without non-finite floats (``inf``, ``-inf``, ``nan``): JSON has no such numbers and the
    API server refuses a body holding them, so a status carrying one would never be written. A key
    holding one is left out, a list item holding one is dropped; everything else is kept as it is."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        kept = {}
        for key, item in value.items():
            cleaned = finite_only(item)
            if cleaned is not None or item is None:
                kept[key] = cleaned
        return kept
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            cleaned = finite_only(item)
            if cleaned is not None or item is None:
                out.append(cleaned)
        return out
    return value
