"""GitOps tools read the operator's conditions right, on objects read back from the real API server.

- kstatus (sigs.k8s.io/cli-utils; what Flux's `--wait`, kpt and cli-utils appliers use), through the
  small Go program in tests/kstatus: a fresh object (before the operator has observed it) is
  InProgress, an Invalid one Failed, a healthy one Current.
- Argo CD, through the chart's health.lua (charts/incident-operator/files/argocd) in Argo CD's own
  health_test.yaml format: Progressing, Degraded, Healthy for the same objects.

INCIDENT_CAPTURE_ARGOCD_TESTDATA=1 also writes the captured objects (trimmed of server noise) and
their health_test.yaml into the chart, where tests/unit/test_argocd_health.py runs them offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.support.argocd_health import evaluate, run_health_tests
from tests.support.kubectl import GROUP, VERSION, condition, incident
from tools.devenv.processes import refused_port, wait_until

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "charts" / "incident-operator" / "files" / "argocd"
HEALTH_LUA = ARGOCD / "health.lua"


def kstatus_binary() -> str:
    return subprocess.run(
        ["bash", str(REPO / "tests" / "kstatus" / "build.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()


def kstatus(objects: dict[str, dict], directory: Path) -> dict[str, dict]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for case, obj in objects.items():
        path = directory / f"{case}.json"
        path.write_text(json.dumps(obj))
        paths.append(str(path))
    out = subprocess.run([kstatus_binary(), *paths], check=True, capture_output=True, text=True).stdout
    return {Path(line["file"]).stem: line for line in map(json.loads, out.splitlines())}


@pytest.fixture
def dead_port():
    """A loopback port that refuses connections for the whole test (a Prometheus that is down)."""
    with refused_port() as port:
        yield port


def rule(name: str, query: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DetectionRule",
        "metadata": {"name": name},
        "spec": {
            "query": query,
            "interval": "2s",
            "detector": {"type": "threshold", "threshold": {"value": 15}},
            "incident": {"title": "Spike of {{ labels.topic }} tickets"},
        },
    }


def policy(name: str, secret: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EscalationPolicy",
        "metadata": {"name": name},
        "spec": {
            "levels": [
                {
                    "name": "on-call",
                    "channels": [{"name": "hook", "secretRef": {"name": secret, "key": "url"}}],
                }
            ]
        },
    }


def trimmed(obj: dict) -> dict:
    """The object as a manifest reader sees it, without the server's bookkeeping."""
    meta = {
        k: v
        for k, v in obj["metadata"].items()
        if k in ("name", "namespace", "generation", "labels", "deletionTimestamp")
    }
    meta["namespace"] = "support"
    return {**obj, "metadata": meta}


def test_kstatus_and_argocd_read_fresh_invalid_and_healthy_objects(
    kubectl, start_operator, prometheus, exporter, dead_port, tmp_path
):
    topic = "gitops-" + uuid.uuid4().hex[:4]
    exporter.set_rate(topic, 0.0)
    manifests = {
        "detectionrule-healthy": rule(
            "healthy",
            f'sum by (topic) (increase(support_tickets_created_total{{target="{exporter.target}",'
            f'topic="{topic}"}}[10s]))',
        ),
        # PromQL the API server cannot judge, the operator's parser refuses.
        "detectionrule-invalid": rule(
            "invalid", "sum by (topic) (increase(support_tickets_created_total[10s])"
        ),
        "incident-healthy": incident("healthy", priority="P3"),
        # A start in the future: only the operator can judge it (the API server has no clock in CEL).
        "incident-invalid": incident("invalid", priority="P3", startedAt="2099-01-01T00:00:00Z"),
        "escalationpolicy-unusable": policy("unusable", "no-such-secret"),
        # A Prometheus nobody answers at: retried at every interval, so InProgress, not Failed.
        "detectionrule-unreachable": {
            **rule("unreachable", "sum(up)"),
            "spec": {
                **rule("unreachable", "sum(up)")["spec"],
                "prometheus": {"url": f"http://127.0.0.1:{dead_port}"},
            },
        },
    }
    kinds = {"detectionrule": "detectionrule", "incident": "incident", "escalationpolicy": "escalationpolicy"}
    for manifest in manifests.values():
        kubectl.apply(manifest)

    def read(case: str) -> dict:
        return kubectl.get(kinds[case.split("-")[0]], manifests[case]["metadata"]["name"])

    # Before the operator runs: the API server's default observedGeneration 0 says "not observed yet".
    fresh = {f"{case}-fresh": read(case) for case in manifests}
    for obj in fresh.values():
        assert obj["status"] == {"observedGeneration": 0}, obj.get("status")
        assert obj["metadata"]["generation"] == 1

    # The unreachable rule's own URL is allow-listed (docs/tenant-limits.md), so it is tried and fails.
    start_operator({"prometheus": {"url": prometheus.url},
                    "detection": {"allowedPrometheusURLs": [f"http://127.0.0.1:{dead_port}"]}})

    def settled(case: str, reason: str):
        obj = read(case)
        ready = condition(obj, "Ready")
        status = obj.get("status") or {}
        return (
            obj
            if (
                status.get("observedGeneration") == obj["metadata"]["generation"]
                and ready
                and ready["reason"] == reason
            )
            else None
        )

    expected_ready = {
        "detectionrule-healthy": "Evaluating",
        "detectionrule-invalid": "Invalid",
        "incident-healthy": "OnTrack",
        "incident-invalid": "Invalid",
        "escalationpolicy-unusable": "ChannelsUnusable",
        "detectionrule-unreachable": "PrometheusUnavailable",
    }
    observed = {
        case: wait_until(
            lambda case=case, reason=reason: settled(case, reason), 30, what=f"{case} Ready={reason}"
        )
        for case, reason in expected_ready.items()
    }

    # The conditions themselves, as the CRDs document them.
    for case in ("detectionrule-invalid", "incident-invalid", "escalationpolicy-unusable"):
        stalled = condition(observed[case], "Stalled")
        assert stalled["status"] == "True" and stalled["reason"] == expected_ready[case], stalled
        assert stalled["observedGeneration"] == 1
        assert condition(observed[case], "Reconciling")["status"] == "False"
    for case in ("detectionrule-healthy", "incident-healthy"):
        assert condition(observed[case], "Stalled")["status"] == "False"
        assert condition(observed[case], "Reconciling")["status"] == "False"
    retrying = condition(observed["detectionrule-unreachable"], "Reconciling")
    assert retrying["status"] == "True" and retrying["reason"] == "PrometheusUnavailable"
    assert retrying["message"].startswith("Retrying at the next interval: ")
    assert condition(observed["detectionrule-unreachable"], "Stalled")["status"] == "False"

    # kstatus.
    results = kstatus({**fresh, **observed}, tmp_path / "kstatus")
    got = {case: r["status"] for case, r in results.items()}
    assert got == {
        "detectionrule-healthy-fresh": "InProgress",
        "detectionrule-invalid-fresh": "InProgress",
        "incident-healthy-fresh": "InProgress",
        "incident-invalid-fresh": "InProgress",
        "escalationpolicy-unusable-fresh": "InProgress",
        "detectionrule-healthy": "Current",
        "detectionrule-invalid": "Failed",
        "incident-healthy": "Current",
        "incident-invalid": "Failed",
        "escalationpolicy-unusable": "Failed",
        "detectionrule-unreachable-fresh": "InProgress",
        "detectionrule-unreachable": "InProgress",
    }, results
    assert "observed generation is 0" in results["incident-healthy-fresh"]["message"]
    assert (
        results["detectionrule-invalid"]["message"]
        == condition(observed["detectionrule-invalid"], "Ready")["message"]
    )

    # A spec change is InProgress again until the operator observes the new generation.
    edited = json.loads(json.dumps(observed["incident-healthy"]))
    edited["metadata"]["generation"] = 2
    assert kstatus({"edited": edited}, tmp_path / "kstatus-edited")["edited"]["status"] == "InProgress"

    # Argo CD, in its health_test.yaml format, over the same objects.
    health = {
        "detectionrule-healthy": "Healthy",
        "detectionrule-invalid": "Degraded",
        "incident-healthy": "Healthy",
        "incident-invalid": "Degraded",
        "escalationpolicy-unusable": "Degraded",
        # Argo CD has no "retrying": a rule that cannot evaluate is Degraded there (it does not block a sync).
        "detectionrule-unreachable": "Degraded",
    }
    health.update({f"{case}-fresh": "Progressing" for case in manifests})
    objects = {**fresh, **observed}
    testdata = tmp_path / "argocd" / "testdata"
    testdata.mkdir(parents=True)
    tests = []
    for case, status in health.items():
        (testdata / f"{case}.yaml").write_text(yaml.safe_dump(objects[case], sort_keys=False))
        message = evaluate(HEALTH_LUA.read_text(), objects[case])["message"]
        tests.append(
            {"healthStatus": {"status": status, "message": message}, "inputPath": f"testdata/{case}.yaml"}
        )
    (tmp_path / "argocd" / "health_test.yaml").write_text(yaml.safe_dump({"tests": tests}, sort_keys=False))
    failures = [
        (path, want, got)
        for path, want, got in run_health_tests(HEALTH_LUA, tmp_path / "argocd" / "health_test.yaml")
        if want != got
    ]
    assert failures == []
    messages = {Path(t["inputPath"]).stem: t["healthStatus"]["message"] for t in tests}
    assert messages["incident-healthy-fresh"] == "Waiting for the operator to observe generation 1"
    assert messages["incident-invalid"].startswith("Invalid: spec.startedAt")
    assert messages["incident-healthy"] == condition(observed["incident-healthy"], "Ready")["message"]

    if os.environ.get("INCIDENT_CAPTURE_ARGOCD_TESTDATA"):
        (ARGOCD / "testdata").mkdir(exist_ok=True)
        for case in health:
            (ARGOCD / "testdata" / f"{case}.yaml").write_text(
                yaml.safe_dump(trimmed(objects[case]), sort_keys=False)
            )
        (ARGOCD / "health_test.yaml").write_text(yaml.safe_dump({"tests": tests}, sort_keys=False))
