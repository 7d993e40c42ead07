"""The detection engine: evaluate one DetectionRule once, and carry out what the domain decided.

Order of writes, so that a crash or a rival replica never duplicates an incident:
1. incidents are created with a deterministic name (create-or-get), then their evidence is
   written;
2. the rule's status (the per-group episode states) is written last, with the rule's
   resourceVersion as precondition. A replica that loses that race re-reads the rule and
   finds the episode already open, so it opens nothing; the incident it may have tried to
   create had the same name and already existed.
A failed query writes Degraded and touches no group state, so nothing is opened from it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from ..metrics import IncidentMetrics
from ..adapters import kube
from ..adapters.prometheus import Endpoint, Limits, PrometheusClient, PrometheusError
from ..api import ConditionType
from ..api import (API_VERSION, FINGERPRINT_LABEL, INCIDENT_KIND, INITIAL_STATE, OPERATOR_PRIORITY_ANNOTATION,
                   REOPEN_ON_RELAPSE, RESOLVED_OR_CLOSED, RULE_LABEL, SERVICE_LABEL, Source, State, priority_rank, state_of)
from ..names import label_value, rule_episode_of, rule_fingerprint, rule_incident_name, truncated_label_value
from ..config import OperatorConfig
from ..domain.detection import rules as dom
from ..domain.common.conditions import set_condition
from ..domain.common.status import finite_only, status_patch
from ..domain.detection.episodes import FIRING
from ..domain.detection.health import failure_progress
from ..domain.incident.lifecycle import DETECTED_AT_ANNOTATION, SOURCE_ANNOTATION
from ..domain.common.timeutil import format_time, format_time_precise, utcnow
from .correlation import Correlator
from .incident_book import IncidentBook, detected_summary
from .status import with_ready
from .rendering import RenderExecutor, run_rendering
from .tenant_limits import FairSlots, IncidentBudget, url_refusal

log = logging.getLogger(__name__)
SIGNAL_REFRESH_SECONDS = 60
# The priority the rule itself last set; while spec.priority still equals it, no person has
# overridden it and the rule may raise it as the spike grows into a higher band.


@dataclass
class EvaluationResult:
    rule_body: dict[str, Any] | None
    duration: float
    error: PrometheusError | None = None


@dataclass
class Detection:
    """What rule evaluations use, built once by the app and shared by every rule's daemon."""

    kube: kube.KubeApi
    config: OperatorConfig
    prometheus: PrometheusClient
    # Serialises opening incidents with the Alertmanager path (services/correlation.py).
    correlator: Correlator
    # Bounded concurrency of rule evaluations across all rules, fair across namespaces.
    slots: FairSlots
    incident_book: IncidentBook | None = None
    # Seasonal reference windows of baseline rules, fetched once per step (bounded LRU).
    seasonal_cache: "SeasonalCache | None" = field(default_factory=lambda: SeasonalCache())
    # Where evaluation durations and errors are recorded (the app passes the served registry's).
    metrics: IncidentMetrics = field(default_factory=IncidentMetrics)
    clock: Callable[[], datetime] = utcnow
    # Where the rule's templates are rendered (plan_evaluation), off the event loop; None: inline.
    renderer: RenderExecutor | None = None
    # Incidents opened per rule and per namespace (services/tenant_limits.py); None: from the config.
    budget: IncidentBudget | None = None

    def __post_init__(self) -> None:
        if self.budget is None:
            limits = self.config.tenant_limits
            self.budget = IncidentBudget(limits.max_incidents_per_rule, limits.max_incidents_per_namespace,
                                         limits.incident_budget_window)


async def endpoint_for(api: kube.KubeApi, rule_body: Mapping[str, Any], config: OperatorConfig) -> Endpoint:
    """The rule's Prometheus endpoint. The operator's token goes only to the operator's Prometheus; a
    per-rule URL must be allowed by ``detection.allowedPrometheusURLs`` and gets only the Secret of
    the rule's own namespace that the rule names. Refusals raise PrometheusError reason ``Invalid``."""
    override = dict((rule_body.get("spec") or {}).get("prometheus") or {})
    limits = config.tenant_limits
    url = str(override.get("url") or "").rstrip("/")
    own = not url or url == config.prometheus.url.rstrip("/")
    token = None
    if not own:
        refusal = url_refusal(url, limits.allowed_prometheus_urls)
        if refusal:
            raise PrometheusError("Invalid", refusal)
    elif config.prometheus.bearer_token_file:
        with open(config.prometheus.bearer_token_file) as handle:
            token = handle.read().strip()
    ref = override.get("bearerTokenSecretRef")
    if ref:
        try:
            token = (await api.read_secret_key(rule_body["metadata"]["namespace"], ref["name"], ref["key"])).strip()
        except kube.ApiError as error:  # reported as a degraded rule
            raise PrometheusError("Unavailable", f"cannot read bearer token Secret {ref['name']}/{ref['key']}: "
                                                 f"{type(error).__name__}") from None
    timeout = min(config.prometheus.timeout_seconds, limits.max_timeout)
    if override.get("timeout"):
        from ..domain.common.durations import parse_duration
        timeout = min(parse_duration(override["timeout"]), limits.max_timeout)
    return Endpoint(
        url=url if not own else config.prometheus.url,
        bearer_token=token,
        ca_file=config.prometheus.ca_file if own else None,
        insecure_skip_verify=bool(override.get("insecureSkipVerify", config.prometheus.insecure_skip_verify)),
        timeout_seconds=timeout,
    )


def _limits(config: OperatorConfig) -> Limits:
    return Limits(max_bytes=config.tenant_limits.max_response_bytes, max_series=config.tenant_limits.max_series)


# An evaluation makes a few queries (instant and range together, seasonal windows): it holds its slot
# for at most this many times the rule's timeout.
EVALUATION_TIMEOUTS = 4


async def incidents_view(api: kube.KubeApi, book: "IncidentBook | None", namespace: str,
                         names: set[str]) -> dict[str, dom.IncidentView]:
    """What the rule's incidents are now: from the incident book (no API call), or read from the API
    for the few the book does not know yet (the operator's first seconds, while the re-list is
    still arriving)."""
    views: dict[str, dom.IncidentView] = {}
    for name in sorted(names):
        summary = book.detected(namespace, name) if book is not None else None
        if summary is None and (book is None or not book.knows(namespace, name)):
            body = await api.get_object(kube.INCIDENTS, namespace, name)
            if body is None or RULE_LABEL not in ((body.get("metadata") or {}).get("labels") or {}):
                continue  # as the book would say: gone, or not an incident a rule opened
            summary = detected_summary(body.get("spec"), body.get("status"))
        if summary is not None:
            views[name] = dom.IncidentView(name=name, state=summary.state, resolved_at=summary.resolved_at)
    return views


async def evaluate_rule(rule_body: dict[str, Any], rule: dom.RuleSpec, detection: Detection) -> EvaluationResult:
    """Evaluates the rule once, carries out the plan and writes the rule's status.

    ``rule_body`` None in the result: the rule changed meanwhile (a rival evaluated it, or its spec
    changed); the caller re-reads it and evaluates again.
    """
    api, config, prometheus = detection.kube, detection.config, detection.prometheus
    semaphore, seasonal_cache = detection.slots, detection.seasonal_cache
    began = time.monotonic()
    now_dt = detection.clock()
    now = now_dt.timestamp()
    error: PrometheusError | None = None
    samples: list[tuple[dict[str, str], float]] = []
    screened = dom.Screened(samples=[])
    histories: dict[str, list[tuple[float, float]]] = {}
    seasonals: dict[str, list[list[float]]] = {}
    limits = _limits(config)
    try:
        endpoint = await endpoint_for(api, rule_body, config)
        async with semaphore.slot(rule.namespace):
            try:
                async with asyncio.timeout(endpoint.timeout_seconds * EVALUATION_TIMEOUTS):
                    points = rule.fetched_history_points
                    step = rule.step_s
                    # The value now and the history before it (for the detector and startedAt) in parallel:
                    # one round trip less between the evaluation tick and the incident. When nothing
                    # matches, the range query is an empty, cheap answer.
                    instant, series = await asyncio.gather(
                        prometheus.query(endpoint, rule.query, now, limits),
                        prometheus.query_range(endpoint, rule.query, now - points * step, now - step / 2, step,
                                               limits))
                    screened = dom.screen_samples(rule, [(s.labels, s.value) for s in instant])
                    samples = screened.samples
                    if instant:
                        for labels, values in series:
                            fp = rule_fingerprint(rule.namespace, rule.name, dom.group_of(rule, labels))
                            histories[fp] = dom.finite_points(values)
                        seasonals = await _seasonal_samples(rule, rule_body, endpoint, prometheus, now,
                                                            seasonal_cache, limits)
            except TimeoutError:
                raise PrometheusError("Timeout", f"the evaluation did not finish within "
                                                 f"{endpoint.timeout_seconds * EVALUATION_TIMEOUTS:g}s") from None
    except PrometheusError as failure:
        error = failure
    duration = time.monotonic() - began
    detection.metrics.observe_rule_evaluation(duration, error.reason if error else None)

    status = dict(rule_body.get("status") or {})
    generation = rule_body["metadata"].get("generation")
    status["lastEvaluationTime"] = format_time_precise(now_dt)
    status["lastEvaluationDuration"] = f"{duration:.3f}s"
    status["observedGeneration"] = generation
    conditions = status.get("conditions")
    if error is not None:
        status["lastError"] = str(error)[:2000]
        reason = ("PrometheusUnavailable" if error.reason in ("Unavailable", "Timeout")
                  else error.reason if error.reason in ("TooManySeries", "Invalid") else "QueryFailed")
        status["conditions"] = set_condition(conditions, "Degraded", True, reason, str(error)[:2000], now_dt,
                                             generation)
        status = with_ready(status, generation, False, reason,
                            f"Evaluation failed; no incident is opened from a failed query: {str(error)[:1000]}",
                            now_dt,
                            **failure_progress(error.reason, reason, str(error)[:2000]))
        return EvaluationResult(await _write_rule_status(api, rule_body, status), duration, error)

    previous_groups = list(status.get("groups") or [])
    names = {g.get("incident") for g in previous_groups if g.get("incident")}
    views = await incidents_view(api, detection.incident_book, rule.namespace, names)
    # Planning renders the rule's templates for the incidents it opens: on the render executor.
    plan = await run_rendering(detection.renderer, dom.plan_evaluation, rule, previous_groups, samples, histories,
                               views, now, seasonals)
    await _refine_starts(plan, rule, endpoint, prometheus)
    dry_run_entries, suppressed = await _carry_out(detection, rule_body, rule, plan, now, previous_groups)

    status["groups"] = plan.groups
    status["droppedGroups"] = plan.dropped_groups
    if suppressed:
        before = dict(status.get("suppressedIncidents") or {})
        status["suppressedIncidents"] = {
            "total": int(before.get("total") or 0) + sum(suppressed.values()),
            "lastEvaluation": sum(suppressed.values()), "reason": sorted(suppressed)[0],
            "lastTime": format_time(now_dt)}
    elif status.get("suppressedIncidents"):
        status["suppressedIncidents"] = {**status["suppressedIncidents"], "lastEvaluation": 0}
    status["firingCount"] = plan.firing
    status["lastSuccessfulEvaluationTime"] = format_time(now_dt)
    status.pop("lastError", None)
    if dry_run_entries:
        would = list((status.get("dryRun") or {}).get("wouldOpen") or []) + dry_run_entries
        status["dryRun"] = {"wouldOpen": would[-dom.MAX_DRY_RUN:]}
    status["conditions"] = set_condition(conditions, "Degraded", False, "Healthy", "The last evaluation succeeded",
                                         now_dt, generation)
    status = _with_dropped_samples(status, screened, now_dt, generation, detection.metrics)
    status = with_ready(status, generation, True, "Evaluating",
                        f"{'DryRun: ' if rule.dry_run else ''}{len(samples)} group(s) evaluated, "
                        f"{plan.firing} firing"
                        + (f", {sum(suppressed.values())} incident(s) suppressed by the incident budget"
                           if suppressed else "")
                        + (f", {plan.dropped_groups} group(s) beyond the {dom.MAX_GROUPS} kept in status"
                           if plan.dropped_groups else ""), now_dt)
    detection.metrics.rule_succeeded(now)
    return EvaluationResult(await _write_rule_status(api, rule_body, status), duration)


class SeasonalCache:
    """Seasonal reference windows (same time of day, previous days) change once per step: fetch them
    once per step and rule, not at every evaluation. Bounded LRU, held by the app (services.detection.Detection)."""

    def __init__(self, max_entries: int = 4096):
        self._entries: "OrderedDict[tuple, dict[str, list[list[float]]]]" = OrderedDict()
        self._max = max_entries

    def get(self, key: tuple) -> dict[str, list[list[float]]] | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: tuple, value: dict[str, list[list[float]]]) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


async def _seasonal_samples(rule: dom.RuleSpec, rule_body: Mapping[str, Any], endpoint: Endpoint,
                            prometheus: PrometheusClient, now: float,
                            cache: SeasonalCache | None, limits: Limits | None = None
                            ) -> dict[str, list[list[float]]]:
    windows = rule.seasonal_windows
    if not windows:
        return {}
    step = rule.step_s
    bucket = int(now // step)
    key = (rule.namespace, rule.name, rule_body["metadata"].get("generation"), bucket)
    if cache is not None and (cached := cache.get(key)) is not None:
        return cached
    anchor = bucket * step
    result: dict[str, list[list[float]]] = {}
    for index, window in enumerate(windows):
        start = anchor - window.lag_s - window.points_before * step
        end = anchor - window.lag_s + window.points_after * step
        answer = await (prometheus.query_range(endpoint, rule.query, start, end, step, limits) if limits
                        else prometheus.query_range(endpoint, rule.query, start, end, step))
        for labels, values in answer:
            fp = rule_fingerprint(rule.namespace, rule.name, dom.group_of(rule, labels))
            lists = result.setdefault(fp, [[] for _ in windows])
            lists[index] = [v for _, v in values]
    if cache is not None:
        cache.put(key, result)
    return result


async def _refine_starts(plan: dom.Plan, rule: dom.RuleSpec, endpoint: Endpoint,
                         prometheus: PrometheusClient) -> None:
    """Places each new episode's start on a grid of about a second when the rule's step is coarser
    (docs/detection.md, "When impact began"): one small range query per opened episode, which is rare.
    A failed query keeps the estimate from the rule's own step."""
    for action in plan.actions:
        level = action.start_level
        if action.kind not in ("open", "dry-run") or level is None:
            continue
        window = dom.refinement_window(rule, level, action.started_at)
        if window is None:
            continue
        start, end, step = window
        try:
            series = await prometheus.query_range(endpoint, rule.query, start, end, step)
        except PrometheusError as error:
            log.info(f"Keeping the coarse start of {rule.namespace}/{action.incident}: {error}")
            continue
        for labels, values in series:
            if rule_fingerprint(rule.namespace, rule.name, dom.group_of(rule, labels)) == action.fingerprint:
                action.started_at = dom.refine_start(rule, level, action.started_at, values, step)
        for group in plan.groups:
            if group.get("fingerprint") == action.fingerprint:
                group["startedAt"] = format_time_precise(datetime.fromtimestamp(action.started_at, timezone.utc))


def _with_dropped_samples(status: dict[str, Any], screened: dom.Screened, now: datetime, generation: Any,
                          metrics: IncidentMetrics) -> dict[str, Any]:
    """``status.droppedSamples`` and the SamplesDropped condition from the evaluation's refused samples
    (+Inf/-Inf/NaN values, series without a group label); counted in
    ``detection_rule_samples_dropped_total{reason}``."""
    for reason, count in screened.dropped.items():
        metrics.samples_dropped(reason, count)
    if screened.dropped_count:
        status["droppedSamples"] = {"count": screened.dropped_count, "reasons": dict(screened.dropped),
                                    "lastTime": format_time(now), "message": screened.message()[:2000]}
        reason = max(screened.dropped, key=lambda r: screened.dropped[r])
        status["conditions"] = set_condition(status.get("conditions"), ConditionType.SAMPLES_DROPPED, True, reason,
                                             screened.message()[:2000], now, generation)
    else:
        status["droppedSamples"] = None
        if any(c.get("type") == ConditionType.SAMPLES_DROPPED for c in status.get("conditions") or []):
            status["conditions"] = set_condition(status.get("conditions"), ConditionType.SAMPLES_DROPPED, False,
                                                 "AllSamplesUsed", "No sample was dropped in the last evaluation",
                                                 now, generation)
    return status


async def _write_rule_status(api: kube.KubeApi, rule_body: dict[str, Any],
                             status: dict[str, Any]) -> dict[str, Any] | None:
    """Writes the evaluation's status; None when the rule changed since it was read.

    The status holds the episode states this evaluation planned from the rule as read: on a newer
    version (a rival evaluated, or the spec changed) it would be wrong, so nothing is written and
    the caller evaluates again from the rule as it is now.
    """
    meta = rule_body["metadata"]
    version = meta.get("resourceVersion")
    # JSON has no +Inf or NaN: a status holding one would be refused by the API server at every write.
    wanted = finite_only({k: v for k, v in status.items() if v is not None})

    def compute(current: dict[str, Any]) -> dict[str, Any] | None:
        if current["metadata"].get("resourceVersion") != version:
            return None
        return status_patch(current.get("status") or {}, wanted) or None

    written = await api.write_status(kube.RULES, meta["namespace"], meta["name"], compute, body=rule_body)
    if written is None or (not written.wrote and written.body["metadata"].get("resourceVersion") != version):
        return None
    return written.body


async def _carry_out(detection: Detection, rule_body: dict[str, Any], rule: dom.RuleSpec, plan: dom.Plan,
                     now: float, previous_groups: list[dict[str, Any]] | None = None
                     ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Carries out the plan; returns the dry-run entries and the incidents suppressed by the budget (by
    reason). A suppressed group keeps the state it had before this evaluation, so it opens at a later
    evaluation once the budget allows (it is not silently forgotten)."""
    api, config = detection.kube, detection.config
    dry_run: list[dict[str, Any]] = []
    suppressed: dict[str, int] = {}
    before = {g.get("fingerprint"): g for g in previous_groups or []}
    graph_base = ((rule_body.get("spec") or {}).get("prometheus") or {}).get("graphURL") \
        or config.prometheus.external_url or ((rule_body.get("spec") or {}).get("prometheus") or {}).get("url") \
        or config.prometheus.url
    for action in plan.actions:
        try:
            if action.kind == "dry-run":
                dry_run.append({"time": format_time(datetime.fromtimestamp(now, timezone.utc)),
                                "name": action.incident, "title": action.title, "priority": action.priority,
                                "labels": action.labels, "value": action.value})
            elif action.kind == "open" and (refused := _budget_refusal(detection, rule)):
                suppressed[refused] = suppressed.get(refused, 0) + 1
                detection.metrics.incident_suppressed(refused)
                plan.groups = [before[g["fingerprint"]] if g.get("fingerprint") == action.fingerprint else g
                               for g in plan.groups
                               if g.get("fingerprint") != action.fingerprint or action.fingerprint in before]
            elif action.kind == "open":
                opened = await _open_incident(detection, rule, action, graph_base, now)
                if opened != action.incident:  # joined an alert incident, or continued the episode count
                    for group in plan.groups:
                        if group.get("fingerprint") == action.fingerprint:
                            group["incident"] = opened
                            episode = rule_episode_of(opened)
                            if episode and opened.startswith(action.incident.rsplit("-", 1)[0]):
                                group["episodeState"] = {**group["episodeState"], "episode": episode}
            elif action.kind == "reopen":
                await _reopen_incident(api, rule, action, graph_base, now)
            elif action.kind == "update" and _needs_refresh(detection.incident_book, rule.namespace, action, now):
                await _update_signal(api, rule, action, graph_base, now)
        except kube.NotFound:
            log.info(f"Incident {rule.namespace}/{action.incident} is gone; not updating it")
    if suppressed:
        plan.firing = sum(1 for g in plan.groups if (g.get("episodeState") or {}).get("phase") == FIRING)
        log.info(f"Rule {rule.namespace}/{rule.name}: {sum(suppressed.values())} incident(s) suppressed by the "
                 f"incident budget ({', '.join(sorted(suppressed))})")
    return dry_run, suppressed


def _budget_refusal(detection: Detection, rule: dom.RuleSpec) -> str | None:
    return detection.budget.take(rule.namespace, rule.name) if detection.budget is not None else None


def _needs_refresh(book: "IncidentBook | None", namespace: str, action: dom.Action, now: float) -> bool:
    summary = book.detected(namespace, action.incident) if book is not None else None
    if summary is None:
        return True
    if summary.value != action.value or summary.peak != max(action.peak, action.value):
        return True
    return summary.last_seen is None or now - summary.last_seen >= SIGNAL_REFRESH_SECONDS


async def _open_incident(detection: Detection, rule: dom.RuleSpec, action: dom.Action, graph_base: str,
                         now: float) -> str:
    """Opens the spike's incident (create-or-get); returns its name, or the alert incident it joined."""
    spec: dict[str, Any] = {
        "title": action.title or f"Spike in {rule.name}",
        "priority": action.priority,
        # The estimate from the series (the first sample that left normal), to the millisecond.
        "startedAt": format_time_precise(datetime.fromtimestamp(action.started_at, timezone.utc)),
        "state": INITIAL_STATE,
    }
    if action.description:
        spec["description"] = action.description
    for key in ("service", "team"):
        value = getattr(action, key)
        if value:
            spec[key] = label_value(value, fallback="unknown")
    labels = {RULE_LABEL: truncated_label_value(rule.name), FINGERPRINT_LABEL: action.fingerprint,
              **{k: v for k, v in rule.extra_labels.items()}}
    if spec.get("service"):
        labels[SERVICE_LABEL] = spec["service"]  # correlation with Alertmanager alerts finds it by this
    body = {
        "apiVersion": API_VERSION,
        "kind": INCIDENT_KIND,
        "metadata": {
            "name": action.incident,
            "namespace": rule.namespace,
            "labels": labels,
            "annotations": {
                DETECTED_AT_ANNOTATION: format_time(datetime.fromtimestamp(now, timezone.utc)),
                SOURCE_ANNOTATION: Source.DETECTION_RULE,
                OPERATOR_PRIORITY_ANNOTATION: action.priority,
            },
        },
        "spec": spec,
    }
    signal = dom.signal_status(rule, action, graph_base, now)
    api = detection.kube
    # An alert for the same service arriving now cannot open a second incident (services/correlation.py).
    async with detection.correlator.lock:
        joined = await detection.correlator.join_ticket_spike(
            rule.namespace, rule.name, action.fingerprint, spec.get("service") or "", signal,
            action.priority, datetime.fromtimestamp(action.started_at, timezone.utc),
            datetime.fromtimestamp(now, timezone.utc))
        if joined is not None:
            log.info(f"Spike of {rule.namespace}/{rule.name} {action.labels} joined incident {joined}")
            return joined
        created, is_new = await api.create_or_get(kube.INCIDENTS, rule.namespace, body)
        if not is_new and _from_an_earlier_episode(created, action):
            # The group's state was dropped from the rule's status (its windows had long passed), so
            # its episode count restarted and the name is taken by an old incident: continue the count,
            # as a recurrence of the group's latest incident.
            taken = await api.list_objects(kube.INCIDENTS, rule.namespace,
                                           f"{FINGERPRINT_LABEL}={action.fingerprint}")
            join, previous, episode = dom.continue_episode_count(
                {i["metadata"]["name"]: state_of((i.get("spec") or {}).get("state")) for i in taken})
            if join is not None:
                created = next(i for i in taken if i["metadata"]["name"] == join)
            else:
                body["metadata"]["name"] = rule_incident_name(rule.name, action.fingerprint, episode)
                created, is_new = await api.create_or_get(kube.INCIDENTS, rule.namespace, body)
                if previous is not None:
                    action.previous_incident = previous
                    signal["previousIncident"] = previous
    name = created["metadata"]["name"]
    if is_new:
        log.info(f"Opened incident {rule.namespace}/{name} for {action.labels} (value {action.value:g})")
    if name == signal.get("previousIncident"):
        signal.pop("previousIncident")
    # Both links before the rule's status records the episode: a crash in between redoes them.
    await _write_signal(api, created, lambda current: {**((current.get("status") or {}).get("signal") or {}),
                                                       **signal})
    if signal.get("previousIncident"):
        await _link_later_incident(api, rule.namespace, signal["previousIncident"], name)
    return name


async def _link_later_incident(api: kube.KubeApi, namespace: str, earlier: str, later: str) -> None:
    """Lists ``later`` in ``earlier``'s status.signal.laterIncidents (bounded), so the link goes both ways."""
    current = await api.get_object(kube.INCIDENTS, namespace, earlier)
    if current is None:
        log.info(f"Incident {namespace}/{earlier} is gone; {later} keeps its previousIncident link only")
        return

    def linked(body: dict[str, Any]) -> dict[str, Any]:
        signal = dict((body.get("status") or {}).get("signal") or {})
        return {**signal, "laterIncidents": dom.with_later_incident(signal.get("laterIncidents"), later)}

    try:
        await _write_signal(api, current, linked)
    except kube.NotFound:
        log.info(f"Incident {namespace}/{earlier} is gone; {later} keeps its previousIncident link only")


def _from_an_earlier_episode(existing: Mapping[str, Any], action: dom.Action) -> bool:
    """An incident found under this episode's name that cannot be this episode's: it is already
    Resolved or Closed. An open one is this episode's (a rival replica, or this operator before a
    crash, created it but had not recorded the episode in the rule's status yet): join it."""
    return (existing.get("spec") or {}).get("state") in RESOLVED_OR_CLOSED


async def _reopen_incident(api: kube.KubeApi, rule: dom.RuleSpec, action: dom.Action, graph_base: str,
                           now: float) -> None:
    def reopen(current: dict[str, Any]) -> dict[str, Any] | None:
        if (current.get("spec") or {}).get("state") in REOPEN_ON_RELAPSE:
            return {"spec": {"state": State.INVESTIGATING}}
        return None

    written = await api.write(kube.INCIDENTS, rule.namespace, action.incident, reopen)
    if written is None:
        raise kube.NotFound(action.incident)
    if written.wrote:
        log.info(f"Reopened incident {rule.namespace}/{action.incident}: the signal relapsed")
    await _update_signal(api, rule, action, graph_base, now, body=written.body)


async def _update_signal(api: kube.KubeApi, rule: dom.RuleSpec, action: dom.Action, graph_base: str, now: float,
                         *, body: dict[str, Any] | None = None) -> None:
    fresh = dom.signal_status(rule, action, graph_base, now)

    def refreshed(current: dict[str, Any]) -> dict[str, Any]:
        signal = dict((current.get("status") or {}).get("signal") or {})
        new = dict(fresh)
        new["peak"] = max(float(signal.get("peak") or 0.0), fresh["peak"])
        new["firstSeen"] = signal.get("firstSeen") or fresh["firstSeen"]
        if signal.get("previousIncident"):
            new["previousIncident"] = signal["previousIncident"]
        return {**signal, **new}

    if body is None:
        body = await api.get_object(kube.INCIDENTS, rule.namespace, action.incident)
        if body is None:
            raise kube.NotFound(action.incident)
    written = await _write_signal(api, body, refreshed)
    peak = float((((written.get("status") or {}).get("signal") or {}).get("peak")) or fresh["peak"])
    await _raise_priority(api, rule, written, peak)


async def _raise_priority(api: kube.KubeApi, rule: dom.RuleSpec, incident: dict[str, Any], peak: float) -> None:
    """Moves the incident into a higher priority band as the spike grows, unless a person set it."""
    wanted = dom.priority_for(rule, peak)

    def raised(current: dict[str, Any]) -> dict[str, Any] | None:
        set_by_rule = ((current.get("metadata") or {}).get("annotations") or {}).get(OPERATOR_PRIORITY_ANNOTATION)
        priority = (current.get("spec") or {}).get("priority")
        if not set_by_rule or priority != set_by_rule or priority_rank(wanted) >= priority_rank(priority):
            return None
        return {"metadata": {"annotations": {OPERATOR_PRIORITY_ANNOTATION: wanted}}, "spec": {"priority": wanted}}

    meta = incident["metadata"]
    written = await api.write(kube.INCIDENTS, meta["namespace"], meta["name"], raised, body=incident)
    if written is not None and written.wrote:
        log.info(f"Raised {meta['namespace']}/{meta['name']} to {wanted}: the signal peaked at {peak:g}")


async def _write_signal(api: kube.KubeApi, incident: dict[str, Any],
                        signal_of: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Writes ``status.signal`` (as ``signal_of`` the incident as it is) unless it already holds it."""

    def compute(current: dict[str, Any]) -> dict[str, Any] | None:
        signal = finite_only(signal_of(current))
        return None if (current.get("status") or {}).get("signal") == signal else {"signal": signal}

    meta = incident["metadata"]
    written = await api.write_status(kube.INCIDENTS, meta["namespace"], meta["name"], compute, body=incident)
    if written is None:
        raise kube.NotFound(meta["name"])
    return written.body


def _label_safe(value: str) -> str:
    cleaned = re.sub(r"[^a-z0-9_.-]", "-", value.lower()).strip("-._")[:63]
    return cleaned.strip("-._") or "unknown"
