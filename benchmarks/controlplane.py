"""Local control plane: build (skipped when cached) and start-up time of kube-apiserver + etcd.

Usage: python benchmarks/controlplane.py [--runs 5]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools.devenv.controlplane import BUILD_SCRIPT, ControlPlane  # noqa: E402


def main() -> int:
    # A `timeout` or Ctrl-C must still stop the servers this benchmark started (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    began = time.monotonic()
    subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.DEVNULL)
    print(f"build step (cached binaries: version check only): {time.monotonic() - began:.2f} s")
    starts = []
    for _ in range(args.runs):
        cp = ControlPlane(Path(tempfile.mkdtemp(prefix="bench-cp-")))
        cp.start()
        starts.append(cp.started_in)
        cp.stop()
    print(f"control plane start (etcd + kube-apiserver to /readyz and the default namespace), {args.runs} runs: "
          f"median {statistics.median(starts):.2f} s, min {min(starts):.2f} s, max {max(starts):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
