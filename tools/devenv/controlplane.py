"""A real kube-apiserver + etcd on loopback, started the way controller-runtime's envtest does it.

The binaries come from ``KUBEBUILDER_ASSETS`` or ``tests/controlplane/build.sh`` (built once from pinned Go modules,
or taken from ``KUBEBUILDER_ASSETS``). Everything runs on 127.0.0.1 with free ports, a test
CA, RBAC authorization, and an admin client-certificate kubeconfig.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from .certs import make_pki
from .processes import ManagedProcess, free_port, on_fresh_ports, wait_until

# tools/devenv/controlplane.py -> the checkout; tools/ is never installed, so this is always a source tree.
REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "tests" / "controlplane" / "build.sh"


def control_plane_binaries() -> Path:
    """Returns the folder with kube-apiserver and etcd, building them when needed."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and (Path(assets) / "kube-apiserver").exists() and (Path(assets) / "etcd").exists():
        return Path(assets)
    if not BUILD_SCRIPT.exists():
        raise RuntimeError(f"{BUILD_SCRIPT} not found: set KUBEBUILDER_ASSETS to a folder holding kube-apiserver "
                           "and etcd")
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=None, text=True, check=True
    )
    return Path(result.stdout.strip().splitlines()[-1])


class ControlPlane:
    def __init__(self, workdir: Path | None = None, die_with_parent: bool = False):
        self.die_with_parent = die_with_parent
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="incident-cp-"))
        self.bin_dir = control_plane_binaries()
        self.pki = make_pki(self.workdir / "pki")
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = self.workdir / "kubeconfig"
        self.etcd: ManagedProcess | None = None
        self.apiserver: ManagedProcess | None = None
        self.started_in: float | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> "ControlPlane":
        began = time.monotonic()
        on_fresh_ports(self._start_etcd, self._pick_etcd_ports)
        on_fresh_ports(self._start_apiserver_and_wait, self._pick_apiserver_port)
        self.started_in = time.monotonic() - began
        return self

    def _pick_etcd_ports(self) -> None:
        self.etcd_port, self.etcd_peer_port = free_port(), free_port()

    def _pick_apiserver_port(self) -> None:
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"

    def _start_apiserver_and_wait(self) -> None:
        self._start_apiserver()
        self._write_kubeconfig()
        self.wait_ready()

    def _start_etcd(self) -> None:
        data = self.workdir / "etcd"
        self.etcd = ManagedProcess(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{self.etcd_peer_port}",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
            self.workdir,
            die_with_parent=self.die_with_parent,
        ).start()
        etcd = self.etcd

        def healthy() -> bool:
            etcd.check_alive()
            return self._http_ok(f"http://127.0.0.1:{self.etcd_port}/health")

        wait_until(healthy, 30, what="etcd /health")

    def apiserver_argv(self) -> list[str]:
        pki = self.pki
        return [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-key-file={pki.sa_public_key}",
            f"--service-account-signing-key-file={pki.sa_private_key}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            f"--cert-dir={self.workdir / 'certs'}",
            "--v=0",
        ]

    def _start_apiserver(self) -> None:
        self.apiserver = ManagedProcess("kube-apiserver", self.apiserver_argv(), self.workdir,
                                        die_with_parent=self.die_with_parent).start()

    def restart_apiserver(self) -> None:
        """Stops and starts kube-apiserver on the same port, keeping etcd (and all objects)."""
        assert self.apiserver is not None
        self.apiserver.stop()
        self._start_apiserver()
        self.wait_ready()

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "envtest", "cluster": {"server": self.url, "certificate-authority": str(self.pki.ca_cert)}}],
            "users": [{"name": "admin", "user": {"client-certificate": str(self.pki.admin_cert), "client-key": str(self.pki.admin_key)}}],
            "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": "admin"}}],
            "current-context": "envtest",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return context

    @staticmethod
    def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return response.status == 200

    def wait_ready(self, timeout: float = 90) -> None:
        context = self._ssl_context()

        def ready() -> bool:
            if self.apiserver is not None:
                self.apiserver.check_alive()
            return self._http_ok(f"{self.url}/readyz", context) and self._http_ok(
                f"{self.url}/api/v1/namespaces/default", context
            )

        wait_until(ready, timeout, interval=0.2, what="kube-apiserver /readyz and the default namespace")

    def stop(self) -> None:
        for process in (self.apiserver, self.etcd):
            if process is not None:
                process.stop()

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
