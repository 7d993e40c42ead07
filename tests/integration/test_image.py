"""The operator image, built by `make image` (tools/image/build.sh: an mmdebstrap base, then
`buildah bud --isolation chroot` of ./Containerfile), and the operator run FROM it.

There is no kubelet here and `podman run` does not work on this machine; `buildah run --isolation
chroot --network host` runs the image's own filesystem, user and entrypoint command as a process
of this host, pointed at the test control plane with a token of the chart's ServiceAccount.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.integration.test_chart import (
    assert_nothing_denied,
    chart_values,
    drive_the_operator,
    install_rbac,
    mint_token,
    rendered_config,
)
from tests.support import helm as chart
from tests.support.kubectl import Kubectl
from tools.devenv.processes import ManagedProcess, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "tools" / "image" / "build.sh"
UID = 65532  # the chart's podSecurityContext.runAsUser

pytestmark = pytest.mark.skipif(
    not (shutil.which("buildah") and shutil.which("mmdebstrap")),
    reason="needs buildah and mmdebstrap (make apt-deps)",
)


@pytest.fixture(scope="module")
def image() -> str:
    """The image `make image` builds and tags (a no-op when it is current)."""
    result = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture
def container(image):
    """A working container of the image (buildah from); removed afterwards."""
    name = "io-test-" + uuid.uuid4().hex[:8]
    subprocess.run(["buildah", "from", "--name", name, image], check=True, capture_output=True, text=True)
    yield name
    subprocess.run(["buildah", "rm", name], capture_output=True, text=True)


def buildah_run(
    container: str, *argv: str, mounts: dict[Path, str] | None = None, env: dict[str, str] | None = None
) -> list[str]:
    command = ["buildah", "run", "--isolation", "chroot", "--network", "host"]
    for source, target in (mounts or {}).items():
        command += ["--volume", f"{source}:{target}:ro"]
    for key, value in (env or {}).items():
        command += ["--env", f"{key}={value}"]
    return command + [container, "--", *argv]


def image_config(image: str) -> dict:
    inspected = json.loads(
        subprocess.run(
            ["buildah", "inspect", "--type", "image", image], check=True, capture_output=True, text=True
        ).stdout
    )
    return inspected["OCIv1"]["config"]


def test_image_is_tagged_with_the_charts_app_version_and_labelled(image):
    chart_yaml = yaml.safe_load((chart.CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((chart.CHART / "values.yaml").read_text())
    repository, tag = image.rsplit(":", 1)
    assert tag == chart_yaml["appVersion"] and values["image"]["tag"] == ""  # "" = appVersion
    assert repository == values["image"]["repository"]
    deployment = chart.one(chart.documents(chart.render()), "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image

    config = image_config(image)
    assert config["Entrypoint"] == ["incident-operator"]
    assert config["User"] == f"{UID}:{UID}"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == chart_yaml["appVersion"]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.source"] == chart_yaml["sources"][0]
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert labels["org.opencontainers.image.revision"] in (head, head + "-dirty")


def test_version_from_the_image_prints_version_and_revision(image, container):
    revision = image_config(image)["Labels"]["org.opencontainers.image.revision"]
    result = subprocess.run(
        buildah_run(container, "incident-operator", "--version"), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    version = yaml.safe_load((chart.CHART / "Chart.yaml").read_text())["appVersion"]
    assert result.stdout.strip() == f"incident-operator {version} (revision {revision})"
    # Non-root, as the chart's securityContext requires; the test extra is not installed.
    assert subprocess.run(
        buildah_run(container, "id", "-u"), capture_output=True, text=True
    ).stdout.strip() == str(UID)
    result = subprocess.run(
        buildah_run(container, "python3", "-c", "import pytest"), capture_output=True, text=True
    )
    assert result.returncode != 0 and "No module named 'pytest'" in result.stderr


def test_check_config_from_the_image_refuses_a_bad_timezone(container, tmp_path):
    config_dir = readable_dir(tmp_path / "config")
    (config_dir / "config.yaml").write_text(yaml.safe_dump({"calendar": {"timezone": "Europe/Berln"}}))
    (config_dir / "config.yaml").chmod(0o644)
    result = subprocess.run(
        buildah_run(
            container,
            "incident-operator",
            "check-config",
            "--config=/etc/incident-operator/config.yaml",
            mounts={config_dir: "/etc/incident-operator"},
        ),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    [line] = [text for text in result.stderr.splitlines() if text.startswith("incident-operator:")]
    assert "calendar.timezone" in line and "Europe/Berln" in line


def readable_dir(path: Path) -> Path:
    """pytest's tmp dirs are 0700 root: the image's user must read what is mounted."""
    path.mkdir(parents=True, exist_ok=True)
    for parent in [path, *path.parents]:
        if parent == Path("/tmp") or parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o755)
    return path


def embedded_kubeconfig(admin_kubeconfig: Path, token: str, path: Path) -> Path:
    """A kubeconfig with the CA inline and ``token`` as the user: one file to mount into the image."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cluster = dict(next(c for c in admin["clusters"] if c["name"] == context["cluster"])["cluster"])
    if "certificate-authority" in cluster:
        ca = Path(cluster.pop("certificate-authority"))
        ca = ca if ca.is_absolute() else admin_kubeconfig.parent / ca
        cluster["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "cluster", "cluster": cluster}],
                "users": [{"name": "incident-operator", "user": {"token": token}}],
                "contexts": [
                    {
                        "name": "incident-operator",
                        "context": {"cluster": "cluster", "user": "incident-operator"},
                    }
                ],
                "current-context": "incident-operator",
            }
        )
    )
    path.chmod(0o644)
    return path


@pytest.fixture
def receiver():
    from tests.support.receiver import Receiver

    server = Receiver().start()
    yield server
    server.stop()


def test_operator_from_the_image_reconciles_under_the_charts_service_account(
    kubeconfig, namespace, tmp_path, prometheus, receiver, container
):
    """The chart's Deployment command and args, run from the image with the chart's RBAC (watchNamespaces)."""
    admin = Kubectl(kubeconfig)
    release_ns = "img-" + uuid.uuid4().hex[:6]
    admin.run("create", "namespace", release_ns, namespaced=False)
    release = "img-" + uuid.uuid4().hex[:5]
    metrics_port, health_port = free_port(), free_port()
    docs = chart.documents(
        chart.render(
            release,
            release_ns,
            chart_values(prometheus, metrics_port, health_port, watchNamespaces=[namespace]),
        )
    )
    cluster_scoped = [
        (d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")
    ]
    process = None
    try:
        # kopf's peering CRDs (peering.enabled, the default) are shared: applied, never deleted.
        peering_crds = [
            d for d in chart.by_kind(docs, "CustomResourceDefinition") if d["spec"]["group"] == "kopf.dev"
        ]
        assert peering_crds
        admin.run(
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
            input=yaml.safe_dump_all(peering_crds),
            namespaced=False,
        )
        for crd in peering_crds:
            admin.run(
                "wait",
                "--for=condition=Established",
                f"crd/{crd['metadata']['name']}",
                "--timeout=60s",
                namespaced=False,
            )
        account = install_rbac(
            admin, docs, {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
        )
        config_dir = readable_dir(tmp_path / "etc")
        (config_dir / "config.yaml").write_text(yaml.safe_dump(rendered_config(docs)))
        (config_dir / "config.yaml").chmod(0o644)
        embedded_kubeconfig(kubeconfig, mint_token(admin, release_ns, account), config_dir / "kubeconfig")

        pod = chart.one(docs, "Deployment")["spec"]["template"]["spec"]
        [operator] = pod["containers"]
        [check] = pod["initContainers"]
        mounts = {config_dir: "/etc/incident-operator"}
        env = {"KUBECONFIG": "/etc/incident-operator/kubeconfig", "POD_NAMESPACE": release_ns}
        # The init container first, as the kubelet would run it.
        result = subprocess.run(
            buildah_run(container, *check["command"], *check["args"], mounts=mounts, env=env),
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        # Loopback only on this machine (the pod listens on 0.0.0.0).
        args = [a.replace("0.0.0.0", "127.0.0.1") for a in operator["args"]]
        fullname = chart.one(docs, "Deployment")["metadata"]["name"]
        assert f"--peering={fullname}" in args
        process = ManagedProcess(
            "image-operator",
            buildah_run(container, *operator["command"], *args, "--verbose", mounts=mounts, env=env),
            tmp_path,
        ).start()

        def healthy():
            if not process.alive():
                raise RuntimeError("the operator from the image exited:\n" + process.tail(60))
            try:
                import urllib.request

                with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(healthy, 120, interval=0.5, what="/healthz of the operator from the image")
        drive_the_operator(
            Kubectl(kubeconfig, namespace), receiver, policy_kubectl=Kubectl(kubeconfig, release_ns)
        )
        assert process.alive()
        log = process.log_path.read_text(errors="replace")
        assert_nothing_denied(log)
        # It ran with peering: its KopfPeering in the watched namespace holds its entry.
        peering = json.loads(
            admin.run("get", "kopfpeerings.kopf.dev", "-n", namespace, "-o", "json", namespaced=False).stdout
        )["items"]
        assert [p["metadata"]["name"] for p in peering] == [fullname]
        assert len(peering[0].get("status") or {}) == 1
    finally:
        if process is not None:
            process.stop()
        for kind, name in cluster_scoped:
            admin.run("delete", kind.lower(), name, "--ignore-not-found", check=False, namespaced=False)
        admin.run("delete", "namespace", release_ns, "--wait=false", check=False, namespaced=False)
