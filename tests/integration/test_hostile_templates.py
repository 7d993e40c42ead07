"""Issue 14, findings 1 and 4, against the real API server, a real Prometheus and the operator as a process.

- A DetectionRule whose templates exceed the template engine's limits (a 10^8-character title, nested
  loops, a macro calling itself, attribute walking) gets Ready=False/Invalid with a message naming the
  limit, while an incident in another namespace is still processed; after a restart with the rule
  present the operator is healthy again and still serves the other namespace.
- A rule whose query answers +Inf, NaN and a series without the rule's group label opens nothing, its
  status is written (droppedSamples, SamplesDropped) and the drops are counted on /metrics.
- Hostile rules generated with hypothesis: each refused at apply or marked; no crash, no traceback.
"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from kubernetes import client, config as kube_config
from kubernetes.client.exceptions import ApiException

from tests.support.kubectl import GROUP, VERSION, Kubectl, condition, incident
from tools.devenv.processes import wait_until

HOSTILE_TITLES = {
    "multiply": "{{ 'x' * 10**8 }}",
    "loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "loops-small": "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "replace": "{% set s = 'ab' * 50 %}{{ s.replace('a', s).replace('a', s).replace('a', s) }}",
    "macro": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "dunder": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "width": "{{ '{:>99999999}'.format(1) }}",
}


def rule(name: str, query: str, **spec) -> dict:
    body = {"query": query, "interval": "1s", "for": "0s", "cooldown": "3s",
            "detector": {"type": "threshold", "threshold": {"value": 1}}, "groupLabels": ["topic"]}
    body.update(spec)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DetectionRule", "metadata": {"name": name},
            "spec": body}


@pytest.fixture
def other_namespace(kubeconfig):
    """A second tenant's namespace, served by the same operator."""
    name = "t-other-" + uuid.uuid4().hex[:6]
    admin = Kubectl(kubeconfig)
    admin.run("create", "namespace", name, namespaced=False)
    yield name
    admin.run("delete", "namespace", name, "--wait=false", check=False, namespaced=False)


def processed(kubectl: Kubectl, name: str, timeout: float = 30) -> dict:
    return wait_until(lambda: (lambda o: o if (o or {}).get("status", {}).get("priority") else None)(
        kubectl.get("incident", name)), timeout, what=f"incident {name} to be processed")


def invalid(kubectl: Kubectl, name: str, timeout: float = 30) -> dict:
    def check():
        ready = condition(kubectl.get("detectionrule", name), "Ready")
        return ready if ready and ready["reason"] == "Invalid" else None
    return wait_until(check, timeout, what=f"rule {name} to be Invalid")


def test_hostile_templates_make_their_rule_invalid_and_other_tenants_are_served_across_a_restart(
        kubectl, kubeconfig, namespace, other_namespace, start_operator, prometheus):
    other = Kubectl(kubeconfig, other_namespace)
    config = {"prometheus": {"url": prometheus.url}}
    operator = start_operator(config, namespaces=[namespace, other_namespace])
    for key, title in HOSTILE_TITLES.items():
        kubectl.apply(rule(f"hostile-{key}", 'label_replace(vector(5), "topic", "t", "", "")',
                           incident={"title": title, "description": title}))
    other.apply(incident("healthy", priority="P3"))
    for key in HOSTILE_TITLES:
        ready = invalid(kubectl, f"hostile-{key}")
        assert ready["message"].startswith("spec.incident.title: "), ready
    messages = {key: invalid(kubectl, f"hostile-{key}")["message"] for key in HOSTILE_TITLES}
    assert "repetition would exceed" in messages["multiply"]
    assert "range() of more than 10000 items" in messages["loops"]
    assert "more than 50000 operations" in messages["loops-small"]
    assert "replace() would build" in messages["replace"]
    assert "calls nested more than 20 deep" in messages["macro"]
    assert "unsafe" in messages["dunder"]
    assert "format() would build" in messages["width"]
    assert processed(other, "healthy")["status"]["priority"] == "P3"
    assert operator.healthy()
    assert kubectl.list("incidents") == []

    # A restart with the hostile rules present: healthy again, and the other tenant is still served.
    operator.stop()
    restarted = start_operator(config, namespaces=[namespace, other_namespace])
    other.apply(incident("after-restart", priority="P2"))
    assert processed(other, "after-restart")["status"]["priority"] == "P2"
    assert restarted.healthy() and restarted.alive()
    for key in HOSTILE_TITLES:
        invalid(kubectl, f"hostile-{key}")
    for process in (operator, restarted):
        assert "Traceback" not in process.log()


def _metric(url: str, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_infinite_nan_and_unlabelled_samples_open_nothing_and_are_reported(
        kubectl, start_operator, prometheus):
    operator = start_operator({"prometheus": {"url": prometheus.url}})
    query = ('label_replace(vector(1) / 0, "topic", "inf", "", "") or label_replace(-vector(1) / 0, "topic", '
             '"minus", "", "") or label_replace(vector(0) / 0, "topic", "nan", "", "") or vector(100)')
    kubectl.apply(rule("odd-values", query))

    def reported():
        obj = kubectl.get("detectionrule", "odd-values")
        dropped = ((obj or {}).get("status") or {}).get("droppedSamples") or {}
        return obj if dropped.get("count") == 4 else None

    obj = wait_until(reported, 30, what="the dropped samples in the rule's status")
    status = obj["status"]
    assert status["droppedSamples"]["reasons"] == {"NonFinite": 3, "MissingGroupLabel": 1}
    assert "topic" in status["droppedSamples"]["message"]
    samples = condition(obj, "SamplesDropped")
    assert samples["status"] == "True" and samples["reason"] == "NonFinite"
    assert condition(obj, "Ready")["status"] == "True", condition(obj, "Ready")
    assert status.get("firingCount") == 0 and not status.get("groups")
    assert kubectl.list("incidents") == []
    # further evaluations keep writing the status (no 400 for Infinity) and counting
    first = status["lastEvaluationTime"]
    wait_until(lambda: kubectl.get("detectionrule", "odd-values")["status"]["lastEvaluationTime"] != first,
               15,
               what="a later status write")
    assert _metric(operator.metrics_url, "detection_rule_samples_dropped_total", reason="NonFinite") >= 3
    assert _metric(operator.metrics_url, "detection_rule_samples_dropped_total",
                   reason="MissingGroupLabel") >= 1
    assert kubectl.list("incidents") == []
    assert "Traceback" not in operator.log()


# -- generated hostile rules --------------------------------------------------------------------------

FRAGMENTS = st.sampled_from([
    "'x' * 10**8", "'x' * 10**4 * 10**4", "range(10**9) | list", "range(100000) | join",
    "('a' * 100).replace('a', 'a' * 100)", "'{:99999999}'.format(1)", "'%099999999d' % 1",
    "''.__class__", "cycler.__init__.__globals__", "lipsum(1000)", "labels.items() | list",
    "'x'.center(10**8)", "2 ** 2 ** 2 ** 2 ** 2", "(('x' * 5000) ~ ('x' * 5000)) * 3", "value | round",
])
TEMPLATES = st.one_of(
    st.builds(lambda e: "{{ " + e + " }}", FRAGMENTS),
    st.builds(lambda a, b: "{% for i in range(99999) %}{% for j in range(99999) %}{{ " + a + " }}"
              "{% endfor %}{% endfor %}" + b, FRAGMENTS, st.text(max_size=20)),
    st.builds(lambda e: "{% macro m(n) %}{{ m(n) }}{{ " + e + " }}{% endmacro %}{{ m(1) }}", FRAGMENTS),
    st.builds(lambda n: "(" * n + "1" + ")" * n, st.integers(0, 200)).map(lambda e: "{{ " + e + " }}"),
    st.text(max_size=60),
)
QUERIES = st.sampled_from([
    'label_replace(vector(5), "topic", "t", "", "")', "vector(1) / 0", "sum by (topic (x[10m]))", "up ==", "",
    "vector(0) / 0",
])
DURATIONS = st.sampled_from(["1s", "30s", "0s", "-5s", "9999h", "soon", "1e9h", ""])
URLS = st.sampled_from(["http://127.0.0.1:9", "file:///etc/passwd", "http://user:pass@127.0.0.1:9", "gopher://x",
                        "http://[::1", ""])


def hostile_rules():
    return st.fixed_dictionaries({"query": QUERIES, "incident": st.fixed_dictionaries(
        {"title": TEMPLATES}, optional={"description": TEMPLATES, "service": TEMPLATES, "team": TEMPLATES})},
        optional={"interval": DURATIONS, "for": DURATIONS, "groupLabels": st.just(["topic"]),
                  "prometheus": st.fixed_dictionaries({"url": URLS}, optional={"timeout": DURATIONS})})


def test_generated_hostile_rules_are_refused_or_marked_and_other_tenants_are_served(
        kubectl, kubeconfig, namespace, other_namespace, start_operator, prometheus):
    api = client.CustomObjectsApi(kube_config.new_client_from_config(str(kubeconfig)))
    other = Kubectl(kubeconfig, other_namespace)
    operator = start_operator({"prometheus": {"url": prometheus.url}},
                              namespaces=[namespace, other_namespace])
    accepted: list[str] = []
    counter = iter(range(10_000))

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(spec=hostile_rules())
    def apply_rule(spec):
        name = f"gen-{next(counter)}"
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DetectionRule", "metadata": {"name": name},
                "spec": spec}
        try:
            api.create_namespaced_custom_object(GROUP, VERSION, namespace, "detectionrules", body)
        except ApiException as error:
            assert 400 <= error.status < 500, error
            assert json.loads(error.body).get("message"), "a refusal must say why"
            return
        accepted.append(name)

    apply_rule()
    other.apply(incident("canary", priority="P3"))
    for name in accepted:
        obj = wait_until(lambda name=name: (lambda o: o if condition(o, "Ready") else None)(
            kubectl.get("detectionrule", name)), 60, what=f"rule {name} to get a Ready condition")
        ready = condition(obj, "Ready")
        allowed = ("Invalid", "PrometheusUnavailable", "QueryFailed")
        assert ready["status"] == "True" or ready["reason"] in allowed, ready
        text = json.dumps(obj.get("status") or {})
        assert "<class '" not in text and len(text) < 200_000
    assert processed(other, "canary")["status"]["priority"] == "P3"
    assert operator.alive() and operator.healthy()
    assert accepted, "the strategy must reach the operator"
    assert "Traceback" not in operator.log(), "no handler may crash on a hostile rule"
