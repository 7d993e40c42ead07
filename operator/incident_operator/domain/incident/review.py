"""Post-incident review rules.

These mirror the CRD's CEL rule (crds/incidents.yaml) so the operator's ReviewComplete
condition, the CLI and the API server's refusal all agree: a review is complete when the
timeline notes, root cause, detection and communication sections are filled and there is at
least one action item, each with an owner. P1 and P2 incidents cannot close without one.
"""

from __future__ import annotations

from typing import Any, Mapping

from ...api import Priority

REQUIRED_SECTIONS = ("timelineNotes", "rootCause", "detection", "communication")
PRIORITIES_REQUIRING_REVIEW = (Priority.P1, Priority.P2)


def review_required(priority: str) -> bool:
    return priority in PRIORITIES_REQUIRING_REVIEW


def review_missing(review: Mapping[str, Any] | None) -> list[str]:
    """Names of the review parts still missing (empty when the review is complete)."""
    review = review or {}
    missing = [name for name in REQUIRED_SECTIONS if not str(review.get(name) or "").strip()]
    items = review.get("actionItems") or []
    if not items:
        missing.append("actionItems")
    elif any(not str(item.get("owner") or "").strip() for item in items):
        missing.append("actionItems[].owner")
    return missing


def open_action_items(review: Mapping[str, Any] | None) -> int:
    return sum(1 for item in (review or {}).get("actionItems") or [] if not item.get("done"))
