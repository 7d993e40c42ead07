"""Thin kopf handlers for Incident: read the object, call the domain, write status.

Level-triggered, like a controller-runtime reconciler: every watch event of an incident (and the
initial re-list) offers it to the operator's :class:`IncidentQueue`, which runs one idempotent
sync per incident at a time, with bounded concurrency:

- the sync computes the status the domain wants from the object as it is, writes the difference
  with the object's resourceVersion (so a crash, a retry or a second replica never repeats a
  level or an entry), and returns the next due time (the next escalation, a notification retry);
- the queue sleeps until the earliest due time of all incidents and syncs that incident again
  then: one timer aimed at the due time, not a poll. After a restart the re-list recomputes
  every due time from ``status``.

No kopf change handlers, daemons or indexes on Incidents: those make kopf write a finalizer and
its bookkeeping annotations on every incident, keep tasks per incident, and (indexes) make the
start-up cubic in the number of incidents (services/incident_book.py says why). Our own syncs are
idempotent, so reacting to every event, including the echo of our own writes, is correct; the
echo costs one pure reconcile and no write.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Hashable

import kopf

from .. import metrics
from ..adapters import kube
from ..domain.common.status import status_patch
from ..domain.common.timeutil import utcnow
from ..domain.incident.lifecycle import Outcome, reconcile_incident
from ..services.incident_book import IncidentBook
from ..services.incident_queue import IncidentQueue

GROUP, VERSION, PLURAL = kube.GROUP, kube.VERSION, kube.INCIDENTS
MAX_CONFLICT_RETRIES = 8
# asyncio may wake a hair early; a due time is never acted on before it is reached.
WAKE_MARGIN_SECONDS = 0.005
# Incidents synced at once. Each sync is a pure reconcile and at most a GET and a status write;
# more in flight only queues on the API client's threads and the 2 cores they share.
SYNC_CONCURRENCY = 16

log = logging.getLogger(__name__)


class StillChanging(RuntimeError):
    """Every status write conflicted with a newer version of the incident."""


class _ObjectLogger(logging.LoggerAdapter):
    def process(self, msg, kwargs):
        return f"[{self.extra['key'][0]}/{self.extra['key'][1]}] {msg}", kwargs


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
    # The queue retries the incident after a delay (services/incident_queue.py).
    raise StillChanging("the incident kept changing while its status was being written")


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


def _next_due(outcome: Outcome, memo: Any) -> datetime | None:
    candidates = [outcome.next_wakeup]
    notifier = getattr(memo, "notifier", None)
    if notifier is not None:
        candidates.append(notifier.next_retry(outcome.status))
    candidates = [c for c in candidates if c is not None]
    return min(candidates) if candidates else None


async def process_incident(memo: Any, key: Hashable, body: dict[str, Any] | None) -> float | None:
    """One queue step for one incident: sync it, return when it next needs looking at."""
    namespace, name = key  # type: ignore[misc]
    logger = _ObjectLogger(log, {"key": key})
    if body is None:  # a due time came: nothing newer was offered, so read it
        body = await kube.get_object(PLURAL, namespace, name)
        if body is None:
            return None
    current, outcome = await sync_incident(body, memo, logger)
    if current is None or outcome is None:
        return None
    memo.incident_queue.wrote(key, (current.get("metadata") or {}).get("resourceVersion"))
    due = _next_due(outcome, memo)
    return None if due is None else due.timestamp() + WAKE_MARGIN_SECONDS


@kopf.on.startup(id="incident-queue")
async def create_incident_queue(memo, **_) -> None:
    """One book and one queue for all incidents, ready before the watch delivers anything."""
    memo.incident_book = IncidentBook()

    async def process(key: Hashable, body: dict[str, Any] | None) -> float | None:
        return await process_incident(memo, key, body)

    memo.incident_queue = IncidentQueue(process, concurrency=SYNC_CONCURRENCY)


@kopf.on.cleanup(id="incident-queue")
async def stop_incident_queue(memo, **_) -> None:
    queue = memo.get("incident_queue")
    if queue is not None:
        await queue.stop()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def incident_event(event, memo, **_) -> None:
    """Every change of every incident, and each one once at start-up (the re-list)."""
    body = event.get("object") or {}
    meta = body.get("metadata") or {}
    key = (meta.get("namespace"), meta.get("name"))
    if not key[1]:
        return
    if event.get("type") == "DELETED":
        memo.incident_book.forget(*key)
        memo.incident_queue.forget(key)
        return
    memo.incident_book.observe(body)
    # Started from an event handler rather than at start-up: kopf.event() posts through a queue
    # kopf binds (a context variable) only in its per-object tasks, and a task inherits the context
    # it is created in. Started here, every sync can post its Events. (Idempotent: the per-object
    # memo is a copy, so the queue itself remembers that it runs.)
    memo.incident_queue.start()
    memo.incident_queue.offer(key, dict(body))
