"""Thin kopf handlers for Incident: every watch event goes to the incident book and the incident queue.

The work (the sync, its side effects, the notifications, the due times) is services/incidents.py.

No kopf change handlers, daemons or indexes on Incidents: those make kopf write a finalizer and
its bookkeeping annotations on every incident, keep tasks per incident, and (indexes) make the
start-up cubic in the number of incidents (services/incident_book.py says why).
"""

from __future__ import annotations

import kopf

from ..adapters import kube

GROUP, VERSION, PLURAL = kube.GROUP, kube.VERSION, kube.INCIDENTS


@kopf.on.cleanup(id="incident-queue")
async def stop_incident_queue(memo, **_) -> None:
    service = memo.get("incidents")
    if service is not None:
        await service.queue.stop()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def incident_event(event, memo, **_) -> None:
    """Every change of every incident, and each one once at start-up (the re-list)."""
    body = event.get("object") or {}
    meta = body.get("metadata") or {}
    key = (meta.get("namespace"), meta.get("name"))
    if not key[1]:
        return
    queue = memo.incidents.queue
    if event.get("type") == "DELETED":
        memo.incident_book.forget(*key)
        queue.forget(key)
        return
    memo.incident_book.observe(body)
    # Started from an event handler rather than at start-up: kopf.event() posts through a queue
    # kopf binds (a context variable) only in its per-object tasks, and a task inherits the context
    # it is created in. Started here, every sync can post its Events. (Idempotent: the per-object
    # memo is a copy, so the queue itself remembers that it runs.)
    queue.start()
    queue.offer(key, dict(body))
