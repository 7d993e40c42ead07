"""The release workflow (.github/workflows/release.yaml), checked with the pinned actionlint (built
from the Go module proxy by tests/tools/build-actionlint.sh, cached like helm). It is not run here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "release.yaml"


@pytest.fixture(scope="module")
def actionlint() -> str:
    result = subprocess.run(
        ["bash", str(REPO / "tests" / "tools" / "build-actionlint.sh")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def lint(actionlint: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([actionlint, "-no-color", "-oneline", str(path)], capture_output=True, text=True)


def test_release_workflow_passes_actionlint(actionlint):
    result = lint(actionlint, WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_copy(actionlint, tmp_path):
    """The check can fail: a typo in an expression and an unknown action input are reported."""
    broken = (
        WORKFLOW.read_text()
        .replace("${{ github.ref_name }}", "${{ github.ref_nmae }}")
        .replace(
            "platforms: linux/amd64,linux/arm64", "platforms: linux/amd64,linux/arm64\n          platfroms: x"
        )
    )
    path = tmp_path / ".github" / "workflows" / "release.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(broken)
    result = lint(actionlint, path)
    assert result.returncode == 1
    assert "ref_nmae" in result.stdout and "platfroms" in result.stdout, result.stdout


def test_release_pushes_multi_arch_images_and_the_chart_to_ghcr_on_a_tag():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert list(triggers) == ["push"] and triggers["push"]["tags"] == ["v*.*.*"]
    image_steps = workflow["jobs"]["image"]["steps"]
    build = next(s for s in image_steps if s.get("uses", "").startswith("docker/build-push-action"))
    assert build["with"]["file"] == "Containerfile" and build["with"]["push"] is True
    assert set(build["with"]["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert "REVISION=${{ github.sha }}" in build["with"]["build-args"]
    assert any(s.get("uses", "").startswith("docker/setup-qemu-action") for s in image_steps)
    assert workflow["env"]["IMAGE"].startswith("ghcr.io/")
    chart_run = "\n".join(s.get("run", "") for s in workflow["jobs"]["chart"]["steps"])
    assert "helm package charts/incident-operator" in chart_run and "helm push" in chart_run
    assert workflow["env"]["CHART_REPO"].startswith("oci://ghcr.io/")
    # The image tag is the version, which the chart's default image.tag (appVersion) points at.
    assert "${{ env.IMAGE }}:${{ needs.versions.outputs.version }}" in build["with"]["tags"]
    assert workflow["jobs"]["image"]["permissions"]["packages"] == "write"
