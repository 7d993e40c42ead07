"""The operator's context: everything the handlers share, built once by app.py.

kopf hands every handler a ``memo``; the operator passes an :class:`OperatorContext` as that memo
(``kopf.operator(memo=...)``). kopf copies the memo for every object it serves; ``__copy__``
returns the context itself, so all handlers see the same services (kopf docs/memos.rst, "Custom
memo classes"). Handlers are typed ``memo: OperatorContext`` and read the attributes directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import OperatorConfig

if TYPE_CHECKING:
    from .adapters.kube import KubeClient
    from .adapters.prometheus import PrometheusClient
    from .metrics import IncidentMetrics
    from .services.alerts import AlertService
    from .services.correlation import Correlator
    from .services.detection import Detection
    from .services.incident_book import IncidentBook
    from .services.incidents import IncidentService
    from .services.notifier import Notifier
    from .services.rendering import RenderExecutor


class RuleWakeups:
    """One wake-up per running DetectionRule daemon, keyed by the rule's uid.

    A spec change (the rule's update handler) wakes that rule's daemon at once instead of at its
    next tick. An entry lives exactly as long as its daemon (:meth:`registered`), so the map holds
    at most one event per rule being evaluated.
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    @contextlib.contextmanager
    def registered(self, uid: str) -> Iterator[asyncio.Event]:
        """The daemon's wake-up event, removed when the daemon exits."""
        event = asyncio.Event()
        self._events[uid] = event
        try:
            yield event
        finally:
            if self._events.get(uid) is event:  # a successor daemon of the same rule keeps its own
                del self._events[uid]

    def wake(self, uid: str) -> None:
        """Wakes the rule's daemon; nothing when it is not running (yet)."""
        event = self._events.get(uid)
        if event is not None:
            event.set()

    def __len__(self) -> int:
        return len(self._events)


@dataclass
class OperatorContext:
    """The operator's shared services; one per process (app.py builds it before kopf starts)."""

    config: OperatorConfig
    # The one Kubernetes client (adapters/kube.py: the write policy).
    kube: KubeClient
    # Prometheus queries of the DetectionRules (bounded connections).
    prometheus: PrometheusClient
    # The process's metrics, served on /metrics.
    metrics: IncidentMetrics
    # What the operator knows of every incident, from the Incident watch (scrape-time gauges, detection).
    incident_book: IncidentBook
    # Alerts and ticket spikes of one service meet here (one lock for both paths).
    correlator: Correlator
    # What rule evaluations use: the evaluation slots across all rules, the seasonal cache.
    detection: Detection
    # Delivers hand-off notifications and publishes customer drafts, driven by the incident queue.
    notifier: Notifier
    # The incident queue and the sync it runs for each incident (services/incidents.py).
    incidents: IncidentService
    # Alertmanager webhooks (``alertmanager.enabled``): writes the incidents; None when disabled.
    alerts: AlertService | None = None
    # The running rule daemons' wake-ups.
    rule_wakeups: RuleWakeups = field(default_factory=RuleWakeups)
    # kopf peering (``--peering NAME``): the peering object's name, None when standalone.
    peering: str | None = None
    # The namespaces this operator watches (empty: all); where namespaced peering objects live.
    namespaces: tuple[str, ...] = ()
    # Tenant templates (rule texts, drafts) render on this bounded pool, off the event loop; None: inline.
    renderer: RenderExecutor | None = None

    def __copy__(self) -> OperatorContext:
        # kopf copies the memo per object; every object must share this one context.
        return self
