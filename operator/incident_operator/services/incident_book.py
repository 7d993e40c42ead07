"""What the operator knows of every incident without an API call: a small summary per incident,
kept current from the Incident watch (handlers/incidents.py) and dropped when the incident is.

Read by the scrape-time gauges (how many incidents in each priority and state, which are past
their response deadline) and by the detection engine (the state, resolution time and last signal
of the incidents a rule opened).

Why not kopf indexes, which do the same: with an index registered on a resource, kopf 1.45 makes
one readiness toggle per listed object at start-up, and every new toggle wakes every waiting
worker, which re-checks every toggle (``ToggleSet.make_toggle`` in
``kopf/_cogs/aiokits/aiotoggles.py``, awaited from ``kopf/_core/reactor/queueing.py``): the
start-up is cubic in the number of objects. 3,000 incidents took 73 s to start; 10,000 did not
start in many minutes. This book holds the same data (one entry per live incident, like the index)
and costs a dict assignment per watch event. Unlike an index it is not guaranteed complete before
the first handler runs; its readers tolerate that (the engine re-reads what it does not know,
the gauges fill in during the first seconds of the re-list).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .. import metrics
from ..api import INITIAL_STATE, RULE_LABEL
from ..domain.common.timeutil import epoch_or_none


@dataclass(frozen=True)
class DetectedSummary:
    """What the detection engine needs of an incident a rule opened."""

    state: str
    resolved_at: float | None
    value: float | None
    peak: float | None
    last_seen: float | None


def detected_summary(spec: Mapping[str, Any] | None, status: Mapping[str, Any] | None) -> DetectedSummary:
    status = status or {}
    signal = status.get("signal") or {}
    resolved = epoch_or_none(status.get("resolvedAt"))
    return DetectedSummary(
        state=(spec or {}).get("state") or INITIAL_STATE,
        resolved_at=resolved,
        value=signal.get("value"),
        peak=signal.get("peak"),
        last_seen=epoch_or_none(signal.get("lastSeen")),
    )




@dataclass(frozen=True)
class _Entry:
    state_key: tuple[str, str]
    gauges: metrics.GaugeEntry
    detected: DetectedSummary | None


class IncidentBook:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}

    def observe(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        spec, status = body.get("spec"), body.get("status")
        state_key, gauges = metrics.gauge_entry(spec, status)
        detected = detected_summary(spec, status) if RULE_LABEL in (meta.get("labels") or {}) else None
        self._entries[key] = _Entry(state_key, gauges, detected)

    def forget(self, namespace: str, name: str) -> None:
        self._entries.pop((namespace, name), None)

    def __len__(self) -> int:
        return len(self._entries)

    def detected(self, namespace: str, name: str) -> DetectedSummary | None:
        entry = self._entries.get((namespace, name))
        return None if entry is None else entry.detected

    def knows(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self._entries

    def by_state(self) -> dict[tuple[str, str], list[metrics.GaugeEntry]]:
        """Incidents under (priority, state), the shape the scrape-time gauges read."""
        grouped: dict[tuple[str, str], list[metrics.GaugeEntry]] = {}
        for entry in self._entries.values():
            grouped.setdefault(entry.state_key, []).append(entry.gauges)
        return grouped
