"""The HTTP receiver for Alertmanager's webhook (``webhook_configs``), served by aiohttp in the operator.

Checks, in this order, each with a clear 4xx that Alertmanager logs and does not retry:
401 missing or wrong bearer token (``Authorization: Bearer <token>``, compared in constant time);
415 a Content-Type other than application/json; 413 a body over ``maxBodyBytes`` (by
Content-Length, and while reading, for chunked bodies); 400 malformed JSON or not a webhook
notification (domain/alerts/alertmanager.py says what is wrong). A failure to write to Kubernetes is a 503, which
Alertmanager retries. The token comes from a mounted Secret file (re-read on every request, so a
rotated Secret is picked up) or from a Secret read through the API (cached for a short while).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from pathlib import Path
from typing import Awaitable, Callable

from aiohttp import web

from ..domain.alerts import alertmanager as dom
from . import kube
from .intake_server import BodyTooLarge, RouteInstaller, bearer_token, error_response, read_body

log = logging.getLogger(__name__)
SECRET_CACHE_SECONDS = 30.0

Handler = Callable[[dom.Notification], Awaitable[object]]


class TokenUnavailable(Exception):
    """The expected token cannot be read (no file, no Secret): the receiver answers 503."""


class TokenSource:
    def __init__(self, settings: dom.AlertSettings, read_secret=None, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._read_secret = read_secret
        self._clock = clock
        self._cached: tuple[float, str] | None = None

    async def token(self) -> str:
        if self.settings.bearer_token_file:
            try:
                value = Path(self.settings.bearer_token_file).read_text().strip()
            except OSError as error:
                raise TokenUnavailable(f"cannot read bearerTokenFile: {error.strerror}") from None
        else:
            ref = self.settings.token_secret_ref
            if ref is None:
                raise TokenUnavailable("no token configured")
            now = self._clock()
            if self._cached and now - self._cached[0] < SECRET_CACHE_SECONDS:
                return self._cached[1]
            if self._read_secret is None:
                raise TokenUnavailable("no Secret reader configured")
            try:
                value = (await self._read_secret(ref.namespace, ref.name, ref.key)).strip()
            except kube.ApiError as error:  # any failure means "cannot authenticate now"
                raise TokenUnavailable(f"cannot read Secret {ref.namespace}/{ref.name} key {ref.key}: "
                                       f"{type(error).__name__}") from None
            self._cached = (now, value)
        if not value:
            raise TokenUnavailable("the configured token is empty")
        return value


def routes(settings: dom.AlertSettings, tokens: TokenSource, handle: Handler) -> RouteInstaller:
    """The receiver's one route (``POST alertmanager.path``) for the intake server."""
    max_bytes = settings.max_body_bytes

    async def receive(request: web.Request) -> web.Response:
        presented = bearer_token(request)
        if presented is None:
            return error_response(401, "missing bearer token (Authorization: Bearer <token>)",
                          **{"WWW-Authenticate": 'Bearer realm="incident-operator"'})
        try:
            expected = await tokens.token()
        except TokenUnavailable as error:
            log.error(f"Alertmanager receiver cannot authenticate: {error}")
            return error_response(503, "the receiver's token is unavailable; try again later", **{"Retry-After": "10"})
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            return error_response(401, "invalid bearer token",
                          **{"WWW-Authenticate": 'Bearer realm="incident-operator", error="invalid_token"'})
        if request.content_type != "application/json":
            return error_response(415, f"Content-Type must be application/json, got {request.content_type or 'none'}")
        try:
            body = await read_body(request, max_bytes)
        except BodyTooLarge as error:
            return error_response(413, f"{error} (maxBodyBytes)")
        try:
            data = json.loads(body)
        except ValueError as error:
            return error_response(400, f"malformed JSON: {error}")
        try:
            notification = dom.parse_notification(data)
        except dom.InvalidNotification as error:
            return error_response(400, f"not an Alertmanager webhook notification: {error}")
        try:
            result = await handle(notification)
        except Exception as error:  # noqa: BLE001 - the request boundary: whatever failed, Alertmanager retries a 5xx
            log.exception(f"Recording the Alertmanager notification for group {notification.group_key} failed")
            return error_response(503, f"could not record the notification ({type(error).__name__}); retry",
                          **{"Retry-After": "5"})
        to_json = getattr(result, "to_json", None)
        return web.json_response(to_json() if to_json else {"status": "ok"})

    def install(app: web.Application) -> None:
        app.router.add_post(settings.path, receive)

    return install
