"""The Alertmanager service (services/alerts.py) against the in-memory API (tests/unit/fakes.py):
create-or-get by group, metadata before status through the write policy, and a rival write
between read and write that leaves one timeline entry per alert."""

from __future__ import annotations

import asyncio

from incident_operator.adapters import kube
from incident_operator.config import OperatorConfig
from incident_operator.domain.alerts import alertmanager as dom
from incident_operator.services.alerts import AlertService
from incident_operator.services.correlation import Correlator
from tests.unit.fakes import FakeKube
from tests.unit.test_alerts import T0, payload, settings


def alert_service(api: FakeKube) -> AlertService:
    return AlertService(api, settings(), Correlator(api, OperatorConfig.from_dict({})), clock=lambda: T0)


def handle(service: AlertService, body: dict) -> str:
    return asyncio.run(service.handle(dom.parse_notification(body))).action


def timeline_types(api: FakeKube) -> list[str]:
    (incident,) = asyncio.run(api.list_objects(kube.INCIDENTS, "support"))
    return [entry["type"] for entry in (incident.get("status") or {}).get("timeline") or []]


def test_an_alert_opens_one_incident_and_a_repeat_changes_nothing():
    api = FakeKube()
    service = alert_service(api)
    assert handle(service, payload()) == "opened"
    writes = len(api.writes)
    assert handle(service, payload()) == "updated"
    assert len(api.writes) == writes  # Alertmanager's repeat notification: nothing to write
    assert timeline_types(api).count("AlertFiring") == 1


def test_a_rival_write_between_read_and_write_leaves_one_entry():
    api = FakeKube()
    service = alert_service(api)
    # Right after the create, someone (the lifecycle sync) writes the incident's status first.
    api.before_next_write(lambda fake: fake.rival_status_patch(
        kube.INCIDENTS, "support", next(n for (p, _, n) in fake.objects if p == kube.INCIDENTS),
        {"state": "Triggered"}))
    assert handle(service, payload()) == "opened"
    assert api.conflicts == 1
    assert timeline_types(api).count("AlertFiring") == 1
