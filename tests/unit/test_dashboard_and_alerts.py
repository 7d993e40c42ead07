"""The generated dashboard and manifests are current and sound; the alert rules pass promtool."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from incident_operator import metrics

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "alerts"


def generator():
    spec = importlib.util.spec_from_file_location("dashboard_generator", REPO / "dashboards" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboard() -> dict:
    return json.loads((REPO / "dashboards" / "incident-operator.json").read_text())


def panel_exprs(board: dict) -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"])
            for panel in board["panels"] for target in panel.get("targets") or []]


def substitute(expr: str) -> str:
    for name, value in (("$__rate_interval", "1m"), ("$__range", "1d"), ("$job", ".+"), ("$priority", ".*"),
                        ("$service", ".*"), ("$slo_window", "28d")):
        expr = expr.replace(name, value)
    return expr


def exposed_families() -> set[str]:
    sink = metrics.IncidentMetrics(CollectorRegistry(), book_source=lambda: {}, version="test")
    sink.rule_succeeded(1.0)
    text = generate_latest(sink.registry).decode()
    return set(re.findall(r"^# TYPE (\S+) ", text, flags=re.M)) | {"up"}


def referenced_metrics(expr: str) -> set[str]:
    names = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr))
    names -= {"by", "on", "without"}
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in names}  # histogram series -> family


def test_committed_dashboard_and_manifests_are_what_the_script_generates():
    for path, text in generator().render().items():
        assert path.exists(), f"{path.relative_to(REPO)} missing: run python dashboards/generate.py"
        assert path.read_text() == text, (
            f"{path.relative_to(REPO)} is stale: run python dashboards/generate.py")


def test_dashboard_uses_the_datasource_variable_and_no_datasource_uid():
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    text = json.dumps(board)
    uids = set(re.findall(r'"uid": "([^"]*)"', text))
    assert uids == {"${datasource}", board["uid"]}
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])


def test_every_panel_query_parses_filters_by_job_and_reads_real_metrics():
    families = exposed_families()
    titles = set()
    for title, expr in panel_exprs(dashboard()):
        titles.add(title)
        assert 'job=~"$job"' in expr, (title, expr)
        promql_parser.parse(substitute(expr))
        unknown = {m for m in referenced_metrics(expr) if m not in families}
        assert not unknown, (title, unknown)
    wanted = {"MTTD", "MTTA", "MTTR", "Open incidents", "breaches", "First-contact", "Recurrence", "CSAT",
              "evaluation", "Operator"}
    assert all(any(word in title for title in titles) for word in wanted), titles


def test_duration_panels_show_p50_and_p90_by_priority():
    for panel in dashboard()["panels"]:
        if panel["title"].startswith(("MTTD", "MTTA", "MTTR", "Time to mitigate")):
            exprs = [t["expr"] for t in panel["targets"]]
            assert any(e.startswith("histogram_quantile(0.5, sum by (le, priority)") for e in exprs)
            assert any(e.startswith("histogram_quantile(0.9, sum by (le, priority)") for e in exprs)
            assert "MTTR" not in panel["title"] or "resolvedAt - startedAt" in panel["description"]


def test_configmap_carries_the_dashboard_for_the_grafana_sidecar():
    configmap = yaml.safe_load((REPO / "manifests" / "grafana-dashboard-configmap.yaml").read_text())
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["incident-operator.json"]) == dashboard()


def test_prometheus_rule_manifest_has_the_rule_file_groups():
    rules = yaml.safe_load((ALERTS / "incident-operator.rules.yaml").read_text())
    manifest = yaml.safe_load((REPO / "manifests" / "prometheus-rules.yaml").read_text())
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["spec"]["groups"] == rules["groups"]
    # kube-prometheus-stack's default ruleSelector is `release: <its release name>`.
    assert manifest["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    families = exposed_families()
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert not {m for m in referenced_metrics(rule["expr"]) if m not in families}, rule["alert"]


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is not installed: `make deps` installs Debian's prometheus package"
    return path


def test_alert_rules_pass_promtool_check():
    result = subprocess.run([promtool(), "check", "rules", "incident-operator.rules.yaml"], cwd=ALERTS,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_promtool_unit_tests():
    result = subprocess.run([promtool(), "test", "rules", "tests.yaml"], cwd=ALERTS,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("alert", ["IncidentP1UnacknowledgedPastDeadline", "IncidentOperatorDown",
                                   "IncidentOperatorAbsent", "IncidentDetectionEvaluationsFailing",
                                   "IncidentDetectionStale", "IncidentDeadlineBreachRateHigh",
                                   "IncidentResponseSLOBurnRateCritical", "IncidentResponseSLOBurnRateHigh"])
def test_every_alert_has_a_promtool_test_that_fires_it(alert):
    tests = yaml.safe_load((ALERTS / "tests.yaml").read_text())["tests"]
    firing = [case for test in tests for case in test.get("alert_rule_test") or []
              if case["alertname"] == alert and case["exp_alerts"]]
    assert firing, f"no promtool test expects {alert} to fire"
