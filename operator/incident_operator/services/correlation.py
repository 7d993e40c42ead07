"""Correlation: one incident for an alert and a ticket spike of the same service.

The alerts service (Alertmanager notifications) and the detection service (DetectionRule spikes)
both open incidents, and each joins an open incident of the other's when the service matches
within ``alertmanager.correlationWindow``. What they share lives here, so neither imports the other
(an import-linter contract in ``.importlinter`` holds them independent):

* :data:`WRITE_LOCK`: both paths run under it, so an alert and a spike for the same service
  arriving together in one operator cannot open two incidents;
* the steps that join a second source to an incident (an earlier detection time, a raised priority)
  and :func:`_apply`, which writes them conditionally;
* :func:`join_ticket_spike`, called by the detection engine before it opens a ticket-spike incident.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

from ..adapters import kube
from ..domain.alerts import alertmanager as dom
from ..domain.detection.rules import FINGERPRINT_LABEL, RULE_LABEL
from ..domain.common.durations import format_duration
from ..domain.incident.lifecycle import DETECTED_AT_ANNOTATION
from ..domain.incident.timeline import DEFAULT_TIMELINE_LIMIT, append_entries, timeline_entry
from ..domain.common.timeutil import format_time, parse_time

# Same annotation as services/detection.py: the priority the operator last set by itself. While
# spec.priority still equals it no person has overridden it, and a more severe signal may raise it.
OPERATOR_PRIORITY_ANNOTATION = "incidents.buttercream.io/rule-priority"
MAX_RETRIES = 8
WRITE_LOCK = asyncio.Lock()
PRIORITY_ORDER = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}


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
    if (spec_start is not None and wanted_start < spec_start) or (
            spec_start is None and started_at is not None and started_at < new_detected):
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


async def _apply(incident: dict[str, Any],
                 step: Callable[[dict[str, Any]], _Change | None]) -> dict[str, Any]:
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
            labels = {RULE_LABEL: rule_name[:63], FINGERPRINT_LABEL: fingerprint}
            _merge(object_patch, {"metadata": {"labels": labels}})
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
