"""metav1.Condition handling, mirroring apimachinery's meta.SetStatusCondition.

lastTransitionTime changes only when the condition's status changes; reason, message and
observedGeneration are updated in place.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from .timeutil import format_time


def find_condition(conditions: Iterable[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    for condition in conditions or ():
        if condition.get("type") == type_:
            return condition
    return None


def set_condition(
    conditions: list[dict[str, Any]] | None,
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None = None,
) -> list[dict[str, Any]]:
    """Returns a new list with the condition ``type_`` set; the input is not modified."""
    status_text = status if isinstance(status, str) else ("True" if status else "False")
    result = [dict(c) for c in (conditions or [])]
    existing = find_condition(result, type_)
    if existing is None:
        existing = {"type": type_}
        result.append(existing)
        existing["lastTransitionTime"] = format_time(now)
    elif existing.get("status") != status_text or not existing.get("lastTransitionTime"):
        existing["lastTransitionTime"] = format_time(now)
    existing["status"] = status_text
    existing["reason"] = reason
    existing["message"] = message[:32768]
    if generation is not None:
        existing["observedGeneration"] = int(generation)
    return result


def condition_is_true(conditions: Iterable[dict[str, Any]] | None, type_: str) -> bool:
    condition = find_condition(conditions, type_)
    return condition is not None and condition.get("status") == "True"
