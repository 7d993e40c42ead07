"""Bounds the Kubernetes API connections kopf opens.

kopf's API session is built with ``aiohttp.TCPConnector(limit=0)`` (no limit; see
kopf/_cogs/clients/auth.py), so a start-up re-list of thousands of incidents opened as many
concurrent TLS connections, each with a 256 KiB read buffer plus OpenSSL state: measured 546 MiB
RSS with 600 incidents. kopf has no setting for it, and ``settings.queueing.worker_limit`` cannot
be used with indexes (start-up deadlocks). Until kopf exposes a limit, connectors created with
``limit=0`` get a bound instead; connectors that choose a limit keep it.
"""

from __future__ import annotations

import aiohttp

KOPF_CONNECTION_LIMIT = 64
_original = aiohttp.TCPConnector


class _BoundedTCPConnector(_original):  # type: ignore[misc, valid-type]
    def __init__(self, *args, limit: int = 100, **kwargs):
        super().__init__(*args, limit=limit or KOPF_CONNECTION_LIMIT, **kwargs)


def bound_unlimited_connectors() -> None:
    """Idempotent; call before kopf creates its session."""
    aiohttp.TCPConnector = _BoundedTCPConnector  # type: ignore[misc]
