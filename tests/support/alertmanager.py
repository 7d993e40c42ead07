"""A real Prometheus Alertmanager on loopback whose webhook receiver is the operator's.

Debian's ``prometheus-alertmanager`` (``make apt-deps``). The generated configuration routes every
alert to one webhook receiver that sends ``Authorization: Bearer <token>``
(``http_config.authorization.credentials``), with short group_wait/group_interval/repeat_interval
so firing, repeat and resolved notifications arrive within seconds. Clustering is off.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.request
from pathlib import Path

import yaml

from tools.devenv.processes import ManagedProcess, free_port, on_fresh_ports, wait_until


def alertmanager_binary() -> str:
    for name in ("prometheus-alertmanager", "alertmanager"):
        path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
        if path:
            return path
    raise RuntimeError("Alertmanager is not installed: `make apt-deps` installs Debian's prometheus-alertmanager")


class Alertmanager:
    def __init__(self, workdir: Path | None, webhook_url: str, token: str, group_by: list[str] | None = None,
                 group_wait: str = "1s", group_interval: str = "2s", repeat_interval: str = "3s",
                 send_resolved: bool = True):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="incident-am-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.webhook_url = webhook_url
        self.token = token
        self.group_by = group_by or ["alertname", "service"]
        self.group_wait, self.group_interval, self.repeat_interval = group_wait, group_interval, repeat_interval
        self.send_resolved = send_resolved
        self.process: ManagedProcess | None = None

    def config(self) -> dict:
        return {
            "route": {
                "receiver": "incident-operator",
                "group_by": self.group_by,
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
            },
            "receivers": [{
                "name": "incident-operator",
                "webhook_configs": [{
                    "url": self.webhook_url,
                    "send_resolved": self.send_resolved,
                    "http_config": {"authorization": {"type": "Bearer", "credentials": self.token}},
                }],
            }],
        }

    def start(self) -> "Alertmanager":
        on_fresh_ports(self._start, self._pick_port)
        return self

    def _pick_port(self) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"

    def _start(self) -> None:
        config_path = self.workdir / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(self.config()))
        self.process = ManagedProcess(
            "alertmanager",
            [
                alertmanager_binary(),
                f"--config.file={config_path}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address={self.address}",
                "--cluster.listen-address=",  # no gossip: a single instance
                "--log.level=info",
            ],
            self.workdir,
        ).start()
        wait_until(self._ready, 60, interval=0.2, what="alertmanager /-/ready")

    def _ready(self) -> bool:
        if self.process is not None:
            self.process.check_alive()
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
            return response.status == 200

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def alerts(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            return json.load(response)

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace") if self.process else ""
