"""Runs kopf with the operator's services (metrics endpoint, notifier, detection engine) around it."""

from __future__ import annotations

import asyncio

import kopf
from aiohttp import web
from prometheus_client import exposition

from . import metrics
from .adapters.kube import KubeClient
from .adapters.prometheus import PrometheusClient
from .config import ConfigError, OperatorConfig
from .handlers import escalationpolicies  # noqa: F401 - registers the EscalationPolicy handlers
from .services.correlation import Correlator
from .services.detection import Detection, SeasonalCache
from .services.incident_book import IncidentBook
from .services.incidents import IncidentService
from .services.notifier import Notifier


async def run(config: OperatorConfig, memo: kopf.Memo, *, namespaces: tuple[str, ...], liveness: str) -> None:
    # The one Kubernetes client of the services (adapters/kube.py: the write policy).
    memo.kube = api = KubeClient()
    # What the gauges and the detection engine know of every incident, kept from the watch.
    memo.incident_book = IncidentBook()
    metrics_server = await start_metrics_server(config, memo)
    memo.prometheus = PrometheusClient(max_connections=config.max_concurrent_evaluations * 2)
    # Alerts and ticket spikes of one service meet here (one lock for both paths).
    memo.correlator = Correlator(api, config)
    memo.detection = Detection(
        kube=api, config=config, prometheus=memo.prometheus, correlator=memo.correlator,
        slots=asyncio.Semaphore(config.max_concurrent_evaluations),  # across all rules
        incident_book=memo.incident_book, seasonal_cache=SeasonalCache())
    # Delivers hand-off notifications and publishes customer drafts (services/notifier.py),
    # driven by the incident queue of the incident service (services/incidents.py).
    memo.notifier = Notifier(api, config)
    memo.incidents = IncidentService(api, config.lifecycle, notifier=memo.notifier, post_event=kopf.event)
    # Alertmanager webhooks (``alertmanager.enabled``): services/alerts.py writes the incidents.
    alert_receiver = await start_alert_receiver(config, memo, namespaces)
    try:
        await kopf.operator(
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            # memo.peering: `incident-operator --peering NAME` (the chart's peering.enabled).
            standalone=not memo.get("peering"),
            peering_name=memo.get("peering") or None,
            priority=memo.get("peering_priority") if memo.get("peering") else None,
            liveness_endpoint=liveness,
            memo=memo,
        )
    finally:
        await memo.incidents.queue.stop()
        await memo.prometheus.close()
        api.close()
        await metrics_server.cleanup()
        if alert_receiver is not None:
            await alert_receiver.cleanup()


# -- /metrics ------------------------------------------------------------------------------------------

def new_series_delay(config: OperatorConfig) -> float:
    """``metrics.newSeriesDelay`` ("90s", or seconds): keep above the Prometheus scrape interval."""
    value = (config.raw.get("metrics") or {}).get("newSeriesDelay", metrics.DEFAULT_NEW_SERIES_DELAY)
    try:
        if isinstance(value, str):
            from .domain.common.durations import parse_duration

            seconds = parse_duration(value)
        else:
            seconds = float(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"metrics.newSeriesDelay: {error}") from None
    if seconds < 0:
        raise ConfigError("metrics.newSeriesDelay must not be negative")
    return seconds


async def start_metrics_server(config: OperatorConfig, memo: kopf.Memo) -> web.AppRunner:
    """Serves the prometheus-client registry on ``config.metrics_port`` from the event loop.

    Serving from the loop (not prometheus-client's thread) means the scrape-time gauges read the
    incident book in the same thread that mutates it.
    """
    served = metrics.configure(
        new_series_delay=new_series_delay(config),
        max_escalation_level=config.deadlines.max_escalation_level,
        index_source=lambda: book.by_state() if (book := memo.get("incident_book")) is not None else None,
    )

    async def scrape(request: web.Request) -> web.Response:
        served.flush()
        encoder, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(served.registry), headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host="0.0.0.0", port=config.metrics_port).start()
    return runner


# -- Alertmanager webhook receiver ---------------------------------------------------------------------

def alert_settings(config: OperatorConfig, namespaces: tuple[str, ...]):
    """The ``alertmanager`` settings, with the incidents' namespace checked against the watched ones."""
    from .domain.alerts.alertmanager import InvalidSettings, parse_settings

    try:
        settings = parse_settings(config.alertmanager, fallback_namespace=namespaces[0] if len(namespaces) == 1 else None)
    except InvalidSettings as error:
        raise ConfigError(str(error)) from None
    if settings.enabled and namespaces and settings.namespace not in namespaces:
        raise ConfigError(f"alertmanager.namespace {settings.namespace!r} is not watched by this operator "
                          f"(namespaces: {', '.join(namespaces)}); its incidents would never be reconciled")
    return settings


async def start_alert_receiver(config: OperatorConfig, memo: kopf.Memo,
                               namespaces: tuple[str, ...]) -> web.AppRunner | None:
    settings = alert_settings(config, namespaces)
    if not settings.enabled:
        return None
    from .adapters.alertmanager_receiver import TokenSource, start_receiver
    from .services.alerts import AlertService

    service = AlertService(memo.kube, settings, memo.correlator, timeline_limit=config.timeline_limit)
    return await start_receiver(settings, TokenSource(settings, read_secret=memo.kube.read_secret_key), service.handle)
