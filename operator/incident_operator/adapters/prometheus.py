"""The Prometheus HTTP API (instant and range queries), with timeouts, a bearer token and TLS options.

Errors come back as :class:`PrometheusError` with a short ``reason`` (``Unavailable``,
``Timeout``, ``QueryFailed``, ``BadResponse``, ``TooManySeries``) and a message for people; token
values, response bodies and URLs never appear in messages (a tenant's rule may point at a URL it
chose: the message says the HTTP status and a short reason, a connection error says "connection
failed" and nothing that would make the operator a port scanner).

Answers are read with a bound (:class:`Limits`): a body larger than ``max_bytes`` is refused while
it is being read, and an answer with more than ``max_series`` series is refused before it is
turned into samples (reason ``TooManySeries``).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
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
class Limits:
    """How much of an answer is read: bytes of the body, series of the result."""

    max_bytes: int = 8 * 1024 * 1024
    max_series: int = 100


DEFAULT_LIMITS = Limits()
# The fields of a Prometheus error answer that are safe to show (bounded): never the body itself.
_MAX_ERROR_TEXT = 200


def _short(text: Any) -> str:
    """A short, single-line, printable rendering of an error text from Prometheus."""
    cleaned = re.sub(r"[^\x20-\x7e]", " ", str(text))[:_MAX_ERROR_TEXT]
    return re.sub(r"https?://\S+", "<url>", cleaned)


async def _read_bounded(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise PrometheusError("TooManySeries", f"the answer is larger than the bound of {max_bytes} bytes "
                                               f"(detection.maxResponseBytes); narrow the query")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise PrometheusError("TooManySeries", f"the answer is larger than the bound of {max_bytes} bytes "
                                                   f"(detection.maxResponseBytes); narrow the query")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_series(data: Any, limits: Limits) -> None:
    result = data.get("result") if isinstance(data, dict) else None
    if isinstance(result, list) and data.get("resultType") != "scalar" and len(result) > limits.max_series:
        raise PrometheusError("TooManySeries", f"the query returned {len(result)} series, more than the bound of "
                                               f"{limits.max_series} (detection.maxSeriesPerEvaluation); "
                                               f"aggregate it (e.g. sum by (...)) or narrow it")


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

    async def _get(self, endpoint: Endpoint, path: str, params: dict[str, str],
                   limits: Limits = DEFAULT_LIMITS) -> Any:
        headers = {"Accept": "application/json"}
        if endpoint.bearer_token:
            headers["Authorization"] = f"Bearer {endpoint.bearer_token}"
        session = await self.session()
        url = endpoint.url.rstrip("/") + path
        try:
            async with session.post(url, data=params, headers=headers, ssl=endpoint.ssl_context(),
                                    allow_redirects=False,
                                    timeout=aiohttp.ClientTimeout(total=endpoint.timeout_seconds)) as response:
                raw = await _read_bounded(response, limits.max_bytes)
                status = response.status
        except asyncio.TimeoutError:
            raise PrometheusError("Timeout", f"Prometheus did not answer within "
                                             f"{endpoint.timeout_seconds:g}s") from None
        except aiohttp.ClientError:
            raise PrometheusError("Unavailable", "cannot reach Prometheus: connection failed") from None
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise PrometheusError("BadResponse", f"Prometheus answered HTTP {status} without JSON") from None
        if not isinstance(body, dict):
            raise PrometheusError("BadResponse", f"Prometheus answered HTTP {status} with unexpected JSON")
        if body.get("status") != "success":
            raise PrometheusError("QueryFailed", f"HTTP {status}: {_short(body.get('errorType', 'error'))}: "
                                                 f"{_short(body.get('error', 'no error text'))}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise PrometheusError("BadResponse", f"Prometheus answered HTTP {status} without data")
        _check_series(data, limits)
        return data

    async def query(self, endpoint: Endpoint, expr: str, at: float, limits: Limits = DEFAULT_LIMITS) -> list[Sample]:
        data = await self._get(endpoint, "/api/v1/query", {"query": expr, "time": f"{at:.3f}"}, limits)
        if data.get("resultType") == "scalar":
            return [Sample({}, _number(data["result"][1]))]
        if data.get("resultType") != "vector":
            raise PrometheusError("QueryFailed", f"the query must return an instant vector (one series per "
                                                 f"group), got {data.get('resultType')}")
        # Every sample, +Inf, -Inf and NaN included: the rule refuses and counts them (screen_samples).
        return [Sample(dict(item["metric"]), _number(item["value"][1])) for item in data["result"]]

    async def query_range(self, endpoint: Endpoint, expr: str, start: float, end: float,
                          step: float, limits: Limits = DEFAULT_LIMITS
                          ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        data = await self._get(endpoint, "/api/v1/query_range",
                               {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
                               limits)
        result = []
        for item in data.get("result", []):
            points = [(float(t), _number(v)) for t, v in item["values"]]
            result.append((dict(item["metric"]), [(t, v) for t, v in points if not math.isnan(v)]))
        return result
