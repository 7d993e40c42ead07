"""Alertmanager webhooks into the operator: a real Prometheus fires an alert rule, a real Alertmanager
posts to the operator's receiver, and the incident is correlated with a ticket spike.

Everything is real: kube-apiserver + etcd, Prometheus scraping a ticket exporter, Alertmanager
(Debian's prometheus-alertmanager) with a bearer token, the operator as a process. The error and
lifecycle cases post directly with urllib.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from tests.support.alertmanager import Alertmanager
from tests.support.kubectl import GROUP, VERSION, condition
from tools.devenv.processes import free_port, wait_until
from tools.devenv.prometheus import Prometheus
from tools.devenv.tickets import TicketExporter

SERVICE_LABEL = "incidents.buttercream.io/service"
RULE_LABEL = "incidents.buttercream.io/rule"
PATH = "/webhooks/alertmanager"


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def post(port: int, payload, token: str | None, content_type: str = "application/json") -> tuple[int, dict]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{PATH}", data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def alert(status: str, labels: dict, starts: datetime, ends: datetime | None = None, **annotations) -> dict:
    return {
        "status": status, "labels": labels, "annotations": annotations,
        "startsAt": rfc3339(starts), "endsAt": rfc3339(ends) if ends else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph?g0.expr=up", "fingerprint": uuid.uuid4().hex[:16],
    }


def notification(group_key: str, alerts: list[dict]) -> dict:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {"version": "4", "groupKey": group_key, "truncatedAlerts": 0, "status": status,
            "receiver": "incident-operator", "groupLabels": {"alertname": alerts[0]["labels"].get("alertname", "")},
            "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager.example:9093",
            "alerts": alerts}


def receiver_config(namespace: str, port: int, token_file, **extra) -> dict:
    return {"alertmanager": {"enabled": True, "port": port, "bearerTokenFile": str(token_file),
                             "namespace": namespace, **extra}}


def only_incident(kubectl) -> dict:
    items = kubectl.list("incidents")
    assert len(items) == 1, [i["metadata"]["name"] for i in items]
    return items[0]


def timeline_types(obj) -> list[str]:
    return [e["type"] for e in (obj.get("status") or {}).get("timeline") or []]


@pytest.fixture
def token_file(tmp_path):
    token = secrets.token_hex(16)
    path = tmp_path / "alertmanager-token"
    path.write_text(token + "\n")  # a mounted Secret file may end with a newline
    return path


# -- the acceptance scenario: Prometheus -> Alertmanager -> operator, then a ticket spike joins -------------

def test_real_alertmanager_opens_one_incident_records_recovery_and_a_ticket_spike_joins(
        kubectl, namespace, start_operator, tmp_path):
    service = "checkout-" + uuid.uuid4().hex[:4]
    tickets = TicketExporter().start()
    tickets.set_rate(service, 0.0)
    rules = tmp_path / "alert-rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "support", "rules": [{
        "alert": "CheckoutTicketsHigh",
        "expr": f'sum by (topic) (increase(support_tickets_created_total{{topic="{service}"}}[10s])) > 5',
        "labels": {"severity": "critical", "service": service, "team": "payments"},
        "annotations": {"summary": "Checkout tickets are piling up",
                        "description": "More than 5 checkout tickets in 10s",
                        "runbook_url": "https://runbooks.example/checkout"},
    }]}]}))
    prom = Prometheus(tmp_path / "prom", rule_files=[rules])
    token = secrets.token_hex(16)
    kubectl.run("create", "secret", "generic", "alertmanager-webhook", f"--from-literal=token={token}")
    operator = start_operator({
        "prometheus": {"url": prom.url},
        "alertmanager": {"enabled": True, "port": free_port(), "namespace": namespace,
                         "tokenSecretRef": {"name": "alertmanager-webhook", "key": "token"}},
    })
    port = operator.alert_receiver_port  # read back: a retry after a lost port picks another
    am = Alertmanager(tmp_path / "am", f"http://127.0.0.1:{port}{PATH}", token).start()
    prom.alertmanager_url = am.address
    prom.start()
    try:
        prom.add_target("tickets", tickets.address)
        prom.wait_for_target_up("tickets")

        # 1. The alert fires; Alertmanager posts; exactly one incident appears.
        tickets.set_rate(service, 2.0)
        [incident] = wait_until(lambda: kubectl.list("incidents"), 60, interval=0.5, what="an incident from the alert")
        name = incident["metadata"]["name"]
        assert name.startswith("am-")
        obj = wait_until(lambda: (lambda o: o if (o.get("status") or {}).get("detectedAt")
                                  and (o["status"].get("signal") or {}).get("alerts") else None)(
            kubectl.get("incident", name)), 20, what="the alert recorded")
        spec, status = obj["spec"], obj["status"]
        assert spec["priority"] == "P1" and status["priority"] == "P1"  # severity=critical
        assert spec["service"] == service and spec["team"] == "payments"
        assert spec["title"] == "Checkout tickets are piling up"
        assert spec["description"].startswith("More than 5 checkout tickets")
        assert {"title": "Runbook", "url": "https://runbooks.example/checkout"} in spec["links"]
        assert obj["metadata"]["labels"][SERVICE_LABEL] == service
        assert status["source"] == "Alertmanager"
        [entry] = status["signal"]["alerts"]
        assert entry["alertname"] == "CheckoutTicketsHigh" and entry["status"] == "firing"
        assert entry["groupKey"] and "endsAt" not in entry
        assert status["signal"]["firstSignal"] == "Alert"
        assert abs(ts(status["detectedAt"]) - ts(entry["startsAt"])) < timedelta(seconds=1)
        detected_at = status["detectedAt"]

        # 2. Repeat notifications (repeat_interval 3s) open nothing new and add nothing.
        wait_until(lambda: operator.log().count("Alertmanager notification (firing") >= 3, 30, interval=0.5,
                   what="repeat notifications")
        obj = only_incident(kubectl)
        assert obj["metadata"]["name"] == name
        assert len(obj["status"]["signal"]["alerts"]) == 1
        assert timeline_types(obj).count("AlertFiring") == 1  # written when the incident opened, not per repeat

        # 3. The alert resolves: the recovery is recorded, the incident stays open (resolveOnResolved off).
        tickets.set_rate(service, 0.0)
        obj = wait_until(lambda: (lambda o: o if o["status"]["signal"]["alerts"][0]["status"] == "resolved" else None)(
            kubectl.get("incident", name)), 90, interval=0.5, what="the resolved notification")
        resolved_entry = obj["status"]["signal"]["alerts"][0]
        assert ts(resolved_entry["endsAt"]) > ts(resolved_entry["startsAt"])
        assert "AlertResolved" in timeline_types(obj)
        assert obj["spec"]["state"] == "Triggered"
        assert len(kubectl.list("incidents")) == 1

        # 4. A ticket spike for the same service joins that incident instead of opening one.
        kubectl.apply({
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "DetectionRule", "metadata": {"name": "checkout-spike"},
            "spec": {
                "query": f'sum by (topic) (increase(support_tickets_created_total{{topic="{service}"}}[10s]))',
                "interval": "1s", "for": "0s", "cooldown": "3s", "recoveryWindow": "10m",
                "detector": {"type": "threshold", "threshold": {"value": 15}},
                "priority": {"default": "P3"},
                "incident": {"title": "Spike of {{ labels.topic }} tickets", "service": "{{ labels.topic }}"},
            },
        })
        wait_until(lambda: condition(kubectl.get("detectionrule", "checkout-spike"), "Ready")["reason"] == "Evaluating",
                   20, what="the rule evaluating")
        tickets.set_rate(service, 5.0)
        obj = wait_until(lambda: (lambda o: o if (o["status"]["signal"] or {}).get("rule") else None)(
            kubectl.get("incident", name)), 60, interval=0.5, what="the spike to join the alert incident")
        signal = obj["status"]["signal"]
        assert signal["rule"] == f"{namespace}/checkout-spike" and signal["value"] >= 15
        assert signal["firstSignal"] == "Alert"  # the alert came first
        assert signal["alerts"][0]["alertname"] == "CheckoutTicketsHigh"
        assert obj["metadata"]["labels"][RULE_LABEL] == "checkout-spike"
        assert obj["status"]["detectedAt"] == detected_at  # time to detect keeps the earliest signal
        assert obj["spec"]["priority"] == "P1"
        assert "Correlated" in timeline_types(obj)
        groups = kubectl.get("detectionrule", "checkout-spike")["status"]["groups"]
        assert [g["incident"] for g in groups] == [name]
        time.sleep(4)  # the re-fired alert and further evaluations still land on the one incident
        assert [i["metadata"]["name"] for i in kubectl.list("incidents")] == [name]
    finally:
        prom.stop()
        am.stop()
        tickets.stop()


# -- bad posts ----------------------------------------------------------------------------------------------

def test_malformed_oversized_or_unauthenticated_posts_get_4xx_and_change_nothing(
        kubectl, namespace, start_operator, token_file):
    port = start_operator(receiver_config(namespace, free_port(), token_file, maxBodyBytes=4096)).alert_receiver_port
    token = token_file.read_text().strip()
    now = datetime.now(timezone.utc)
    good = notification('{}:{alertname="Down"}', [alert("firing", {"alertname": "Down", "severity": "warning",
                                                                       "service": "api"}, now)])

    assert post(port, good, None)[0] == 401
    status, body = post(port, good, "wrong-token")
    assert status == 401 and "invalid bearer token" in body["error"]
    assert post(port, good, token, content_type="text/plain")[0] == 415
    status, body = post(port, {**good, "padding": "x" * 8192}, token)
    assert status == 413 and "maxBodyBytes" in body["error"]
    status, body = post(port, b'{"version": "4", "groupKey": ', token)
    assert status == 400 and "malformed JSON" in body["error"]
    status, body = post(port, {k: v for k, v in good.items() if k != "groupKey"}, token)
    assert status == 400 and "groupKey" in body["error"]
    status, body = post(port, {**good, "alerts": [{"status": "firing", "labels": {"a": 1}}]}, token)
    assert status == 400 and "alerts[0]" in body["error"]
    assert post(port, {**good, "version": "3"}, token)[0] == 400
    time.sleep(1)
    assert kubectl.list("incidents") == []

    # The same notification, well-formed and authenticated, is accepted.
    status, body = post(port, good, token)
    assert status == 200 and body["action"] == "opened", body
    assert len(kubectl.list("incidents")) == 1


# -- idempotency, recovery, reopen, never reopening a Closed incident ------------------------------------

def test_same_group_updates_one_incident_resolves_reopens_and_never_reopens_a_closed_one(
        kubectl, namespace, start_operator, token_file):
    port = start_operator(receiver_config(namespace, free_port(), token_file, resolveOnResolved=True,
                                          mappings=[{"matchers": ['severity=~"warning|critical"']}])).alert_receiver_port
    token = token_file.read_text().strip()
    group = '{}/{severity=~"warning|critical"}:{alertname="ApiErrors", service="api"}'
    labels = {"alertname": "ApiErrors", "severity": "warning", "service": "api", "team": "core"}
    start = datetime.now(timezone.utc)
    t0, t1, t2, t3, t4 = (start - timedelta(seconds=s) for s in (50, 40, 30, 20, 10))

    # Not selected by any mapping: ignored, nothing opened.
    status, body = post(port, notification("{}:{x}", [alert("firing", {**labels, "severity": "info"}, t0)]), token)
    assert status == 200 and body["action"] == "ignored"

    firing = notification(group, [alert("firing", labels, t0, summary="API returns 500s")])
    status, body = post(port, firing, token)
    assert status == 200 and body["action"] == "opened", body
    name = body["incident"].split("/")[1]
    for _ in range(3):  # Alertmanager repeats, and its HA peer sends the same
        status, body = post(port, firing, token)
        assert status == 200 and body["incident"].endswith(name)
    obj = wait_until(lambda: (lambda o: o if o["status"].get("detectedAt") else None)(kubectl.get("incident", name)),
                     20, what="lifecycle")
    assert obj["spec"]["priority"] == "P3" and obj["spec"]["title"] == "API returns 500s"
    assert obj["status"]["detectedAt"] == rfc3339(t0)[:19] + "Z"
    assert len(obj["status"]["signal"]["alerts"]) == 1
    assert len(kubectl.list("incidents")) == 1

    # Resolved: recorded, and resolved since resolveOnResolved is on.
    status, body = post(port, notification(group, [alert("resolved", labels, t0, t1)]), token)
    assert status == 200
    obj = wait_until(lambda: (lambda o: o if o["status"].get("resolvedAt") else None)(kubectl.get("incident", name)),
                     20, what="resolved")
    assert obj["spec"]["state"] == "Resolved" and obj["spec"]["owner"] == "alertmanager"
    [entry] = obj["status"]["signal"]["alerts"]
    assert entry["status"] == "resolved" and abs(ts(entry["endsAt"]) - t1) < timedelta(milliseconds=1)
    assert "AlertResolved" in timeline_types(obj)

    # A new firing of the group (a new startsAt) reopens it: a regression, not a new incident.
    status, body = post(port, notification(group, [alert("firing", labels, t2)]), token)
    assert status == 200 and body["incident"].endswith(name)
    obj = wait_until(lambda: (lambda o: o if o["status"].get("reopenCount") == 1 else None)(
        kubectl.get("incident", name)), 20, what="reopened")
    assert obj["spec"]["state"] == "Investigating"
    assert [a["status"] for a in obj["status"]["signal"]["alerts"]] == ["resolved", "firing"]

    # Resolved again, then a person closes it: a Closed incident is never touched again.
    post(port, notification(group, [alert("resolved", labels, t2, t3)]), token)
    wait_until(lambda: kubectl.get("incident", name)["spec"]["state"] == "Resolved", 20, what="resolved again")
    kubectl.patch("incident", name, {"spec": {"state": "Closed"}})
    wait_until(lambda: kubectl.get("incident", name)["status"].get("closedAt"), 20, what="closed")
    closed = kubectl.get("incident", name)
    for payload in (notification(group, [alert("resolved", labels, t2, t3)]),
                    notification(group, [alert("firing", labels, t2)])):  # a stale repeat of a known firing
        status, body = post(port, payload, token)
        assert status == 200 and body["action"] == "ignored", body
    assert kubectl.get("incident", name)["status"]["signal"] == closed["status"]["signal"]
    assert len(kubectl.list("incidents")) == 1

    # A genuinely new firing of the group opens a new incident; the Closed one stays Closed.
    status, body = post(port, notification(group, [alert("firing", labels, t4)]), token)
    assert status == 200 and body["action"] == "opened", body
    second = body["incident"].split("/")[1]
    assert second != name and second.startswith(name + "-")
    assert kubectl.get("incident", name)["spec"]["state"] == "Closed"
    assert len(kubectl.list("incidents")) == 2


# -- a ticket spike first, then an earlier-started alert joins it --------------------------------------------

def test_alert_joins_an_open_ticket_spike_incident_and_detection_moves_to_the_earliest_signal(
        kubectl, namespace, start_operator, prometheus, exporter, token_file):
    topic = "login-" + uuid.uuid4().hex[:4]
    exporter.set_rate(topic, 0.0)
    port = start_operator({"prometheus": {"url": prometheus.url},
                           **receiver_config(namespace, free_port(), token_file,
                                             correlationWindow="30m")}).alert_receiver_port
    token = token_file.read_text().strip()
    kubectl.apply({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "DetectionRule", "metadata": {"name": "login-spike"},
        "spec": {"query": f'sum by (topic) (increase(support_tickets_created_total{{target="{exporter.target}",'
                          f'topic="{topic}"}}[10s]))',
                 "interval": "1s", "detector": {"type": "threshold", "threshold": {"value": 15}},
                 "priority": {"default": "P3"},
                 "incident": {"title": "Spike of {{ labels.topic }} tickets", "service": "{{ labels.topic }}"}},
    })
    # The spike starts once the rule evaluates, as in test_detection.py.
    wait_until(lambda: condition(kubectl.get("detectionrule", "login-spike"), "Ready")["reason"] == "Evaluating",
               20, what="the rule evaluating")
    exporter.set_rate(topic, 5.0)
    [spike] = wait_until(lambda: kubectl.list("incidents", f"{RULE_LABEL}=login-spike"), 40, what="a spike incident")
    name = spike["metadata"]["name"]
    assert spike["metadata"]["labels"][SERVICE_LABEL] == topic
    spike = wait_until(lambda: (lambda o: o if o["status"].get("detectedAt") and o["status"].get("signal") else None)(
        kubectl.get("incident", name)), 20, what="spike evidence")
    spike_detected = ts(spike["status"]["detectedAt"])

    # An alert for the same service that started two minutes before the spike was detected.
    early = spike_detected - timedelta(minutes=2)
    labels = {"alertname": "LoginErrors", "severity": "critical", "service": topic}
    status, body = post(port, notification('{}:{alertname="LoginErrors"}', [alert("firing", labels, early)]), token)
    assert status == 200 and body == {"status": "ok", "action": "joined", "incident": f"{namespace}/{name}"}, body
    obj = wait_until(lambda: (lambda o: o if ts(o["status"]["detectedAt"]) == early.replace(microsecond=0) else None)(
        kubectl.get("incident", name)), 20, what="detection moved earlier")
    signal = obj["status"]["signal"]
    assert signal["firstSignal"] == "Alert"
    assert signal["rule"] == f"{namespace}/login-spike"  # the spike's evidence is kept
    assert [a["alertname"] for a in signal["alerts"]] == ["LoginErrors"]
    assert ts(obj["spec"]["startedAt"]) <= ts(obj["status"]["detectedAt"])
    assert obj["spec"]["priority"] == "P1"  # raised: the rule had set P3 and nobody overrode it
    types = timeline_types(obj)
    assert "Correlated" in types and "DetectedEarlier" in types
    assert len(kubectl.list("incidents")) == 1

    # Outside the correlation window, or another service: their own incidents.
    status, body = post(port, notification('{}:{alertname="OldLoginErrors"}', [
        alert("firing", {**labels, "alertname": "OldLoginErrors"}, spike_detected - timedelta(hours=2))]), token)
    assert body["action"] == "opened", body
    status, body = post(port, notification('{}:{alertname="DbDown"}', [
        alert("firing", {"alertname": "DbDown", "severity": "critical", "service": "db"}, spike_detected)]), token)
    assert body["action"] == "opened", body
    assert len(kubectl.list("incidents")) == 3
