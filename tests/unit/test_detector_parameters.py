"""The detector parameter table has one source, the parser's (domain/detection/detectors.py, used through
rules.parse_detector by the operator, incidentctl lint, test and backtest). The CRD stays the schema the
API server enforces and docs/detection.md explains each field: these tests fail when either disagrees
with the parser on a name, a default or a bound."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from incident_operator.domain.common.durations import parse_duration
from incident_operator.domain.detection import rules
from incident_operator.domain.detection.detectors import (
    BASELINE_PARAMETERS,
    THRESHOLD_PARAMETERS,
    InvalidDetector,
)

REPO = Path(__file__).resolve().parents[2]


def _spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load((REPO / "crds" / "detectionrules.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]


def _detector_schema() -> dict[str, Any]:
    return _spec_schema()["properties"]["detector"]


def _described_default(prop: dict[str, Any]) -> str:
    match = re.search(r"Default ([^\s]+?)\.?\"?$", prop["description"].strip())
    assert match, f"the CRD description does not state the default: {prop['description']!r}"
    return match.group(1)


def test_crd_baseline_fields_are_the_parsers():
    props = dict(_detector_schema()["properties"]["baseline"]["properties"])
    step = props.pop("step")
    assert set(props) == {p.name for p in BASELINE_PARAMETERS}
    for param in BASELINE_PARAMETERS:
        prop = props[param.name]
        assert prop["type"] == ("integer" if param.kind is int else "number"), param.name
        assert (float(prop["minimum"]), float(prop["maximum"])) == (param.minimum, param.maximum), param.name
        assert float(_described_default(prop)) == param.default, param.name
    assert step["type"] == "string"
    assert parse_duration(_described_default(step)) == rules.DEFAULT_BASELINE_STEP_SECONDS


def test_crd_threshold_fields_are_the_parsers():
    schema = _detector_schema()["properties"]["threshold"]
    assert set(schema["properties"]) == {p.name for p in THRESHOLD_PARAMETERS}
    for param in THRESHOLD_PARAMETERS:
        prop = schema["properties"][param.name]
        assert prop["type"] == "number"
        assert (float(prop["minimum"]), float(prop["maximum"])) == (param.minimum, param.maximum)
        assert (param.name in schema.get("required", [])) == (param.default is None)


def test_crd_rule_durations_default_as_the_parser_does():
    props = _spec_schema()["properties"]
    assert (props["interval"]["default"], props["for"]["default"], props["cooldown"]["default"],
            props["recoveryWindow"]["default"]) == (rules.DEFAULT_INTERVAL, rules.DEFAULT_FOR,
                                                    rules.DEFAULT_COOLDOWN, rules.DEFAULT_RECOVERY)
    assert _detector_schema()["properties"]["type"]["default"] == "baseline"
    assert set(_detector_schema()["properties"]["type"]["enum"]) == set(rules.DETECTOR_PARAMETERS)


def _docs_rows() -> dict[str, list[str]]:
    text = (REPO / "docs" / "detection.md").read_text()
    section = text.split("### Configuration fields (`spec.detector.baseline`)", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in section.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0].strip("`")] = cells
    return rows


def test_docs_baseline_table_is_the_parsers():
    rows = _docs_rows()
    step = rows.pop("step")
    assert set(rows) == {p.name for p in BASELINE_PARAMETERS}
    for param in BASELINE_PARAMETERS:
        _, kind, default, bounds, _meaning = rows[param.name]
        assert kind == ("integer" if param.kind is int else "number"), param.name
        assert float(default) == param.default, param.name
        low, high = bounds.split("..")
        assert (float(low), float(high)) == (param.minimum, param.maximum), param.name
    assert parse_duration(step[2]) == rules.DEFAULT_BASELINE_STEP_SECONDS


@pytest.mark.parametrize("param", BASELINE_PARAMETERS, ids=lambda p: p.name)
def test_the_parser_enforces_its_table(param):
    """The bounds in the table are the ones parse_detector refuses beyond (what lint reports)."""
    rules.parse_detector({"type": "baseline", "baseline": {param.name: param.maximum}})
    over = param.maximum + 1
    with pytest.raises(InvalidDetector, match=f"detector.baseline.{param.name} must be between"):
        rules.parse_detector({"type": "baseline", "baseline": {param.name: over}})


def test_lint_reports_what_the_parser_refuses(tmp_path):
    from incident_operator.gitops.lint import lint_paths

    rule = tmp_path / "rule.yaml"
    rule.write_text("apiVersion: incidents.buttercream.io/v1alpha1\nkind: DetectionRule\n"
                    "metadata:\n  name: r\n"
                    "spec:\n  query: sum(increase(t_total[5m]))\n  detector:\n    type: baseline\n"
                    "    baseline:\n      step: 5m\n      seasonalDays: 0\n      trailingPoints: 12\n")
    # a rule the schema accepts and only the parser refuses (minReferencePoints 72 > trailingPoints)
    with pytest.raises(InvalidDetector) as refused:
        rules.parse_detector({"type": "baseline",
                              "baseline": {"step": "5m", "seasonalDays": 0, "trailingPoints": 12}})
    report = lint_paths([rule])
    assert any(str(refused.value) in f.message for f in report.findings), report.findings
