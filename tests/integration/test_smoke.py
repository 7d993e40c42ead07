"""Smoke: the CRDs install, an example Incident round-trips, the operator sees it."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.kubectl import incident
from tools.devenv.processes import wait_until

REPO = Path(__file__).resolve().parents[2]


def test_apiserver_reports_the_pinned_version(kubectl):
    import json
    import os

    if os.environ.get("USE_EXISTING_CLUSTER", "").lower() == "true":
        return
    version = json.loads(kubectl.run("version", "-o", "json", namespaced=False).stdout)["serverVersion"]
    pinned = (REPO / "tests" / "controlplane" / "K8S_VERSION").read_text().strip()
    assert version["gitVersion"] == pinned


def test_example_incident_round_trips_and_operator_writes_status(kubectl, start_operator):
    start_operator()
    example = yaml.safe_load((REPO / "manifests" / "examples" / "incident-login.yaml").read_text())
    kubectl.apply(example)
    name = example["metadata"]["name"]

    def observed():
        obj = kubectl.get("incident", name)
        status = (obj or {}).get("status") or {}
        return obj if status.get("observedGeneration") == obj["metadata"]["generation"] else None

    obj = wait_until(observed, 30, what="status.observedGeneration")
    assert obj["spec"]["title"] == example["spec"]["title"]
    assert obj["status"]["priority"] == "P2"

    table = kubectl.run("get", "inc", name).stdout
    header = table.splitlines()[0].split()
    assert header[:4] == ["NAME", "PRIORITY", "STATE", "OWNER"]
    assert {"DEADLINE", "LEVEL", "STATUS", "AGE"} <= set(header)
    assert "P2" in table.splitlines()[1]


def test_schema_violation_is_refused_with_422(kubectl, kubeconfig, namespace):
    from kubernetes import client, config as kube_config
    from kubernetes.client.exceptions import ApiException

    api = client.CustomObjectsApi(kube_config.new_client_from_config(str(kubeconfig)))
    try:
        api.create_namespaced_custom_object("incidents.buttercream.io", "v1alpha1", namespace, "incidents",
                                            incident("bad-priority", priority="P9"))
    except ApiException as refused:
        import json

        assert refused.status == 422
        assert 'Unsupported value: "P9"' in json.loads(refused.body)["message"]
    else:
        raise AssertionError("the API server accepted priority P9")
    result = kubectl.apply(incident("bad-priority", priority="P9"), check=False)
    assert result.returncode != 0
    assert "Unsupported value: \"P9\"" in result.stderr
    assert kubectl.get("incident", "bad-priority") is None


def test_incident_is_listed_in_the_support_category(kubectl):
    kubectl.apply(incident("categorised", priority="P4"))
    assert "categorised" in kubectl.run("get", "support").stdout
