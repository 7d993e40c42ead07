"""1,000 DetectionRules at a 30 s interval on one replica: does evaluation keep up?

Against a local control plane and a real Prometheus scraping a ticket exporter (10 topics), the
operator evaluates N rules (default 1000, interval 30 s, threshold detector, one series per rule).
Each evaluation writes status.lastEvaluationTime with millisecond precision; the benchmark polls
all rules and measures, for every pair of consecutive evaluations of a rule, how late the second
came compared with the interval (lag). Also reports the operator's CPU use and peak RSS.
Prints figures; never pass/fail. Target: lag p99 <= 1 s.

Usage: python benchmarks/rules_scale.py [--rules 1000] [--interval 30] [--cycles 3]
"""

from __future__ import annotations

import argparse
import signal
import concurrent.futures as futures
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubernetes import client, config as kube_config  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks.incidents_scale import cpu_seconds, rss_kib  # noqa: E402
from tools.devenv.controlplane import ControlPlane  # noqa: E402
from tools.devenv.operator import OperatorProcess  # noqa: E402
from tools.devenv.prometheus import Prometheus  # noqa: E402
from tools.devenv.tickets import TicketExporter  # noqa: E402
from tests.support.kubectl import Kubectl  # noqa: E402

GROUP, VERSION, NS = "incidents.buttercream.io", "v1alpha1", "rules"


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def main() -> int:
    # A `timeout` or Ctrl-C must still stop the servers this benchmark started (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--interval", type=int, default=30)
    parser.add_argument("--cycles", type=int, default=3, help="evaluation cycles to measure after warm-up")
    args = parser.parse_args()
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="bench-rules-"))
    cp = ControlPlane(work / "cp").start()
    prometheus = Prometheus(work / "prom", scrape_interval="5s").start()
    exporter = TicketExporter({f"t{i}": 0.5 for i in range(10)}).start()
    operator = None
    try:
        prometheus.add_target("tickets", exporter.address)
        prometheus.wait_for_target_up("tickets")
        admin = Kubectl(cp.kubeconfig)
        admin.run("apply", "--server-side", "-f", str(REPO / "crds"), namespaced=False)
        admin.run("wait", "--for=condition=Established", "crd", "--all", namespaced=False)
        admin.run("create", "namespace", NS, namespaced=False)
        api = client.CustomObjectsApi(kube_config.new_client_from_config(str(cp.kubeconfig)))

        def rule(i: int) -> dict:
            return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DetectionRule", "metadata": {"name": f"r{i:04d}"},
                    "spec": {"query": f'sum by (topic) (increase(support_tickets_created_total{{topic="t{i % 10}"}}[10m]))',
                             "interval": f"{args.interval}s",
                             "detector": {"type": "threshold", "threshold": {"value": 1000}}}}

        with futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: api.create_namespaced_custom_object(GROUP, VERSION, NS, "detectionrules", rule(i)),
                          range(args.rules)))
        operator = OperatorProcess(cp.kubeconfig, config={"prometheus": {"url": prometheus.url}}, namespaces=[NS],
                                   workdir=work, name="operator", verbose=False).start()
        started = time.monotonic()
        seen: dict[str, list[float]] = {}
        peak_rss = 0
        warm_until = None
        cpu_at_warm = 0.0
        while True:
            peak_rss = max(peak_rss, rss_kib(operator.process.pid))
            items = api.list_namespaced_custom_object(GROUP, VERSION, NS, "detectionrules")["items"]
            for item in items:
                last = (item.get("status") or {}).get("lastEvaluationTime")
                if last:
                    times = seen.setdefault(item["metadata"]["name"], [])
                    if not times or ts(last) != times[-1]:
                        times.append(ts(last))
            if warm_until is None and len(seen) >= args.rules:
                warm_until = time.monotonic()
                cpu_at_warm = cpu_seconds(operator.process.pid)
                console.print(f"all {args.rules} rules evaluated once after {warm_until - started:.1f}s")
            if warm_until is not None and time.monotonic() - warm_until > args.cycles * args.interval + 5:
                break
            time.sleep(2)
        measured = time.monotonic() - warm_until
        cpu = cpu_seconds(operator.process.pid) - cpu_at_warm
        lags = sorted(b - a - args.interval for times in seen.values() for a, b in zip(times, times[1:], strict=False))
        table = Table(title=f"{args.rules} DetectionRules at {args.interval}s on one replica")
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_column("target", justify="right")
        table.add_row("time until every rule evaluated once", f"{warm_until - started:.1f} s", "")
        table.add_row("evaluations measured", str(len(lags)), "")
        if lags:
            table.add_row("lag p50", f"{statistics.median(lags):.3f} s", "")
            table.add_row("lag p99", f"{lags[int(0.99 * (len(lags) - 1))]:.3f} s", "<= 1 s")
            table.add_row("lag max", f"{lags[-1]:.3f} s", "")
        table.add_row("operator CPU (steady state)", f"{100 * cpu / measured:.0f} % of one core", "")
        table.add_row("operator peak RSS", f"{peak_rss / 1024:.0f} MiB", "")
        console.print(table)
        return 0
    finally:
        if operator is not None:
            operator.stop()
        exporter.stop()
        prometheus.stop()
        cp.stop()


if __name__ == "__main__":
    sys.exit(main())
