"""Thin kopf handlers for Incident: read the object, call the domain, write status.

Two entry points share one idempotent sync:
- create/update/resume handlers react to spec changes (a person acknowledges, a priority
  changes) and wake the object's deadline clock;
- a per-incident daemon sleeps until the next due time computed from ``status`` (the next
  escalation, a notification retry) and syncs again then: a timer aimed at the due time,
  not a coarse poll. After a restart the daemon simply recomputes from ``status``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import kopf

from .. import metrics
from ..adapters import kube
from .waiting import sleep_until_woken
from ..domain.lifecycle import Outcome, reconcile_incident, status_patch

GROUP, VERSION, PLURAL = kube.GROUP, kube.VERSION, kube.INCIDENTS
MAX_CONFLICT_RETRIES = 8
# asyncio may wake a hair early; a due time is never acted on before it is reached.
WAKE_MARGIN_SECONDS = 0.005
# How long a new daemon waits for the create/resume handler's first status write.
HANDLER_GRACE_SECONDS = 2.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


async def sync_incident(body: dict[str, Any], memo: Any, logger) -> tuple[dict[str, Any] | None, Outcome | None]:
    """Brings status in line with the domain's view; exactly once per change, even with rivals."""
    settings = memo.config.lifecycle
    current: dict[str, Any] | None = body
    for _ in range(MAX_CONFLICT_RETRIES):
        if current is None:
            return None, None
        outcome = reconcile_incident(current, utcnow(), settings)
        old_status = current.get("status") or {}
        patch = status_patch(old_status, outcome.status)
        if not patch:
            _follow_up(current, memo)
            return current, outcome
        meta = current["metadata"]
        try:
            updated = await kube.patch_status(PLURAL, meta["namespace"], meta["name"], patch,
                                              meta.get("resourceVersion"))
        except kube.Conflict:
            current = await kube.get_object(PLURAL, meta["namespace"], meta["name"])
            continue
        except kube.NotFound:
            return None, None
        _after_write(updated, outcome, memo, logger)
        return updated, outcome
    raise kopf.TemporaryError("the incident kept changing while its status was being written", delay=1)


def _after_write(body: dict[str, Any], outcome: Outcome, memo: Any, logger) -> None:
    """Side effects that must happen once per successful write (never inside retried steps)."""
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    if outcome.invalid:
        logger.warning(f"Incident is invalid: {outcome.invalid}")
    metrics.record_outcome(body, outcome)
    notifier = getattr(memo, "notifier", None)
    if notifier is not None and outcome.notifications:
        notifier.enqueue(body, outcome.notifications)
    _follow_up(body, memo)


def _follow_up(body: dict[str, Any], memo: Any) -> None:
    """Lets the notifier deliver what is still pending and refresh the customer drafts
    (also after a restart, when nothing new was written)."""
    kick = getattr(getattr(memo, "notifier", None), "kick", None)
    if kick is not None:
        kick(body)


def _wakeup_event(memo: Any) -> asyncio.Event:
    """The per-incident wake-up (kopf's memo is per object); whoever comes first creates it."""
    event = memo.get("wakeup")
    if event is None:
        event = memo["wakeup"] = asyncio.Event()
    return event


def _wake(memo: Any) -> None:
    _wakeup_event(memo).set()


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def incident_changed(body, memo, logger, **_) -> None:
    await sync_incident(dict(body), memo, logger)
    _wake(memo)


def _open(spec, **_) -> bool:
    return (spec or {}).get("state") != "Closed"


@kopf.daemon(GROUP, VERSION, PLURAL, id="deadline-clock", when=_open, cancellation_timeout=5,
             backoff=1.0)
async def deadline_clock(body, memo, stopped, logger, **_) -> None:
    """Sleeps until the incident's next due time, then syncs; woken early by spec changes."""
    wakeup = _wakeup_event(memo)
    current: dict[str, Any] | None = dict(body)
    meta = dict(body["metadata"])
    # The create/resume handler is syncing this object right now: rather than race it (a 409 and a
    # re-read per incident, which dominated start-up with thousands of incidents), take the due time
    # from the object as it is when it needs no write, else wait for the handler's wake-up.
    outcome = reconcile_incident(current, utcnow(), memo.config.lifecycle)
    if status_patch(current.get("status") or {}, outcome.status):
        await sleep_until_woken(wakeup, stopped, HANDLER_GRACE_SECONDS)
        if stopped:
            return
        current = await kube.get_object(PLURAL, meta["namespace"], meta["name"])
        outcome = None
    first = True
    while not stopped:
        if not (first and outcome is not None):
            try:
                current, outcome = await sync_incident(current, memo, logger)
            except kopf.TemporaryError:
                current = await kube.get_object(PLURAL, meta["namespace"], meta["name"])
                continue
        first = False
        if current is None or outcome is None:
            return
        due = _next_due(outcome, memo)
        timeout = None if due is None else max((due - utcnow()).total_seconds() + WAKE_MARGIN_SECONDS, 0)
        wakeup.clear()
        await sleep_until_woken(wakeup, stopped, timeout)
        if stopped:
            return
        # Re-read: a person may have acknowledged meanwhile, or another replica escalated.
        current = await kube.get_object(PLURAL, meta["namespace"], meta["name"])


def _next_due(outcome: Outcome, memo: Any) -> datetime | None:
    candidates = [outcome.next_wakeup]
    notifier = getattr(memo, "notifier", None)
    if notifier is not None:
        candidates.append(notifier.next_retry(outcome.status))
    candidates = [c for c in candidates if c is not None]
    return min(candidates) if candidates else None


def _recurrence_unrecorded(status, **_) -> bool:
    status = status or {}
    return (bool((status.get("signal") or {}).get("previousIncident"))
            and "recurrence" not in ((status.get("metrics") or {}).get("observed") or []))


@kopf.on.event(GROUP, VERSION, PLURAL, when=_recurrence_unrecorded)
async def recurrence_noticed(body, memo, logger, **_) -> None:
    """The detection engine writes ``status.signal`` after creating the incident, and a status-only
    change wakes no update handler: sync once more so the recurrence is counted (exactly once)."""
    try:
        await sync_incident(dict(body), memo, logger)
    except kopf.TemporaryError as error:
        logger.info(f"Recurrence not recorded yet ({error}); the next change of the incident retries")


@kopf.index(GROUP, VERSION, PLURAL, id="incident_states")
def incident_states(spec, status, **_):
    """Every incident under (priority, state), for the scrape-time gauges; kopf keeps it in sync."""
    key, entry = metrics.index_entry(spec, status)
    return {key: entry}


@kopf.on.startup(id="metrics-index")
async def expose_incident_index(memo, incident_states: kopf.Index, **_) -> None:
    """Hands the index to the /metrics collector (kopf creates it empty before start-up and fills
    it in place from its own listing, so this one object stays current)."""
    memo.incident_index = incident_states
