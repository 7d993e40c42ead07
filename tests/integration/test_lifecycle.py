"""Incident lifecycle against the real API server, with the operator as a process."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from kubernetes import client, config as kube_config
from kubernetes.client.exceptions import ApiException

from tests.support.kubectl import GROUP, VERSION, condition, incident
from tools.devenv.processes import wait_until

FAST = {
    "deadlines": {
        "response": {"P1": "4s", "P2": "30m", "P3": "2h"},
        "escalationInterval": {"P1": "4s"},
        "maxEscalationLevel": 3,
    }
}


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def escalated_entries(obj, level):
    return [e for e in obj["status"].get("timeline", [])
            if e["type"] == "Escalated" and e["message"].endswith(f"level {level}")]


def wait_status(kubectl, name, predicate, timeout=30, what="status"):
    def check():
        obj = kubectl.get("incident", name)
        return obj if obj and predicate(obj.get("status") or {}) else None
    return wait_until(check, timeout, interval=0.1, what=what)


def test_p2_deadline_is_detection_plus_30_minutes_and_ack_in_time(kubectl, start_operator):
    start_operator()
    kubectl.apply(incident("p2", impact="High", urgency="Medium", service="auth"))
    obj = wait_status(kubectl, "p2", lambda s: s.get("responseDeadline"))
    status = obj["status"]
    assert status["priority"] == "P2" and status["severity"] == "High"
    assert ts(status["responseDeadline"]) - ts(status["detectedAt"]) == timedelta(minutes=30)
    assert condition(obj, "ResponseOnTime")["status"] == "True"
    assert condition(obj, "Acknowledged")["status"] == "False"

    kubectl.patch("incident", "p2", {"spec": {"state": "Acknowledged", "owner": "alice"}})
    obj = wait_status(kubectl, "p2", lambda s: s.get("acknowledgedAt"))
    assert condition(obj, "Acknowledged")["status"] == "True"
    assert condition(obj, "ResponseOnTime")["status"] == "True"
    assert condition(obj, "ResponseOnTime")["reason"] == "AcknowledgedInTime"
    assert obj["status"]["escalation"]["level"] == 0
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]


def test_unacknowledged_incident_escalates_on_time_and_survives_sigkill(kubectl, start_operator):
    operator = start_operator(FAST)
    kubectl.apply(incident("p1", priority="P1", service="auth"))

    obj = wait_status(kubectl, "p1", lambda s: (s.get("escalation") or {}).get("level", 0) >= 1, 20, "level 1")
    deadline = ts(obj["status"]["responseDeadline"])
    fired = ts(obj["status"]["escalation"]["lastEscalatedAt"])
    assert timedelta(0) <= fired - deadline <= timedelta(seconds=1), (deadline, fired)
    assert condition(obj, "ResponseOnTime")["reason"] == "DeadlineBreached"
    assert condition(obj, "Ready")["reason"] == "Escalated"
    assert len(escalated_entries(obj, 1)) == 1

    # Crash right after level 1; the replacement must not repeat it and level 2 stays on time.
    operator.kill()
    start_operator(FAST, name="restarted")
    obj = wait_status(kubectl, "p1", lambda s: (s.get("escalation") or {}).get("level", 0) >= 2, 20, "level 2")
    level2_due = deadline + timedelta(seconds=4)
    fired2 = ts(obj["status"]["escalation"]["lastEscalatedAt"])
    assert timedelta(0) <= fired2 - level2_due <= timedelta(seconds=1), (level2_due, fired2)
    assert len(escalated_entries(obj, 1)) == 1
    assert len(escalated_entries(obj, 2)) == 1
    events = kubectl.run("get", "events", "--field-selector", "involvedObject.name=p1,reason=Escalated",
                         "-o", "json").stdout
    assert len(json.loads(events)["items"]) >= 1

    # Acknowledging stops the escalation.
    kubectl.patch("incident", "p1", {"spec": {"state": "Acknowledged", "owner": "bob"}})
    obj = wait_status(kubectl, "p1", lambda s: s.get("acknowledgedAt"))
    assert "nextEscalationAt" not in obj["status"]["escalation"]
    assert condition(obj, "ResponseOnTime")["reason"] == "AcknowledgedLate"


def test_p4_raised_friday_evening_before_a_monday_holiday_is_due_tuesday(kubectl, start_operator):
    # 2026-08-31 is the Summer bank holiday in England (a Monday).
    start_operator({"calendar": {"timezone": "Europe/London", "holidays": {"country": "GB", "subdivision": "ENG"}}})
    body = incident("p4", priority="P4")
    body["metadata"]["annotations"] = {"incidents.buttercream.io/detected-at": "2026-08-28T17:00:00Z"}  # Fri 18:00 BST
    kubectl.apply(body)
    obj = wait_status(kubectl, "p4", lambda s: s.get("responseDeadline"))
    assert obj["status"]["detectedAt"] == "2026-08-28T17:00:00Z"
    # Tuesday 2026-09-01 17:00 BST.
    assert ts(obj["status"]["responseDeadline"]) == datetime(2026, 9, 1, 16, 0, tzinfo=timezone.utc)


def test_priority_change_recomputes_deadlines(kubectl, start_operator):
    start_operator()
    kubectl.apply(incident("reprio", priority="P3"))
    obj = wait_status(kubectl, "reprio", lambda s: s.get("priority") == "P3")
    assert ts(obj["status"]["responseDeadline"]) - ts(obj["status"]["detectedAt"]) == timedelta(hours=2)
    kubectl.patch("incident", "reprio", {"spec": {"priority": "P2"}})
    obj = wait_status(kubectl, "reprio", lambda s: s.get("priority") == "P2")
    assert ts(obj["status"]["responseDeadline"]) - ts(obj["status"]["detectedAt"]) == timedelta(minutes=30)
    assert any(e["type"] == "PriorityChanged" for e in obj["status"]["timeline"])


def test_skipped_states_get_stamps_and_reopen_counts(kubectl, start_operator):
    start_operator()
    kubectl.apply(incident("skip", priority="P3", owner="carol", state="Resolved"))
    obj = wait_status(kubectl, "skip", lambda s: s.get("resolvedAt"))
    status = obj["status"]
    for stamp in ("acknowledgedAt", "investigatingAt", "mitigatedAt", "resolvedAt"):
        assert ts(status[stamp]) >= ts(status["detectedAt"]), stamp
    assert "closedAt" not in status
    assert condition(obj, "Resolved")["status"] == "True"

    kubectl.patch("incident", "skip", {"spec": {"state": "Investigating"}})
    obj = wait_status(kubectl, "skip", lambda s: s.get("reopenCount") == 1)
    assert "resolvedAt" not in obj["status"]
    assert obj["status"]["lastReopenedAt"]
    assert ts(obj["status"]["responseDeadline"]) > ts(obj["status"]["lastReopenedAt"])
    assert condition(obj, "Resolved")["status"] == "False"
    assert any(e["type"] == "Reopened" for e in obj["status"]["timeline"])


def _api(kubeconfig):
    return client.CustomObjectsApi(kube_config.new_client_from_config(str(kubeconfig)))


@pytest.mark.parametrize("start,change,message", [
    ("Closed", {"state": "Investigating"}, "a Closed incident cannot change state"),
    ("Investigating", {"state": "Triggered"}, "state can only move forward"),
])
def test_invalid_transitions_are_refused_with_422(kubectl, kubeconfig, namespace, start, change, message):
    kubectl.apply(incident("guarded", priority="P3", owner="dave", state=start))
    api = _api(kubeconfig)
    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", "guarded", {"spec": change})
    assert refused.value.status == 422
    assert message in refused.value.body
    # kubectl shows the same sentence to a person.
    result = kubectl.patch("incident", "guarded", {"spec": change}, check=False)
    assert result.returncode != 0 and message in result.stderr


def test_owner_is_required_from_acknowledged_on(kubectl):
    result = kubectl.apply(incident("ownerless", priority="P3", state="Acknowledged"), check=False)
    assert result.returncode != 0
    assert "spec.owner is required once an incident is Acknowledged" in result.stderr


def test_priority_or_impact_and_urgency_is_required(kubectl):
    result = kubectl.apply(incident("unclassified", impact="High"), check=False)
    assert result.returncode != 0
    assert "set spec.priority (P1-P4), or both spec.impact and spec.urgency" in result.stderr


def test_future_start_gets_invalid_condition_and_others_keep_working(kubectl, start_operator):
    operator = start_operator()
    future = (datetime.now(timezone.utc) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    kubectl.apply(incident("from-the-future", priority="P3", startedAt=future))
    kubectl.apply(incident("ordinary", priority="P3"))
    bad = wait_status(kubectl, "from-the-future",
                      lambda s: any(c["type"] == "Ready" for c in s.get("conditions", [])))
    ready = condition(bad, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "Invalid"
    assert "in the future" in ready["message"]
    good = wait_status(kubectl, "ordinary", lambda s: s.get("priority") == "P3")
    assert condition(good, "Ready")["status"] == "True"
    assert operator.alive()
