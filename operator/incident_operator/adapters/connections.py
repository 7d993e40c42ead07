"""Bounds the Kubernetes API connections kopf opens.

kopf's API session is built with ``aiohttp.TCPConnector(limit=0)`` (no limit; see
kopf/_cogs/clients/auth.py), so a start-up re-list of thousands of incidents opened as many
concurrent TLS connections, each with a 256 KiB read buffer plus OpenSSL state: measured 546 MiB
RSS with 600 incidents. kopf has no setting for it, and ``settings.queueing.worker_limit`` cannot
be used with indexes (start-up deadlocks).

kopf does accept a session of our own from a login handler (``kopf.AiohttpSession``, kopf's docs
"Custom HTTP sessions"): :func:`login_with_bounded_connections` logs in as kopf itself would (with
the official client: in-cluster, else the kubeconfig) and returns a session built the way kopf
builds its own, but with a bounded connector. Nothing outside kopf's session is affected.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import kopf

KOPF_CONNECTION_LIMIT = 64


def bounded_session(info: kopf.ConnectionInfo, limit: int = KOPF_CONNECTION_LIMIT) -> kopf.AiohttpSession:
    """kopf's own session for ``info`` (kopf/_cogs/clients/auth.py ``APIContext``), with ``limit``
    connections."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(aiohttp_session=session, server=info.server,
                               default_namespace=info.default_namespace, priority=info.priority,
                               expiration=info.expiration)


async def login_with_bounded_connections(**kwargs: Any) -> kopf.AiohttpSession | None:
    """A kopf login handler: kopf's default login (``kopf.login_via_client``), on a bounded session.

    kopf calls it again when the credentials stop working; it closes the old session itself.
    """
    info = await asyncio.to_thread(lambda: kopf.login_via_client(**kwargs))
    return None if info is None else bounded_session(info)
