"""tools/devenv/processes.py: a server that loses its port to another process starts again on a fresh one."""

from __future__ import annotations

import socket
import sys
import urllib.request

import pytest

from tools.devenv.processes import (
    ManagedProcess,
    PortTaken,
    ProcessExited,
    free_port,
    on_fresh_ports,
    refused_port,
    wait_until,
)


class HttpServer:
    """``python -m http.server`` as a child process: the shape of every server devenv starts."""

    def __init__(self, workdir, port: int):
        self.workdir, self.port = workdir, port
        self.process: ManagedProcess | None = None
        self.starts = 0

    def pick_port(self) -> None:
        self.port = free_port()

    def start(self) -> None:
        self.starts += 1
        self.process = ManagedProcess("http", [sys.executable, "-m", "http.server", str(self.port),
                                               "--bind", "127.0.0.1"], self.workdir).start()
        wait_until(self.ready, 30, interval=0.05, what="http.server")

    def ready(self) -> bool:
        assert self.process is not None
        self.process.check_alive()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2) as response:
            return response.status == 200


@pytest.fixture
def taken_port():
    """A port another process (here: this one) listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_server_that_finds_its_port_taken_raises_port_taken(tmp_path, taken_port):
    server = HttpServer(tmp_path, taken_port)
    with pytest.raises(PortTaken, match="http exited"):
        server.start()


def test_on_fresh_ports_starts_it_again_on_another_port(tmp_path, taken_port):
    server = HttpServer(tmp_path, taken_port)
    on_fresh_ports(server.start, server.pick_port)
    try:
        assert server.starts == 2 and server.port != taken_port
        assert server.ready()
    finally:
        server.process.stop()


def test_any_other_exit_is_not_retried(tmp_path):
    argv = [sys.executable, "-c", "raise SystemExit('no config')"]
    process = ManagedProcess("crash", argv, tmp_path).start()
    process.proc.wait(30)
    with pytest.raises(ProcessExited) as raised:
        on_fresh_ports(process.check_alive, lambda: pytest.fail("picked new ports for a crash"))
    assert not isinstance(raised.value, PortTaken) and "no config" in str(raised.value)


def test_an_old_port_clash_in_the_appended_log_does_not_count_for_the_next_start(tmp_path, taken_port):
    argv = [sys.executable, "-m", "http.server", str(taken_port), "--bind", "127.0.0.1"]
    first = ManagedProcess("http", argv, tmp_path).start()
    first.proc.wait(30)
    with pytest.raises(PortTaken):
        first.check_alive()
    second = ManagedProcess("http", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path).start()
    second.proc.wait(30)
    with pytest.raises(ProcessExited) as raised:
        second.check_alive()
    assert not isinstance(raised.value, PortTaken)


def test_refused_port_refuses_connections_while_held():
    with refused_port() as port:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            with pytest.raises(ConnectionRefusedError):
                client.connect(("127.0.0.1", port))
