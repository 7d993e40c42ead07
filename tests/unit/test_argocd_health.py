"""The chart's Argo CD health check, in Argo CD's health_test.yaml format, over objects captured from a
real API server (tests/integration/test_gitops_health.py captures them and runs the same check live)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.argocd_health import evaluate, run_health_tests

ARGOCD = Path(__file__).resolve().parents[2] / "charts" / "incident-operator" / "files" / "argocd"


def test_health_test_yaml_passes():
    results = run_health_tests(ARGOCD / "health.lua", ARGOCD / "health_test.yaml")
    assert len(results) >= 10
    assert {want["status"] for _, want, _ in results} == {"Healthy", "Degraded", "Progressing"}
    assert [(path, want, got) for path, want, got in results if want != got] == []


def test_argo_cd_values_carry_the_same_script_for_every_kind():
    cm = yaml.safe_load((ARGOCD / "argo-cd-values.yaml").read_text())["configs"]["cm"]
    script = (ARGOCD / "health.lua").read_text()
    assert cm == {
        f"resource.customizations.health.incidents.buttercream.io_{kind}": script
        for kind in ("Incident", "DetectionRule", "EscalationPolicy")
    }


FIELDS = ("type", "status", "reason", "message")


def _obj(generation=1, observed=1, *conditions):
    return {
        "metadata": {"generation": generation},
        "status": {
            "observedGeneration": observed,
            "conditions": [dict(zip(FIELDS, c, strict=True)) for c in conditions],
        },
    }


def test_precedence_follows_kstatus():
    script = (ARGOCD / "health.lua").read_text()
    ready = ("Ready", "True", "Evaluating", "ok")
    assert evaluate(script, _obj(2, 1, ready)) == {
        "status": "Progressing",
        "message": "Waiting for the operator to observe generation 2",
    }
    assert evaluate(script, {"metadata": {"generation": 1}})["status"] == "Progressing"
    assert evaluate(script, _obj(1, 1, ready, ("Stalled", "True", "Invalid", "bad")))["status"] == "Degraded"
    assert evaluate(
        script,
        _obj(
            1,
            1,
            ("Ready", "False", "PrometheusUnavailable", "x"),
            ("Degraded", "True", "PrometheusUnavailable", "down"),
            ("Reconciling", "True", "PrometheusUnavailable", "retrying"),
        ),
    ) == {"status": "Degraded", "message": "PrometheusUnavailable: down"}
    assert evaluate(script, _obj(1, 1, ready, ("Reconciling", "True", "Pending", "soon"))) == {
        "status": "Progressing",
        "message": "Pending: soon",
    }
    assert evaluate(script, _obj(1, 1, ready, ("Stalled", "False", "NotStalled", ""))) == {
        "status": "Healthy",
        "message": "ok",
    }
    deleting = _obj(1, 1, ready)
    deleting["metadata"]["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    assert evaluate(script, deleting)["status"] == "Progressing"
