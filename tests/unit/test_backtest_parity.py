"""Acceptance: `incidentctl backtest --rule` does what the operator does.

One DetectionRule (with `detector.baseline.step` and the default cooldown) runs through both paths on
one series:
- the operator's: `plan_evaluation` stepped at every sample time with a fixed clock, fed the answers
  Prometheus would give for the series (instant value, history range, seasonal ranges, as
  services/detection.py asks for them), carrying the rule's group states from one evaluation to the
  next;
- the backtest's: the same series as CSV and the manifest as YAML through `backtest.main`.
Both must raise the same alarms (rows at which the group is Firing) and open the same incidents, at the
same timestamps.
"""

from __future__ import annotations

import bisect
import csv
import math
import random
from datetime import datetime, timezone
from pathlib import Path

import yaml

from incident_operator.cli import backtest
from incident_operator.domain.detection import rules as dom

START = int(datetime(2015, 3, 1, tzinfo=timezone.utc).timestamp())
STEP = 300
LOOKBACK = 300  # Prometheus' default lookback delta

MANIFEST = {
    "apiVersion": "incidents.buttercream.io/v1alpha1",
    "kind": "DetectionRule",
    "metadata": {"name": "login-tickets", "namespace": "support"},
    "spec": {
        "query": "sum(increase(support_tickets_created_total[5m]))",
        "interval": "5m",  # one evaluation per sample, as the backtest evaluates once per row
        "detector": {"type": "baseline", "baseline": {
            "step": "5m", "windowPoints": 1, "trailingPoints": 72, "seasonalDays": 1, "upperQuantile": 0.9,
            "seasonalHalfWidthPoints": 2, "minReferencePoints": 12, "minCount": 5,
            "shiftWindowPoints": 0, "dropWindowPoints": 0,
        }},
        # no cooldown: the default (30m) applies on both paths
    },
}


def series() -> list[tuple[int, float]]:
    rng = random.Random(7)
    values = [float(rng.choice([2, 3, 3, 4, 5])) for _ in range(400)]
    # a burst, a relapse 20 minutes after it clears (inside the 30m cooldown: same incident), and a
    # burst 3 hours later (a new incident)
    for i in (320, 321, 326, 327, 362, 363):
        values[i] = 60.0
    return [(START + STEP * i, v) for i, v in enumerate(values)]


class RecordedPrometheus:
    """Answers queries over the recorded series the way Prometheus does: the latest sample at or before
    each evaluation time, within the lookback delta."""

    def __init__(self, points: list[tuple[int, float]]):
        self.times = [t for t, _ in points]
        self.values = [v for _, v in points]

    def at(self, moment: float) -> float | None:
        index = bisect.bisect_right(self.times, moment) - 1
        if index < 0 or moment - self.times[index] > LOOKBACK:
            return None
        return self.values[index]

    def range(self, start: float, end: float, step: float) -> list[tuple[float, float]]:
        out, k = [], 0
        while start + k * step <= end:
            moment = start + k * step
            value = self.at(moment)
            if value is not None:
                out.append((moment, value))
            k += 1
        return out


def operator_path(rule: dom.RuleSpec, points: list[tuple[int, float]]) -> tuple[list[int], list[int]]:
    """Alarm times and incident-opening times of the operator, stepped over the recorded series."""
    prometheus = RecordedPrometheus(points)
    groups: list[dict] = []
    incidents: dict[str, dom.IncidentView] = {}
    alarms, opened = [], []
    step = rule.step_s
    for now, _ in points:
        value = prometheus.at(now)
        samples = [({}, value)] if value is not None else []
        fp = dom.fingerprint(rule.namespace, rule.name, dom.group_of(rule, {}))
        # services/detection.py: the history range, then one range per seasonal window
        histories = {fp: prometheus.range(now - rule.fetched_history_points * step, now - step / 2, step)}
        anchor = math.floor(now / step) * step
        seasonals = {fp: [[v for _, v in prometheus.range(anchor - w.lag_s - w.points_before * step,
                                                          anchor - w.lag_s + w.points_after * step, step)]
                          for w in rule.seasonal_windows]}
        plan = dom.plan_evaluation(rule, groups, samples, histories, incidents, float(now), seasonals)
        for action in plan.actions:
            if action.kind == "open":
                opened.append(now)
                incidents[action.incident] = dom.IncidentView(action.incident, "Triggered", None)
        groups = plan.groups
        if plan.firing:
            alarms.append(now)
    return alarms, opened


def backtest_path(tmp_path: Path, points: list[tuple[int, float]]) -> tuple[list[int], list[int]]:
    src, rule_file, out = tmp_path / "series.csv", tmp_path / "rule.yaml", tmp_path / "alarms.csv"
    with open(src, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "value"])
        writer.writerows((datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), f"{v:g}")
                         for t, v in points)
    rule_file.write_text(yaml.safe_dump(MANIFEST))
    argv = ["--rule", str(rule_file), "--series", str(src), "--out", str(out), "--details"]
    assert backtest.main(argv) == 0
    rows = list(csv.DictReader(out.open()))
    stamp = {row["timestamp"]: t for row, (t, _) in zip(rows, points, strict=True)}
    return ([stamp[r["timestamp"]] for r in rows if r["alarm"] == "1"],
            [stamp[r["timestamp"]] for r in rows if r["event"] == "open"])


def test_backtest_and_operator_raise_the_same_alarms_and_open_the_same_incidents(tmp_path):
    rule = dom.parse_rule("support", "login-tickets", MANIFEST["spec"])
    assert rule.history_step_s == STEP and rule.cooldown_s == 1800  # the fields the old parser got wrong
    points = series()

    operator_alarms, operator_opened = operator_path(rule, points)
    backtest_alarms, backtest_opened = backtest_path(tmp_path, points)

    assert backtest_alarms == operator_alarms
    assert backtest_opened == operator_opened
    # The series exercises what matters: three firing runs, of which the relapse inside the cooldown
    # continues the first incident, so two incidents.
    runs = 1 + sum(1 for a, b in zip(operator_alarms, operator_alarms[1:], strict=False) if b - a > STEP)
    assert runs == 3
    assert operator_opened == [START + STEP * 320, START + STEP * 362]
