#!/usr/bin/env python3
"""Generates the Grafana dashboard and the Kubernetes manifests that carry it and the alert rules.

    python dashboards/generate.py          # writes the files below
    python dashboards/generate.py --check  # exits 1 when a committed file is out of date

Writes:
  dashboards/incident-operator.json          the dashboard (grafana-foundation-sdk), for import or
                                             for the Helm chart to template
  manifests/grafana-dashboard-configmap.yaml a ConfigMap with label grafana_dashboard: "1" (the
                                             Grafana sidecar loads it)
  manifests/prometheus-rules.yaml            alerts/incident-operator.rules.yaml as a PrometheusRule

Every query uses the ``datasource``, ``job``, ``priority`` and ``service`` template variables; no
datasource UID is written anywhere. Period panels aggregate with ``increase(...[$__range])``, i.e.
over the dashboard's time range, so they survive operator restarts (see docs/metrics.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import BigValueColorMode, BigValueGraphMode, VizOrientation
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DashboardCursorSync,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

REPO = Path(__file__).resolve().parents[1]
DASHBOARD_JSON = REPO / "dashboards" / "incident-operator.json"
CONFIGMAP = REPO / "manifests" / "grafana-dashboard-configmap.yaml"
RULES = REPO / "alerts" / "incident-operator.rules.yaml"
PROMETHEUS_RULE = REPO / "manifests" / "prometheus-rules.yaml"

UID = "incident-operator"  # the dashboard's own, stable for links; datasources come from $datasource
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
JOB = 'job=~"$job"'
PRIO = 'priority=~"$priority"'
SVC = 'service=~"$service"'
DURATIONS = (
    ("detect", "MTTD: time to detect",
     "detectedAt - startedAt: from when customer impact began (spec.startedAt, estimated by the "
     "detection rule, or the detection time when unknown) to detection."),
    ("acknowledge", "MTTA: time to acknowledge",
     "acknowledgedAt - detectedAt: from detection to the first acknowledgement."),
    ("mitigate", "Time to mitigate",
     "mitigatedAt - startedAt: from impact start to the first mitigation."),
    ("resolve", "MTTR: time to resolve",
     "MTTR = resolvedAt - startedAt: from impact start (not from detection) to the first "
     "resolution. A reopened incident is not measured again; see Reopens."),
)


def query(expr: str, legend: str = "__auto", ref: str = "A", instant: bool = True) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    return q.instant() if instant else q.range()


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(
        [Threshold(value=value, color=color) for value, color in steps])


def stat_panel(title: str, description: str, *queries: prometheus.Dataquery, unit: str = "short",
               decimals: int | None = None, width: int = 6, steps=((None, "green"),)) -> stat.Panel:
    panel = (stat.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit)
             .span(width).height(5).graph_mode(BigValueGraphMode.NONE).color_mode(BigValueColorMode.VALUE)
             .thresholds(thresholds(*steps)).no_value("0" if unit == "short" else "-"))
    if decimals is not None:
        panel = panel.decimals(decimals)
    for q in queries:
        panel = panel.with_target(q)
    return panel


def bar_panel(title: str, description: str, *queries: prometheus.Dataquery, unit: str = "short",
              width: int = 12, decimals: int | None = None) -> bargauge.Panel:
    panel = (bargauge.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit)
             .span(width).height(8).orientation(VizOrientation.HORIZONTAL).min(0)
             .thresholds(thresholds((None, "blue"))).no_value("no incidents in range"))
    if decimals is not None:
        panel = panel.decimals(decimals)
    for q in queries:
        panel = panel.with_target(q)
    return panel


def series_panel(title: str, description: str, *queries: prometheus.Dataquery, unit: str = "short",
                 width: int = 8) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit)
             .span(width).height(8).min(0))
    for q in queries:
        panel = panel.with_target(q)
    return panel


def duration_panel(name: str, title: str, formula: str) -> bargauge.Panel:
    metric = f"incident_time_to_{name}_seconds"
    sel = f"{{{JOB}, {PRIO}, {SVC}}}"
    return bar_panel(
        f"{title} by priority",
        f"{formula} Mean, median (p50) and p90 over the dashboard's time range, of incidents that "
        "reached that point within the range (open incidents are not in it until they do). "
        "Percentiles are interpolated within histogram buckets.",
        query(f"sum by (priority) (increase({metric}_sum{sel}[$__range]))"
              f" / (sum by (priority) (increase({metric}_count{sel}[$__range])) > 0)",
              "{{priority}} mean", "A"),
        query(f"histogram_quantile(0.5, sum by (le, priority) (increase({metric}_bucket{sel}[$__range])))"
              " >= 0", "{{priority}} p50", "B"),
        query(f"histogram_quantile(0.9, sum by (le, priority) (increase({metric}_bucket{sel}[$__range])))"
              " >= 0", "{{priority}} p90", "C"),
        unit="s", width=12, decimals=0)


def build() -> dashboard.Dashboard:
    p = f"{{{JOB}, {PRIO}}}"
    ps = f"{{{JOB}, {PRIO}, {SVC}}}"
    j = f"{{{JOB}}}"
    board = (
        dashboard.Dashboard("Incident operator: response, quality and detection")
        .uid(UID)
        .description("Incidents handled by incident-operator: MTTD, MTTA, MTTR, open incidents, deadline "
                     "breaches, first-contact resolution, recurrence, CSAT and detection health. "
                     "Formulas: docs/metrics.md.")
        .tags(["incidents", "support", "incident-operator"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-30d", "now")
        .refresh("1m")
        .timezone("browser")
        .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(dashboard.QueryVariable("job").label("Job").datasource(DATASOURCE)
                       .query("label_values(incident_operator_build_info, job)")
                       .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
                       .multi(True).include_all(True).all_value(".+")
                       .current(VariableOption(selected=True, text="All", value="$__all")))
        .with_variable(dashboard.QueryVariable("priority").label("Priority").datasource(DATASOURCE)
                       .query(f"label_values(incidents_open{j}, priority)")
                       .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
                       .multi(True).include_all(True).all_value(".*")
                       .current(VariableOption(selected=True, text="All", value="$__all")))
        .with_variable(dashboard.QueryVariable("service").label("Service").datasource(DATASOURCE)
                       .description("Only the duration and opened-incident panels are per service.")
                       .query(f"label_values(incidents_opened_total{j}, service)")
                       .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
                       .multi(True).include_all(True).all_value(".*")
                       .current(VariableOption(selected=True, text="All", value="$__all")))
        .with_variable(dashboard.CustomVariable("slo_window").label("SLO period")
                       .description("The response SLO's period: the window of the SLI and the error budget.")
                       .values("28d,30d,7d")
                       .current(VariableOption(selected=True, text="28d", value="28d")))
    )

    board = board.with_row(dashboard.Row("Right now"))
    board = board.with_panel(stat_panel(
        "Open incidents",
        "Incidents not yet Resolved or Closed (from the cluster, rebuilt at operator start).",
        query(f'sum(incidents_open{{{JOB}, {PRIO}, state!="Resolved"}})'), width=4,
        steps=((None, "green"), (1, "orange"))))
    board = board.with_panel(stat_panel(
        "Unacknowledged past deadline",
        "Incidents still Triggered after their response deadline, by priority.",
        query(f"sum by (priority) (incident_unacknowledged_breached{p})", "{{priority}}"), width=6,
        steps=((None, "green"), (1, "red"))))
    board = board.with_panel(stat_panel(
        "Open review action items",
        "Post-incident review action items not done yet (Closed incidents included).",
        query(f"sum(incident_action_items_open{p})"), width=4, steps=((None, "green"), (10, "orange"))))
    board = board.with_panel(bar_panel(
        "Open incidents by priority and state",
        "Every incident that is not Closed; Resolved ones are watched "
        "for a relapse during the recovery window.",
        query(f"sum by (priority, state) (incidents_open{p}) > 0", "{{priority}} {{state}}"), width=10))
    board = board.with_panel(series_panel(
        "Open incidents over time", "Incidents not yet Resolved, by priority.",
        query(f'sum by (priority) (incidents_open{{{JOB}, {PRIO}, state!="Resolved"}})', "{{priority}}",
              instant=False), width=24))

    board = board.with_row(dashboard.Row("Response times (over the dashboard's time range)"))
    for name, title, formula in DURATIONS:
        board = board.with_panel(duration_panel(name, title, formula))

    board = board.with_row(dashboard.Row("Quality (over the dashboard's time range)"))
    board = board.with_panel(stat_panel(
        "Incidents opened", "Incidents opened, by how they were opened (status.source).",
        query(f"sum by (source) (increase(incidents_opened_total{ps}[$__range]))", "{{source}}"), decimals=0))
    board = board.with_panel(stat_panel(
        "Response deadline breaches", "Response deadlines that passed without acknowledgement, by priority. "
        "Breach rate = breaches / incidents opened.",
        query(f"sum by (priority) (increase(incident_deadline_breaches_total{p}[$__range]))",
              "{{priority}}", "A"),
        query(f"sum(increase(incident_deadline_breaches_total{p}[$__range]))"
              f" / sum(increase(incidents_opened_total{p}[$__range]))", "breach rate", "B"),
        decimals=2, steps=((None, "green"), (1, "orange"))))
    board = board.with_panel(stat_panel(
        "Escalations", "Escalation levels reached by unacknowledged incidents, by level.",
        query(f"sum by (level) (increase(incident_escalations_total{p}[$__range]))", "level {{level}}"),
        decimals=0))
    board = board.with_panel(stat_panel(
        "First-contact resolution",
        "FCR = incidents Closed with no escalation and no reopen / incidents Closed "
        "(judged at Closed, when it can no longer change).",
        query(f'sum(increase(incidents_resolved_total{{{JOB}, {PRIO}, first_contact="true"}}[$__range]))'
              f" / sum(increase(incidents_resolved_total{p}[$__range]))", "all", "A"),
        query(f'sum by (priority) (increase(incidents_resolved_total{{{JOB}, {PRIO}, first_contact="true"}}'
              f"[$__range])) / (sum by (priority) (increase(incidents_resolved_total{p}[$__range])) > 0)",
              "{{priority}}", "B"),
        unit="percentunit", decimals=0))
    board = board.with_panel(stat_panel(
        "Recurrence", "Recurrence rate = recurrences / incidents opened; a recurrence is an incident whose "
        "rule and group had an earlier incident (status.signal.previousIncident: the group fired again after "
        "the recovery window); reopens = resolved incidents that relapsed inside it.",
        query(f"sum(increase(incident_recurrences_total{p}[$__range]))"
              f" / sum(increase(incidents_opened_total{p}[$__range]))", "recurrence rate", "A"),
        query(f"sum(increase(incident_reopens_total{p}[$__range]))", "reopens", "B"),
        query(f"sum(increase(incident_recurrences_total{p}[$__range]))", "recurrences", "C"),
        decimals=2))
    board = board.with_panel(stat_panel(
        "CSAT", "Mean CSAT score (1-5) of the incidents Closed with a score (each incident weighs the same), "
        "and the survey responses behind them.",
        query(f"sum(increase(incident_csat_score_sum{p}[$__range]))"
              f" / sum(increase(incident_csat_score_count{p}[$__range]))", "mean score", "A"),
        query(f"sum(increase(incident_csat_responses_total{p}[$__range]))", "responses", "B"),
        decimals=1, steps=((None, "red"), (3, "orange"), (4, "green"))))

    board = board.with_row(dashboard.Row("Response SLOs (response deadlines met, over the SLO period)"))
    responses = f"incident_responses_total{p}"
    missed = f'incident_responses_total{{{JOB}, {PRIO}, result="missed"}}'
    budget = f"(1 - max by (priority) (incident_response_objective_ratio{p}))"

    def missed_ratio(window: str, fn: str = "increase") -> str:
        return (f"(sum by (priority) ({fn}({missed}[{window}]))"
                f" / (sum by (priority) ({fn}({responses}[{window}])) > 0))")

    board = board.with_panel(bar_panel(
        "Responses on time (SLI) and objective",
        "SLI = first acknowledgements within the priority's response deadline / responses decided, per "
        "priority, over the SLO period ($slo_window); a response is decided when it is acknowledged or "
        "when the deadline passes first. The objective is metrics.responseObjectives "
        "(incident_response_objective_ratio).",
        query(f'sum by (priority) (increase(incident_responses_total{{{JOB}, {PRIO}, result="met"}}'
              f"[$slo_window])) / (sum by (priority) (increase({responses}[$slo_window])) > 0)",
              "{{priority}} on time", "A"),
        query(f"max by (priority) (incident_response_objective_ratio{p})", "{{priority}} objective", "B"),
        unit="percentunit", width=8, decimals=1))
    board = board.with_panel(stat_panel(
        "Error budget remaining",
        "1 - (responses missed / responses) / (1 - objective), per priority, over the SLO period: 100% "
        "= no deadline missed, 0 = the budget is spent, below 0 = the SLO is not met.",
        query(f"1 - {missed_ratio('$slo_window')} / {budget}", "{{priority}}"),
        unit="percentunit", width=6, decimals=0, steps=((None, "red"), (0, "orange"), (0.25, "green"))))
    board = board.with_panel(series_panel(
        "Error budget burn rate",
        "Error ratio / error budget per priority over the last 1 h and 6 h: 1 spends the budget in "
        "exactly the SLO period. The alerts page at 14.4 (1 h, confirmed over 5 m) or 6 (6 h, over 30 m) "
        "and open a ticket at 3 (1 d, over 2 h) or 1 (3 d, over 6 h); see docs/metrics.md.",
        query(f"{missed_ratio('1h', 'rate')} / {budget}", "{{priority}} 1h", "A", instant=False),
        query(f"{missed_ratio('6h', 'rate')} / {budget}", "{{priority}} 6h", "B", instant=False),
        width=10))

    board = board.with_row(dashboard.Row("Detection and operator health"))
    board = board.with_panel(series_panel(
        "Rule evaluations", "DetectionRule evaluations per second, and failures by reason.",
        query(f"sum(rate(detection_rule_evaluations_total{j}[$__rate_interval]))", "evaluations", "A",
              instant=False),
        query(f"sum by (reason) (rate(detection_rule_evaluation_errors_total{j}[$__rate_interval]))",
              "errors: {{reason}}", "B", instant=False),
        unit="ops"))
    board = board.with_panel(series_panel(
        "Rule evaluation duration", "How long one DetectionRule evaluation takes (queries included).",
        query("histogram_quantile(0.5, sum by (le) (rate("
              f"detection_rule_evaluation_duration_seconds_bucket{j}[$__rate_interval])))", "p50", "A",
              instant=False),
        query("histogram_quantile(0.9, sum by (le) (rate("
              f"detection_rule_evaluation_duration_seconds_bucket{j}[$__rate_interval])))", "p90", "B",
              instant=False),
        unit="s"))
    board = board.with_panel(stat_panel(
        "Since last successful evaluation", "Time since any DetectionRule last evaluated successfully "
        "(no value until one has, after an operator start).",
        query(f"time() - max(detection_rule_last_success_timestamp_seconds{j})"), unit="s", width=4,
        steps=((None, "green"), (300, "orange"), (900, "red"))))
    board = board.with_panel(stat_panel(
        "Operator", "Scrape health of each operator instance (1 = up) and the running version.",
        query(f"up{j}", "{{instance}}", "A"),
        query(f"count by (version) (incident_operator_build_info{j})", "version {{version}}", "B"),
        width=4, steps=((None, "red"), (1, "green"))))
    model = board.build()
    for number, panel in enumerate(model.panels, start=1):
        panel.id_val = number  # stable, unique panel ids (links to a panel survive regeneration)
    return model


def dashboard_json() -> str:
    return JSONEncoder(sort_keys=True, indent=2).encode(build()) + "\n"


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings as ``|`` blocks, so the dashboard in the ConfigMap stays readable."""


_LiteralDumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def configmap_yaml(dashboard_text: str) -> str:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "incident-operator-dashboard",
            "labels": {"grafana_dashboard": "1", "app.kubernetes.io/name": "incident-operator"},
        },
        "data": {"incident-operator.json": dashboard_text},
    }
    return "# Generated by dashboards/generate.py from the dashboard; do not edit.\n" + yaml.dump(
        body, Dumper=_LiteralDumper, sort_keys=False, width=1 << 20)


def prometheus_rule_yaml(rules_text: str) -> str:
    body = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        # kube-prometheus-stack's Prometheus selects PrometheusRules by the label `release: <its Helm
        # release name>` (ruleSelector; "kube-prometheus-stack" when installed under that name).
        "metadata": {"name": "incident-operator", "labels": {"app.kubernetes.io/name": "incident-operator",
                                                             "release": "kube-prometheus-stack"}},
        "spec": {"groups": yaml.safe_load(rules_text)["groups"]},
    }
    return ("# Generated by dashboards/generate.py from alerts/incident-operator.rules.yaml; do not edit.\n"
            "# Picked up by kube-prometheus-stack installed as release \"kube-prometheus-stack\" (its\n"
            "# default ruleSelector matches `release: <release name>`); for another release name, change\n"
            "# the label:\n"
            "#   kubectl label --local -o yaml --overwrite -f manifests/prometheus-rules.yaml release=NAME\n"
            "# The chart does the same with prometheusRule.enabled and prometheusRule.labels.\n"
            + yaml.safe_dump(body, sort_keys=False, width=1 << 20))


def render() -> dict[Path, str]:
    text = dashboard_json()
    return {DASHBOARD_JSON: text, CONFIGMAP: configmap_yaml(text),
            PROMETHEUS_RULE: prometheus_rule_yaml(RULES.read_text())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail when a generated file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in render().items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path.relative_to(REPO))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    if stale:
        print("out of date (run python dashboards/generate.py): " + ", ".join(map(str, stale)),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
