"""make demo: one command brings everything up, shows a detected incident, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead, only not yet reaped by whoever inherited it
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and alive(int(entry.name)):
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def test_demo_shows_a_detected_incident_and_sigint_stops_everything(tmp_path):
    pidfile = tmp_path / "demo.pids"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # tools/ is the workshop (not installed): run it from the checkout, as `make demo` does.
    demo = subprocess.Popen(
        [sys.executable, "-m", "tools.demo", "--duration", "150", "--pidfile", str(pidfile)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env,
        cwd=REPO)
    lines: "queue.Queue[str | None]" = queue.Queue()

    def read() -> None:
        for line in demo.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    output: list[str] = []
    pids: dict[str, int] = {}
    workdir = None
    detected = None
    began = time.monotonic()
    try:
        while time.monotonic() - began < 120 and detected is None:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            output.append(line)
            if line.startswith("pids: "):
                pids = {k: int(v) for k, v in (item.split("=") for item in line[6:].split())}
            if line.strip().startswith("logs") and workdir is None:
                workdir = line.split()[1].split("/*")[0]
            if re.search(r"\] detected\s+\S+\s+P[1-4]\s+\S", line):
                detected = line
        took = time.monotonic() - began
        assert detected, "no incident detected within two minutes:\n" + "\n".join(output[-40:])
        assert set(pids) == {"etcd", "kube-apiserver", "prometheus", "operator"}, output
        assert {k: int(v) for k, v in json.loads(pidfile.read_text()).items()} == pids
        assert all(alive(pid) for pid in pids.values())
        assert any("KUBECONFIG" in line for line in output) and any("Prometheus  http://" in line for line in output)
        assert any("metrics     http://" in line for line in output)
        print(f"first incident after {took:.0f}s: {detected}")
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
        try:
            code = demo.wait(90)
        except subprocess.TimeoutExpired:
            demo.kill()
            raise
    while (line := lines.get(timeout=10)) is not None:
        output.append(line)
    assert code == 0, "\n".join(output[-30:])
    assert output[-1] == "demo: stopped; no process left behind.", output[-10:]
    assert [name for name, pid in pids.items() if alive(pid)] == []
    assert workdir and processes_mentioning(workdir) == []
    assert not Path(workdir).exists()  # the temporary folder is removed
    assert "Traceback" not in "\n".join(output)
