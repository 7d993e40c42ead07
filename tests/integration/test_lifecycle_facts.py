"""Lifecycle facts people can trust (issue 17), against the real API server with the operator as a process:
stamps at the time the person acted, Closed means closed, safe text, pre-breach warnings once each."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.kubectl import GROUP, VERSION, condition, incident
from tools.devenv.processes import wait_until
from tests.support.receiver import Receiver

CLOSED = "this incident is Closed: only spec.review"
UNSAFE_TEXT = "contains an invisible or direction-changing character"


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def wait_status(kubectl, name, predicate, timeout=30, what="status"):
    def check():
        obj = kubectl.get("incident", name)
        return obj if obj and predicate(obj.get("status") or {}) else None

    return wait_until(check, timeout, interval=0.1, what=what)


def with_managed_fields(kubectl, name):
    return json.loads(kubectl.run("get", "incident", name, "-o", "json", "--show-managed-fields").stdout)


def state_write_time(obj) -> datetime:
    """The API server's record of the write that set spec.state (what the operator must stamp)."""
    times = [
        ts(entry["time"])
        for entry in obj["metadata"].get("managedFields") or []
        if not entry.get("subresource") and "f:state" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
    ]
    assert len(times) == 1, obj["metadata"].get("managedFields")
    return times[0]


def plugin(kubeconfig, namespace, *args):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "incident_operator.cli.kubectl_incident",
            "--kubeconfig",
            str(kubeconfig),
            "-n",
            namespace,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


# ------------------------------------------------------------------------------- 17.1 acted-at


def test_acknowledgement_while_the_operator_is_down_is_stamped_at_the_api_write(kubectl, start_operator):
    config = {"deadlines": {"response": {"P2": "15s"}, "warnAt": {"P2": []}}}
    operator = start_operator(config)
    kubectl.apply(incident("late-ack", priority="P2"))
    obj = wait_status(kubectl, "late-ack", lambda s: s.get("responseDeadline"))
    deadline = ts(obj["status"]["responseDeadline"])
    operator.stop()

    kubectl.patch("incident", "late-ack", {"spec": {"state": "Acknowledged", "owner": "alice"}})
    written = state_write_time(with_managed_fields(kubectl, "late-ack"))
    assert written < deadline, "precondition: the acknowledgement reached the API server before the deadline"
    # The operator stays down for 10 s and past the deadline, then starts again.
    time.sleep(max(10.0, (deadline - datetime.now(timezone.utc)).total_seconds() + 1))
    restarted = datetime.now(timezone.utc)
    start_operator(config, name="restarted")

    obj = wait_status(kubectl, "late-ack", lambda s: s.get("acknowledgedAt"), what="acknowledgedAt")
    status = obj["status"]
    assert status["acknowledgedAt"] == written.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ts(status["acknowledgedAt"]) < restarted - timedelta(seconds=9)  # not when the operator saw it
    assert condition(obj, "ResponseOnTime")["reason"] == "AcknowledgedInTime"
    assert status["escalation"]["level"] == 0
    changed = [e for e in status["timeline"] if e["type"] == "StateChanged"]
    assert changed[-1]["time"] == status["acknowledgedAt"]


def test_the_cli_states_when_the_person_acted_and_a_time_after_the_write_is_not_believed(
    kubectl, kubeconfig, namespace, start_operator
):
    start_operator()
    kubectl.apply(incident("phoned", priority="P3"))
    obj = wait_status(kubectl, "phoned", lambda s: s.get("detectedAt"))
    detected = ts(obj["status"]["detectedAt"])
    stated = detected + timedelta(seconds=1)
    wait_until(lambda: datetime.now(timezone.utc) > stated + timedelta(seconds=2), 10, what="time to pass")

    result = plugin(
        kubeconfig,
        namespace,
        "ack",
        "phoned",
        "--owner",
        "carol",
        "--at",
        stated.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    assert result.returncode == 0, result.stderr
    obj = wait_status(kubectl, "phoned", lambda s: s.get("acknowledgedAt"))
    assert ts(obj["status"]["acknowledgedAt"]) == stated
    assert ts(obj["status"]["acknowledgedAt"]) < state_write_time(with_managed_fields(kubectl, "phoned"))
    assert (
        "time stated in spec.stateChange"
        in [e for e in obj["status"]["timeline"] if e["type"] == "StateChanged"][-1]["message"]
    )

    future = datetime.now(timezone.utc) + timedelta(hours=1)
    result = plugin(
        kubeconfig, namespace, "mitigate", "phoned", "--at", future.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    assert result.returncode == 0, result.stderr
    obj = wait_status(kubectl, "phoned", lambda s: s.get("mitigatedAt"))
    assert ts(obj["status"]["mitigatedAt"]) == state_write_time(with_managed_fields(kubectl, "phoned"))
    assert (
        "after the API server accepted the change"
        in [e for e in obj["status"]["timeline"] if e["type"] == "StateChanged"][-1]["message"]
    )

    # A stated time belongs to the state written with it.
    refused = kubectl.patch(
        "incident",
        "phoned",
        {
            "spec": {
                "state": "Resolved",
                "stateChange": {"state": "Closed", "at": stated.strftime("%Y-%m-%dT%H:%M:%SZ")},
            }
        },
        check=False,
    )
    assert refused.returncode != 0 and "stateChange.state must equal the new spec.state" in refused.stderr


# ------------------------------------------------------------------------------ 17.4 closed

REFUSED_AFTER_CLOSE = [
    {"title": "Something else"},
    {"description": "rewritten"},
    {"description": None},
    {"service": "billing"},
    {"team": "payments"},
    {"owner": "mallory"},
    {"commander": "eve"},
    {"priority": "P1"},
    {"impact": "High", "urgency": "High"},
    {"startedAt": "2026-01-01T00:00:00Z"},
    {"state": "Investigating"},
    {"stateChange": {"state": "Closed", "at": "2026-01-01T00:00:00Z"}},
    {"customerImpact": {"summary": "nobody"}},
    {"workaround": "none"},
    {"resolution": "a different story"},
    {"links": [{"url": "https://example.com/other"}]},
]


def test_a_closed_incident_refuses_every_change_but_the_review_and_csat(kubectl):
    kubectl.apply(
        incident(
            "closed",
            priority="P3",
            owner="dave",
            state="Closed",
            service="auth",
            team="identity",
            description="Login failed for SSO users",
            resolution="Rolled back the IdP change",
            customerImpact={"summary": "SSO users could not log in"},
            links=[{"title": "Dashboard", "url": "https://grafana.example/d/auth"}],
        )
    )
    before = kubectl.get("incident", "closed")
    for change in REFUSED_AFTER_CLOSE:
        result = kubectl.patch("incident", "closed", {"spec": change}, check=False)
        assert result.returncode != 0 and CLOSED in result.stderr, (change, result.stderr)
    assert kubectl.get("incident", "closed")["spec"] == before["spec"]

    review = {
        "rootCause": "An IdP certificate rotated early",
        "timelineNotes": "Paged at 09:41",
        "detection": "Ticket spike",
        "communication": "Status page at 09:50",
        "actionItems": [{"title": "Alert on certificate expiry", "owner": "erin"}],
    }
    kubectl.patch("incident", "closed", {"spec": {"review": review}})
    kubectl.patch(
        "incident",
        "closed",
        {
            "spec": {
                "review": {
                    "actionItems": [{"title": "Alert on certificate expiry", "owner": "erin", "done": True}]
                }
            }
        },
    )
    kubectl.patch("incident", "closed", {"spec": {"csat": {"score": 4.2, "responses": 31}}})
    spec = kubectl.get("incident", "closed")["spec"]
    assert (
        spec["csat"] == {"score": 4.2, "responses": 31} and spec["review"]["actionItems"][0]["done"] is True
    )


# --------------------------------------------------------------------------- 17.5 safe text


@pytest.mark.parametrize(
    "field,value",
    [
        ("title", "Login OK \u202egnp.exe"),
        ("title", "Login\u200bbroken"),
        ("title", "Login\nbroken"),
        ("title", "Log\u2066in\u2069 broken"),
        ("description", "All good\ufeff"),
        ("description", "Clear the screen \x1b[2J"),
        ("owner", "al\u200dice"),
    ],
)
def test_invisible_and_direction_changing_characters_are_refused_at_apply(kubectl, field, value):
    body = incident("spoof", priority="P3", owner="alice")
    body["spec"][field] = value
    result = kubectl.apply(body, check=False)
    assert result.returncode != 0 and f"spec.{field} {UNSAFE_TEXT}" in result.stderr, result.stderr
    assert kubectl.get("incident", "spoof") is None


def test_ordinary_text_in_any_script_is_accepted(kubectl):
    body = incident(
        "plain",
        priority="P3",
        title="تسجيل الدخول معطل — Échec de connexion 🔥",
        description="Line one\n\tLine two\r\nログインできない",
    )
    kubectl.apply(body)
    assert kubectl.get("incident", "plain")["spec"]["title"] == body["spec"]["title"]


# ------------------------------------------------------------------------ 17.6 pre-breach warnings


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def test_pre_breach_warnings_arrive_once_each_at_their_fractions_across_a_sigkill(
    kubectl, start_operator, receiver
):
    kubectl.run("create", "secret", "generic", "oncall", f"--from-literal=primary={receiver.url('/primary')}")
    kubectl.apply(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "EscalationPolicy",
            "metadata": {"name": "oncall"},
            "spec": {
                "levels": [
                    {
                        "name": "Primary on-call",
                        "channels": [{"name": "webhook", "secretRef": {"name": "oncall", "key": "primary"}}],
                    }
                ]
            },
        }
    )
    config = {
        "deadlines": {
            "response": {"P2": "30s"},
            "escalationInterval": {"P2": "1h"},
            "warnAt": {"P2": [0.3, 0.7]},
        },
        "notifications": {
            "backoff": {"initial": "500ms", "max": "2s"},
            "claimTimeout": "10s",
            "sendTimeout": "5s",
        },
    }
    operator = start_operator(config)
    kubectl.apply(incident("warned", priority="P2"))
    kubectl.apply(incident("answered", priority="P2", state="Acknowledged", owner="frank"))

    first = wait_until(lambda: receiver.received(key="warning-0-30"), 30, interval=0.1, what="first warning")
    operator.kill()  # SIGKILL right after the first warning went out
    start_operator(config, name="restarted")
    obj = wait_status(
        kubectl, "warned", lambda s: (s.get("escalation") or {}).get("level", 0) >= 1, 60, "deadline breached"
    )
    wait_until(
        lambda: receiver.received(event="incident.escalated"), 30, interval=0.1, what="escalation sent"
    )

    warnings = receiver.received(event="incident.deadline_warning")
    assert sorted(r.handoff["key"] for r in warnings) == ["warning-0-30", "warning-0-70"]
    assert all(r.handoff["incident"]["name"] == "warned" for r in warnings)  # none for the acknowledged one
    assert all(r.path == "/primary" and r.handoff["escalation"]["level"] == 1 for r in warnings)
    assert first[0].body["title"].startswith("[P2] Not yet acknowledged, ")
    assert first[0].handoff["deadline"]["timeLeft"].endswith(" left")

    status = obj["status"]
    detected, deadline = ts(status["detectedAt"]), ts(status["responseDeadline"])
    entries = [e for e in status["timeline"] if e["type"] == "DeadlineWarning"]
    assert len(entries) == 2
    for entry, fraction in zip(entries, (0.3, 0.7), strict=True):
        due = detected + (deadline - detected) * fraction
        assert ts(entry["time"]) >= due.replace(microsecond=0), (entry, due)  # never early
    assert status["escalation"]["warnedFractions"] == [0.3, 0.7]
    assert "nextWarningAt" not in status["escalation"]


def test_acknowledgement_during_a_burst_of_200_creations_is_stamped_at_the_api_write(
    kubectl, kubeconfig, namespace, start_operator
):
    from concurrent.futures import ThreadPoolExecutor

    from kubernetes import client, config as kube_config

    api = client.CustomObjectsApi(kube_config.new_client_from_config(str(kubeconfig)))
    start_operator({"deadlines": {"warnAt": {"P3": []}}})
    kubectl.apply(incident("in-the-crowd", priority="P3"))
    wait_status(kubectl, "in-the-crowd", lambda s: s.get("detectedAt"))

    def create(index):
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "incidents", incident(f"burst-{index:03d}", priority="P3")
        )

    with ThreadPoolExecutor(8) as pool:
        creations = [pool.submit(create, index) for index in range(200)]
        # Acknowledged while the operator is busy with the burst.
        wait_until(lambda: sum(f.done() for f in creations) >= 50, 120, interval=0.05, what="burst under way")
        kubectl.patch("incident", "in-the-crowd", {"spec": {"state": "Acknowledged", "owner": "gina"}})
        written = state_write_time(with_managed_fields(kubectl, "in-the-crowd"))
        for future in creations:
            future.result()

    obj = wait_status(kubectl, "in-the-crowd", lambda s: s.get("acknowledgedAt"), 120, "acknowledgedAt")
    assert ts(obj["status"]["acknowledgedAt"]) == written
    assert len(kubectl.list("incident")) == 201
