"""A real Prometheus server on loopback, scraping the targets tests register.

Targets go through ``file_sd_configs``: a test calls :meth:`Prometheus.add_target` and
Prometheus picks the file change up by itself, so one server serves the whole session.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from .processes import ManagedProcess, free_port, on_fresh_ports, wait_until


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if not path:
        raise RuntimeError("prometheus is not installed: `make deps` installs Debian's prometheus package")
    return path


class Prometheus:
    def __init__(self, workdir: Path | None = None, scrape_interval: str = "1s", rule_files: list[Path] | None = None,
                 die_with_parent: bool = False):
        self.die_with_parent = die_with_parent
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="incident-prom-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.scrape_interval = scrape_interval
        self.rule_files = [str(p) for p in (rule_files or [])]
        self.targets_dir = self.workdir / "targets"
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.process: ManagedProcess | None = None
        self.alertmanager_url: str | None = None

    def config(self) -> dict:
        config = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": [
                {
                    "job_name": "tests",
                    "file_sd_configs": [{"files": [str(self.targets_dir / "*.json")], "refresh_interval": "1s"}],
                }
            ],
        }
        if self.rule_files:
            config["rule_files"] = self.rule_files
        if self.alertmanager_url:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [self.alertmanager_url]}]}]}
        return config

    def start(self) -> "Prometheus":
        on_fresh_ports(self._start, self._pick_port)
        return self

    def _pick_port(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _start(self) -> None:
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config()))
        self.process = ManagedProcess(
            "prometheus",
            [
                prometheus_binary(),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            self.workdir,
            die_with_parent=self.die_with_parent,
        ).start()
        wait_until(self._ready, 60, interval=0.2, what="prometheus /-/ready")

    def _ready(self) -> bool:
        if self.process is not None:
            self.process.check_alive()
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
            return response.status == 200

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def add_target(self, name: str, address: str, labels: dict[str, str] | None = None) -> None:
        """Registers ``address`` (host:port) for scraping under job label ``name``."""
        path = self.targets_dir / f"{name}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": [address], "labels": {"target": name, **(labels or {})}}]))
        tmp.rename(path)

    def remove_target(self, name: str) -> None:
        (self.targets_dir / f"{name}.json").unlink(missing_ok=True)

    def query(self, expr: str) -> list[dict]:
        params = urllib.parse.urlencode({"query": expr, "time": f"{time.time():.3f}"})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{params}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for_target_up(self, name: str, timeout: float = 30) -> None:
        wait_until(
            lambda: any(s["value"][1] == "1" for s in self.query(f'up{{target="{name}"}}')),
            timeout, interval=0.25, what=f"target {name} to be scraped",
        )
