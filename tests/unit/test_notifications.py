"""Delivery bookkeeping (domain/notify/book.py): queueing in the lifecycle write, claims, retry
with backoff, giving up, policy/level selection, and that everything written is in the CRD schema."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from incident_operator.domain.notify import book as n
from incident_operator.domain.incident.calendar import BusinessCalendar
from incident_operator.domain.incident.deadlines import DeadlinePolicy
from incident_operator.domain.incident.lifecycle import LifecycleSettings, Notification, reconcile_incident
from incident_operator.domain.common.timeutil import format_time, parse_time

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
FAST = n.DeliverySettings(initial_backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=30), jitter=0.0,
                          max_attempts=5, claim_timeout=timedelta(seconds=20), send_timeout=timedelta(seconds=5))
REPO = Path(__file__).resolve().parents[2]


def settings() -> LifecycleSettings:
    policy = DeadlinePolicy.from_dict({"response": {"P1": "5m"}, "escalationInterval": {"P1": "5m"},
                                       "maxEscalationLevel": 3})
    return LifecycleSettings(calendar=BusinessCalendar.from_dict({}), policy=policy)


def incident(**spec):
    spec.setdefault("title", "Login broken")
    spec.setdefault("priority", "P1")
    return {"metadata": {"name": "login", "namespace": "support", "uid": "u-1", "generation": 1,
                         "creationTimestamp": format_time(T0)}, "spec": spec}


def apply(body, outcome):
    return {**body, "status": outcome.status}


# ----------------------------------------------------------------------------------- settings

def test_settings_defaults_and_parsing():
    assert n.DeliverySettings.from_dict(None) == n.DeliverySettings()
    parsed = n.DeliverySettings.from_dict({"backoff": {"initial": "500ms", "max": "2m", "factor": 3, "jitter": 0},
                                           "maxAttempts": 7, "claimTimeout": "1m", "sendTimeout": "10s"})
    assert parsed.initial_backoff == timedelta(milliseconds=500) and parsed.max_backoff == timedelta(minutes=2)
    assert parsed.factor == 3 and parsed.max_attempts == 7 and parsed.claim_timeout == timedelta(minutes=1)


@pytest.mark.parametrize("bad, message", [
    ({"retries": 3}, "unknown key(s) retries"),
    ({"backoff": {"inital": "1s"}}, "unknown key(s) inital"),
    ({"backoff": {"initial": "1x"}}, "backoff.initial"),
    ({"backoff": {"initial": "10m", "max": "1m"}}, "initial <= max"),
    ({"maxAttempts": 0}, "maxAttempts >= 1"),
    ({"claimTimeout": "5s", "sendTimeout": "10s"}, "claimTimeout must be at least sendTimeout"),
])
def test_settings_refuse_bad_values_with_a_clear_message(bad, message):
    with pytest.raises(n.SettingsError, match=None) as error:
        n.DeliverySettings.from_dict(bad)
    assert message in str(error.value)


# ----------------------------------------------------------------------------------- backoff

def test_backoff_doubles_and_is_capped():
    delays = [n.backoff(a, FAST).total_seconds() for a in range(1, 9)]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    assert n.backoff(10_000, FAST) == timedelta(seconds=30)  # no overflow


def test_backoff_jitter_stays_within_bounds():
    jittered = n.DeliverySettings(initial_backoff=timedelta(seconds=10), max_backoff=timedelta(seconds=60),
                                  jitter=0.2)
    assert n.backoff(1, jittered, rand=0.0) == timedelta(seconds=8)
    assert n.backoff(1, jittered, rand=0.5) == timedelta(seconds=10)
    assert n.backoff(1, jittered, rand=0.999999).total_seconds() == pytest.approx(12, abs=1e-3)
    assert n.backoff(9, jittered, rand=0.999999) == timedelta(seconds=60)  # jitter never exceeds the cap


# ----------------------------------------------------------------------------------- queueing in the lifecycle

def test_transitions_are_queued_in_the_same_status_write():
    body = incident()
    outcome = reconcile_incident(body, T0, settings())
    pending = outcome.status["notifications"]["pending"]
    assert [(p["key"], p["event"], p["attempts"]) for p in pending] == [("opened", "incident.triggered", 0)]
    assert [x.key for x in outcome.notifications] == ["opened"]

    # Escalations: one per level, each queued once, with its level.
    body = apply(body, outcome)
    outcome = reconcile_incident(body, T0 + timedelta(minutes=10, seconds=1), settings())
    keys = [(p["key"], p.get("level")) for p in outcome.status["notifications"]["pending"]]
    assert keys == [("opened", None), ("escalated-0-1", 1), ("escalated-0-2", 2)]
    assert [x.key for x in outcome.notifications] == ["escalated-0-1", "escalated-0-2"]

    # Re-running the reconcile (a restart, a rival replica) queues nothing new.
    body = apply(body, outcome)
    again = reconcile_incident(body, T0 + timedelta(minutes=10, seconds=2), settings())
    assert again.notifications == []
    assert again.status["notifications"] == body["status"]["notifications"]


def test_delivered_or_abandoned_keys_are_never_queued_again():
    book = {"delivered": ["opened"], "abandoned": ["escalated-0-1"], "pending": []}
    new, added = n.queue(book, [Notification("opened", "incident.triggered"),
                                Notification("escalated-0-1", "incident.escalated", 1),
                                Notification("acknowledged-0", "incident.acknowledged")], T0)
    assert [x.key for x in added] == ["acknowledged-0"]
    assert [p["key"] for p in new["pending"]] == ["acknowledged-0"]


def test_pending_overflow_abandons_the_oldest():
    book = {"pending": [{"key": f"k{i}", "event": "e", "attempts": 1} for i in range(n.MAX_PENDING)]}
    new, added = n.queue(book, [Notification("newest", "incident.reopened")], T0)
    assert len(new["pending"]) == n.MAX_PENDING and new["pending"][-1]["key"] == "newest"
    assert new["abandoned"] == ["k0"] and "abandoned" in new["lastError"]


# ----------------------------------------------------------------------------------- claim, retry, deliver

def _status_with(*items):
    return {"notifications": {"pending": [dict(i) for i in items], "delivered": [], "abandoned": []},
            "timeline": [], "conditions": []}


def test_claim_reserves_the_item_and_counts_the_attempt():
    status = _status_with({"key": "opened", "event": "incident.triggered", "attempts": 0})
    assert n.due_keys(status["notifications"], T0) == ["opened"]
    claimed = n.claim(status["notifications"], "opened", T0, FAST)
    item = n.find_item(claimed, "opened")
    assert item["attempts"] == 1 and parse_time(item["nextAttemptAt"]) == T0 + FAST.claim_timeout
    # Another worker sees it as taken until the claim runs out (e.g. the claimant was SIGKILLed).
    assert n.due_keys(claimed, T0 + timedelta(seconds=5)) == []
    assert n.due_keys(claimed, T0 + FAST.claim_timeout) == ["opened"]


def test_failure_records_a_redacted_error_and_retries_with_backoff():
    status = _status_with({"key": "opened", "event": "incident.triggered", "attempts": 1})
    result = n.DeliveryResult(n.FAILED, errors=["level 1 On-call/webhook: JSON: error=500."])
    fragment = n.record(status, "opened", result, T0, FAST, generation=3)
    item = fragment["notifications"]["pending"][0]
    assert item["lastError"] == "level 1 On-call/webhook: JSON: error=500."
    assert parse_time(item["nextAttemptAt"]) == T0 + timedelta(seconds=1)
    notified = fragment["conditions"][0]
    assert (notified["type"], notified["status"], notified["reason"]) == ("Notified", "False", "DeliveryFailed")
    assert notified["observedGeneration"] == 3 and "error=500" in notified["message"]
    assert [e["type"] for e in fragment["timeline"]] == ["NotificationFailed"]

    # The same error again: no new timeline entry (retries do not flood the bounded timeline).
    status2 = {**status, **fragment}
    n.find_item(status2["notifications"], "opened")["attempts"] = 2
    fragment2 = n.record(status2, "opened", result, T0 + timedelta(seconds=2), FAST)
    assert "timeline" not in fragment2
    assert parse_time(fragment2["notifications"]["pending"][0]["nextAttemptAt"]) == T0 + timedelta(seconds=4)


def test_partial_delivery_remembers_the_channels_that_accepted():
    status = _status_with({"key": "escalated-0-1", "event": "incident.escalated", "level": 1, "attempts": 1})
    result = n.DeliveryResult(n.FAILED, sent=["L1:slack"], errors=["level 1 On-call/pager: refused"])
    fragment = n.record(status, "escalated-0-1", result, T0, FAST)
    assert fragment["notifications"]["pending"][0]["sentTo"] == ["L1:slack"]


def test_success_moves_the_key_to_delivered_and_clears_the_error():
    status = _status_with({"key": "opened", "event": "incident.triggered", "attempts": 3, "lastError": "x"})
    status["notifications"]["lastError"] = "x"
    result = n.DeliveryResult(n.DELIVERED, sent=["L1:webhook"], policy="support/default",
                              targets=["level 1 (On-call) webhook"])
    fragment = n.record(status, "opened", result, T0, FAST)
    book = fragment["notifications"]
    assert book["pending"] == [] and book["delivered"] == ["opened"] and book["lastError"] is None
    assert fragment["conditions"][0]["status"] == "True"
    assert "after 3 attempts" in fragment["timeline"][0]["message"]
    # Recording again (a rival worker, a retried write) is a no-op.
    assert n.record({**status, **fragment}, "opened", result, T0, FAST) is None


def test_success_does_not_hide_another_failing_notification():
    status = _status_with({"key": "opened", "event": "incident.triggered", "attempts": 1},
                          {"key": "acknowledged-0", "event": "incident.acknowledged", "attempts": 2,
                           "lastError": "connection refused"})
    fragment = n.record(status, "opened", n.DeliveryResult(n.DELIVERED), T0, FAST)
    condition = fragment["conditions"][0]
    assert condition["status"] == "False" and "connection refused" in condition["message"]


def test_gives_up_after_max_attempts():
    status = _status_with({"key": "opened", "event": "incident.triggered", "attempts": FAST.max_attempts})
    fragment = n.record(status, "opened", n.DeliveryResult(n.FAILED, errors=["boom"]), T0, FAST)
    assert fragment["notifications"]["pending"] == [] and fragment["notifications"]["abandoned"] == ["opened"]
    assert fragment["conditions"][0]["reason"] == "GaveUp"
    assert fragment["timeline"][0]["type"] == "NotificationAbandoned"


def test_no_policy_is_said_once_and_not_retried():
    status = _status_with({"key": "opened", "event": "incident.triggered", "attempts": 0},
                          {"key": "acknowledged-0", "event": "incident.acknowledged", "attempts": 0})
    result = n.DeliveryResult(n.NO_POLICY, detail="no EscalationPolicy for team 'x' in namespace support")
    first = n.record(status, "opened", result, T0, FAST)
    assert first["notifications"]["abandoned"] == ["opened"] and first["conditions"][0]["reason"] == n.NO_POLICY
    second = n.record({**status, **first}, "acknowledged-0", result, T0, FAST)
    assert second["notifications"]["abandoned"] == ["opened", "acknowledged-0"]
    assert len(first["timeline"]) == 1 and "timeline" not in second  # said once


def test_next_attempt_is_the_earliest_pending_time():
    status = _status_with({"key": "a", "event": "e", "nextAttemptAt": "2026-01-05T09:00:10.000Z"},
                          {"key": "b", "event": "e", "nextAttemptAt": "2026-01-05T09:00:05.000Z"})
    assert n.next_attempt_at(status) == T0 + timedelta(seconds=5)
    assert n.next_attempt_at({"notifications": {"pending": []}}) is None


# ----------------------------------------------------------------------------------- policies and levels

POLICY = {"levels": [
    {"name": "Primary", "channels": [{"name": "slack", "secretRef": {"name": "s", "key": "slack"}},
                                     {"name": "pager", "secretRef": {"name": "s", "key": "pager"}}]},
    {"name": "Lead", "channels": [{"name": "mail", "secretRef": {"name": "s", "key": "mail"}}]},
]}


@pytest.mark.parametrize("item, levels", [
    ({"event": "incident.escalated", "level": 1}, [1]),
    ({"event": "incident.escalated", "level": 2}, [2]),
    ({"event": "incident.escalated", "level": 5}, [2]),  # the last level repeats
    ({"event": "incident.acknowledged"}, [1]),
    ({"event": "incident.triggered"}, [1]),
])
def test_escalation_level_n_goes_to_policy_level_n_and_state_changes_to_level_1(item, levels):
    assert n.policy_levels_for(item, POLICY) == levels


def test_notify_on_state_change_list():
    policy = dict(POLICY, notifyOnStateChange=[2, 1, 7])
    assert n.policy_levels_for({"event": "incident.resolved"}, policy) == [1, 2]
    targets = n.targets_for({"event": "incident.resolved"}, policy)
    assert [t.id for t in targets] == ["L1:slack", "L1:pager", "L2:mail"]
    assert targets[2].level_name == "Lead" and targets[2].secret_key == "mail"


def _policy(name, namespace, teams=None):
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"teams": teams or [], "levels": []}}


def test_policy_selection_team_then_default_then_shared_namespace():
    local = [_policy("z-default", "support"), _policy("identity", "support", ["identity"])]
    shared = [_policy("platform", "ops", ["payments"]), _policy("fallback", "ops")]
    assert n.select_policy("identity", local, shared)["metadata"]["name"] == "identity"
    assert n.select_policy("search", local, shared)["metadata"]["name"] == "z-default"
    assert n.select_policy("payments", [], shared)["metadata"]["name"] == "platform"
    assert n.select_policy(None, [_policy("identity", "support", ["identity"])], shared)["metadata"]["name"] == \
        "fallback"
    assert n.select_policy("x", [_policy("a", "s", ["y"])], []) is None
    # Ties go to the alphabetically first name, so replicas agree.
    assert n.select_policy(None, [_policy("b", "s"), _policy("a", "s")])["metadata"]["name"] == "a"


# ----------------------------------------------------------------------------------- schema

def _schema(crd: str) -> dict:
    document = yaml.safe_load((REPO / "crds" / crd).read_text())
    return document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _missing_paths(value, schema, path="status"):
    """Fields in ``value`` the structural schema does not declare (the API server would prune them)."""
    missing = []
    if isinstance(value, dict):
        properties = schema.get("properties")
        if properties is None:
            if schema.get("additionalProperties"):
                return []
            return [path] if schema.get("type") != "object" else []
        for key, child in value.items():
            if key not in properties:
                missing.append(f"{path}.{key}")
            else:
                missing += _missing_paths(child, properties[key], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for child in value:
            missing += _missing_paths(child, schema["items"], f"{path}[]")
    return missing


def test_everything_the_notifier_writes_is_in_the_incident_schema():
    schema = _schema("incidents.yaml")["properties"]["status"]
    body = incident()
    status = reconcile_incident(body, T0, settings()).status
    status["notifications"]["pending"][0].update({"level": 1, "sentTo": ["L1:slack"]})
    book = n.claim(status["notifications"], "opened", T0, FAST)
    status["notifications"] = book
    failed = n.record(status, "opened", n.DeliveryResult(n.FAILED, errors=["x"]), T0, FAST)
    status.update(failed)
    delivered = n.record(status, "opened", n.DeliveryResult(n.DELIVERED), T0, FAST)
    status.update(delivered)
    status["notifications"]["lastError"] = "x"
    status["notifications"]["abandoned"] = ["k"]
    status["drafts"] = {"configMap": "login-drafts", "publicState": "investigating", "state": "Triggered",
                        "observedGeneration": 1, "updatedAt": format_time(T0), "error": "e"}
    assert _missing_paths(status, schema) == []


def test_escalation_policy_status_is_in_its_schema():
    schema = _schema("escalationpolicies.yaml")["properties"]["status"]
    status = {"observedGeneration": 1, "levels": 2, "channels": 3, "conditions": [
        {"type": "Ready", "status": "True", "reason": "Valid", "message": "m", "lastTransitionTime": "t",
         "observedGeneration": 1}]}
    assert _missing_paths(status, schema) == []
