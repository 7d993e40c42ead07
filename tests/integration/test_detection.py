"""Detection against a real Prometheus scraping a ticket exporter, with the operator as a process."""

from __future__ import annotations

import time
import uuid
from datetime import datetime


from tests.support.kubectl import GROUP, VERSION, condition
from tools.devenv.processes import free_port, wait_until  # noqa: F401 - free_port: used by tests on branch recurrence
from tools.devenv.prometheus import Prometheus

RULE_LABEL = "incidents.buttercream.io/rule"


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def rule(name: str, topic_filter: str, **spec) -> dict:
    body = {
        "query": f'sum by (topic) (increase(support_tickets_created_total{{{topic_filter}}}[10s]))',
        "interval": "1s",
        "for": "0s",
        "cooldown": "3s",
        "recoveryWindow": "10m",
        "detector": {"type": "threshold", "threshold": {"value": 15}},
        "priority": {"default": "P3", "bands": [{"minValue": 200, "priority": "P1"}, {"minValue": 25, "priority": "P2"}]},
        "incident": {"title": "Spike of {{ labels.topic }} tickets", "service": "{{ labels.topic }}", "team": "support"},
    }
    body.update(spec)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DetectionRule", "metadata": {"name": name}, "spec": body}


def incidents_of(kubectl, rule_name):
    return kubectl.list("incidents", f"{RULE_LABEL}={rule_name}")


def test_spike_opens_exactly_one_incident_with_evidence_and_relapse_reopens_it(
        kubectl, start_operator, prometheus, exporter):
    topic = "login-" + uuid.uuid4().hex[:4]
    exporter.set_rate(topic, 0.2)
    start_operator({"prometheus": {"url": prometheus.url}})
    kubectl.apply(rule("login-spike", f'target="{exporter.target}",topic="{topic}"'))
    wait_until(lambda: condition(kubectl.get("detectionrule", "login-spike"), "Ready")["reason"] == "Evaluating",
               20, what="rule evaluating")
    time.sleep(3)
    assert incidents_of(kubectl, "login-spike") == []

    spike_began = time.time()
    exporter.set_rate(topic, 5.0)
    [incident] = wait_until(lambda: incidents_of(kubectl, "login-spike"), 30, what="an incident")
    name = incident["metadata"]["name"]
    obj = wait_until(lambda: (lambda o: o if (o.get("status") or {}).get("signal") else None)(
        kubectl.get("incident", name)), 15, what="evidence")
    signal = obj["status"]["signal"]
    assert obj["spec"]["service"] == topic
    assert obj["spec"]["title"] == f"Spike of {topic} tickets"
    assert signal["rule"].endswith("/login-spike")
    assert signal["groupLabels"] == {"topic": topic}
    assert signal["threshold"] == 15 and signal["value"] >= 15 and signal["peak"] >= signal["value"]
    assert "graph?g0.expr=" in signal["graphURL"]
    assert obj["status"]["source"] == "DetectionRule"
    started = ts(obj["spec"]["startedAt"])
    assert spike_began - 15 <= started <= ts(obj["status"]["detectedAt"])

    # The spike goes on: no second incident; the evidence keeps updating.
    time.sleep(6)
    assert [i["metadata"]["name"] for i in incidents_of(kubectl, "login-spike")] == [name]
    later = kubectl.get("incident", name)["status"]["signal"]
    assert later["peak"] >= signal["peak"]
    # ~50 tickets in 10s: the spike grows into the P2 band (opened at the first crossing of 15).
    wait_until(lambda: kubectl.get("incident", name)["spec"]["priority"] == "P2", 15, what="the P2 band")

    # Recovery: the spike ends, a person resolves the incident, then the signal relapses.
    exporter.set_rate(topic, 0.0)
    wait_until(lambda: all(g["episodeState"]["phase"] == "Inactive"
                           for g in kubectl.get("detectionrule", "login-spike")["status"].get("groups", [])),
               40, interval=0.5, what="the group to clear")
    kubectl.patch("incident", name, {"spec": {"state": "Resolved", "owner": "erin"}})
    wait_until(lambda: kubectl.get("incident", name)["status"].get("resolvedAt"), 15, what="resolved")
    time.sleep(2)
    exporter.set_rate(topic, 5.0)
    reopened = wait_until(lambda: (lambda o: o if o["status"].get("reopenCount") == 1 else None)(
        kubectl.get("incident", name)), 40, what="the relapse to reopen the incident")
    assert reopened["spec"]["state"] == "Investigating"
    assert [i["metadata"]["name"] for i in incidents_of(kubectl, "login-spike")] == [name]


def test_dry_run_opens_nothing_and_records_the_would_be_incident(kubectl, start_operator, prometheus, exporter):
    topic = "billing-" + uuid.uuid4().hex[:4]
    exporter.set_rate(topic, 5.0)
    start_operator({"prometheus": {"url": prometheus.url}})
    kubectl.apply(rule("dry", f'target="{exporter.target}",topic="{topic}"', mode="DryRun"))
    status = wait_until(lambda: (kubectl.get("detectionrule", "dry").get("status") or {}).get("dryRun"), 40,
                        what="a dry-run record")
    [would] = status["wouldOpen"][:1]
    assert would["labels"] == {"topic": topic} and would["value"] >= 15
    assert would["title"] == f"Spike of {topic} tickets"
    time.sleep(2)
    assert kubectl.list("incidents") == []


def test_prometheus_down_makes_rule_degraded_opens_nothing_and_recovers(kubectl, start_operator, tmp_path, exporter):
    own = Prometheus(tmp_path / "prom").start()
    own.add_target(exporter.target, exporter.address)
    topic = "api-" + uuid.uuid4().hex[:4]
    exporter.set_rate(topic, 0.0)
    start_operator({"prometheus": {"url": own.url}})
    kubectl.apply(rule("outage", f'topic="{topic}"'))
    wait_until(lambda: condition(kubectl.get("detectionrule", "outage"), "Ready")["reason"] == "Evaluating",
               30, what="rule evaluating")

    own.stop()
    exporter.set_rate(topic, 5.0)
    degraded = wait_until(lambda: (lambda c: c if c and c["status"] == "True" else None)(
        condition(kubectl.get("detectionrule", "outage"), "Degraded")), 30, what="Degraded")
    assert degraded["reason"] == "PrometheusUnavailable"
    assert "cannot reach Prometheus" in degraded["message"]
    time.sleep(3)
    assert incidents_of(kubectl, "outage") == []

    own.start()
    wait_until(lambda: condition(kubectl.get("detectionrule", "outage"), "Degraded")["status"] == "False",
               60, what="recovery")
    own.stop()


def test_invalid_promql_gets_invalid_condition_and_other_rules_keep_working(
        kubectl, start_operator, prometheus, exporter):
    start_operator({"prometheus": {"url": prometheus.url}})
    bad = rule("broken", 'topic="x"')
    bad["spec"]["query"] = "sum by (topic (increase(support_tickets_created_total[10m]))"
    kubectl.apply(bad)
    kubectl.apply(rule("fine", f'target="{exporter.target}"'))
    ready = wait_until(lambda: condition(kubectl.get("detectionrule", "broken"), "Ready"), 20, what="condition")
    assert ready["status"] == "False" and ready["reason"] == "Invalid"
    assert "not valid PromQL" in ready["message"]
    wait_until(lambda: condition(kubectl.get("detectionrule", "fine"), "Ready")["reason"] == "Evaluating",
               20, what="the good rule evaluating")


def test_schema_refuses_bad_rules(kubectl):
    bad = rule("too-fast", 'topic="x"', interval="100ms")
    result = kubectl.apply(bad, check=False)
    assert result.returncode != 0 and "interval must be between 1s and 1h" in result.stderr
    bad = rule("no-threshold", 'topic="x"', detector={"type": "threshold"})
    result = kubectl.apply(bad, check=False)
    assert result.returncode != 0 and "detector.type threshold needs detector.threshold.value" in result.stderr


def test_baseline_detector_learns_normal_and_fires_on_a_spike(kubectl, start_operator, prometheus, exporter):
    topic = "base-" + uuid.uuid4().hex[:4]
    exporter.set_rate(topic, 1.0)
    start_operator({"prometheus": {"url": prometheus.url}})
    baseline = {"step": "1s", "windowPoints": 3, "trailingPoints": 20, "seasonalDays": 0,
                "minReferencePoints": 8, "minCount": 5, "factor": 2, "upperFactor": 2}
    kubectl.apply(rule("learned", f'target="{exporter.target}",topic="{topic}"',
                       query=f'sum by (topic) (increase(support_tickets_created_total{{target="{exporter.target}",'
                             f'topic="{topic}"}}[2s]))',
                       detector={"type": "baseline", "baseline": baseline}))
    wait_until(lambda: condition(kubectl.get("detectionrule", "learned"), "Ready")["reason"] == "Evaluating", 20)
    time.sleep(12)  # steady traffic: what is normal is learned, nothing fires
    assert incidents_of(kubectl, "learned") == []
    exporter.set_rate(topic, 15.0)
    [opened] = wait_until(lambda: incidents_of(kubectl, "learned"), 30, what="the baseline detector to fire")
    signal = wait_until(lambda: kubectl.get("incident", opened["metadata"]["name"])["status"].get("signal"), 10)
    assert signal["baseline"] < signal["value"]
