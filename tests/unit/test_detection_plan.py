"""One evaluation of a DetectionRule (domain/detection/rules.py): when impact began, and recurrences.

Plain values only: samples as (epoch seconds, value), no clock, no Prometheus.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from incident_operator.names import rule_fingerprint, rule_incident_name
from incident_operator.domain.detection import rules as dom
from incident_operator.domain.detection.episodes import EpisodeState

NOW = 1_800_000_000.0
LABELS = {"topic": "login"}


def threshold_rule(**spec) -> dom.RuleSpec:
    body = {"query": 'sum by (topic) (increase(tickets_total[10s]))', "interval": "1s", "for": "0s",
            "cooldown": "3s", "recoveryWindow": "10m",
            "detector": {"type": "threshold", "threshold": {"value": 15}}}
    body.update(spec)
    return dom.parse_rule("ns", "login-spike", body)


def fp(rule: dom.RuleSpec) -> str:
    return rule_fingerprint(rule.namespace, rule.name, dom.group_of(rule, LABELS))


def epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def series(values: list[float], end: float, step: float) -> list[tuple[float, float]]:
    """``values`` at ``end - len*step`` ... ``end - step`` (how the engine's history query returns them)."""
    return [(end - (len(values) - i) * step, float(v)) for i, v in enumerate(values)]


def open_action(plan: dom.Plan) -> dom.Action:
    [action] = [a for a in plan.actions if a.kind == "open"]
    return action


def test_threshold_start_is_the_first_sample_that_left_normal_not_the_detection():
    rule = threshold_rule()
    # quiet around 1-2 tickets, then the spike ramps up 3 s before the rule sees 15
    quiet = [1, 2, 1, 1, 2, 1, 2, 1, 1, 2] * 2
    history = series(quiet + [8, 12, 14], NOW, 1.0)
    plan = dom.plan_evaluation(rule, [], [(LABELS, 17.0)], {fp(rule): history}, {}, NOW)
    action = open_action(plan)
    assert action.started_at == NOW - 3  # the sample at 8, not NOW (when 15 was crossed)
    assert epoch(plan.groups[0]["startedAt"]) == NOW - 3


def test_threshold_start_does_not_take_the_spikes_own_edge_for_normal():
    # The history's last point is already high: normal is what came before the condition held,
    # not the last sample (the defect that made startedAt equal detectedAt).
    rule = threshold_rule()
    history = series([0] * 25 + [6, 13], NOW, 1.0)
    action = open_action(dom.plan_evaluation(rule, [], [(LABELS, 15.0)], {fp(rule): history}, {}, NOW))
    assert action.started_at == NOW - 2


def test_an_earlier_separate_burst_is_not_taken_for_the_start():
    rule = threshold_rule()
    history = series([0] * 10 + [9, 10, 9] + [0] * 10 + [7, 11], NOW, 1.0)
    action = open_action(dom.plan_evaluation(rule, [], [(LABELS, 16.0)], {fp(rule): history}, {}, NOW))
    assert action.started_at == NOW - 2


def test_without_history_the_start_is_when_the_condition_first_held():
    rule = threshold_rule(**{"for": "5s"})
    state = EpisodeState(phase="Pending", pending_since=NOW - 6).to_dict()
    previous = [{"fingerprint": fp(rule), "labels": LABELS, "episodeState": state}]
    action = open_action(dom.plan_evaluation(rule, previous, [(LABELS, 20.0)], {}, {}, NOW))
    assert action.started_at == NOW - 6


def test_baseline_start_is_found_on_the_windowed_count_it_tests():
    baseline = {"step": "60s", "windowPoints": 3, "trailingPoints": 20, "seasonalDays": 0,
                "minReferencePoints": 8, "minCount": 5, "factor": 2, "upperFactor": 2,
                "shiftWindowPoints": 0, "dropWindowPoints": 0}
    rule = threshold_rule(interval="60s", detector={"type": "baseline", "baseline": baseline})
    quiet = [2, 3, 2, 2, 3, 2, 3, 2, 2, 3] * 3
    history = series(quiet + [20], NOW, 60.0)  # the burst begins at NOW - 60 (its 3-minute count: 25)
    plan = dom.plan_evaluation(rule, [], [(LABELS, 25.0)], {fp(rule): history}, {}, NOW)
    action = open_action(plan)
    assert action.verdict.component == "spike" and action.start_level.window == 3
    assert action.started_at == NOW - 60


def test_a_drop_starts_where_the_count_fell():
    baseline = {"step": "60s", "windowPoints": 1, "trailingPoints": 40, "seasonalDays": 0,
                "minReferencePoints": 8, "minCount": 1000, "shiftWindowPoints": 0,
                "dropWindowPoints": 3, "dropZ": 2, "minChange": 5, "minLogScale": 0.1}
    rule = threshold_rule(interval="60s", detector={"type": "baseline", "baseline": baseline})
    history = series([40, 42, 41, 39, 40, 41, 42, 40] * 6 + [0, 0], NOW, 60.0)
    plan = dom.plan_evaluation(rule, [], [(LABELS, 0.0)], {fp(rule): history}, {}, NOW)
    action = open_action(plan)
    assert action.verdict.component == "drop" and not action.start_level.rising
    assert action.started_at == NOW - 120


def test_start_level_is_a_fifth_of_the_way_to_the_firing_level_and_at_least_one_ticket():
    assert dom.start_level(0.0, 15.0).level == 3.0
    assert dom.start_level(10.0, 10.5).level == 10.5  # never past the level that fired
    assert dom.start_level(10.0, 12.0).level == 11.0  # one ticket, counts are integers
    falling = dom.start_level(40.0, 10.0)
    assert not falling.rising and falling.level == 34.0 and falling.beyond(20) and not falling.beyond(35)


def test_windowed_sums_skip_times_whose_window_has_a_gap():
    points = [(0.0, 1.0), (10.0, 2.0), (20.0, 3.0), (40.0, 5.0), (50.0, 6.0)]
    assert dom.windowed(points, 2, 10.0) == [(10.0, 3.0), (20.0, 5.0), (50.0, 11.0)]
    # a fine grid (1 s) summing samples one rule step (3 s) apart
    fine = [(float(t), float(t)) for t in range(10)]
    assert dom.windowed(fine, 2, 3.0, 1.0)[0] == (3.0, 3.0 + 0.0)


def test_a_coarse_start_is_refined_on_a_finer_grid():
    rule = threshold_rule(interval="30s")
    level = dom.start_level(1.0, 15.0)
    coarse = NOW - 60.0
    start, end, step = dom.refinement_window(rule, level, coarse)
    assert (start, end, step) == (coarse - 30.0, coarse, 1.0)
    # the first out-of-normal sample was 7 s after the last coarse point that was still normal
    fine = [(start + i, 1.0 if start + i < coarse - 23 else 9.0) for i in range(31)]
    assert dom.refine_start(rule, level, coarse, fine, step) == coarse - 23
    # the fine samples do not show it (a gap): the coarse estimate stands
    assert dom.refine_start(rule, level, coarse, [], step) == coarse
    # a rule stepping every second is already as fine
    assert dom.refinement_window(threshold_rule(), level, coarse) is None


def test_refinement_of_a_windowed_count_stays_within_the_point_budget():
    rule = threshold_rule(interval="300s")
    start, end, step = dom.refinement_window(rule, dom.StartLevel(10, 20, True, 60), NOW, max_points=10_000)
    assert (end - start) / step <= 10_000 and 300 / step == pytest.approx(round(300 / step))


# -- recurrences -------------------------------------------------------------------------------------

def test_a_spike_after_the_recovery_window_is_a_recurrence_linked_to_the_previous_incident():
    rule = threshold_rule()
    old = rule_incident_name(rule.name, fp(rule), 1)
    state = EpisodeState(phase="Inactive", episode=1, episode_start=NOW - 1000, opened_at=NOW - 998,
                         cleared_at=NOW - 900, resolved_at=NOW - 700).to_dict()
    previous = [{"fingerprint": fp(rule), "labels": LABELS, "incident": old, "episodeState": state}]
    incidents = {old: dom.IncidentView(name=old, state="Resolved", resolved_at=NOW - 700)}
    plan = dom.plan_evaluation(rule, previous, [(LABELS, 20.0)], {}, incidents, NOW)
    action = open_action(plan)
    assert action.incident == rule_incident_name(rule.name, fp(rule), 2)
    assert action.previous_incident == old
    assert dom.signal_status(rule, action, None, NOW)["previousIncident"] == old


def test_a_relapse_inside_the_recovery_window_reopens_and_is_no_recurrence():
    rule = threshold_rule()
    old = rule_incident_name(rule.name, fp(rule), 1)
    state = EpisodeState(phase="Inactive", episode=1, episode_start=NOW - 100, opened_at=NOW - 98,
                         cleared_at=NOW - 90, resolved_at=NOW - 60).to_dict()
    previous = [{"fingerprint": fp(rule), "labels": LABELS, "incident": old, "episodeState": state}]
    incidents = {old: dom.IncidentView(name=old, state="Resolved", resolved_at=NOW - 60)}
    plan = dom.plan_evaluation(rule, previous, [(LABELS, 20.0)], {}, incidents, NOW)
    assert [(a.kind, a.incident, a.previous_incident) for a in plan.actions] == [("reopen", old, None)]


def test_continuing_a_restarted_episode_count_links_the_latest_incident_or_joins_an_open_one():
    assert dom.continue_episode_count({"r-ab-1": "Closed", "r-ab-3": "Resolved", "r-ab-2": "Closed"}) \
        == (None, "r-ab-3", 4)
    # created before a crash, not yet in the rule's status: joined, never a second one
    assert dom.continue_episode_count({"r-ab-1": "Resolved", "r-ab-2": "Triggered"}) == ("r-ab-2", None, 2)
    assert dom.continue_episode_count({}) == (None, None, 1)


def test_later_incidents_are_listed_once_oldest_first_and_bounded():
    later = dom.with_later_incident(None, "r-ab-2")
    assert dom.with_later_incident(later, "r-ab-2") == ["r-ab-2"]
    for episode in range(3, 30):
        later = dom.with_later_incident(later, f"r-ab-{episode}")
    assert len(later) == dom.MAX_LATER_INCIDENTS and later[-1] == "r-ab-29" and later[0] == "r-ab-20"
