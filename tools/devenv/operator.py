"""The operator as a real process (``python -m incident_operator``), as it runs in a cluster."""

from __future__ import annotations

import os
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from .processes import ManagedProcess, free_port, on_fresh_ports, wait_until


class OperatorProcess:
    def __init__(self, kubeconfig: Path, config: dict[str, Any] | None = None, namespaces: list[str] | None = None,
                 workdir: Path | None = None, name: str = "operator", extra_env: dict[str, str] | None = None,
                 die_with_parent: bool = False, verbose: bool = True):
        self.die_with_parent = die_with_parent
        self.verbose = verbose
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="incident-op-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = kubeconfig
        self.health_port = free_port()
        self.metrics_port = free_port()
        config = dict(config or {})
        config.setdefault("metrics", {"port": self.metrics_port})
        config.setdefault("health", {"port": self.health_port})
        self.metrics_port = config["metrics"]["port"]
        self.config = config
        self.config_path = self.workdir / f"{name}-config.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.namespaces = namespaces or []
        self.name = name
        self.extra_env = extra_env or {}
        self.process: ManagedProcess | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "incident_operator", "--config", str(self.config_path),
                f"--liveness=http://127.0.0.1:{self.health_port}/healthz"]
        if self.verbose:
            argv.append("--verbose")
        for namespace in self.namespaces:
            argv += ["--namespace", namespace]
        return argv

    def start(self, wait: bool = True) -> "OperatorProcess":
        """Starts the operator; with ``wait``, until /healthz answers, on fresh ports if one was taken."""
        if not wait:
            self._launch()
            return self

        def launch_and_wait() -> None:
            self._launch()
            wait_until(self.healthy, 60, interval=0.2, what=f"{self.name} /healthz")

        on_fresh_ports(launch_and_wait, self._pick_fresh_ports)
        return self

    def _launch(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1", **self.extra_env}
        self.process = ManagedProcess(self.name, self.argv(), self.workdir, env=env,
                                      die_with_parent=self.die_with_parent).start()

    def _pick_fresh_ports(self) -> None:
        """After losing a port: new ports for every server it runs (the config file is written again).

        Read them back from :attr:`health_port`, :attr:`metrics_port`, :attr:`intake_port`.
        """
        self.health_port, self.metrics_port = free_port(), free_port()
        self.config["metrics"] = {**(self.config.get("metrics") or {}), "port": self.metrics_port}
        if (self.config.get("alertmanager") or {}).get("port"):
            self.config["alertmanager"] = {**self.config["alertmanager"], "port": free_port()}
        if (self.config.get("intake") or {}).get("port"):
            self.config["intake"] = {**self.config["intake"], "port": free_port()}
        self.config_path.write_text(yaml.safe_dump(self.config))

    @property
    def intake_port(self) -> int | None:
        """The port of its intake server (``intake.port``, else ``alertmanager.port``), if configured."""
        return (self.config.get("intake") or {}).get("port") or (self.config.get("alertmanager") or {}).get("port")

    @property
    def alert_receiver_port(self) -> int | None:
        """The port of its Alertmanager webhook receiver: the intake server's."""
        return self.intake_port

    def healthy(self) -> bool:
        if self.process is not None:
            self.process.check_alive()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as response:
            return response.status == 200

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace") if self.process else ""
