"""The admin HTTP API of a running proxy: find its address in the log and
make bounded requests to it.

CleverSocks logs ``admin API at http://ADDR:PORT/`` once the admin listener
is bound (``--admin-listen 127.0.0.1:0`` in DEFAULT_ARGS picks a free port).
Requests use ``http.client`` with a timeout; raw requests (oversized headers,
bodies) go through a plain socket.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from dataclasses import dataclass

from .proxy import Endpoint

ADMIN_RE = re.compile(r"admin API at http://(\[[0-9A-Fa-f:.]+\]|\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})/")
HTTP_TIMEOUT = 10.0


def admin_endpoint(proxy, timeout: float = 10.0) -> Endpoint:
    """The admin listener's address, from the proxy's log (waits for it)."""
    _, m = proxy.log.wait_for(ADMIN_RE, timeout)
    return Endpoint(m.group(1).strip("[]"), int(m.group(2)))


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


class AdminClient:
    """GET/POST against one proxy's admin API (a new connection per request)."""

    def __init__(self, endpoint: Endpoint, timeout: float = HTTP_TIMEOUT):
        self.endpoint = endpoint
        self.timeout = timeout

    @classmethod
    def of(cls, proxy, timeout: float = 10.0) -> "AdminClient":
        return cls(admin_endpoint(proxy, timeout))

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        conn = http.client.HTTPConnection(self.endpoint.host, self.endpoint.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, body: bytes = b"") -> Response:
        return self.request("POST", path, body=body)

    def status(self) -> dict:
        r = self.get("/api/v1/status")
        assert r.status == 200, f"/api/v1/status: {r.status} {r.text}"
        return r.json()

    def generation(self) -> int:
        return int(self.status()["config_generation"])

    def reload(self) -> Response:
        return self.post("/api/v1/reload")

    def metrics_text(self) -> str:
        r = self.get("/metrics")
        assert r.status == 200, f"/metrics: {r.status} {r.text}"
        return r.text

    def raw(self, data: bytes, timeout: float | None = None) -> tuple[bytes, bool]:
        """Send ``data`` as is on a new connection and read until the server
        closes.  Returns (bytes received, closed_by_server)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with socket.create_connection(self.endpoint.sockaddr, timeout=self.timeout) as s:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may stop reading (and close) before all is sent
            out = bytearray()
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return bytes(out), False
                s.settimeout(left)
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    return bytes(out), False
                except ConnectionResetError:
                    return bytes(out), True
                if not chunk:
                    return bytes(out), True
                out += chunk
