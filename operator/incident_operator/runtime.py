"""Runs kopf with the operator's services (metrics endpoint, notifier, detection engine) around it."""

from __future__ import annotations

import asyncio

import kopf
from aiohttp import web
from prometheus_client import exposition

from . import metrics
from .adapters.prometheus import PrometheusClient
from .config import ConfigError, OperatorConfig
from .handlers import escalationpolicies  # noqa: F401 - registers the EscalationPolicy handlers
from .services.notifier import Notifier


async def run(config: OperatorConfig, memo: kopf.Memo, *, namespaces: tuple[str, ...], liveness: str) -> None:
    metrics_server = await start_metrics_server(config, memo)
    memo.prometheus = PrometheusClient(max_connections=config.max_concurrent_evaluations * 2)
    # Bounded concurrency of rule evaluations across all rules.
    memo.evaluation_slots = asyncio.Semaphore(config.max_concurrent_evaluations)
    # Delivers hand-off notifications and publishes customer drafts (services/notifier.py).
    memo.notifier = Notifier(config)
    try:
        await kopf.operator(
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            standalone=True,
            liveness_endpoint=liveness,
            memo=memo,
        )
    finally:
        await memo.notifier.close()
        await memo.prometheus.close()
        await metrics_server.cleanup()


# -- /metrics ------------------------------------------------------------------------------------------

def new_series_delay(config: OperatorConfig) -> float:
    """``metrics.newSeriesDelay`` ("90s", or seconds): keep above the Prometheus scrape interval."""
    value = (config.raw.get("metrics") or {}).get("newSeriesDelay", metrics.DEFAULT_NEW_SERIES_DELAY)
    try:
        if isinstance(value, str):
            from .domain.durations import parse_duration

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
    kopf index in the same thread that mutates it.
    """
    served = metrics.configure(
        new_series_delay=new_series_delay(config),
        max_escalation_level=config.deadlines.max_escalation_level,
        index_source=lambda: memo.get("incident_index"),
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
