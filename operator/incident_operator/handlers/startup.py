"""Operator-level settings, applied once at start-up.

Every non-default kopf setting is here, with the reason.
"""

from __future__ import annotations

import logging

import kopf

PREFIX = "incidents.buttercream.io"
WORKER_LIMIT = 32


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
    # One replica with Recreate (see the chart); no peering objects needed.
    settings.peering.standalone = True
    # kopf's API session has no connection limit (aiohttp TCPConnector(limit=0)), so thousands of
    # objects processed at once (a start-up re-list) meant as many TLS connections, ~0.5 MiB each:
    # measured 546 MiB RSS with 600 incidents. Bounding the concurrent per-object workers bounds them.
    settings.batching.worker_limit = WORKER_LIMIT
    # A hopeless object must not be retried forever at full speed.
    settings.batching.error_delays = [1, 2, 5, 10, 30, 60]
    # The watch-inactivity timeout added in kopf 1.44 (nolar/kopf#1120, #1267) stays at
    # its default: it is what reconnects a silently dead watch.
    logger.info(f"Operator configured: namespaces={list(memo.config.namespaces) or 'all'}")
