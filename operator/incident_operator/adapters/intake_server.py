"""The operator's intake server: one aiohttp server for every push-style way in.

The Alertmanager webhook receiver (adapters/alertmanager_receiver.py) and any later intake
(Events v2, heartbeat pings, help-desk webhooks) do not start servers of their own: each offers a
:data:`RouteInstaller` that adds its routes to the one application, and app.py starts the server
when at least one intake is enabled. It listens on ``intake.port`` (default: ``alertmanager.port``,
8082, where the receiver has always listened, so existing Services and NetworkPolicies keep working).

The request helpers below are the one place for what every intake answers alike: JSON errors,
bearer tokens, and bodies read with a limit while they arrive (a chunked body cannot grow past it).
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

from aiohttp import web

log = logging.getLogger(__name__)
CHUNK = 64 * 1024

#: Adds one intake's routes to the server's application.
RouteInstaller = Callable[[web.Application], None]


class BodyTooLarge(Exception):
    """The body is over the intake's limit (413)."""


def error_response(status: int, message: str, **headers: str) -> web.Response:
    """The JSON error every intake answers with: ``{"status": "error", "error": message}``."""
    return web.json_response({"status": "error", "error": message}, status=status, headers=headers or None)


def bearer_token(request: web.Request) -> str | None:
    """The credentials of ``Authorization: Bearer <token>``, or None when absent or of another scheme."""
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The whole body, refused with :class:`BodyTooLarge` by Content-Length or while it is read."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise BodyTooLarge(f"body of {request.content_length} bytes exceeds the limit of {max_bytes}")
    body = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLarge(f"body exceeds the limit of {max_bytes} bytes")
    return bytes(body)


def build_app(installers: Sequence[RouteInstaller], *, client_max_size: int = 1024 * 1024) -> web.Application:
    app = web.Application(client_max_size=client_max_size)
    for install in installers:
        install(app)
    return app


async def start_intake_server(installers: Sequence[RouteInstaller], *, port: int, host: str = "0.0.0.0",
                              client_max_size: int = 1024 * 1024) -> web.AppRunner:
    """Serves every installer's routes on one port; the runner is cleaned up by the caller."""
    runner = web.AppRunner(build_app(installers, client_max_size=client_max_size), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host=host, port=port).start()
    routes = sorted({resource.canonical for resource in runner.app.router.resources()})
    log.info(f"Intake server listening on {host}:{port}: {', '.join(routes)}")
    return runner
