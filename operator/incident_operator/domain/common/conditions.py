"""metav1.Condition handling, mirroring apimachinery's meta.SetStatusCondition.

lastTransitionTime changes only when the condition's status changes; reason, message and
observedGeneration are updated in place.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence, TypedDict, cast

from .timeutil import format_time

MAX_MESSAGE = 32768  # metav1.Condition's maxLength for message


class Condition(TypedDict, total=False):
    """One entry of ``status.conditions`` (metav1.Condition)."""

    type: str
    status: str  # "True", "False" or "Unknown"
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: int


def find_condition(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    """The condition of that type in a status read back from the API (untyped JSON), or None."""
    for condition in conditions or ():
        if condition.get("type") == type_:
            return condition
    return None


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None = None,
) -> list[Condition]:
    """Returns a new list with the condition ``type_`` set; the input is not modified."""
    status_text = status if isinstance(status, str) else ("True" if status else "False")
    # conditions read back from the API are untyped JSON; they were written by this function
    result = [cast(Condition, dict(c)) for c in (conditions or [])]
    existing = next((c for c in result if c.get("type") == type_), None)
    if existing is None:
        existing = Condition(type=type_)
        result.append(existing)
        existing["lastTransitionTime"] = format_time(now)
    elif existing.get("status") != status_text or not existing.get("lastTransitionTime"):
        existing["lastTransitionTime"] = format_time(now)
    existing["status"] = status_text
    existing["reason"] = reason
    existing["message"] = message[:MAX_MESSAGE]
    if generation is not None:
        existing["observedGeneration"] = int(generation)
    return result


def condition_is_true(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> bool:
    condition = find_condition(conditions, type_)
    return condition is not None and condition.get("status") == "True"
