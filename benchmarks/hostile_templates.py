"""Hostile templates (issue 14, finding 1): the operator's peak RSS and /healthz latency while DetectionRules
with a 10^8-character title template and nested-loop templates are applied, and how soon an incident in
another namespace is processed meanwhile.

Against a local control plane and a real Prometheus, with the operator as a process. Figures are printed,
never asserted; the target is RSS <= 300 MiB (the chart's limit is 384Mi).

Usage: python benchmarks/hostile_templates.py [--rules 20] [--seconds 30]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubernetes import client, config as kube_config  # noqa: E402

from benchmarks.incidents_scale import rss_kib  # noqa: E402
from tools.devenv.controlplane import ControlPlane  # noqa: E402
from tools.devenv.operator import OperatorProcess  # noqa: E402
from tools.devenv.prometheus import Prometheus  # noqa: E402
from tests.support.kubectl import Kubectl  # noqa: E402

GROUP, VERSION = "incidents.buttercream.io", "v1alpha1"
HOSTILE, HEALTHY = "hostile", "healthy"
TITLES = [
    "{{ 'x' * 10**8 }}",
    "{{ 'x' * 10**4 * 10**4 }}",
    "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "{% for i in range(10000) %}{% for j in range(10000) %}{% for k in range(10000) %}"
    "{% endfor %}{% endfor %}{% endfor %}",
    "{% set s = 'ab' * 50 %}{{ s.replace('a', s).replace('a', s).replace('a', s) }}",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
]


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=24, help="hostile rules (the titles above, in turn)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to watch after applying them")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    cp = ControlPlane(work / "cp").start()
    prometheus = Prometheus(work / "prom", scrape_interval="5s").start()
    operator = None
    try:
        admin = Kubectl(cp.kubeconfig)
        admin.run("apply", "--server-side", "-f", str(REPO / "crds"), namespaced=False)
        admin.run("wait", "--for=condition=Established", "crd", "--all", namespaced=False)
        for ns in (HOSTILE, HEALTHY):
            admin.run("create", "namespace", ns, namespaced=False)
        api = client.CustomObjectsApi(kube_config.new_client_from_config(str(cp.kubeconfig)))
        operator = OperatorProcess(cp.kubeconfig, config={"prometheus": {"url": prometheus.url}},
                                   namespaces=[HOSTILE, HEALTHY], workdir=work, name="operator",
                                   verbose=False).start()
        pid = operator.process.pid
        baseline_rss = rss_kib(pid)
        peak = [baseline_rss]
        latencies: list[float] = []
        failures = [0]
        slowest: list[tuple[float, float]] = []  # (latency, seconds after the rules were applied)
        applied_at = [time.monotonic()]
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                began = time.monotonic()
                try:
                    url = f"http://127.0.0.1:{operator.health_port}/healthz"
                    with urllib.request.urlopen(url, timeout=5):
                        latencies.append(time.monotonic() - began)
                    slowest.append((latencies[-1], began - applied_at[0]))
                except Exception:
                    failures[0] += 1
                peak[0] = max(peak[0], rss_kib(pid))
                time.sleep(0.1)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        applied = applied_at[0] = time.monotonic()
        for i in range(args.rules):
            title = TITLES[i % len(TITLES)]
            api.create_namespaced_custom_object(GROUP, VERSION, HOSTILE, "detectionrules", {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "DetectionRule",
                "metadata": {"name": f"h{i:03d}"},
                "spec": {"query": 'label_replace(vector(5), "topic", "t", "", "")', "interval": "1s",
                         "detector": {"type": "threshold", "threshold": {"value": 1}},
                         "incident": {"title": title, "description": title}}})
        # A healthy tenant's incidents, one a second, each timed until the operator has processed it.
        processed: list[float] = []
        order: list[tuple[float, float]] = []  # (created after the rules were applied, seconds to process)
        invalid_after = None
        n = 0
        while time.monotonic() - applied < args.seconds:
            name = f"inc-{n}"
            n += 1
            created = time.monotonic()
            api.create_namespaced_custom_object(GROUP, VERSION, HEALTHY, "incidents", {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "Incident", "metadata": {"name": name},
                "spec": {"title": f"Healthy {name}", "priority": "P3"}})
            while time.monotonic() - created < 30:
                body = api.get_namespaced_custom_object(GROUP, VERSION, HEALTHY, "incidents", name)
                if (body.get("status") or {}).get("priority"):
                    processed.append(time.monotonic() - created)
                    order.append((created - applied, processed[-1]))
                    break
                time.sleep(0.05)
            if invalid_after is None:
                rules = api.list_namespaced_custom_object(GROUP, VERSION, HOSTILE, "detectionrules")["items"]
                invalid = sum(1 for r in rules for c in (r.get("status") or {}).get("conditions") or []
                              if c.get("type") == "Ready" and c.get("reason") == "Invalid")
                if invalid == args.rules:
                    invalid_after = time.monotonic() - applied
            time.sleep(max(0.0, 1.0 - (time.monotonic() - created)))
        stop.set()
        prober.join(timeout=10)
        latencies.sort()
        print(f"hostile rules: {args.rules} ({len(TITLES)} kinds of title: 10^8-character, nested loops, "
              "chained replace, recursive macro)")
        when = f"{invalid_after:.1f} s" if invalid_after is not None else "not within the run"
        print(f"all marked Invalid after: {when}")
        print(f"operator RSS: before {baseline_rss / 1024:.0f} MiB, peak {peak[0] / 1024:.0f} MiB "
              "(target <= 300 MiB)")
        if latencies:
            print(f"/healthz latency over {len(latencies)} probes: "
                  f"p50 {statistics.median(latencies) * 1000:.1f} ms, "
                  f"p99 {latencies[int(0.99 * (len(latencies) - 1))] * 1000:.1f} ms, "
                  f"max {latencies[-1] * 1000:.1f} ms; failed probes: {failures[0]}")
        if slowest:
            worst = max(slowest)
            print(f"slowest /healthz probe: {worst[0] * 1000:.0f} ms, {worst[1]:.1f} s after the rules "
                  "were applied")
        if processed:
            late = max(order, key=lambda o: o[1])
            print(f"slowest incident: created {late[0]:.1f} s after the rules were applied, processed in "
                  f"{late[1]:.2f} s")
            processed.sort()
            print(f"healthy tenant's incidents processed: {len(processed)} of {n}, p50 "
                  f"{statistics.median(processed):.2f} s, max {processed[-1]:.2f} s after creation")
        print(f"operator alive at the end: {operator.alive()}; tracebacks in its log: "
              f"{operator.log().count('Traceback')}")
        return 0
    finally:
        if operator is not None:
            operator.stop()
        prometheus.stop()
        cp.stop()


if __name__ == "__main__":
    sys.exit(main())
