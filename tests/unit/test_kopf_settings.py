"""The operator's kopf settings (handlers/startup.py), checked without a cluster."""

from __future__ import annotations

import asyncio
import logging

import kopf

from incident_operator.config import OperatorConfig
from incident_operator.handlers.startup import PREFIX, configure


def configured() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    memo = kopf.Memo(config=OperatorConfig.from_dict({}))
    asyncio.run(configure(settings=settings, memo=memo, logger=logging.getLogger("test")))
    return settings


def test_kopf_state_lives_under_our_annotation_prefix():
    settings = configured()
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert settings.persistence.progress_storage.prefix == PREFIX
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert settings.persistence.diffbase_storage.prefix == PREFIX
    assert settings.persistence.finalizer.startswith(PREFIX + "/")


def test_watch_inactivity_timeout_keeps_kopfs_default():
    # kopf >= 1.44 reconnects silently dead watches (nolar/kopf#1120); we must not disable it.
    assert configured().watching.inactivity_timeout == kopf.OperatorSettings().watching.inactivity_timeout
    assert configured().watching.inactivity_timeout is not None


def test_only_warnings_become_events_and_no_peering():
    settings = configured()
    assert settings.posting.level == logging.WARNING
    assert settings.peering.standalone is True


def test_concurrent_object_workers_are_bounded():
    # kopf's API client opens one TLS connection per concurrent request, without limit.
    assert configured().batching.worker_limit is not None
