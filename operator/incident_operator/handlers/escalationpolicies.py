"""Thin kopf handlers for EscalationPolicy: check its channels and report it in the Ready condition.

A policy is checked when it changes and every five minutes (a Secret may be rotated or
deleted without the policy changing), so a broken channel shows up in ``kubectl get escpol``
before an incident needs it. Checking reads the Secrets; it never sends anything.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import kopf

from ..adapters import kube, notify
from ..api import ESCALATION_POLICIES as PLURAL, ConditionType
from ..context import OperatorContext
from ..domain.common.conditions import set_condition
from ..domain.common.status import status_patch

RECHECK_SECONDS = 300


async def check(kube_api: Any, body: dict[str, Any], logger: kopf.Logger) -> None:
    meta = body["metadata"]
    status = dict(body.get("status") or {})
    generation = meta.get("generation")
    problems, channels = await notify.check_policy(body)
    levels = len((body.get("spec") or {}).get("levels") or [])
    if problems:
        message = f"{len(problems)} of {channels} channel(s) cannot be used: " + "; ".join(problems)
        reason = "ChannelsUnusable"
        logger.warning(f"EscalationPolicy {meta['namespace']}/{meta['name']}: {message}")
    else:
        message = f"{levels} level(s), {channels} channel(s); every Secret holds a valid Apprise URL"
        reason = "Valid"
    new = dict(status)
    new.update({
        "observedGeneration": generation,
        "levels": levels,
        "channels": channels,
        "conditions": set_condition(status.get("conditions"), ConditionType.READY, not problems, reason,
                                    message,
                                    datetime.now(timezone.utc), generation),
    })
    patch = status_patch(status, new)
    if patch:
        try:
            await kube_api.patch_status(PLURAL, meta["namespace"], meta["name"], patch, None)
        except kube.NotFound:
            pass


async def policy_changed(body: kopf.Body, memo: OperatorContext, logger: kopf.Logger, **_: Any) -> None:
    """On create, update and resume."""
    await check(memo.kube, dict(body), logger)


async def policy_recheck(body: kopf.Body, memo: OperatorContext, logger: kopf.Logger, **_: Any) -> None:
    """Every :data:`RECHECK_SECONDS`: a Secret may change without the policy changing."""
    await check(memo.kube, dict(body), logger)
