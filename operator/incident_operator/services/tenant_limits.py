"""What one tenant's DetectionRules may use: fair evaluation slots, an incident budget, allowed URLs.

Tenants (whoever may create a DetectionRule in a namespace) are untrusted (docs/tenant-limits.md):
- :class:`FairSlots`: the evaluation slots shared by every rule, with a per-namespace cap inside the
  global one, so one namespace's hanging rules hold at most its own share.
- :class:`IncidentBudget`: a token bucket per rule and per namespace over incidents opened; what is
  beyond it is suppressed (recorded in the rule's status and counted in a metric). Held in memory,
  bounded (LRU); after a restart the buckets start full (at most one more budget per window).
- :func:`url_refusal`: whether a rule's ``spec.prometheus.url`` is allowed by the operator config.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable
from urllib.parse import urlsplit

MAX_TRACKED = 10_000  # namespaces / rules whose buckets are kept (LRU)


class FairSlots:
    """``total`` evaluation slots across all rules; at most ``per_namespace`` held by one namespace.

    A rule waits for its namespace's share first, then for a global slot, so rules of a namespace that
    has used its share queue behind each other and never take the slots other namespaces need.
    """

    def __init__(self, total: int, per_namespace: int):
        self.total = total
        self.per_namespace = max(1, min(per_namespace, total))
        self._global = asyncio.Semaphore(total)
        # namespace -> [semaphore, users]; an entry lives only while a rule of it holds or waits.
        self._namespaces: dict[str, list] = {}

    @asynccontextmanager
    async def slot(self, namespace: str) -> AsyncIterator[None]:
        entry = self._namespaces.get(namespace)
        if entry is None:
            entry = self._namespaces[namespace] = [asyncio.Semaphore(self.per_namespace), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                async with self._global:
                    yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                self._namespaces.pop(namespace, None)

    def held_namespaces(self) -> int:
        return len(self._namespaces)


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, capacity: float, now: float):
        self.tokens = capacity
        self.updated = now


class IncidentBudget:
    """Token buckets: ``per_rule`` incidents per ``window`` seconds for one rule, ``per_namespace`` for
    all rules of one namespace; both refill continuously."""

    def __init__(self, per_rule: int, per_namespace: int, window: float,
                 clock: Callable[[], float] = time.monotonic):
        self.per_rule, self.per_namespace, self.window = per_rule, per_namespace, window
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, ...], _Bucket] = OrderedDict()

    def _bucket(self, key: tuple[str, ...], capacity: int, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, now)
            while len(self._buckets) > MAX_TRACKED:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * capacity / self.window)
            bucket.updated = now
        return bucket

    def take(self, namespace: str, rule: str) -> str | None:
        """Takes one token for opening an incident; None when allowed, else the reason it is refused
        (``RuleBudget`` or ``NamespaceBudget``)."""
        now = self._clock()
        by_rule = self._bucket(("rule", namespace, rule), self.per_rule, now)
        by_namespace = self._bucket(("namespace", namespace), self.per_namespace, now)
        if by_rule.tokens < 1:
            return "RuleBudget"
        if by_namespace.tokens < 1:
            return "NamespaceBudget"
        by_rule.tokens -= 1
        by_namespace.tokens -= 1
        return None


def has_userinfo(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return True
    return "@" in parts.netloc


def redacted_url(url: str) -> str:
    """``url`` as safe to show: scheme and host:port only (no userinfo, path or query)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{host}{port}"


def url_refusal(url: str, allowed_prefixes: tuple[str, ...]) -> str | None:
    """Why a rule may not query ``url`` (None: it may). Prefixes are compared on the normalised URL;
    a prefix matches only at a path boundary (``http://a:9090`` does not allow ``http://a:90901``)."""
    if has_userinfo(url):
        return "spec.prometheus.url must not carry user:password@; name a bearerTokenSecretRef instead"
    if not allowed_prefixes:
        return ("spec.prometheus.url is not allowed: this operator allows no per-rule Prometheus URL "
                "(detection.allowedPrometheusURLs is empty); remove it to use the operator's Prometheus")
    for prefix in allowed_prefixes:
        bare = prefix.rstrip("/")
        if url == bare or url.startswith(bare + "/") or (prefix.endswith("/") and url.startswith(prefix)):
            return None
    return (f"spec.prometheus.url {redacted_url(url)} is not allowed by the operator's "
            f"detection.allowedPrometheusURLs")
