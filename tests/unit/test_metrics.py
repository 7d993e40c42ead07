"""Metrics: which observations the lifecycle makes due, and what record_outcome does with them."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from incident_operator import metrics
from incident_operator import config as config_module
from incident_operator.domain.incident.calendar import BusinessCalendar
from incident_operator.domain.incident.deadlines import DeadlinePolicy
from incident_operator.domain.incident.lifecycle import LifecycleSettings, reconcile_incident
from incident_operator.domain.common.timeutil import format_time

T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=timezone.utc)  # a Monday
SETTINGS = LifecycleSettings(
    calendar=BusinessCalendar.from_dict({}),
    policy=DeadlinePolicy.from_dict({"response": {"P1": "5m"}, "escalationInterval": {"P1": "5m"},
                                     "maxEscalationLevel": 2}),
)
REVIEW = {"timelineNotes": "t", "rootCause": "r", "detection": "d", "communication": "c",
          "actionItems": [{"title": "fix", "owner": "ann"}, {"title": "doc", "owner": "bob", "done": True}]}


class Clock:
    def __init__(self, start: float = 1_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


def new_incident(name="inc", **spec):
    spec.setdefault("title", "Customers cannot log in")
    return {"metadata": {"name": name, "namespace": "ns", "generation": 1,
                         "creationTimestamp": format_time(T0)},
            "spec": spec, "status": {}}


class Stored:
    """One incident as the API server keeps it, with the handler's write-then-observe protocol."""

    def __init__(self, body, sink: metrics.IncidentMetrics):
        self.body = body
        self.sink = sink
        self.seen: list[list[str]] = []

    def sync(self, now: datetime):
        outcome = reconcile_incident(copy.deepcopy(self.body), now, SETTINGS)
        if outcome.status != self.body["status"]:
            self.body["status"] = outcome.status  # the conditional write succeeded
            self.sink.record_outcome(self.body, outcome)
        self.seen.append(list(outcome.observations))
        return outcome

    def change(self, now: datetime, **spec):
        self.body["spec"].update(spec)
        self.body["metadata"]["generation"] += 1
        return self.sync(now)


def value(sink, name, **labels):
    return sink.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def sink():
    return metrics.IncidentMetrics(CollectorRegistry(), version="test")


# -- the lifecycle's observation logic ------------------------------------------------------------------

def test_each_measurement_is_due_once_through_the_whole_lifecycle(sink):
    started = format_time(T0 - timedelta(minutes=4))
    inc = Stored(new_incident(priority="P2", service="auth", startedAt=started), sink)
    assert sorted(inc.sync(T0).observations) == ["detect", "opened"]
    assert inc.sync(T0 + timedelta(seconds=5)).observations == []
    acked = inc.change(T0 + timedelta(minutes=3), state="Acknowledged", owner="ann")
    assert sorted(acked.observations) == ["acknowledge", "response"]
    resolved = inc.change(T0 + timedelta(minutes=20), state="Resolved")
    assert sorted(resolved.observations) == ["mitigate", "resolve"]
    assert inc.body["status"]["metrics"]["observed"] == [
        "acknowledge", "detect", "mitigate", "opened", "resolve", "response"]

    # A reopen re-arms nothing: the durations measure the first resolution.
    reopened = inc.change(T0 + timedelta(minutes=30), state="Investigating")
    assert reopened.reopened and reopened.observations == []
    assert inc.change(T0 + timedelta(minutes=40), state="Resolved").observations == []
    closed = inc.change(T0 + timedelta(hours=2), state="Closed", review=REVIEW,
                        csat={"score": 4, "responses": 7})
    assert sorted(closed.observations) == ["csat", "resolved-fcr"]
    assert inc.sync(T0 + timedelta(hours=3)).observations == []

    assert value(sink, "incident_time_to_detect_seconds_sum", priority="P2", service="auth") == 240
    assert value(sink, "incident_time_to_acknowledge_seconds_sum", priority="P2", service="auth") == 180
    assert value(sink, "incident_time_to_mitigate_seconds_sum", priority="P2", service="auth") == 24 * 60
    assert value(sink, "incident_time_to_resolve_seconds_sum", priority="P2", service="auth") == 24 * 60
    for name in ("detect", "acknowledge", "mitigate", "resolve"):
        assert value(sink, f"incident_time_to_{name}_seconds_count", priority="P2", service="auth") == 1, name
    assert value(sink, "incidents_opened_total", priority="P2", service="auth", source="Manual") == 1
    assert value(sink, "incident_reopens_total", priority="P2") == 1
    # Reopened, so not a first-contact resolution; counted once, at Closed.
    assert value(sink, "incidents_resolved_total", priority="P2", first_contact="false") == 1
    assert value(sink, "incidents_resolved_total", priority="P2", first_contact="true") == 0
    assert value(sink, "incident_csat_score_sum", priority="P2") == 4
    assert value(sink, "incident_csat_score_count", priority="P2") == 1
    assert value(sink, "incident_csat_responses_total", priority="P2") == 7
    assert value(sink, "incident_responses_total", priority="P2", result="met") == 1
    assert value(sink, "incident_responses_total", priority="P2", result="missed") == 0


def test_a_response_is_counted_missed_when_the_deadline_passes_first_and_not_again_at_the_late_ack(sink):
    late = Stored(new_incident("late", priority="P1"), sink)
    late.sync(T0)
    assert "response" not in late.sync(T0 + timedelta(minutes=4)).observations  # still due
    assert "response" in late.sync(T0 + timedelta(minutes=6)).observations  # the 5m deadline passed
    assert value(sink, "incident_responses_total", priority="P1", result="missed") == 1
    acked = late.change(T0 + timedelta(minutes=8), state="Acknowledged", owner="ann")
    assert "response" not in acked.observations
    assert value(sink, "incident_responses_total", priority="P1", result="missed") == 1
    assert value(sink, "incident_responses_total", priority="P1", result="met") == 0


def test_a_response_decided_before_the_operator_counted_responses_is_not_counted_late(sink):
    # An incident acknowledged by an earlier operator version: its status says so, but no
    # "response" in status.metrics.observed. Counting it now would bunch old responses into
    # today's SLO windows.
    old = Stored(new_incident("old", priority="P2", state="Acknowledged", owner="ann"), sink)
    old.sync(T0)
    old.body["status"]["metrics"]["observed"].remove("response")
    before = value(sink, "incident_responses_total", priority="P2", result="met")
    assert "response" not in old.change(T0 + timedelta(minutes=5), state="Resolved").observations
    assert value(sink, "incident_responses_total", priority="P2", result="met") == before


def test_response_objectives_are_exposed_and_validated():
    sink = metrics.IncidentMetrics(CollectorRegistry(), version="test",
                                   response_objectives=config_module.parse_response_objectives({"P2": 0.99}))
    assert value(sink, "incident_response_objective_ratio", priority="P2") == 0.99
    assert value(sink, "incident_response_objective_ratio", priority="P4") == 0.95
    for priority in metrics.PRIORITIES:
        for result in metrics.RESPONSE_RESULTS:  # exposed at 0 from the start: the ratio is defined
            assert sink.registry.get_sample_value("incident_responses_total",
                                                  {"priority": priority, "result": result}) == 0
    for bad, words in (({"P5": 0.9}, "unknown priority"), ({"P2": 1}, "between 0 and 1"),
                       ({"P2": "95%"}, "between 0 and 1"), ([0.9], "mapping")):
        with pytest.raises(ValueError, match=words):
            config_module.parse_response_objectives(bad)


def test_first_contact_resolution_needs_no_escalation_and_no_reopen(sink):
    quiet = Stored(new_incident("quiet", priority="P3"), sink)
    quiet.sync(T0)
    quiet.change(T0 + timedelta(minutes=5), state="Resolved", owner="ann")
    assert "resolved-fcr" not in sum(quiet.seen, [])  # not before Closed: a reopen could still come
    quiet.change(T0 + timedelta(minutes=6), state="Closed")
    assert value(sink, "incidents_resolved_total", priority="P3", first_contact="true") == 1

    loud = Stored(new_incident("loud", priority="P1", service="pay"), sink)
    loud.sync(T0)
    outcome = loud.sync(T0 + timedelta(minutes=11))  # 5m deadline, 5m interval: levels 1 and 2
    assert outcome.breached and outcome.escalated_levels == [1, 2]
    loud.change(T0 + timedelta(minutes=12), state="Closed", owner="bob", review=REVIEW)
    assert value(sink, "incidents_resolved_total", priority="P1", first_contact="false") == 1
    assert value(sink, "incident_deadline_breaches_total", priority="P1") == 1
    assert value(sink, "incident_escalations_total", priority="P1", level="1") == 1
    assert value(sink, "incident_escalations_total", priority="P1", level="2") == 1
    # Acknowledged 12 minutes after detection.
    assert value(sink, "incident_time_to_acknowledge_seconds_sum", priority="P1", service="pay") == 720


def test_csat_given_after_closing_is_observed_once(sink):
    inc = Stored(new_incident(priority="P4", state="Closed", owner="ann"), sink)
    assert "csat" not in inc.sync(T0).observations
    assert inc.change(T0 + timedelta(days=2), csat={"score": 2.5, "responses": 3}).observations == ["csat"]
    assert inc.change(T0 + timedelta(days=3), csat={"score": 3.5, "responses": 9}).observations == []
    assert value(sink, "incident_csat_score_sum", priority="P4") == 2.5
    assert value(sink, "incident_csat_score_bucket", priority="P4", le="3.0") == 1
    assert value(sink, "incident_csat_score_bucket", priority="P4", le="2.0") == 0
    assert value(sink, "incident_csat_responses_total", priority="P4") == 3


def test_recurrence_is_counted_once_even_when_the_signal_is_written_after_opening(sink):
    inc = Stored(new_incident(priority="P3"), sink)
    inc.body["metadata"]["annotations"] = {"incidents.buttercream.io/source": "DetectionRule"}
    assert "recurrence" not in inc.sync(T0).observations
    # The detection engine's write, after the operator's first one:
    inc.body["status"]["signal"] = {"fingerprint": "abc", "previousIncident": "ns/older"}
    assert inc.sync(T0 + timedelta(seconds=2)).observations == ["recurrence"]
    assert inc.sync(T0 + timedelta(seconds=3)).observations == []
    assert value(sink, "incident_recurrences_total", priority="P3") == 1
    assert value(sink, "incidents_opened_total", priority="P3", service="unspecified",
                 source="DetectionRule") == 1


def test_a_restarted_process_observes_nothing_already_observed(sink):
    inc = Stored(new_incident(priority="P2", service="auth"), sink)
    inc.sync(T0)
    inc.change(T0 + timedelta(seconds=30), state="Acknowledged", owner="ann")
    # SIGKILL: the new process starts with empty collectors and the object as stored.
    restarted = metrics.IncidentMetrics(CollectorRegistry(), version="test")
    again = Stored(inc.body, restarted)
    assert again.sync(T0 + timedelta(minutes=1)).observations == []
    assert value(restarted, "incident_time_to_acknowledge_seconds_count", priority="P2", service="auth") == 0
    assert again.change(T0 + timedelta(minutes=2), state="Resolved").observations == ["mitigate", "resolve"]
    assert value(restarted, "incident_time_to_resolve_seconds_count", priority="P2", service="auth") == 1
    assert value(restarted, "incident_time_to_detect_seconds_count", priority="P2", service="auth") == 0
    assert value(restarted, "incidents_opened_total", priority="P2", service="auth", source="Manual") == 0


def test_negative_durations_are_clamped_and_missing_stamps_skipped():
    status = {"startedAt": "2026-03-02T10:00:05Z", "detectedAt": "2026-03-02T10:00:00Z"}
    assert metrics.duration_between(status, "detectedAt", "startedAt") == 0.0
    assert metrics.duration_between(status, "resolvedAt", "startedAt") is None


# -- births: a new label set is exposed at 0 before its first increment -----------------------------------

def test_first_increment_of_a_new_series_waits_until_it_was_exposed_at_zero():
    clock = Clock()
    sink = metrics.IncidentMetrics(CollectorRegistry(), new_series_delay=30, clock=clock, version="test")

    class Outcome:
        observations = ["opened"]
        breached = False
        escalated_levels = []
        reopened = False

    body = {"spec": {"service": "auth"}, "status": {"priority": "P2", "source": "Manual"}}
    sink.record_outcome(body, Outcome())
    labels = dict(priority="P2", service="auth", source="Manual")
    assert sink.registry.get_sample_value("incidents_opened_total", labels) == 0.0  # exposed, at 0
    assert sink.pending == 1
    clock.now += 29
    assert sink.flush() == 0
    clock.now += 1
    assert sink.flush() == 1
    assert value(sink, "incidents_opened_total", **labels) == 1
    # Once born, increments are immediate.
    sink.record_outcome(body, Outcome())
    assert value(sink, "incidents_opened_total", **labels) == 2

    # Bounded label sets are born with the process: after the delay they count at once.
    class Breach(Outcome):
        observations = []
        breached = True

    sink.record_outcome(body, Breach())
    assert value(sink, "incident_deadline_breaches_total", priority="P2") == 1


def test_bounded_label_sets_are_exposed_at_zero_from_the_start(sink):
    text = generate_latest(sink.registry).decode()
    for priority in metrics.PRIORITIES:
        assert f'incident_deadline_breaches_total{{priority="{priority}"}} 0.0' in text
        assert f'incidents_resolved_total{{first_contact="true",priority="{priority}"}} 0.0' in text
        assert f'incident_escalations_total{{level="3",priority="{priority}"}} 0.0' in text
    assert 'detection_rule_evaluation_errors_total{reason="Timeout"} 0.0' in text
    assert 'incident_operator_build_info{version="test"} 1.0' in text
    assert "detection_rule_last_success_timestamp_seconds" not in text


# -- scrape-time gauges from the incident book --------------------------------------------------------------

def test_index_entry_reads_priority_state_items_and_deadline():
    key, entry = metrics.gauge_entry(
        {"impact": "High", "urgency": "High", "state": "Triggered", "review": {}},
        {"openActionItems": 2, "responseDeadline": "2026-03-02T10:05:00.000Z"})
    assert key == ("P1", "Triggered")
    deadline = datetime(2026, 3, 2, 10, 5, tzinfo=timezone.utc).timestamp()
    assert entry == metrics.GaugeEntry(open_action_items=2, unacknowledged=True, response_deadline=deadline)
    key, entry = metrics.gauge_entry({"priority": "P3", "state": "Closed"}, None)
    assert key == ("P3", "Closed") and not entry.unacknowledged and entry.response_deadline is None


def test_gauges_are_computed_from_the_index_at_scrape_time():
    clock = Clock(T0.timestamp())
    index = {}
    sink = metrics.IncidentMetrics(CollectorRegistry(), book_source=lambda: index, clock=clock,
                                   version="test")
    deadline = (T0 + timedelta(minutes=5)).timestamp()
    index[("P1", "Triggered")] = [metrics.GaugeEntry(0, True, deadline), metrics.GaugeEntry(0, True, None)]
    index[("P1", "Acknowledged")] = [metrics.GaugeEntry(1, False, deadline)]
    index[("P2", "Resolved")] = [metrics.GaugeEntry(0, False, deadline)]
    index[("P2", "Closed")] = [metrics.GaugeEntry(3, False, deadline)]

    def gauge(name, **labels):
        return sink.registry.get_sample_value(name, labels)

    assert gauge("incidents_open", priority="P1", state="Triggered") == 2
    assert gauge("incidents_open", priority="P1", state="Acknowledged") == 1
    assert gauge("incidents_open", priority="P2", state="Resolved") == 1
    assert gauge("incidents_open", priority="P2", state="Closed") is None  # Closed is not open
    assert gauge("incidents_open", priority="P4", state="Triggered") == 0
    assert gauge("incident_action_items_open", priority="P2") == 3  # Closed incidents' items count
    assert gauge("incident_action_items_open", priority="P1") == 1
    assert gauge("incident_unacknowledged_breached", priority="P1") == 0
    clock.now = deadline
    assert gauge("incident_unacknowledged_breached", priority="P1") == 1
    del index[("P1", "Triggered")]
    assert gauge("incidents_open", priority="P1", state="Triggered") == 0


def test_no_index_yet_means_no_gauges_rather_than_zeros():
    sink = metrics.IncidentMetrics(CollectorRegistry(), book_source=lambda: None, version="test")
    assert sink.registry.get_sample_value("incidents_open", {"priority": "P1", "state": "Triggered"}) is None


# -- detection health API ----------------------------------------------------------------------------------

def test_detection_health_api(sink):
    sink.observe_rule_evaluation(0.2)
    sink.observe_rule_evaluation(1.5, "Timeout")
    sink.observe_rule_evaluation(0.1, "SomethingNew")
    assert value(sink, "detection_rule_evaluations_total") == 3
    assert value(sink, "detection_rule_evaluation_duration_seconds_count") == 3
    assert value(sink, "detection_rule_evaluation_duration_seconds_bucket", le="0.25") == 2
    assert value(sink, "detection_rule_evaluation_errors_total", reason="Timeout") == 1
    assert value(sink, "detection_rule_evaluation_errors_total", reason="Other") == 1
    assert sink.registry.get_sample_value("detection_rule_last_success_timestamp_seconds") is None
    sink.rule_succeeded(1000.0)
    sink.rule_succeeded(900.0)  # an older evaluation finishing late does not move it back
    assert sink.registry.get_sample_value("detection_rule_last_success_timestamp_seconds") == 1000.0


def test_configure_builds_a_fresh_served_registry_without_created_series():
    configured = metrics.configure(new_series_delay=0, process_collectors=False)
    configured.observe_rule_evaluation(0.5, None)
    configured.rule_succeeded(42.0)
    assert configured.registry.get_sample_value("detection_rule_evaluations_total") == 1
    assert configured.registry.get_sample_value("detection_rule_last_success_timestamp_seconds") == 42.0
    text = generate_latest(configured.registry).decode()
    assert "_created" not in text
    # No process-wide instance: a second one starts from zero.
    assert metrics.configure(new_series_delay=0, process_collectors=False).registry.get_sample_value(
        "detection_rule_evaluations_total") == 0
    assert not hasattr(metrics, "current") and not hasattr(metrics, "_current")
