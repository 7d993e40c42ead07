"""Prometheus metrics: what the dashboards and alerts in ``dashboards/`` and ``alerts/`` read.

Three kinds of numbers, three sources (``docs/metrics.md`` is the user-facing reference):

* **Per-incident measurements** (time to detect/acknowledge/mitigate/resolve, opened, recurrence,
  first-contact resolution, CSAT). The domain decides which are due
  (``Outcome.observations``) and records them in ``status.metrics.observed`` in the same
  conditional status write as the transition; the handler calls :func:`record_outcome` only after
  that write succeeded. So each is observed at most once per incident, across restarts and
  replicas.
* **Transition counters** (deadline breaches, escalations, reopens) from the same outcome: the
  transition they count is in the written status, so it is not counted again either.
* **Gauges of the present** (open incidents, open action items, unacknowledged incidents past their
  deadline) are not kept at all: they are computed at scrape time from the incident book
  (services/incident_book.py), which the Incident watch fills from its re-list, so they are
  right a few seconds after a restart.

Counters and histograms restart from zero with the process, as Prometheus expects (``increase()``
handles resets; a new pod is a new ``instance``). One subtlety matters for incidents, which are
rare events: Prometheus cannot see the first increment of a series that is *born* with the value 1
(``increase()`` needs a sample before it). So a label set's first observation is held back until
the series has been exposed at 0 for ``newSeriesDelay`` seconds (default 90, set it above your
scrape interval); the bounded label sets (priority x level, first_contact, reason...) are created
at 0 at start-up. See :class:`IncidentMetrics`.

Label cardinality: priority (4), state (6), source (3), level (<= maxEscalationLevel), result (2), reason
(a fixed set) and ``service``, which users choose: one series set per (priority, service) pair
that ever had an incident. Never an incident name or an account id.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .api import INITIAL_STATE, NOT_CLOSED, PRIORITIES, SOURCES, Source, State
from .config import DEFAULT_NEW_SERIES_DELAY, DEFAULT_RESPONSE_OBJECTIVES
from .domain.common.timeutil import epoch_or_none
from .domain.detection.rules import DROP_REASONS
from .domain.incident.priority import effective_priority

NO_SERVICE = "unspecified"
UNKNOWN = "unknown"

# From a few seconds (so short test incidents mean something) to a week.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 2700, 3600, 7200, 14400, 28800,
                    43200, 86400, 172800, 345600, 604800)
CSAT_BUCKETS = (1, 2, 3, 4, 5)
EVALUATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# PrometheusError reasons (adapters/prometheus.py); anything else is counted as "Other".
EVALUATION_ERROR_REASONS = ("Unavailable", "Timeout", "QueryFailed", "BadResponse", "Other", "TooManySeries",
                            "Invalid")
# Why a DetectionRule evaluation refuses a sample (domain/detection/rules.py screen_samples).
SAMPLE_DROP_REASONS = DROP_REASONS + ("Other",)
SUPPRESSED_REASONS = ("RuleBudget", "NamespaceBudget")
RESPONSE_RESULTS = ("met", "missed")
# ResponseOnTime reasons (domain/incident/lifecycle.py) once the response is decided.
RESPONSE_MET_REASONS = ("AcknowledgedInTime",)
RESPONSE_DECIDED_REASONS = ("AcknowledgedInTime", "AcknowledgedLate", "DeadlineBreached")

# observation name -> (histogram attribute, end stamp, start stamp)
DURATIONS = {
    "detect": ("time_to_detect", "detectedAt", "startedAt"),
    "acknowledge": ("time_to_acknowledge", "acknowledgedAt", "detectedAt"),
    "mitigate": ("time_to_mitigate", "mitigatedAt", "startedAt"),
    "resolve": ("time_to_resolve", "resolvedAt", "startedAt"),
}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("incident-operator")
    except Exception:  # noqa: BLE001 - running from a source tree without metadata
        return "unknown"


def duration_between(status: Mapping[str, Any], end: str, start: str) -> float | None:
    """Seconds from ``status[start]`` to ``status[end]`` (never negative); None when either is unset."""
    finish, begin = epoch_or_none(status.get(end)), epoch_or_none(status.get(start))
    if finish is None or begin is None:
        return None
    return max(finish - begin, 0.0)


def first_contact(status: Mapping[str, Any]) -> bool:
    """Resolved with no reopen and no escalation (a reopen resets the level, not reopenCount)."""
    return (int(status.get("reopenCount") or 0) == 0
            and int((status.get("escalation") or {}).get("level") or 0) == 0)


def response_result(status: Mapping[str, Any]) -> str | None:
    """``met`` or ``missed`` once the ResponseOnTime condition has decided the response, else None."""
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == "ResponseOnTime":
            reason = condition.get("reason")
            if reason in RESPONSE_DECIDED_REASONS:
                return "met" if reason in RESPONSE_MET_REASONS else "missed"
    return None



def service_label(spec: Mapping[str, Any] | None) -> str:
    return str((spec or {}).get("service") or NO_SERVICE)


# -- the incident book's gauge entries (services/incident_book.py keeps them, the collector reads them) ----

@dataclass(frozen=True)
class GaugeEntry:
    """What the gauges need of one incident; the index key is ``(priority, state)``."""

    open_action_items: int = 0
    unacknowledged: bool = False
    response_deadline: float | None = None  # epoch seconds


def gauge_entry(spec: Mapping[str, Any] | None,
                status: Mapping[str, Any] | None) -> tuple[tuple[str, str], GaugeEntry]:
    """One incident's (priority, state) key and gauge entry (pure; the incident book keeps them)."""
    spec, status = spec or {}, status or {}
    try:
        priority = effective_priority(spec.get("priority"), spec.get("impact"), spec.get("urgency"))
    except ValueError:
        priority = status.get("priority") or UNKNOWN
    state = spec.get("state") or INITIAL_STATE
    entry = GaugeEntry(open_action_items=int(status.get("openActionItems") or 0),
                       unacknowledged=state == State.TRIGGERED,
                       response_deadline=epoch_or_none(status.get("responseDeadline")))
    return (str(priority), str(state)), entry


class BookCollector(Collector):
    """Gauges computed at scrape time from the incident book (``None`` before start-up)."""

    def __init__(self, book_source: Callable[[], Mapping[Any, Iterable[GaugeEntry]] | None],
                 clock: Callable[[], float] = time.time):
        self._source = book_source
        self._clock = clock

    def describe(self):
        return []

    def collect(self):
        index = self._source()
        if index is None:
            return
        now = self._clock()
        open_by = {(p, s): 0 for p in PRIORITIES for s in NOT_CLOSED}
        items = {p: 0 for p in PRIORITIES}
        breached = {p: 0 for p in PRIORITIES}
        for key in list(index):
            priority, state = key
            for entry in list(index.get(key) or ()):
                items[priority] = items.get(priority, 0) + entry.open_action_items
                if state == State.CLOSED:
                    continue
                open_by[(priority, state)] = open_by.get((priority, state), 0) + 1
                deadline = entry.response_deadline
                if entry.unacknowledged and deadline is not None and deadline <= now:
                    breached[priority] = breached.get(priority, 0) + 1
        for name, what, labels, values in (
            ("incidents_open", "Incidents not Closed, by priority and lifecycle state (Resolved ones are "
             "still watched for a relapse).", ["priority", "state"], open_by),
            ("incident_unacknowledged_breached", "Open incidents still Triggered (not acknowledged) past "
             "their response deadline.", ["priority"], breached),
            ("incident_action_items_open", "Post-incident review action items not done, over all incidents "
             "(Closed included).", ["priority"], items),
        ):
            family = GaugeMetricFamily(name, what, labels=labels)
            for key, count in sorted(values.items()):
                family.add_metric(list(key) if isinstance(key, tuple) else [key], count)
            yield family


class _DetectionCollector(Collector):
    """``detection_rule_last_success_timestamp_seconds``, only once some evaluation succeeded."""

    def __init__(self, owner: "IncidentMetrics"):
        self._owner = owner

    def describe(self):
        return []

    def collect(self):
        last = self._owner.detection_last_success
        if last is None:
            return
        family = GaugeMetricFamily(
            "detection_rule_last_success_timestamp_seconds",
            "Unix time of the most recent successful DetectionRule evaluation (any rule; absent until "
            "one succeeds).")
        family.add_metric([], last)
        yield family


class IncidentMetrics:
    """All the operator's collectors on one registry.

    ``new_series_delay``: seconds a newly created label set is exposed at 0 before its first
    increment is applied (0 applies at once, for unit tests). Held-back increments are applied by
    :meth:`flush`, which the /metrics endpoint calls before every scrape and :meth:`record_outcome`
    calls opportunistically; they live in memory only (like every counter).
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, new_series_delay: float = 0.0,
                 max_escalation_level: int = 3,
                 book_source: Callable[[], Mapping[Any, Iterable[GaugeEntry]] | None] | None = None,
                 clock: Callable[[], float] = time.time, version: str | None = None,
                 response_objectives: Mapping[str, float] | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        self.new_series_delay = float(new_series_delay)
        self._clock = clock
        self._lock = threading.Lock()
        self._born: dict[tuple[int, tuple[str, ...]], float] = {}
        # A heap of (due, sequence, fn): flushing is O(log n) per item, not a scan per status write.
        self._pending: list[tuple[float, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self.detection_last_success: float | None = None
        r = self.registry

        def duration(name: str, what: str) -> Histogram:
            return Histogram(name, what, ["priority", "service"], buckets=DURATION_BUCKETS, registry=r)

        def counter(name: str, what: str, *labels: str) -> Counter:
            return Counter(name, what, list(labels), registry=r)

        self.time_to_detect = duration(
            "incident_time_to_detect_seconds",
            "Seconds from impact start to detection (detectedAt - startedAt).")
        self.time_to_acknowledge = duration(
            "incident_time_to_acknowledge_seconds",
            "Seconds from detection to first acknowledgement (acknowledgedAt - detectedAt).")
        self.time_to_mitigate = duration(
            "incident_time_to_mitigate_seconds",
            "Seconds from impact start to first mitigation (mitigatedAt - startedAt).")
        self.time_to_resolve = duration(
            "incident_time_to_resolve_seconds",
            "Seconds from impact start to first resolution (resolvedAt - startedAt).")
        self.opened = counter("incidents_opened", "Incidents opened.", "priority", "service", "source")
        self.breaches = counter("incident_deadline_breaches",
                                "Response deadlines passed without acknowledgement.", "priority")
        self.escalations = counter("incident_escalations", "Escalation levels reached.", "priority", "level")
        self.reopens = counter("incident_reopens", "Resolved or Closed incidents reopened (regressions).",
                               "priority")
        self.recurrences = counter(
            "incident_recurrences",
            "Incidents opened for a group that had an earlier incident (status.signal.previousIncident).",
            "priority")
        self.resolved = counter(
            "incidents_resolved",
            "Incidents Closed, by whether they were resolved at first contact (no escalation, no reopen).",
            "priority", "first_contact")
        self.responses = counter(
            "incident_responses",
            "Responses (first acknowledgements) by whether they met the priority's response deadline: "
            "result=met (acknowledged in time) or missed (the deadline passed first). Each incident once.",
            "priority", "result")
        self.response_objective = Gauge(
            "incident_response_objective_ratio",
            "Response SLO: the share of responses that should meet the response deadline "
            "(metrics.responseObjectives), for the burn-rate alerts and the error-budget panels.",
            ["priority"], registry=r)
        for priority, fraction in (response_objectives or DEFAULT_RESPONSE_OBJECTIVES).items():
            self.response_objective.labels(priority).set(fraction)
        self.csat_score = Histogram("incident_csat_score",
                                    "CSAT score (1-5) of each Closed incident with one.",
                                    ["priority"], buckets=CSAT_BUCKETS, registry=r)
        self.csat_responses = counter("incident_csat_responses", "Survey responses behind the CSAT scores.",
                                      "priority")
        self.evaluation_duration = Histogram("detection_rule_evaluation_duration_seconds",
                                             "Seconds one DetectionRule evaluation took (queries included).",
                                             buckets=EVALUATION_BUCKETS, registry=r)
        self.evaluations = counter("detection_rule_evaluations", "DetectionRule evaluations, failed or not.")
        self.evaluation_errors = counter("detection_rule_evaluation_errors",
                                         "Failed DetectionRule evaluations.", "reason")
        self.dropped_samples = counter(
            "detection_rule_samples_dropped",
            "Samples a DetectionRule evaluation refused: reason=NonFinite (+Inf, -Inf, NaN) or "
            "MissingGroupLabel (the series lacks one of spec.groupLabels). They open nothing.", "reason")
        self.incidents_suppressed = counter(
            "incident_operator_incidents_suppressed",
            "Incidents a DetectionRule would have opened but the incident budget suppressed "
            "(detection.maxIncidentsPerRule / maxIncidentsPerNamespace), by reason.", "reason")
        self.build_info = Gauge("incident_operator_build_info", "Always 1; the version is a label.",
                                ["version"], registry=r)
        self.build_info.labels(version or _version()).set(1)
        r.register(_DetectionCollector(self))
        if book_source is not None:
            r.register(BookCollector(book_source, clock))

        # Bounded label sets exist from the start, at 0 (dashboards show 0, not "no data").
        for priority in PRIORITIES:
            for metric in (self.breaches, self.reopens, self.recurrences, self.csat_responses):
                self._child(metric, priority)
            self._child(self.csat_score, priority)
            for level in range(1, max_escalation_level + 1):
                self._child(self.escalations, priority, str(level))
            for fcr in ("true", "false"):
                self._child(self.resolved, priority, fcr)
            for result in RESPONSE_RESULTS:
                self._child(self.responses, priority, result)
        for reason in EVALUATION_ERROR_REASONS:
            self._child(self.evaluation_errors, reason)
        for reason in SAMPLE_DROP_REASONS:
            self._child(self.dropped_samples, reason)
        for reason in SUPPRESSED_REASONS:
            self._child(self.incidents_suppressed, reason)

    # -- births ------------------------------------------------------------------------------------
    def _child(self, metric, *labels: str):
        key = (id(metric), labels)
        child = metric.labels(*labels)
        with self._lock:
            self._born.setdefault(key, self._clock())
        return child

    def _apply(self, metric, labels: tuple[str, ...], action: Callable[[Any], None]) -> None:
        child = self._child(metric, *labels)
        due = self._born[(id(metric), labels)] + self.new_series_delay
        if self._clock() >= due:
            action(child)
        else:
            with self._lock:
                heapq.heappush(self._pending, (due, next(self._sequence), lambda: action(child)))

    def flush(self) -> int:
        """Applies held-back first increments whose series has been exposed long enough."""
        now = self._clock()
        with self._lock:
            ready = []
            while self._pending and self._pending[0][0] <= now:
                ready.append(heapq.heappop(self._pending)[2])
        for fn in ready:
            fn()
        return len(ready)

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- incidents -----------------------------------------------------------------------------------
    def record_outcome(self, body: Mapping[str, Any], outcome: Any) -> None:
        """Observes what the written ``outcome`` made due; call once per successful status write."""
        self.flush()
        status = body.get("status") or {}
        spec = body.get("spec") or {}
        priority = str(status.get("priority") or UNKNOWN)
        service = service_label(spec)
        for name in getattr(outcome, "observations", None) or ():
            if name in DURATIONS:
                attribute, end, start = DURATIONS[name]
                seconds = duration_between(status, end, start)
                if seconds is not None:
                    self._apply(getattr(self, attribute), (priority, service),
                                lambda c, s=seconds: c.observe(s))
            elif name == "opened":
                source = str(status.get("source") or Source.MANUAL)
                self._apply(self.opened, (priority, service, source if source in SOURCES else "Other"),
                            lambda c: c.inc())
            elif name == "recurrence":
                self._apply(self.recurrences, (priority,), lambda c: c.inc())
            elif name == "response":
                result = response_result(status)
                if result is not None:
                    self._apply(self.responses, (priority, result), lambda c: c.inc())
            elif name == "resolved-fcr":
                self._apply(self.resolved, (priority, "true" if first_contact(status) else "false"),
                            lambda c: c.inc())
            elif name == "csat":
                csat = spec.get("csat") or {}
                try:
                    score = float(csat.get("score"))
                except (TypeError, ValueError):
                    continue
                if not math.isfinite(score):
                    continue
                responses = int(csat.get("responses") or 0)
                self._apply(self.csat_score, (priority,), lambda c, s=score: c.observe(s))
                if responses > 0:
                    self._apply(self.csat_responses, (priority,), lambda c, n=responses: c.inc(n))
        if getattr(outcome, "breached", False):
            self._apply(self.breaches, (priority,), lambda c: c.inc())
        for level in getattr(outcome, "escalated_levels", None) or ():
            self._apply(self.escalations, (priority, str(level)), lambda c: c.inc())
        if getattr(outcome, "reopened", False):
            self._apply(self.reopens, (priority,), lambda c: c.inc())

    # -- detection health (called by the detection engine) ----------------------------------------------
    def observe_rule_evaluation(self, duration_seconds: float, error_reason: str | None = None) -> None:
        """One DetectionRule evaluation took ``duration_seconds``; ``error_reason`` when it failed."""
        self.evaluations.inc()
        self.evaluation_duration.observe(max(float(duration_seconds), 0.0))
        if error_reason is not None:
            reason = error_reason if error_reason in EVALUATION_ERROR_REASONS else "Other"
            self.evaluation_errors.labels(reason).inc()

    def samples_dropped(self, reason: str, count: int = 1) -> None:
        """An evaluation refused ``count`` samples for ``reason`` (one of SAMPLE_DROP_REASONS)."""
        self.dropped_samples.labels(reason if reason in SAMPLE_DROP_REASONS else "Other").inc(max(count, 0))
    def incident_suppressed(self, reason: str) -> None:
        """The incident budget refused to open one incident (reason RuleBudget or NamespaceBudget)."""
        self.incidents_suppressed.labels(reason if reason in SUPPRESSED_REASONS else "RuleBudget").inc()

    def rule_succeeded(self, timestamp: float | None = None) -> None:
        """A DetectionRule evaluation succeeded at ``timestamp`` (Unix seconds; default now)."""
        moment = self._clock() if timestamp is None else float(timestamp)
        if self.detection_last_success is None or moment > self.detection_last_success:
            self.detection_last_success = moment


# -- building the process's metrics -------------------------------------------------------------------

def configure(*, new_series_delay: float = DEFAULT_NEW_SERIES_DELAY, max_escalation_level: int = 3,
              book_source: Callable[[], Mapping[Any, Iterable[GaugeEntry]] | None] | None = None,
              process_collectors: bool = True,
              response_objectives: Mapping[str, float] | None = None) -> IncidentMetrics:
    """Builds the process's metrics on a fresh registry (app.py calls this once, before kopf starts,
    and hands the result to the services that record into it: no module-level instance)."""
    import prometheus_client

    prometheus_client.disable_created_metrics()  # *_created series add nothing the dashboards use
    registry = CollectorRegistry()
    if process_collectors:
        prometheus_client.ProcessCollector(registry=registry)
        prometheus_client.PlatformCollector(registry=registry)
        prometheus_client.GCCollector(registry=registry)
    return IncidentMetrics(registry, new_series_delay=new_series_delay,
                           max_escalation_level=max_escalation_level, book_source=book_source,
                           response_objectives=response_objectives)
