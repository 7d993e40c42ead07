"""Start and stop the servers the tests (and the demo) own, by PID, with their output kept in files.

Ports: a server in this process binds port 0 and reads its port back. A server in another process
(etcd, kube-apiserver, Prometheus, Alertmanager, the operator) is given a port from
:func:`free_port`, which another process on a busy machine may bind first; such a server then exits
with "address already in use", its start raises :class:`PortTaken`, and :func:`on_fresh_ports`
starts it again on new ports.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")
PORT_ATTEMPTS = 5
_ADDRESS_IN_USE = re.compile(r"address already in use", re.IGNORECASE)


def free_port() -> int:
    """A port nothing listens on right now (not reserved: see the module's docstring)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProcessExited(RuntimeError):
    """A server exited while we waited for it: :func:`wait_until` stops waiting at once."""


class PortTaken(ProcessExited):
    """A server exited because another process had bound its port first."""


def on_fresh_ports(start: Callable[[], T], pick_ports: Callable[[], None], attempts: int = PORT_ATTEMPTS) -> T:
    """``start()``; while a server loses its port to another process, ``pick_ports()`` and start again."""
    for attempt in range(1, attempts + 1):
        try:
            return start()
        except PortTaken:
            if attempt == attempts:
                raise
            pick_ports()
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections while the block runs: bound by us, never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGKILL it when its parent dies (even by SIGKILL)."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort; not Linux
        pass


class ManagedProcess:
    """A child process in its own process group, logging to a file.

    Its own process group keeps a terminal's Ctrl-C away from it: the owner stops it, in order.
    ``die_with_parent`` (Linux) also kills it if the owner is itself killed without cleaning up.
    """

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, env: dict | None = None,
                 die_with_parent: bool = False):
        self.die_with_parent = die_with_parent
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._log_offset = 0  # where this start's output begins in the (appended) log

    def start(self) -> "ManagedProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self._log_offset = log.tell()
        self.proc = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env, start_new_session=True,
            preexec_fn=_die_with_parent if self.die_with_parent else None,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def check_alive(self, what: str | None = None) -> None:
        """Raises :class:`PortTaken` or :class:`ProcessExited` (with the log's tail) if it has exited."""
        if self.alive():
            return
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            output = log.read().decode(errors="replace")
        error = PortTaken if _ADDRESS_IN_USE.search(output) else ProcessExited
        raise error(f"{what or self.name} exited:\n" + self.tail(60))

    def kill(self) -> None:
        """SIGKILL, no goodbye: what a node failure or OOM kill does."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass


def wait_until(check: Callable[[], object], timeout: float, interval: float = 0.1, what: str = "condition"):
    """Polls ``check`` until it returns a truthy value; returns that value.

    An exception from ``check`` is retried until the timeout, except :class:`ProcessExited`: a server
    that has exited will not answer later.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except ProcessExited:
            raise
        except Exception as error:  # noqa: BLE001 - reported below if it never succeeds
            last_error = error
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}" + (f": {last_error}" if last_error else ""))
