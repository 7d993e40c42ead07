"""The pinned helm binary (built once by tests/tools/build-helm.sh) and the chart rendered with it."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "tests" / "tools" / "build-helm.sh"
# INCIDENT_OPERATOR_CHART: test a modified copy of the chart (e.g. to check that a missing RBAC rule fails).
CHART = Path(os.environ.get("INCIDENT_OPERATOR_CHART") or REPO / "charts" / "incident-operator")


@functools.lru_cache(maxsize=1)
def helm_binary() -> str:
    """Path of the pinned helm, building it from the Go module proxy when needed (cached outside the repo)."""
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=None, text=True, check=True)
    return result.stdout.strip().splitlines()[-1]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def template(release: str = "incident-operator", namespace: str = "incident-operator",
             values: dict[str, Any] | None = None, chart: Path = CHART, check: bool = True,
             extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``helm template``; ``values`` go in as a values file (JSON is YAML), so types are kept."""
    args = ["template", release, str(chart), "--namespace", namespace, *extra]
    if values is None:
        return helm(*args, check=check)
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        json.dump(values, handle)
        handle.flush()
        return helm(*args, "--values", handle.name, check=check)


def render(release: str = "incident-operator", namespace: str = "incident-operator",
           values: dict[str, Any] | None = None) -> str:
    return template(release, namespace, values).stdout


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc.get("kind") == kind]


def one(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [doc for doc in by_kind(docs, kind) if doc["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} named *{name_suffix}, found {[d['metadata']['name'] for d in found]}"
    return found[0]
