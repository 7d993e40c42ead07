"""The chart's and the package's copies of crds/, dashboards/ and alerts/ match their sources
(no helm needed; tests/integration/test_chart.py also checks manifests/install.yaml and renders)."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import given, strategies as st

from tools import sync_crds

REPO = Path(__file__).resolve().parents[2]


def test_copies_match_their_sources():
    problems = sync_crds.drifted(REPO, sync_crds.plan_sources(REPO))
    assert not problems, "run `make crds`:\n" + "\n".join(problems)


def test_every_crd_has_a_chart_template():
    names = {p.name for p in (REPO / "crds").glob("*.yaml")}
    assert names and names == {p.name for p in (REPO / sync_crds.CHART_CRD_DIR).glob("*.yaml")}


@given(st.text(alphabet="{} ab\"'", max_size=30))
def test_escaped_text_keeps_no_bare_template_braces(text):
    escaped = sync_crds.escape_helm(text)
    # Removing the escape actions gives back the text: each "{{"/"}}" became one action.
    restored = escaped.replace('{{ "{{" }}', "\0").replace('{{ "}}" }}', "\1")
    assert "{{" not in restored and "}}" not in restored
    assert restored.replace("\0", "{{").replace("\1", "}}") == text


def test_templated_crd_is_the_source_plus_chart_metadata():
    text = (REPO / "crds" / "detectionrules.yaml").read_text()
    templated = sync_crds.templated_crd("detectionrules.yaml", text)
    lines = templated.splitlines()
    assert lines[2] == "{{- if .Values.crds.install }}" and lines[-1] == "{{- end }}"
    assert "    helm.sh/resource-policy: keep" in lines
    # Drop the Helm-only lines and undo the brace escapes: what is left is the source's YAML.
    kept = [line.replace('{{ "{{" }}', "{{").replace('{{ "}}" }}', "}}") for line in lines[3:-1]
            if not line.strip().startswith("{{-")]
    injected = {"  annotations:", "    helm.sh/resource-policy: keep", "  labels:",
                "    # helm uninstall leaves the CRD, and with it every object of this kind, in place."}
    assert yaml.safe_load("\n".join(line for line in kept if line not in injected)) == yaml.safe_load(text)
