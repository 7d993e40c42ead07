"""The Helm chart: lint, render, schema, sync with its sources, server-side dry run, and the operator
running under the chart's own ServiceAccount and RBAC against a real API server with RBAC on.

helm is the pinned build from tests/tools/build-helm.sh (Go module proxy, cached outside the repo).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from incident_operator.config import OperatorConfig
from tests.support import helm as chart
from tests.support.kubectl import GROUP, VERSION, Kubectl, condition, incident
from tools.devenv.processes import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
ALERTS = REPO / "alerts" / "incident-operator.rules.yaml"
DASHBOARD = REPO / "dashboards" / "incident-operator.json"
INSTALL_YAML = REPO / "manifests" / "install.yaml"
EXISTING_CLUSTER = os.environ.get("USE_EXISTING_CLUSTER", "").lower() == "true"

# Short deadlines (as in test_lifecycle.py), given to the operator through the chart's values.
FAST_DEADLINES = {
    "response": {"P1": "4s", "P2": "30m", "P3": "2h"},
    "escalationInterval": {"P1": "4s"},
    "maxEscalationLevel": 3,
}
# An RBAC denial in the operator's log: "... is forbidden: User ... cannot ...", "(403)", "HTTP 403", and
# kopf's "Not enough permissions to list namespaces" fallback. (Not the milliseconds of a log timestamp
# such as "[... 12:00:01,403]".)
# A 403 in an HTTP status position only: a bare "403" also occurs as a resourceVersion in logged bodies.
DENIED = re.compile(r"(?i)forbidden|not enough permissions|(?:status[=:]\s*|'code':\s*|HTTP/1\.1\"\s+|\()403\b")
ALL_OPTIONAL = {"dashboards": {"enabled": True}, "prometheusRule": {"enabled": True},
                "metrics": {"port": 8080, "serviceMonitor": {"enabled": True}}}
# The Alertmanager webhook receiver, as docs/alertmanager.md and the chart README configure it.
ALERTMANAGER = {
    "alertmanager": {"enabled": True, "correlationWindow": "30m", "recoveryWindow": "1h", "resolveOnResolved": True,
                     "maxBodyBytes": 2097152, "maxAlerts": 10, "serviceLabel": "service", "teamLabel": "team",
                     "mappings": [{"name": "database", "matchers": ['team="dba"', 'severity=~"critical|error"'],
                                   "priority": "P1"},
                                  {"name": "paging", "matchers": ['severity=~"critical|error|high|warning"'],
                                   "priorities": {"warning": "P4"}}]},
    "alertmanagerReceiver": {"tokenSecret": {"name": "am-webhook", "key": "bearer"}},
}
TOKEN_DIR = "/var/run/secrets/incident-operator/alertmanager"


def crd_sources() -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in (yaml.safe_load(p.read_text()) for p in sorted(CRDS.glob("*.yaml")))}


def rendered_config(docs: list[dict]) -> dict:
    configmap = chart.one(docs, "ConfigMap", "-config")
    return yaml.safe_load(configmap["data"]["config.yaml"])


def rules_of(docs: list[dict], kind: str, name_suffix: str = "", namespace: str | None = None) -> list[dict]:
    found = [d for d in chart.by_kind(docs, kind) if d["metadata"]["name"].endswith(name_suffix)
             and (namespace is None or d["metadata"].get("namespace") == namespace)]
    assert len(found) == 1, found
    return found[0]["rules"]


def granted(rules: list[dict], group: str, resource: str, verb: str) -> bool:
    return any(group in r.get("apiGroups", []) and resource in r.get("resources", []) and verb in r.get("verbs", [])
               for r in rules)


# -- lint and render ---------------------------------------------------------------------------------

@pytest.mark.parametrize("values", [None, ALL_OPTIONAL, {"watchNamespaces": ["support", "billing"]}, ALERTMANAGER],
                         ids=["defaults", "all-optional", "watch-namespaces", "alertmanager"])
def test_helm_lint_passes_strict(values, tmp_path):
    args = ["lint", str(chart.CHART), "--strict"]
    if values:
        (tmp_path / "values.yaml").write_text(json.dumps(values))
        args += ["--values", str(tmp_path / "values.yaml")]
    result = chart.helm(*args)
    assert "0 chart(s) failed" in result.stdout, result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_default_render_has_the_expected_objects():
    docs = chart.documents(chart.render())
    kinds = sorted(d["kind"] for d in docs)
    # The operator's ClusterRole and the view/edit/admin ClusterRoles for people; the CRDs of crds/ and
    # kopf's two peering CRDs (peering.enabled); the NetworkPolicy (networkPolicy.enabled).
    assert kinds == sorted(["ServiceAccount", "ConfigMap", "ClusterRoleBinding", "Service", "Deployment",
                            "NetworkPolicy"] + ["ClusterRole"] * 4
                           + ["CustomResourceDefinition"] * (len(crd_sources()) + 2))
    # Everything namespaced goes to the release namespace.
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"):
            assert doc["metadata"]["namespace"] == "incident-operator", doc["metadata"]


def test_deployment_is_hardened_single_replica_with_health_probes():
    docs = chart.documents(chart.render())
    deployment = chart.one(docs, "Deployment")
    spec = deployment["spec"]
    # The rollout keeps the old pod until the new one is Ready (tests/integration/test_upgrades.py).
    assert spec["replicas"] == 1 and spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == chart.one(docs, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]
    assert "--liveness=http://0.0.0.0:8081/healthz" in container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
    # --config points into the mounted ConfigMap the chart renders.
    [config_arg] = [a for a in container["args"] if a.startswith("--config=")]
    config_path = Path(config_arg.split("=", 1)[1])
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert Path(mounts["config"]["mountPath"]) == config_path.parent and mounts["config"]["readOnly"]
    assert volumes["config"]["configMap"]["name"] == chart.one(docs, "ConfigMap", "-config")["metadata"]["name"]
    assert config_path.name in chart.one(docs, "ConfigMap", "-config")["data"]
    assert "emptyDir" in volumes[mounts["tmp"]["name"]] and mounts["tmp"]["mountPath"] == "/tmp"
    # The config checksum restarts the pod when the configuration changes.
    changed = chart.documents(chart.render(values={"timelineLimit": 50}))
    assert (chart.one(changed, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            != spec["template"]["metadata"]["annotations"]["checksum/config"])
    # The metrics Service reaches the metrics port of this pod.
    service = chart.one(docs, "Service", "-metrics")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()


def test_rendered_config_is_accepted_by_the_operator():
    config = OperatorConfig.from_dict(rendered_config(chart.documents(chart.render())))
    assert config.namespaces == () and config.metrics_port == 8080 and config.health_port == 8081
    assert config.prometheus.url == "http://prometheus-operated.monitoring.svc:9090"

    values = {
        "watchNamespaces": ["support", "billing"],
        "prometheus": {"url": "https://prom.example:9090/", "externalURL": "https://prom.example.com",
                       "bearerTokenFile": "/var/run/secrets/prom/token", "insecureSkipVerify": True,
                       "timeoutSeconds": 5},
        "grafana": {"url": "https://grafana.example.com"},
        "calendar": {"timezone": "Europe/Berlin", "workdays": ["Mon", "Tue", "Wed", "Thu", "Fri"],
                     "hours": {"start": "08:00", "end": "18:00"},
                     "holidays": {"country": "DE", "subdivision": "BE", "extra": ["2026-12-24"]}},
        "deadlines": {"response": {"P1": "2m", "P4": "nextBusinessDay"}, "resolution": {"P3": "3bd"},
                      "escalationInterval": {"P1": "2m"}, "maxEscalationLevel": 4},
        "timelineLimit": 40,
        "detection": {"maxConcurrentEvaluations": 4},
        "notifications": {"maxAttempts": 5, "backoff": {"initial": "2s", "max": "1m"}},
        "escalationPolicies": {"namespace": "oncall"},
        "templates": {"configMap": "comms-templates", "namespace": "comms"},
        "metrics": {"port": 9100, "newSeriesDelay": "2m", "responseObjectives": {"P2": 0.99}},
        "health": {"port": 9101},
    }
    docs = chart.documents(chart.render(values=values))
    raw = rendered_config(docs)
    config = OperatorConfig.from_dict(raw)
    assert config.namespaces == ("support", "billing")
    assert config.prometheus.url == "https://prom.example:9090" and config.prometheus.insecure_skip_verify
    assert config.prometheus.bearer_token_file == "/var/run/secrets/prom/token"
    assert config.calendar.timezone == "Europe/Berlin"
    assert config.deadlines.max_escalation_level == 4
    assert config.timeline_limit == 40 and config.max_concurrent_evaluations == 4
    assert config.escalation_policies.namespace == "oncall"
    assert config.templates_configmap == "comms-templates" and config.templates_namespace == "comms"
    assert config.grafana_url == "https://grafana.example.com"
    assert config.metrics_port == 9100 and config.health_port == 9101
    assert config.new_series_delay == 120
    assert config.response_objectives == {"P1": 0.95, "P2": 0.99, "P3": 0.95, "P4": 0.95}
    container = chart.one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--liveness=http://0.0.0.0:9101/healthz" in container["args"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 9100, "health": 9101}


@pytest.mark.parametrize("values,message", [
    ({"metrics": {"port": 0}}, "/metrics/port"),
    ({"metrics": {"port": 8080, "responseObjectives": {"P2": 1.5}}}, "/metrics/responseObjectives/P2"),
    ({"metrics": {"port": 8080, "responseObjectives": {"P5": 0.9}}}, "/metrics/responseObjectives"),
    ({"watchNamespaces": "support"}, "/watchNamespaces"),
    ({"watchNamespaces": ["Not_A_Namespace"]}, "/watchNamespaces/0"),
    ({"deadlines": {"response": {"P5": "1m"}}}, "/deadlines/response"),
    ({"deadlines": {"reponse": {"P1": "1m"}}}, "/deadlines"),
    ({"calendar": {"hours": {"start": "9am"}}}, "/calendar/hours/start"),
    ({"prometheus": {"url": "prometheus:9090"}}, "/prometheus/url"),
    ({"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"timelineLimit": 500}, "/timelineLimit"),
    ({"crds": {"install": "yes", "keep": True}}, "/crds/install"),
    ({"replicas": 2}, "replicas"),
    ({"alertmanager": {"enabeld": True}}, "/alertmanager"),
    ({"alertmanager": {"enabled": "yes"}}, "/alertmanager/enabled"),
    ({"alertmanager": {"maxAlerts": 50}}, "/alertmanager/maxAlerts"),
    ({"alertmanager": {"path": "webhooks"}}, "/alertmanager/path"),
    ({"alertmanager": {"mappings": [{"name": "x", "priority": "P5"}]}}, "/alertmanager/mappings/0/priority"),
    ({"alertmanager": {"mappings": [{"matcher": ["a=\"b\""]}]}}, "/alertmanager/mappings/0"),
    ({"alertmanagerReceiver": {"service": {"type": "Ingress"}}}, "/alertmanagerReceiver/service/type"),
    ({"alertmanagerReceiver": {"tokenSecret": {"nmae": "x"}}}, "/alertmanagerReceiver/tokenSecret"),
])
def test_values_schema_refuses_bad_values(values, message):
    result = chart.template(values=values, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


# -- the Alertmanager webhook receiver ----------------------------------------------------------------

def test_alertmanager_receiver_is_off_by_default():
    docs = chart.documents(chart.render())
    assert not [d for d in chart.by_kind(docs, "Service") if d["metadata"]["name"].endswith("-alertmanager")]
    pod = chart.one(docs, "Deployment")["spec"]["template"]["spec"]
    assert "alertmanager" not in {p["name"] for p in pod["containers"][0]["ports"]}
    assert "alertmanager-token" not in {v["name"] for v in pod["volumes"]}
    assert "alertmanager" not in rendered_config(docs)


def test_alertmanager_receiver_render_has_port_service_and_token_mount():
    from incident_operator.domain.alerts.alertmanager import parse_settings

    docs = chart.documents(chart.render(values=ALERTMANAGER))
    pod_template = chart.one(docs, "Deployment")["spec"]["template"]
    pod = pod_template["spec"]
    [container] = pod["containers"]
    ports = {p["name"]: p for p in container["ports"]}
    assert ports["alertmanager"] == {"name": "alertmanager", "containerPort": 8082, "protocol": "TCP"}

    service = chart.one(docs, "Service", "-alertmanager")
    assert service["metadata"]["name"] == "incident-operator-alertmanager"
    assert service["metadata"]["namespace"] == "incident-operator"
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "alertmanager", "port": 8082, "targetPort": "alertmanager",
                                         "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= pod_template["metadata"]["labels"].items()

    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["alertmanager-token"] == {"name": "alertmanager-token", "mountPath": TOKEN_DIR, "readOnly": True}
    assert volumes["alertmanager-token"]["secret"] == {
        "secretName": "am-webhook", "items": [{"key": "bearer", "path": "token"}], "defaultMode": 0o440}

    raw = rendered_config(docs)["alertmanager"]
    assert raw["bearerTokenFile"] == f"{TOKEN_DIR}/token"
    assert raw["namespace"] == "incident-operator"  # cluster-wide: the release namespace
    # Everything else is passed through as it is.
    assert {k: v for k, v in raw.items() if k not in ("bearerTokenFile", "namespace")} == ALERTMANAGER["alertmanager"]
    config = OperatorConfig.from_dict(rendered_config(docs))
    settings = config.alertmanager_for(config.namespaces)  # what the operator checks at start-up
    assert settings.enabled and settings.port == 8082 and settings.path == "/webhooks/alertmanager"
    assert settings.bearer_token_file == f"{TOKEN_DIR}/token" and settings.namespace == "incident-operator"
    assert settings.resolve_on_resolved and settings.max_alerts == 10 and settings.max_body_bytes == 2097152
    assert [m.name for m in settings.mappings] == ["database", "paging"]
    assert parse_settings(raw).mappings[1].priorities["warning"] == "P4"

    # Custom port, path, Service and watched namespaces: the first watched one is the default.
    values = {**ALERTMANAGER, "watchNamespaces": ["support", "billing"],
              "alertmanager": {"enabled": True, "port": 9443, "path": "/hooks/am"},
              "alertmanagerReceiver": {"tokenSecret": {"name": "am-webhook"},
                                       "service": {"type": "NodePort", "port": 80, "annotations": {"a": "b"}}}}
    docs = chart.documents(chart.render(release="ops", namespace="ops", values=values))
    container = chart.one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["alertmanager"] == 9443
    service = chart.one(docs, "Service", "-alertmanager")
    assert service["metadata"]["name"] == "ops-incident-operator-alertmanager"
    assert service["metadata"]["annotations"] == {"a": "b"}
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["port"] == 80 and service["spec"]["ports"][0]["targetPort"] == "alertmanager"
    volume = {v["name"]: v for v in chart.one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volume["alertmanager-token"]["secret"]["items"] == [{"key": "token", "path": "token"}]
    config = OperatorConfig.from_dict(rendered_config(docs))
    settings = config.alertmanager_for(config.namespaces)
    assert settings.namespace == "support" and settings.port == 9443 and settings.path == "/hooks/am"
    # An explicit, watched namespace is kept.
    values["alertmanager"] = {"enabled": True, "namespace": "billing"}
    config = OperatorConfig.from_dict(rendered_config(chart.documents(chart.render(values=values))))
    assert config.alertmanager_for(config.namespaces).namespace == "billing"
    # The receiver needs no RBAC beyond what the operator has: the same Roles as without it.
    plain = chart.documents(chart.render(release="ops", namespace="ops", values={"watchNamespaces": ["support", "billing"]}))
    for kind in ("ClusterRole", "Role"):
        assert [d["rules"] for d in chart.by_kind(docs, kind)] == [d["rules"] for d in chart.by_kind(plain, kind)]


@pytest.mark.parametrize("values,message", [
    ({"alertmanager": {"enabled": True}},
     "alertmanager.enabled is true but alertmanagerReceiver.tokenSecret.name is empty"),
    ({**ALERTMANAGER, "watchNamespaces": ["support"], "alertmanager": {"enabled": True, "namespace": "billing"}},
     'alertmanager.namespace "billing" is not in watchNamespaces (support)'),
    ({**ALERTMANAGER, "alertmanager": {"enabled": True, "bearerTokenFile": "/token"}},
     "alertmanager.bearerTokenFile and alertmanager.tokenSecretRef are set by the chart"),
    ({**ALERTMANAGER, "alertmanager": {"enabled": True, "port": 8081}},
     "alertmanager.port 8081 is already used by metrics.port or health.port"),
], ids=["no-token-secret", "namespace-not-watched", "token-file-set", "port-clash"])
def test_alertmanager_receiver_misconfiguration_fails_the_render(values, message):
    result = chart.template(values=values, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_notes_print_the_webhook_url(tmp_path):
    values_file = tmp_path / "values.yaml"
    values_file.write_text(json.dumps(ALERTMANAGER))
    result = chart.helm("install", "incident-operator", str(chart.CHART), "--namespace", "ops",
                        "--dry-run=client", "--values", str(values_file))
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "http://incident-operator-alertmanager.ops.svc:8082/webhooks/alertmanager" in notes
    assert "Secret ops/am-webhook" in notes
    plain = chart.helm("install", "incident-operator", str(chart.CHART), "--namespace", "ops", "--dry-run=client")
    assert "/webhooks/alertmanager" not in plain.stdout.split("NOTES:", 1)[1]


# -- RBAC --------------------------------------------------------------------------------------------

def rule_reasons(text: str) -> list[tuple[str, str]]:
    """(first line of the comment above each RBAC rule, the rule's first line) for every rule in ``text``."""
    lines = text.splitlines()
    found = []
    for index, line in enumerate(lines):
        if re.match(r"^\s*- apiGroups:", line):
            block = []
            back = index - 1
            while back >= 0 and lines[back].strip().startswith("#"):
                block.insert(0, lines[back].strip())
                back -= 1
            found.append((block[0] if block else "", line.strip()))
    return found


@pytest.mark.parametrize("values", [None, {"watchNamespaces": ["support"], "templates": {"namespace": "comms"}}],
                         ids=["cluster-wide", "watch-namespaces"])
def test_every_rbac_rule_says_why(values):
    text = chart.template(values=values, extra=("--show-only", "templates/rbac.yaml")).stdout
    reasons = rule_reasons(text)
    assert len(reasons) >= 5
    for reason, rule in reasons:
        assert re.match(r"# (Framework|Application|Framework \+ Application):", reason), (reason, rule)


def test_rbac_cluster_wide_is_least_privilege():
    docs = chart.documents(chart.render())
    rules = rules_of(docs, "ClusterRole", "incident-operator")
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
        assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
    # Every kind of crds/ is watched and patched, and its status written.
    for crd in crd_sources().values():
        plural = crd["spec"]["names"]["plural"]
        for verb in ("list", "watch", "patch"):
            assert granted(rules, GROUP, plural, verb), (plural, verb)
        assert granted(rules, GROUP, f"{plural}/status", "patch"), plural
    assert granted(rules, "apiextensions.k8s.io", "customresourcedefinitions", "watch")
    assert granted(rules, GROUP, "incidents", "create")
    assert granted(rules, "", "events", "create")
    assert {v for r in rules if "secrets" in r["resources"] for v in r["verbs"]} == {"get"}
    assert {v for r in rules if "configmaps" in r["resources"] for v in r["verbs"]} == {"get", "create", "update"}
    # kopf lists Namespaces only when given a namespace list; cluster-wide it does not.
    assert not any("namespaces" in r["resources"] for r in rules)
    binding = chart.one(docs, "ClusterRoleBinding")
    account = chart.one(docs, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}]


def test_watch_namespaces_renders_roles_per_namespace():
    values = {"watchNamespaces": ["support", "billing"]}
    docs = chart.documents(chart.render(namespace="ops", values=values))
    assert rendered_config(docs)["namespaces"] == ["support", "billing"]
    cluster_rules = rules_of(docs, "ClusterRole", "-discovery")
    assert {res for r in cluster_rules for res in r["resources"]} == {"customresourcedefinitions", "namespaces"}
    assert {v for r in cluster_rules for v in r["verbs"]} <= {"get", "list", "watch"}
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in chart.by_kind(docs, "Role")}
    bindings = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in chart.by_kind(docs, "RoleBinding")}
    assert roles == bindings == {("support", "incident-operator"), ("billing", "incident-operator"),
                                 ("ops", "incident-operator-shared")}
    namespaced = rules_of(docs, "Role", "incident-operator", "support")
    # The same rules as cluster-wide, but the namespaced KopfPeering instead of the ClusterKopfPeering.
    def without_peering(rules):
        return [r for r in rules if r["apiGroups"] != ["kopf.dev"]]
    assert without_peering(namespaced) == without_peering(rules_of(chart.documents(chart.render()), "ClusterRole",
                                                                   "incident-operator")[1:])
    assert [r["resources"] for r in namespaced if r["apiGroups"] == ["kopf.dev"]] == [["kopfpeerings"]]
    # The release namespace holds shared configuration: read-only, and no listing of Secrets.
    shared = rules_of(docs, "Role", "-shared", "ops")
    assert {(res, v) for r in shared for res in r["resources"] for v in r["verbs"]} == {
        ("escalationpolicies", "list"), ("secrets", "get"), ("configmaps", "get")}
    assert [d["metadata"]["name"] for d in chart.by_kind(docs, "ClusterRoleBinding")] == ["incident-operator-discovery"]
    # A watched release namespace needs no separate shared Role.
    docs = chart.documents(chart.render(namespace="support", values=values))
    assert not [d for d in chart.by_kind(docs, "Role") if d["metadata"]["name"].endswith("-shared")]


# -- CRDs, dashboards, alerts: one source of truth ------------------------------------------------------

def test_chart_crds_equal_crds_dir_and_are_kept_on_uninstall():
    sources = crd_sources()
    docs = chart.documents(chart.render())
    rendered = {d["metadata"]["name"]: d for d in chart.by_kind(docs, "CustomResourceDefinition")
                if d["spec"]["group"] == GROUP}  # not kopf's peering CRDs (test_upgrades.py)
    assert rendered.keys() == sources.keys()
    for name, crd in rendered.items():
        metadata = dict(crd["metadata"])
        assert metadata.pop("annotations") == {"helm.sh/resource-policy": "keep"}
        assert metadata.pop("labels")["app.kubernetes.io/managed-by"] == "Helm"
        assert {**crd, "metadata": metadata} == sources[name], f"chart CRD {name} differs from crds/"
    not_kept = chart.documents(chart.render(values={"crds": {"install": True, "keep": False}}))
    assert all("annotations" not in d["metadata"] for d in chart.by_kind(not_kept, "CustomResourceDefinition")
               if d["spec"]["group"] == GROUP)
    assert not [d for d in chart.by_kind(chart.documents(chart.render(values={"crds": {"install": False, "keep": True}})),
                                         "CustomResourceDefinition") if d["spec"]["group"] == GROUP]


def run_sync(*args: str, repo: Path = REPO) -> subprocess.CompletedProcess:
    # tools/ (the workshop, not installed) from the checkout; incident_operator from operator/.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "operator")])}
    return subprocess.run([sys.executable, "-m", "tools.sync_crds", "--helm", chart.helm_binary(),
                           "--repo", str(repo), *args], capture_output=True, text=True, env=env, timeout=120)


def test_generated_copies_are_in_sync_with_their_sources():
    result = run_sync("--check")
    assert result.returncode == 0, f"run `make crds`:\n{result.stderr}"
    assert (REPO / "operator" / "incident_operator" / "crds").is_dir()
    for source in CRDS.glob("*.yaml"):
        assert (REPO / "operator" / "incident_operator" / "crds" / source.name).read_bytes() == source.read_bytes()
    for source, copy in ((DASHBOARD, "files/dashboards/incident-operator.json"),
                         (ALERTS, "files/alerts/incident-operator.rules.yaml")):
        if source.exists():
            assert (chart.CHART / copy).read_bytes() == source.read_bytes(), copy
        else:
            assert not (chart.CHART / copy).exists(), copy


def test_install_yaml_is_the_chart_rendered_with_default_values():
    from tools.sync_crds import plain_manifests

    text = INSTALL_YAML.read_text()
    assert text.startswith("# incident-operator ")
    docs = chart.documents(text)
    assert docs == chart.documents(plain_manifests(chart.render("incident-operator", "incident-operator")))
    # `kubectl apply -f` of this one file works in an empty cluster: its Namespace first, and no
    # Helm-managed labels (a later `helm install` would otherwise see objects that claim Helm).
    assert docs[0] == {"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": "incident-operator", "labels": {"app.kubernetes.io/name": "incident-operator"}}}
    assert "managed-by: Helm" not in text and "helm.sh/chart" not in text
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] in ("Deployment", "ServiceAccount")} == {
        "incident-operator"}


def test_sync_check_lists_drifted_files_and_sync_repairs_them(tmp_path):
    repo = tmp_path / "repo"
    for part in ("crds", "charts", "dashboards", "alerts", "manifests", "operator/incident_operator/crds"):
        if (REPO / part).exists():
            shutil.copytree(REPO / part, repo / part)
    assert run_sync("--check", repo=repo).returncode == 0
    # Someone edits a copy instead of the source, and a source changes.
    copy = repo / "charts/incident-operator/templates/crds/incidents.yaml"
    copy.write_text(copy.read_text().replace("Effective priority", "Edited by hand"))
    source = repo / "crds/detectionrules.yaml"
    source.write_text(source.read_text().replace("Which detector decides", "Which detector (edited) decides"))
    (repo / "charts/incident-operator/templates/crds/retired.yaml").write_text("# a CRD whose source is gone\n")
    result = run_sync("--check", repo=repo)
    assert result.returncode == 1
    for expected in ("charts/incident-operator/templates/crds/incidents.yaml",
                     "charts/incident-operator/templates/crds/detectionrules.yaml",
                     "charts/incident-operator/templates/crds/retired.yaml",
                     "operator/incident_operator/crds/detectionrules.yaml",
                     "manifests/install.yaml"):
        assert expected in result.stderr, (expected, result.stderr)
    assert "incidents.yaml" not in result.stderr.replace("templates/crds/incidents.yaml", "")
    assert run_sync(repo=repo).returncode == 0
    assert run_sync("--check", repo=repo).returncode == 0
    assert "Which detector (edited) decides" in (repo / "manifests/install.yaml").read_text()
    assert not (repo / "charts/incident-operator/templates/crds/retired.yaml").exists()


def test_prometheus_rule_servicemonitor_and_dashboard(tmp_path):
    if not ALERTS.exists() or not DASHBOARD.exists():
        pytest.skip("alerts/ or dashboards/ not written yet")
    docs = chart.documents(chart.render(values=ALL_OPTIONAL))
    rule = chart.one(docs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text())
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    promtool = shutil.which("promtool")
    if promtool:
        result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    dashboard = chart.one(docs, "ConfigMap", "-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["incident-operator.json"]) == json.loads(DASHBOARD.read_text())
    monitor = chart.one(docs, "ServiceMonitor")
    service = chart.one(docs, "Service", "-metrics")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    # The alerts select job=~".*incident-operator.*": the job label comes from the chart name.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "incident-operator"


# -- against the real API server ---------------------------------------------------------------------

@pytest.mark.parametrize("values", [{"dashboards": {"enabled": True}}, "watch", "alertmanager"],
                         ids=["defaults", "watch-namespaces", "alertmanager"])
def test_rendered_chart_passes_server_side_dry_run(kubeconfig, namespace, values):
    if values == "watch":
        values = {"watchNamespaces": [namespace]}
    elif values == "alertmanager":
        values = {**ALERTMANAGER, "watchNamespaces": [namespace]}
    text = chart.render(release="dry-" + uuid.uuid4().hex[:5], namespace=namespace, values=values)
    result = Kubectl(kubeconfig).run("apply", "--dry-run=server", "-f", "-", input=text, namespaced=False)
    applied = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(chart.documents(text)), result.stdout


def token_kubeconfig(admin_kubeconfig: Path, token: str, path: Path) -> Path:
    """A kubeconfig for the same API server (server + CA of the admin one) that authenticates with ``token``."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cluster = dict(next(c for c in admin["clusters"] if c["name"] == context["cluster"])["cluster"])
    ca = cluster.get("certificate-authority")
    if ca and not os.path.isabs(ca):
        cluster["certificate-authority"] = str((admin_kubeconfig.parent / ca).resolve())
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": "incident-operator", "user": {"token": token}}],
        "contexts": [{"name": "incident-operator", "context": {"cluster": "cluster", "user": "incident-operator"}}],
        "current-context": "incident-operator",
    }))
    return path


def install_rbac(admin: Kubectl, docs: list[dict], kinds: set[str]) -> str:
    """Applies the chart's objects of ``kinds``; returns the ServiceAccount's name."""
    selected = [d for d in docs if d["kind"] in kinds]
    admin.run("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(selected), namespaced=False)
    return chart.one(docs, "ServiceAccount")["metadata"]["name"]


def mint_token(admin: Kubectl, namespace: str, account: str) -> str:
    return admin.run("create", "token", account, "-n", namespace, "--duration=2h", namespaced=False).stdout.strip()


def can_i(as_operator: Kubectl, verb: str, resource: str, namespace: str | None = None,
          subresource: str | None = None) -> bool:
    args = ["auth", "can-i", verb, resource]
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    if subresource:
        args.append(f"--subresource={subresource}")
    result = as_operator.run(*args, check=False, namespaced=False)
    assert result.stdout.strip() in ("yes", "no"), result.stdout + result.stderr
    return result.stdout.strip() == "yes"


def chart_values(prometheus, metrics_port: int, health_port: int, **more) -> dict:
    return {"deadlines": FAST_DEADLINES, "prometheus": {"url": prometheus.url},
            "metrics": {"port": metrics_port}, "health": {"port": health_port}, **more}


def apply_secret(kubectl: Kubectl, name: str, data: dict[str, str]) -> None:
    kubectl.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
                   "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})


def escalation_policy(name: str, secret: str) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EscalationPolicy", "metadata": {"name": name},
            "spec": {"levels": [{"name": "on-call", "channels": [{"name": "hook", "secretRef": {"name": secret, "key": "url"}}]}]}}


def detection_rule(name: str, query: str, **spec) -> dict:
    body = {"query": query, "interval": "1s", "for": "0s", "cooldown": "3s", "recoveryWindow": "10m",
            "detector": {"type": "threshold", "threshold": {"value": 15}}, "priority": {"default": "P3"},
            "incident": {"title": "Spike", "service": "auth", "team": "support"}}
    body.update(spec)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DetectionRule", "metadata": {"name": name}, "spec": body}


def drive_the_operator(kubectl: Kubectl, receiver, policy_kubectl: Kubectl | None = None) -> None:
    """Incident create -> escalation -> acknowledge, DetectionRules valid (with a bearer-token Secret)
    and Invalid, an EscalationPolicy whose channel Secret is read and used; asserts every status write."""
    from incident_operator.names import drafts_configmap_name

    policy_kubectl = policy_kubectl or kubectl
    apply_secret(policy_kubectl, "oncall-hook", {"url": receiver.url("/hook")})
    policy_kubectl.apply(escalation_policy("default", "oncall-hook"))
    apply_secret(kubectl, "prom-token", {"token": "s3cr3t"})

    kubectl.apply(incident("db-down", priority="P1", service="auth", team="support"))
    kubectl.apply(detection_rule("broken", "sum(rate(support_tickets_created_total[5m]"))  # unbalanced: Invalid
    kubectl.apply(detection_rule("login", 'sum by (topic) (increase(support_tickets_created_total{topic="none"}[10s]))',
                                 prometheus={"bearerTokenSecretRef": {"name": "prom-token", "key": "token"}}))

    def status(kind, name, predicate, timeout=30, what=""):
        def check():
            obj = kubectl.get(kind, name)
            return obj if obj and predicate(obj.get("status") or {}, obj) else None
        return wait_until(check, timeout, interval=0.2, what=what or f"{kind}/{name} status")

    obj = status("incident", "db-down", lambda s, o: (s.get("escalation") or {}).get("level", 0) >= 1, 30,
                 "escalation to level 1")
    assert condition(obj, "ResponseOnTime")["reason"] == "DeadlineBreached"
    # Incidents carry no kopf bookkeeping (one operator queue handles them: no finalizer to block a
    # deletion when the operator is gone, no annotation writes).
    assert not obj["metadata"].get("finalizers")
    assert not any(key.startswith("incidents.buttercream.io/kopf") or "last-handled" in key
                   for key in obj["metadata"].get("annotations", {}))
    kubectl.patch("incident", "db-down", {"spec": {"state": "Acknowledged", "owner": "alice"}})
    obj = status("incident", "db-down", lambda s, o: s.get("acknowledgedAt"), 30, "acknowledgedAt")
    assert condition(obj, "Acknowledged")["status"] == "True"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    events = json.loads(kubectl.run("get", "events", "--field-selector",
                                    "involvedObject.name=db-down,reason=Escalated", "-o", "json").stdout)["items"]
    assert events, "the Escalated Event was not posted"

    broken = status("detectionrule", "broken", lambda s, o: condition(o, "Ready"), 30, "broken rule Ready")
    assert condition(broken, "Ready")["status"] == "False" and condition(broken, "Ready")["reason"] == "Invalid"
    # kopf's own bookkeeping on rules (a patch of the object itself: its finalizer for the evaluator
    # daemon, under our prefix) went through too.
    assert any(f.startswith("incidents.buttercream.io/") for f in broken["metadata"].get("finalizers", []))
    # The valid rule read its bearer-token Secret and evaluated against the real Prometheus.
    login = status("detectionrule", "login", lambda s, o: (condition(o, "Ready") or {}).get("reason") == "Evaluating",
                   30, "login rule Evaluating")
    assert condition(login, "Ready")["status"] == "True"

    # The escalation was handed off through the channel URL read from the policy's Secret.
    wait_until(lambda: receiver.received("/hook"), 30, what="a hand-off notification at the receiver")
    # Customer-communication drafts were written to a ConfigMap owned by the incident.
    drafts = wait_until(lambda: kubectl.get("configmap", drafts_configmap_name("db-down")), 30, what="drafts ConfigMap")
    assert drafts["metadata"]["ownerReferences"][0]["name"] == "db-down"


def assert_nothing_denied(log: str) -> None:
    denied = [line for line in log.splitlines() if DENIED.search(line)]
    assert not denied, "the operator was denied something:\n" + "\n".join(denied[:20])


@pytest.fixture
def receiver():
    from tests.support.receiver import Receiver

    server = Receiver().start()
    yield server
    server.stop()


@pytest.mark.skipif(EXISTING_CLUSTER, reason="installs cluster-wide RBAC into a throwaway control plane of its own")
def test_operator_runs_cluster_wide_under_the_charts_service_account(tmp_path, prometheus, receiver):
    """The default install, as `kubectl apply -f` of the rendered chart into an empty cluster with RBAC on."""
    from tools.devenv.controlplane import ControlPlane
    from tools.devenv.operator import OperatorProcess

    control_plane = ControlPlane(tmp_path / "controlplane").start()
    operator = None
    try:
        admin = Kubectl(control_plane.kubeconfig)
        release_ns, work_ns = "incident-operator", "support"
        for name in (release_ns, work_ns):
            admin.run("create", "namespace", name, namespaced=False)
        metrics_port, health_port = free_port(), free_port()
        docs = chart.documents(chart.render("incident-operator", release_ns,
                                            chart_values(prometheus, metrics_port, health_port)))
        # Everything the chart holds, CRDs included (nothing runs the Deployment: no kubelet here).
        admin.run("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(docs), namespaced=False)
        for crd in chart.by_kind(docs, "CustomResourceDefinition"):
            admin.run("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=60s",
                      namespaced=False)
        account = chart.one(docs, "ServiceAccount")["metadata"]["name"]
        kubeconfig = token_kubeconfig(control_plane.kubeconfig, mint_token(admin, release_ns, account),
                                      tmp_path / "operator.kubeconfig")

        # Least privilege, as the API server sees it.
        as_operator = Kubectl(kubeconfig)
        assert can_i(as_operator, "patch", "incidents", work_ns)
        assert can_i(as_operator, "create", "incidents", work_ns)
        assert can_i(as_operator, "patch", "incidents", work_ns, subresource="status")
        assert can_i(as_operator, "patch", "detectionrules", work_ns, subresource="status")
        assert can_i(as_operator, "get", "secrets", work_ns)
        assert can_i(as_operator, "create", "events", work_ns)
        assert can_i(as_operator, "watch", "customresourcedefinitions")
        for verb, resource, subresource in [
            ("delete", "namespaces", None), ("create", "namespaces", None), ("list", "namespaces", None),
            ("list", "pods", None), ("create", "pods", None), ("create", "pods", "exec"),
            ("list", "secrets", None), ("watch", "secrets", None), ("create", "secrets", None),
            ("update", "secrets", None), ("delete", "incidents", None), ("update", "incidents", None),
            ("delete", "configmaps", None), ("list", "configmaps", None), ("create", "serviceaccounts", "token"),
            ("create", "clusterrolebindings", None), ("escalate", "clusterroles", None),
            ("update", "customresourcedefinitions", None), ("delete", "customresourcedefinitions", None),
            ("get", "nodes", None), ("*", "*", None),
        ]:
            assert not can_i(as_operator, verb, resource, work_ns, subresource), (verb, resource, subresource)

        config = yaml.safe_load(chart.one(docs, "ConfigMap", "-config")["data"]["config.yaml"])
        assert "namespaces" not in config  # cluster-wide
        operator = OperatorProcess(kubeconfig, config=config, namespaces=[], workdir=tmp_path, name="chart-sa",
                                   extra_env={"POD_NAMESPACE": release_ns}).start()
        drive_the_operator(Kubectl(control_plane.kubeconfig, work_ns), receiver)
        assert operator.alive()
        assert_nothing_denied(operator.log())
    finally:
        if operator is not None:
            operator.stop()
        control_plane.stop()


def test_operator_runs_in_watched_namespaces_under_the_charts_service_account(
        kubeconfig, namespace, tmp_path, prometheus, receiver, start_operator):
    """watchNamespaces: Roles in the watched namespace, shared EscalationPolicies in the release namespace."""
    admin = Kubectl(kubeconfig)
    release_ns = "ops-" + uuid.uuid4().hex[:6]
    admin.run("create", "namespace", release_ns, namespaced=False)
    release = "rb-" + uuid.uuid4().hex[:5]
    metrics_port, health_port = free_port(), free_port()
    docs = chart.documents(chart.render(release, release_ns, chart_values(
        prometheus, metrics_port, health_port, watchNamespaces=[namespace])))
    cluster_scoped = [(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    try:
        account = install_rbac(admin, docs, {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"})
        kubeconfig_sa = token_kubeconfig(kubeconfig, mint_token(admin, release_ns, account), tmp_path / "operator.kubeconfig")

        as_operator = Kubectl(kubeconfig_sa)
        assert can_i(as_operator, "patch", "incidents", namespace, subresource="status")
        assert can_i(as_operator, "create", "configmaps", namespace)
        assert can_i(as_operator, "list", "escalationpolicies", release_ns)
        assert can_i(as_operator, "get", "secrets", release_ns)
        assert can_i(as_operator, "watch", "namespaces")
        assert not can_i(as_operator, "list", "incidents")  # all namespaces
        assert not can_i(as_operator, "list", "incidents", "default")
        assert not can_i(as_operator, "get", "secrets", "default")
        assert not can_i(as_operator, "list", "secrets", release_ns)
        assert not can_i(as_operator, "patch", "escalationpolicies", release_ns)
        assert not can_i(as_operator, "create", "configmaps", release_ns)
        assert not can_i(as_operator, "delete", "namespaces", namespace)
        assert not can_i(as_operator, "list", "pods", namespace)
        assert not can_i(as_operator, "list", "secrets", namespace)

        config = rendered_config(docs)
        assert config["namespaces"] == [namespace]
        operator = start_operator(config, name="chart-sa-ns",
                                  extra_env={"KUBECONFIG": str(kubeconfig_sa), "POD_NAMESPACE": release_ns})
        # No EscalationPolicy in the incident's namespace: the shared one of the release namespace is used.
        drive_the_operator(Kubectl(kubeconfig, namespace), receiver, policy_kubectl=Kubectl(kubeconfig, release_ns))
        assert operator.alive()
        assert_nothing_denied(operator.log())
    finally:
        for kind, name in cluster_scoped:
            admin.run("delete", kind.lower(), name, "--ignore-not-found", check=False, namespaced=False)
        admin.run("delete", "namespace", release_ns, "--wait=false", check=False, namespaced=False)


def test_notes_credentials_file_is_the_path_the_chart_readme_documents():
    """NOTES.txt prints the Alertmanager receiver for the given token Secret; the chart README shows the
    same line for the Secret it uses (incident-operator-webhook, key token)."""
    result = chart.helm("install", "incident-operator", str(chart.CHART), "--dry-run=client", "--namespace",
                        "incident-operator", "--set", "alertmanager.enabled=true",
                        "--set", "alertmanagerReceiver.tokenSecret.name=incident-operator-webhook")
    notes = result.stdout.split("NOTES:", 1)[1]
    [line] = [text.strip() for text in notes.splitlines() if text.strip().startswith("credentials_file:")]
    assert line == "credentials_file: /etc/alertmanager/secrets/incident-operator-webhook/token"
    readme = (chart.CHART / "README.md").read_text()
    assert line in readme
    assert line in (REPO / "docs" / "alertmanager.md").read_text()
