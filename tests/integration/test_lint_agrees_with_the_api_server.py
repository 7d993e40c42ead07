"""incidentctl lint against the real API server: what the schema and CEL refuse, lint reports offline;
what the API server accepts but cannot judge (PromQL, detector, semantics), only lint catches."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BAD = REPO / "tests" / "data" / "bad-rules"
EXAMPLES = REPO / "manifests" / "examples"

# Bad rules the API server itself refuses at `kubectl apply` (schema, CEL, YAML, names, versions).
# Not duplicate keys: kubectl silently keeps the last value.
REFUSED_BY_THE_API_SERVER = {
    "yaml-syntax", "unknown-field", "bad-enum", "bad-duration", "interval-too-long",
    "threshold-without-value", "detector-unknown-field", "threshold-as-string", "bad-name", "unknown-version",
    "incident-closed-without-review", "incident-without-priority", "incident-acknowledged-without-owner",
    "incident-bad-time", "incident-duplicate-account",
}
BAD_FILES = sorted(BAD.glob("*.yaml"))


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_the_api_server_refuses_exactly_what_lint_says_it_refuses(kubectl, path):
    result = kubectl.run("apply", "--dry-run=server", "-f", str(path), check=False)
    if path.stem in REFUSED_BY_THE_API_SERVER:
        assert result.returncode != 0, f"{path.name}: the API server accepted it:\n{result.stdout}"
    else:
        assert result.returncode == 0, f"{path.name}: the API server refused it:\n{result.stderr}"


def test_the_examples_apply(kubectl):
    for path in sorted(EXAMPLES.glob("*.yaml")):
        if path.name.endswith("_test.yaml"):
            continue  # a rule test, not a manifest
        result = kubectl.run("apply", "--dry-run=server", "-f", str(path), check=False)
        assert result.returncode == 0, f"{path.name}:\n{result.stderr}"
