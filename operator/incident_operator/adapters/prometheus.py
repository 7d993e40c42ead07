"""The Prometheus HTTP API (instant and range queries), with timeouts, a bearer token and TLS options.

Errors come back as :class:`PrometheusError` with a short ``reason`` (``Unavailable``,
``Timeout``, ``QueryFailed``, ``BadResponse``) and a message for people; token values never
appear in messages.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp


class PrometheusError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Endpoint:
    url: str
    bearer_token: str | None = None
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    timeout_seconds: float = 10.0

    def ssl_context(self) -> ssl.SSLContext | bool | None:
        if not self.url.startswith("https://"):
            return None
        if self.insecure_skip_verify:
            return False
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


def _number(text: str) -> float:
    value = float(text)
    return value


class PrometheusClient:
    """One client per operator; a shared aiohttp session with a bounded connection pool."""

    def __init__(self, max_connections: int = 32):
        self._session: aiohttp.ClientSession | None = None
        self._max_connections = max_connections

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self._max_connections))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _get(self, endpoint: Endpoint, path: str, params: dict[str, str]) -> Any:
        headers = {"Accept": "application/json"}
        if endpoint.bearer_token:
            headers["Authorization"] = f"Bearer {endpoint.bearer_token}"
        session = await self.session()
        url = endpoint.url.rstrip("/") + path
        try:
            async with session.post(url, data=params, headers=headers, ssl=endpoint.ssl_context(),
                                    timeout=aiohttp.ClientTimeout(total=endpoint.timeout_seconds)) as response:
                try:
                    body = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    raise PrometheusError("BadResponse", f"Prometheus at {endpoint.url} answered HTTP "
                                                         f"{response.status} without JSON") from None
        except asyncio.TimeoutError:
            raise PrometheusError("Timeout", f"Prometheus at {endpoint.url} did not answer within "
                                             f"{endpoint.timeout_seconds:g}s") from None
        except aiohttp.ClientError as error:
            raise PrometheusError("Unavailable", f"cannot reach Prometheus at {endpoint.url}: {error}") from None
        if body.get("status") != "success":
            raise PrometheusError("QueryFailed", f"{body.get('errorType', 'error')}: {body.get('error', body)}")
        return body["data"]

    async def query(self, endpoint: Endpoint, expr: str, at: float) -> list[Sample]:
        data = await self._get(endpoint, "/api/v1/query", {"query": expr, "time": f"{at:.3f}"})
        if data.get("resultType") == "scalar":
            return [Sample({}, _number(data["result"][1]))]
        if data.get("resultType") != "vector":
            raise PrometheusError("QueryFailed", f"the query must return an instant vector (one series per "
                                                 f"group), got {data.get('resultType')}")
        # Every sample, +Inf, -Inf and NaN included: the rule refuses and counts them (screen_samples).
        return [Sample(dict(item["metric"]), _number(item["value"][1])) for item in data["result"]]

    async def query_range(self, endpoint: Endpoint, expr: str, start: float, end: float,
                          step: float) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        data = await self._get(endpoint, "/api/v1/query_range",
                               {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
        result = []
        for item in data.get("result", []):
            points = [(float(t), _number(v)) for t, v in item["values"]]
            result.append((dict(item["metric"]), [(t, v) for t, v in points if not math.isnan(v)]))
        return result
