"""The ``/metrics`` endpoint: serves a prometheus-client registry over HTTP from the event loop.

Serving from the loop (not prometheus-client's own thread) means the scrape-time gauges read the
incident book in the same thread that mutates it.
"""

from __future__ import annotations

from typing import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, exposition


async def start_metrics_server(registry: CollectorRegistry, flush: Callable[[], object], port: int,
                               host: str = "0.0.0.0") -> web.AppRunner:
    """Serves ``registry`` on ``host:port``; ``flush`` runs before every scrape.

    Clean up the returned runner to stop serving.
    """

    async def scrape(request: web.Request) -> web.Response:
        flush()
        encoder, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(registry), headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host=host, port=port).start()
    return runner
