"""Loopback target servers: generic TCP server, echo, HTTP, full-duplex sha256.

All bind port 0 on the given loopback address and run in daemon threads.
``close()`` stops accepting, shuts down live connections and joins threads
with a bound.
"""

from __future__ import annotations

import hashlib
import http.server
import queue
import random
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

from .proxy import Endpoint

IO_TIMEOUT = 60.0
JOIN_TIMEOUT = 5.0


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class TCPServer:
    """Accepts on host:0 and runs ``handler(conn, peer)`` in a thread per
    connection.  Peers are recorded in accept order (``accepted`` queue and
    ``peers`` list); handler exceptions are kept in ``errors``."""

    def __init__(self, handler, host: str = "127.0.0.1", backlog: int = 128,
                 io_timeout: float = IO_TIMEOUT):
        self.handler = handler
        self.io_timeout = io_timeout
        self.sock = socket.socket(family_of(host), socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(backlog)
        self.endpoint = Endpoint(host, self.sock.getsockname()[1])
        self.accepted: queue.Queue = queue.Queue()
        self.peers: list[tuple] = []
        self.errors: list[BaseException] = []
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True,
                                          name=f"tcpserver-{self.endpoint}")
        self._acceptor.start()

    @property
    def host(self) -> str:
        return self.endpoint.host

    @property
    def port(self) -> int:
        return self.endpoint.port

    @property
    def addr(self) -> tuple[str, int]:
        return self.endpoint.sockaddr

    def _accept_loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._closed:
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        conn, peer = self.sock.accept()
                    except OSError:
                        continue
                    conn.settimeout(self.io_timeout)
                    with self._lock:
                        if self._closed:
                            conn.close()
                            return
                        self._conns.add(conn)
                        self.peers.append(peer)
                        t = threading.Thread(target=self._serve, args=(conn, peer), daemon=True)
                        self._threads.append(t)
                    self.accepted.put(peer)
                    t.start()
        finally:
            sel.close()

    def _serve(self, conn: socket.socket, peer) -> None:
        try:
            self.handler(conn, peer)
        except BaseException as exc:  # kept for the test to inspect
            if not self._closed:
                self.errors.append(exc)
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def wait_accept(self, timeout: float = 5.0):
        """The peer address of the next accepted connection."""
        return self.accepted.get(timeout=timeout)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = list(self._conns)
            threads = list(self._threads)
        self._wake_w.send(b"x")
        self._acceptor.join(JOIN_TIMEOUT)
        self.sock.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + JOIN_TIMEOUT
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- handlers ---------------------------------------------------------------

def echo_handler(conn: socket.socket, peer) -> None:
    """Echo until EOF, then half-close and return."""
    buf = bytearray(1 << 16)
    view = memoryview(buf)
    for _ in range(1 << 20):  # at most 64 GiB; each recv bounded by the socket timeout
        n = conn.recv_into(buf)
        if n == 0:
            break
        conn.sendall(view[:n])
    conn.shutdown(socket.SHUT_WR)


class EchoServer(TCPServer):
    def __init__(self, host: str = "127.0.0.1", **kw):
        super().__init__(echo_handler, host, **kw)


def recv_all(sock: socket.socket, limit: int = 64 << 20, timeout: float = IO_TIMEOUT) -> bytes:
    """Read until EOF (bounded by ``limit`` bytes and ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    out = bytearray()
    while len(out) < limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no EOF within {timeout}s ({len(out)} bytes read)")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(min(1 << 16, limit - len(out)))
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return bytes(out)


# ---- HTTP -------------------------------------------------------------------

@dataclass
class HTTPRequest:
    path: str
    host_header: str | None
    client: tuple


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # bounds idle keep-alive connections

    def do_GET(self):  # noqa: N802 (http.server API)
        server: "_HTTPServer" = self.server  # type: ignore[assignment]
        server.owner._record(HTTPRequest(self.path, self.headers.get("Host"), self.client_address))
        body = server.owner.body_for(self.path)
        ctype = "text/html; charset=utf-8" if self.path.endswith(".html") else "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, owner, addr, family):
        self.address_family = family
        self.owner = owner
        super().__init__(addr, _Handler)


class HTTPServer:
    """GET /<path> returns ``body_for(path)``; ``pages`` overrides bodies."""

    def __init__(self, host: str = "127.0.0.1"):
        self.requests: list[HTTPRequest] = []
        self.pages: dict[str, bytes] = {}
        self._cond = threading.Condition()
        self._srv = _HTTPServer(self, (host, 0), family_of(host))
        self.endpoint = Endpoint(host, self._srv.server_address[1])
        self._thread = threading.Thread(target=self._srv.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def body_for(self, path: str) -> bytes:
        return self.pages.get(path, f"cleversocks-test {self.endpoint} {path}\n".encode())

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"http://{host or self.endpoint.url_host}:{self.endpoint.port}{path}"

    def _record(self, req: HTTPRequest) -> None:
        with self._cond:
            self.requests.append(req)
            self._cond.notify_all()

    def requests_for(self, path: str) -> list[HTTPRequest]:
        with self._cond:
            return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()
        self._thread.join(JOIN_TIMEOUT)


# ---- full-duplex sha256 -----------------------------------------------------

BLOCK = 1 << 20


def send_pattern(sock: socket.socket, seed: int, total: int) -> str:
    """Send ``total`` bytes of a seeded pattern (every 1 MiB block differs in
    its first 8 bytes) and return their sha256."""
    block = bytearray(random.Random(seed).randbytes(BLOCK))
    view = memoryview(block)
    h = hashlib.sha256()
    sent = 0
    counter = 0
    while sent < total:
        n = min(BLOCK, total - sent)
        block[0:8] = counter.to_bytes(8, "little")
        counter += 1
        sock.sendall(view[:n])
        h.update(view[:n])
        sent += n
    return h.hexdigest()


def recv_hash(sock: socket.socket, limit: int) -> tuple[int, str]:
    """Receive until EOF (at most ``limit`` + 1 bytes) and hash."""
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    h = hashlib.sha256()
    got = 0
    while got <= limit:
        n = sock.recv_into(buf)
        if n == 0:
            break
        h.update(view[:n])
        got += n
    return got, h.hexdigest()


@dataclass
class DuplexResult:
    sent_sha: str = ""
    recv_bytes: int = 0
    recv_sha: str = ""
    errors: list = field(default_factory=list)


class DuplexHashServer(TCPServer):
    """Per connection: send ``total`` bytes (seed ``seed``) while receiving and
    hashing until EOF, at the same time; half-close after sending.  Results go
    to ``results`` (a queue)."""

    def __init__(self, total: int, seed: int, host: str = "127.0.0.1"):
        self.total = total
        self.seed = seed
        self.results: queue.Queue = queue.Queue()
        super().__init__(self._handle, host, io_timeout=120.0)

    def _handle(self, conn: socket.socket, peer) -> None:
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            conn.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
        res = DuplexResult()

        def sender():
            try:
                res.sent_sha = send_pattern(conn, self.seed, self.total)
                conn.shutdown(socket.SHUT_WR)
            except BaseException as exc:
                res.errors.append(exc)

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        try:
            res.recv_bytes, res.recv_sha = recv_hash(conn, self.total)
        except BaseException as exc:
            res.errors.append(exc)
        t.join(self.io_timeout)
        self.results.put(res)
