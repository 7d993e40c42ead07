"""Operator-level settings, applied once at start-up.

Every non-default kopf setting is here, with the reason.
"""

from __future__ import annotations

import logging

import kopf

from ..adapters.connections import login_with_bounded_connections

PREFIX = "incidents.buttercream.io"

# kopf's own API session with a bounded connection pool (adapters/connections.py says why).
kopf.on.login(id="bounded-connections")(login_with_bounded_connections)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger, **_) -> None:
    # Keep kopf's own bookkeeping under our annotation prefix, not kopf.zalando.org.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration")
    settings.persistence.finalizer = f"{PREFIX}/kopf-finalizer"
    # Only warnings from logs become Kubernetes Events; the timeline and our own
    # kopf.event() calls carry the story. Avoids an Event per handler run.
    settings.posting.level = logging.WARNING
    # Standalone unless `--peering NAME` (the chart's peering.enabled): then kopf.operator() has set
    # the peering name and this operator's priority (the newest wins; runtime.py, __main__.py).
    if not memo.get("peering"):
        settings.peering.standalone = True
    else:
        from ..adapters.kube import NotFound

        try:
            await memo.kube.ensure_peering(memo.peering, tuple(memo.get("namespaces") or ()))
        except NotFound:
            raise kopf.PermanentError(f"--peering {memo.peering}: kopf's peering CRDs (kopf.dev) are not "
                                      "installed; the chart installs them with peering.enabled") from None
    # settings.queueing.worker_limit stays unset: kopf's per-object workers only hand events to our
    # queues (Incidents: services/incident_queue.py) or spawn a rule's daemon, so they are short;
    # the work itself is bounded there, and connections in adapters/connections.py.
    # A hopeless object must not be retried forever at full speed.
    settings.batching.error_delays = [1, 2, 5, 10, 30, 60]
    # The watch-inactivity timeout added in kopf 1.44 (nolar/kopf#1120, #1267) stays at
    # its default: it is what reconnects a silently dead watch.
    logger.info(f"Operator configured: namespaces={list(memo.config.namespaces) or 'all'}")
