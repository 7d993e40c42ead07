"""The incident service: one sync of one incident, and the queue that runs it for every incident.

Level-triggered, like a controller-runtime reconciler: every watch event of an incident (and the
initial re-list) is offered to the :class:`IncidentQueue` (handlers/incidents.py), which runs
:meth:`IncidentService.process` once per incident at a time, with bounded concurrency:

1. :func:`sync_incident` computes the status the domain wants from the object as it is and writes
   the difference through the write policy (adapters/kube.py: with the object's resourceVersion,
   recomputed from a re-read on a conflict), so a crash, a retry or a second replica never repeats
   a level or an entry;
2. once per successful write, its side effects: Kubernetes Events, the invalid-incident warning
   and the metrics (:meth:`IncidentService.after_write`);
3. the notifier delivers what is due and publishes stale drafts (services/notifier.py);
4. the step returns the incident's next due time: the next escalation or the next notification
   attempt, whichever is first. The queue sleeps until the earliest due time of all incidents
   and processes that incident again then: one timer aimed at the due time, not a poll. After a
   restart the re-list recomputes every due time from ``status``.

Our own syncs are idempotent, so reacting to every event, including the echo of our own writes,
is correct; the echo costs one pure reconcile and no write (the queue skips the echo of the last).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Hashable, Mapping

from ..metrics import IncidentMetrics
from ..adapters import kube
from ..domain.common.status import status_patch
from ..domain.common.timeutil import utcnow
from ..domain.incident.lifecycle import LifecycleSettings, Outcome, reconcile_incident
from .incident_queue import IncidentQueue
from .notifier import Notifier

INCIDENTS = kube.INCIDENTS
# asyncio may wake a hair early; a due time is never acted on before it is reached.
WAKE_MARGIN_SECONDS = 0.005
# Incidents processed at once (benchmarks/incidents_scale.py: 16 left escalations waiting behind
# steps that also deliver). Each step is a pure reconcile, at most a GET and a status write, and
# the notifier's sends (bounded on their own by ``notifications.concurrency``); more in flight only
# queues on the API client's threads and the 2 cores they share.
SYNC_CONCURRENCY = 32

log = logging.getLogger(__name__)

# kopf.event's signature: the handlers pass it in (services do not post through kopf themselves).
PostEvent = Callable[..., None]


@dataclass(frozen=True)
class Synced:
    """The incident as written (``wrote``) or as read, and the domain's outcome for it."""

    body: dict[str, Any]
    outcome: Outcome
    wrote: bool


async def sync_incident(api: kube.KubeApi, body: dict[str, Any], settings: LifecycleSettings, *,
                        clock: Callable[[], datetime] = utcnow) -> Synced | None:
    """Brings status in line with the domain's view; exactly once per change, even with rivals.

    None when the incident is gone. Raises :class:`kube.StillConflicting` when it kept changing
    (the queue retries it after a delay).
    """
    outcomes: list[Outcome] = []

    def compute(current: dict[str, Any]) -> dict[str, Any] | None:
        outcome = reconcile_incident(current, clock(), settings)
        outcomes.append(outcome)
        return status_patch(current.get("status") or {}, outcome.status) or None

    meta = body["metadata"]
    written = await api.write_status(INCIDENTS, meta["namespace"], meta["name"], compute, body=body)
    if written is None:
        return None
    return Synced(written.body, outcomes[-1], written.wrote)


class _ObjectLogger(logging.LoggerAdapter):
    def process(self, msg, kwargs):  # type: ignore[no-untyped-def]
        return f"[{self.extra['key'][0]}/{self.extra['key'][1]}] {msg}", kwargs  # type: ignore[index]


class DeliveryFailed(Exception):
    """The notifier's pass failed (an API failure) after the incident itself was synced.

    ``due`` is the incident's own next due time (epoch seconds): the queue keeps it when it is
    earlier than the retry, so a failing channel lookup never delays an escalation.
    """

    def __init__(self, cause: BaseException, due: float | None):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.due = due


class IncidentService:
    """Built once by the app: the queue of every incident and the step it runs for each."""

    def __init__(self, api: kube.KubeApi, settings: LifecycleSettings, *, notifier: Notifier | None,
                 post_event: PostEvent, concurrency: int = SYNC_CONCURRENCY,
                 clock: Callable[[], datetime] = utcnow, metrics: IncidentMetrics | None = None):
        self.kube = api
        # Where each incident's observations go (the app passes the served registry's).
        self.metrics = metrics if metrics is not None else IncidentMetrics()
        self.settings = settings
        self.notifier = notifier
        self.post_event = post_event
        self.clock = clock
        self.queue = IncidentQueue(self.process, concurrency=concurrency)

    async def process(self, key: Hashable, body: dict[str, Any] | None) -> float | None:
        """One queue step for one incident: sync it, deliver what is due, return when it next needs
        looking at."""
        namespace, name = key  # type: ignore[misc]
        logger = _ObjectLogger(log, {"key": key})
        fresh = body is None
        if body is None:  # a due time came: nothing newer was offered, so read it
            body = await self.kube.get_object(INCIDENTS, namespace, name)
            if body is None:
                return None
        synced = await sync_incident(self.kube, body, self.settings, clock=self.clock)
        if synced is None:
            return None
        if synced.wrote:
            self.after_write(synced, logger)
        self.queue.wrote(key, _version(synced.body))
        due = [synced.outcome.next_wakeup]
        if self.notifier is not None:
            try:
                delivered = await self.notifier.deliver_due(synced.body, fresh=fresh or synced.wrote)
            except Exception as error:  # noqa: BLE001 - the boundary between an incident and its notifications:
                # whatever failed in the pass (an API failure, a bug), the lifecycle's due time survives it
                raise DeliveryFailed(error, _epoch(synced.outcome.next_wakeup)) from error
            if delivered.body is None:
                return None
            self.queue.wrote(key, _version(delivered.body))
            due.append(delivered.next_due)
        return _epoch(min((d for d in due if d is not None), default=None))

    # -- once per successful write (never inside the recomputed part) ---------------------------------

    def after_write(self, synced: Synced, logger: logging.LoggerAdapter) -> None:
        self.post_events(synced.body, synced.outcome)
        warn_if_invalid(synced.outcome, logger)
        self.metrics.record_outcome(synced.body, synced.outcome)

    def post_events(self, body: Mapping[str, Any], outcome: Outcome) -> None:
        for event in outcome.events:
            self.post_event(body, type=event.type, reason=event.reason, message=event.message)


def warn_if_invalid(outcome: Outcome, logger: logging.LoggerAdapter) -> None:
    if outcome.invalid:
        logger.warning(f"Incident is invalid: {outcome.invalid}")


def _version(body: Mapping[str, Any]) -> str | None:
    return (body.get("metadata") or {}).get("resourceVersion")


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp() + WAKE_MARGIN_SECONDS
