"""What a DetectionRule means, and what one evaluation of it should do. Pure: no I/O, no clock.

The service layer (services/detection.py) queries Prometheus, calls :func:`plan_evaluation`
with the samples, the per-group state kept in the rule's status and what it knows of the
incidents, then carries out the returned actions (create an incident, reopen one, update its
evidence) and writes the new group states back to the rule's status.
"""

from __future__ import annotations

import math
import statistics
import urllib.parse
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal, Mapping, Sequence, TypedDict, cast

from ...api import DEFAULT_PRIORITY, RESOLVED_OR_CLOSED, State
from ...names import rule_episode_of, rule_fingerprint, rule_incident_name
from .detectors import (
    BASELINE_PARAMETERS,
    DEFAULT_DETECTOR_SPEC,
    THRESHOLD_PARAMETERS,
    Detector,
    InvalidDetector,
    Parameter,
    SeasonalWindow,
    Verdict,
    build_detector,
)
from ..common.durations import parse_duration
from .episodes import FIRING, INACTIVE, EpisodeState, mark_resolved, step
from ..common.sandbox import RULE_TEXT, TemplateError, render
from ..common.text import strip_unsafe
from ..common.timeutil import format_time, format_time_precise

MAX_GROUPS = 100
MAX_DRY_RUN = 20
DEFAULT_TITLE = "Spike in {{ rule }}: {{ labels | dictsort | map('join', '=') | join(', ') }}"
START_FRACTION = 0.2
# The finest grid the start of an episode is placed on (a refinement query, only when an episode
# opens): at most one second from the first sample that left normal, for any scrape interval >= 1s.
FINE_START_STEP_SECONDS = 1.0
# The baseline detector's defaults are tuned for 5-minute samples (docs/detection.md).
DEFAULT_BASELINE_STEP_SECONDS = 300.0
# The most history samples one evaluation fetches (one range query); a detector wanting more gets these.
MAX_HISTORY_POINTS = 300
# The defaults of the rule's durations, as in the CRD (crds/detectionrules.yaml).
DEFAULT_INTERVAL, DEFAULT_FOR, DEFAULT_COOLDOWN, DEFAULT_RECOVERY = "30s", "0s", "30m", "1h"

#: Every field of ``spec.detector.<type>``, by type: the parser's table (``baseline.step`` is a duration,
#: kept by the rule; its default is DEFAULT_BASELINE_STEP_SECONDS).
DETECTOR_PARAMETERS: Mapping[str, tuple[Parameter, ...]] = {
    "threshold": THRESHOLD_PARAMETERS,
    "baseline": BASELINE_PARAMETERS,
}


class InvalidRule(ValueError):
    """The rule cannot be evaluated; the message is shown to people in the Ready condition."""


@dataclass(frozen=True)
class PriorityBand:
    min_value: float
    priority: str


@dataclass(frozen=True)
class RuleSpec:
    namespace: str
    name: str
    query: str
    interval_s: float
    for_s: float
    cooldown_s: float
    recovery_s: float
    mode: str
    detector: Detector
    detector_type: str
    default_priority: str
    bands: tuple[PriorityBand, ...]
    title: str
    description: str | None
    service: str | None
    team: str | None
    extra_labels: Mapping[str, str]
    group_labels: tuple[str, ...]
    history_step_s: float = 0.0  # spacing of history samples (baseline: detector.baseline.step)

    @property
    def dry_run(self) -> bool:
        return self.mode == "DryRun"

    @property
    def history_points(self) -> int:
        return max(self.detector.history_points, 1)

    @property
    def step_s(self) -> float:
        return self.history_step_s or self.interval_s

    @property
    def fetched_history_points(self) -> int:
        """How many history samples one evaluation range-queries (at least 30, for startedAt; at most
        MAX_HISTORY_POINTS); the detector sees the last ``history_points`` of them."""
        return min(max(self.history_points, 30), MAX_HISTORY_POINTS)

    @property
    def seasonal_windows(self) -> tuple[SeasonalWindow, ...]:
        return self.detector.seasonal_windows


def check_promql(query: str) -> None:
    """Raises InvalidRule with the parser's message when ``query`` is not valid PromQL."""
    import promql_parser

    try:
        promql_parser.parse(query)
    except Exception as error:  # the binding raises ValueError/RuntimeError depending on version
        raise InvalidRule(f"spec.query is not valid PromQL: {error}") from None


@dataclass(frozen=True)
class ParsedDetector:
    type: str  # threshold or baseline
    detector: Detector
    history_step_s: float  # the spacing of the history it learns from (0: the rule's interval)


def parse_detector(spec: Mapping[str, Any] | None) -> ParsedDetector:
    """``spec.detector`` of a DetectionRule; :class:`InvalidDetector` naming the field (``detector....``).

    The parameters are those of :data:`DETECTOR_PARAMETERS`; ``baseline.step`` belongs to the rule (it says
    how the history is sampled), every other field to the detector.
    """
    if spec is not None and not isinstance(spec, Mapping):
        raise InvalidDetector(f"detector must be a mapping, got {type(spec).__name__}")
    detector_spec = dict(spec or DEFAULT_DETECTOR_SPEC)
    detector_type = str(detector_spec.get("type") or "baseline")
    history_step = 0.0
    baseline = detector_spec.get("baseline")
    if isinstance(baseline, Mapping) and "step" in baseline:
        baseline = dict(baseline)
        try:
            history_step = parse_duration(str(baseline.pop("step")))
        except ValueError as error:
            raise InvalidDetector(f"detector.baseline.step: {error}") from None
        detector_spec["baseline"] = baseline
    elif detector_type == "baseline":
        history_step = DEFAULT_BASELINE_STEP_SECONDS
    try:
        detector = build_detector(detector_spec)
    except InvalidDetector:
        raise
    except (ValueError, TypeError) as error:
        raise InvalidDetector(f"detector: {error}") from None
    return ParsedDetector(detector_type, detector, history_step)


def parse_rule(namespace: str, name: str, spec: Mapping[str, Any]) -> RuleSpec:
    """Validates what only the operator can judge (PromQL, detector, templates); InvalidRule otherwise."""
    query = str(spec.get("query") or "").strip()
    if not query:
        raise InvalidRule("spec.query is empty")
    check_promql(query)

    def seconds(key: str, default: str) -> float:
        try:
            return parse_duration(str(spec.get(key) or default))
        except ValueError as error:
            raise InvalidRule(f"spec.{key}: {error}") from None

    try:
        parsed = parse_detector(spec.get("detector"))
    except InvalidDetector as error:
        raise InvalidRule(f"spec.{error}") from None
    detector_type, detector, history_step = parsed.type, parsed.detector, parsed.history_step_s

    priority = dict(spec.get("priority") or {})
    bands = tuple(sorted((PriorityBand(float(b["minValue"]), str(b["priority"])) for b in priority.get("bands") or []),
                         key=lambda b: -b.min_value))
    template = dict(spec.get("incident") or {})
    # A template is tried once here, with the group labels present (each its own name as value), so
    # one that exceeds the engine's limits makes the rule Invalid before any evaluation.
    sample_labels = {str(g): str(g) for g in spec.get("groupLabels") or ()}
    for key in ("title", "description", "service", "team"):
        if template.get(key):
            try:
                render(str(template[key]), {"labels": sample_labels, "value": 0, "baseline": 0, "threshold": 0,
                                            "rule": name, "namespace": namespace}, RULE_TEXT)
            except TemplateError as error:
                raise InvalidRule(f"spec.incident.{key}: {_template_problem(error)}") from None
    rule = RuleSpec(
        namespace=namespace, name=name, query=query,
        interval_s=seconds("interval", DEFAULT_INTERVAL), for_s=seconds("for", DEFAULT_FOR),
        cooldown_s=seconds("cooldown", DEFAULT_COOLDOWN), recovery_s=seconds("recoveryWindow", DEFAULT_RECOVERY),
        mode=str(spec.get("mode") or "Active"), detector=detector,
        detector_type=detector_type,
        default_priority=str(priority.get("default") or DEFAULT_PRIORITY), bands=bands,
        title=str(template.get("title") or DEFAULT_TITLE), description=template.get("description"),
        service=template.get("service"), team=template.get("team"),
        extra_labels=dict(template.get("labels") or {}), group_labels=tuple(spec.get("groupLabels") or ()),
        history_step_s=history_step,
    )
    if rule.interval_s <= 0:
        raise InvalidRule("spec.interval must be greater than zero")
    if history_step and history_step < rule.interval_s:
        raise InvalidRule(f"spec.detector.baseline.step ({history_step:g}s) must not be shorter than "
                          f"spec.interval ({rule.interval_s:g}s)")
    return rule


# -- identities -----------------------------------------------------------------------------------

def group_of(rule: RuleSpec, labels: Mapping[str, str]) -> dict[str, str]:
    labels = {k: v for k, v in labels.items() if k != "__name__"}
    if rule.group_labels:
        return {k: labels.get(k, "") for k in rule.group_labels}
    return dict(sorted(labels.items()))


# The group's fingerprint and the incident names are built in names.py.


# -- samples the rule refuses ------------------------------------------------------------------------

#: Why a sample was dropped (``status.droppedSamples.reasons`` and the ``reason`` label of
#: ``detection_rule_samples_dropped_total``).
NON_FINITE, MISSING_GROUP_LABEL = "NonFinite", "MissingGroupLabel"
DROP_REASONS = (NON_FINITE, MISSING_GROUP_LABEL)


@dataclass
class Screened:
    """The samples an evaluation plans with, and how many it refused, by reason."""

    samples: list[tuple[dict[str, str], float]]
    dropped: dict[str, int] = field(default_factory=dict)
    missing_labels: tuple[str, ...] = ()  # the group labels the refused series lacked

    @property
    def dropped_count(self) -> int:
        return sum(self.dropped.values())

    def message(self) -> str:
        """A sentence for people: how many samples were dropped, and why."""
        parts = []
        if self.dropped.get(NON_FINITE):
            parts.append(f"{self.dropped[NON_FINITE]} with a value that is not a finite number (+Inf, -Inf or NaN)")
        if self.dropped.get(MISSING_GROUP_LABEL):
            parts.append(f"{self.dropped[MISSING_GROUP_LABEL]} without the group label(s) "
                         f"{', '.join(self.missing_labels) or '?'} (spec.groupLabels)")
        return (f"{self.dropped_count} sample(s) of the last evaluation were dropped and opened nothing: "
                + "; ".join(parts))


def screen_samples(rule: RuleSpec, samples: Sequence[tuple[Mapping[str, str], float]]) -> Screened:
    """Refuses, sample by sample, what must never open an incident: a value that is not a finite
    number (Prometheus answers ``+Inf``, ``-Inf`` and ``NaN``, e.g. a division by zero), and a series
    without one of the rule's ``groupLabels`` (it would open an incident for an empty group)."""
    screened = Screened(samples=[])
    missing: list[str] = []
    for labels, value in samples:
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            screened.dropped[NON_FINITE] = screened.dropped.get(NON_FINITE, 0) + 1
            continue
        absent = [g for g in rule.group_labels if not labels.get(g)]
        if absent:
            screened.dropped[MISSING_GROUP_LABEL] = screened.dropped.get(MISSING_GROUP_LABEL, 0) + 1
            missing.extend(g for g in absent if g not in missing)
            continue
        screened.samples.append((dict(labels), float(value)))
    screened.missing_labels = tuple(missing[:10])
    return screened


def finite_points(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """A history without its non-finite samples (the detectors learn only from numbers)."""
    return [(t, v) for t, v in points if math.isfinite(v) and math.isfinite(t)]


# The newest later incidents (recurrences) listed on an earlier incident (status.signal.laterIncidents).
MAX_LATER_INCIDENTS = 10


def continue_episode_count(group_incidents: Mapping[str, str]) -> tuple[str | None, str | None, int]:
    """A group's episode count restarted (its state had been dropped from the rule's status once its
    windows passed) and the episode's name is taken by an earlier, Resolved or Closed incident.
    From the group's incidents (name -> spec.state, found by the fingerprint label) returns
    ``(open incident to join, previous incident to link, episode number to open)``:

    * an incident of the group that is still open is this episode's (this operator created it before
      a crash, or a rival replica did): join it, open nothing;
    * otherwise the new episode continues the count after the highest one, and is a recurrence of it.
    """
    numbered = sorted(((rule_episode_of(name), name, state) for name, state in group_incidents.items()), reverse=True)
    for episode, name, state in numbered:
        if state not in RESOLVED_OR_CLOSED:
            return name, None, episode
    if not numbered:
        return None, None, 1
    return None, numbered[0][1], numbered[0][0] + 1


def with_later_incident(later: Sequence[str] | None, name: str) -> list[str]:
    """``later`` (an earlier incident's recurrences, oldest first) with ``name`` last, once, bounded to
    the newest :data:`MAX_LATER_INCIDENTS`."""
    names = [n for n in (later or ()) if isinstance(n, str) and n != name] + [name]
    return names[-MAX_LATER_INCIDENTS:]


def priority_for(rule: RuleSpec, value: float) -> str:
    for band in rule.bands:
        if value >= band.min_value:
            return band.priority
    return rule.default_priority


def graph_url(base: str, query: str) -> str:
    params = urllib.parse.urlencode({"g0.expr": query, "g0.tab": "0", "g0.range_input": "6h"})
    return f"{base.rstrip('/')}/graph?{params}"


def tested_window(detector: Detector, verdict: Verdict) -> int:
    """How many consecutive samples the detector summed into the value it tested (1: the sample itself).

    The threshold detector tests the query's value; the baseline detector tests a windowed count
    whose length depends on which of its tests reported (spike, shift or drop).
    """
    attribute = {"spike": "window_points", "shift": "shift_window_points",
                 "drop": "drop_window_points"}.get(verdict.component or "")
    return max(int(getattr(detector, attribute, 1) or 1), 1) if attribute else 1


def windowed(points: Sequence[tuple[float, float]], window: int, spacing_s: float,
             grid_s: float | None = None) -> list[tuple[float, float]]:
    """The tested value at each point's time: the sample there plus the ``window - 1`` samples
    ``spacing_s`` apart before it. ``points`` lie on a regular grid of ``grid_s`` seconds (default
    ``spacing_s``); a time whose window has a gap (a missing sample) is left out."""
    if window <= 1:
        return sorted(points)
    grid = grid_s or spacing_s
    ordered = sorted(points)
    if not ordered or grid <= 0:
        return []
    origin = ordered[0][0]
    by_index = {round((t - origin) / grid): v for t, v in ordered}
    stride = max(round(spacing_s / grid), 1)
    out = []
    for t, _ in ordered:
        index = round((t - origin) / grid)
        window_values = [by_index.get(index - j * stride) for j in range(window)]
        if all(v is not None for v in window_values):
            out.append((t, float(sum(window_values))))  # type: ignore[arg-type]
    return out


@dataclass(frozen=True)
class StartLevel:
    """Where a group's tested value counts as out of normal: beyond ``level`` (above it when
    ``rising``, below it for a drop). Kept on the open action so the service can refine the start
    on a finer grid with the same level."""

    normal: float
    level: float
    rising: bool = True
    window: int = 1

    def beyond(self, value: float) -> bool:
        return value >= self.level if self.rising else value <= self.level


def start_level(normal: float, fire_level: float, window: int = 1) -> StartLevel:
    """The "left normal" level: ``START_FRACTION`` (20%) of the way from normal to the level that
    fired, at least one ticket away from normal (counts are integers), never past the firing level."""
    rising = fire_level >= normal
    gap = abs(fire_level - normal)
    margin = max(START_FRACTION * gap, 1.0)
    if gap > 0:
        margin = min(margin, gap)
    return StartLevel(normal=normal, level=normal + margin if rising else normal - margin,
                      rising=rising, window=window)


def estimate_start(tested: Sequence[tuple[float, float]], now: float, level: StartLevel) -> float:
    """The time of the first sample of the episode that left normal: the earliest point of the
    trailing run (ending at ``now``) of tested values beyond ``level``; ``now`` when there is none.
    Walking back stops at the first point back inside normal, so an earlier, separate burst is not
    taken for this episode's start."""
    start = now
    for t, v in sorted(tested, reverse=True):
        if t > now:
            continue
        if level.beyond(v):
            start = t
        else:
            break
    return start


def normal_level(history: Sequence[tuple[float, float]], verdict: Verdict, before: float) -> float:
    """What is normal for the group, on the scale of the tested value: the detector's baseline when it
    has one, else the median of the samples before the condition first held (``before``), so that
    the spike's own rising edge does not count as normal."""
    if verdict.expected is not None and math.isfinite(verdict.expected):
        return float(verdict.expected)
    quiet = [v for t, v in history if t < before] or [v for _, v in history]
    return float(statistics.median(quiet)) if quiet else 0.0


def refinement_window(rule: "RuleSpec", level: StartLevel, coarse_start: float,
                      max_points: int = 10_000) -> tuple[float, float, float] | None:
    """(start, end, step) of the finer range query that places the start within a second or a few
    of the first sample that left normal, when the rule's step is coarser than that; None when the
    coarse estimate is already as fine. The first out-of-normal sample lies after the last coarse
    point that was still normal, i.e. in ``(coarse_start - step, coarse_start]``; the query also
    covers the ``window - 1`` steps before, which the windowed value at those times needs."""
    step = rule.step_s
    span = step * level.window
    fine = max(FINE_START_STEP_SECONDS, span / max_points)
    if fine >= step:
        return None
    fine = step / math.floor(step / fine)  # a divisor of the step, so windowed sums land on the fine grid
    return coarse_start - span, coarse_start, fine


def refine_start(rule: "RuleSpec", level: StartLevel, coarse_start: float,
                 fine_points: Sequence[tuple[float, float]], fine_step: float) -> float:
    """The start found on the fine grid, within one step of ``coarse_start``; ``coarse_start`` when the
    fine samples do not show the run (a gap, or the series changed between the two queries)."""
    tested = windowed(fine_points, level.window, rule.step_s, fine_step)
    window = [(t, v) for t, v in tested if coarse_start - rule.step_s < t <= coarse_start + 1e-6]
    if not window or not level.beyond(max(window)[1]):
        return coarse_start
    return min(estimate_start(window, coarse_start + 1e-6, level), coarse_start)


# -- one evaluation ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class IncidentView:
    """What the engine knows of an incident of one of its groups (from the incident book)."""

    name: str
    state: str
    resolved_at: float | None


@dataclass
class Action:
    kind: ActionKind
    fingerprint: str
    incident: str
    labels: dict[str, str]
    value: float
    verdict: Verdict
    started_at: float
    priority: str = DEFAULT_PRIORITY
    title: str = ""
    description: str = ""
    service: str | None = None
    team: str | None = None
    previous_incident: str | None = None
    peak: float = 0.0
    first_seen: float = 0.0
    # how started_at was estimated (open actions): the service may refine it on a finer grid
    start_level: StartLevel | None = None


class GroupRecord(TypedDict, total=False):
    """One entry of ``DetectionRule.status.groups`` (crds/detectionrules.yaml): a group's state between
    evaluations."""

    fingerprint: str
    labels: dict[str, str]
    incident: str  # the current/last episode's incident
    episodeState: dict[str, Any]  # EpisodeState.to_dict()
    value: float
    threshold: float
    baseline: float
    peak: float
    startedAt: str
    lastSeen: str


ActionKind = Literal["open", "reopen", "update", "dry-run"]


@dataclass
class Plan:
    groups: list[GroupRecord]
    actions: list[Action] = field(default_factory=list)
    firing: int = 0
    dropped_groups: int = 0  # groups beyond MAX_GROUPS not kept in the rule's status


def _context(rule: RuleSpec, labels: Mapping[str, str], verdict: Verdict) -> dict[str, Any]:
    return {"labels": dict(labels), "value": verdict.value, "baseline": verdict.expected,
            "threshold": verdict.threshold, "rule": rule.name, "namespace": rule.namespace}


def plan_evaluation(
    rule: RuleSpec,
    previous_groups: Sequence[Mapping[str, Any]],
    samples: Sequence[tuple[Mapping[str, str], float]],
    histories: Mapping[str, Sequence[tuple[float, float]]],
    incidents: Mapping[str, IncidentView],
    now: float,
    seasonals: Mapping[str, Sequence[Sequence[float]]] | None = None,
) -> Plan:
    """Steps every group's episode state and lists what to do.

    ``histories`` (recent samples) and ``seasonals`` (one list per detector seasonal window) are
    keyed by group fingerprint.
    """
    # the previous groups come back from the rule's status (JSON written by this function)
    by_fp: dict[str, GroupRecord] = {g["fingerprint"]: cast(GroupRecord, dict(g))
                                     for g in previous_groups if g.get("fingerprint")}
    current: dict[str, tuple[dict[str, str], float]] = {}
    for series_labels, series_value in samples:
        group = group_of(rule, series_labels)
        fp = rule_fingerprint(rule.namespace, rule.name, group)
        # Two series mapping to one group (groupLabels narrower than the query): keep the larger.
        if fp not in current or series_value > current[fp][1]:
            current[fp] = (group, series_value)

    plan = Plan(groups=[])
    for fp in set(by_fp) | set(current):
        record = by_fp.get(fp, {"fingerprint": fp})
        state = EpisodeState.from_dict(record.get("episodeState"))
        known = incidents.get(record.get("incident") or "")
        if known and known.resolved_at is not None and state.resolved_at is None and state.phase != FIRING:
            state = mark_resolved(state, known.resolved_at)
        value: float | None
        labels: Mapping[str, str]
        labels, value = current.get(fp, (record.get("labels") or {}, None))
        points = list(histories.get(fp, ()))
        history_values = [v for t, v in points if t < now][-rule.history_points:]
        if value is None:
            verdict = None
            firing = False
        else:
            verdict = rule.detector.evaluate(value, history_values, list((seasonals or {}).get(fp, ())))
            firing = verdict.firing
        state, event = step(state, firing, now, rule.for_s, rule.cooldown_s, rule.recovery_s)

        record["labels"] = dict(labels)
        if verdict is not None:
            record["value"] = verdict.value
            if math.isfinite(verdict.threshold):  # infinite while the baseline warms up
                record["threshold"] = verdict.threshold
            else:
                record.pop("threshold", None)
            if verdict.expected is not None and math.isfinite(verdict.expected):
                record["baseline"] = verdict.expected
            if firing:
                record["lastSeen"] = format_time(datetime.fromtimestamp(now, timezone.utc))

        if event == "regression" and known is not None and known.state == State.CLOSED:
            # A Closed incident is never reopened: the relapse starts a new, linked episode.
            state = replace(state, episode=state.episode + 1, episode_start=state.pending_since or now,
                            opened_at=now, regressions=0)
            event = "open"

        if event in ("open", "regression", "continue") or (state.phase == FIRING and verdict is not None):
            assert verdict is not None
            if event == "open":
                record["peak"] = verdict.value
                # Impact began with the first sample of this episode that left normal (on the scale of
                # what the detector tested), not when the rule noticed: walk back through the history.
                assert value is not None  # a verdict means a sample now
                window = tested_window(rule.detector, verdict)
                tested = windowed(points + [(now, value)], window, rule.step_s)
                episode_began = state.episode_start or now
                level = start_level(normal_level(tested, verdict, episode_began), verdict.threshold, window)
                started = min(estimate_start(tested, now, level), episode_began)
                record["startedAt"] = format_time_precise(datetime.fromtimestamp(started, timezone.utc))
                previous = record.get("incident")
                name = rule_incident_name(rule.name, fp, state.episode)
                record["incident"] = name
                context = _context(rule, labels, verdict)
                action = Action(
                    kind="dry-run" if rule.dry_run else "open", fingerprint=fp, incident=name, labels=dict(labels),
                    value=verdict.value, verdict=verdict, started_at=started,
                    priority=priority_for(rule, verdict.value),
                    title=strip_unsafe(_render(rule.title, context, DEFAULT_TITLE))[:200],  # one line
                    description=_render(rule.description, context, "")[:10000] if rule.description else "",
                    service=_render(rule.service, context, "") or None if rule.service else None,
                    team=_render(rule.team, context, "") or None if rule.team else None,
                    previous_incident=previous if previous and previous != name else None,
                    peak=verdict.value, first_seen=state.pending_since or now, start_level=level,
                )
                plan.actions.append(action)
            else:
                record["peak"] = max(float(record.get("peak") or 0.0), verdict.value)
                if record.get("incident") and not rule.dry_run:
                    plan.actions.append(Action(
                        kind="reopen" if event == "regression" else "update", fingerprint=fp,
                        incident=record["incident"], labels=dict(labels), value=verdict.value, verdict=verdict,
                        started_at=state.episode_start or now, peak=record["peak"],
                        first_seen=state.episode_start or now,
                    ))
        record["episodeState"] = state.to_dict()
        if state.phase == FIRING:
            plan.firing += 1
        if _worth_keeping(record, state, known, rule, now):
            plan.groups.append(record)

    plan.groups.sort(key=lambda g: (g["episodeState"].get("phase") == INACTIVE, -float(g["episodeState"].get("lastFiredAt") or 0)))
    plan.dropped_groups = max(0, len(plan.groups) - MAX_GROUPS)
    plan.groups = plan.groups[:MAX_GROUPS]
    return plan


def _worth_keeping(record: GroupRecord, state: EpisodeState, known: IncidentView | None,
                   rule: RuleSpec, now: float) -> bool:
    if state.phase != INACTIVE:
        return True
    if state.episode == 0:
        return False
    if known is not None and known.state not in RESOLVED_OR_CLOSED:
        return True
    if state.cleared_at is not None and now - state.cleared_at <= rule.cooldown_s:
        return True
    if state.resolved_at is not None and now - state.resolved_at <= rule.recovery_s:
        return True
    return known is not None and known.state == State.RESOLVED and state.resolved_at is None


def _template_problem(error: TemplateError) -> str:
    if error.reason in ("limit", "timeout"):
        return error.message
    if error.reason == "sandbox":
        return f"template refused by the sandbox: {error.message}"
    if error.reason == "syntax":
        return f"template {error.message}"
    return error.message if error.message.startswith("template error") else f"template error: {error.message}"


def _render(template: str | None, context: Mapping[str, Any], fallback: str) -> str:
    if not template:
        return fallback
    try:
        return render(template, context, RULE_TEXT)
    except TemplateError:
        return render(fallback, context, RULE_TEXT) if fallback else ""


def signal_status(rule: RuleSpec, action: Action, graph_base: str | None, now: float) -> dict[str, Any]:
    """The evidence block written to Incident.status.signal."""
    signal: dict[str, Any] = {
        "rule": f"{rule.namespace}/{rule.name}",
        "query": rule.query,
        "fingerprint": action.fingerprint,
        "groupLabels": dict(action.labels),
        "value": action.value,
        "peak": max(action.peak, action.value),
        "firstSeen": format_time(datetime.fromtimestamp(action.first_seen, timezone.utc)),
        "lastSeen": format_time(datetime.fromtimestamp(now, timezone.utc)),
    }
    if math.isfinite(action.verdict.threshold):
        signal["threshold"] = action.verdict.threshold
    if action.verdict.expected is not None and math.isfinite(action.verdict.expected):
        signal["baseline"] = action.verdict.expected
    if graph_base:
        signal["graphURL"] = graph_url(graph_base, rule.query)
    if action.previous_incident:
        signal["previousIncident"] = action.previous_incident
    return signal
