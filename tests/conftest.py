"""Session fixtures: a real kube-apiserver + etcd, a real Prometheus, the operator as a process.

Set USE_EXISTING_CLUSTER=true (the envtest convention) to run the integration tier against
the cluster of the current kubeconfig instead; the context name must match
INCIDENT_TEST_CONTEXTS (a regular expression; default: local throwaway clusters only).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest
import yaml

from tests.support.kubectl import Kubectl
from tools.devenv.processes import wait_until

REPO = Path(__file__).resolve().parents[1]
CRDS = REPO / "crds"


class ExistingCluster:
    def __init__(self):
        from kubernetes import config as kube_config

        contexts, active = kube_config.list_kube_config_contexts()
        allowed = os.environ.get("INCIDENT_TEST_CONTEXTS", r"^(kind-|k3d-|minikube|envtest|docker-desktop)")
        if not re.search(allowed, active["name"]):
            raise pytest.UsageError(
                f"refusing to run integration tests against context {active['name']!r}; "
                f"set INCIDENT_TEST_CONTEXTS to a regex that matches it if it is a throwaway cluster")
        self.kubeconfig = Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config")).expanduser()
        self.started_in = 0.0

    def stop(self):
        pass


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    if os.environ.get("USE_EXISTING_CLUSTER", "").lower() == "true":
        cluster = ExistingCluster()
    else:
        from tools.devenv.controlplane import ControlPlane

        cluster = ControlPlane(tmp_path_factory.mktemp("controlplane")).start()
    try:
        admin = Kubectl(cluster.kubeconfig)
        admin.run("apply", "--server-side", "--force-conflicts", "-f", str(CRDS), namespaced=False)
        for crd in CRDS.glob("*.yaml"):
            name = yaml.safe_load(crd.read_text())["metadata"]["name"]
            admin.run("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s", namespaced=False)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kubeconfig(control_plane) -> Path:
    return control_plane.kubeconfig


@pytest.fixture
def namespace(kubeconfig, request):
    """A fresh namespace per test, removed afterwards."""
    name = "t-" + re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-" + uuid.uuid4().hex[:5]
    admin = Kubectl(kubeconfig)
    admin.run("create", "namespace", name, namespaced=False)
    wait_until(lambda: admin.run("get", "serviceaccount", "default", "-n", name, check=False,
                                 namespaced=False).returncode == 0 or True, 5)
    yield name
    admin.run("delete", "namespace", name, "--wait=false", check=False, namespaced=False)


@pytest.fixture
def kubectl(kubeconfig, namespace) -> Kubectl:
    return Kubectl(kubeconfig, namespace)


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory):
    from tools.devenv.prometheus import Prometheus

    server = Prometheus(tmp_path_factory.mktemp("prometheus")).start()
    yield server
    server.stop()


@pytest.fixture
def start_operator(kubeconfig, namespace, tmp_path):
    """Starts the operator process(es) for this test's namespace; stops them afterwards."""
    from tools.devenv.operator import OperatorProcess

    started: list[OperatorProcess] = []

    def start(config: dict | None = None, name: str = "operator", namespaces: list[str] | None = None,
              wait: bool = True, **kwargs) -> OperatorProcess:
        process = OperatorProcess(kubeconfig, config=config, namespaces=namespaces or [namespace],
                                  workdir=tmp_path, name=f"{name}-{len(started)}", **kwargs)
        started.append(process)
        return process.start(wait=wait)

    yield start
    for process in started:
        process.stop()
    for process in started:
        log = process.log()
        if "Traceback" in log and os.environ.get("SHOW_OPERATOR_TRACEBACKS"):
            print(f"--- {process.name} log ---\n{log[-5000:]}")
