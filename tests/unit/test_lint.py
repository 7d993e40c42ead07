"""incidentctl lint / schema: the bad-rule corpus, the examples, the packaged CRDs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from incident_operator.cli import incidentctl
from incident_operator.gitops.crds import load_crds, packaged_crd_dir
from incident_operator.gitops.lint import lint_paths

REPO = Path(__file__).resolve().parents[2]
BAD = REPO / "tests" / "data" / "bad-rules"
EXAMPLES = REPO / "manifests" / "examples"
EXPECT = re.compile(r"^# expect: (\d+): (.+)$", re.M)


def expectations(path: Path) -> list[tuple[int, str]]:
    return [(int(line), message) for line, message in EXPECT.findall(path.read_text())]


BAD_FILES = sorted(BAD.glob("*.yaml"))


def test_the_corpus_is_there():
    assert len(BAD_FILES) >= 20
    for path in BAD_FILES:
        assert expectations(path), f"{path.name} has no '# expect: LINE: MESSAGE' line"


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.name for p in BAD_FILES])
def test_each_bad_rule_is_reported_once_at_its_line(path):
    report = lint_paths([path])
    got = [str(f) for f in report.findings]
    want = expectations(path)
    assert len(got) == len(want), "\n".join(got)
    for (line, message), finding in zip(sorted(want), sorted(report.findings, key=lambda f: f.line), strict=True):
        text = str(finding)
        assert text.startswith(f"{path}:{line}: "), text
        assert message in text, f"{message!r} not in {text!r}"
        if finding.kind:  # file:line: Kind/name: message
            assert re.match(rf"^{re.escape(str(path))}:{line}: (DetectionRule|Incident)/[^:]+: ", text), text


def test_examples_lint_clean():
    report = lint_paths([EXAMPLES])
    assert [str(f) for f in report.findings] == []
    objects = [d for p in EXAMPLES.glob("*.yaml") for d in yaml.safe_load_all(p.read_text())
               if isinstance(d, dict) and "kind" in d]
    assert {"DetectionRule", "Incident"} <= {d["kind"] for d in objects}
    assert report.checked == len(objects) >= 3
    detectors = {(d["spec"].get("detector") or {}).get("type") for d in objects if d["kind"] == "DetectionRule"}
    assert {"threshold", "baseline"} <= detectors


def test_login_example_is_fifteen_tickets_in_ten_minutes():
    rule = yaml.safe_load((EXAMPLES / "detectionrule-login.yaml").read_text())
    assert "[10m]" in rule["spec"]["query"] and "increase(" in rule["spec"]["query"]
    assert rule["spec"]["detector"] == {"type": "threshold", "threshold": {"value": 15}}


def test_multi_document_files_directories_and_lists_report_the_right_lines(tmp_path):
    good = (EXAMPLES / "detectionrule-login.yaml").read_text()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "all.yaml").write_text(
        good + "---\n# a second rule, broken\n"
        "apiVersion: incidents.buttercream.io/v1alpha1\n"
        "kind: DetectionRule\n"
        "metadata:\n"
        "  name: second\n"
        "spec:\n"
        "  query: sum(increase(support_tickets_created_total[10m]))\n"
        "  mode: Sometimes\n"
        "---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: unrelated}\n")
    (tmp_path / "rules" / "list.yml").write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "  - apiVersion: incidents.buttercream.io/v1alpha1\n"
        "    kind: Incident\n"
        "    metadata: {name: listed}\n"
        "    spec:\n"
        "      title: Listed\n"
        "      priority: P9\n")
    (tmp_path / "rules" / "notes.txt").write_text("not yaml: [")
    report = lint_paths([tmp_path / "rules"])
    mode_line = len(good.splitlines()) + 9  # ---, the comment, 6 lines, then mode
    assert [str(f) for f in report.findings] == [
        f"{tmp_path / 'rules' / 'all.yaml'}:{mode_line}: DetectionRule/second: spec.mode: Unsupported value: "
        '"Sometimes": supported values: "Active", "DryRun"',
        f"{tmp_path / 'rules' / 'list.yml'}:9: Incident/listed: spec.priority: Unsupported value: \"P9\": "
        'supported values: "P1", "P2", "P3", "P4"',
    ]
    assert report.checked == 3 and report.skipped == 1


def test_cli_exit_codes_and_format(tmp_path, capsys):
    assert incidentctl.main(["lint", str(EXAMPLES)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "0 error(s)" in err

    bad = BAD / "for-longer-than-cooldown.yaml"
    assert incidentctl.main(["lint", str(bad), str(EXAMPLES)]) == 1
    out, _ = capsys.readouterr()
    assert out.startswith(f"{bad}:9: DetectionRule/for-longer-than-cooldown: spec.for (15m) is longer")

    warning_only = BAD / "rate-with-count-threshold.yaml"
    assert incidentctl.main(["lint", str(warning_only)]) == 1
    assert incidentctl.main(["lint", "--allow-warnings", str(warning_only)]) == 0
    capsys.readouterr()

    assert incidentctl.main(["lint", str(tmp_path / "missing.yaml")]) == 1
    out, _ = capsys.readouterr()
    assert out.strip() == f"{tmp_path / 'missing.yaml'}:0: no such file or directory"


def test_cel_rules_are_evaluated_offline_including_kubernetes_string_functions(tmp_path):
    review = {"timelineNotes": "t", "rootCause": "r", "detection": "d", "communication": "c",
              "actionItems": [{"title": "fix", "owner": "erin"}]}
    incident = {"apiVersion": "incidents.buttercream.io/v1alpha1", "kind": "Incident",
                "metadata": {"name": "closed"},
                "spec": {"title": "Down", "priority": "P1", "owner": "erin", "state": "Closed", "review": review}}
    path = tmp_path / "incident.yaml"
    path.write_text(yaml.safe_dump(incident))
    assert [str(f) for f in lint_paths([path]).findings] == []
    incident["spec"]["review"] = {**review, "rootCause": "   "}  # blank once trimmed: refused by the API server
    path.write_text(yaml.safe_dump(incident))
    [finding] = lint_paths([path]).findings
    assert "cannot be Closed without a complete post-incident review" in finding.message


def test_packaged_crds_equal_the_source_of_truth():
    packaged = packaged_crd_dir()
    source = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    assert sorted(p.name for p in packaged.glob("*.yaml")) == source, "run `make crds`"
    for name in source:
        assert (packaged / name).read_text() == (REPO / "crds" / name).read_text(), f"{name} drifted: run `make crds`"


def test_schema_export_gives_editor_schemas_that_agree_with_lint(tmp_path):
    assert incidentctl.main(["schema", "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.glob("*.json"))
    kinds = sorted({f"{crd.kind.lower()}_{crd.version}.json" for crd in load_crds().values()})
    assert names == sorted(kinds + ["all.json"])
    rule_schema = json.loads((tmp_path / "detectionrule_v1alpha1.json").read_text())
    jsonschema.Draft202012Validator.check_schema(rule_schema)
    validator = jsonschema.Draft202012Validator(rule_schema)
    example = yaml.safe_load((EXAMPLES / "detectionrule-login.yaml").read_text())
    assert list(validator.iter_errors(example)) == []
    typo = {**example, "spec": {**example["spec"], "treshold": 3}}
    assert [e.validator for e in validator.iter_errors(typo)] == ["additionalProperties"]
    assert rule_schema["properties"]["kind"]["enum"] == ["DetectionRule"]
    assert "description" in rule_schema["properties"]["spec"]["properties"]["query"]

    combined = jsonschema.Draft202012Validator(json.loads((tmp_path / "all.json").read_text()))
    incident = yaml.safe_load((EXAMPLES / "incident-login.yaml").read_text())
    assert list(combined.iter_errors(incident)) == [] and list(combined.iter_errors(example)) == []
    assert list(combined.iter_errors({**incident, "spec": {**incident["spec"], "impact": "Huge"}}))


def test_the_structural_schema_validator_follows_the_api_server():
    from incident_operator.gitops.validate import validate

    schema = {"type": "object", "properties": {
        "n": {"type": "integer", "minimum": 1},
        "ios": {"x-kubernetes-int-or-string": True},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "closed": {"type": "object", "properties": {}},
        "tags": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
                 "items": {"type": "object", "properties": {"k": {"type": "string"}, "v": {"type": "string"}}}},
        "when": {"type": "string", "format": "date-time"},
    }}
    assert validate(schema, {"n": 2.0, "ios": "50%", "free": {"any": {"thing": 1}}, "when": "2026-01-31T09:40:00Z",
                             "closed": None}) == []
    problems = [message for _, message in validate(schema, {
        "n": 0.5, "ios": [1], "closed": {"x": 1}, "tags": [{"k": "a"}, {"k": "a", "v": "b"}], "when": "31/01/2026"})]
    assert problems == [
        "n: Invalid value: 0.5: must be of type integer",
        'ios: Invalid value: "array": must be an integer or a string',
        'unknown field "closed.x" (kubectl apply refuses it; known fields here: none)',
        'tags[1]: Duplicate value: {k="a"}',
        'when: Invalid value: "31/01/2026": must be an RFC 3339 date-time (e.g. 2025-01-31T09:40:00Z)',
    ]
