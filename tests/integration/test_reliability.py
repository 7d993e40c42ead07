"""Faults: SIGKILL mid-detection, two operators at once, an API-server restart."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.integration.test_detection import incidents_of, rule
from tests.support.kubectl import condition, incident
from tools.devenv.processes import wait_until


def test_sigkill_mid_detection_opens_no_duplicate(kubectl, start_operator, prometheus, exporter):
    topic = "kill-" + uuid.uuid4().hex[:4]
    config = {"prometheus": {"url": prometheus.url}}
    operator = start_operator(config)
    kubectl.apply(rule("killed", f'target="{exporter.target}",topic="{topic}"'))
    wait_until(lambda: condition(kubectl.get("detectionrule", "killed"), "Ready")["reason"] == "Evaluating", 20)
    exporter.set_rate(topic, 5.0)
    wait_until(lambda: incidents_of(kubectl, "killed"), 30, what="the incident")
    operator.kill()
    exporter.set_rate(topic, 6.0)  # the spike goes on while the operator is gone
    time.sleep(2)
    start_operator(config, name="after-kill")
    time.sleep(6)
    assert len(incidents_of(kubectl, "killed")) == 1
    groups = kubectl.get("detectionrule", "killed")["status"]["groups"]
    assert [g["episodeState"]["episode"] for g in groups] == [1]


def test_two_operators_open_exactly_one_incident_per_episode(kubectl, start_operator, prometheus, exporter):
    topic = "twin-" + uuid.uuid4().hex[:4]
    config = {"prometheus": {"url": prometheus.url}}
    start_operator(config, name="replica-a")
    start_operator(config, name="replica-b")
    kubectl.apply(rule("twins", f'target="{exporter.target}",topic="{topic}"'))
    wait_until(lambda: condition(kubectl.get("detectionrule", "twins"), "Ready")["reason"] == "Evaluating", 20)
    exporter.set_rate(topic, 5.0)
    [first] = wait_until(lambda: incidents_of(kubectl, "twins"), 30, what="the incident")
    time.sleep(8)
    found = incidents_of(kubectl, "twins")
    assert [i["metadata"]["name"] for i in found] == [first["metadata"]["name"]]
    # Both replicas also ran the lifecycle: the "Detected" entry is in the timeline once.
    timeline = kubectl.get("incident", first["metadata"]["name"])["status"]["timeline"]
    assert sum(1 for e in timeline if e["type"] == "Detected") == 1


def test_two_operators_escalate_each_level_once(kubectl, start_operator):
    config = {"deadlines": {"response": {"P1": "2s"}, "escalationInterval": {"P1": "2s"}, "maxEscalationLevel": 3}}
    start_operator(config, name="replica-a")
    start_operator(config, name="replica-b")
    kubectl.apply(incident("contested", priority="P1"))
    obj = wait_until(lambda: (lambda o: o if o["status"].get("escalation", {}).get("level") == 3 else None)(
        kubectl.get("incident", "contested")), 30, what="level 3")
    escalations = [e["message"] for e in obj["status"]["timeline"] if e["type"] == "Escalated"]
    assert len(escalations) == 3, escalations


def test_operator_carries_on_after_apiserver_restart(kubectl, start_operator, control_plane):
    if not hasattr(control_plane, "restart_apiserver"):
        pytest.skip("needs the suite's own control plane")  # USE_EXISTING_CLUSTER: cannot restart it
    operator = start_operator()
    kubectl.apply(incident("before-restart", priority="P3"))
    wait_until(lambda: (kubectl.get("incident", "before-restart").get("status") or {}).get("priority"), 20)
    control_plane.restart_apiserver()
    kubectl.apply(incident("after-restart", priority="P2"))
    obj = wait_until(lambda: (lambda o: o if (o.get("status") or {}).get("priority") else None)(
        kubectl.get("incident", "after-restart")), 90, what="the operator to reconnect and process")
    assert obj["status"]["priority"] == "P2"
    assert operator.alive()
