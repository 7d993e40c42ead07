"""The incident lifecycle, as one pure function from (object, clock) to the desired status.

``reconcile_incident`` is called on every create/update/resume and on every timer wake-up.
It reads only the object itself (spec, status, metadata) and ``now``, so the operator can
die at any moment: timestamps, deadlines and escalation levels are recomputed from
``status`` and nothing is lost or repeated. Each transition is stamped once; a skipped state
still gets its stamp; a reopen re-arms the deadlines.

It is a pipeline of named pure steps, each tested on its own (tests/unit/test_reconcile_steps.py):

1. :func:`derive_priority` and :func:`impact_start`: what only the operator can judge in spec;
2. :func:`record_detection`: the first (or an earlier) detection;
3. :func:`priority_change`: priority and severity, re-arming the deadlines when it changes;
4. :func:`acted_at` and :func:`stamp_transition`: state stamps at the time the person acted
   (the API server's record of the write, or the explicit ``spec.stateChange``), not the
   operator's processing time (docs/deadlines.md, "When the person acted");
   :func:`correct_stamp` applies a later explicit correction;
5. :func:`compute_deadlines`: response deadline and resolution target;
6. :func:`escalate`: escalation levels while unacknowledged past the deadline;
7. :func:`warn_before_breach`: pre-breach warnings at configured fractions of the response time;
8. :func:`derive_conditions`: Acknowledged, ResponseOnTime, Resolved, ReviewComplete, Ready;
9. :func:`observations_due`: the metric observations due once per incident;
10. the notifications queued in the outbox and the bounded timeline (in :func:`reconcile_incident`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

from ...api import (DETECTED_AT_ANNOTATION, INITIAL_STATE, RESOLVED_OR_CLOSED, SOURCE_ANNOTATION, STATE_INDEX,
                    STATES, ConditionType, Priority, Source, State)
from . import deadlines as dl
from .calendar import BusinessCalendar
from ..common.conditions import find_condition, set_condition, with_progress
from ..notify.book import DEADLINE_WARNING as WARNING_EVENT, queue as queue_notifications
from .priority import effective_priority, severity_of
from .review import open_action_items, review_missing, review_required
from .timeline import DEFAULT_TIMELINE_LIMIT, append_entries, timeline_entry
from ..common.status import status_patch  # noqa: F401 - moved to domain/common/status.py
from ..common.timeutil import format_time, format_time_precise, parse_time, time_or_none

STAMP_FIELD: dict[str, str] = {
    State.ACKNOWLEDGED: "acknowledgedAt",
    State.INVESTIGATING: "investigatingAt",
    State.MITIGATED: "mitigatedAt",
    State.RESOLVED: "resolvedAt",
    State.CLOSED: "closedAt",
}
# PagerDuty webhook v3 vocabulary for outbound events.
STATE_EVENT: dict[str, str] = {
    State.ACKNOWLEDGED: "incident.acknowledged",
    State.INVESTIGATING: "incident.investigating",
    State.MITIGATED: "incident.mitigated",
    State.RESOLVED: "incident.resolved",
    State.CLOSED: "incident.closed",
}
FUTURE_SKEW = timedelta(minutes=5)
# managedFields times are RFC 3339 with whole seconds, truncated: the write happened at most
# this long after the recorded time.
WRITE_TIME_RESOLUTION = timedelta(seconds=1)
# Pre-breach warnings, as fractions of the response time (detection or reopen -> deadline).
# P1 is paged at once and its 5 minutes leave no room for a useful warning.
DEFAULT_WARN_AT: Mapping[str, tuple[float, ...]] = MappingProxyType(
    {Priority.P1: (), Priority.P2: (0.5, 0.8), Priority.P3: (0.5, 0.8), Priority.P4: (0.8,)})
MAX_WARNINGS = 5  # per priority; status.escalation.warnedFractions maxItems

# Where a stamp's time came from (the timeline says it, docs/deadlines.md explains it).
EXPLICIT = "spec.stateChange"
WRITE_TIME = "API write time"
OPERATOR_CLOCK = "operator clock"


class InvalidSpec(ValueError):
    """What only the operator can judge is wrong; becomes ``Ready=False/Invalid``."""


def parse_warn_at(value: Any, *, where: str = "deadlines.warnAt") -> Mapping[str, tuple[float, ...]]:
    """``{P1: [], P2: [0.5, 0.8], ...}``: missing priorities keep the defaults; fractions in (0, 1)."""
    if value is None:
        return DEFAULT_WARN_AT
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping of priority (P1-P4) to a list of fractions, got {value!r}")
    result = dict(DEFAULT_WARN_AT)
    for key, fractions in value.items():
        if key not in result:
            raise ValueError(f"{where}: unknown priority {key!r} (known: P1, P2, P3, P4)")
        if fractions is None:
            fractions = []
        if not isinstance(fractions, (list, tuple)):
            raise ValueError(f"{where}.{key}: expected a list of fractions such as [0.5, 0.8], got {fractions!r}")
        parsed: list[float] = []
        for fraction in fractions:
            if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
                raise ValueError(f"{where}.{key}: {fraction!r} is not a fraction between 0 and 1 "
                                 "(0.8 warns when 80% of the response time has passed)")
            parsed.append(float(fraction))
        if len(set(parsed)) > MAX_WARNINGS:
            raise ValueError(f"{where}.{key}: at most {MAX_WARNINGS} warnings")
        result[key] = tuple(sorted(set(parsed)))
    return MappingProxyType(result)


@dataclass(frozen=True)
class LifecycleSettings:
    calendar: BusinessCalendar
    policy: dl.DeadlinePolicy
    timeline_limit: int = DEFAULT_TIMELINE_LIMIT
    warn_at: Mapping[str, tuple[float, ...]] = field(default_factory=lambda: DEFAULT_WARN_AT)


@dataclass(frozen=True)
class KubeEvent:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Notification:
    """A notification the hand-off machinery must deliver once (key is unique per incident).

    ``reconcile_incident`` queues each one in ``status.notifications.pending`` (see
    domain/notify/book.py); ``Outcome.notifications`` lists only those newly queued.
    """

    key: str
    event: str
    level: int = 0


@dataclass
class Outcome:
    status: dict[str, Any]
    events: list[KubeEvent] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)  # metric names newly due (see metrics.py)
    breached: bool = False
    escalated_levels: list[int] = field(default_factory=list)
    reopened: bool = False
    invalid: str | None = None

    @property
    def next_wakeup(self) -> datetime | None:
        escalation = self.status.get("escalation") or {}
        times = [t for t in (parse_time(escalation.get("nextEscalationAt")),
                             parse_time(escalation.get("nextWarningAt"))) if t is not None]
        return min(times) if times else None


@dataclass
class Step:
    """What one step contributes: status fields to set, and what to say about it."""

    status: dict[str, Any] = field(default_factory=dict)
    entries: list[dict[str, Any]] = field(default_factory=list)
    events: list[KubeEvent] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ActedAt:
    """When the person made the change the operator is stamping, and how that is known."""

    time: datetime
    source: str  # EXPLICIT, WRITE_TIME or OPERATOR_CLOCK
    note: str | None = None  # why a given explicit time was not used


@dataclass(frozen=True)
class Deadlines:
    response: datetime
    resolution: datetime


def _state_of(spec: Mapping[str, Any]) -> str:
    state = spec.get("state") or INITIAL_STATE
    return state if isinstance(state, str) and state in STATE_INDEX else INITIAL_STATE


def _is_acknowledged(state: str) -> bool:
    return STATE_INDEX[state] >= STATE_INDEX[State.ACKNOWLEDGED]


# ------------------------------------------------------------------------------ 1. validation

def derive_priority(spec: Mapping[str, Any]) -> str:
    """P1-P4 from spec.priority or impact x urgency; InvalidSpec when neither makes sense."""
    try:
        return str(effective_priority(spec.get("priority"), spec.get("impact"), spec.get("urgency")))
    except ValueError as error:
        raise InvalidSpec(str(error)) from None


def impact_start(spec: Mapping[str, Any], now: datetime) -> datetime | None:
    """spec.startedAt, when given; InvalidSpec when malformed or in the future."""
    try:
        started = parse_time(spec.get("startedAt"))
    except ValueError as error:
        raise InvalidSpec(f"spec.startedAt: {error}") from None
    if started and started > now + FUTURE_SKEW:
        raise InvalidSpec(f"spec.startedAt {spec.get('startedAt')} is in the future; impact cannot start after now")
    return started


def _invalid(status: dict[str, Any], generation: int | None, now: datetime, message: str) -> Outcome:
    new = dict(status)
    new["conditions"] = with_progress(
        set_condition(new.get("conditions"), "Ready", False, "Invalid", message, now, generation),
        now, generation, stalled=("Invalid", message))
    if generation is not None:
        new["observedGeneration"] = generation
    return Outcome(status=new, invalid=message,
                   events=[KubeEvent("Warning", "Invalid", message)]
                   if (find_condition(status.get("conditions"), "Ready") or {}).get("reason") != "Invalid" else [])


# ------------------------------------------------------------------------------- 2. detection

def detected_at(metadata: Mapping[str, Any], status: Mapping[str, Any], now: datetime) -> datetime:
    """The earliest detection known: min(status.detectedAt, the detected-at annotation).

    Set once, and only ever moved earlier: when a signal detected earlier joins the incident
    (an Alertmanager alert or a ticket spike, services/alerts.py lowers the annotation), time to
    detect is measured from the earliest signal.
    """
    existing = time_or_none(status.get("detectedAt"))
    annotated = time_or_none((metadata.get("annotations") or {}).get(DETECTED_AT_ANNOTATION))
    if annotated and annotated > now + FUTURE_SKEW:
        annotated = None
    if existing:
        return min(existing, annotated) if annotated else existing
    if annotated:
        return annotated
    return time_or_none(metadata.get("creationTimestamp")) or now


def record_detection(metadata: Mapping[str, Any], old: Mapping[str, Any], priority: str, title: str,
                     detected: datetime, now: datetime) -> Step:
    """Stamps the first detection (and announces the incident), or moves it earlier."""
    step = Step()
    if not old.get("detectedAt"):
        source = (metadata.get("annotations") or {}).get(SOURCE_ANNOTATION) or Source.MANUAL
        step.status.update({"detectedAt": format_time(detected), "source": source})
        step.entries.append(timeline_entry(detected, "Detected", f"{priority} incident opened ({source}): {title}"))
        step.notifications.append(Notification("opened", "incident.triggered"))
        step.observations.append("opened")
    elif (time_or_none(old.get("detectedAt")) or detected) > detected:
        step.entries.append(timeline_entry(now, "DetectedEarlier",
                                           f"Detection time moved from {old.get('detectedAt')} to "
                                           f"{format_time(detected)}: an earlier correlated signal joined"))
        step.status["detectedAt"] = format_time(detected)
    return step


# -------------------------------------------------------------------------------- 3. priority

def priority_change(old_priority: str | None, priority: str, now: datetime) -> Step:
    step = Step(status={"priority": priority, "severity": severity_of(priority)})
    if old_priority and old_priority != priority:
        message = f"Priority changed from {old_priority} to {priority}"
        step.entries.append(timeline_entry(now, "PriorityChanged", message))
        step.events.append(KubeEvent("Normal", "PriorityChanged", f"{message}; deadlines recomputed"))
        step.notifications.append(Notification(f"priority-{priority}-{now.timestamp():.0f}",
                                               "incident.priority_updated"))
    return step


# ----------------------------------------------------------------------- 4. acted-at and stamps

def write_time(metadata: Mapping[str, Any], spec_field: str) -> datetime | None:
    """When the API server accepted the write that set ``spec.<spec_field>`` to its value.

    From ``metadata.managedFields``: the entries (not of a subresource) whose ``fieldsV1``
    owns ``f:spec.f:<spec_field>``. An entry's ``time`` is the manager's last write that changed
    any field it owns, so it is never earlier than the write that set this field (never a
    stamp before the person acted), and it is whole seconds, truncated. Several owners (server-
    side apply managers agreeing on a value) share a field: the earliest of them set it.
    None when no entry owns it (managedFields stripped by a client, or an old object).
    """
    times: list[datetime] = []
    for entry in metadata.get("managedFields") or []:
        if not isinstance(entry, Mapping) or entry.get("subresource"):
            continue
        owned = ((entry.get("fieldsV1") or {}).get("f:spec") or {})
        if isinstance(owned, Mapping) and f"f:{spec_field}" in owned:
            moment = time_or_none(entry.get("time"))
            if moment is not None:
                times.append(moment)
    return min(times) if times else None


def _stamp_floor(status: Mapping[str, Any], detected: datetime) -> datetime:
    """No transition happens before detection or before the stamps already recorded."""
    times = [detected] + [t for t in (time_or_none(status.get(name)) for name in
                                      (*STAMP_FIELD.values(), "lastReopenedAt")) if t is not None]
    return max(times)


def acted_at(metadata: Mapping[str, Any], spec: Mapping[str, Any], target: str, floor: datetime,
             now: datetime) -> ActedAt:
    """When the person moved the incident to ``target`` (docs/deadlines.md, "When the person acted").

    1. ``spec.stateChange`` naming ``target`` (the CLI sends it): used when it lies between
       ``floor`` and the time the API server accepted that write (nobody acts after their
       write was accepted, so a clock far ahead cannot push a stamp into the future);
    2. else the API server's write time of ``spec.state`` (:func:`write_time`), at least ``floor``;
    3. else the operator's clock (an object without managedFields).
    """
    accepted = write_time(metadata, "state")
    note = None
    change = spec.get("stateChange")
    if isinstance(change, Mapping) and change.get("state") == target:
        claimed = time_or_none(change.get("at"))
        latest = min((write_time(metadata, "stateChange") or now) + WRITE_TIME_RESOLUTION, now + FUTURE_SKEW)
        if claimed is None:
            note = f"spec.stateChange.at {change.get('at')!r} is not an RFC 3339 time"
        elif claimed > latest:
            note = (f"spec.stateChange.at {format_time(claimed)} is after the API server accepted the change "
                    f"({format_time(latest)})")
        elif claimed < floor:
            note = f"spec.stateChange.at {format_time(claimed)} is before {format_time(floor)}, the previous stamp"
        else:
            return ActedAt(claimed, EXPLICIT)
    if accepted is not None and accepted <= now + FUTURE_SKEW:
        return ActedAt(max(accepted, floor), WRITE_TIME, note)
    return ActedAt(max(now, floor), OPERATOR_CLOCK, note)


def stamp_transition(old: Mapping[str, Any], spec: Mapping[str, Any], target: str, acted: ActedAt) -> tuple[Step, bool]:
    """The stamps, reopen bookkeeping and announcements of a move from ``status.state`` to ``target``.

    Returns the step and whether it was a reopen. Stamps and entries carry ``acted.time``.
    """
    step = Step(status={"state": target})
    previous = old.get("state") or INITIAL_STATE
    if target == previous or previous not in STATE_INDEX:
        return step, False
    at = acted.time
    where = _where(acted)
    if target == State.INVESTIGATING and previous in RESOLVED_OR_CLOSED:
        count = int(old.get("reopenCount") or 0) + 1
        step.status.update({"reopenCount": count, "lastReopenedAt": format_time(at), "resolvedAt": None,
                            "mitigatedAt": None,
                            "escalation": {"level": 0, "lastEscalatedAt": None, "nextEscalationAt": None}})
        message = f"Reopened (regression #{count}): {previous} back to Investigating"
        step.entries.append(timeline_entry(at, "Reopened", message + where))
        step.events.append(KubeEvent("Warning", "Reopened", message))
        step.notifications.append(Notification(f"reopened-{count}", "incident.reopened"))
        return step, True
    if target == State.INVESTIGATING and previous == State.MITIGATED:
        step.status["mitigatedAt"] = None
        step.entries.append(timeline_entry(at, "StateChanged", "Mitigation did not hold: back to Investigating"))
        return step, False
    for state in STATES[STATE_INDEX[previous] + 1: STATE_INDEX[target] + 1]:
        stamp = STAMP_FIELD[state]
        if not old.get(stamp):
            step.status[stamp] = format_time(at)
    step.entries.append(timeline_entry(at, "StateChanged", f"{previous} → {target}"
                                       + (f" by {spec.get('owner')}" if spec.get("owner") else "") + where))
    step.events.append(KubeEvent("Normal", target, f"Incident is now {target}"))
    suffix = f"-{old.get('reopenCount') or 0}"
    step.notifications.append(Notification(f"{target.lower()}{suffix}", STATE_EVENT[target]))
    return step, False


def _where(acted: ActedAt) -> str:
    if acted.source == EXPLICIT:
        return " (time stated in spec.stateChange)"
    if acted.note:
        return f" ({acted.note}; {acted.source} used)"
    return ""


def correct_stamp(status: Mapping[str, Any], metadata: Mapping[str, Any], spec: Mapping[str, Any],
                  target: str, floor: datetime, now: datetime) -> Step:
    """A ``spec.stateChange`` for the current state, given after the fact, corrects its stamp.

    The metric observations are already recorded in ``status.metrics.observed``, so a
    correction changes the stamp and the conditions that follow from it, never the histograms.
    """
    step = Step()
    change = spec.get("stateChange")
    stamp = STAMP_FIELD.get(target)
    if not isinstance(change, Mapping) or change.get("state") != target or stamp is None:
        return step
    if target == State.INVESTIGATING and status.get("lastReopenedAt"):
        return step  # the stamp of this Investigating is lastReopenedAt; investigatingAt is the first one
    current = time_or_none(status.get(stamp))
    if current is None:
        return step
    acted = acted_at(metadata, spec, target, floor, now)
    if acted.source != EXPLICIT or format_time(acted.time) == status.get(stamp):
        return step
    step.status[stamp] = format_time(acted.time)
    step.entries.append(timeline_entry(now, "StampCorrected",
                                       f"{stamp} corrected from {status.get(stamp)} to {format_time(acted.time)} "
                                       "(time stated in spec.stateChange)"))
    return step


# ------------------------------------------------------------------------------- 5. deadlines

def compute_deadlines(priority: str, armed_at: datetime, settings: LifecycleSettings) -> Deadlines:
    """Recomputed every time: a priority change or a reopen re-arms them."""
    return Deadlines(dl.response_deadline(priority, armed_at, settings.policy, settings.calendar),
                     dl.resolution_target(priority, armed_at, settings.policy, settings.calendar))


# ------------------------------------------------------------------------------ 6. escalation

def escalate(escalation: Mapping[str, Any], reopen_count: int, priority: str, response_deadline: datetime,
             acknowledged: bool, now: datetime, policy: dl.DeadlinePolicy) -> tuple[dict[str, Any], Step, list[int]]:
    """The escalation block and the levels newly reached while unacknowledged past the deadline."""
    step = Step()
    new = dict(escalation)
    interval = policy.escalation_interval_for(priority)
    max_level = policy.max_escalation_level
    current_level = int(new.get("level") or 0)
    due_level = dl.escalation_level_due(response_deadline, acknowledged, now, interval, max_level)
    reached: list[int] = []
    if due_level > current_level:
        for level in range(current_level + 1, due_level + 1):
            message = (f"Not acknowledged {_ago(now - response_deadline)} after its {priority} response deadline: "
                       f"escalated to level {level}")
            step.entries.append(timeline_entry(now, "Escalated", message))
            step.events.append(KubeEvent("Warning", "Escalated", message))
            step.notifications.append(Notification(f"escalated-{reopen_count}-{level}", "incident.escalated", level))
            reached.append(level)
        current_level = due_level
        new["lastEscalatedAt"] = format_time_precise(now)
    new["level"] = current_level
    next_at = None if acknowledged else dl.next_escalation_at(response_deadline, current_level, interval, max_level)
    new["nextEscalationAt"] = format_time_precise(next_at) if next_at else None
    return new, step, reached


# ------------------------------------------------------------------------- 7. pre-breach warnings

def warning_time(fraction: float, armed_at: datetime, response_deadline: datetime) -> datetime:
    """When ``fraction`` of the response time (wall clock, arming to deadline) has passed."""
    return armed_at + (response_deadline - armed_at) * fraction


def warn_before_breach(escalation: Mapping[str, Any], fractions: Sequence[float], armed_at: datetime,
                       response_deadline: datetime, acknowledged: bool, reopen_count: int, priority: str,
                       now: datetime) -> tuple[dict[str, Any], Step]:
    """Pre-breach warnings, each once per arming (recorded in ``escalation.warnedFractions``).

    Due fractions passed while the operator was down are recorded together and announced
    once, with the latest of them: two stale warnings in a row help nobody. None once
    acknowledged or breached (escalation takes over then). The notification goes to the
    current escalation level (at least level 1) and carries the hand-off packet with the
    time left (domain/notify/handoff.py).
    """
    step = Step()
    new = dict(escalation)
    sent = {float(f) for f in new.get("warnedFractions") or []}
    if acknowledged or now >= response_deadline:
        new["nextWarningAt"] = None
        return new, step
    due = [f for f in fractions if f not in sent and warning_time(f, armed_at, response_deadline) <= now]
    if due:
        latest = max(due)
        sent.update(due)
        new["warnedFractions"] = sorted(sent)
        left = response_deadline - now
        percent = round(latest * 100)
        level = max(int(new.get("level") or 0), 1)
        message = (f"{percent}% of the {priority} response time used: {_ago(left)} left to acknowledge, "
                   f"due by {format_time(response_deadline)}")
        step.entries.append(timeline_entry(now, "DeadlineWarning", message))
        step.events.append(KubeEvent("Warning", "DeadlineWarning", message))
        step.notifications.append(Notification(f"warning-{reopen_count}-{percent}", WARNING_EVENT, level))
    upcoming = [warning_time(f, armed_at, response_deadline) for f in fractions if f not in sent]
    upcoming = [t for t in upcoming if now < t < response_deadline]
    new["nextWarningAt"] = format_time_precise(min(upcoming)) if upcoming else None
    return new, step


# ------------------------------------------------------------------------------ 8. conditions

def derive_conditions(old_conditions: Any, conditions: Any, *, spec: Mapping[str, Any], target: str,
                      priority: str, level: int, ack_at: datetime | None, reopened_before: bool,
                      response_deadline: datetime, now: datetime,
                      generation: int | None) -> tuple[list[dict[str, Any]], Step, bool]:
    """The conditions, and whether the response deadline was newly breached (with its entry)."""
    step = Step()
    breached = False
    acknowledged = _is_acknowledged(target)
    if acknowledged:
        conditions = set_condition(conditions, ConditionType.ACKNOWLEDGED, True, State.ACKNOWLEDGED,
                                   f"Acknowledged by {spec.get('owner') or 'someone'}", now, generation)
    else:
        conditions = set_condition(conditions, ConditionType.ACKNOWLEDGED, False, "AwaitingAcknowledgement",
                                   f"Not yet acknowledged; due by {format_time(response_deadline)}", now, generation)
    old_on_time = find_condition(old_conditions, "ResponseOnTime")
    if acknowledged and ack_at is not None and (ack_at <= response_deadline or reopened_before):
        conditions = set_condition(conditions, "ResponseOnTime", True, "AcknowledgedInTime",
                                   f"Acknowledged within the {priority} response time", now, generation)
    elif acknowledged and old_on_time and old_on_time.get("status") == "False":
        conditions = set_condition(conditions, "ResponseOnTime", False, "AcknowledgedLate",
                                   f"Acknowledged after the {priority} response deadline "
                                   f"{format_time(response_deadline)}", now, generation)
    elif acknowledged:
        conditions = set_condition(conditions, "ResponseOnTime", False, "AcknowledgedLate",
                                   f"Acknowledged after the {priority} response deadline", now, generation)
    elif now >= response_deadline:
        conditions = set_condition(conditions, "ResponseOnTime", False, "DeadlineBreached",
                                   f"Not acknowledged by the {priority} response deadline "
                                   f"{format_time(response_deadline)}", now, generation)
        if not old_on_time or old_on_time.get("reason") != "DeadlineBreached":
            breached = True
            step.events.append(KubeEvent("Warning", "DeadlineBreached",
                                         f"Response deadline {format_time(response_deadline)} breached"))
            step.entries.append(timeline_entry(now, "DeadlineBreached",
                                               f"{priority} response deadline {format_time(response_deadline)} "
                                               "passed without acknowledgement"))
    else:
        conditions = set_condition(conditions, "ResponseOnTime", True, "WithinDeadline",
                                   f"Acknowledgement due by {format_time(response_deadline)}", now, generation)

    resolved = STATE_INDEX[target] >= STATE_INDEX[State.RESOLVED]
    conditions = set_condition(conditions, ConditionType.RESOLVED, resolved, target if resolved else "Open",
                               State.RESOLVED if resolved else f"Open ({target})", now, generation)

    missing = review_missing(spec.get("review"))
    required = review_required(priority)
    if not missing:
        conditions = set_condition(conditions, "ReviewComplete", True, "ReviewComplete",
                                   "The post-incident review is complete", now, generation)
    else:
        conditions = set_condition(conditions, "ReviewComplete", False,
                                   "ReviewRequired" if required else "ReviewOptional",
                                   ("A review is required before closing a " + priority if required
                                    else "A review is optional for " + priority) + "; missing: " + ", ".join(missing),
                                   now, generation)

    summary_reason, summary_message = _summary(target, level, conditions)
    conditions = set_condition(conditions, "Ready", True, summary_reason, summary_message, now, generation)
    return list(conditions), step, breached


def _summary(state: str, level: int, conditions: Any) -> tuple[str, str]:
    if state == State.CLOSED:
        return State.CLOSED, State.CLOSED
    if state == State.RESOLVED:
        return State.RESOLVED, "Resolved; watching for a relapse"
    if level > 0:
        return "Escalated", f"Escalated to level {level}: not acknowledged by its response deadline"
    on_time = find_condition(conditions, "ResponseOnTime") or {}
    if on_time.get("status") == "False":
        return "Breached", str(on_time.get("message", "Response deadline breached"))
    return "OnTrack", f"{state}; deadlines are being tracked"


# ---------------------------------------------------------------------------- 9. observations

def observations_due(status: Mapping[str, Any], spec: Mapping[str, Any], target: str,
                     opened: Iterable[str], old_conditions: Any = None) -> tuple[list[str], list[str]]:
    """(names newly due, the new ``status.metrics.observed``).

    Each name is due once per incident, ever: the caller records ``status.metrics.observed`` in
    the same conditional write that carries the transition, and only then observes (see
    metrics.py and docs/metrics.md). A reopen does not re-arm anything: the durations measure
    the first detection/acknowledgement/mitigation/resolution, and a regression is counted by
    ``outcome.reopened`` instead (re-observing would count one incident twice in the histograms
    and as both a first-contact and a repeat resolution). A stamp corrected later is not
    observed again either.
    """
    observed = set((status.get("metrics") or {}).get("observed") or [])
    due = [name for name in opened if name not in observed]  # "opened", from record_detection
    for name, stamp in (("detect", "detectedAt"), ("acknowledge", "acknowledgedAt"),
                        ("mitigate", "mitigatedAt"), ("resolve", "resolvedAt")):
        if status.get(stamp) and name not in observed:
            due.append(name)
    if (status.get("signal") or {}).get("previousIncident") and "recurrence" not in observed:
        # The detection engine writes status.signal after creating the incident, so a recurrence
        # is known at (or shortly after) opening, not necessarily in the first write.
        due.append("recurrence")
    if ("response" not in observed and _response_decided(status.get("conditions"))
            and not _response_decided(old_conditions)):
        # The response SLO counts each incident's first response once, when it is decided in this
        # write (acknowledged, or the deadline passed first); an incident decided before the
        # operator counted responses is not counted late (docs/metrics.md, "Response SLOs").
        due.append("response")
    if target == State.CLOSED and "resolved-fcr" not in observed:
        # First-contact resolution is judged when nothing can change it any more: a Closed
        # incident cannot be reopened (CEL), and escalation history is reset by a reopen.
        due.append("resolved-fcr")
    csat = spec.get("csat") or {}
    if target == State.CLOSED and csat.get("score") is not None and "csat" not in observed:
        due.append("csat")
    return due, sorted(observed | set(due))


def _response_decided(conditions: Iterable[Mapping[str, Any]] | None) -> bool:
    """The ResponseOnTime condition says the response met or missed its deadline (not "still due")."""
    on_time = find_condition(conditions, "ResponseOnTime") or {}
    return on_time.get("reason") in ("AcknowledgedInTime", "AcknowledgedLate", "DeadlineBreached")


# ------------------------------------------------------------------------------- the pipeline

def _take(status: dict[str, Any], outcome: Outcome, entries: list[dict[str, Any]], step: Step) -> None:
    status.update(step.status)
    entries.extend(step.entries)
    outcome.events.extend(step.events)
    outcome.notifications.extend(step.notifications)
    outcome.observations.extend(step.observations)


def reconcile_incident(body: Mapping[str, Any], now: datetime, settings: LifecycleSettings) -> Outcome:
    """Computes the status the incident should have at ``now``; pure and idempotent."""
    metadata: Mapping[str, Any] = body.get("metadata") or {}
    spec: Mapping[str, Any] = body.get("spec") or {}
    old: dict[str, Any] = dict(body.get("status") or {})
    generation = metadata.get("generation")
    status: dict[str, Any] = dict(old)

    try:
        priority = derive_priority(spec)
        spec_started = impact_start(spec, now)
    except InvalidSpec as error:
        return _invalid(status, generation, now, str(error))

    entries: list[dict[str, Any]] = []
    outcome = Outcome(status=status)
    target = _state_of(spec)
    detected = detected_at(metadata, old, now)
    _take(status, outcome, entries, record_detection(metadata, old, priority, str(spec.get("title", "")),
                                                     detected, now))
    _take(status, outcome, entries, priority_change(old.get("priority"), priority, now))
    status["startedAt"] = format_time(spec_started or detected)

    floor = _stamp_floor(old, detected)
    transition, outcome.reopened = stamp_transition(old, spec, target, acted_at(metadata, spec, target, floor, now))
    _take(status, outcome, entries, transition)
    if (old.get("state") or INITIAL_STATE) == target:
        _take(status, outcome, entries, correct_stamp(status, metadata, spec, target,
                                                      _stamp_floor({k: v for k, v in status.items()
                                                                    if k != STAMP_FIELD.get(target)}, detected),
                                                      now))

    armed_at = parse_time(status.get("lastReopenedAt")) or detected
    deadlines = compute_deadlines(priority, armed_at, settings)
    status["responseDeadline"] = format_time_precise(deadlines.response)
    status["resolutionTarget"] = format_time(deadlines.resolution)

    acknowledged = _is_acknowledged(target)
    reopen_count = int(status.get("reopenCount") or 0)
    escalation, step, outcome.escalated_levels = escalate(status.get("escalation") or {}, reopen_count, priority,
                                                          deadlines.response, acknowledged, now, settings.policy)
    _take(status, outcome, entries, step)
    escalation, step = warn_before_breach(escalation, settings.warn_at.get(priority, ()), armed_at,
                                          deadlines.response, acknowledged, reopen_count, priority, now)
    _take(status, outcome, entries, step)
    status["escalation"] = _without_idle_nulls(old.get("escalation") or {}, escalation)

    conditions, step, outcome.breached = derive_conditions(
        old.get("conditions"), status.get("conditions"), spec=spec, target=target, priority=priority,
        level=int(escalation.get("level") or 0), ack_at=parse_time(status.get("acknowledgedAt")),
        reopened_before=bool(status.get("lastReopenedAt")), response_deadline=deadlines.response, now=now,
        generation=generation)
    _take(status, outcome, entries, step)
    status["openActionItems"] = open_action_items(spec.get("review"))
    status["conditions"] = with_progress(conditions, now, generation)

    outcome.observations, observed = observations_due(status, spec, target, outcome.observations,
                                                      old.get("conditions"))
    status["metrics"] = {"observed": observed}

    # Notifications are queued in THIS conditional write (an outbox), so a transition and its
    # notification are stored together or not at all; the notifier delivers them later.
    if outcome.notifications:
        status["notifications"], outcome.notifications = queue_notifications(
            old.get("notifications"), outcome.notifications, now)

    status["timeline"] = append_entries(old.get("timeline"), entries, settings.timeline_limit)
    if generation is not None:
        status["observedGeneration"] = generation
    return outcome


def _without_idle_nulls(stored: Mapping[str, Any], computed: Mapping[str, Any]) -> dict[str, Any]:
    """``computed`` without the None (merge-patch "delete") of keys ``stored`` does not have.

    A nested None deletes a key in a JSON merge patch; for a key that is not there it changes
    nothing, yet the block would differ from the stored one on every sync and be written again.
    """
    return {key: value for key, value in computed.items() if value is not None or key in stored}


def _ago(delta: timedelta) -> str:
    seconds = int(max(delta.total_seconds(), 0))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"

