"""Tenant limits under load: a 50,000-series rule and 16 hanging-URL rules in one namespace, a
healthy rule in another.

Against a local control plane and a real Prometheus scraping a ticket exporter with N series
(default 50,000), the operator runs: in namespace `noisy`, one rule whose query returns every
series (refused as TooManySeries) and 16 rules whose allow-listed Prometheus URL never answers; in
namespace `quiet`, one healthy rule (interval 1 s) whose topic then spikes. Prints the operator's
peak RSS, /healthz latency (polled every 0.2 s), the noisy rule's reason, and how long after the
first scrape showing the spike the healthy incident was opened (its due time is that scrape plus at
most one interval, 1 s). Prints figures; never pass/fail. Targets: RSS <= 300 MiB, healthy incident
within 1 s of its due time.

Usage: python benchmarks/tenant_limits.py [--series 50000] [--hanging 16]
"""

from __future__ import annotations

import argparse
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks.incidents_scale import rss_kib  # noqa: E402
from tests.support.kubectl import Kubectl  # noqa: E402
from tools.devenv.controlplane import ControlPlane  # noqa: E402
from tools.devenv.operator import OperatorProcess  # noqa: E402
from tools.devenv.prometheus import Prometheus  # noqa: E402
from tools.devenv.tickets import TicketExporter  # noqa: E402

GROUP, VERSION = "incidents.buttercream.io", "v1alpha1"


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def rule(name: str, query: str, **spec) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DetectionRule", "metadata": {"name": name},
            "spec": {"query": query, "interval": "1s", "for": "0s",
                     "detector": {"type": "threshold", "threshold": {"value": 15}}, **spec}}


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=50_000)
    parser.add_argument("--hanging", type=int, default=16)
    args = parser.parse_args()
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="bench-tenants-"))
    cp = ControlPlane(work / "cp").start()
    prometheus = Prometheus(work / "prom", scrape_interval="2s").start()
    exporter = TicketExporter({f"s{i}": 0.0 for i in range(args.series)}).start()
    exporter.set_rate("healthy", 0.0)
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(512)
    hanging_url = f"http://127.0.0.1:{hanging.getsockname()[1]}"
    operator = None
    stop = threading.Event()
    try:
        prometheus.add_target("tickets", exporter.address)
        prometheus.wait_for_target_up("tickets", timeout=120)
        admin = Kubectl(cp.kubeconfig)
        admin.run("apply", "--server-side", "-f", str(REPO / "crds"), namespaced=False)
        admin.run("wait", "--for=condition=Established", "crd", "--all", namespaced=False)
        for ns in ("noisy", "quiet"):
            admin.run("create", "namespace", ns, namespaced=False)
        noisy, quiet = Kubectl(cp.kubeconfig, "noisy"), Kubectl(cp.kubeconfig, "quiet")
        operator = OperatorProcess(cp.kubeconfig, namespaces=["noisy", "quiet"], workdir=work,
                                   name="operator", verbose=False,
                                   config={"prometheus": {"url": prometheus.url},
                                           "detection": {"allowedPrometheusURLs": [hanging_url]}}).start()
        peak = [0]
        health: list[float] = []

        def watch() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kib(operator.process.pid))
                began = time.monotonic()
                try:
                    url = f"http://127.0.0.1:{operator.health_port}/healthz"
                    urllib.request.urlopen(url, timeout=5).read()
                    health.append(time.monotonic() - began)
                except OSError:
                    health.append(5.0)
                stop.wait(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        noisy.apply(rule("flood", "sum by (topic) (support_tickets_created_total)"))
        # The flood rule first, until refused (the hanging rules then hold the noisy namespace's
        # slots, and its flood rule would queue behind them).
        reason = "-"
        began = time.monotonic()
        while reason == "-" and time.monotonic() - began < 60:
            flood = noisy.get("detectionrule", "flood") or {}
            reason = next((c["reason"] for c in (flood.get("status") or {}).get("conditions", [])
                           if c["type"] == "Degraded" and c["status"] == "True"), "-")
            time.sleep(0.5)
        for i in range(args.hanging):
            noisy.apply(rule(f"hang-{i:02d}", "up", prometheus={"url": hanging_url, "timeout": "5m"}))
        quiet.apply(rule("healthy",
                         'sum by (topic) (increase(support_tickets_created_total{topic="healthy"}[10s]))'))
        time.sleep(15)  # the noisy rules hold their slots, the flood rule is refused at every interval
        spike = time.time()
        exporter.set_rate("healthy", 10.0)
        incident = None
        while incident is None and time.time() - spike < 60:
            items = quiet.list("incidents")
            incident = items[0] if items else None
            time.sleep(0.1)
        time.sleep(5)
        stop.set()
        watcher.join()
        table = Table(title=f"{args.series} series + {args.hanging} hanging-URL rules in one namespace")
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_column("target", justify="right")
        table.add_row("operator peak RSS", f"{peak[0] / 1024:.0f} MiB", "<= 300 MiB")
        if health:
            ordered = sorted(health)
            table.add_row("/healthz latency p50", f"{statistics.median(ordered) * 1000:.0f} ms", "")
            table.add_row("/healthz latency max", f"{ordered[-1] * 1000:.0f} ms", "")
        table.add_row("flood rule Degraded reason", reason, "TooManySeries")
        if incident is not None:
            status = incident.get("status") or {}
            detected = ts(status["detectedAt"]) if status.get("detectedAt") \
                else ts(incident["metadata"]["creationTimestamp"])
            first = exporter.first_scrape_with("healthy", 16, spike)
            if first is not None:
                table.add_row("healthy incident after the first scrape over threshold",
                              f"{detected - first:.2f} s", "<= 2 s (1 s interval + 1 s)")
            table.add_row("healthy incident after the spike began", f"{detected - spike:.2f} s", "")
        else:
            table.add_row("healthy incident", "not opened within 60 s", "opened")
        console.print(table)
        return 0
    finally:
        stop.set()
        if operator is not None:
            operator.stop()
        hanging.close()
        exporter.stop()
        prometheus.stop()
        cp.stop()


if __name__ == "__main__":
    sys.exit(main())
