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
from ..services.status import write_ready
from .retries import api_failures_for_kopf

GROUP, VERSION, PLURAL = kube.GROUP, kube.VERSION, notify.POLICIES
RECHECK_SECONDS = 300


async def check(api: kube.KubeApi, body: dict[str, Any], logger) -> None:
    meta = body["metadata"]
    problems, channels = await notify.check_policy(api, body)
    levels = len((body.get("spec") or {}).get("levels") or [])
    if problems:
        message = f"{len(problems)} of {channels} channel(s) cannot be used: " + "; ".join(problems)
        reason = "ChannelsUnusable"
        logger.warning(f"EscalationPolicy {meta['namespace']}/{meta['name']}: {message}")
    else:
        message = f"{levels} level(s), {channels} channel(s); every Secret holds a valid Apprise URL"
        reason = "Valid"
    await write_ready(api, PLURAL, body, not problems, reason, message, datetime.now(timezone.utc),
                      levels=levels, channels=channels)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def policy_changed(body, memo, logger, **_) -> None:
    with api_failures_for_kopf():
        await check(memo.kube, dict(body), logger)


@kopf.timer(GROUP, VERSION, PLURAL, interval=RECHECK_SECONDS, initial_delay=RECHECK_SECONDS, idle=None)
async def policy_recheck(body, memo, logger, **_) -> None:
    with api_failures_for_kopf():
        await check(memo.kube, dict(body), logger)
