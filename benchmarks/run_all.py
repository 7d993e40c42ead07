"""`make bench`: every benchmark in one run, each printing its figures beside its reference.

Usage: python benchmarks/run_all.py [--nab DIR] [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(title: str, argv: list[str]) -> int:
    print(f"\n=== {title}\n$ {' '.join(argv)}", flush=True)
    began = time.monotonic()
    code = subprocess.call([sys.executable, *argv])
    print(f"--- {title}: exit {code} after {time.monotonic() - began:.0f}s", flush=True)
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab", default=str(HERE.parent.parent / "shared" / "data" / "nab"))
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    quick = args.quick
    codes = [
        run("control plane start-up", [str(HERE / "controlplane.py"), "--runs", "3" if quick else "5"]),
        run("detection quality on NAB (realTweets, realTraffic)", [str(HERE / "detection_quality.py"), args.nab]),
        run("detection latency vs a Prometheus alerting rule",
            [str(HERE / "detection_latency.py"), "--spikes", "5" if quick else "20",
             "--replicas", "3" if quick else "10"]),
        run("DetectionRules at scale", [str(HERE / "rules_scale.py"), "--rules", "100" if quick else "1000"]),
        run("open incidents at scale", [str(HERE / "incidents_scale.py"), "--incidents", "500" if quick else "10000",
                                        "--throughput", "100" if quick else "1000"]
            + ([] if quick else ["--lead", "320", "--deadline-spread", "240"])),
        run("hostile templates", [str(HERE / "hostile_templates.py"), "--rules", "12" if quick else "24",
                                  "--seconds", "15" if quick else "30"]),
        run("tenant limits: many series and hanging rules vs another namespace",
            [str(HERE / "tenant_limits.py"), "--series", "5000" if quick else "50000"]),
    ]
    return 0 if all(code == 0 for code in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
