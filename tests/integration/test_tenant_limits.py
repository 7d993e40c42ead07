"""Tenant limits of detection against the real API server, a real Prometheus and the operator as a
process (issue 14, findings 2, 3 and 5): credentials stay with their owner, bounded answers, the
incident budget, and fair evaluation slots across namespaces."""

from __future__ import annotations

import socket
import threading
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.integration.test_detection import incidents_of, rule
from tests.support.kubectl import Kubectl, condition
from tools.devenv.processes import wait_until

OPERATOR_TOKEN = "operator-token-" + uuid.uuid4().hex


class RecordingServer:
    """A fake Prometheus that records the Authorization header of every request and answers an
    empty vector."""

    def __init__(self):
        self.authorizations: list[str | None] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                recorder.authorizations.append(self.headers.get("Authorization"))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


class HangingServer:
    """Accepts connections (the kernel's backlog) and never answers."""

    def __init__(self):
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(512)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def stop(self):
        self._socket.close()


@pytest.fixture
def recording():
    server = RecordingServer()
    yield server
    server.stop()


@pytest.fixture
def hanging():
    server = HangingServer()
    yield server
    server.stop()


@pytest.fixture
def other_namespace(kubeconfig):
    name = "t-other-" + uuid.uuid4().hex[:6]
    admin = Kubectl(kubeconfig)
    admin.run("create", "namespace", name, namespaced=False)
    yield name
    admin.run("delete", "namespace", name, "--wait=false", check=False, namespaced=False)


def token_file(tmp_path) -> str:
    path = tmp_path / "prometheus-token"
    path.write_text(OPERATOR_TOKEN)
    return str(path)


def test_a_per_rule_url_not_allowed_is_invalid_and_never_gets_the_operator_token(
        kubectl, start_operator, prometheus, recording, tmp_path):
    other = RecordingServer()
    try:
        start_operator({"prometheus": {"url": prometheus.url, "bearerTokenFile": token_file(tmp_path)},
                        "detection": {"allowedPrometheusURLs": [other.url]}})
        kubectl.apply(rule("elsewhere", 'topic="x"', prometheus={"url": recording.url}))
        kubectl.apply(rule("allowed", 'topic="x"', prometheus={"url": other.url}))
        ready = wait_until(lambda: (lambda c: c if c and c["reason"] == "Invalid" else None)(
            condition(kubectl.get("detectionrule", "elsewhere"), "Ready")), 30, what="the rule Invalid")
        assert "allowedPrometheusURLs" in ready["message"]
        wait_until(lambda: other.authorizations, 30, what="the allowed URL queried")
        wait_until(lambda: condition(kubectl.get("detectionrule", "allowed"), "Ready")["reason"]
                   == "Evaluating", 30, what="the allowed rule evaluating")
        assert recording.authorizations == []  # never contacted at all
        assert all(OPERATOR_TOKEN not in (auth or "") for auth in other.authorizations)
        # A URL with user:password@ is refused by the API server itself.
        refused = kubectl.apply(rule("userinfo", 'topic="x"', prometheus={"url": "http://u:p@127.0.0.1:1"}),
                                check=False)
        assert refused.returncode != 0
    finally:
        other.stop()


def test_a_rule_timeout_beyond_5m_is_refused_at_apply(kubectl):
    result = kubectl.apply(rule("slow", 'topic="x"', prometheus={"timeout": "9999h"}), check=False)
    assert result.returncode != 0 and "at most 5m" in result.stderr


def test_thousands_of_series_degrade_the_rule_with_too_many_series_and_open_nothing(
        kubectl, start_operator, prometheus, exporter):
    prefix = "many-" + uuid.uuid4().hex[:4]
    for i in range(3000):
        exporter.set_rate(f"{prefix}-{i}", 5.0)
    selector = f'support_tickets_created_total{{target="{exporter.target}"}}'
    wait_until(lambda: len(prometheus.query(selector)) >= 3000, 30, what="3000 series scraped")
    operator = start_operator({"prometheus": {"url": prometheus.url}})
    kubectl.apply(rule("flood", f'target="{exporter.target}"', detector={"type": "threshold",
                                                                         "threshold": {"value": 1}}))
    try:
        degraded = wait_until(lambda: (lambda c: c if c and c["status"] == "True" else None)(
            condition(kubectl.get("detectionrule", "flood"), "Degraded")), 40, what="Degraded")
    except TimeoutError:
        print(kubectl.get("detectionrule", "flood").get("status"), operator.log()[-4000:])
        raise
    assert degraded["reason"] == "TooManySeries"
    status = kubectl.get("detectionrule", "flood")["status"]
    assert "series" in status["lastError"] or "bytes" in status["lastError"]
    assert kubectl.list("incidents") == []


def test_the_incident_budget_suppresses_the_rest_with_status_and_metric(
        kubectl, start_operator, prometheus, exporter):
    prefix = "budget-" + uuid.uuid4().hex[:4]
    for i in range(20):
        exporter.set_rate(f"{prefix}-{i}", 5.0)
    operator = start_operator({"prometheus": {"url": prometheus.url},
                               "detection": {"maxIncidentsPerRule": 3, "incidentBudgetWindow": "1h"}})
    kubectl.apply(rule("budget", f'target="{exporter.target}",topic=~"{prefix}-.*"'))
    suppressed = wait_until(lambda: (kubectl.get("detectionrule", "budget").get("status") or {})
                            .get("suppressedIncidents"), 60, what="suppressed incidents")
    assert suppressed["reason"] == "RuleBudget" and suppressed["total"] >= 1
    assert len(incidents_of(kubectl, "budget")) == 3
    with urllib.request.urlopen(operator.metrics_url, timeout=5) as response:
        text = response.read().decode()
    counter = 'incident_operator_incidents_suppressed_total{reason="RuleBudget"}'
    wait_until(lambda: any(line.startswith(counter) and float(line.split()[-1]) > 0
                           for line in urllib.request.urlopen(operator.metrics_url, timeout=5).read().decode()
                           .splitlines()), 100, what="the suppressed counter", interval=1)
    assert "incident_operator_incidents_suppressed_total" in text
    assert len(incidents_of(kubectl, "budget")) == 3


def test_hanging_rules_in_one_namespace_do_not_freeze_another_namespaces_detection(
        kubectl, kubeconfig, namespace, other_namespace, start_operator, prometheus, exporter, hanging):
    topic = "healthy-" + uuid.uuid4().hex[:4]
    exporter.set_rate(topic, 0.0)
    start_operator({"prometheus": {"url": prometheus.url},
                    "detection": {"allowedPrometheusURLs": [hanging.url], "maxConcurrentEvaluations": 4,
                                  "maxConcurrentEvaluationsPerNamespace": 2}},
                   namespaces=[namespace, other_namespace])
    for i in range(4):
        kubectl.apply(rule(f"hang-{i}", 'topic="x"', prometheus={"url": hanging.url, "timeout": "5m"}))
    other = Kubectl(kubeconfig, other_namespace)
    other.apply(rule("healthy", f'target="{exporter.target}",topic="{topic}"'))
    wait_until(lambda: condition(other.get("detectionrule", "healthy"), "Ready")["reason"] == "Evaluating",
               30, what="the healthy rule evaluating")
    exporter.set_rate(topic, 5.0)
    wait_until(lambda: incidents_of(other, "healthy"), 40, what="the healthy namespace's incident")
    assert incidents_of(kubectl, "hang-0") == []
