"""``incidentctl test``: promtool-style unit tests for DetectionRules, run through the operator's code.

A test gives, per group, the values the rule's **query returns** at consecutive evaluations
(PromQL cannot be evaluated offline, so the test starts from the query's output), and the
incidents expected at given times. The runner replays the values through
``domain.detection.rules.plan_evaluation`` -- the function the operator's detection engine calls at every
evaluation: the same detector, ``episodes.step`` state machine (``for``, cooldown, recovery
window), group identity, incident names, priority bands and templates -- and carries out the
resulting actions the way ``services/detection.py`` does (create once per name, reopen a Resolved
incident, raise the priority as the peak grows into a higher band). The history the engine fetches
with a range query is the test's own earlier values.

The file format is documented in docs/rule-tests.md.
"""

from __future__ import annotations

import copy
import glob
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..domain.detection import rules as dom
from ..domain.common.durations import format_duration, parse_duration
from .crds import as_the_api_server_stores_it
from .yamlmarks import Document, YamlError, load_documents

#: Evaluation time of the first input value (2026-01-01T00:00:00Z); reported as offset 0s.
START = 1_767_225_600.0
PRIORITY_RANK = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}
EXPECTABLE = ("priority", "title", "state", "service", "team", "reopens", "name", "value", "peak", "dry_run")
CHANGEABLE_STATES = ("Acknowledged", "Investigating", "Mitigated", "Resolved", "Closed")


class TestFileError(ValueError):
    """The test file (or a rule file it names) is malformed; ``file:line: message``."""


def _offset(seconds: float) -> str:
    return format_duration(seconds) if seconds >= 0 else "-" + format_duration(-seconds)


# -- input values -------------------------------------------------------------------------------

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?Inf|NaN"
_TOKEN = re.compile(rf"^(?P<a>{_NUMBER})(?:(?P<op>[-+])(?P<b>{_NUMBER}))?x(?P<n>\d+)$")


def expand_values(text: str) -> list[float | None]:
    """promtool's expanding notation: ``1 2 3``, ``0+10x5`` (0 10 20 30 40 50), ``5-1x3``, ``7x2``
    (7 7 7), ``_`` (no value: the query returned nothing for this group), ``_x3``, ``stale``."""
    out: list[float | None] = []
    for token in str(text).split():
        if token in ("_", "stale"):
            out.append(None)
            continue
        blank = re.match(r"^_x(\d+)$", token)
        if blank:
            out.extend([None] * int(blank.group(1)))
            continue
        match = _TOKEN.match(token)
        if match:
            a = float(match.group("a"))
            b = float(match.group("b") or 0) * (-1 if match.group("op") == "-" else 1)
            out.extend(a + b * k for k in range(int(match.group("n")) + 1))
            continue
        try:
            out.append(float(token))
        except ValueError:
            raise ValueError(f"bad value {token!r} (want a number, a+bxN, a-bxN, axN, _, _xN or stale)") from None
    return out


def parse_series(text: str) -> dict[str, str]:
    """``metric{a="x", b="y"}`` or ``{a="x"}`` -> the labels (the metric name is dropped, as the engine does)."""
    import promql_parser as pp

    text = str(text).strip()
    if text.startswith("{") and text.endswith("}") and text[1:-1].strip() == "":
        return {}
    try:
        node = pp.parse(text)
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"bad series {text!r}: {error}") from None
    if not isinstance(node, pp.VectorSelector):
        raise ValueError(f"bad series {text!r}: want a label set such as '{{topic=\"login\"}}'")
    labels: dict[str, str] = {}
    for matcher in node.matchers.matchers:
        if "Equal" not in str(matcher.op) or "Not" in str(matcher.op):
            raise ValueError(f"bad series {text!r}: only = matchers name a series' labels")
        if matcher.name != "__name__":
            labels[matcher.name] = matcher.value
    return labels


def _labels_text(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


# -- the simulated cluster ---------------------------------------------------------------------------

@dataclass
class SimIncident:
    name: str
    labels: dict[str, str]
    priority: str
    title: str
    service: str | None
    team: str | None
    opened_at: float
    started_at: float
    value: float
    peak: float
    dry_run: bool = False
    state: str = "Triggered"
    reopens: int = 0
    resolved_at: float | None = None
    rule_priority: str = ""  # the priority the rule last set (the engine's annotation)

    def view(self) -> dom.IncidentView:
        return dom.IncidentView(name=self.name, state=self.state, resolved_at=self.resolved_at)

    def describe(self) -> str:
        extra = " (dry run)" if self.dry_run else ""
        return (f"{_labels_text(self.labels)} {self.name} priority={self.priority} state={self.state} "
                f"reopens={self.reopens} title={self.title!r} opened at {_offset(self.opened_at - START)}{extra}")


@dataclass
class TraceRow:
    at: float
    labels: dict[str, str]
    value: float | None
    threshold: float | None
    firing: bool
    phase: str
    actions: list[str]


@dataclass
class Replay:
    interval_s: float
    snapshots: list[dict[str, SimIncident]]  # after each evaluation
    trace: list[TraceRow]


def replay(rule: dom.RuleSpec, series: Sequence[tuple[dict[str, str], list[float | None]]],
           changes: Sequence[Mapping[str, Any]] = ()) -> Replay:
    """Evaluates ``rule`` once per input point, exactly as the engine does, and records the incidents.

    The engine's range queries (the recent history at the rule's history step, and for the baseline
    the same time on previous days) read the query's output at past times: here, the input value
    of the latest evaluation at or before each such time (none before the first value).
    """
    steps = max((len(values) for _, values in series), default=0)
    interval = rule.interval_s
    step = float(getattr(rule, "step_s", 0.0) or interval)
    fetch = rule.fetched_history_points
    windows = tuple(getattr(rule, "seasonal_windows", ()) or ())
    groups: list[dict[str, Any]] = []
    incidents: dict[str, SimIncident] = {}
    past: dict[str, dict[int, float]] = {}  # fingerprint -> evaluation index -> value (the query's output)
    pending = sorted(changes, key=lambda c: c["at"])
    snapshots: list[dict[str, SimIncident]] = []
    trace: list[TraceRow] = []

    def value_at(fp: str, moment: float) -> float | None:
        index = math.floor((moment - START) / interval + 1e-9)
        return past[fp].get(index) if index >= 0 else None

    def fetch_range(fp: str, start: float, end: float) -> list[tuple[float, float]]:
        out, moment = [], start
        while moment <= end + 1e-9:
            value = value_at(fp, moment)
            if value is not None:
                out.append((moment, value))
            moment += step
        return out

    for index in range(steps):
        now = START + index * interval
        while pending and START + pending[0]["at"] <= now:
            _apply_change(pending.pop(0), incidents, rule)
        samples = [(dict(labels), float(values[index])) for labels, values in series
                   if index < len(values) and values[index] is not None]
        histories: dict[str, list[tuple[float, float]]] = {}
        seasonals: dict[str, list[list[float]]] = {}
        if samples:  # the engine only range-queries when the instant query returned something
            for fp in past:
                points = fetch_range(fp, now - fetch * step, now - step / 2)
                if points:
                    histories[fp] = points
            anchor = math.floor(now / step) * step
            for k, window in enumerate(windows):
                for fp in past:
                    values = fetch_range(fp, anchor - window.lag_s - window.points_before * step,
                                         anchor - window.lag_s + window.points_after * step)
                    if values:
                        seasonals.setdefault(fp, [[] for _ in windows])[k] = [v for _, v in values]
        names = {g.get("incident") for g in groups if g.get("incident")}
        views = {name: incidents[name].view() for name in names if name in incidents}
        if windows:
            plan = dom.plan_evaluation(rule, groups, samples, histories, views, now, seasonals)
        else:
            plan = dom.plan_evaluation(rule, groups, samples, histories, views, now)
        done: dict[str, list[str]] = {}
        for action in plan.actions:
            done.setdefault(action.fingerprint, []).append(_carry_out(rule, action, incidents, now))
        groups = plan.groups
        trace.extend(_trace_rows(rule, now, samples, histories, seasonals, groups, done))
        for labels, value in samples:
            fp = dom.fingerprint(rule.namespace, rule.name, dom.group_of(rule, labels))
            slot = past.setdefault(fp, {})
            slot[index] = max(value, slot.get(index, value))  # several series, one group: the larger
        snapshots.append(copy.deepcopy(incidents))
    return Replay(interval_s=interval, snapshots=snapshots, trace=trace)


def _trace_rows(rule: dom.RuleSpec, now: float, samples, histories, seasonals, groups, done) -> list[TraceRow]:
    """One row per group seen or tracked at this evaluation (for --trace)."""
    records = {g["fingerprint"]: g for g in groups}
    rows: list[TraceRow] = []
    seen: set[str] = set()
    for labels, value in samples:
        group = dom.group_of(rule, labels)
        fp = dom.fingerprint(rule.namespace, rule.name, group)
        if fp in seen:
            continue
        seen.add(fp)
        history = [v for t, v in histories.get(fp, ()) if t < now][-rule.history_points:]
        verdict = rule.detector.evaluate(value, history, list(seasonals.get(fp, ())))  # as plan_evaluation did
        state = (records.get(fp) or {}).get("episodeState") or {}
        rows.append(TraceRow(now, group, verdict.value, verdict.threshold, verdict.firing,
                             state.get("phase", "Inactive"), done.get(fp, [])))
    for fp, record in records.items():
        if fp not in seen:
            state = record.get("episodeState") or {}
            rows.append(TraceRow(now, dict(record.get("labels") or {}), None, None, False,
                                 state.get("phase", "Inactive"), done.get(fp, [])))
    return rows


def _carry_out(rule: dom.RuleSpec, action: dom.Action, incidents: dict[str, SimIncident], now: float) -> str:
    """What services/detection.py does with each action, on the simulated incidents."""
    if action.kind in ("open", "dry-run"):
        if action.incident not in incidents:  # create-or-get by the deterministic name
            incidents[action.incident] = SimIncident(
                name=action.incident, labels=dict(action.labels), priority=action.priority, title=action.title,
                service=action.service, team=action.team, opened_at=now, started_at=action.started_at,
                value=action.value, peak=action.peak, dry_run=action.kind == "dry-run",
                rule_priority=action.priority)
        return f"{action.kind} {action.incident} ({action.priority})"
    incident = incidents.get(action.incident)
    if incident is None:
        return f"{action.kind} {action.incident} (gone)"
    note = action.kind
    if action.kind == "reopen" and incident.state in ("Resolved", "Mitigated"):
        if incident.state == "Resolved":
            incident.reopens += 1
        incident.state = "Investigating"
        incident.resolved_at = None
        note = f"reopen {incident.name}"
    incident.value = action.value
    incident.peak = max(incident.peak, action.peak, action.value)
    wanted = dom.priority_for(rule, incident.peak)
    if incident.priority == incident.rule_priority and PRIORITY_RANK.get(wanted, 9) < PRIORITY_RANK.get(
            incident.priority, 9):
        incident.priority = incident.rule_priority = wanted
        note += f" raise to {wanted}"
    return note


def _apply_change(change: Mapping[str, Any], incidents: dict[str, SimIncident], rule: dom.RuleSpec) -> None:
    matching = [i for i in incidents.values() if i.labels == change["labels"] and not i.dry_run]
    if not matching:
        raise TestFileError(f"{change['where']}: no incident for {_labels_text(change['labels'])} at "
                            f"{_offset(change['at'])} to change")
    incident = max(matching, key=lambda i: i.opened_at)
    moment = START + change["at"]
    if "state" in change:
        state = change["state"]
        if state == "Investigating" and incident.state == "Resolved":
            incident.reopens += 1
        incident.state = state
        if state in ("Resolved", "Closed") and incident.resolved_at is None:
            incident.resolved_at = moment
        elif state not in ("Resolved", "Closed"):
            incident.resolved_at = None
    if "priority" in change:
        incident.priority = change["priority"]  # a person's choice: the rule no longer raises it


# -- test files ----------------------------------------------------------------------------------------

@dataclass
class Expectation:
    at: float
    incidents: list[dict[str, Any]]
    where: str


@dataclass
class RuleTest:
    name: str
    where: str
    rule: dom.RuleSpec
    series: list[tuple[dict[str, str], list[float | None]]]
    changes: list[dict[str, Any]]
    expectations: list[Expectation]


@dataclass
class TestResult:
    test: RuleTest
    failures: list[str] = field(default_factory=list)
    replay: Replay | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


def _load_rules(test_file: Path, doc: Document) -> dict[str, tuple[dict[str, Any], str]]:
    data = doc.data
    patterns = data.get("rule_files")
    if not isinstance(patterns, list) or not patterns:
        raise TestFileError(f"{test_file}:{doc.line_of(('rule_files',))}: rule_files must list DetectionRule "
                            "files (relative to this file)")
    rules: dict[str, tuple[dict[str, Any], str]] = {}
    for index, pattern in enumerate(patterns):
        where = f"{test_file}:{doc.line_of(('rule_files', index))}"
        full = str((test_file.parent / str(pattern)))
        matches = sorted(glob.glob(full)) if any(c in str(pattern) for c in "*?[") else [full]
        if not matches or not all(Path(m).is_file() for m in matches):
            raise TestFileError(f"{where}: rule file {pattern!r} not found")
        for match in matches:
            try:
                for rule_doc in load_documents(Path(match).read_text()):
                    body = rule_doc.data
                    if isinstance(body, dict) and body.get("kind") == "DetectionRule":
                        name = str((body.get("metadata") or {}).get("name") or "")
                        rules[name] = (body, f"{match}:{rule_doc.line}")
            except (OSError, YamlError) as error:
                line = getattr(error, "line", 0)
                raise TestFileError(f"{match}:{line}: {getattr(error, 'message', error)}") from None
    if not rules:
        raise TestFileError(f"{test_file}:{doc.line_of(('rule_files',))}: the rule files hold no DetectionRule")
    return rules


def _rule_spec(body: Mapping[str, Any], where: str, namespace: str) -> dom.RuleSpec:
    defaulted = as_the_api_server_stores_it(body)
    name = str((defaulted.get("metadata") or {}).get("name") or "rule")
    try:
        return dom.parse_rule(namespace, name, defaulted.get("spec") or {})
    except dom.InvalidRule as error:
        raise TestFileError(f"{where}: DetectionRule/{name}: {error}") from None
    except (TypeError, ValueError, KeyError) as error:
        raise TestFileError(f"{where}: DetectionRule/{name}: invalid rule ({error}); run incidentctl lint") from None


def _duration(value: Any, where: str, what: str) -> float:
    try:
        return parse_duration(str(value))
    except ValueError as error:
        raise TestFileError(f"{where}: {what}: {error}") from None


def load_tests(path: Path) -> list[RuleTest]:
    try:
        docs = list(load_documents(path.read_text()))
    except OSError as error:
        raise TestFileError(f"{path}:0: cannot read: {error}") from None
    except YamlError as error:
        raise TestFileError(f"{path}:{error.line}: {error.message}") from None
    if len(docs) != 1 or not isinstance(docs[0].data, dict):
        raise TestFileError(f"{path}:1: a rule test file is one YAML mapping with rule_files and tests")
    doc = docs[0]
    unknown = sorted(set(doc.data) - {"rule_files", "tests", "namespace"})
    if unknown:
        raise TestFileError(f"{path}:{doc.line_of((unknown[0],))}: unknown key {unknown[0]!r} "
                            "(allowed: rule_files, tests, namespace)")
    rules = _load_rules(path, doc)
    namespace = str(doc.data.get("namespace") or "default")
    tests = doc.data.get("tests")
    if not isinstance(tests, list) or not tests:
        raise TestFileError(f"{path}:{doc.line_of(('tests',))}: tests must be a non-empty list")
    return [_load_test(path, doc, index, raw, rules, namespace) for index, raw in enumerate(tests)]


def _load_test(path: Path, doc: Document, index: int, raw: Any, rules, namespace: str) -> RuleTest:
    base = ("tests", index)

    def at(*sub: Any) -> str:
        return f"{path}:{doc.line_of(base + sub)}"

    if not isinstance(raw, dict):
        raise TestFileError(f"{at()}: each test is a mapping")
    allowed = {"name", "rule", "interval", "input_series", "expected_incidents", "incident_changes"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise TestFileError(f"{at(unknown[0])}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    name = str(raw.get("name") or f"test {index + 1}")
    rule_name = raw.get("rule")
    if rule_name is None:
        if len(rules) != 1:
            raise TestFileError(f"{at()}: the rule files hold {len(rules)} rules ({', '.join(sorted(rules))}); "
                                "say which one with rule:")
        rule_name = next(iter(rules))
    if rule_name not in rules:
        raise TestFileError(f"{at('rule')}: no DetectionRule {rule_name!r} in the rule files "
                            f"(found: {', '.join(sorted(rules))})")
    body, rule_where = rules[rule_name]
    rule = _rule_spec(body, rule_where, namespace)
    if raw.get("interval") is not None:
        interval = _duration(raw["interval"], at("interval"), "interval")
        if interval <= 0:
            raise TestFileError(f"{at('interval')}: interval must be greater than zero")
        rule = replace(rule, interval_s=interval)
        history_step = float(getattr(rule, "history_step_s", 0.0) or 0.0)
        if history_step and history_step < interval:
            raise TestFileError(f"{at('interval')}: interval {_offset(interval)} is longer than the baseline's "
                                f"history step ({_offset(history_step)}); the operator refuses such a rule")

    series: list[tuple[dict[str, str], list[float | None]]] = []
    inputs = raw.get("input_series")
    if not isinstance(inputs, list) or not inputs:
        raise TestFileError(f"{at('input_series')}: input_series must list {{series, values}}")
    seen: set[str] = set()
    for k, item in enumerate(inputs):
        if not isinstance(item, dict) or "series" not in item or "values" not in item:
            raise TestFileError(f"{at('input_series', k)}: each input series needs series and values")
        try:
            labels = parse_series(item["series"])
            values = expand_values(item["values"])
        except ValueError as error:
            raise TestFileError(f"{at('input_series', k)}: {error}") from None
        key = _labels_text(labels)
        if key in seen:
            raise TestFileError(f"{at('input_series', k)}: series {key} is given twice")
        seen.add(key)
        series.append((labels, values))

    changes = []
    for k, item in enumerate(raw.get("incident_changes") or []):
        where = at("incident_changes", k)
        if not isinstance(item, dict) or "at" not in item or not isinstance(item.get("labels"), dict):
            raise TestFileError(f"{where}: each incident change needs at and labels (and state or priority)")
        change: dict[str, Any] = {"at": _duration(item["at"], where, "at"), "where": where,
                                  "labels": {str(a): str(b) for a, b in item["labels"].items()}}
        if "state" in item:
            if item["state"] not in CHANGEABLE_STATES:
                raise TestFileError(f"{where}: state must be one of {', '.join(CHANGEABLE_STATES)}")
            change["state"] = item["state"]
        if "priority" in item:
            if item["priority"] not in PRIORITY_RANK:
                raise TestFileError(f"{where}: priority must be P1-P4")
            change["priority"] = item["priority"]
        if "state" not in change and "priority" not in change:
            raise TestFileError(f"{where}: an incident change sets state or priority")
        changes.append(change)

    grouped: dict[float, Expectation] = {}
    entries = raw.get("expected_incidents")
    if not isinstance(entries, list) or not entries:
        raise TestFileError(f"{at('expected_incidents')}: expected_incidents must list {{at, labels, ...}}")
    for k, item in enumerate(entries):
        where = at("expected_incidents", k)
        if not isinstance(item, dict) or "at" not in item:
            raise TestFileError(f"{where}: each expectation needs at")
        moment = _duration(item["at"], where, "at")
        expectation = grouped.setdefault(moment, Expectation(moment, [], where))
        if "incidents" in item:
            listed = item["incidents"] or []
            if not isinstance(listed, list):
                raise TestFileError(f"{where}: incidents must be a list")
            extra = sorted(set(item) - {"at", "incidents"})
            if extra:
                raise TestFileError(f"{where}: with incidents:, give the fields inside each incident")
        else:
            listed = [{key: value for key, value in item.items() if key != "at"}]
        for entry in listed:
            if not isinstance(entry, dict) or not isinstance(entry.get("labels"), dict):
                raise TestFileError(f"{where}: an expected incident needs labels (the group's labels)")
            extra = sorted(set(entry) - {"labels", *EXPECTABLE})
            if extra:
                raise TestFileError(f"{where}: unknown field {extra[0]!r} (allowed: labels, {', '.join(EXPECTABLE)})")
            expectation.incidents.append({**entry, "labels": {str(a): str(b) for a, b in entry["labels"].items()}})
    return RuleTest(name=name, where=at(), rule=rule, series=series, changes=changes,
                    expectations=sorted(grouped.values(), key=lambda e: e.at))


# -- running -------------------------------------------------------------------------------------------

def run_test(test: RuleTest) -> TestResult:
    result = TestResult(test)
    try:
        result.replay = replay(test.rule, test.series, test.changes)
    except TestFileError as error:
        result.failures.append(str(error))
        return result
    interval = result.replay.interval_s
    count = len(result.replay.snapshots)
    for expectation in test.expectations:
        index = math.floor(expectation.at / interval + 1e-9)
        if index >= count:
            result.failures.append(f"at {_offset(expectation.at)}: after the last input value "
                                   f"(at {_offset((count - 1) * interval)}); add values or move the expectation")
            continue
        snapshot = result.replay.snapshots[index]
        result.failures.extend(_compare(expectation, list(snapshot.values())))
    return result


def _compare(expectation: Expectation, incidents: list[SimIncident]) -> list[str]:
    when = f"at {_offset(expectation.at)}"
    remaining = sorted(incidents, key=lambda i: i.opened_at)
    problems: list[str] = []
    unmatched: list[dict[str, Any]] = []
    for want in expectation.incidents:
        candidates = [i for i in remaining if i.labels == want["labels"]]
        if not candidates:
            unmatched.append(want)
            continue
        best = min(candidates, key=lambda i: len(_differences(want, i)))
        remaining.remove(best)
        for difference in _differences(want, best):
            problems.append(f"{when}: incident {_labels_text(want['labels'])} ({best.name}): {difference}")
    for want in unmatched:
        problems.append(f"{when}: expected an incident for {_labels_text(want['labels'])}, none was opened"
                        + _others(incidents))
    for extra in remaining:
        problems.append(f"{when}: unexpected incident {extra.describe()}")
    return problems


def _others(incidents: list[SimIncident]) -> str:
    if not incidents:
        return ""
    return " (open: " + "; ".join(i.describe() for i in incidents) + ")"


def _differences(want: Mapping[str, Any], got: SimIncident) -> list[str]:
    out = []
    for key in EXPECTABLE:
        if key not in want:
            continue
        actual = getattr(got, key)
        expected = want[key]
        if key in ("value", "peak"):
            if not isinstance(expected, (int, float)) or not math.isclose(float(expected), actual, rel_tol=1e-9,
                                                                           abs_tol=1e-9):
                out.append(f"{key} is {actual:g}, expected {expected}")
        elif key == "reopens":
            if int(expected) != actual:
                out.append(f"reopens is {actual}, expected {expected}")
        elif key == "dry_run":
            if bool(expected) != actual:
                out.append(f"dry_run is {str(actual).lower()}, expected {str(bool(expected)).lower()}")
        elif str(expected) != str(actual):
            out.append(f"{key} is {actual!r}, expected {expected!r}")
    return out


def format_trace(result: TestResult) -> list[str]:
    if result.replay is None:
        return []
    lines = ["    time      group                          value   threshold  phase    actions",
             "    (value: what the detector tests -- the windowed count for baseline; threshold inf: warming up)"]
    for row in result.replay.trace:
        value = "-" if row.value is None else f"{row.value:g}"
        threshold = "-" if row.threshold is None else f"{row.threshold:g}"
        lines.append(f"    {_offset(row.at - START):<9} {_labels_text(row.labels):<30} {value:>7} {threshold:>11}  "
                     f"{row.phase:<8} {', '.join(row.actions)}")
    return lines
