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
from ..domain.common.conditions import set_condition
from ..domain.common.status import status_patch

GROUP, VERSION, PLURAL = kube.GROUP, kube.VERSION, notify.POLICIES
RECHECK_SECONDS = 300


async def check(body: dict[str, Any], logger) -> None:
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
        "conditions": set_condition(status.get("conditions"), "Ready", not problems, reason, message,
                                    datetime.now(timezone.utc), generation),
    })
    patch = status_patch(status, new)
    if patch:
        try:
            await kube.patch_status(PLURAL, meta["namespace"], meta["name"], patch, None)
        except kube.NotFound:
            pass


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def policy_changed(body, logger, **_) -> None:
    await check(dict(body), logger)


@kopf.timer(GROUP, VERSION, PLURAL, interval=RECHECK_SECONDS, initial_delay=RECHECK_SECONDS, idle=None)
async def policy_recheck(body, logger, **_) -> None:
    await check(dict(body), logger)
