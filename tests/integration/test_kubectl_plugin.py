"""kubectl incident: the plugin as a process, through kubectl's plugin discovery, against real incidents."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.kubectl import incident, kubectl_binary
from tools.devenv.processes import refused_port, wait_until

PLUGIN = [sys.executable, "-m", "incident_operator.cli.kubectl_incident"]


@pytest.fixture
def plugin(kubeconfig, namespace, tmp_path):
    """Runs the plugin with a kubeconfig whose current context points at the test's namespace."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = namespace
    own = tmp_path / "kubeconfig"
    own.write_text(yaml.safe_dump(config))
    env = {**os.environ, "KUBECONFIG": str(own), "PYTHONUNBUFFERED": "1"}

    def run(*args: str, via_kubectl: bool = False, env_extra: dict | None = None) -> subprocess.CompletedProcess:
        if via_kubectl:  # kubectl finds kubectl-incident on the PATH (the package's console script)
            argv = [kubectl_binary(), "incident", *args]
            path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
            run_env = {**env, "PATH": path, **(env_extra or {})}
        else:
            argv = [*PLUGIN, *args]
            run_env = {**env, **(env_extra or {})}
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=run_env)

    return run


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_list_and_the_lifecycle_commands(kubectl, namespace, start_operator, plugin):
    start_operator({"deadlines": {"response": {"P1": "1s", "P2": "1h"}, "escalationInterval": {"P1": "1h"}}})
    kubectl.apply(incident("db-down", priority="P1", service="db"))
    kubectl.apply(incident("slow-search", priority="P2", owner="dana"))
    kubectl.apply(incident("typo", priority="P4", state="Acknowledged", owner="erin"))
    wait_until(lambda: (kubectl.get("incident", "db-down").get("status") or {}).get("escalation", {}).get("level"),
               20, what="db-down to escalate past its 1s deadline")
    wait_until(lambda: (kubectl.get("incident", "slow-search").get("status") or {}).get("responseDeadline"),
               20, what="slow-search's deadline")

    listed = plugin("list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["NAME", "PRIORITY", "STATE", "OWNER", "RESPONSE", "LEVEL", "AGE", "TITLE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == ["db-down", "slow-search", "typo"]  # by priority
    assert rows["db-down"].split()[1:4] == ["P1", "Triggered", "—"]
    assert "breached" in rows["db-down"] and " ago " in rows["db-down"]
    assert rows["db-down"].split()[7] == "1"  # escalation level
    assert "59m left" in rows["slow-search"] or "1h left" in rows["slow-search"]
    assert rows["typo"].split()[1:5] == ["P4", "Acknowledged", "erin", "—"]

    # The same through kubectl's plugin discovery, every namespace.
    everywhere = plugin("list", "-A", via_kubectl=True)
    assert everywhere.returncode == 0, everywhere.stderr
    assert everywhere.stdout.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == [namespace, "db-down"] for line in everywhere.stdout.splitlines())

    # ack: the owner defaults to who the API server says you are (the admin client certificate's CN).
    acked = plugin("ack", "db-down")
    assert acked.returncode == 0, acked.stderr
    assert acked.stdout.strip() == f"incident {namespace}/db-down acknowledged (owner: admin)"
    assert kubectl.get("incident", "db-down")["spec"]["owner"] == "admin"
    assert plugin("ack", "slow-search", "--owner", "frank", via_kubectl=True).returncode == 0
    assert kubectl.get("incident", "slow-search")["spec"]["owner"] == "frank"

    assert plugin("mitigate", "db-down").returncode == 0
    resolved = plugin("resolve", "db-down", "--resolution", "Failed over to the replica")
    assert resolved.returncode == 0, resolved.stderr
    spec = kubectl.get("incident", "db-down")["spec"]
    assert spec["state"] == "Resolved" and spec["resolution"] == "Failed over to the replica"

    # The API server's CEL rules refuse what the lifecycle forbids; the plugin shows their message.
    error = one_line_error(plugin("close", "db-down"))
    assert error.startswith("error: cannot close incident db-down: the API server refused it: ")
    assert "a P1 or P2 incident cannot be Closed without a complete post-incident review" in error
    error = one_line_error(plugin("ack", "db-down"))
    assert "state can only move forward" in error
    assert plugin("close", "typo").returncode == 0
    assert kubectl.get("incident", "typo")["spec"]["state"] == "Closed"
    error = one_line_error(plugin("resolve", "typo"))
    assert "a Closed incident cannot change state" in error

    # The timeline the operator wrote.
    wait_until(lambda: any(e.get("type") == "StateChanged" and "Resolved" in e.get("message", "")
                           for e in kubectl.get("incident", "db-down")["status"].get("timeline", [])),
               20, what="the Resolved transition in the timeline")
    timeline = plugin("timeline", "db-down")
    assert timeline.returncode == 0, timeline.stderr
    header, *body = timeline.stdout.splitlines()
    assert header.startswith(f"{namespace}/db-down  P1  Resolved")
    assert body[0].split() == ["TIME", "TYPE", "ACTOR", "MESSAGE"]
    types = [line.split()[1] for line in body[1:] if line.strip()]
    assert types[0] == "Detected" and "Escalated" in types and types[-1] == "StateChanged"
    assert types.index("Escalated") < len(types) - 1 and "Resolved" in body[-1]

    # draft and postmortem are incidentctl's, with the same cluster options.
    draft = plugin("draft", "db-down", "--kind", "resolution")
    assert draft.returncode == 0, draft.stderr
    assert draft.stdout.strip()
    postmortem = plugin("postmortem", "db-down", via_kubectl=True)
    assert postmortem.returncode == 0, postmortem.stderr
    assert "db-down" in postmortem.stdout or "Test incident db-down" in postmortem.stdout


def test_errors_are_one_clear_line(kubectl, namespace, plugin, tmp_path):
    error = one_line_error(plugin("ack", "nope", "--owner", "erin"))
    assert error == f"error: incident nope not found in namespace {namespace}"
    error = one_line_error(plugin("timeline", "nope", "-n", "elsewhere"))
    assert error == "error: incident nope not found in namespace elsewhere"

    kubectl.apply(incident("unowned", priority="P3"))
    error = one_line_error(plugin("mitigate", "unowned"))
    assert "spec.owner is required once an incident is Acknowledged or later" in error
    assert error.endswith("(pass --owner NAME)")
    assert plugin("mitigate", "unowned", "--owner", "gus").returncode == 0

    empty = plugin("list", "-n", "no-incidents-here")
    assert empty.returncode == 0 and empty.stdout == ""
    assert empty.stderr.strip() == "No incidents found in namespace no-incidents-here."

    with refused_port() as port:
        config = {"apiVersion": "v1", "kind": "Config", "current-context": "gone",
                  "clusters": [{"name": "gone", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                           "insecure-skip-tls-verify": True}}],
                  "users": [{"name": "u", "user": {"token": "x"}}],
                  "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}]}
        dead = tmp_path / "dead-kubeconfig"
        dead.write_text(yaml.safe_dump(config))
        error = one_line_error(plugin("list", env_extra={"KUBECONFIG": str(dead)}))
        assert error == f"error: cannot reach the Kubernetes API server at 127.0.0.1:{port}: connection refused"
