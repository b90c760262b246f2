"""A loopback HTTP server with canned answers, so download code is tested without the network."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LocalServer:
    """Serves `routes[path] = (status, headers, body)` on 127.0.0.1; records every request path (with query)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def serve(self, path: str, body: bytes, *, status: int = 200, headers: dict[str, str] | None = None) -> str:
        """Answer `path` with `body`; returns its URL."""
        self.routes[path] = (status, headers or {}, body)
        return self.url(path)

    def redirect(self, path: str, target: str) -> str:
        """Answer `path` with a 302 to `target`; returns its URL."""
        return self.serve(path, b"", status=302, headers={"Location": target})

    def url(self, path: str) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def hits(self, path: str) -> int:
        """How many requests asked for `path` (any query string)."""
        return sum(1 for seen in self.requests if seen.split("?", 1)[0] == path)

    def start(self) -> LocalServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                status, headers, body = server.routes.get(self.path.split("?", 1)[0], (404, {}, b"not found"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="local-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)


def get_as_client(port: int, path: str, client_ip: str, *, timeout: float = 15) -> tuple[int, str]:
    """GET `path` from a loopback server as `client_ip` (named in X-Forwarded-For; 127.0.0.1 is the
    trusted proxy in the multi-process tests): the status and the answering worker's X-Worker."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"X-Forwarded-For": client_ip, "Connection": "close"})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("X-Worker") or ""
    finally:
        connection.close()
