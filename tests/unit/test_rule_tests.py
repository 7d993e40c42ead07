"""incidentctl test: promtool-style DetectionRule unit tests, replayed through the operator's code."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from incident_operator import names
from incident_operator.cli import backtest, incidentctl
from incident_operator.gitops.ruletest import START, expand_values, load_tests, parse_series, run_test

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"


def rule_file(tmp_path: Path, name: str = "spike", **spec) -> Path:
    body = {
        "query": 'sum by (topic) (increase(support_tickets_created_total[10m]))',
        "interval": "1m",
        "for": "0s",
        "cooldown": "10m",
        "recoveryWindow": "30m",
        "detector": {"type": "threshold", "threshold": {"value": 15}},
        "priority": {"default": "P3", "bands": [{"minValue": 50, "priority": "P1"}, {"minValue": 25, "priority": "P2"}]},
        "incident": {"title": "{{ labels.topic }}: {{ value | int }}"},
    }
    body.update(spec)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "incidents.buttercream.io/v1alpha1", "kind": "DetectionRule",
                                    "metadata": {"name": name}, "spec": body}))
    return path


def write_tests(tmp_path: Path, tests: str, rules: str = "spike.yaml") -> Path:
    path = tmp_path / "rules_test.yaml"
    path.write_text(f"rule_files: [{rules}]\ntests:\n" + textwrap.indent(textwrap.dedent(tests), "  "))
    return path


def run(*argv) -> int:
    return incidentctl.main(["test", *map(str, argv)])


def test_the_shipped_examples_pass(capsys):
    files = sorted(EXAMPLES.glob("*_test.yaml"))
    assert [f.name for f in files] == ["detectionrule-baseline_test.yaml", "detectionrule-login_test.yaml"]
    assert run(*files) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == 7 and out.strip().endswith("7 passed, 0 failed")


@pytest.mark.parametrize("text, values", [
    ("1 2 3", [1, 2, 3]),
    ("0+10x3", [0, 10, 20, 30]),
    ("5-1x2", [5, 4, 3]),
    ("7x2", [7, 7, 7]),
    ("_ 1 _x2 stale", [None, 1, None, None, None]),
    ("1.5e1 -2", [15, -2]),
])
def test_expanding_notation_is_promtools(text, values):
    assert expand_values(text) == values


def test_series_are_label_sets_and_the_metric_name_is_dropped():
    assert parse_series('support_tickets_created_total{topic="login", region="eu"}') == {"topic": "login",
                                                                                         "region": "eu"}
    assert parse_series('{topic="login"}') == {"topic": "login"}
    assert parse_series("{}") == {}
    with pytest.raises(ValueError, match="only = matchers"):
        parse_series('{topic=~"log.*"}')


def test_failures_say_what_differs_at_which_time(tmp_path, capsys):
    rule_file(tmp_path)
    path = write_tests(tmp_path, """
        - name: wrong on purpose
          input_series:
            - series: '{topic="login"}'
              values: "2x2 20 30 2x3"
            - series: '{topic="billing"}'
              values: "2x2 40 2x4"
          expected_incidents:
            - at: 2m
              incidents: []
            - at: 3m
              labels: {topic: login}
              priority: P1
            - at: 5m
              labels: {topic: api}
    """)
    assert run(path) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "0 passed, 1 failed" in out
    lines = [line.strip() for line in out.splitlines() if line.startswith("        ")]
    assert lines[0].startswith("at 3m: incident {topic=\"login\"} (spike-") and lines[0].endswith(
        "priority is 'P3', expected 'P1'")
    assert lines[1].startswith("at 3m: unexpected incident {topic=\"billing\"} spike-")
    assert "priority=P2" in lines[1]
    assert lines[2].startswith("at 5m: expected an incident for {topic=\"api\"}, none was opened")
    assert any(line.startswith("at 5m: unexpected incident {topic=\"login\"}") for line in lines)
    assert len(lines) == 5  # login and billing are unexpected at 5m


def test_malformed_files_are_reported_with_their_line(tmp_path, capsys):
    rule_file(tmp_path)
    path = write_tests(tmp_path, """
        - name: typo
          input_series:
            - series: '{topic="login"}'
              values: "1 2 three"
          expected_incidents:
            - at: 1m
              incidents: []
    """)
    assert run(path) == 2
    err = capsys.readouterr().err
    assert f"incidentctl test: error: {path}:6: bad value 'three'" in err

    missing = write_tests(tmp_path, """
        - input_series: [{series: '{a="b"}', values: "1"}]
          expected_incidents: [{at: 0s, incidents: []}]
    """, rules="nope.yaml")
    assert run(missing) == 2
    assert f"{missing}:1: rule file 'nope.yaml' not found" in capsys.readouterr().err


def test_replay_is_the_operators_evaluation(tmp_path):
    """Same incident identity as the engine, and the same firing as the backtest's detector + step replay."""
    rule_file(tmp_path, **{"for": "2m"})
    values = "2x5 16 18 20 22 3 3 17 19 30 2x5"
    [test] = load_tests(write_tests(tmp_path, f"""
        - input_series: [{{series: '{{topic="login"}}', values: "{values}"}}]
          expected_incidents: [{{at: 0s, incidents: []}}]
    """))
    result = run_test(test)
    rows = result.replay.trace
    firing = [round((r.at - START) / 60) for r in rows if r.phase == "Firing"]

    detector = test.rule.detector
    numbers = expand_values(values)
    times = [START + 60 * i for i in range(len(numbers))]
    replayed = backtest.replay(times, numbers, detector, for_s=120, cooldown_s=600)
    assert firing == [i for i, row in enumerate(replayed) if row.alarm] == [8, 9, 14]

    [incident] = result.replay.snapshots[-1].values()
    fp = names.rule_fingerprint("default", "spike", {"topic": "login"})
    assert incident.name == names.rule_incident_name("spike", fp, 1)  # the first episode of the group
    assert incident.started_at == START + 6 * 60 and incident.opened_at == START + 8 * 60
    assert incident.peak == 30 and incident.priority == "P2"  # raised when the relapse (in cooldown) peaked


def test_baseline_rule_warms_up_then_fires_on_a_burst(tmp_path):
    rule_file(tmp_path, name="base", query="sum by (topic) (increase(support_tickets_created_total[5m]))",
              interval="5m", detector={"type": "baseline"},
              incident={"title": "{{ labels.topic }}: {{ value | int }} vs {{ baseline | int }}"})
    path = write_tests(tmp_path, """
        - name: a burst during warm-up is not judged
          input_series: [{series: '{topic="billing"}', values: "10x20 1000x3 10x10"}]
          expected_incidents: [{at: 2h, incidents: []}]
        - name: after warm-up (72 reference windows) the burst opens an incident
          input_series: [{series: '{topic="billing"}', values: "10x90 1000x3 10x10"}]
          expected_incidents:
            - at: 7h30m
              incidents: []
            - at: 7h35m           # the 30-minute count: 1000 + 5 x 10, against a baseline of 6 x 10
              labels: {topic: billing}
              title: "billing: 1050 vs 60"
              priority: P1            # the helper's bands: 50+ is P1
    """, rules="base.yaml")
    assert run(path) == 0


def test_dry_run_rules_record_would_be_incidents_and_groups_follow_group_labels(tmp_path):
    rule_file(tmp_path, mode="DryRun", groupLabels=["topic"],
              query="sum by (topic, region) (increase(support_tickets_created_total[10m]))")
    path = write_tests(tmp_path, """
        - input_series:
            - series: '{topic="login", region="eu"}'
              values: "2 20 2"
            - series: '{topic="login", region="us"}'
              values: "2 30 2"
          expected_incidents:
            - at: 1m
              labels: {topic: login}
              dry_run: true
              value: 30
    """)
    assert run(path) == 0


def test_a_closed_incident_is_never_reopened_a_relapse_opens_a_new_one(tmp_path):
    rule_file(tmp_path)
    path = write_tests(tmp_path, """
        - input_series: [{series: '{topic="login"}', values: "20x1 2x2 20x1"}]
          incident_changes:
            - {at: 3m, labels: {topic: login}, state: Closed}
          expected_incidents:
            - at: 6m
              incidents:
                - {labels: {topic: login}, state: Closed}
                - {labels: {topic: login}, state: Triggered}
    """)
    assert run(path) == 0


def test_a_person_setting_the_priority_stops_the_rule_raising_it(tmp_path):
    rule_file(tmp_path)
    path = write_tests(tmp_path, """
        - input_series: [{series: '{topic="login"}', values: "20 20 60 60"}]
          incident_changes:
            - {at: 1m, labels: {topic: login}, priority: P4}
          expected_incidents:
            - {at: 0s, labels: {topic: login}, priority: P3}
            - {at: 3m, labels: {topic: login}, priority: P4, peak: 60}
    """)
    assert run(path) == 0
