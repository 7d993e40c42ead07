"""The incident lifecycle, as one pure function from (object, clock) to the desired status.

``reconcile_incident`` is called on every create/update/resume and on every timer wake-up.
It reads only the object itself (spec, status, metadata) and ``now``, so the operator can
die at any moment: timestamps, deadlines and escalation levels are recomputed from
``status`` and nothing is lost or repeated. Each transition is stamped once; a skipped state
still gets its stamp; a reopen re-arms the deadlines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

from . import deadlines as dl
from .calendar import BusinessCalendar
from ..common.conditions import find_condition, set_condition
from ..notify.book import queue as queue_notifications
from .priority import effective_priority, severity_of
from .review import open_action_items, review_missing, review_required
from .timeline import DEFAULT_TIMELINE_LIMIT, append_entries, timeline_entry
from ..common.status import status_patch  # noqa: F401 - moved to domain/common/status.py
from ..common.timeutil import format_time, format_time_precise, parse_time

STATES = ("Triggered", "Acknowledged", "Investigating", "Mitigated", "Resolved", "Closed")
STATE_INDEX = {name: index for index, name in enumerate(STATES)}
STAMP_FIELD = {
    "Acknowledged": "acknowledgedAt",
    "Investigating": "investigatingAt",
    "Mitigated": "mitigatedAt",
    "Resolved": "resolvedAt",
    "Closed": "closedAt",
}
# PagerDuty webhook v3 vocabulary for outbound events.
STATE_EVENT = {
    "Acknowledged": "incident.acknowledged",
    "Investigating": "incident.investigating",
    "Mitigated": "incident.mitigated",
    "Resolved": "incident.resolved",
    "Closed": "incident.closed",
}
DETECTED_AT_ANNOTATION = "incidents.buttercream.io/detected-at"
SOURCE_ANNOTATION = "incidents.buttercream.io/source"
FUTURE_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class LifecycleSettings:
    calendar: BusinessCalendar
    policy: dl.DeadlinePolicy
    timeline_limit: int = DEFAULT_TIMELINE_LIMIT


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
        return parse_time((self.status.get("escalation") or {}).get("nextEscalationAt"))


def _state_of(spec: Mapping[str, Any]) -> str:
    state = spec.get("state") or "Triggered"
    return state if state in STATE_INDEX else "Triggered"


def _is_acknowledged(state: str) -> bool:
    return STATE_INDEX[state] >= STATE_INDEX["Acknowledged"]


def _detected_at(metadata: Mapping[str, Any], status: Mapping[str, Any], now: datetime) -> datetime:
    """The earliest detection known: min(status.detectedAt, the detected-at annotation).

    Set once, and only ever moved earlier: when a signal detected earlier joins the incident
    (an Alertmanager alert or a ticket spike, services/alerts.py lowers the annotation), time to
    detect is measured from the earliest signal.
    """
    existing = _safe_time(status.get("detectedAt"))
    annotated = _safe_time((metadata.get("annotations") or {}).get(DETECTED_AT_ANNOTATION))
    if annotated and annotated > now + FUTURE_SKEW:
        annotated = None
    if existing:
        return min(existing, annotated) if annotated else existing
    if annotated:
        return annotated
    return _safe_time(metadata.get("creationTimestamp")) or now


def _safe_time(value: Any) -> datetime | None:
    try:
        return parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _invalid(status: dict[str, Any], generation: int | None, now: datetime, message: str) -> Outcome:
    new = dict(status)
    new["conditions"] = set_condition(new.get("conditions"), "Ready", False, "Invalid", message, now, generation)
    if generation is not None:
        new["observedGeneration"] = generation
    return Outcome(status=new, invalid=message,
                   events=[KubeEvent("Warning", "Invalid", message)]
                   if (find_condition(status.get("conditions"), "Ready") or {}).get("reason") != "Invalid" else [])


def reconcile_incident(body: Mapping[str, Any], now: datetime, settings: LifecycleSettings) -> Outcome:
    """Computes the status the incident should have at ``now``; pure and idempotent."""
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    old = dict(body.get("status") or {})
    generation = metadata.get("generation")
    status: dict[str, Any] = {k: v for k, v in old.items()}

    # -- what only the operator can judge ------------------------------------------
    try:
        priority = effective_priority(spec.get("priority"), spec.get("impact"), spec.get("urgency"))
    except ValueError as error:
        return _invalid(status, generation, now, str(error))
    try:
        spec_started = parse_time(spec.get("startedAt"))
    except ValueError as error:
        return _invalid(status, generation, now, f"spec.startedAt: {error}")
    if spec_started and spec_started > now + FUTURE_SKEW:
        return _invalid(status, generation, now,
                        f"spec.startedAt {spec.get('startedAt')} is in the future; impact cannot start after now")

    entries: list[dict[str, Any]] = []
    outcome = Outcome(status=status)
    target = _state_of(spec)
    previous = old.get("state")
    detected_at = _detected_at(metadata, old, now)

    if not old.get("detectedAt"):
        status["detectedAt"] = format_time(detected_at)
        source = (metadata.get("annotations") or {}).get(SOURCE_ANNOTATION) or "Manual"
        status["source"] = source
        entries.append(timeline_entry(detected_at, "Detected",
                                      f"{priority} incident opened ({source}): {spec.get('title', '')}"))
        outcome.notifications.append(Notification("opened", "incident.triggered"))
        outcome.observations.append("opened")
    elif (_safe_time(old.get("detectedAt")) or detected_at) > detected_at:
        entries.append(timeline_entry(now, "DetectedEarlier",
                                      f"Detection time moved from {old.get('detectedAt')} to {format_time(detected_at)}: "
                                      "an earlier correlated signal joined"))
        status["detectedAt"] = format_time(detected_at)

    # -- priority and severity -------------------------------------------------------
    old_priority = old.get("priority")
    if old_priority and old_priority != priority:
        entries.append(timeline_entry(now, "PriorityChanged", f"Priority changed from {old_priority} to {priority}"))
        outcome.events.append(KubeEvent("Normal", "PriorityChanged", f"Priority changed from {old_priority} to {priority}; deadlines recomputed"))
        outcome.notifications.append(Notification(f"priority-{priority}-{now.timestamp():.0f}", "incident.priority_updated"))
    status["priority"] = priority
    status["severity"] = severity_of(priority)
    status["startedAt"] = format_time(spec_started or detected_at)

    # -- state transitions -------------------------------------------------------------
    if previous is None:
        previous = "Triggered"
    if target != previous and previous in STATE_INDEX:
        if target == "Investigating" and previous in ("Resolved", "Closed"):
            status["reopenCount"] = int(old.get("reopenCount") or 0) + 1
            status["lastReopenedAt"] = format_time(now)
            status["resolvedAt"] = None
            status["mitigatedAt"] = None
            status["escalation"] = {"level": 0, "lastEscalatedAt": None, "nextEscalationAt": None}
            message = f"Reopened (regression #{status['reopenCount']}): {previous} back to Investigating"
            entries.append(timeline_entry(now, "Reopened", message))
            outcome.events.append(KubeEvent("Warning", "Reopened", message))
            outcome.notifications.append(Notification(f"reopened-{status['reopenCount']}", "incident.reopened"))
            outcome.reopened = True
        elif target == "Investigating" and previous == "Mitigated":
            status["mitigatedAt"] = None
            entries.append(timeline_entry(now, "StateChanged", "Mitigation did not hold: back to Investigating"))
        else:
            for state in STATES[STATE_INDEX[previous] + 1: STATE_INDEX[target] + 1]:
                stamp = STAMP_FIELD[state]
                if not status.get(stamp):
                    status[stamp] = format_time(now)
            entries.append(timeline_entry(now, "StateChanged", f"{previous} → {target}"
                                          + (f" by {spec.get('owner')}" if spec.get("owner") else "")))
            outcome.events.append(KubeEvent("Normal", target, f"Incident is now {target}"))
            suffix = f"-{status.get('reopenCount') or 0}"
            outcome.notifications.append(Notification(f"{target.lower()}{suffix}", STATE_EVENT[target]))
    status["state"] = target

    # -- deadlines (recomputed every time: a priority change or a reopen re-arms them) --
    armed_at = parse_time(status.get("lastReopenedAt")) or detected_at
    response_deadline = dl.response_deadline(priority, armed_at, settings.policy, settings.calendar)
    resolution_target = dl.resolution_target(priority, armed_at, settings.policy, settings.calendar)
    status["responseDeadline"] = format_time_precise(response_deadline)
    status["resolutionTarget"] = format_time(resolution_target)

    # -- escalation while unacknowledged -----------------------------------------------------
    acknowledged = _is_acknowledged(target)
    interval = settings.policy.escalation_interval_for(priority)
    max_level = settings.policy.max_escalation_level
    escalation = dict(status.get("escalation") or {})
    current_level = int(escalation.get("level") or 0)
    due_level = dl.escalation_level_due(response_deadline, acknowledged, now, interval, max_level)
    if due_level > current_level:
        for level in range(current_level + 1, due_level + 1):
            message = (f"Not acknowledged {_ago(now - response_deadline)} after its {priority} response deadline: "
                       f"escalated to level {level}")
            entries.append(timeline_entry(now, "Escalated", message))
            outcome.events.append(KubeEvent("Warning", "Escalated", message))
            outcome.notifications.append(Notification(f"escalated-{status.get('reopenCount') or 0}-{level}",
                                                      "incident.escalated", level))
            outcome.escalated_levels.append(level)
        current_level = due_level
        escalation["lastEscalatedAt"] = format_time_precise(now)
    escalation["level"] = current_level
    next_at = None if acknowledged else dl.next_escalation_at(response_deadline, current_level, interval, max_level)
    escalation["nextEscalationAt"] = format_time_precise(next_at) if next_at else None
    status["escalation"] = escalation

    # -- conditions ---------------------------------------------------------------------------
    conditions = status.get("conditions")
    ack_at = parse_time(status.get("acknowledgedAt"))
    if acknowledged:
        conditions = set_condition(conditions, "Acknowledged", True, "Acknowledged",
                                   f"Acknowledged by {spec.get('owner') or 'someone'}", now, generation)
    else:
        conditions = set_condition(conditions, "Acknowledged", False, "AwaitingAcknowledgement",
                                   f"Not yet acknowledged; due by {format_time(response_deadline)}", now, generation)
    old_on_time = find_condition(old.get("conditions"), "ResponseOnTime")
    if acknowledged and ack_at is not None and (ack_at <= response_deadline or status.get("lastReopenedAt")):
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
            outcome.breached = True
            outcome.events.append(KubeEvent("Warning", "DeadlineBreached",
                                            f"Response deadline {format_time(response_deadline)} breached"))
            entries.append(timeline_entry(now, "DeadlineBreached",
                                          f"{priority} response deadline {format_time(response_deadline)} passed "
                                          "without acknowledgement"))
    else:
        conditions = set_condition(conditions, "ResponseOnTime", True, "WithinDeadline",
                                   f"Acknowledgement due by {format_time(response_deadline)}", now, generation)

    resolved = STATE_INDEX[target] >= STATE_INDEX["Resolved"]
    conditions = set_condition(conditions, "Resolved", resolved, target if resolved else "Open",
                               "Resolved" if resolved else f"Open ({target})", now, generation)

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
    status["openActionItems"] = open_action_items(spec.get("review"))

    summary_reason, summary_message = _summary(target, current_level, status, conditions)
    conditions = set_condition(conditions, "Ready", True, summary_reason, summary_message, now, generation)
    status["conditions"] = conditions

    # -- metrics observations due (each once; recorded in status by the caller) ----------------
    # Each name is due once per incident, ever: the caller records ``status.metrics.observed`` in
    # the same conditional write that carries the transition, and only then observes (see
    # metrics.py and docs/metrics.md). A reopen does not re-arm anything: the durations measure
    # the first detection/acknowledgement/mitigation/resolution, and a regression is counted by
    # ``outcome.reopened`` instead (re-observing would count one incident twice in the histograms
    # and as both a first-contact and a repeat resolution).
    observed = set((status.get("metrics") or {}).get("observed") or [])
    due = [name for name in outcome.observations if name not in observed]  # "opened", from above
    for name, stamp in (("detect", "detectedAt"), ("acknowledge", "acknowledgedAt"),
                        ("mitigate", "mitigatedAt"), ("resolve", "resolvedAt")):
        if status.get(stamp) and name not in observed:
            due.append(name)
    if ((status.get("signal") or {}).get("previousIncident") and "recurrence" not in observed):
        # The detection engine writes status.signal after creating the incident, so a recurrence
        # is known at (or shortly after) opening, not necessarily in the first write.
        due.append("recurrence")
    if target == "Closed" and "resolved-fcr" not in observed:
        # First-contact resolution is judged when nothing can change it any more: a Closed
        # incident cannot be reopened (CEL), and escalation history is reset by a reopen.
        due.append("resolved-fcr")
    csat = spec.get("csat") or {}
    if target == "Closed" and csat.get("score") is not None and "csat" not in observed:
        due.append("csat")
    outcome.observations = due
    status["metrics"] = {"observed": sorted(observed | set(due))}

    # -- notifications: queued in THIS conditional write (an outbox), so a transition and its
    # notification are stored together or not at all; the notifier delivers them later.
    if outcome.notifications:
        status["notifications"], outcome.notifications = queue_notifications(
            old.get("notifications"), outcome.notifications, now)

    status["timeline"] = append_entries(old.get("timeline"), entries, settings.timeline_limit)
    if generation is not None:
        status["observedGeneration"] = generation
    return outcome


def _summary(state: str, level: int, status: Mapping[str, Any], conditions) -> tuple[str, str]:
    if state == "Closed":
        return "Closed", "Closed"
    if state == "Resolved":
        return "Resolved", "Resolved; watching for a relapse"
    if level > 0:
        return "Escalated", f"Escalated to level {level}: not acknowledged by its response deadline"
    on_time = find_condition(conditions, "ResponseOnTime") or {}
    if on_time.get("status") == "False":
        return "Breached", on_time.get("message", "Response deadline breached")
    return "OnTrack", f"{state}; deadlines are being tracked"


def _ago(delta: timedelta) -> str:
    seconds = int(max(delta.total_seconds(), 0))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"

