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

Writes go through the write policy (adapters/kube.py, conditional on resourceVersion): the
spec/metadata write first (reopen, resolve, the group label, an earlier detection time), then the
status write computed from the object as written; a conflict re-reads and recomputes, and every step
is idempotent, so a crash between the two is repaired by Alertmanager's retry.

The other direction (a ticket spike joining an open alert incident) and the lock both paths run
under are the correlation (services/correlation.py), which the detection engine uses too: an alert
and a spike for the same service arriving together cannot open two incidents.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

from ..adapters import kube
from ..domain.alerts import alertmanager as dom
from ..domain.common.durations import format_duration
from ..domain.incident.lifecycle import DETECTED_AT_ANNOTATION, SOURCE_ANNOTATION
from ..domain.incident.timeline import DEFAULT_TIMELINE_LIMIT, append_entries, timeline_entry
from ..domain.common.timeutil import format_time, utcnow
from .correlation import (OPERATOR_PRIORITY_ANNOTATION, Change, Correlator, apply_change, earlier_detection, merge,
                          raise_priority)

log = logging.getLogger(__name__)
AUTO_OWNER = "alertmanager"
ACTOR = "alertmanager"


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


class AlertService:
    def __init__(self, api: kube.KubeApi, settings: dom.AlertSettings, correlator: Correlator,
                 timeline_limit: int = DEFAULT_TIMELINE_LIMIT, clock: Callable[[], datetime] = utcnow):
        self.kube = api
        self.settings = settings
        self.correlator = correlator
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
        async with self.correlator.lock:
            result = await self._handle(plan)
        log.info(f"Alertmanager notification ({plan.status}, {len(plan.alerts)} alert(s)) for group "
                 f"{plan.group_key}: {result.action} {result.namespace or ''}/{result.incident or ''} {result.message}")
        return result

    async def _handle(self, plan: dom.GroupPlan) -> Result:
        now = self.clock()
        members = await self.kube.list_objects(kube.INCIDENTS, self.namespace, dom.group_label(plan.group_key))
        live = [i for i in members if (i.get("spec") or {}).get("state") != "Closed"
                and not dom.stale_resolution(i, now, self.settings.recovery_window_s)]
        if live:
            # Prefer an open incident, then the most recently detected one.
            live.sort(key=lambda i: (dom.is_open(i), dom.detected_time(i) or now, i["metadata"]["name"]))
            target = live[-1]
            updated = await apply_change(self.kube, target, lambda current: self._update_step(current, plan, now, joining=False))
            return Result("updated", updated["metadata"]["name"], self.namespace)
        if not plan.firing:
            return Result("ignored", message="nothing fires and no open incident holds this group")
        if members and not self._has_new_firing(members, plan):
            return Result("ignored", message="the group's incident is Closed; only a new firing opens a new one")

        if plan.service and self.settings.correlation_window_s > 0:
            candidates = await self.kube.list_objects(kube.INCIDENTS, self.namespace, f"{dom.SERVICE_LABEL}={plan.service}")
            target = dom.pick_for_alert(candidates, plan.service, min(plan.earliest, now),
                                        self.settings.correlation_window_s)
            if target is not None:
                joined = await apply_change(self.kube, dict(target), lambda current: self._update_step(current, plan, now, joining=True))
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

    def _update_step(self, current: dict[str, Any], plan: dom.GroupPlan, now: datetime, joining: bool) -> Change | None:
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
            merge(object_patch, {"metadata": {"labels": {label: "true"}}})
        if plan.firing and state != "Closed":
            merge(object_patch, earlier_detection(current, min(a.starts_at for a in plan.firing), now))
            merge(object_patch, raise_priority(current, plan.priority))
        if state == "Resolved" and changes.new_firing:
            merge(object_patch, {"spec": {"state": "Investigating"}})  # a relapse, counted as a reopen
        resolving = (self.settings.resolve_on_resolved and plan.status == "resolved" and dom.is_open(current)
                     and dom.all_alerts_resolved(changes.alerts) and not dom.has_ticket_spike(current))
        if resolving:
            resolve = {"state": "Resolved"}
            if not spec.get("owner"):
                resolve["owner"] = AUTO_OWNER
            if not spec.get("resolution"):
                resolve["resolution"] = "Resolved automatically: every correlated Alertmanager alert resolved."
            merge(object_patch, {"spec": resolve})
        if object_patch:
            return Change(object_patch, {})

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
        return Change({}, status_patch)

    async def _open(self, plan: dom.GroupPlan, now: datetime, taken: set[str]) -> Result:
        detected = min(min(a.starts_at for a in plan.firing), now)
        for name in (dom.incident_name(plan.group_key), dom.incident_name(plan.group_key, plan.earliest)):
            if name in taken:
                continue
            body = self._incident_body(name, plan, detected)
            created, is_new = await self.kube.create_or_get(kube.INCIDENTS, self.namespace, body)
            labels = (created.get("metadata") or {}).get("labels") or {}
            if not is_new and (labels.get(dom.group_label(plan.group_key)) != "true"
                               or (created.get("spec") or {}).get("state") == "Closed"):
                taken.add(name)
                continue  # an older episode (Closed) holds this name: the new episode takes the next one
            await apply_change(self.kube, created, lambda current: self._update_step(current, plan, now, joining=False))
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
