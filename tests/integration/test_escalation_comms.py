"""Escalation hand-offs, delivery bookkeeping, customer drafts and the review gate, against the real
API server with the operator as a process and a real HTTP receiver on loopback (Apprise json://)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from kubernetes import client, config as kube_config
from kubernetes.client.exceptions import ApiException

from tests.support.kubectl import GROUP, VERSION, condition, incident
from tools.devenv.processes import wait_until
from tests.support.receiver import Receiver

FAST = {
    "deadlines": {
        "response": {"P1": "4s", "P2": "30m", "P3": "2h"},
        "escalationInterval": {"P1": "4s"},
        "maxEscalationLevel": 3,
    },
    "notifications": {"backoff": {"initial": "500ms", "max": "2s"}, "claimTimeout": "10s", "sendTimeout": "5s"},
}
SIGNAL = {
    "rule": "support/login-tickets",
    "query": 'sum(rate(tickets_created_total{topic="login"}[10m])) * 600',
    "fingerprint": "3f2a9c",
    "groupLabels": {"topic": "login"},
    "value": 42.0,
    "baseline": 4.5,
    "threshold": 15.0,
    "peak": 51.0,
    "firstSeen": "2026-01-05T09:41:00Z",
    "graphURL": "http://prometheus.example/graph?g0.expr=tickets",
}


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def wait_obj(kubectl, kind, name, predicate, timeout=30, what="object"):
    def check():
        obj = kubectl.get(kind, name)
        return obj if obj and predicate(obj) else None
    return wait_until(check, timeout, interval=0.1, what=what)


def wait_status(kubectl, name, predicate, timeout=30, what="status"):
    return wait_obj(kubectl, "incident", name, lambda o: predicate(o.get("status") or {}), timeout, what)


def delivered(status) -> set[str]:
    return set((status.get("notifications") or {}).get("delivered") or [])


def make_policy(name, levels, teams=None, notify_on_state_change=None):
    spec = {"levels": [{"name": level_name, "channels": [{"name": ch, "secretRef": {"name": secret, "key": key}}
                                                         for ch, secret, key in channels]}
                       for level_name, channels in levels]}
    if teams:
        spec["teams"] = teams
    if notify_on_state_change:
        spec["notifyOnStateChange"] = notify_on_state_change
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EscalationPolicy", "metadata": {"name": name}, "spec": spec}


def make_secret(kubectl, name, **urls):
    kubectl.run("create", "secret", "generic", name, *[f"--from-literal={k}={v}" for k, v in urls.items()])


def test_one_packet_per_escalation_level_with_evidence_and_nothing_twice_after_sigkill(
        kubectl, start_operator, receiver):
    make_secret(kubectl, "oncall", primary=receiver.url("/primary"), lead=receiver.url("/lead"))
    kubectl.apply(make_policy("identity", teams=["identity"], levels=[
        ("Primary on-call", [("webhook", "oncall", "primary")]),
        ("Support lead", [("webhook", "oncall", "lead")]),
    ]))
    operator = start_operator(FAST)
    policy = wait_obj(kubectl, "escalationpolicy", "identity",
                      lambda o: (condition(o, "Ready") or {}).get("status") == "True", 30, "policy Ready")
    assert policy["status"]["levels"] == 2 and policy["status"]["channels"] == 2

    body = incident("login", priority="P1", service="auth", team="identity",
                    customerImpact={"summary": "SSO users cannot log in", "affectedAccounts": ["acme", "globex"],
                                    "ticketCount": 23},
                    links=[{"title": "Auth dashboard", "url": "https://grafana.example/d/auth"}])
    kubectl.apply(body)
    wait_status(kubectl, "login", lambda s: s.get("detectedAt"), 20, "detected")
    # The detection engine records its evidence in status.signal; here the test plays that part.
    kubectl.patch("incident", "login", {"status": {"signal": SIGNAL}}, subresource="status")

    obj = wait_status(kubectl, "login", lambda s: "escalated-0-1" in delivered(s), 30, "level 1 delivered")
    first = receiver.received(event="incident.escalated")
    assert len(first) == 1 and first[0].path == "/primary"
    packet = first[0].handoff
    assert packet["escalation"]["level"] == 1 and packet["escalation"]["target"] == "Primary on-call"
    assert packet["incident"]["title"] == body["spec"]["title"]
    assert packet["incident"]["priority"] == "P1" and packet["incident"]["state"] == "Triggered"
    assert packet["evidence"]["query"] == SIGNAL["query"]
    assert packet["evidence"]["value"] == 42 and packet["evidence"]["baseline"] == 4.5
    assert packet["impact"] == {"summary": "SSO users cannot log in", "affectedAccounts": ["acme", "globex"],
                                "affectedAccountCount": 2, "ticketCount": 23}
    assert packet["deadline"]["responseDeadline"] == obj["status"]["responseDeadline"]
    assert packet["deadline"]["timeLeft"].startswith("overdue by")
    assert any(e["type"] == "Escalated" for e in packet["timeline"])
    assert {"title": "Detection signal graph", "url": SIGNAL["graphURL"]} in packet["links"]
    assert packet["dedupKey"] == f"{obj['metadata']['uid']}/escalated-0-1"
    assert first[0].body["title"].startswith("[P1] Escalated to level 1: ")
    assert "Detection evidence" in first[0].body["message"] and "42" in first[0].body["message"]

    # Crash right after level 1 was delivered; the replacement must not send it (or "opened") again.
    operator.kill()
    operator = start_operator(FAST, name="restarted")
    obj = wait_status(kubectl, "login", lambda s: "escalated-0-3" in delivered(s), 30, "level 3 delivered")

    escalations = receiver.received(event="incident.escalated")
    assert sorted((r.handoff["escalation"]["level"], r.path) for r in escalations) == [
        (1, "/primary"), (2, "/lead"), (3, "/lead")]  # past the last policy level, the last level repeats
    assert [r.path for r in receiver.received(event="incident.triggered")] == ["/primary"]
    assert condition(obj, "Notified")["status"] == "True"
    assert not (obj["status"]["notifications"].get("pending") or [])

    # Another SIGKILL and restart with everything delivered: the acknowledgement is the only new packet.
    operator.kill()
    start_operator(FAST, name="restarted-again")
    kubectl.patch("incident", "login", {"spec": {"state": "Acknowledged", "owner": "bob"}})
    wait_status(kubectl, "login", lambda s: "acknowledged-0" in delivered(s), 30, "ack delivered")
    time.sleep(1)
    counts = {}
    for request in receiver.received():
        counts[request.handoff["key"]] = counts.get(request.handoff["key"], 0) + 1
    assert counts == {"opened": 1, "escalated-0-1": 1, "escalated-0-2": 1, "escalated-0-3": 1, "acknowledged-0": 1}
    ack = receiver.received(key="acknowledged-0")[0]
    assert ack.path == "/primary" and ack.body["title"].startswith("[P1] Acknowledged by bob")
    assert len(receiver.received(ok_only=False)) == 5  # and no failed attempts in between


def test_failed_delivery_is_recorded_retried_and_delivered_once_back(kubectl, start_operator, receiver):
    make_secret(kubectl, "webhook", url=receiver.url("/hook"))
    kubectl.apply(make_policy("default", levels=[("Support on-call", [("webhook", "webhook", "url")])]))
    receiver.fail_with(500)
    start_operator(FAST)
    kubectl.apply(incident("flaky", priority="P3", service="billing"))

    obj = wait_status(kubectl, "flaky", lambda s: (condition({"status": s}, "Notified") or {}).get("reason")
                      == "DeliveryFailed", 30, "Notified=False")
    message = condition(obj, "Notified")["message"]
    assert "500" in message and "incident.triggered" in message
    for secret_part in (str(receiver.port), "127.0.0.1", "/hook", receiver.url("/hook")):
        assert secret_part not in json.dumps(obj["status"]), secret_part
    assert any(e["type"] == "NotificationFailed" for e in obj["status"]["timeline"])
    # Retried with backoff while failing ...
    obj = wait_status(kubectl, "flaky", lambda s: ((s.get("notifications") or {}).get("pending") or [{}])[0]
                      .get("attempts", 0) >= 3, 30, "three attempts")
    # ... and never blocking the lifecycle: an acknowledgement is processed meanwhile.
    kubectl.patch("incident", "flaky", {"spec": {"state": "Acknowledged", "owner": "carol"}})
    obj = wait_status(kubectl, "flaky", lambda s: s.get("acknowledgedAt"), 10, "acknowledged")
    assert condition(obj, "Notified")["status"] == "False"
    assert len(receiver.received()) == 0 and len(receiver.received(ok_only=False)) >= 3

    receiver.recover()
    obj = wait_status(kubectl, "flaky", lambda s: {"opened", "acknowledged-0"} <= delivered(s), 30, "delivered")
    assert condition(obj, "Notified")["status"] == "True"
    assert "lastError" not in obj["status"]["notifications"]
    assert sorted(r.handoff["key"] for r in receiver.received()) == ["acknowledged-0", "opened"]
    assert any(e["type"] == "Notified" and "after" in e["message"] for e in obj["status"]["timeline"])

    # Not listening at all: a connection error, recorded; delivered once it listens again.
    receiver.stop()
    kubectl.patch("incident", "flaky", {"spec": {"state": "Investigating"}})
    obj = wait_status(kubectl, "flaky", lambda s: (condition({"status": s}, "Notified") or {}).get("status")
                      == "False", 30, "connection failure recorded")
    assert "onnection" in condition(obj, "Notified")["message"]
    assert str(receiver.port) not in json.dumps(obj["status"])
    receiver.start()
    wait_status(kubectl, "flaky", lambda s: "investigating-0" in delivered(s), 30, "delivered after restart")
    assert sorted(r.handoff["key"] for r in receiver.received()) == ["acknowledged-0", "investigating-0", "opened"]


def _api(kubeconfig):
    return client.CustomObjectsApi(kube_config.new_client_from_config(str(kubeconfig)))


def incidentctl(kubeconfig, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run([sys.executable, "-m", "incident_operator.cli.incidentctl", *args],
                          capture_output=True, text=True, env=env, timeout=60)


REVIEW = {
    "timelineNotes": "Tickets spiked at 09:40; the on-call acknowledged late.",
    "rootCause": "An expired SAML signing certificate on the SSO proxy.",
    "detection": "The ticket-spike rule fired 5 minutes after impact began.",
    "communication": "A status update went out 20 minutes in; customers asked for one earlier.",
    "actionItems": [
        {"title": "Alert 30 days before certificates expire", "owner": "dana", "dueDate": "2026-02-01"},
        {"title": "Status update within 15 minutes", "owner": "erin", "done": True},
    ],
}


def test_closing_a_p1_needs_a_complete_review(kubectl, kubeconfig, namespace, start_operator):
    start_operator()
    kubectl.apply(incident("outage", priority="P1", owner="alice", state="Resolved", service="auth"))
    obj = wait_status(kubectl, "outage", lambda s: s.get("resolvedAt"), 20, "resolved")
    assert condition(obj, "ReviewComplete")["status"] == "False"
    assert condition(obj, "ReviewComplete")["reason"] == "ReviewRequired"

    api = _api(kubeconfig)
    message = "a P1 or P2 incident cannot be Closed without a complete post-incident review"
    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", "outage",
                                           {"spec": {"state": "Closed"}})
    assert refused.value.status == 422 and message in refused.value.body
    blank = dict(REVIEW, rootCause="   ")  # whitespace is not a root cause
    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", "outage",
                                           {"spec": {"state": "Closed", "review": blank}})
    assert refused.value.status == 422 and message in refused.value.body
    result = kubectl.patch("incident", "outage", {"spec": {"state": "Closed"}}, check=False)
    assert result.returncode != 0 and message in result.stderr

    kubectl.patch("incident", "outage", {"spec": {"state": "Closed", "review": REVIEW}})
    obj = wait_status(kubectl, "outage", lambda s: s.get("closedAt"), 20, "closed")
    assert condition(obj, "ReviewComplete")["status"] == "True"
    assert obj["status"]["openActionItems"] == 1

    result = incidentctl(kubeconfig, "postmortem", "outage", "-n", namespace)
    assert result.returncode == 0, result.stderr
    document = result.stdout
    assert document.startswith("# Post-incident review: ")
    for text in ("| Time to detect |", "| Time to acknowledge |", "| Time to resolve |", REVIEW["rootCause"],
                 "Alert 30 days before certificates expire", "| dana |", "## Timeline", "Closed"):
        assert text in document, text
    assert "Review incomplete" not in document


def test_drafts_land_in_a_configmap_owned_by_the_incident(kubectl, kubeconfig, namespace, start_operator):
    # Custom templates: a status update of the team's own, and a hostile follow-up.
    kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "comms-templates"}, "data": {
        "status-update.md.j2": "Update on {{ title }}: {{ public_state_label }}.{% if workaround %} "
                               "Meanwhile: {{ workaround }}{% endif %}",
        "follow-up.md.j2": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    }})
    start_operator({"templates": {"configMap": "comms-templates"}})
    kubectl.apply(incident("checkout", priority="P2", service="payments",
                           customerImpact={"summary": "Card payments fail at checkout."},
                           workaround="Pay by bank transfer."))
    obj = wait_status(kubectl, "checkout", lambda s: (s.get("drafts") or {}).get("publicState") == "investigating",
                      20, "drafts")
    assert obj["status"]["drafts"]["configMap"] == "checkout-drafts"
    cm = kubectl.get("configmap", "checkout-drafts")
    assert cm["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    assert cm["data"]["status-update.md"].strip() == \
        "Update on Test incident checkout: Investigating. Meanwhile: Pay by bank transfer."
    assert json.loads(cm["data"]["statuspage.json"])["incident"]["status"] == "investigating"

    kubectl.patch("incident", "checkout", {"spec": {"state": "Mitigated", "owner": "frank"}})
    wait_status(kubectl, "checkout", lambda s: (s.get("drafts") or {}).get("publicState") == "monitoring", 20)
    assert "Monitoring" in kubectl.get("configmap", "checkout-drafts")["data"]["status-update.md"]

    kubectl.patch("incident", "checkout", {"spec": {"state": "Resolved", "resolution": "Rolled back the gateway."}})
    obj = wait_status(kubectl, "checkout", lambda s: (s.get("drafts") or {}).get("publicState") == "resolved", 20)
    data = kubectl.get("configmap", "checkout-drafts")["data"]
    assert "Rolled back the gateway." in data["resolution.md"]
    # The hostile override was refused by the sandbox; the shipped default was used instead.
    assert "**Follow-up**" in data["follow-up.md"] and "subclasses" not in data["follow-up.md"]
    error = obj["status"]["drafts"]["error"]
    assert "follow-up.md.j2" in error and "comms-templates" in error and "unsafe" in error

    result = incidentctl(kubeconfig, "draft", "checkout", "-n", namespace, "--kind", "resolution")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("**Resolved** - Test incident checkout")
    assert "Rolled back the gateway." in result.stdout
