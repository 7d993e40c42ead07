"""plan_evaluation (domain/detection/rules.py): one evaluation of a DetectionRule, pure, with a fixed clock.

A threshold rule (fires at >= 10) keeps the verdicts obvious; each test steps the plan as the engine
does, feeding the returned group states back in."""

from __future__ import annotations

from typing import Any

import pytest

from incident_operator.domain.detection import rules as dom

T0 = 1_700_000_000.0
NS, NAME = "support", "login-tickets"


def rule(**spec: Any) -> dom.RuleSpec:
    base: dict[str, Any] = {"query": "sum by (topic) (increase(tickets_total[5m]))",
                            "detector": {"type": "threshold", "threshold": {"value": 10}}}
    base.update(spec)
    return dom.parse_rule(NS, NAME, base)


def fp(labels: dict[str, str], r: dom.RuleSpec) -> str:
    return dom.fingerprint(NS, NAME, dom.group_of(r, labels))


class Engine:
    """Steps plan_evaluation like services/detection.py: group states carried over, incidents known."""

    def __init__(self, r: dom.RuleSpec):
        self.rule = r
        self.groups: list[dict[str, Any]] = []
        self.incidents: dict[str, dom.IncidentView] = {}

    def at(self, now: float, samples: list[tuple[dict[str, str], float]],
           histories: dict[str, list[tuple[float, float]]] | None = None) -> dom.Plan:
        plan = dom.plan_evaluation(self.rule, self.groups, samples, histories or {}, self.incidents, now)
        for action in plan.actions:
            if action.kind == "open":
                self.incidents[action.incident] = dom.IncidentView(action.incident, "Triggered", None)
        self.groups = plan.groups
        return plan

    def set_incident(self, name: str, state: str, resolved_at: float | None) -> None:
        self.incidents[name] = dom.IncidentView(name, state, resolved_at)


LOGIN = {"topic": "login"}


def kinds(plan: dom.Plan) -> list[str]:
    return [a.kind for a in plan.actions]


def test_a_new_spike_opens_one_incident_with_a_deterministic_name_and_its_estimated_start():
    r = rule()
    engine = Engine(r)
    plan = engine.at(T0, [(LOGIN, 25.0)], {fp(LOGIN, r): [(T0 - 60, 2.0)]})
    (action,) = plan.actions
    assert action.kind == "open"
    assert action.incident == dom.incident_name(NAME, fp(LOGIN, r), 1)
    assert action.started_at == T0  # the sample before was normal
    assert action.priority == "P3" and action.title == "Spike in login-tickets: topic=login"
    assert plan.firing == 1
    (group,) = plan.groups
    assert group["episodeState"]["phase"] == "Firing" and group["incident"] == action.incident
    assert group["peak"] == 25.0 and group["labels"] == LOGIN


def test_the_start_is_the_first_point_of_the_trailing_run_out_of_normal():
    points = [(T0 - 180, 2.0), (T0 - 120, 9.0), (T0 - 60, 8.0), (T0, 25.0)]
    assert dom.estimate_start(points, T0, normal=2.0, fire_level=25.0) == T0 - 120  # above 2 + 20% of 23
    assert dom.estimate_start([(T0 - 60, 2.0), (T0, 25.0)], T0, normal=2.0, fire_level=25.0) == T0
    # points after `now` are ignored
    assert dom.estimate_start([(T0 - 60, 9.0), (T0 + 60, 9.0)], T0 - 60, 2.0, 25.0) == T0 - 60


def test_a_continuing_spike_updates_and_never_opens_a_second_incident():
    engine = Engine(rule())
    engine.at(T0, [(LOGIN, 25.0)])
    plan = engine.at(T0 + 30, [(LOGIN, 40.0)])
    assert kinds(plan) == ["update"]
    assert plan.actions[0].peak == 40.0 and plan.groups[0]["peak"] == 40.0


def test_a_relapse_within_the_cooldown_continues_the_episode_and_after_it_opens_a_new_one():
    engine = Engine(rule(cooldown="10m"))
    first = engine.at(T0, [(LOGIN, 25.0)]).actions[0].incident
    assert kinds(engine.at(T0 + 30, [(LOGIN, 1.0)])) == []
    relapse = engine.at(T0 + 300, [(LOGIN, 30.0)])
    assert kinds(relapse) == ["update"] and relapse.actions[0].incident == first
    engine.at(T0 + 330, [(LOGIN, 1.0)])
    later = engine.at(T0 + 330 + 601, [(LOGIN, 30.0)])
    assert kinds(later) == ["open"]
    assert later.actions[0].incident == dom.incident_name(NAME, fp(LOGIN, rule()), 2)


def test_for_holds_the_incident_back_until_the_condition_has_held_long_enough():
    engine = Engine(rule(**{"for": "1m"}))
    assert kinds(engine.at(T0, [(LOGIN, 25.0)])) == []
    assert engine.groups[0]["episodeState"]["phase"] == "Pending"
    assert kinds(engine.at(T0 + 30, [(LOGIN, 25.0)])) == []
    assert kinds(engine.at(T0 + 60, [(LOGIN, 25.0)])) == ["open"]


def test_a_relapse_after_resolution_reopens_within_the_recovery_window():
    engine = Engine(rule(recoveryWindow="1h", cooldown="0s"))
    name = engine.at(T0, [(LOGIN, 25.0)]).actions[0].incident
    engine.at(T0 + 30, [(LOGIN, 1.0)])
    engine.set_incident(name, "Resolved", T0 + 60)
    plan = engine.at(T0 + 600, [(LOGIN, 25.0)])
    assert kinds(plan) == ["reopen"] and plan.actions[0].incident == name


def test_a_closed_incident_is_never_reopened_the_relapse_opens_a_linked_one():
    engine = Engine(rule(recoveryWindow="1h", cooldown="0s"))
    name = engine.at(T0, [(LOGIN, 25.0)]).actions[0].incident
    engine.at(T0 + 30, [(LOGIN, 1.0)])
    engine.set_incident(name, "Closed", T0 + 60)
    plan = engine.at(T0 + 600, [(LOGIN, 25.0)])
    (action,) = plan.actions
    assert action.kind == "open" and action.incident != name and action.previous_incident == name


def test_dry_run_records_what_it_would_open_and_updates_nothing():
    engine = Engine(rule(mode="DryRun"))
    assert kinds(engine.at(T0, [(LOGIN, 25.0)])) == ["dry-run"]
    assert kinds(engine.at(T0 + 30, [(LOGIN, 25.0)])) == []


def test_two_series_of_one_group_count_once_with_the_larger_value():
    r = rule(groupLabels=["topic"])
    plan = Engine(r).at(T0, [({"topic": "login", "pod": "a"}, 12.0), ({"topic": "login", "pod": "b"}, 30.0)])
    (action,) = plan.actions
    assert action.value == 30.0 and action.labels == LOGIN


def test_priority_bands_pick_the_highest_band_reached():
    r = rule(priority={"default": "P4", "bands": [{"minValue": 20, "priority": "P2"},
                                                   {"minValue": 50, "priority": "P1"}]})
    assert Engine(r).at(T0, [(LOGIN, 25.0)]).actions[0].priority == "P2"
    assert Engine(r).at(T0, [(LOGIN, 80.0)]).actions[0].priority == "P1"
    assert Engine(r).at(T0, [(LOGIN, 12.0)]).actions[0].priority == "P4"


def test_templates_render_in_the_sandbox_and_a_failing_one_falls_back():
    good = rule(incident={"title": "{{ labels.topic }} at {{ value | int }}", "team": "{{ labels.team }}"})
    action = Engine(good).at(T0, [(LOGIN, 25.0)]).actions[0]
    assert action.title == "login at 25" and action.team is None  # a missing label renders empty
    failing = rule(incident={"title": "{{ 1 / (value - 25) }}"})  # validates, fails only at the value 25
    assert Engine(failing).at(T0, [(LOGIN, 25.0)]).actions[0].title == "Spike in login-tickets: topic=login"


def test_a_group_without_a_sample_clears_and_is_kept_through_its_cooldown_only():
    engine = Engine(rule(cooldown="10m", recoveryWindow="0s"))
    name = engine.at(T0, [(LOGIN, 25.0)]).actions[0].incident
    engine.at(T0 + 30, [])
    assert engine.groups and engine.groups[0]["episodeState"]["phase"] == "Inactive"
    engine.set_incident(name, "Resolved", T0 + 40)
    engine.at(T0 + 700, [])
    assert engine.groups == []  # cooldown and recovery over, incident resolved: nothing left to track


def test_the_number_of_groups_is_bounded():
    plan = Engine(rule()).at(T0, [({"topic": f"t{i}"}, 25.0) for i in range(dom.MAX_GROUPS + 20)])
    assert len(plan.groups) == dom.MAX_GROUPS
    assert plan.firing == dom.MAX_GROUPS + 20  # every group was evaluated; only the record is bounded


@pytest.mark.parametrize("spec, message", [
    ({"query": ""}, "spec.query is empty"),
    ({"query": "sum(("}, "spec.query is not valid PromQL"),
    ({"query": "up", "interval": "soon"}, "spec.interval: invalid duration"),
    ({"query": "up", "interval": "1m", "detector": {"type": "baseline", "baseline": {"step": "30s"}}},
     "spec.detector.baseline.step (30s) must not be shorter than spec.interval (60s)"),
    ({"query": "up", "detector": {"type": "threshold", "threshold": {"value": 0}}},
     "spec.detector.threshold.value must be > 0"),
    ({"query": "up", "incident": {"title": "{% if %}"}},
     "spec.incident.title: template syntax error at line 1"),
    ({"query": "up", "incident": {"title": "{{ ''.__class__ }}"}},
     "spec.incident.title: template refused by the sandbox"),
])
def test_what_only_the_operator_can_judge_is_refused_with_the_field_named(spec, message):
    with pytest.raises(dom.InvalidRule) as error:
        dom.parse_rule(NS, NAME, spec)
    assert message in str(error.value)
