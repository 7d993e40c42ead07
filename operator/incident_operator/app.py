"""The operator process: builds the context, registers every handler, configures and runs kopf.

Every kopf handler of the operator is registered in :func:`build_registry`, and every non-default
kopf setting is in :func:`configure`, with the reason. ``__main__.py`` parses the command line and
calls :func:`run`.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from . import metrics
from .adapters.connections import login_with_bounded_connections
from .adapters.kube import KubeClient, NotFound
from .adapters.metrics_server import start_metrics_server
from .adapters.prometheus import PrometheusClient
from .api import (DETECTION_RULES, ESCALATION_POLICIES, GROUP, INCIDENTS, KOPF_DIFFBASE_KEY, KOPF_FINALIZER,
                  KOPF_PREFIX, VERSION)
from .config import OperatorConfig
from .context import OperatorContext
from .domain.alerts.alertmanager import AlertSettings
from .handlers import detectionrules, escalationpolicies, incidents
from .services.correlation import Correlator
from .services.detection import Detection, SeasonalCache
from .services.incident_book import IncidentBook
from .services.incidents import IncidentService
from .services.notifier import Notifier
from .services.rendering import RenderExecutor
from .services.tenant_limits import FairSlots


async def run(config: OperatorConfig, *, namespaces: tuple[str, ...], liveness: str,
              peering: str | None = None, peering_priority: int = 0) -> None:
    """Runs the operator until kopf stops; raises ConfigError before starting anything on a bad setting.

    ``peering``: the name of kopf's (Cluster)KopfPeering object shared with other replicas (the
    chart's ``peering.enabled``); the replica with the highest ``peering_priority`` acts, the others
    pause. None: standalone.
    """
    alert_settings = config.alertmanager_for(namespaces)
    context = build_context(config)
    context.peering = peering
    context.namespaces = namespaces
    # Served from the event loop: the scrape-time gauges read the incident book in its own thread.
    metrics_server = await start_metrics_server(context.metrics.registry, context.metrics.flush,
                                                context.config.metrics_port)
    intake_server = await start_intake(context, alert_settings)
    try:
        await kopf.operator(
            registry=build_registry(),
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            standalone=not peering,
            peering_name=peering or None,
            priority=peering_priority if peering else None,
            liveness_endpoint=liveness,
            memo=context,
        )
    finally:
        await context.incidents.queue.stop()
        await context.prometheus.close()
        context.kube.close()
        if context.renderer is not None:
            context.renderer.shutdown()
        await metrics_server.cleanup()
        if intake_server is not None:
            await intake_server.cleanup()


def build_context(config: OperatorConfig) -> OperatorContext:
    """The one context of the process (call it in the running event loop)."""
    api = KubeClient()
    book = IncidentBook()
    prometheus = PrometheusClient(max_connections=config.max_concurrent_evaluations * 2)
    correlator = Correlator(api, config)
    renderer = RenderExecutor()
    notifier = Notifier(api, config, renderer=renderer)
    served = metrics.configure(new_series_delay=config.new_series_delay,
                               max_escalation_level=config.deadlines.max_escalation_level,
                               book_source=book.by_state, response_objectives=config.response_objectives)
    return OperatorContext(
        config=config,
        kube=api,
        prometheus=prometheus,
        metrics=served,
        incident_book=book,
        correlator=correlator,
        detection=Detection(
            kube=api, config=config, prometheus=prometheus, correlator=correlator,
            slots=FairSlots(config.max_concurrent_evaluations,  # across all rules, fair across namespaces
                            config.tenant_limits.max_concurrent_per_namespace),
            incident_book=book, seasonal_cache=SeasonalCache(), metrics=served, renderer=renderer),
        notifier=notifier,
        # One queue for all incidents, ready before the watch delivers anything.
        incidents=IncidentService(api, config.lifecycle, notifier=notifier, post_event=kopf.event,
                                  metrics=served),
        renderer=renderer,
    )


def build_registry() -> kopf.OperatorRegistry:
    """Every handler of the operator, in one place."""
    registry = kopf.OperatorRegistry()
    on = kopf.on

    # kopf's own API session with a bounded connection pool (adapters/connections.py says why).
    on.login(id="bounded-connections", registry=registry)(login_with_bounded_connections)
    on.startup(registry=registry)(configure)
    on.cleanup(id="incident-queue", registry=registry)(incidents.stop_incident_queue)

    # Incidents: every watch event offers the incident to the queue (handlers/incidents.py says why
    # there are no change handlers, daemons or indexes on Incidents).
    on.event(GROUP, VERSION, INCIDENTS, registry=registry)(incidents.incident_event)

    # DetectionRules: validate on change (and wake the rule's daemon); one evaluating daemon per rule.
    for register in (on.resume, on.create, on.update):
        register(GROUP, VERSION, DETECTION_RULES, registry=registry)(detectionrules.rule_changed)
    kopf.daemon(GROUP, VERSION, DETECTION_RULES, id="evaluator", cancellation_timeout=5, backoff=2.0,
                registry=registry)(detectionrules.evaluator)

    # EscalationPolicies: check on change, and every few minutes (a Secret may change on its own).
    for register in (on.resume, on.create, on.update):
        register(GROUP, VERSION, ESCALATION_POLICIES, registry=registry)(escalationpolicies.policy_changed)
    kopf.timer(GROUP, VERSION, ESCALATION_POLICIES, interval=escalationpolicies.RECHECK_SECONDS,
               initial_delay=escalationpolicies.RECHECK_SECONDS, idle=None,
               registry=registry)(escalationpolicies.policy_recheck)
    return registry


async def configure(settings: kopf.OperatorSettings, memo: OperatorContext, logger: kopf.Logger,
                    **_: Any) -> None:
    """Operator-level kopf settings, applied once at start-up (a startup handler)."""
    # Keep kopf's own bookkeeping under our annotation prefix, not kopf.zalando.org.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key=KOPF_DIFFBASE_KEY)
    settings.persistence.finalizer = KOPF_FINALIZER
    # Only warnings from logs become Kubernetes Events; the timeline and our own
    # kopf.event() calls carry the story. Avoids an Event per handler run.
    settings.posting.level = logging.WARNING
    # Standalone unless `--peering NAME` (the chart's peering.enabled): then kopf.operator() has set
    # the peering name and this operator's priority (the newest wins; __main__.py).
    if not memo.peering:
        settings.peering.standalone = True
    else:
        try:
            await memo.kube.ensure_peering(memo.peering, memo.namespaces)
        except NotFound:
            raise kopf.PermanentError(f"--peering {memo.peering}: kopf's peering CRDs (kopf.dev) are not "
                                      "installed; the chart installs them with peering.enabled") from None
    # settings.queueing.worker_limit stays unset: kopf's per-object workers only hand events to our
    # queues (Incidents: services/incident_queue.py) or spawn a rule's daemon, so they are short;
    # the work itself is bounded there, and connections in adapters/connections.py.
    # A hopeless object must not be retried forever at full speed.
    settings.batching.error_delays = [1, 2, 5, 10, 30, 60]
    # The watch-inactivity timeout added in kopf 1.44 (nolar/kopf#1120, #1267) stays at
    # its default: it is what reconnects a silently dead watch.
    logger.info(f"Operator configured: namespaces={list(memo.config.namespaces) or 'all'}")


# -- The intake server ---------------------------------------------------------------------------------

async def start_intake(context: OperatorContext, alert_settings: AlertSettings) -> Any:
    """The one intake server (adapters/intake_server.py) with the routes of every enabled intake;
    its runner, or None when no intake is enabled."""
    from .adapters.intake_server import RouteInstaller, start_intake_server

    installers: list[RouteInstaller] = []
    max_body = 1024 * 1024
    if alert_settings.enabled:
        installers.append(alertmanager_routes(context, alert_settings))
        max_body = max(max_body, alert_settings.max_body_bytes)
    if not installers:
        return None
    config = context.config
    return await start_intake_server(installers, port=config.intake_port, host=config.intake.host,
                                     client_max_size=max_body)


def alertmanager_routes(context: OperatorContext, settings: AlertSettings) -> Any:
    """Alertmanager webhooks (``alertmanager.enabled``): services/alerts.py writes the incidents."""
    from .adapters.alertmanager_receiver import TokenSource, routes
    from .services.alerts import AlertService

    context.alerts = AlertService(context.kube, settings, context.correlator,
                                  timeline_limit=context.config.timeline_limit)
    tokens = TokenSource(settings, read_secret=context.kube.read_secret_key)
    return routes(settings, tokens, context.alerts.handle)
