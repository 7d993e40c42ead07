"""The Ready condition and observedGeneration of an object the operator judges (a DetectionRule, an
EscalationPolicy): set together, written through the write policy with the object's resourceVersion."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from ..adapters import kube
from ..domain.common.conditions import set_condition
from ..domain.common.status import status_patch


def with_ready(status: Mapping[str, Any], generation: int | None, ready: bool, reason: str, message: str,
               now: datetime, **fields: Any) -> dict[str, Any]:
    """``status`` with ``fields``, ``observedGeneration`` and the Ready condition for ``generation``."""
    new = {**status, **fields, "observedGeneration": generation}
    new["conditions"] = set_condition(new.get("conditions"), "Ready", ready, reason, message, now, generation)
    return new


async def write_ready(api: kube.KubeApi, plural: str, body: Mapping[str, Any], ready: bool, reason: str,
                      message: str, now: datetime, **fields: Any) -> kube.Written | None:
    """Writes Ready (and ``fields``) for the generation ``body`` was judged at.

    When a re-read after a conflict shows a newer generation, nothing is written: the newer spec
    gets its own judgement (its change handler runs), and this one would be stale.
    """
    meta = body["metadata"]
    generation = meta.get("generation")

    def compute(current: dict[str, Any]) -> dict[str, Any] | None:
        if current["metadata"].get("generation") != generation:
            return None
        status = current.get("status") or {}
        wanted = with_ready(status, generation, ready, reason, message, now, **fields)
        return status_patch(status, wanted) or None

    return await api.write_status(plural, meta["namespace"], meta["name"], compute, body=dict(body))
