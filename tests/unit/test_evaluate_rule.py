"""One rule evaluation (services/detection.py ``evaluate_rule``) against the in-memory API
(tests/unit/fakes.py) and a stub Prometheus, with rivals injected on purpose: a second replica that
evaluates the same rule between our read and our write never makes a second incident."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from incident_operator.adapters import kube
from incident_operator.adapters.prometheus import Sample
from incident_operator.config import OperatorConfig
from incident_operator.domain.detection import rules as dom
from incident_operator.services.correlation import Correlator
from incident_operator.services.detection import Detection, evaluate_rule
from incident_operator.services.tenant_limits import FairSlots
from tests.unit.fakes import FakeKube

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
NS, RULE = "support", "login-spike"
SPEC = {"query": 'sum by (topic) (increase(tickets_total{topic="login"}[10m]))', "interval": "30s",
        "detector": {"type": "threshold", "threshold": {"value": 15}},
        "incident": {"title": "Spike of {{ labels.topic }} tickets", "service": "auth"}}


class Prometheus:
    """Answers every instant query with ``value`` for topic=login, and no history."""

    def __init__(self, value: float):
        self.value = value

    async def query(self, endpoint, expr, at, limits=None):
        return [Sample({"topic": "login"}, self.value)]

    async def query_range(self, endpoint, expr, start, end, step, limits=None):
        return []


def scene(value: float = 40.0) -> tuple[FakeKube, Detection]:
    api = FakeKube()
    api.put(kube.RULES, {"kind": "DetectionRule", "metadata": {"name": RULE, "namespace": NS}, "spec": SPEC})
    config = OperatorConfig.from_dict({})
    detection = Detection(kube=api, config=config, prometheus=Prometheus(value),  # type: ignore[arg-type]
                          correlator=Correlator(api, config), slots=FairSlots(1, 1), clock=lambda: NOW)
    return api, detection


def evaluate(api: FakeKube, detection: Detection, body: dict | None = None):
    body = body or api.stored(kube.RULES, NS, RULE)
    return asyncio.run(evaluate_rule(body, dom.parse_rule(NS, RULE, body["spec"]), detection))


def incidents(api: FakeKube) -> list[dict]:
    return asyncio.run(api.list_objects(kube.INCIDENTS, NS))


def test_a_spike_opens_one_incident_and_records_its_episode():
    api, detection = scene()
    result = evaluate(api, detection)
    (incident,) = incidents(api)
    assert result.rule_body is not None and result.error is None
    (group,) = result.rule_body["status"]["groups"]
    assert group["incident"] == incident["metadata"]["name"]
    assert incident["status"]["signal"]["value"] == 40.0
    ready = {c["type"]: c for c in result.rule_body["status"]["conditions"]}["Ready"]
    assert ready["status"] == "True" and ready["observedGeneration"] == 1
    assert result.rule_body["status"]["observedGeneration"] == 1


def test_a_rival_evaluation_between_read_and_write_opens_nothing_twice():
    api, detection = scene()
    read = api.stored(kube.RULES, NS, RULE)
    rival_api, rival = api, Detection(kube=api, config=detection.config, prometheus=detection.prometheus,
                                      correlator=Correlator(api, detection.config),
                                      slots=FairSlots(1, 1), clock=lambda: NOW)
    # The rival replica evaluates the same rule (from the same read) and wins every write.
    first = evaluate(rival_api, rival, read)
    assert first.rule_body is not None
    ours = evaluate(api, detection, read)
    assert ours.rule_body is None  # our rule status was stale: written nowhere, evaluate again
    again = evaluate(api, detection)
    assert again.rule_body is not None
    assert len(incidents(api)) == 1  # same deterministic name: create-or-get found the rival's
    (group,) = again.rule_body["status"]["groups"]
    assert group["incident"] == incidents(api)[0]["metadata"]["name"]


def test_a_conflicting_evidence_write_is_recomputed_not_lost():
    api, detection = scene()
    # A rival writes the new incident's status (say its lifecycle sync) right before our evidence write
    # (the first write after the create).
    api.before_next_write(lambda fake: fake.rival_status_patch(
        kube.INCIDENTS, NS, next(n for (p, _, n) in fake.objects if p == kube.INCIDENTS),
        {"state": "Triggered"}))
    result = evaluate(api, detection)
    (incident,) = incidents(api)
    assert api.conflicts == 1
    assert incident["status"]["signal"]["value"] == 40.0 and incident["status"]["state"] == "Triggered"
    assert result.rule_body is not None


def test_a_changed_spec_meanwhile_means_evaluate_again():
    api, detection = scene()
    read = api.stored(kube.RULES, NS, RULE)
    asyncio.run(api.patch_object(kube.RULES, NS, RULE, {"spec": {"interval": "1m"}}))
    assert evaluate(api, detection, read).rule_body is None
    assert "groups" not in (api.stored(kube.RULES, NS, RULE).get("status") or {})
