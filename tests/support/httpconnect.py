"""A small HTTP CONNECT proxy (RFC 9110 §9.3.6) for the routing tests: the
upstream CleverSocks dials with an ``http://`` upstream URL.

    proxy = HTTPConnectProxy(credentials=("bob", "secret"), hosts={"web.test": "127.0.0.1"})
    ...  # upstream URL: http://bob:secret@127.0.0.1:{proxy.port}
    proxy.close()

Per CONNECT it answers, in this order:
  - 405 for any other method, 400 for a malformed request line;
  - 407 (with ``Proxy-Authenticate``) when ``credentials`` are set and the
    ``Proxy-Authorization: Basic`` header does not carry them;
  - 403 for an authority in ``deny`` ("host:port" as requested);
  - ``status`` (e.g. 504) when set: a forced failure for every request;
  - 502 when the target cannot be reached (names come from ``hosts``, else
    must be IP literals);
  - otherwise "200 Connection established" and a relay both ways with
    half-close.  With ``coalesce`` the target's first bytes are sent in the
    same write as the 200 head (a server-speaks-first protocol through a
    proxy that does not wait), so the client sees them as part of the reply.

``delay`` (seconds) is added before answering: a slow upstream, for the
least-latency strategy.  Every request is recorded in ``requests`` as
(authority, Proxy-Authorization value or None).  Runs on tests/support's
TCPServer (thread per connection, bounded I/O).
"""

from __future__ import annotations

import base64
import selectors
import socket
import threading
import time

from .servers import TCPServer

MAX_HEAD = 16384


def _read_head(conn: socket.socket) -> bytes | None:
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEAD:
            return None
        chunk = conn.recv(4096)
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _split_authority(authority: str) -> tuple[str, int]:
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        return host, int(rest.lstrip(":"))
    host, _, port = authority.rpartition(":")
    return host, int(port)


def relay(a: socket.socket, b: socket.socket, timeout: float) -> None:
    """Copies both ways until both directions saw EOF (half-close passed on)
    or nothing moved for ``timeout`` seconds."""
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    open_dirs = 2
    try:
        while open_dirs:
            events = sel.select(timeout)
            if not events:
                return
            for key, _ in events:
                src, dst = key.fileobj, key.data
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                if data:
                    try:
                        dst.sendall(data)
                        continue
                    except OSError:
                        pass
                sel.unregister(src)
                open_dirs -= 1
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
    finally:
        sel.close()


class HTTPConnectProxy(TCPServer):
    def __init__(self, host: str = "127.0.0.1", *, credentials: tuple[str, str] | None = None,
                 hosts: dict[str, str] | None = None, deny=(), status: int | None = None,
                 delay: float = 0.0, coalesce: bool = False):
        self.credentials = credentials
        self.hosts = dict(hosts or {})
        self.deny = set(deny)
        self.status = status
        self.delay = delay
        self.coalesce = coalesce
        self.requests: list[tuple[str, str | None]] = []
        self._req_lock = threading.Lock()
        super().__init__(self._handle, host)

    def _send_status(self, conn: socket.socket, status: int, reason: str, extra: str = "") -> None:
        conn.sendall(f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: 0\r\n"
                     f"Connection: close\r\n\r\n".encode())

    def _handle(self, conn: socket.socket, peer) -> None:
        head = _read_head(conn)
        if head is None:
            return
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return self._send_status(conn, 400, "Bad Request")
        method, authority, _ = parts
        auth = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "proxy-authorization":
                auth = value.strip()
        with self._req_lock:
            self.requests.append((authority, auth))
        if method != "CONNECT":
            return self._send_status(conn, 405, "Method Not Allowed")
        if self.credentials is not None:
            want = "Basic " + base64.b64encode(
                f"{self.credentials[0]}:{self.credentials[1]}".encode()).decode()
            if auth != want:
                return self._send_status(conn, 407, "Proxy Authentication Required",
                                         'Proxy-Authenticate: Basic realm="cs-test"\r\n')
        if authority in self.deny:
            return self._send_status(conn, 403, "Forbidden")
        if self.status is not None:
            return self._send_status(conn, self.status, "Forced")
        if self.delay:
            time.sleep(self.delay)  # simulated upstream latency, not synchronisation
        try:
            host, port = _split_authority(authority)
            target = socket.create_connection((self.hosts.get(host, host), port), timeout=5)
        except (OSError, ValueError):
            return self._send_status(conn, 502, "Bad Gateway")
        with target:
            target.settimeout(self.io_timeout)
            ok = b"HTTP/1.1 200 Connection established\r\n\r\n"
            if self.coalesce:
                first = target.recv(65536)
                conn.sendall(ok + first)
            else:
                conn.sendall(ok)
            relay(conn, target, self.io_timeout)
