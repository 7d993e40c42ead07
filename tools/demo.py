"""``make demo`` / ``python -m tools.demo``: the whole product on one machine, live.

Starts, on loopback and in a temporary folder: a real kube-apiserver + etcd (the test suite's
control plane) with the CRDs, Prometheus, a simulated helpdesk whose ticket counters have a baseline
with spikes, the operator as a process with short demo deadlines, and the example detection rules
(with windows of seconds instead of minutes). Then it shows, live, incidents being detected,
escalated when nobody acknowledges them, and acknowledged/resolved/closed by a simulated on-call
engineer (some promptly, some only after escalation), with the commands and URLs to look further.

Ctrl-C (or ``--duration SECONDS``) stops everything it started, by PID, and removes the folder
(``--keep`` keeps it, with every process's log). Without a terminal it prints one line per event.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

GROUP, VERSION = "incidents.buttercream.io", "v1alpha1"
NAMESPACE = "demo"
BOT = "demo-oncall"

# The demo's operator configuration: deadlines of seconds so escalation shows within a minute.
DEMO_CONFIG: dict[str, Any] = {
    "deadlines": {
        "response": {"P1": "20s", "P2": "30s", "P3": "45s", "P4": "90s"},
        "escalationInterval": {"P1": "10s", "P2": "15s", "P3": "20s", "P4": "60s"},
        "maxEscalationLevel": 3,
    },
}

# manifests/examples/detectionrule-login.yaml and detectionrule-baseline.yaml, with demo timings:
# "15 tickets in 30 seconds" instead of 10 minutes, evaluated every 2 seconds.
LOGIN_RULE: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}", "kind": "DetectionRule",
    "metadata": {"name": "login-spike", "namespace": NAMESPACE},
    "spec": {
        "query": 'sum by (topic) (increase(support_tickets_created_total{topic="login"}[30s]))',
        "interval": "2s", "for": "4s", "cooldown": "20s", "recoveryWindow": "1m",
        "groupLabels": ["topic"],
        "detector": {"type": "threshold", "threshold": {"value": 15}},
        "priority": {"default": "P3", "bands": [{"minValue": 50, "priority": "P1"},
                                                {"minValue": 25, "priority": "P2"}]},
        "incident": {"title": "Spike of {{ labels.topic }} tickets: {{ value | round | int }} in 30 seconds",
                     "service": "auth", "team": "identity"},
    },
}
BASELINE_RULE: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}", "kind": "DetectionRule",
    "metadata": {"name": "ticket-topics-baseline", "namespace": NAMESPACE},
    "spec": {
        "query": 'sum by (topic) (increase(support_tickets_created_total{topic!="login"}[3s]))',
        "interval": "3s", "for": "0s", "cooldown": "20s", "recoveryWindow": "1m",
        "groupLabels": ["topic"],
        "detector": {"type": "baseline", "baseline": {
            "step": "3s", "windowPoints": 3, "trailingPoints": 60, "seasonalDays": 0, "minReferencePoints": 20}},
        "priority": {"default": "P3", "bands": [{"minValue": 60, "priority": "P1"},
                                                {"minValue": 30, "priority": "P2"}]},
        "incident": {"title": "Unusual number of {{ labels.topic }} tickets: {{ value | round | int }} in 9s "
                              "(normally {{ baseline | round | int }})",
                     "service": "{{ labels.topic }}", "team": "support"},
    },
}
# Baseline tickets per second per topic, and the spikes: (topic, start s, end s, tickets per second).
BASE_RATES = {"login": 0.15, "billing": 0.4, "api": 0.3, "shipping": 0.2}
SPIKES = [("login", 5, 45, 1.2), ("billing", 80, 110, 4.0), ("login", 100, 140, 3.0), ("api", 165, 195, 5.0)]
CYCLE_SECONDS = 240


# -- the simulated helpdesk -----------------------------------------------------------------------------

class TicketSimulator:
    """Drives the exporter's rates: a noisy baseline and the SPIKES schedule, repeating every CYCLE_SECONDS."""

    def __init__(self, exporter, seed: int = 7):
        self.exporter = exporter
        self.random = random.Random(seed)
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ticket-simulator", daemon=True)

    def start(self) -> "TicketSimulator":
        self.started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def rate(self, topic: str, elapsed: float) -> float:
        moment = elapsed % CYCLE_SECONDS
        for spike_topic, start, end, rate in SPIKES:
            if spike_topic == topic and start <= moment < end:
                return rate
        return BASE_RATES[topic]

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            elapsed = time.monotonic() - self.started
            for topic in BASE_RATES:
                self.exporter.set_rate(topic, self.rate(topic, elapsed) * self.random.uniform(0.6, 1.4))


# -- the simulated on-call engineer ------------------------------------------------------------------------

@dataclass
class Responder:
    """Acknowledges, mitigates, resolves and closes incidents on a schedule (seconds since detection).

    Two incidents in three are handled promptly; every third (the 2nd, 5th...) is ignored until it
    has escalated twice.
    """

    api: Any
    log: Any
    done: dict[str, set[str]] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)

    def attentive(self, name: str) -> bool:
        return self.order.setdefault(name, len(self.order)) % 3 != 1

    def act(self, incidents: list[dict[str, Any]], now: datetime) -> None:
        for incident in incidents:
            meta, spec, status = incident["metadata"], incident.get("spec") or {}, incident.get("status") or {}
            name = meta["name"]
            detected = _time(status.get("detectedAt"))
            if detected is None:
                continue
            age = (now - detected).total_seconds()
            state = spec.get("state") or "Triggered"
            round_ = int(status.get("reopenCount") or 0)
            level = int((status.get("escalation") or {}).get("level") or 0)
            priority = status.get("priority") or spec.get("priority") or "P3"
            since = _time(status.get("lastReopenedAt")) or detected
            if state == "Triggered":
                if self.attentive(name) and age >= 10:
                    self._patch(name, round_, {"state": "Acknowledged", "owner": BOT}, "acknowledged")
                elif not self.attentive(name) and level >= 2:
                    self._patch(name, round_, {"state": "Acknowledged", "owner": "demo-escalation"},
                                f"acknowledged (after escalation to level {level})")
            elif state in ("Acknowledged", "Investigating"):
                acked = max(_time(status.get("acknowledgedAt")) or detected, since)
                if (now - acked).total_seconds() >= 20:
                    self._patch(name, round_, {"state": "Mitigated"}, "mitigated")
            elif state == "Mitigated":
                mitigated = _time(status.get("mitigatedAt")) or detected
                if (now - mitigated).total_seconds() >= 15:
                    self._patch(name, round_, {"state": "Resolved", "resolution": "Rolled back the faulty release."},
                                "resolved")
            elif state == "Resolved":
                resolved = _time(status.get("resolvedAt")) or detected
                if (now - resolved).total_seconds() >= 45:
                    patch: dict[str, Any] = {"state": "Closed"}
                    if priority in ("P1", "P2"):
                        patch["review"] = {
                            "timelineNotes": "Spike detected from support tickets; see the automatic timeline.",
                            "rootCause": "A faulty release (simulated).",
                            "detection": "The detection rule caught it within seconds.",
                            "communication": "Status page updated from the drafts.",
                            "actionItems": [{"title": "Add a canary for this path", "owner": BOT}],
                        }
                    self._patch(name, round_, patch, "closed" + (" with its review" if "review" in patch else ""))

    def _patch(self, name: str, round_: int, spec: dict[str, Any], what: str) -> None:
        key = f"{spec.get('state')}-{round_}"  # a reopened incident goes through the steps again
        if key in self.done.setdefault(name, set()):
            return
        self.done[name].add(key)
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            client.CustomObjectsApi(self.api).patch_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, "incidents", name, {"spec": spec})
            who = spec.get("owner") or self.owners.get(name) or BOT
            self.owners[name] = who
            self.log(f"{who} {what} {name}", "responder")
        except ApiException as error:
            try:
                message = json.loads(error.body or "{}").get("message") or error.reason
            except ValueError:
                message = error.reason
            self.log(f"{BOT} could not set {name} to {spec.get('state')}: {' '.join(str(message).split())}", "warn")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


# -- watching and showing ---------------------------------------------------------------------------------------

class Screen:
    """What the demo shows: events (always), and in a terminal a live table of incidents and rules."""

    def __init__(self, live: bool, started: float):
        from rich.console import Console

        self.live_mode = live
        self.started = started
        self.console = Console(highlight=False) if live else None
        self.events: list[str] = []
        self.incidents: list[dict[str, Any]] = []
        self.rules: list[dict[str, Any]] = []
        self.header: Any = None
        self._known: dict[str, dict[str, Any]] = {}

    def log(self, message: str, kind: str = "event") -> None:
        stamp = f"[{_clock(time.monotonic() - self.started)}]"
        line = f"{stamp} {message}"
        self.events.append(line)
        del self.events[:-12]
        if not self.live_mode:
            print(line, flush=True)

    def observe(self, incidents: list[dict[str, Any]], rules: list[dict[str, Any]]) -> None:
        self.incidents, self.rules = incidents, rules
        for incident in incidents:
            name = incident["metadata"]["name"]
            spec, status = incident.get("spec") or {}, incident.get("status") or {}
            now = {"state": spec.get("state") or "Triggered", "priority": status.get("priority"),
                   "level": int((status.get("escalation") or {}).get("level") or 0),
                   "reopens": int(status.get("reopenCount") or 0)}
            before = self._known.get(name)
            self._known[name] = now
            if before is None:
                signal_ = status.get("signal") or {}
                value = f" (value {_num(signal_['value'])}, threshold {_num(signal_['threshold'])})" \
                    if isinstance(signal_.get("value"), (int, float)) and isinstance(signal_.get("threshold"),
                                                                                      (int, float)) else ""
                self.log(f"detected   {name}  {spec.get('priority') or now['priority'] or '?'}  "
                         f"{spec.get('title', '')}{value}")
                continue
            if now["priority"] and before["priority"] and now["priority"] != before["priority"]:
                self.log(f"priority   {name}  {before['priority']} -> {now['priority']} (the spike grew)")
            if now["level"] > before["level"]:
                self.log(f"escalated  {name}  to level {now['level']}: not acknowledged by its deadline")
            if now["reopens"] > before["reopens"]:
                self.log(f"reopened   {name}  the signal relapsed after resolution (regression)")
            if now["state"] != before["state"]:
                self.log(f"state      {name}  {before['state']} -> {now['state']}")

    def render(self):
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table

        from incident_operator.cli.kubectl_incident import render_list

        now = datetime.now(timezone.utc)
        incidents = render_list(self.incidents, now, all_namespaces=False) if self.incidents else \
            "[dim]no incidents yet: the first login spike starts a few seconds after the operator[/dim]"
        rules = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("RULE", "DETECTOR", "READY", "FIRING", "GROUPS (value / threshold, phase)"):
            rules.add_column(column)
        for rule in self.rules:
            spec, status = rule.get("spec") or {}, rule.get("status") or {}
            ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
            groups = []
            for group in status.get("groups") or []:
                labels = ",".join(f"{v}" for v in (group.get("labels") or {}).values())
                value, threshold = group.get("value"), group.get("threshold")
                shown = _num(value) if isinstance(value, (int, float)) else "?"
                if isinstance(threshold, (int, float)):
                    shown += f" / {_num(threshold)}"
                groups.append(f"{labels}: {shown} {((group.get('episodeState') or {}).get('phase') or '')}")
            rules.add_row(rule["metadata"]["name"], (spec.get("detector") or {}).get("type", ""),
                          ready.get("reason", "…"), str(status.get("firingCount", 0)),
                          "; ".join(groups) or "[dim]warming up / quiet[/dim]")
        return Group(
            self.header,
            Panel(incidents, title=f"Incidents in namespace {NAMESPACE}", title_align="left"),
            Panel(rules, title="Detection rules", title_align="left"),
            Panel("\n".join(self.events[-10:]) or "[dim]waiting for the first event[/dim]", title="Events",
                  title_align="left"),
        )


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


# -- the demo -------------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="incident-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help="end by itself after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--workdir", type=Path, help="folder for the servers' data and logs (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the folder (logs, kubeconfig) afterwards")
    parser.add_argument("--plain", action="store_true", help="print one line per event instead of the live view")
    parser.add_argument("--pidfile", type=Path, help="also write the PIDs of the started processes here (JSON)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the ticket simulator's noise")
    return parser


class _Stop(Exception):
    pass


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise _Stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    deadline = started + args.duration if args.duration else None
    live = not args.plain and sys.stdout.isatty()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="incident-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    screen = Screen(live, started)
    say = print if not live else screen.console.print
    previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    failed = False
    processes: list[Any] = []  # the ManagedProcess of every server started, to check none survives
    with ExitStack() as stack:
        try:
            _run(args, workdir, screen, say, stack, deadline, processes)
        except (KeyboardInterrupt, _Stop):
            pass
        except Exception as error:  # noqa: BLE001 - a startup failure: say what and where the logs are
            failed = True
            print(f"demo: {type(error).__name__}: {error}", file=sys.stderr)
            print(f"demo: logs are in {workdir}", file=sys.stderr)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the clean-up
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("demo: stopping (operator, Prometheus, kube-apiserver, etcd)...", file=sys.stderr, flush=True)
    # ExitStack has stopped everything, in reverse order of start.
    signal.signal(signal.SIGTERM, previous_term)
    if not args.keep and not failed and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    elif args.keep or failed:
        print(f"demo: kept {workdir}", file=sys.stderr)
    survivors = [f"{p.name} (pid {p.pid})" for p in processes if p.alive()]
    if survivors:
        print(f"demo: still running: {', '.join(survivors)}", file=sys.stderr, flush=True)
        return 1
    print("demo: stopped; no process left behind.", file=sys.stderr, flush=True)
    return 1 if failed else 0


def _run(args, workdir: Path, screen: Screen, say, stack: ExitStack, deadline: float | None,
         processes: list[Any]) -> None:
    from tools.devenv.controlplane import ControlPlane
    from tools.devenv.operator import OperatorProcess
    from tools.devenv.prometheus import Prometheus
    from tools.devenv.tickets import TicketExporter

    say("incident-operator demo: starting a local control plane, Prometheus, a helpdesk simulator and the "
        "operator (about 20 seconds)...")
    pids: dict[str, int] = {}

    control_plane = ControlPlane(workdir / "controlplane", die_with_parent=True)
    stack.callback(control_plane.stop)
    try:
        control_plane.start()
    finally:
        processes.extend(p for p in (control_plane.etcd, control_plane.apiserver) if p is not None)
    pids["etcd"], pids["kube-apiserver"] = control_plane.etcd.pid, control_plane.apiserver.pid

    from kubernetes import config as kube_config

    api = kube_config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    _install_crds(api)
    _create_namespace(api)

    prometheus = Prometheus(workdir / "prometheus", scrape_interval="1s", die_with_parent=True)
    stack.callback(prometheus.stop)
    try:
        prometheus.start()
    finally:
        processes.extend([prometheus.process] if prometheus.process else [])
    pids["prometheus"] = prometheus.process.pid

    exporter = TicketExporter({topic: rate for topic, rate in BASE_RATES.items()}).start()
    stack.callback(exporter.stop)
    prometheus.add_target("helpdesk", exporter.address)

    operator = OperatorProcess(control_plane.kubeconfig, config={**DEMO_CONFIG, "prometheus": {"url": prometheus.url}},
                               namespaces=[NAMESPACE], workdir=workdir / "operator", name="operator",
                               die_with_parent=True)
    stack.callback(operator.stop)
    try:
        operator.start()
    finally:
        processes.extend([operator.process] if operator.process else [])
    pids["operator"] = operator.process.pid
    prometheus.add_target("operator", f"127.0.0.1:{operator.metrics_port}")

    _write_pids(pids, args.pidfile)
    applied = _apply_rules(api, screen)
    simulator = TicketSimulator(exporter, seed=args.seed).start()
    stack.callback(simulator.stop)

    kubeconfig = control_plane.kubeconfig
    lines = [
        f"  KUBECONFIG  {kubeconfig}",
        f"  Prometheus  {prometheus.url}   e.g. sum by (topic) (increase(support_tickets_created_total[30s]))",
        f"  metrics     {operator.metrics_url}   (incident_* series; Prometheus scrapes them too)",
        f"  try         export KUBECONFIG={kubeconfig}",
        f"              kubectl incident list -n {NAMESPACE};  kubectl get inc,dr -n {NAMESPACE}",
        f"              kubectl incident timeline NAME -n {NAMESPACE};  kubectl incident ack NAME -n {NAMESPACE}",
        f"  rules       {', '.join(applied)}: the examples with windows of seconds",
        "  deadlines   P1 20s, P2 30s, P3 45s; a simulated on-call handles 2 incidents in 3 and lets the other escalate",
        f"  logs        {workdir}/*/*.log",
        "  pids        " + " ".join(f"{name}={pid}" for name, pid in pids.items()),
        "  stop        Ctrl-C" + (f" (or it ends by itself after {args.duration:g}s)" if args.duration else ""),
    ]
    print("pids: " + " ".join(f"{name}={pid}" for name, pid in pids.items()), flush=True)
    responder = Responder(api, screen.log)
    if screen.live_mode:
        from rich.live import Live
        from rich.panel import Panel

        screen.header = Panel("\n".join(lines), title="incident-operator demo", title_align="left")
        with Live(screen.render(), console=screen.console, refresh_per_second=2, screen=False) as live:
            _loop(api, screen, responder, deadline, lambda: live.update(screen.render()))
    else:
        print("\n".join(["incident-operator demo is running:"] + lines), flush=True)
        _loop(api, screen, responder, deadline, lambda: None)


def _loop(api, screen: Screen, responder: Responder, deadline: float | None, refresh) -> None:
    from kubernetes import client

    objects = client.CustomObjectsApi(api)
    while deadline is None or time.monotonic() < deadline:
        try:
            incidents = objects.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "incidents")["items"]
            rules = objects.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "detectionrules")["items"]
        except Exception as error:  # noqa: BLE001 - keep showing; say what went wrong
            screen.log(f"cannot list objects: {type(error).__name__}", "warn")
            time.sleep(1)
            continue
        screen.observe(incidents, rules)
        responder.act(incidents, datetime.now(timezone.utc))
        refresh()
        time.sleep(1)


def _install_crds(api) -> None:
    import yaml
    from kubernetes import client

    from incident_operator.gitops.crds import packaged_crd_dir
    from incident_operator.gitops.yamlmarks import Loader  # reads 1e-12 as a number, as kubectl does

    extensions = client.ApiextensionsV1Api(api)
    names = []
    for path in sorted(packaged_crd_dir().glob("*.yaml")):
        for body in yaml.load_all(path.read_text(), Loader=Loader):
            if isinstance(body, dict) and body.get("kind") == "CustomResourceDefinition":
                extensions.create_custom_resource_definition(body)
                names.append(body["metadata"]["name"])
    for name in names:
        for _ in range(300):
            crd = extensions.read_custom_resource_definition(name)
            if any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"CRD {name} did not become Established")


def _create_namespace(api) -> None:
    from kubernetes import client

    client.CoreV1Api(api).create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})


def _apply_rules(api, screen: Screen) -> list[str]:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    objects = client.CustomObjectsApi(api)
    applied = []
    for rule in (LOGIN_RULE, BASELINE_RULE):
        try:
            objects.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "detectionrules", rule)
            applied.append(rule["metadata"]["name"])
        except ApiException as error:
            try:
                message = json.loads(error.body or "{}").get("message") or error.reason
            except ValueError:
                message = error.reason
            screen.log(f"rule {rule['metadata']['name']} not applied: {' '.join(str(message).split())}", "warn")
    return applied


def _write_pids(pids: dict[str, int], pidfile: Path | None) -> None:
    if pidfile:
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        pidfile.write_text(json.dumps(pids) + "\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
