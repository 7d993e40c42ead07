"""The operator's kopf settings (app.py), checked without a cluster."""

from __future__ import annotations

import asyncio
import logging

import kopf

from incident_operator.config import OperatorConfig
from incident_operator.api import KOPF_PREFIX as PREFIX
from incident_operator.app import configure


def configured() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    memo = kopf.Memo(config=OperatorConfig.from_dict({}), peering=None, namespaces=())
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


def test_worker_limit_stays_unset_because_the_work_is_bounded_in_our_queues():
    assert configured().queueing.worker_limit is None


def test_kopf_connections_are_bounded():
    # kopf's own session has no limit; our login handler gives kopf a bounded session of its own,
    # leaving every other aiohttp connector (Prometheus, the receivers) as it chose.
    import aiohttp

    from incident_operator.adapters.connections import KOPF_CONNECTION_LIMIT, bounded_session

    async def limits():
        session = bounded_session(kopf.ConnectionInfo(server="https://127.0.0.1:6443", token="t"))
        other = aiohttp.TCPConnector(limit=0)
        try:
            assert isinstance(session, kopf.AiohttpSession) and session.server == "https://127.0.0.1:6443"
            assert session.aiohttp_session.headers["Authorization"] == "Bearer t"
            return session.aiohttp_session.connector.limit, other.limit
        finally:
            await session.aiohttp_session.close()
            await other.close()

    assert asyncio.run(limits()) == (KOPF_CONNECTION_LIMIT, 0)


def test_kopf_logs_in_through_the_bounded_session():
    from incident_operator.adapters.connections import login_with_bounded_connections

    from kopf._core.intents.causes import Activity

    # Our handler replaces kopf's fallback logins (they run only when no login handler is registered).
    from incident_operator.app import build_registry

    registry = build_registry()  # every handler is registered there
    logins = [h.fn for h in registry._activities.iter_handlers(activity=Activity.AUTHENTICATION)]
    assert logins == [login_with_bounded_connections]
