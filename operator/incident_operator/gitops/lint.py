"""``incidentctl lint``: validate DetectionRules and Incidents offline, as a rules repository's CI.

Each document of our API group goes through, in order:

1. YAML: syntax, duplicate keys (kubectl refuses them), ``metadata.name``;
2. the CRD's OpenAPI schema, strictly (an unknown field is an error, as with ``kubectl apply``'s
   strict field validation), after which the schema's defaults are filled in;
3. the CRD's CEL rules (``x-kubernetes-validations``), evaluated with cel-python; transition rules
   (``oldSelf``) need the stored object and are left to the API server;
4. for a DetectionRule, what the operator checks (``domain.detection.rules``): PromQL syntax, the detector
   configuration, templates; then semantic checks of rules that would be accepted but would not do
   what their author meant (see :func:`_rule_semantics`);
5. for an Incident, a few semantic checks (a future ``startedAt``, a priority contradicting
   impact x urgency).

Findings print as ``file:line: Kind/name: message`` (``warning:`` before the message for
heuristics). Documents of other API groups are skipped: a rules repository may hold anything.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ..domain.detection import rules as dom
from ..domain.detection.detectors import BaselineDetector, InvalidDetector, ThresholdDetector
from ..domain.common.durations import format_duration
from ..domain.common.timeutil import time_or_none, utcnow
from .crds import CrdVersion, apply_defaults, cel_violations, load_crds
from .querytools import QueryFacts, analyse
from .validate import validate
from .yamlmarks import Document, YamlError, format_path, load_documents

ERROR = "error"
WARNING = "warning"
YAML_SUFFIXES = (".yaml", ".yml")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
PRIORITY_RANK = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    message: str
    severity: str = ERROR
    kind: str | None = None
    name: str | None = None

    def __str__(self) -> str:
        where = f"{self.kind}/{self.name}: " if self.kind else ""
        prefix = "warning: " if self.severity == WARNING else ""
        return f"{self.file}:{self.line}: {where}{prefix}{self.message}"


@dataclass
class LintReport:
    findings: list[Finding]
    checked: int = 0  # documents of our kinds
    skipped: int = 0  # documents of other API groups
    files: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]


def iter_files(paths: Sequence[str | Path]) -> Iterator[tuple[str, Path | None]]:
    """(display name, path) for each YAML file named or found under a directory; path None if missing."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file()
                                and not any(part.startswith(".") for part in p.relative_to(path).parts)):
                yield str(found), found
        elif path.is_file() or str(raw) == "-":
            yield str(raw), path
        else:
            yield str(raw), None


def lint_paths(paths: Sequence[str | Path], crd_dir: str | Path | None = None) -> LintReport:
    linter = Linter(load_crds(crd_dir))
    report = LintReport(findings=[])
    for display, path in iter_files(paths):
        report.files += 1
        if path is None:
            report.findings.append(Finding(display, 0, "no such file or directory"))
            continue
        try:
            text = sys.stdin.read() if display == "-" else path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            report.findings.append(Finding(display, 0, f"cannot read: {error}"))
            continue
        linter.lint_text(display, text, report)
    return report


class Linter:
    def __init__(self, crds: Mapping[tuple[str, str], CrdVersion]):
        self.crds = dict(crds)
        self.groups = {crd.group for crd in self.crds.values()}

    # -- files and documents ---------------------------------------------------------------------
    def lint_text(self, file: str, text: str, report: LintReport) -> None:
        try:
            for doc in load_documents(text):
                self._lint_document(file, doc, report)
        except YamlError as error:
            report.findings.append(Finding(file, error.line, error.message))

    def _lint_document(self, file: str, doc: Document, report: LintReport) -> None:
        data = doc.data
        if isinstance(data, dict) and data.get("kind") == "List" and isinstance(data.get("items"), list):
            for index, item in enumerate(data["items"]):
                self._lint_object(file, doc, ("items", index), item, report)
            return
        self._lint_object(file, doc, (), data, report)

    def _lint_object(self, file: str, doc: Document, base: tuple, obj: Any, report: LintReport) -> None:
        if not isinstance(obj, dict):
            return
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return  # not a Kubernetes object (e.g. a rule-test file)
        group = api_version.split("/")[0] if "/" in api_version else ""
        if group not in self.groups:
            report.skipped += 1
            return
        report.checked += 1
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        name = str(meta.get("name") or "<unnamed>")
        found: list[Finding] = []

        def add(path: Sequence[Any], message: str, severity: str = ERROR) -> None:
            full = tuple(base) + tuple(path)
            found.append(Finding(file, doc.line_of(full) if full else doc.line_of(base), message, severity,
                                 kind, name))

        for path, line, first in doc.duplicates:
            if path[: len(base)] == tuple(base):
                found.append(Finding(file, line, f"{format_path(path[len(base):])}: duplicate key (also on line "
                                                 f"{first}); kubectl silently keeps the last one: remove the other",
                                     ERROR, kind, name))
        crd = self.crds.get((api_version, kind))
        if crd is None:
            kinds = sorted({c.kind for c in self.crds.values() if c.group == group})
            versions = sorted({c.version for c in self.crds.values() if c.kind == kind})
            if versions:
                add(("apiVersion",), f"{api_version} is not a served version of {kind} (served: "
                                     f"{', '.join(f'{group}/{v}' for v in versions)})")
            else:
                add(("kind",), f"unknown kind {kind} in {group} (known: {', '.join(kinds)})")
            report.findings.extend(found)
            return

        if not meta.get("name"):
            add(("metadata",), "metadata.name is required (kubectl apply needs a name)")
        elif not isinstance(meta["name"], str) or len(meta["name"]) > 253 or not DNS_SUBDOMAIN.match(meta["name"]):
            add(("metadata", "name"), f"metadata.name {meta['name']!r} must be a lower-case RFC 1123 subdomain "
                                      "(a-z, 0-9, '-' and '.', starting and ending alphanumeric, at most 253)")
        if "status" in obj:
            add(("status",), "status is ignored by kubectl apply (a subresource the operator writes); "
                             "remove it from the manifest", WARNING)

        schema_errors = self._schema_errors(crd, obj)
        for path, message in schema_errors:
            add(path, message)
        defaulted = apply_defaults(crd.schema, obj)
        violations = cel_violations(crd.schema, defaulted)
        for violation in violations:
            label = format_path(violation.path) or "<object>"
            add(violation.path, f"{label}: {violation.message}")
        spec = defaulted.get("spec")
        if isinstance(spec, dict):
            # What the operator and the semantic checks judge, where the API server would not already refuse.
            broken = [p for p, _ in schema_errors] + [v.path for v in violations]
            namespace = str(meta.get("namespace") or "default")
            if kind == "DetectionRule":
                self._detection_rule(namespace, name, spec, add, broken)
            elif kind == "Incident" and not broken:
                _incident_semantics(spec, add)
        report.findings.extend(sorted(found, key=lambda f: f.line))

    # -- schema ------------------------------------------------------------------------------------
    @staticmethod
    def _schema_errors(crd: CrdVersion, obj: Mapping[str, Any]) -> list[tuple[tuple, str]]:
        """The CRD's structural schema, strictly; metadata is ObjectMeta (checked above), not the CRD's."""
        body = {key: value for key, value in obj.items() if key != "metadata"}
        return sorted(validate(crd.schema, body), key=lambda item: [str(p) for p in item[0]])

    # -- DetectionRule -------------------------------------------------------------------------------
    def _detection_rule(self, namespace: str, name: str, spec: Mapping[str, Any], add,
                        broken: Sequence[tuple]) -> None:
        def clean(*prefix: Any) -> bool:
            return not any(tuple(path[: len(prefix)]) == prefix for path in broken)

        query = spec.get("query")
        ok = not broken
        if not clean("spec", "query"):
            pass
        elif isinstance(query, str) and query.strip():
            try:
                dom.check_promql(query.strip())
            except dom.InvalidRule as error:
                add(("spec", "query"), str(error))
                ok = False
        else:
            ok = False
        if clean("spec", "detector") and ("spec",) not in broken:
            try:
                dom.parse_detector(spec.get("detector"))
            except InvalidDetector as error:
                message = str(error)
                add(("spec",) + _message_path(message, "detector"),
                    f"spec.{message}" if message.startswith("detector") else f"spec.detector: {message}")
                ok = False
        if not ok:
            return
        try:
            rule = dom.parse_rule(namespace, name, spec)
        except dom.InvalidRule as error:
            message = str(error)
            add(_message_path(message.removeprefix("spec."), "spec", prefixed=True), message)
            return
        except (TypeError, ValueError, KeyError):
            return  # a wrongly typed field: the schema check said so
        facts = analyse(rule.query)
        if facts is not None:
            _rule_semantics(rule, spec, facts, add)


def _message_path(message: str, root: str, prefixed: bool = False) -> tuple[Any, ...]:
    """``detector.threshold.value must ...`` -> ("detector", "threshold", "value")."""
    match = re.match(r"^([A-Za-z]+(?:\.[A-Za-z]+)*)", message)
    if not match:
        return (root,)
    parts = tuple(match.group(1).split("."))
    if prefixed:
        return ("spec",) + parts
    return parts if parts[0] == root else (root,)


def _rule_semantics(rule: dom.RuleSpec, spec: Mapping[str, Any], facts: QueryFacts, add) -> None:
    """Rules the API server accepts but that cannot do what they say."""
    interval, for_s, cooldown = rule.interval_s, rule.for_s, rule.cooldown_s
    step = float(getattr(rule, "step_s", 0.0) or interval)  # spacing of the history the detector learns from
    detector = rule.detector

    # `for` longer than the cooldown: the cooldown can never merge a returning spike.
    if cooldown > 0 and for_s > cooldown:
        add(("spec", "for"), f"spec.for ({format_duration(for_s)}) is longer than spec.cooldown ({format_duration(cooldown)}): "
                             "a spike that comes back must hold for the whole `for` again, by which time the "
                             "cooldown is over, so every relapse opens a new incident; make cooldown >= for")
    elif 0 < for_s < interval:
        add(("spec", "for"), f"spec.for ({format_duration(for_s)}) is shorter than spec.interval ({format_duration(interval)}): "
                             f"the condition is only checked every {format_duration(interval)}, so it acts as "
                             f"{format_duration(interval)}", WARNING)

    # The query's range window against the evaluation interval.
    if facts.windows:
        shortest_s, shortest = min(facts.windows)
        longest_s, longest = max(facts.windows)
        if shortest_s < interval:
            add(("spec", "interval"), f"spec.interval ({format_duration(interval)}) is longer than the query's range window "
                                      f"{shortest}: each evaluation sees only the last {shortest[1:-1]} of every "
                                      f"{format_duration(interval)}, so tickets in between are never counted; use a window "
                                      f">= the interval (or a shorter interval)")
        elif isinstance(detector, BaselineDetector) and longest_s != step:
            if longest_s > step:
                effect = (f"consecutive values overlap and each ticket is counted {longest_s / step:g} times")
            else:
                effect = f"tickets in the {format_duration(step - longest_s)} between two samples are never counted"
            add(("spec", "query"), f"spec.query: the baseline detector sums windowPoints={detector.window_points} "
                                   f"values {format_duration(step)} apart (its history step) as separate counts, but the "
                                   f"query's window is {longest}: {effect}; use a [{format_duration(step)}] window", WARNING)
    elif facts.bare_counters:
        add(("spec", "query"), f"spec.query reads the counter {facts.bare_counters[0]} without rate() or increase(): "
                               "a counter only grows, so its raw value says nothing about a spike; use e.g. "
                               f"increase({facts.bare_counters[0]}[10m])")

    # Thresholds that do not mean what they seem to.
    if isinstance(detector, ThresholdDetector):
        value = detector.value_threshold
        if facts.counts and value < 1:
            add(("spec", "detector", "threshold", "value"),
                f"spec.detector.threshold.value {value:g} is below 1 but the query counts tickets "
                f"({', '.join(sorted(facts.functions & {'increase', 'count_over_time', 'sum_over_time'}))}): "
                "any single ticket fires it; write the number of tickets in the window, e.g. 15")
        elif facts.per_second and value >= 1:
            window = facts.windows[0][1] if facts.windows else "[10m]"
            add(("spec", "detector", "threshold", "value"),
                f"the query is a per-second rate, so spec.detector.threshold.value {value:g} means {value:g} tickets per "
                f"second ({value * 600:g} in 10 minutes); for \"{value:g} tickets in {window[1:-1]}\" use "
                f"increase(...{window})", WARNING)
    if isinstance(detector, BaselineDetector):
        limit = dom.MAX_HISTORY_POINTS
        fetched = rule.fetched_history_points
        trailing = max(min(detector.trailing_points, fetched - 2 * detector.window_points + 2), 0)
        seasonal = detector.seasonal_days * (2 * detector.seasonal_half_width_points + 1)
        if detector.min_reference_points > trailing + seasonal:
            add(("spec", "detector"), f"spec.detector.baseline.minReferencePoints ({detector.min_reference_points}) can "
                                      f"never be reached: the operator fetches at most {limit} recent values, which "
                                      f"give {trailing} reference windows (plus {seasonal} from previous days); the "
                                      "rule would never fire")
        explicit = ((spec.get("detector") or {}).get("baseline") or {}) if isinstance(spec, Mapping) else {}
        if (isinstance(explicit, Mapping) and explicit.get("shiftWindowPoints")
                and detector.shift_window_points > 0 and detector.seasonal_days == 0):
            add(("spec", "detector", "baseline", "shiftWindowPoints"),
                "spec.detector.baseline.shiftWindowPoints is set but seasonalDays is 0: the shift test compares with "
                "the same time of day on previous days, so it never fires; set seasonalDays >= 1 or "
                "shiftWindowPoints: 0", WARNING)

    # Group labels the query drops: every series would land in one group.
    if rule.group_labels and facts.output_labels is not None:
        for index, label in enumerate(rule.group_labels):
            if label not in facts.output_labels:
                kept = ", ".join(sorted(facts.output_labels)) or "no labels"
                add(("spec", "groupLabels", index),
                    f"spec.groupLabels[{index}]: {label!r} is not in the query's output ({facts.aggregation} keeps {kept}): every "
                    f"group would have {label}=\"\" and all groups would be one")

    _priority_semantics(rule, spec, add)


def _priority_semantics(rule: dom.RuleSpec, spec: Mapping[str, Any], add) -> None:
    priority = spec.get("priority") if isinstance(spec.get("priority"), dict) else {}
    bands = [b for b in priority.get("bands") or [] if isinstance(b, dict)]
    default = str(priority.get("default") or "P3")
    seen: dict[float, int] = {}
    parsed: list[tuple[int, float, str]] = []
    for index, band in enumerate(bands):
        try:
            parsed.append((index, float(band["minValue"]), str(band["priority"])))
        except (KeyError, TypeError, ValueError):
            return  # the schema check reports it
    for index, min_value, _prio in parsed:
        if min_value in seen:
            add(("spec", "priority", "bands", index),
                f"spec.priority.bands[{index}] never matches: spec.priority.bands[{seen[min_value]}] has the same minValue "
                f"{min_value:g} and is checked first")
        else:
            seen[min_value] = index
    for index, min_value, prio in parsed:
        for other, other_min, other_prio in parsed:
            if other_min < min_value and PRIORITY_RANK.get(prio, 9) > PRIORITY_RANK.get(other_prio, 9):
                add(("spec", "priority", "bands", index),
                    f"spec.priority.bands[{index}] (minValue {min_value:g} -> {prio}) is less urgent than "
                    f"spec.priority.bands[{other}] (minValue {other_min:g} -> {other_prio}): a bigger spike would get a "
                    f"lower priority; bands must get more urgent as minValue grows")
                break
        else:
            if PRIORITY_RANK.get(prio, 9) > PRIORITY_RANK.get(default, 9):
                add(("spec", "priority", "bands", index),
                    f"spec.priority.bands[{index}] (minValue {min_value:g} -> {prio}) is less urgent than the default "
                    f"{default}: a bigger spike would get a lower priority than a small one")
    if isinstance(rule.detector, ThresholdDetector) and parsed:
        threshold = rule.detector.value_threshold
        covering = [(m, i) for i, m, _ in parsed if m <= threshold]
        if covering:
            min_value, index = max(covering)
            add(("spec", "priority", "default"),
                f"spec.priority.default ({default}) is never used: incidents open at a value >= the threshold "
                f"{threshold:g}, where spec.priority.bands[{index}] (minValue {min_value:g}) already applies", WARNING)


def _incident_semantics(spec: Mapping[str, Any], add) -> None:
    from ..domain.incident.priority import priority_from_matrix

    started = spec.get("startedAt")
    if isinstance(started, str):
        moment = time_or_none(started)
        if moment is not None and moment > utcnow() + timedelta(minutes=5):
            add(("spec", "startedAt"), f"spec.startedAt {started} is in the future: the operator marks the incident "
                                       "Invalid (impact cannot start after now)")
    priority, impact, urgency = spec.get("priority"), spec.get("impact"), spec.get("urgency")
    if priority and impact and urgency:
        try:
            derived = priority_from_matrix(impact, urgency)
        except ValueError:
            return
        if derived != priority:
            add(("spec", "priority"), f"spec.priority {priority} overrides impact {impact} x urgency {urgency} "
                                      f"({derived}); drop one of them so the intent is clear", WARNING)


def format_report(report: LintReport, allow_warnings: bool = False) -> tuple[list[str], int]:
    """The lines to print and the exit code (1 when anything is wrong)."""
    lines = [str(f) for f in report.findings]
    failing = report.errors or (report.warnings and not allow_warnings)
    return lines, 1 if failing else 0
