"""Thin kopf handlers for DetectionRule: validate on change, evaluate on the rule's interval.

Each rule has a daemon that evaluates it every ``spec.interval`` (with bounded concurrency
across rules) and sleeps until the next tick; a spec change wakes it at once.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any

import kopf

from ..adapters import kube
from .retries import api_failures_for_kopf
from .waiting import sleep_until_woken
from ..domain.detection import rules as dom
from ..services import detection as engine
from ..services.status import write_ready

GROUP, VERSION, PLURAL = kube.GROUP, kube.VERSION, kube.RULES


def _validate(body: dict[str, Any]) -> tuple[dom.RuleSpec | None, str | None]:
    meta = body["metadata"]
    try:
        return dom.parse_rule(meta["namespace"], meta["name"], body.get("spec") or {}), None
    except dom.InvalidRule as error:
        return None, str(error)


async def _write_invalid(api: kube.KubeApi, body: dict[str, Any], message: str) -> None:
    written = await write_ready(api, PLURAL, body, False, "Invalid", message, datetime.now(timezone.utc))
    if written is not None and written.wrote:
        kopf.event(body, type="Warning", reason="Invalid", message=message)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def rule_changed(body, memo, logger, **_) -> None:
    rule, problem = _validate(dict(body))
    if problem:
        logger.warning(f"DetectionRule is invalid: {problem}")
        with api_failures_for_kopf():
            await _write_invalid(memo.kube, dict(body), problem)
    wakeup = memo.get("wakeup")
    if wakeup is not None:
        wakeup.set()


def _phase_offset(key: str, interval_s: float) -> float:
    """A stable offset in [0, interval) derived from the rule's uid."""
    import zlib

    return (zlib.crc32(key.encode()) % 1000) / 1000 * interval_s


@kopf.daemon(GROUP, VERSION, PLURAL, id="evaluator", cancellation_timeout=5, backoff=2.0)
async def evaluator(body, memo, stopped, logger, **_) -> None:
    memo.wakeup = wakeup = asyncio.Event()
    meta = dict(body["metadata"])
    current: dict[str, Any] | None = dict(body)
    next_tick: float | None = None  # monotonic time of the next scheduled evaluation
    # Spread rules over their interval, as Prometheus offsets rule groups: a thousand rules that
    # all start together would otherwise evaluate in one burst every interval and queue up.
    rule, _ = _validate(current)
    if rule is not None:
        await sleep_until_woken(asyncio.Event(), stopped, _phase_offset(meta.get("uid") or meta["name"], rule.interval_s))
        current = None  # read fresh: a spec change meanwhile is taken as it is
        wakeup.clear()
        if stopped:
            return
    api: kube.KubeApi = memo.kube
    while not stopped:
        with api_failures_for_kopf():  # kopf restarts the daemon after the error's delay
            if current is None:
                current = await api.get_object(PLURAL, meta["namespace"], meta["name"])
                if current is None:
                    return
            rule, problem = _validate(current)
            if rule is None:
                await _write_invalid(api, current, problem or "invalid rule")
            else:
                result = await engine.evaluate_rule(current, rule, memo.detection)
        delay: float | None = None  # an invalid rule waits for a fix (the update handler wakes us)
        if rule is not None:
            if result.rule_body is None:
                current = None  # lost a race or the spec changed: re-read and evaluate again now
                continue
            current = result.rule_body
            # Aim at absolute ticks so the time spent querying and writing does not add drift; after
            # a stall longer than an interval, start again from now rather than bursting.
            now = time.monotonic()
            next_tick = (next_tick or now - result.duration) + rule.interval_s
            if next_tick < now:
                next_tick = now
            delay = next_tick - now
        wakeup.clear()
        await sleep_until_woken(wakeup, stopped, delay)
        if wakeup.is_set():
            current = None
            next_tick = None
