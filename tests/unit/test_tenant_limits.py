"""Tenant limits of detection (issue 14, findings 2, 3, 5): allow-listed URLs and credentials, redacted
errors, bounded answers, the incident budget, capped timeouts and fair evaluation slots."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest
from aiohttp import web

from incident_operator.adapters import kube
from incident_operator.adapters.prometheus import Endpoint, Limits, PrometheusClient, PrometheusError, Sample
from incident_operator.config import ConfigError, OperatorConfig
from incident_operator.domain.detection import rules as dom
from incident_operator.metrics import IncidentMetrics
from incident_operator.services.correlation import Correlator
from incident_operator.services.detection import Detection, endpoint_for, evaluate_rule
from incident_operator.services.tenant_limits import FairSlots, IncidentBudget, redacted_url, url_refusal
from tests.unit.fakes import FakeKube

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
NS = "support"


# -- allow-list and credentials ---------------------------------------------------------------------

def test_no_per_rule_url_is_allowed_by_default():
    refusal = url_refusal("http://evil.example:9090", ())
    assert refusal is not None and "allowedPrometheusURLs" in refusal


def test_a_prefix_allows_urls_under_it_only_at_a_boundary():
    allowed = ("http://prom.team-a:9090",)
    assert url_refusal("http://prom.team-a:9090", allowed) is None
    assert url_refusal("http://prom.team-a:9090/prometheus", allowed) is None
    assert url_refusal("http://prom.team-a:90901", allowed) is not None
    assert url_refusal("http://prom.team-a:9090.evil.example", allowed) is not None


def test_userinfo_is_refused_and_never_shown():
    refusal = url_refusal("http://user:s3cret@prom.team-a:9090", ("http://user:s3cret@prom.team-a:9090",))
    assert refusal is not None and "s3cret" not in refusal
    assert redacted_url("http://user:s3cret@host:9090/x?token=1") == "http://host:9090"


def rule_body(prometheus: dict | None = None) -> dict:
    spec: dict = {"query": "up"}
    if prometheus is not None:
        spec["prometheus"] = prometheus
    return {"metadata": {"name": "r", "namespace": NS}, "spec": spec}


def config_with_token(tmp_path, **detection) -> OperatorConfig:
    token = tmp_path / "token"
    token.write_text("operator-token\n")
    return OperatorConfig.from_dict({"prometheus": {"url": "http://prom.monitoring:9090",
                                                    "bearerTokenFile": str(token)},
                                     "detection": detection})


def test_the_operator_token_goes_only_to_the_operators_prometheus(tmp_path):
    config = config_with_token(tmp_path, allowedPrometheusURLs=["http://prom.team-a:9090"])
    own = asyncio.run(endpoint_for(FakeKube(), rule_body(), config))
    assert own.bearer_token == "operator-token" and own.url == "http://prom.monitoring:9090"
    other = asyncio.run(endpoint_for(FakeKube(), rule_body({"url": "http://prom.team-a:9090"}), config))
    assert other.url == "http://prom.team-a:9090" and other.bearer_token is None


def test_a_per_rule_url_gets_the_secret_of_its_own_namespace_that_it_names(tmp_path):
    config = config_with_token(tmp_path, allowedPrometheusURLs=["http://prom.team-a:9090"])
    api = FakeKube()
    api.secrets[(NS, "prom")] = {"token": "team-token"}
    ref = {"name": "prom", "key": "token"}
    body = rule_body({"url": "http://prom.team-a:9090", "bearerTokenSecretRef": ref})
    endpoint = asyncio.run(endpoint_for(api, body, config))
    assert endpoint.bearer_token == "team-token"


def test_a_url_not_allowed_is_invalid(tmp_path):
    config = config_with_token(tmp_path)
    with pytest.raises(PrometheusError) as raised:
        asyncio.run(endpoint_for(FakeKube(), rule_body({"url": "http://10.0.0.1:22"}), config))
    assert raised.value.reason == "Invalid"


def test_a_rule_timeout_is_capped_by_the_operator(tmp_path):
    config = config_with_token(tmp_path, maxTimeout="30s")
    endpoint = asyncio.run(endpoint_for(FakeKube(), rule_body({"timeout": "9999h"}), config))
    assert endpoint.timeout_seconds == 30.0


# -- the Prometheus adapter: redaction and bounds ---------------------------------------------------

async def _serve(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


DEFAULT = Limits()


def _query(handler, limits: Limits = DEFAULT) -> list[Sample] | PrometheusError:
    async def run():
        runner, url = await _serve(handler)
        client = PrometheusClient()
        try:
            return await client.query(Endpoint(url=url, timeout_seconds=5), "up", 0.0, limits)
        except PrometheusError as error:
            return error
        finally:
            await client.close()
            await runner.cleanup()
    return asyncio.run(run())


def vector(n: int) -> dict:
    result = [{"metric": {"i": str(i)}, "value": [0, "1"]} for i in range(n)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_an_error_body_never_reaches_the_message():
    async def handler(request):
        return web.Response(status=401, text="<html>internal admin panel, secret=hunter2</html>")
    error = _query(handler)
    assert isinstance(error, PrometheusError) and "hunter2" not in str(error) and "401" in str(error)
    assert "127.0.0.1" not in str(error)


def test_a_connection_error_says_only_connection_failed():
    async def run():
        client = PrometheusClient()
        try:
            await client.query(Endpoint(url="http://127.0.0.1:1", timeout_seconds=5), "up", 0.0)
        except PrometheusError as error:
            return error
        finally:
            await client.close()
    error = asyncio.run(run())
    assert error is not None and error.reason == "Unavailable" and str(error).endswith("connection failed")
    assert "127.0.0.1" not in str(error) and ":1" not in str(error)


def test_more_series_than_the_bound_are_refused():
    async def handler(request):
        return web.json_response(vector(500))
    error = _query(handler, Limits(max_series=100))
    assert isinstance(error, PrometheusError) and error.reason == "TooManySeries"
    allowed = _query(handler, Limits(max_series=500))
    assert isinstance(allowed, list) and len(allowed) == 500


def test_a_body_larger_than_the_bound_is_refused_while_read():
    async def handler(request):
        response = web.StreamResponse()
        await response.prepare(request)  # chunked: no Content-Length to refuse up front
        await response.write(json.dumps(vector(5000)).encode())
        await response.write_eof()
        return response
    error = _query(handler, Limits(max_bytes=10_000, max_series=10_000))
    assert isinstance(error, PrometheusError) and error.reason == "TooManySeries"


def test_a_prometheus_error_text_is_short_and_has_no_url():
    async def handler(request):
        text = "parse error at http://internal.example/x " + "y" * 5000
        return web.json_response({"status": "error", "errorType": "bad_data", "error": text}, status=400)
    error = _query(handler)
    assert isinstance(error, PrometheusError) and error.reason == "QueryFailed"
    assert "internal.example" not in str(error) and len(str(error)) < 300 and "bad_data" in str(error)


# -- the incident budget ----------------------------------------------------------------------------

def test_the_budget_refuses_beyond_the_rule_and_namespace_buckets_and_refills():
    now = [0.0]
    budget = IncidentBudget(per_rule=2, per_namespace=3, window=60.0, clock=lambda: now[0])
    assert [budget.take(NS, "a") for _ in range(3)] == [None, None, "RuleBudget"]
    assert [budget.take(NS, "b") for _ in range(2)] == [None, "NamespaceBudget"]
    assert budget.take("other", "a") is None
    now[0] = 30.0  # half the window: one token back per rule (2/60 per s), 1.5 for the namespace
    assert budget.take(NS, "a") is None
    assert budget.take(NS, "a") == "RuleBudget"


class ManyGroups:
    def __init__(self, n: int):
        self.n = n

    async def query(self, endpoint, expr, at, limits=None):
        return [Sample({"topic": f"t{i}"}, 40.0) for i in range(self.n)]

    async def query_range(self, endpoint, expr, start, end, step, limits=None):
        return []


def test_incidents_beyond_the_budget_are_suppressed_in_status_and_metric():
    api = FakeKube()
    spec = {"query": "sum by (topic) (x)", "interval": "30s",
            "detector": {"type": "threshold", "threshold": {"value": 15}}, "incident": {"title": "Spike"}}
    api.put(kube.RULES, {"kind": "DetectionRule", "metadata": {"name": "r", "namespace": NS}, "spec": spec})
    config = OperatorConfig.from_dict({"detection": {"maxIncidentsPerRule": 3}})
    metrics = IncidentMetrics()
    detection = Detection(kube=api, config=config, prometheus=ManyGroups(10),  # type: ignore[arg-type]
                          correlator=Correlator(api, config), slots=FairSlots(1, 1), clock=lambda: NOW,
                          metrics=metrics)
    body = api.stored(kube.RULES, NS, "r")
    result = asyncio.run(evaluate_rule(body, dom.parse_rule(NS, "r", spec), detection))
    assert len(asyncio.run(api.list_objects(kube.INCIDENTS, NS))) == 3
    status = result.rule_body["status"]
    assert status["suppressedIncidents"]["lastEvaluation"] == 7
    assert status["suppressedIncidents"]["reason"] == "RuleBudget"
    assert len(status["groups"]) == 3 and status["firingCount"] == 3
    assert metrics.registry.get_sample_value("incident_operator_incidents_suppressed_total",
                                             {"reason": "RuleBudget"}) == 7


def test_a_too_many_series_answer_degrades_the_rule_and_opens_nothing():
    class TooMany:
        async def query(self, endpoint, expr, at, limits=None):
            raise PrometheusError("TooManySeries", "the query returned 50000 series")

        async def query_range(self, endpoint, expr, start, end, step, limits=None):
            return []

    api = FakeKube()
    spec = {"query": "x", "interval": "30s", "detector": {"type": "threshold", "threshold": {"value": 1}}}
    api.put(kube.RULES, {"kind": "DetectionRule", "metadata": {"name": "r", "namespace": NS}, "spec": spec})
    config = OperatorConfig.from_dict({})
    detection = Detection(kube=api, config=config, prometheus=TooMany(),  # type: ignore[arg-type]
                          correlator=Correlator(api, config), slots=FairSlots(1, 1), clock=lambda: NOW)
    body = api.stored(kube.RULES, NS, "r")
    result = asyncio.run(evaluate_rule(body, dom.parse_rule(NS, "r", spec), detection))
    conditions = {c["type"]: c for c in result.rule_body["status"]["conditions"]}
    assert conditions["Degraded"]["status"] == "True" and conditions["Degraded"]["reason"] == "TooManySeries"
    assert asyncio.run(api.list_objects(kube.INCIDENTS, NS)) == []


# -- fair slots -------------------------------------------------------------------------------------

def test_one_namespaces_hanging_rules_cannot_take_another_namespaces_slots():
    async def run():
        slots = FairSlots(total=6, per_namespace=4)
        hang = asyncio.Event()
        held = []

        async def hanging():
            async with slots.slot("noisy"):
                held.append(1)
                await hang.wait()

        noisy = [asyncio.create_task(hanging()) for _ in range(8)]
        while len(held) < 4:
            await asyncio.sleep(0)
        for _ in range(10):
            await asyncio.sleep(0)
        assert len(held) == 4  # the namespace's share, not the 6 global slots
        served = []
        for name in ("quiet-a", "quiet-b"):
            async with slots.slot(name):
                served.append(name)
        hang.set()
        await asyncio.gather(*noisy)
        return served, slots.held_namespaces()

    served, left = asyncio.run(run())
    assert served == ["quiet-a", "quiet-b"] and left == 0


# -- config -----------------------------------------------------------------------------------------

def test_tenant_limit_defaults_and_refusals():
    limits = OperatorConfig.from_dict({}).tenant_limits
    assert limits.allowed_prometheus_urls == () and limits.max_series == 100
    assert limits.max_timeout == 60.0 and limits.max_concurrent_per_namespace == 4
    with pytest.raises(ConfigError):
        OperatorConfig.from_dict({"detection": {"allowedPrometheusURLs": ["http://u:p@host"]}})
    with pytest.raises(ConfigError):
        OperatorConfig.from_dict({"detection": {"maxSeriesPerEvaluation": 0}})
    with pytest.raises(ConfigError):
        OperatorConfig.from_dict({"detection": {"maxSeriesPerEvalution": 10}})
