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


# kstatus (sigs.k8s.io/cli-utils, what Flux's `wait`, kpt and `kubectl wait` readers use) decides
# from "abnormal-true" conditions before it looks at Ready: Stalled=True is Failed, Reconciling=True
# is InProgress, and status.observedGeneration != metadata.generation is InProgress. The CRDs
# default status.observedGeneration to 0, so an object the operator has not observed yet is
# InProgress too (rather than kstatus's fallback, Current).
STALLED = "Stalled"
RECONCILING = "Reconciling"


def with_progress(
    conditions: Sequence[Mapping[str, Any]] | None,
    now: datetime,
    generation: int | None,
    *,
    stalled: tuple[str, str] | None = None,
    reconciling: tuple[str, str] | None = None,
) -> list[Condition]:
    """Returns ``conditions`` with Stalled and Reconciling set for this generation.

    ``stalled``: (reason, message) when the operator cannot make progress without a change by a
    person (an Invalid spec, a query Prometheus refuses); ``reconciling``: (reason, message) while
    work is pending that the operator will retry on its own. Both None: the generation is done.
    Both stay present as False when normal, so ``kubectl wait --for=condition=Stalled=false`` works
    and lastTransitionTime tells when the object last stalled.
    """
    result: list[Condition]
    if stalled is not None:
        result = set_condition(conditions, STALLED, True, stalled[0], stalled[1], now, generation)
    else:
        result = set_condition(conditions, STALLED, False, "NotStalled",
                               "Nothing blocks reconciliation", now, generation)
    if reconciling is not None and stalled is None:
        reason, message = reconciling
        result = set_condition(result, RECONCILING, True, reason, message, now, generation)
    else:
        result = set_condition(result, RECONCILING, False, "Stalled" if stalled else "Reconciled",
                               "Waiting for a change to the spec" if stalled
                               else "The latest generation is reconciled", now, generation)
    return result
