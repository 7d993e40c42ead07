"""Hostile input, generated with hypothesis and applied to the real API server.

Every object is either refused by the API server (schema/CEL: 4xx) or accepted and then
handled by the operator: it gets a Ready condition, True or False with reason Invalid. The
operator stays up and keeps processing a well-formed canary created afterwards.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from kubernetes import client, config as kube_config
from kubernetes.client.exceptions import ApiException

from tests.support.kubectl import GROUP, VERSION, condition, incident
from tools.devenv.processes import wait_until

ODD_TEXT = st.one_of(
    st.text(min_size=0, max_size=50),
    st.text(alphabet=st.characters(categories=["So", "Cf", "Mn", "Zs", "Lo"]), max_size=30),
    st.just("x" * 300_000),
    st.just("{{ ''.__class__.__mro__[1].__subclasses__() }}"),
    st.just("{% for x in range(10**9) %}{% endfor %}"),
    st.just("\u202e\u0000\ufeff"),
)
ANY_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                       st.floats(allow_nan=False), ODD_TEXT)
DURATIONS = st.one_of(st.sampled_from(["0s", "1s", "30s", "90m", "25h", "-5s", "1d", "soon", "1e9h", ""]), ODD_TEXT)
PROMQL = st.one_of(
    st.sampled_from([
        "sum by (topic) (increase(support_tickets_created_total[10m]))",
        "sum by (topic (increase(x[10m]))", "rate(x[5m]", "up ==", "{}", "x{a=~\"(\"}",
    ]),
    ODD_TEXT,
)


def incidents_strategy():
    spec = st.fixed_dictionaries({
        "title": st.one_of(st.just("Customers cannot log in"), ODD_TEXT),
        "priority": st.one_of(st.sampled_from(["P1", "P2", "P3", "P4"]), st.sampled_from(["P0", "p1"]), ANY_SCALAR),
    }, optional={
        "impact": st.one_of(st.sampled_from(["High", "Medium", "Low"]), ANY_SCALAR),
        "urgency": st.one_of(st.sampled_from(["High", "Medium", "Low"]), ANY_SCALAR),
        "state": st.one_of(st.sampled_from(["Triggered", "Acknowledged", "Closed"]), ANY_SCALAR),
        "owner": ANY_SCALAR, "service": ODD_TEXT,
        "startedAt": st.one_of(st.sampled_from(["2026-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "yesterday",
                                                "0001-01-01T00:00:00Z"]), ANY_SCALAR),
        "customerImpact": st.fixed_dictionaries({}, optional={
            "ticketCount": ANY_SCALAR,
            "affectedAccounts": st.lists(ODD_TEXT, max_size=300),
        }),
        "links": st.lists(st.fixed_dictionaries({"url": ODD_TEXT}), max_size=25),
        "csat": st.fixed_dictionaries({}, optional={"score": ANY_SCALAR, "responses": ANY_SCALAR}),
    })
    return spec


def rules_strategy():
    return st.fixed_dictionaries({"query": PROMQL}, optional={
        "interval": DURATIONS, "for": DURATIONS, "cooldown": DURATIONS, "recoveryWindow": DURATIONS,
        "mode": st.one_of(st.sampled_from(["Active", "DryRun"]), ANY_SCALAR),
        "detector": st.one_of(
            st.fixed_dictionaries({"type": st.just("threshold"), "threshold": st.fixed_dictionaries({"value": ANY_SCALAR})}),
            st.fixed_dictionaries({"type": st.just("baseline")}),
            st.fixed_dictionaries({"type": ANY_SCALAR}),
        ),
        "incident": st.fixed_dictionaries({}, optional={"title": ODD_TEXT, "service": ODD_TEXT}),
        "priority": st.fixed_dictionaries({}, optional={"bands": st.lists(
            st.fixed_dictionaries({"minValue": ANY_SCALAR, "priority": ANY_SCALAR}), max_size=6)}),
    })


@pytest.fixture
def api(kubeconfig):
    return client.CustomObjectsApi(kube_config.new_client_from_config(str(kubeconfig)))


def _create(api, namespace, plural, kind, name, spec):
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
        return True
    except ApiException as error:
        assert 400 <= error.status < 500, error
        message = json.loads(error.body).get("message", "")
        assert message, "a refusal must say why"
        return False
    except ValueError:
        return False  # the client refused to serialise it (e.g. a NUL byte): never reached the server


def test_hostile_objects_are_refused_or_marked_invalid_and_the_operator_survives(
        api, namespace, kubectl, start_operator):
    operator = start_operator({"prometheus": {"url": "http://127.0.0.1:9"}})
    accepted: list[tuple[str, str]] = []
    counter = iter(range(10_000))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(spec=incidents_strategy())
    def apply_incident(spec):
        name = f"hostile-inc-{next(counter)}"
        if _create(api, namespace, "incidents", "Incident", name, spec):
            accepted.append(("incident", name))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(spec=rules_strategy())
    def apply_rule(spec):
        name = f"hostile-dr-{next(counter)}"
        if _create(api, namespace, "detectionrules", "DetectionRule", name, spec):
            accepted.append(("detectionrule", name))

    apply_incident()
    apply_rule()
    kubectl.apply(incident("canary", priority="P3"))

    for kind, name in accepted:
        obj = wait_until(lambda kind=kind, name=name: (lambda o: o if condition(o, "Ready") else None)(kubectl.get(kind, name)), 60,
                         what=f"{kind} {name} to get a Ready condition")
        ready = condition(obj, "Ready")
        assert ready["status"] == "True" or ready["reason"] in ("Invalid", "PrometheusUnavailable", "QueryFailed"), ready
        # Nothing an object carries can run code in a template: no Python internals leak out.
        assert "<class '" not in json.dumps(obj.get("status") or {})
        assert len(json.dumps(obj)) < 1_500_000
    canary = wait_until(lambda: (lambda o: o if (o.get("status") or {}).get("priority") else None)(
        kubectl.get("incident", "canary")), 30, what="the canary to be processed")
    assert canary["status"]["priority"] == "P3"
    assert operator.alive()
    kinds = [kind for kind, _ in accepted]
    assert {"incident", "detectionrule"} <= set(kinds), f"the strategies must reach the operator: {kinds}"
    assert "Traceback" not in operator.log(), "no handler may crash on hostile input"
