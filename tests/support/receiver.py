"""A tiny HTTP webhook receiver on loopback: records every POST, can fail or be stopped.

Notification channels in the tests are Apprise ``json://127.0.0.1:PORT/path`` URLs pointing here.
``fail_with(500)`` makes it answer errors (each attempt is still recorded, with its status);
``stop()`` closes the socket (connection refused); ``start()`` listens again on the same port.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    status: int
    body: Any
    headers: dict[str, str]
    received_at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def handoff(self) -> dict[str, Any]:
        return (self.body or {}).get("handoff") or {} if isinstance(self.body, dict) else {}


class Receiver:
    def __init__(self, port: int | None = None):
        self.port = port or 0  # 0: the first start binds a port the kernel picks; restarts bind it again
        self.requests: list[Request] = []
        self.status = 200
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/hook", scheme: str = "json") -> str:
        """The Apprise URL of a path on this receiver."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    # -- behaviour -------------------------------------------------------------------------------
    def fail_with(self, status: int = 500) -> None:
        self.status = status

    def recover(self) -> None:
        self.status = 200

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw.decode() or "null")
                except ValueError:
                    body = raw.decode(errors="replace")
                status = receiver.status
                with receiver._lock:
                    receiver.requests.append(Request(self.path, status, body, dict(self.headers.items())))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # quiet
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"receiver:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    # -- what arrived ------------------------------------------------------------------------------
    def received(self, path: str | None = None, ok_only: bool = True, event: str | None = None,
                 key: str | None = None) -> list[Request]:
        with self._lock:
            requests = list(self.requests)
        return [r for r in requests
                if (path is None or r.path == path) and (not ok_only or r.ok)
                and (event is None or r.handoff.get("type") == event)
                and (key is None or r.handoff.get("key") == key)]
