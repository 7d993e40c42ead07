"""The named steps of ``reconcile_incident`` (domain/incident/lifecycle.py), each on its own, then
the pipeline for the facts they establish together: stamps at the time the person acted, a
correction that does not re-observe metrics, and pre-breach warnings once each."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest

from incident_operator.config import ConfigError, OperatorConfig
from incident_operator.domain.common.timeutil import format_time, format_time_precise, parse_time
from incident_operator.domain.incident import lifecycle as lc
from incident_operator.domain.incident.calendar import BusinessCalendar
from incident_operator.domain.incident.deadlines import DeadlinePolicy
from incident_operator.domain.notify import book

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)  # a Monday
POLICY = DeadlinePolicy.from_dict(
    {"response": {"P1": "5m", "P2": "30m"}, "escalationInterval": {"P1": "5m"}, "maxEscalationLevel": 3}
)
SETTINGS = lc.LifecycleSettings(calendar=BusinessCalendar.from_dict({}), policy=POLICY)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def managed(manager: str, when: datetime, *spec_fields: str, subresource: str | None = None) -> dict:
    entry = {
        "manager": manager,
        "operation": "Update",
        "apiVersion": "incidents.buttercream.io/v1alpha1",
        "time": format_time(when),
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {f"f:{name}": {} for name in spec_fields}},
    }
    if subresource:
        entry["subresource"] = subresource
        entry["fieldsV1"] = {"f:status": {"f:state": {}}}
    return entry


def incident(managed_fields=None, status=None, **spec):
    spec.setdefault("title", "Login broken")
    spec.setdefault("priority", "P2")
    body = {
        "metadata": {
            "name": "login",
            "namespace": "support",
            "uid": "u-1",
            "generation": 1,
            "creationTimestamp": format_time(T0),
            "managedFields": managed_fields
            or [managed("kubectl-client-side-apply", T0, "title", "priority", "state")],
        },
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return body


def run(body, now):
    outcome = lc.reconcile_incident(copy.deepcopy(body), now, SETTINGS)
    return {**body, "status": outcome.status}, outcome


# ------------------------------------------------------------------------------ 1. validation


def test_derive_priority_from_priority_or_impact_and_urgency():
    assert lc.derive_priority({"priority": "P3"}) == "P3"
    assert lc.derive_priority({"impact": "High", "urgency": "Medium"}) == "P2"
    with pytest.raises(lc.InvalidSpec):
        lc.derive_priority({"impact": "High"})


def test_impact_start_refuses_malformed_and_future_times():
    assert lc.impact_start({}, T0) is None
    assert lc.impact_start({"startedAt": "2026-01-05T08:00:00Z"}, T0) == at(-3600)
    with pytest.raises(lc.InvalidSpec, match="spec.startedAt"):
        lc.impact_start({"startedAt": "yesterday"}, T0)
    with pytest.raises(lc.InvalidSpec, match="in the future"):
        lc.impact_start({"startedAt": format_time(at(3600))}, T0)


# ------------------------------------------------------------------------------- 2. detection


def test_record_detection_announces_once_and_only_moves_earlier():
    meta = {"annotations": {lc.SOURCE_ANNOTATION: "DetectionRule"}}
    first = lc.record_detection(meta, {}, "P2", "Login broken", T0, T0)
    assert first.status == {"detectedAt": format_time(T0), "source": "DetectionRule"}
    assert [n.key for n in first.notifications] == ["opened"] and first.observations == ["opened"]
    assert lc.record_detection(meta, {"detectedAt": format_time(T0)}, "P2", "x", T0, at(60)).status == {}
    earlier = lc.record_detection(meta, {"detectedAt": format_time(T0)}, "P2", "x", at(-60), at(60))
    assert earlier.status == {"detectedAt": format_time(at(-60))}
    assert [e["type"] for e in earlier.entries] == ["DetectedEarlier"]


def test_detected_at_ignores_an_annotation_in_the_future():
    meta = {
        "annotations": {lc.DETECTED_AT_ANNOTATION: format_time(at(3600))},
        "creationTimestamp": format_time(T0),
    }
    assert lc.detected_at(meta, {}, T0) == T0


# -------------------------------------------------------------------------------- 3. priority


def test_priority_change_is_said_once_with_severity():
    same = lc.priority_change("P2", "P2", T0)
    assert same.status == {"priority": "P2", "severity": "High"} and not same.entries
    changed = lc.priority_change("P3", "P1", T0)
    assert changed.status["severity"] == "Critical"
    assert [e["type"] for e in changed.entries] == ["PriorityChanged"]
    assert changed.notifications[0].event == "incident.priority_updated"


# ----------------------------------------------------------------------- 4. acted-at and stamps


def test_write_time_is_the_earliest_owner_of_the_field_and_ignores_subresources():
    meta = {
        "managedFields": [
            managed("kubectl-client-side-apply", T0, "title", "priority"),
            managed("kubectl-patch", at(30), "state", "owner"),
            managed("ssa-bot", at(50), "state"),
            managed("incident-operator", at(90), subresource="status"),
        ]
    }
    assert lc.write_time(meta, "state") == at(30)
    assert lc.write_time(meta, "title") == T0
    assert lc.write_time(meta, "csat") is None
    assert lc.write_time({}, "state") is None


def test_acted_at_prefers_a_stated_time_within_its_bounds():
    meta = {"managedFields": [managed("kubectl-patch", at(100), "state", "stateChange", "owner")]}
    floor = T0
    stated = lc.acted_at(
        meta,
        {"stateChange": {"state": "Acknowledged", "at": format_time(at(40))}},
        "Acknowledged",
        floor,
        at(500),
    )
    assert stated == lc.ActedAt(at(40), lc.EXPLICIT)
    # After the API server accepted the write (plus its one-second resolution): not believed.
    ahead = lc.acted_at(
        meta,
        {"stateChange": {"state": "Acknowledged", "at": format_time(at(102))}},
        "Acknowledged",
        floor,
        at(500),
    )
    assert (
        ahead.time == at(100)
        and ahead.source == lc.WRITE_TIME
        and "after the API server accepted" in ahead.note
    )
    # Before the previous stamp: not believed either.
    early = lc.acted_at(
        meta,
        {"stateChange": {"state": "Acknowledged", "at": format_time(at(-10))}},
        "Acknowledged",
        floor,
        at(500),
    )
    assert early.time == at(100) and "before" in early.note
    # For another state (a stale stateChange left from the previous transition): ignored silently.
    other = lc.acted_at(
        meta,
        {"stateChange": {"state": "Acknowledged", "at": format_time(at(40))}},
        "Mitigated",
        floor,
        at(500),
    )
    assert other == lc.ActedAt(at(100), lc.WRITE_TIME)


def test_acted_at_falls_back_to_the_floor_or_the_operator_clock():
    meta = {"managedFields": [managed("kubectl-patch", at(100), "state")]}
    assert lc.acted_at(meta, {}, "Resolved", at(200), at(500)) == lc.ActedAt(at(200), lc.WRITE_TIME)
    assert lc.acted_at({}, {}, "Resolved", T0, at(500)) == lc.ActedAt(at(500), lc.OPERATOR_CLOCK)
    future = {
        "managedFields": [managed("kubectl-patch", at(10_000), "state")]
    }  # an API server clock far ahead
    assert lc.acted_at(future, {}, "Resolved", T0, at(500)).source == lc.OPERATOR_CLOCK


def test_stamp_transition_stamps_skipped_states_at_the_acted_time():
    acted = lc.ActedAt(at(42), lc.WRITE_TIME)
    step, reopened = lc.stamp_transition({"state": "Triggered"}, {"owner": "alice"}, "Mitigated", acted)
    assert not reopened
    assert step.status == {
        "state": "Mitigated",
        "acknowledgedAt": format_time(at(42)),
        "investigatingAt": format_time(at(42)),
        "mitigatedAt": format_time(at(42)),
    }
    assert step.entries[0]["time"] == format_time(at(42))
    assert step.entries[0]["message"] == "Triggered → Mitigated by alice"
    assert [n.key for n in step.notifications] == ["mitigated-0"]
    nothing, _ = lc.stamp_transition({"state": "Mitigated"}, {}, "Mitigated", acted)
    assert nothing.status == {"state": "Mitigated"} and not nothing.entries


def test_stamp_transition_reopen_rearms_at_the_acted_time():
    old = {
        "state": "Resolved",
        "resolvedAt": format_time(at(10)),
        "mitigatedAt": format_time(at(5)),
        "escalation": {"level": 2},
    }
    step, reopened = lc.stamp_transition(old, {}, "Investigating", lc.ActedAt(at(60), lc.EXPLICIT))
    assert reopened
    assert step.status["reopenCount"] == 1 and step.status["lastReopenedAt"] == format_time(at(60))
    assert step.status["resolvedAt"] is None and step.status["escalation"]["level"] == 0
    assert "(time stated in spec.stateChange)" in step.entries[0]["message"]
    back, reopened = lc.stamp_transition(
        {"state": "Mitigated"}, {}, "Investigating", lc.ActedAt(at(60), lc.WRITE_TIME)
    )
    assert not reopened and back.status["mitigatedAt"] is None


def test_correct_stamp_applies_a_later_stated_time_for_the_current_state_only():
    meta = {"managedFields": [managed("kubectl-patch", at(300), "stateChange")]}
    status = {"state": "Acknowledged", "acknowledgedAt": format_time(at(200))}
    spec = {"stateChange": {"state": "Acknowledged", "at": format_time(at(120))}}
    step = lc.correct_stamp(status, meta, spec, "Acknowledged", T0, at(400))
    assert step.status == {"acknowledgedAt": format_time(at(120))}
    assert [e["type"] for e in step.entries] == ["StampCorrected"]
    done = {**status, **step.status}
    assert lc.correct_stamp(done, meta, spec, "Acknowledged", T0, at(400)).status == {}  # idempotent
    assert lc.correct_stamp(status, meta, spec, "Mitigated", T0, at(400)).status == {}
    reopened = {
        "state": "Investigating",
        "investigatingAt": format_time(at(50)),
        "lastReopenedAt": format_time(at(250)),
    }
    stale = {"stateChange": {"state": "Investigating", "at": format_time(at(260))}}
    assert lc.correct_stamp(reopened, meta, stale, "Investigating", at(250), at(400)).status == {}


# ------------------------------------------------------------------------------- 5. deadlines


def test_compute_deadlines_from_the_arming_time():
    deadlines = lc.compute_deadlines("P2", T0, SETTINGS)
    assert deadlines.response == at(1800) and deadlines.resolution > deadlines.response


# ------------------------------------------------------------------------------ 6. escalation


def test_escalate_reaches_each_level_once_and_stops_when_acknowledged():
    deadline = at(300)
    escalation, step, reached = lc.escalate({}, 0, "P1", deadline, False, at(299), POLICY)
    assert (
        reached == []
        and escalation["level"] == 0
        and escalation["nextEscalationAt"] == format_time_precise(deadline)
    )
    escalation, step, reached = lc.escalate(escalation, 0, "P1", deadline, False, at(301), POLICY)
    assert reached == [1] and [n.key for n in step.notifications] == ["escalated-0-1"]
    again, step, reached = lc.escalate(escalation, 0, "P1", deadline, False, at(302), POLICY)
    assert reached == [] and not step.entries and again["level"] == 1
    acked, _, reached = lc.escalate(again, 0, "P1", deadline, True, at(900), POLICY)
    assert reached == [] and acked["level"] == 1 and acked["nextEscalationAt"] is None


# ------------------------------------------------------------------------- 7. pre-breach warnings


def test_warnings_fire_once_each_at_their_fractions():
    deadline = at(1000)
    escalation, step = lc.warn_before_breach({}, (0.5, 0.8), T0, deadline, False, 0, "P2", at(499))
    assert not step.notifications and escalation["nextWarningAt"] == format_time_precise(at(500))
    escalation, step = lc.warn_before_breach(escalation, (0.5, 0.8), T0, deadline, False, 0, "P2", at(500))
    assert step.notifications == [lc.Notification("warning-0-50", book.DEADLINE_WARNING, 1)]
    assert escalation["warnedFractions"] == [0.5] and escalation["nextWarningAt"] == format_time_precise(
        at(800)
    )
    assert step.entries[0]["type"] == "DeadlineWarning" and "8m left" in step.entries[0]["message"]
    escalation, step = lc.warn_before_breach(escalation, (0.5, 0.8), T0, deadline, False, 0, "P2", at(600))
    assert not step.notifications
    escalation, step = lc.warn_before_breach(escalation, (0.5, 0.8), T0, deadline, False, 0, "P2", at(800))
    assert [n.key for n in step.notifications] == ["warning-0-80"] and escalation["nextWarningAt"] is None


def test_warnings_missed_while_down_are_one_warning_and_none_after_ack_or_breach():
    deadline = at(1000)
    escalation, step = lc.warn_before_breach({}, (0.5, 0.8), T0, deadline, False, 2, "P2", at(900))
    assert [n.key for n in step.notifications] == ["warning-2-80"] and escalation["warnedFractions"] == [
        0.5,
        0.8,
    ]
    acked, step = lc.warn_before_breach({}, (0.5, 0.8), T0, deadline, True, 0, "P2", at(900))
    assert not step.notifications and acked["nextWarningAt"] is None
    late, step = lc.warn_before_breach({}, (0.5, 0.8), T0, deadline, False, 0, "P2", at(1000))
    assert not step.notifications and late["nextWarningAt"] is None


def test_warning_goes_to_the_current_escalation_level():
    _, step = lc.warn_before_breach({"level": 2}, (0.5,), T0, at(1000), False, 0, "P2", at(600))
    assert step.notifications[0].level == 2
    item = {"event": book.DEADLINE_WARNING, "level": 2}
    assert book.policy_levels_for(item, {"levels": [{}, {}, {}]}) == [2]


def test_parse_warn_at_defaults_and_refusals():
    assert lc.parse_warn_at(None) == lc.DEFAULT_WARN_AT
    parsed = lc.parse_warn_at({"P1": [0.9, 0.5], "P4": None})
    assert parsed["P1"] == (0.5, 0.9) and parsed["P4"] == () and parsed["P2"] == (0.5, 0.8)
    for bad, message in (
        ({"P5": [0.5]}, "unknown priority"),
        ({"P2": [1.2]}, "between 0 and 1"),
        ({"P2": "0.5"}, "list of fractions"),
        ([0.5], "mapping"),
    ):
        with pytest.raises(ValueError, match=message):
            lc.parse_warn_at(bad)


def test_operator_config_reads_deadlines_warn_at_beside_the_deadline_policy():
    config = OperatorConfig.from_dict({"deadlines": {"response": {"P2": "20s"}, "warnAt": {"P2": [0.25]}}})
    assert config.lifecycle.warn_at["P2"] == (0.25,)
    assert OperatorConfig.from_dict({}).lifecycle.warn_at == lc.DEFAULT_WARN_AT
    with pytest.raises(ConfigError, match="warnAt"):
        OperatorConfig.from_dict({"deadlines": {"warnAt": {"P2": [2]}}})


# ------------------------------------------------------------------------------ 8. conditions


def test_derive_conditions_judge_the_response_by_the_stamp_not_the_clock():
    deadline = at(1800)
    conditions, step, breached = lc.derive_conditions(
        None,
        None,
        spec={"owner": "alice"},
        target="Acknowledged",
        priority="P2",
        level=0,
        ack_at=at(1700),
        reopened_before=False,
        response_deadline=deadline,
        now=at(1900),
        generation=1,
    )
    on_time = next(c for c in conditions if c["type"] == "ResponseOnTime")
    assert on_time["reason"] == "AcknowledgedInTime" and not breached
    conditions, step, breached = lc.derive_conditions(
        None,
        None,
        spec={},
        target="Triggered",
        priority="P2",
        level=0,
        ack_at=None,
        reopened_before=False,
        response_deadline=deadline,
        now=at(1800),
        generation=1,
    )
    assert breached and [e["type"] for e in step.entries] == ["DeadlineBreached"]
    ready = next(c for c in conditions if c["type"] == "Ready")
    assert ready["reason"] == "Breached"


# ---------------------------------------------------------------------------- 9. observations


def test_observations_due_once_each():
    status = {"detectedAt": "x", "acknowledgedAt": "y", "metrics": {"observed": ["opened", "detect"]}}
    due, observed = lc.observations_due(status, {}, "Acknowledged", ["opened"])
    assert due == ["acknowledge"] and observed == ["acknowledge", "detect", "opened"]
    due, _ = lc.observations_due({**status, "metrics": {"observed": observed}}, {}, "Acknowledged", [])
    assert due == []


# ------------------------------------------------------------------------------- the pipeline


def test_acknowledgement_processed_late_is_stamped_at_the_api_write_and_on_time():
    body, _ = run(incident(), T0)
    # The person acknowledged 10 s before the deadline; the operator was down and sees it 5 min later.
    write = at(1790)
    body["spec"].update(state="Acknowledged", owner="alice")
    body["metadata"]["managedFields"].append(managed("kubectl-patch", write, "state", "owner"))
    body["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"].pop("f:state")
    body, outcome = run(body, at(2100))
    status = body["status"]
    assert status["acknowledgedAt"] == format_time(write)
    on_time = next(c for c in status["conditions"] if c["type"] == "ResponseOnTime")
    assert on_time["reason"] == "AcknowledgedInTime"
    assert status["escalation"]["level"] == 0 and not outcome.escalated_levels
    changed = [e for e in status["timeline"] if e["type"] == "StateChanged"]
    assert changed[-1]["time"] == format_time(write)
    assert "acknowledge" in outcome.observations


def test_a_stated_time_corrects_the_stamp_without_observing_twice():
    body, _ = run(incident(), T0)
    body["spec"].update(state="Acknowledged", owner="alice")
    body["metadata"]["managedFields"] = [
        managed("kubectl-patch", at(2000), "state", "owner", "title", "priority")
    ]
    body, outcome = run(body, at(2001))
    assert body["status"]["acknowledgedAt"] == format_time(at(2000)) and "acknowledge" in outcome.observations
    assert next(c for c in body["status"]["conditions"] if c["type"] == "ResponseOnTime")["status"] == "False"
    # The person says they acknowledged on the phone at 09:25 (before the 09:30 deadline).
    body["spec"]["stateChange"] = {"state": "Acknowledged", "at": format_time(at(1500))}
    body["metadata"]["managedFields"].append(managed("kubectl-patch-2", at(2400), "stateChange"))
    body, outcome = run(body, at(2401))
    status = body["status"]
    assert status["acknowledgedAt"] == format_time(at(1500))
    assert "acknowledge" not in outcome.observations
    assert (
        next(c for c in status["conditions"] if c["type"] == "ResponseOnTime")["reason"]
        == "AcknowledgedInTime"
    )
    assert [e["type"] for e in status["timeline"]].count("StampCorrected") == 1
    again, outcome = run(body, at(2402))
    assert again["status"] == status  # nothing more to do


def test_pipeline_warns_once_and_wakes_for_the_next_warning():
    body, outcome = run(incident(), T0)
    assert outcome.next_wakeup == at(900)  # 50% of 30 minutes
    body, outcome = run(body, at(900))
    assert [n.key for n in outcome.notifications] == ["warning-0-50"]
    pending = [
        item for item in body["status"]["notifications"]["pending"] if item["event"] == book.DEADLINE_WARNING
    ]
    assert pending[0]["level"] == 1
    body, outcome = run(body, at(901))
    assert outcome.notifications == [] and outcome.next_wakeup == at(1440)
    assert [e["type"] for e in body["status"]["timeline"]].count("DeadlineWarning") == 1
    body["spec"].update(state="Acknowledged", owner="alice")
    body["metadata"]["managedFields"] = [
        managed("kubectl-patch", at(1000), "state", "owner", "title", "priority")
    ]
    body, outcome = run(body, at(1500))
    assert [n.key for n in outcome.notifications] == ["acknowledged-0"]
    assert body["status"]["escalation"]["nextWarningAt"] is None


def test_reopen_is_stamped_at_the_write_and_rearms_the_deadline():
    body, _ = run(incident(state="Resolved", owner="alice"), T0)
    body, _ = run(body, at(10))
    body["spec"]["state"] = "Investigating"
    body["metadata"]["managedFields"] = [
        managed("kubectl-patch", at(100), "state", "owner", "title", "priority")
    ]
    body, outcome = run(body, at(120))
    assert body["status"]["lastReopenedAt"] == format_time(at(100))
    assert parse_time(body["status"]["responseDeadline"]) == at(1900)
    # Investigating counts as acknowledged: a reopen arms no pre-breach warning.
    assert body["status"]["escalation"].get("nextWarningAt") is None


def test_a_stored_status_is_not_written_again_for_nulls_the_server_already_dropped():
    from incident_operator.domain.common.status import status_patch

    for spec in ({"priority": "P1"}, {"priority": "P2", "state": "Acknowledged", "owner": "alice"}):
        body, _ = run(incident(**spec), T0)
        # What the API server stores after the merge patch: a nested null deletes the key.
        stored = {**body["status"],
                  "escalation": {k: v for k, v in body["status"]["escalation"].items() if v is not None}}
        again = lc.reconcile_incident({**body, "status": stored}, at(1), SETTINGS)
        assert status_patch(stored, again.status) == {}, spec
