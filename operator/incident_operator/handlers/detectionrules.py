"""Thin kopf handlers for DetectionRule: validate on change, evaluate on the rule's interval.

Each rule has a daemon that evaluates it every ``spec.interval`` (with bounded concurrency
across rules) and sleeps until the next tick; a spec change wakes it at once.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from datetime import datetime, timezone
from typing import Any

import kopf

from ..adapters import kube
from ..api import DETECTION_RULES as PLURAL
from ..context import OperatorContext
from .retries import api_failures_for_kopf
from .waiting import sleep_until_woken
from ..domain.detection import rules as dom
from ..services import detection as engine
from ..services.rendering import run_rendering
from ..services.status import write_ready


def _parse(body: dict[str, Any]) -> tuple[dom.RuleSpec | None, str | None]:
    meta = body["metadata"]
    try:
        return dom.parse_rule(meta["namespace"], meta["name"], body.get("spec") or {}), None
    except dom.InvalidRule as error:
        return None, str(error)


async def _validate(body: dict[str, Any], memo: OperatorContext) -> tuple[dom.RuleSpec | None, str | None]:
    """The rule parsed on the render executor (parsing tries the rule's templates, which are bounded
    but not free), off the event loop."""
    return await run_rendering(memo.renderer, _parse, body)


async def _write_invalid(api: kube.KubeApi, body: dict[str, Any], message: str) -> None:
    written = await write_ready(api, PLURAL, body, False, "Invalid", message, datetime.now(timezone.utc),
                                stalled=("Invalid", message))
    if written is not None and written.wrote:
        kopf.event(body, type="Warning", reason="Invalid", message=message)


def _rule_key(meta: Any) -> str:
    """The key of the rule's wake-up: its uid (a rule deleted and created again is a new rule)."""
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


async def rule_changed(body: kopf.Body, memo: OperatorContext, logger: kopf.Logger, **_: Any) -> None:
    """On create, update and resume: report an invalid rule, and wake the rule's daemon at once."""
    rule, problem = await _validate(dict(body), memo)
    if problem:
        logger.warning(f"DetectionRule is invalid: {problem}")
        with api_failures_for_kopf():
            await _write_invalid(memo.kube, dict(body), problem)
    memo.rule_wakeups.wake(_rule_key(body["metadata"]))


def _phase_offset(key: str, interval_s: float) -> float:
    """A stable offset in [0, interval) derived from the rule's uid."""
    return (zlib.crc32(key.encode()) % 1000) / 1000 * interval_s


async def evaluator(body: kopf.Body, memo: OperatorContext, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """The rule's daemon (one per rule): evaluates it every ``spec.interval``."""
    meta = dict(body["metadata"])
    with memo.rule_wakeups.registered(_rule_key(meta)) as wakeup:
        await _evaluate_until_stopped(dict(body), meta, memo, stopped, wakeup)


async def _evaluate_until_stopped(body: dict[str, Any], meta: dict[str, Any], memo: OperatorContext,
                                  stopped: kopf.DaemonStopped, wakeup: asyncio.Event) -> None:
    current: dict[str, Any] | None = body
    next_tick: float | None = None  # monotonic time of the next scheduled evaluation
    # Spread rules over their interval, as Prometheus offsets rule groups: a thousand rules that
    # all start together would otherwise evaluate in one burst every interval and queue up.
    rule, _ = await _validate(body, memo)
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
            rule, problem = await _validate(current, memo)
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
