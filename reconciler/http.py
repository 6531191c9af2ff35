"""/healthz and /metrics, served from a daemon thread with the standard library's server.

/healthz answers 503, saying why, when a watch loop has not heard from the API server for
too long (it is dead or cannot reconnect) or a worker is stuck in one reconcile past its
bound, so that a liveness probe restarts the reconciler.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reconciler.metrics import Metrics
from reconciler.settings import HttpAddress


def serve(
    address: HttpAddress, healthy: Callable[[], tuple[bool, str]], metrics: Metrics
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                ok, why = healthy()
                self._reply(200 if ok else 503, f"{why}\n".encode())
            elif self.path == "/metrics":
                self._reply(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            else:
                self._reply(404, b"not found\n")

        def _reply(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Probes every few seconds would drown the reconciler's own log lines."""

    server = ThreadingHTTPServer((address.host, address.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
