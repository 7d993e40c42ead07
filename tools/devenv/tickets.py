"""A small ticket-metrics exporter for tests: the helpdesk's Prometheus counters, with a knob.

``support_tickets_created_total{topic=...}`` grows at a per-topic rate (tickets per second)
that a test changes at will, e.g. a baseline then a spike.
"""

from __future__ import annotations

import collections
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer



class TicketExporter:
    def __init__(self, rates: dict[str, float] | None = None, tick: float = 0.1):
        self._rates: dict[str, float] = dict(rates or {})
        self._counts: dict[str, float] = {topic: 0.0 for topic in self._rates}
        self._lock = threading.Lock()
        # When Prometheus scraped us (monotonic clock is not comparable across processes: wall clock).
        self.scrape_times: "collections.deque[float]" = collections.deque(maxlen=10_000)
        self._tick = tick
        self._stop = threading.Event()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                exporter.scrape_times.append(time.time())
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: the kernel picks, we read it
        self.port = self._server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True),
                         threading.Thread(target=self._grow, daemon=True)]

    def start(self) -> "TicketExporter":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def set_rate(self, topic: str, per_second: float) -> None:
        with self._lock:
            self._rates[topic] = per_second
            self._counts.setdefault(topic, 0.0)

    def _grow(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self._tick):
            now = time.monotonic()
            with self._lock:
                for topic, rate in self._rates.items():
                    self._counts[topic] += rate * (now - last)
            last = now

    def render(self) -> str:
        with self._lock:
            lines = ["# HELP support_tickets_created_total Support tickets created.",
                     "# TYPE support_tickets_created_total counter"]
            for topic, count in sorted(self._counts.items()):
                lines.append(f'support_tickets_created_total{{topic="{topic}"}} {int(count)}')
        return "\n".join(lines) + "\n"
