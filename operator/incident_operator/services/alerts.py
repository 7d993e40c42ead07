"""Carries out what Alertmanager notifications mean: open, update, join, reopen or resolve incidents.

One notification is one Alertmanager group (``groupKey``). What happens to it:

1. an incident already holding alerts of the group (label ``incidents.buttercream.io/alert-group-<hash>``)
   and not Closed (nor Resolved longer than ``recoveryWindow`` ago) is updated: the alerts are merged
   into ``status.signal.alerts`` (a repeat notification changes nothing), a recovery is recorded,
   a new firing reopens a Resolved incident, and ``resolveOnResolved`` resolves it;
2. otherwise, when some alert fires, an open incident of the same service detected within
   ``correlationWindow`` (opened by a DetectionRule or by another alert group) is joined;
3. otherwise an incident is created under a deterministic name from the group key (create-or-get),
   so Alertmanager's retries, its HA peers and a restarted operator never open a second one.
   A Closed incident is never reopened: a *new* firing of its group opens a new incident.

Writes are conditional (resourceVersion): the spec/metadata write first (reopen, resolve, the group
label, an earlier detection time), then the status write; a conflict re-reads and recomputes, and
every step is idempotent, so a crash between the two is repaired by Alertmanager's retry.

:func:`join_ticket_spike` is the other direction, called by the detection engine before it opens a
ticket-spike incident. Both paths run under :data:`WRITE_LOCK`, so an alert and a spike for the
same service arriving together in one operator cannot open two incidents.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

from ..adapters import kube
from ..domain.alerts import alertmanager as dom
from ..domain.detection.rules import FINGERPRINT_LABEL, RULE_LABEL
from ..domain.common.durations import format_duration
from ..domain.incident.lifecycle import DETECTED_AT_ANNOTATION, SOURCE_ANNOTATION
from ..domain.incident.timeline import DEFAULT_TIMELINE_LIMIT, append_entries, timeline_entry
from ..domain.common.timeutil import format_time, parse_time, utcnow

log = logging.getLogger(__name__)
# Same annotation as services/detection.py: the priority the operator last set by itself. While
# spec.priority still equals it no person has overridden it, and a more severe signal may raise it.
OPERATOR_PRIORITY_ANNOTATION = "incidents.buttercream.io/rule-priority"
AUTO_OWNER = "alertmanager"
MAX_RETRIES = 8
ACTOR = "alertmanager"
WRITE_LOCK = asyncio.Lock()
PRIORITY_ORDER = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}


@dataclass
class Result:
    action: str  # opened, updated, joined, ignored
    incident: str | None = None
    namespace: str | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "ok", "action": self.action}
        if self.incident:
            body["incident"] = f"{self.namespace}/{self.incident}"
        if self.message:
            body["message"] = self.message
        return body


@dataclass
class _Change:
    """The two conditional writes one step wants: metadata/spec, then status."""

    object_patch: dict[str, Any]
    status_patch: dict[str, Any]


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _earlier_detection(incident: Mapping[str, Any], candidate: datetime, now: datetime,
                       started_at: datetime | None = None) -> dict[str, Any]:
    """The object patch that moves detection (and spec.startedAt) earlier, if ``candidate`` is earlier.

    lifecycle.py takes min(status.detectedAt, annotation), so lowering the annotation lowers
    status.detectedAt: time-to-detect is measured from the earliest signal.
    """
    patch: dict[str, Any] = {}
    candidate = min(candidate, now)
    current = dom.detected_time(incident)
    if dom.earlier(current, candidate) is not None:
        patch["metadata"] = {"annotations": {DETECTED_AT_ANNOTATION: format_time(candidate)}}
    spec = incident.get("spec") or {}
    new_detected = min(candidate, current) if current else candidate
    wanted_start = min(new_detected, started_at) if started_at else new_detected
    try:
        spec_start = parse_time(spec.get("startedAt"))
    except ValueError:
        spec_start = None
    # Impact cannot start after it was detected; a person's earlier back-dating is kept.
    if (spec_start is not None and wanted_start < spec_start) or (spec_start is None and started_at is not None
                                                                   and started_at < new_detected):
        patch["spec"] = {"startedAt": format_time(wanted_start)}
    return patch


def _raise_priority(incident: Mapping[str, Any], wanted: str) -> dict[str, Any]:
    """Raises spec.priority to ``wanted`` when the operator set the current one (no person overrode it)."""
    spec = incident.get("spec") or {}
    annotations = (incident.get("metadata") or {}).get("annotations") or {}
    current = spec.get("priority")
    set_by_operator = annotations.get(OPERATOR_PRIORITY_ANNOTATION)
    if not current or current != set_by_operator:
        return {}
    if PRIORITY_ORDER.get(wanted, 9) >= PRIORITY_ORDER.get(current, 9):
        return {}
    return {"metadata": {"annotations": {OPERATOR_PRIORITY_ANNOTATION: wanted}}, "spec": {"priority": wanted}}


async def _apply(incident: dict[str, Any], step: Callable[[dict[str, Any]], _Change | None]) -> dict[str, Any]:
    """Runs ``step`` against the current object and writes what it asks, conditionally, until it asks nothing.

    The metadata/spec patch goes first; ``step`` then runs again on the written object and yields
    the status patch. A conflict re-reads the object and starts over.
    """
    meta = incident["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    current: dict[str, Any] | None = incident
    for _ in range(MAX_RETRIES * 2):
        if current is None:
            raise kube.NotFound(name)
        change = step(current)
        if change is None:
            return current
        try:
            if change.object_patch:
                current = await kube.patch_object(kube.INCIDENTS, namespace, name, change.object_patch,
                                                  current["metadata"].get("resourceVersion"))
                continue
            return await kube.patch_status(kube.INCIDENTS, namespace, name, change.status_patch,
                                           current["metadata"].get("resourceVersion"))
        except kube.Conflict:
            current = await kube.get_object(kube.INCIDENTS, namespace, name)
    raise kube.Conflict(f"incident {namespace}/{name} kept changing while an alert was recorded")


class AlertService:
    def __init__(self, settings: dom.AlertSettings, timeline_limit: int = DEFAULT_TIMELINE_LIMIT,
                 clock: Callable[[], datetime] = utcnow):
        self.settings = settings
        self.timeline_limit = timeline_limit
        self.clock = clock

    @property
    def namespace(self) -> str:
        assert self.settings.namespace
        return self.settings.namespace

    async def handle(self, notification: dom.Notification) -> Result:
        plan = dom.plan_group(notification, self.settings)
        if plan is None:
            return Result("ignored", message="no mapping selects these alerts")
        async with WRITE_LOCK:
            result = await self._handle(plan)
        log.info(f"Alertmanager notification ({plan.status}, {len(plan.alerts)} alert(s)) for group "
                 f"{plan.group_key}: {result.action} {result.namespace or ''}/{result.incident or ''} {result.message}")
        return result

    async def _handle(self, plan: dom.GroupPlan) -> Result:
        now = self.clock()
        members = await kube.list_objects(kube.INCIDENTS, self.namespace, dom.group_label(plan.group_key))
        live = [i for i in members if (i.get("spec") or {}).get("state") != "Closed"
                and not dom.stale_resolution(i, now, self.settings.recovery_window_s)]
        if live:
            # Prefer an open incident, then the most recently detected one.
            live.sort(key=lambda i: (dom.is_open(i), dom.detected_time(i) or now, i["metadata"]["name"]))
            target = live[-1]
            updated = await _apply(target, lambda current: self._update_step(current, plan, now, joining=False))
            return Result("updated", updated["metadata"]["name"], self.namespace)
        if not plan.firing:
            return Result("ignored", message="nothing fires and no open incident holds this group")
        if members and not self._has_new_firing(members, plan):
            return Result("ignored", message="the group's incident is Closed; only a new firing opens a new one")

        if plan.service and self.settings.correlation_window_s > 0:
            candidates = await kube.list_objects(kube.INCIDENTS, self.namespace, f"{dom.SERVICE_LABEL}={plan.service}")
            target = dom.pick_for_alert(candidates, plan.service, min(plan.earliest, now),
                                        self.settings.correlation_window_s)
            if target is not None:
                joined = await _apply(dict(target), lambda current: self._update_step(current, plan, now, joining=True))
                return Result("joined", joined["metadata"]["name"], self.namespace)
        return await self._open(plan, now, taken={i["metadata"]["name"] for i in members})

    def _has_new_firing(self, members: list[dict[str, Any]], plan: dom.GroupPlan) -> bool:
        recorded = set()
        for incident in members:
            for entry in ((incident.get("status") or {}).get("signal") or {}).get("alerts") or []:
                recorded.add((entry.get("groupKey"), entry.get("alertname"), entry.get("startsAt")))
        for alert in plan.firing:
            entry = dom.alert_entry(plan.group_key, alert)
            if (entry["groupKey"], entry["alertname"], entry["startsAt"]) not in recorded:
                return True
        return False

    # -- writes --------------------------------------------------------------------------------------

    def _update_step(self, current: dict[str, Any], plan: dom.GroupPlan, now: datetime, joining: bool) -> _Change | None:
        meta = current.get("metadata") or {}
        spec = current.get("spec") or {}
        status = current.get("status") or {}
        signal = status.get("signal") or {}
        state = spec.get("state") or "Triggered"
        changes = dom.merge_alerts(signal.get("alerts"), plan, self.settings.max_alerts)
        window = format_duration(self.settings.correlation_window_s)

        object_patch: dict[str, Any] = {}
        label = dom.group_label(plan.group_key)
        if (meta.get("labels") or {}).get(label) != "true":
            _merge(object_patch, {"metadata": {"labels": {label: "true"}}})
        if plan.firing and state != "Closed":
            _merge(object_patch, _earlier_detection(current, min(a.starts_at for a in plan.firing), now))
            _merge(object_patch, _raise_priority(current, plan.priority))
        if state == "Resolved" and changes.new_firing:
            _merge(object_patch, {"spec": {"state": "Investigating"}})  # a relapse, counted as a reopen
        resolving = (self.settings.resolve_on_resolved and plan.status == "resolved" and dom.is_open(current)
                     and dom.all_alerts_resolved(changes.alerts) and not dom.has_ticket_spike(current))
        if resolving:
            resolve = {"state": "Resolved"}
            if not spec.get("owner"):
                resolve["owner"] = AUTO_OWNER
            if not spec.get("resolution"):
                resolve["resolution"] = "Resolved automatically: every correlated Alertmanager alert resolved."
            _merge(object_patch, {"spec": resolve})
        if object_patch:
            return _Change(object_patch, {})

        # -- status (the object is as it should be) --------------------------------------------------
        entries = []
        # Joining; or a join whose status write was lost (crash) and is repaired by a later notification.
        own = str(meta.get("name") or "").startswith(dom.incident_name(plan.group_key))
        if joining or (not own and not _holds_group(signal, plan.group_key)):
            lead = (plan.firing or plan.alerts)[0]
            entries.append(timeline_entry(now, "Correlated",
                                          f"Alert {lead.alertname or plan.group_key} ({plan.priority}) from Alertmanager "
                                          f"joined this incident: same service {plan.service} within {window}", ACTOR))
        for entry in changes.new_firing:
            entries.append(timeline_entry(now, "AlertFiring",
                                          f"Alert {entry['alertname']} firing since {entry['startsAt']}", ACTOR))
        for entry in changes.resolved:
            entries.append(timeline_entry(now, "AlertResolved",
                                          f"Alert {entry['alertname']} resolved"
                                          + (f" at {entry['endsAt']}" if entry.get("endsAt") else ""), ACTOR))
        new_signal: dict[str, Any] = {}
        if changes.alerts != list(signal.get("alerts") or []):
            new_signal["alerts"] = changes.alerts
        first = dom.derive_first_signal({**signal, "alerts": changes.alerts})
        if first and first != signal.get("firstSignal"):
            new_signal["firstSignal"] = first
        status_patch: dict[str, Any] = {}
        if new_signal:
            status_patch["signal"] = new_signal
        if entries:
            status_patch["timeline"] = append_entries(status.get("timeline"), entries, self.timeline_limit)
        if not status_patch:
            return None
        return _Change({}, status_patch)

    async def _open(self, plan: dom.GroupPlan, now: datetime, taken: set[str]) -> Result:
        detected = min(min(a.starts_at for a in plan.firing), now)
        for name in (dom.incident_name(plan.group_key), dom.incident_name(plan.group_key, plan.earliest)):
            if name in taken:
                continue
            body = self._incident_body(name, plan, detected)
            created, is_new = await kube.create_or_get(kube.INCIDENTS, self.namespace, body)
            labels = (created.get("metadata") or {}).get("labels") or {}
            if not is_new and (labels.get(dom.group_label(plan.group_key)) != "true"
                               or (created.get("spec") or {}).get("state") == "Closed"):
                taken.add(name)
                continue  # an older episode (Closed) holds this name: the new episode takes the next one
            await _apply(created, lambda current: self._update_step(current, plan, now, joining=False))
            return Result("opened" if is_new else "updated", name, self.namespace)
        return Result("ignored", message="the group's incidents are Closed and its names are taken")

    def _incident_body(self, name: str, plan: dom.GroupPlan, detected: datetime) -> dict[str, Any]:
        labels = {dom.group_label(plan.group_key): "true"}
        spec: dict[str, Any] = {"title": plan.title, "priority": plan.priority, "state": "Triggered"}
        if plan.description:
            spec["description"] = plan.description
        if plan.service:
            spec["service"] = plan.service
            labels[dom.SERVICE_LABEL] = plan.service
        if plan.team:
            spec["team"] = plan.team
        if plan.links:
            spec["links"] = [dict(link) for link in plan.links]
        return {
            "apiVersion": f"{kube.GROUP}/{kube.VERSION}",
            "kind": "Incident",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": labels,
                "annotations": {
                    DETECTED_AT_ANNOTATION: format_time(detected),
                    SOURCE_ANNOTATION: dom.SOURCE,
                    OPERATOR_PRIORITY_ANNOTATION: plan.priority,
                },
            },
            "spec": spec,
        }


def _holds_group(signal: Mapping[str, Any], group_key: str) -> bool:
    return any(entry.get("groupKey") == group_key[:1000] for entry in signal.get("alerts") or [])


# -- the other direction: a ticket spike joins an open alert incident ----------------------------------

def settings_of(config: Any) -> dom.AlertSettings:
    raw = getattr(config, "alertmanager", None) or {}
    return dom.parse_settings(raw, require_namespace=False)


async def join_ticket_spike(config: Any, namespace: str, rule_name: str, fingerprint: str, service: str,
                            signal: Mapping[str, Any], priority: str, started_at: datetime,
                            now: datetime) -> str | None:
    """Joins the spike to an open alert incident of ``service`` detected within the window; its name, or None.

    Called by the detection engine under :data:`WRITE_LOCK` before it creates a spike incident.
    Idempotent: joining again (a retried evaluation) rewrites the same evidence and adds nothing to
    the timeline. The incident gets the rule's labels, so the engine's incident book tracks it like its own.
    """
    settings = settings_of(config)
    if not settings.enabled or settings.correlation_window_s <= 0 or not service:
        return None
    candidates = await kube.list_objects(kube.INCIDENTS, namespace, f"{dom.SERVICE_LABEL}={service}")
    target = dom.pick_for_spike(candidates, service, now, settings.correlation_window_s, fingerprint)
    if target is None:
        return None
    limit = getattr(config, "timeline_limit", DEFAULT_TIMELINE_LIMIT)
    window = format_duration(settings.correlation_window_s)

    def step(current: dict[str, Any]) -> _Change | None:
        meta = current.get("metadata") or {}
        status = current.get("status") or {}
        old_signal = status.get("signal") or {}
        if (current.get("spec") or {}).get("state") == "Closed":
            return None
        object_patch: dict[str, Any] = {}
        if not (meta.get("labels") or {}).get(RULE_LABEL):
            _merge(object_patch, {"metadata": {"labels": {RULE_LABEL: rule_name[:63], FINGERPRINT_LABEL: fingerprint}}})
        _merge(object_patch, _earlier_detection(current, now, now, started_at))
        _merge(object_patch, _raise_priority(current, priority))
        if object_patch:
            return _Change(object_patch, {})
        new_signal = dict(signal)
        first = dom.derive_first_signal({**old_signal, **new_signal})
        if first:
            new_signal["firstSignal"] = first
        status_patch: dict[str, Any] = {}
        if any(old_signal.get(k) != v for k, v in new_signal.items()):
            status_patch["signal"] = new_signal
        if old_signal.get("fingerprint") != fingerprint:
            entry = timeline_entry(now, "Correlated",
                                   f"Ticket spike from DetectionRule {namespace}/{rule_name} (value "
                                   f"{float(signal.get('value') or 0):g}) joined this incident: same service "
                                   f"{service} within {window}", f"DetectionRule/{rule_name}")
            status_patch["timeline"] = append_entries(status.get("timeline"), [entry], limit)
        return _Change({}, status_patch) if status_patch else None

    joined = await _apply(dict(target), step)
    return joined["metadata"]["name"]
