"""10,000 open incidents with deadlines, on one operator replica; prints figures, never pass/fail.

Measures, in one run against a local control plane (kube-apiserver + etcd built by
tests/controlplane/build.sh):
- raw API-server create rate for Incidents with the official Python client (no operator running);
- first start with N incidents already there and never processed (until every incident has
  status.observedGeneration: N status writes);
- restart time: the operator stopped and started again with everything processed (the full
  re-list), until its own ``incidents_open`` gauges count every incident;
- deadline lateness: when each incident's level-1 escalation happened (status.escalation
  .lastEscalatedAt, ms precision) minus its responseDeadline, p50 / p99 / max;
- the operator's peak RSS and CPU time;
- incident processing throughput with the operator running (create -> status written) against the
  raw create rate, as a ratio.

Usage: python benchmarks/incidents_scale.py [--incidents 10000] [--throughput 1000]
"""

from __future__ import annotations

import argparse
import signal
import concurrent.futures as futures
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubernetes import client, config as kube_config  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from tools.devenv.controlplane import ControlPlane  # noqa: E402
from tests.support.kubectl import Kubectl  # noqa: E402
from tools.devenv.operator import OperatorProcess  # noqa: E402

GROUP, VERSION = "incidents.buttercream.io", "v1alpha1"
NS = "bench"


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, IndexError):
        return 0.0


def create_all(api, bodies, workers=8) -> float:
    began = time.monotonic()
    with futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda b: api.create_namespaced_custom_object(GROUP, VERSION, NS, "incidents", b), bodies))
    return time.monotonic() - began


def list_all(api, selector: str | None = None) -> list[dict]:
    items, token = [], None
    while True:
        page = api.list_namespaced_custom_object(GROUP, VERSION, NS, "incidents", limit=2000, _continue=token,
                                                 label_selector=selector)
        items += page["items"]
        token = page["metadata"].get("continue")
        if not token:
            return items


def open_incidents_counted(url: str) -> float:
    """Sum of the operator's incidents_open gauge (0 while it is not serving yet)."""
    import urllib.request

    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("incidents_open{"))


def body(name: str, detected: datetime, phase: str = "open") -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Incident",
        "metadata": {"name": name, "labels": {"bench-phase": phase},
                     "annotations": {"incidents.buttercream.io/detected-at": iso(detected)}},
        "spec": {"title": f"Benchmark incident {name}", "priority": "P1", "service": "bench"},
    }


def main() -> int:
    # A `timeout` or Ctrl-C must still stop the servers this benchmark started (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--throughput", type=int, default=1_000)
    parser.add_argument("--deadline-spread", type=float, default=60.0, help="seconds over which deadlines fall")
    parser.add_argument("--lead", type=float, default=None, help="seconds from creation to the first deadline")
    args = parser.parse_args()
    if args.deadline_spread >= 290:
        parser.error("--deadline-spread must stay below the level-2 interval (5 min) minus the 5 s grace, "
                     "so that every measured escalation is level 1")
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    cp = ControlPlane(work / "cp").start()
    operator = None
    try:
        admin = Kubectl(cp.kubeconfig)
        admin.run("apply", "--server-side", "-f", str(REPO / "crds"), namespaced=False)
        admin.run("wait", "--for=condition=Established", "crd", "--all", namespaced=False)
        admin.run("create", "namespace", NS, namespaced=False)
        api = client.CustomObjectsApi(kube_config.new_client_from_config(str(cp.kubeconfig)))

        # Deadlines (P1: detection + 5 min) fall in a window that opens after creation and start-up.
        lead = args.lead if args.lead is not None else 90 + args.incidents / 50
        base = datetime.now(timezone.utc) - timedelta(minutes=5) + timedelta(seconds=lead)
        bodies = [body(f"inc-{i:05d}", base + timedelta(seconds=args.deadline_spread * i / args.incidents))
                  for i in range(args.incidents)]
        console.print(f"creating {args.incidents} incidents (no operator running)...")
        raw_seconds = create_all(api, bodies)
        raw_rate = args.incidents / raw_seconds

        operator = OperatorProcess(cp.kubeconfig, config={}, namespaces=[NS], workdir=work, name="operator",
                                   verbose=bool(os.environ.get("BENCH_VERBOSE")))
        started = time.monotonic()
        operator.start(wait=False)
        peak_rss = 0
        while True:
            peak_rss = max(peak_rss, rss_kib(operator.process.pid))
            items = list_all(api)
            done = sum(1 for i in items if (i.get("status") or {}).get("observedGeneration"))
            if done >= args.incidents:
                break
            if not operator.alive():
                raise SystemExit("operator died:\n" + operator.process.tail(40))
            time.sleep(3)  # listing thousands of incidents loads the API server too: not too often
        startup = time.monotonic() - started
        console.print(f"first start with {args.incidents} unprocessed incidents: {startup:.1f}s")

        last_due = base + timedelta(minutes=5, seconds=args.deadline_spread)  # P1 responds in 5 min
        while datetime.now(timezone.utc) < last_due + timedelta(seconds=5):
            peak_rss = max(peak_rss, rss_kib(operator.process.pid))
            time.sleep(1)
        late: list[float] = []
        missing = beyond_level1 = 0
        for item in list_all(api):
            status = item.get("status") or {}
            escalation = status.get("escalation") or {}
            fired = escalation.get("lastEscalatedAt")
            if not fired:
                missing += 1
                continue
            if (escalation.get("level") or 0) > 1:
                beyond_level1 = beyond_level1 + 1  # lastEscalatedAt is a later level's: not level 1's lateness
                continue
            late.append((parse(fired) - parse(status["responseDeadline"])).total_seconds())
        late.sort()

        # Throughput with the operator running: create -> status written.
        fresh = [body(f"tp-{i:05d}", datetime.now(timezone.utc), "throughput") for i in range(args.throughput)]
        began = time.monotonic()
        create_all(api, fresh)
        while True:
            items = list_all(api, "bench-phase=throughput")
            if sum(1 for i in items if (i.get("status") or {}).get("observedGeneration")) >= args.throughput:
                break
            time.sleep(1)
        processed_rate = args.throughput / (time.monotonic() - began)
        peak_rss = max(peak_rss, rss_kib(operator.process.pid))
        cpu = cpu_seconds(operator.process.pid)

        # Restart: everything is processed; the new process re-lists and rebuilds its view.
        total = args.incidents + args.throughput
        operator.stop()
        operator = OperatorProcess(cp.kubeconfig, config={}, namespaces=[NS], workdir=work, name="restarted",
                                   verbose=bool(os.environ.get("BENCH_VERBOSE")))
        began = time.monotonic()
        operator.start(wait=False)
        while open_incidents_counted(operator.metrics_url) < total:
            if not operator.alive():
                raise SystemExit("operator died:\n" + operator.process.tail(40))
            time.sleep(0.2)
        relist = time.monotonic() - began
        time.sleep(10)  # let it settle: no writes expected, every due time recomputed
        restart_rss = rss_kib(operator.process.pid)
        restart_cpu = cpu_seconds(operator.process.pid)

        table = Table(title=f"{args.incidents} open incidents, one replica ({os.cpu_count()} cores)")
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_column("target / reference", justify="right")
        table.add_row("raw Incident create rate (client, 8 threads)", f"{raw_rate:.0f}/s", "reference")
        table.add_row("first start: every unprocessed incident written", f"{startup:.1f} s", "")
        table.add_row("deadline lateness p50", f"{statistics.median(late):.3f} s" if late else "n/a", "")
        table.add_row("deadline lateness p99", f"{late[int(0.99 * (len(late) - 1))]:.3f} s" if late else "n/a",
                      "<= 1 s")
        table.add_row("deadline lateness max", f"{late[-1]:.3f} s" if late else "n/a", "")
        table.add_row("escalations missing", str(missing), "0")
        if beyond_level1:
            table.add_row("already past level 1 (not measured)", str(beyond_level1), "0")
        table.add_row("operator peak RSS", f"{peak_rss / 1024:.0f} MiB", "<= 500 MiB")
        table.add_row("operator CPU time (whole run)", f"{cpu:.1f} s", "")
        table.add_row("processing throughput (create -> status)", f"{processed_rate:.0f}/s", "")
        table.add_row("throughput / raw create rate", f"{processed_rate / raw_rate:.2f}", "ratio")
        table.add_row(f"restart: re-list until all {total} counted", f"{relist:.1f} s", "")
        table.add_row("after restart: RSS / CPU time (10 s settled)",
                      f"{restart_rss / 1024:.0f} MiB / {restart_cpu:.1f} s", "")
        console.print(table)
        return 0
    finally:
        if operator is not None:
            operator.stop()
        cp.stop()


if __name__ == "__main__":
    sys.exit(main())
