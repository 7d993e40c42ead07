"""Safe upgrades and RBAC for people, against the real API server.

- A typo in values never takes the running operator down while helm reports success: what the
  values schema can refuse, `helm upgrade` refuses (the release stays at its revision, the
  Deployment untouched); what only the operator can judge (a time zone, a holiday country) the
  check-config init container refuses with one line, and the rollout (RollingUpdate,
  maxUnavailable 0) keeps the old pod until the new one is Ready. There is no kubelet here: the
  init container's command is run as a process on the configuration read back from the cluster.
- kopf peering: two operators with peering on, only the newest acts; the older one resumes when
  the newer one stops.
- The ClusterRoles for people: aggregation labels that the built-in roles select, and their rules
  as `kubectl auth can-i --as` sees them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
import yaml

from tools.devenv.operator import OperatorProcess
from tests.support import helm as chart
from tests.support.kubectl import Kubectl, incident
from tools.devenv.processes import wait_until


def apply_peering_crds(admin: Kubectl) -> None:
    """kopf's peering CRDs as the chart renders them (cluster-scoped, shared: applied, never deleted)."""
    docs = chart.documents(chart.render())
    crds = [d for d in chart.by_kind(docs, "CustomResourceDefinition") if d["spec"]["group"] == "kopf.dev"]
    assert sorted(d["metadata"]["name"] for d in crds) == [
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    ]
    admin.run(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        input=yaml.safe_dump_all(crds),
        namespaced=False,
    )
    for crd in crds:
        admin.run(
            "wait",
            "--for=condition=Established",
            f"crd/{crd['metadata']['name']}",
            "--timeout=60s",
            namespaced=False,
        )


# -- the rollout, as rendered ---------------------------------------------------------------------------


def test_rollout_keeps_the_old_pod_until_the_checked_new_one_is_ready():
    docs = chart.documents(chart.render())
    deployment = chart.one(docs, "Deployment")
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    pod = deployment["spec"]["template"]["spec"]
    [check] = pod["initContainers"]
    [operator] = pod["containers"]
    assert check["image"] == operator["image"] and check["command"] == operator["command"] == [
        "incident-operator"
    ]
    [config_arg] = [a for a in operator["args"] if a.startswith("--config=")]
    assert check["args"] == ["check-config", config_arg]
    assert {m["name"] for m in check["volumeMounts"]} == {"config", "tmp"}  # no API token in the check
    assert check["securityContext"] == operator["securityContext"]
    # The API token reaches the operator container only.
    assert pod["automountServiceAccountToken"] is False
    assert "kube-api-access" in {m["name"] for m in operator["volumeMounts"]}
    projected = {v["name"]: v for v in pod["volumes"]}["kube-api-access"]["projected"]["sources"]
    assert any("serviceAccountToken" in s for s in projected)
    # Peering on by default: the operator joins a peering named after the release.
    assert f"--peering={deployment['metadata']['name']}" in operator["args"]
    cluster_role = chart.one(docs, "ClusterRole", "incident-operator")
    assert any(
        "kopf.dev" in r["apiGroups"] and "clusterkopfpeerings" in r["resources"]
        for r in cluster_role["rules"]
    )

    off = chart.documents(chart.render(values={"peering": {"enabled": False, "installCRDs": True}}))
    assert not any(
        a.startswith("--peering")
        for a in chart.one(off, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    assert not [d for d in chart.by_kind(off, "CustomResourceDefinition") if d["spec"]["group"] == "kopf.dev"]
    namespaced = chart.documents(chart.render(values={"watchNamespaces": ["support"]}))
    role = [d for d in chart.by_kind(namespaced, "Role") if d["metadata"]["namespace"] == "support"][0]
    assert any("kopf.dev" in r["apiGroups"] and r["resources"] == ["kopfpeerings"] for r in role["rules"])


# -- helm upgrade with a typo ---------------------------------------------------------------------------

# Refused by values.schema.json at `helm upgrade` (value, the schema path helm names).
REFUSED_AT_RENDER = [
    (["--set", "deadlines.response.P1=5minutes"], "/deadlines/response/P1"),
    (["--set", "deadlines.resolution.P3=3 days"], "/deadlines/resolution/P3"),
    (["--set", "deadlines.escalationInterval.P1=5 minutes"], "/deadlines/escalationInterval/P1"),
    (["--set", "calendar.workdays={Mon,Fryday}"], "/calendar/workdays/1"),
    (["--set", "calendar.timezone=Europe Berlin"], "/calendar/timezone"),
    (["--set", "deadlines.response.P5=5m"], "/deadlines/response"),
]
# Passes the schema (its shape is right); the operator's own check refuses it (key, what the message names).
REFUSED_BY_CHECK_CONFIG = [
    (["--set", "calendar.timezone=Europe/Berln"], "calendar.timezone"),
    (["--set", "calendar.holidays.country=XX"], "calendar.holidays.country"),
    (["--set", "metrics.newSeriesDelay=5minutes"], "metrics.newSeriesDelay"),
]


@pytest.fixture
def release(kubeconfig, namespace):
    """A release installed into this test's namespace (CRDs are the session's: crds.install=false)."""
    admin = Kubectl(kubeconfig)
    apply_peering_crds(admin)
    name = "up-" + uuid.uuid4().hex[:5]
    helm = ["--kubeconfig", str(kubeconfig), "--namespace", namespace]
    chart.helm(
        "install",
        name,
        str(chart.CHART),
        *helm,
        "--set",
        "crds.install=false",
        "--set",
        "peering.installCRDs=false",
        "--set",
        "calendar.timezone=Europe/Berlin",
    )
    yield name, helm
    chart.helm("uninstall", name, *helm, check=False)
    for kind in ("clusterrole", "clusterrolebinding"):
        admin.run(
            "delete",
            kind,
            "-l",
            f"app.kubernetes.io/instance={name}",
            "--ignore-not-found",
            check=False,
            namespaced=False,
        )


def history(name: str, helm: list[str]) -> list[dict]:
    return json.loads(chart.helm("history", name, *helm, "-o", "json").stdout)


def test_helm_upgrade_refuses_what_the_schema_can_and_the_release_stays(release, kubectl):
    name, helm = release
    before = kubectl.get("deployment", f"{name}-incident-operator")
    for args, path in REFUSED_AT_RENDER:
        result = chart.helm("upgrade", name, str(chart.CHART), *helm, "--reuse-values", *args, check=False)
        assert result.returncode != 0, args
        assert path in result.stderr, (args, result.stderr)
    assert [h["revision"] for h in history(name, helm)] == [1]
    after = kubectl.get("deployment", f"{name}-incident-operator")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


def test_what_only_the_operator_can_judge_stops_in_the_init_container(release, kubectl, tmp_path):
    name, helm = release
    for args, key in REFUSED_BY_CHECK_CONFIG:
        chart.helm("upgrade", name, str(chart.CHART), *helm, "--reuse-values", *args)
        deployment = kubectl.get("deployment", f"{name}-incident-operator")
        pod = deployment["spec"]["template"]["spec"]
        # The rollout that this upgrade starts keeps the old pod (maxUnavailable 0) until the new one
        # is Ready, and the new one first runs check-config on the configuration now in the cluster.
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        [check] = pod["initContainers"]
        configmap = kubectl.get("configmap", f"{name}-incident-operator-config")
        mount = next(m for m in check["volumeMounts"] if m["name"] == "config")["mountPath"]
        (tmp_path / "config.yaml").write_text(configmap["data"]["config.yaml"])
        argv = [a.replace(mount, str(tmp_path)) for a in check["args"]]
        result = subprocess.run(
            [sys.executable, "-m", "incident_operator", *argv], capture_output=True, text=True
        )
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("incident-operator: ") and key in lines[0], (
            args,
            lines,
        )
        assert "Traceback" not in result.stderr
        # Back to a good value: check-config passes again.
        chart.helm(
            "upgrade",
            name,
            str(chart.CHART),
            *helm,
            "--reset-values",
            "--set",
            "crds.install=false",
            "--set",
            "peering.installCRDs=false",
        )
        (tmp_path / "config.yaml").write_text(
            kubectl.get("configmap", f"{name}-incident-operator-config")["data"]["config.yaml"]
        )
        good = subprocess.run(
            [sys.executable, "-m", "incident_operator", *argv], capture_output=True, text=True
        )
        assert good.returncode == 0, good.stderr


# -- kopf peering ---------------------------------------------------------------------------------------


class PeeringOperator(OperatorProcess):
    def __init__(self, *args, peering: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.peering = peering

    def argv(self) -> list[str]:
        return super().argv() + [f"--peering={self.peering}"]


def handled(operator: OperatorProcess, name: str) -> bool:
    """The operator wrote the incident's status (its verbose log has every API request)."""
    return any(
        "PATCH " in line and f"/incidents/{name}/status " in line for line in operator.log().splitlines()
    )


def paused(operator: OperatorProcess) -> bool:
    """kopf decided to pause for a higher-priority peer and has paused the Incident watch since."""
    log = operator.log()
    return (
        "Pausing operations in favour of" in log
        and "Pausing the watch-stream for incidents." in log.split("Pausing operations in favour of", 1)[1]
    )


def reconciled(kubectl: Kubectl, name: str):
    return wait_until(
        lambda: (kubectl.get("incident", name).get("status") or {}).get("priority"),
        30,
        what=f"incident {name} to be reconciled",
    )


def test_two_operators_with_peering_only_the_newest_acts(kubeconfig, namespace, kubectl, tmp_path):
    """A rolling update: the running operator (older) serves; the new pod's operator (newer) starts,
    the older pauses and the newer serves; the newer goes (rollback): the older resumes."""
    apply_peering_crds(Kubectl(kubeconfig))
    peering = "peer-" + uuid.uuid4().hex[:5]
    older = PeeringOperator(
        kubeconfig, namespaces=[namespace], workdir=tmp_path, name="older", peering=peering
    )
    newer = PeeringOperator(
        kubeconfig, namespaces=[namespace], workdir=tmp_path, name="newer", peering=peering
    )
    try:
        older.start()
        # It created its KopfPeering in the watched namespace, announced itself there, and serves.
        wait_until(
            lambda: len((kubectl.get("kopfpeerings.kopf.dev", peering) or {}).get("status") or {}) == 1,
            30,
            what="the older operator in the KopfPeering",
        )
        kubectl.apply(incident("before-handover", priority="P3"))
        reconciled(kubectl, "before-handover")
        assert handled(older, "before-handover")

        newer.start()
        wait_until(lambda: paused(older), 60, what="the older operator to pause")
        assert "Pausing operations in favour of" not in newer.log()
        kubectl.apply(incident("during-handover", priority="P2"))
        reconciled(kubectl, "during-handover")
        assert handled(newer, "during-handover")
        assert not handled(older, "during-handover")

        newer.stop()
        wait_until(
            lambda: (
                "Resuming operations after the pause"
                in older.log().split("Pausing operations in favour of", 1)[1]
            ),
            90,
            what="the older operator to resume",
        )
        kubectl.apply(incident("after-handover", priority="P3"))
        reconciled(kubectl, "after-handover")
        assert handled(older, "after-handover")
    finally:
        newer.stop()
        older.stop()


# -- ClusterRoles for people ----------------------------------------------------------------------------


def can_i(
    admin: Kubectl, user: str, verb: str, resource: str, namespace: str, subresource: str | None = None
) -> bool:
    args = ["auth", "can-i", verb, resource, "-n", namespace, "--as", user]
    if subresource:
        args.append(f"--subresource={subresource}")
    result = admin.run(*args, check=False, namespaced=False)
    assert result.stdout.strip() in ("yes", "no"), result.stdout + result.stderr
    return result.stdout.strip() == "yes"


def test_people_roles_aggregate_into_view_edit_admin_and_grant_what_they_say(kubeconfig, namespace):
    """The test control plane runs kube-apiserver only: its built-in view/edit/admin exist (the RBAC
    bootstrap) but have no rules, because ClusterRole aggregation is kube-controller-manager's job.
    So this checks (1) that the built-in roles' own aggregationRule selectors, read from the API
    server, select the chart's roles, and (2) the chart's roles' rules, bound directly, with
    `kubectl auth can-i --as`. (1) + (2) is what the aggregation controller composes."""
    admin = Kubectl(kubeconfig)
    release = "people-" + uuid.uuid4().hex[:5]
    docs = chart.documents(chart.render(release, "incident-operator"))
    fullname = chart.one(docs, "Deployment")["metadata"]["name"]
    roles = {
        d["metadata"]["name"].removeprefix(fullname + "-"): d
        for d in chart.by_kind(docs, "ClusterRole")
        if d["metadata"]["name"] in {f"{fullname}-{r}" for r in ("view", "edit", "admin")}
    }
    assert sorted(roles) == ["admin", "edit", "view"]
    lead, reader, other = "lead@example.com", "reader@example.com", "t-other-" + uuid.uuid4().hex[:5]
    try:
        admin.run(
            "apply",
            "--server-side",
            "-f",
            "-",
            input=yaml.safe_dump_all(list(roles.values())),
            namespaced=False,
        )
        # (1) Each built-in role selects the chart's role of its name.
        for builtin, role in roles.items():
            on_server = json.loads(
                admin.run("get", "clusterrole", builtin, "-o", "json", namespaced=False).stdout
            )
            selectors = [s["matchLabels"] for s in on_server["aggregationRule"]["clusterRoleSelectors"]]
            labels = role["metadata"]["labels"]
            assert any(selector.items() <= labels.items() for selector in selectors), (
                builtin,
                selectors,
                labels,
            )
            for rule in role["rules"]:
                assert not set(rule.get("resources", [])) & {"secrets", "*"}, rule
        # (2) The rules, bound as the aggregation would compose them (edit includes view).
        admin.run("create", "namespace", other, namespaced=False)
        admin.run(
            "create",
            "rolebinding",
            "lead-edit",
            f"--clusterrole={fullname}-edit",
            f"--user={lead}",
            "-n",
            namespace,
            namespaced=False,
        )
        admin.run(
            "create",
            "rolebinding",
            "lead-view",
            f"--clusterrole={fullname}-view",
            f"--user={lead}",
            "-n",
            namespace,
            namespaced=False,
        )
        admin.run(
            "create",
            "rolebinding",
            "reader-view",
            f"--clusterrole={fullname}-view",
            f"--user={reader}",
            "-n",
            namespace,
            namespaced=False,
        )
        # A support lead (edit): opens and acknowledges incidents, tunes detection rules.
        for verb, resource in [
            ("create", "incidents"),
            ("patch", "incidents"),
            ("get", "incidents"),
            ("list", "incidents"),
            ("watch", "incidents"),
            ("patch", "detectionrules"),
            ("create", "detectionrules"),
            ("update", "escalationpolicies"),
        ]:
            assert can_i(admin, lead, verb, resource, namespace), (verb, resource)
        assert not can_i(admin, lead, "patch", "incidents", namespace, subresource="status")  # the operator's
        assert not can_i(admin, lead, "deletecollection", "incidents", namespace)  # admin only
        assert not can_i(admin, lead, "get", "secrets", namespace)  # not from these roles
        assert not can_i(admin, lead, "create", "incidents", other)  # only where bound
        # view: reads incidents, rules and policies; writes nothing; no Secrets.
        for resource in ("incidents", "detectionrules", "escalationpolicies"):
            assert can_i(admin, reader, "get", resource, namespace) and can_i(
                admin, reader, "list", resource, namespace
            )
            assert not can_i(admin, reader, "patch", resource, namespace)
        assert can_i(admin, reader, "get", "incidents", namespace, subresource="status")
        assert not can_i(admin, reader, "create", "incidents", namespace)
        assert not can_i(admin, reader, "get", "secrets", namespace)
        # admin adds deletecollection.
        admin.run(
            "create",
            "rolebinding",
            "lead-admin",
            f"--clusterrole={fullname}-admin",
            f"--user={lead}",
            "-n",
            namespace,
            namespaced=False,
        )
        assert can_i(admin, lead, "deletecollection", "incidents", namespace)
    finally:
        for role in roles.values():
            admin.run(
                "delete",
                "clusterrole",
                role["metadata"]["name"],
                "--ignore-not-found",
                check=False,
                namespaced=False,
            )
        admin.run("delete", "namespace", other, "--wait=false", check=False, namespaced=False)


# -- NetworkPolicy ----------------------------------------------------------------------------------------


def test_network_policy_admits_only_the_pods_own_ports():
    docs = chart.documents(
        chart.render(
            values={
                "alertmanager": {"enabled": True},
                "alertmanagerReceiver": {"tokenSecret": {"name": "am"}},
                "networkPolicy": {
                    "enabled": True,
                    "metricsFrom": [{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}],
                },
            }
        )
    )
    policy = chart.one(docs, "NetworkPolicy")
    pod_template = chart.one(docs, "Deployment")["spec"]["template"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_template["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress open unless rules are given
    named_ports = {p["name"] for p in pod_template["spec"]["containers"][0]["ports"]}
    admitted = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert admitted == named_ports == {"metrics", "health", "alertmanager"}
    metrics_rule = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "metrics")
    assert metrics_rule["from"] == [{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}]
    egress = chart.documents(
        chart.render(values={"networkPolicy": {"enabled": True, "egress": [{"ports": [{"port": 443}]}]}})
    )
    assert chart.one(egress, "NetworkPolicy")["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert not chart.by_kind(
        chart.documents(chart.render(values={"networkPolicy": {"enabled": False}})), "NetworkPolicy"
    )
