"""The correlation: where an Alertmanager alert and a ticket spike of the same service meet.

Both intake paths (services/alerts.py for Alertmanager, services/detection.py for ticket spikes)
may open an incident for a service; the :class:`Correlator` (one per operator, built by the app)
holds the lock both run under, so the two arriving together cannot open two incidents, and the
join of a spike into an open alert incident. The write steps both paths share are here too: a
:class:`Change` (metadata/spec, then status) written through the write policy by
:func:`apply_change`, moving the detection time earlier, raising an operator-set priority.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

from ..adapters import kube
from ..domain.alerts import alertmanager as dom
from ..domain.common.durations import format_duration
from ..domain.common.timeutil import format_time, parse_time
from ..domain.detection.rules import FINGERPRINT_LABEL, RULE_LABEL
from ..domain.incident.lifecycle import DETECTED_AT_ANNOTATION
from ..domain.incident.timeline import DEFAULT_TIMELINE_LIMIT, append_entries, timeline_entry

# Same annotation as services/detection.py: the priority the operator last set by itself. While
# spec.priority still equals it no person has overridden it, and a more severe signal may raise it.
OPERATOR_PRIORITY_ANNOTATION = "incidents.buttercream.io/rule-priority"
PRIORITY_ORDER = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}


@dataclass
class Change:
    """The two conditional writes one step wants: metadata/spec, then status."""

    object_patch: dict[str, Any]
    status_patch: dict[str, Any]


def merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


def earlier_detection(incident: Mapping[str, Any], candidate: datetime, now: datetime,
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
    if (spec_start is not None and wanted_start < spec_start) or (
            spec_start is None and started_at is not None and started_at < new_detected):
        patch["spec"] = {"startedAt": format_time(wanted_start)}
    return patch


def raise_priority(incident: Mapping[str, Any], wanted: str) -> dict[str, Any]:
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


async def apply_change(api: kube.KubeApi, incident: dict[str, Any],
                 step: Callable[[dict[str, Any]], Change | None]) -> dict[str, Any]:
    """Writes what ``step`` asks of the incident as it is (the write policy: metadata/spec first,
    then the status ``step`` computes from the written object); the incident as written."""

    def compute(current: dict[str, Any]) -> dict[str, Any] | None:
        change = step(current)
        if change is None:
            return None
        if change.object_patch:
            return change.object_patch
        return {"status": change.status_patch} if change.status_patch else None

    meta = incident["metadata"]
    written = await api.write(kube.INCIDENTS, meta["namespace"], meta["name"], compute, body=incident)
    if written is None:
        raise kube.NotFound(meta["name"])
    return written.body


def settings_of(config: Any) -> dom.AlertSettings:
    raw = getattr(config, "alertmanager", None) or {}
    return dom.parse_settings(raw, require_namespace=False)


class Correlator:
    """Where an Alertmanager alert and a ticket spike of the same service meet: one per operator.

    ``lock`` serialises the two paths that may open an incident for a service (AlertService.handle
    and the detection engine's opening of a spike incident), so both arriving together cannot open
    two incidents.
    """

    def __init__(self, api: kube.KubeApi, config: Any):
        self.kube = api
        self.settings = settings_of(config)
        self.timeline_limit = getattr(config, "timeline_limit", DEFAULT_TIMELINE_LIMIT)
        self.lock = asyncio.Lock()

    async def join_ticket_spike(self, namespace: str, rule_name: str, fingerprint: str, service: str,
                                signal: Mapping[str, Any], priority: str, started_at: datetime,
                                now: datetime) -> str | None:
        """Joins the spike to an open alert incident of ``service`` detected within the window; its
        name, or None.

        Called by the detection engine under :attr:`lock` before it creates a spike incident.
        Idempotent: joining again (a retried evaluation) rewrites the same evidence and adds nothing to
        the timeline. The incident gets the rule's labels, so the engine's incident book tracks it like
        its own.
        """
        settings = self.settings
        if not settings.enabled or settings.correlation_window_s <= 0 or not service:
            return None
        candidates = await self.kube.list_objects(kube.INCIDENTS, namespace, f"{dom.SERVICE_LABEL}={service}")
        target = dom.pick_for_spike(candidates, service, now, settings.correlation_window_s, fingerprint)
        if target is None:
            return None
        step = _spike_join_step(namespace, rule_name, fingerprint, service, signal, priority, started_at, now,
                                format_duration(settings.correlation_window_s), self.timeline_limit)
        joined = await apply_change(self.kube, dict(target), step)
        return joined["metadata"]["name"]


def _spike_join_step(namespace: str, rule_name: str, fingerprint: str, service: str,
                     signal: Mapping[str, Any], priority: str, started_at: datetime, now: datetime,
                     window: str, limit: int) -> Callable[[dict[str, Any]], Change | None]:
    def step(current: dict[str, Any]) -> Change | None:
        meta = current.get("metadata") or {}
        status = current.get("status") or {}
        old_signal = status.get("signal") or {}
        if (current.get("spec") or {}).get("state") == "Closed":
            return None
        object_patch: dict[str, Any] = {}
        if not (meta.get("labels") or {}).get(RULE_LABEL):
            labels = {RULE_LABEL: rule_name[:63], FINGERPRINT_LABEL: fingerprint}
            merge(object_patch, {"metadata": {"labels": labels}})
        merge(object_patch, earlier_detection(current, now, now, started_at))
        merge(object_patch, raise_priority(current, priority))
        if object_patch:
            return Change(object_patch, {})
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
        return Change({}, status_patch) if status_patch else None

    return step
