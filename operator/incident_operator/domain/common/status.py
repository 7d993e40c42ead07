"""The difference between a status as read and as computed, as a JSON merge patch."""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["status_patch"]


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
