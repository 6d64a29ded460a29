"""Graceful shutdown as an orchestrator sees it: on SIGTERM readiness flips
to 503 first, new connections are refused, open tunnels keep working until
they close or the drain deadline (timeouts.drain) passes, exit code 0."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from support import socksclient as sc
from support.ops import tunnel
from support.servers import EchoServer

SIGNAL_RE = r"signal 15: no longer accepting; draining (\d+) session\(s\), deadline (\d+) ms"


def refused_soon(proxy, attempts: int = 50) -> bool:
    """A new client is not served within a few attempts: the listeners close
    right after readiness flips (a connection that raced the close may still
    be served; the next one must not be)."""
    for _ in range(attempts):
        if refused(proxy.addr):
            return True
        if proxy.proc.poll() is not None:
            return False
    return False


def refused(addr) -> bool:
    """A new client is not served: connect refused, or closed without an
    answer to its greeting."""
    try:
        with sc.connect(addr, timeout=2) as s:
            s.sendall(sc.greeting(sc.NO_AUTH))
            try:
                return sc.read_method(s, timeout=2) != b"\x05\x00"
            except (EOFError, TimeoutError):
                return True
    except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
        return True


@pytest.mark.deadline(40)
def test_sigterm_flips_readiness_refuses_new_clients_and_drains(ops):
    with EchoServer() as target:
        p = ops({"timeouts": {"drain": "30s"}})
        assert p.admin.get("/ready").status == 200
        tunnels = [tunnel(p.addr, target.port) for _ in range(2)]
        try:
            for s in tunnels:
                sc.echo_roundtrip(s, b"before")
            start = p.mark()
            p.proxy.send_signal(signal.SIGTERM)
            _, m = p.log.wait_for(SIGNAL_RE, 5, start)
            assert (m.group(1), m.group(2)) == ("2", "30000")
            t0 = time.monotonic()
            # readiness is false from the moment the signal is handled
            r = p.admin.get("/ready")
            assert (r.status, r.text) == (503, "not ready\n")
            st = p.admin.status()
            assert st["ready"] is False and st["sessions_active"] == 2
            assert p.admin.get("/health").status == 200  # alive, just not ready
            assert "cleversocks_ready 0" in p.admin.metrics_text().splitlines()
            assert refused_soon(p.proxy), "new clients are still served during the drain"
            # the open tunnels keep working, both ways, with more than a ping
            for i, s in enumerate(tunnels):
                sc.echo_roundtrip(s, bytes([65 + i]) * 200_000, timeout=10)
            assert p.proxy.proc.poll() is None
            # close one: still draining the other
            tunnels[0].shutdown(socket.SHUT_WR)
            assert sc.read_until_closed(tunnels[0]) == b""
            sc.echo_roundtrip(tunnels[1], b"last one standing")
            assert p.proxy.proc.poll() is None
            tunnels[1].shutdown(socket.SHUT_WR)
            assert sc.read_until_closed(tunnels[1]) == b""
            assert p.proxy.wait_exit(10) == 0
            assert time.monotonic() - t0 < 10, "did not exit promptly after the last tunnel closed"
            assert any("stopped" in line for line in p.log.snapshot()[start:])
        finally:
            for s in tunnels:
                s.close()


@pytest.mark.deadline(30)
def test_drain_deadline_from_the_file_and_changed_by_reload(ops):
    """timeouts.drain is live: a reload changes the deadline SIGTERM uses;
    tunnels still open at the deadline are closed and the exit code is 0."""
    with EchoServer() as target:
        p = ops({"timeouts": {"drain": "30s"}})
        start = p.mark()
        p.write({"timeouts": {"drain": "1s"}})
        assert p.wait_reloaded("file change", start) == 2
        s = tunnel(p.addr, target.port)  # never closed by the client
        with s:
            sc.echo_roundtrip(s, b"x")
            start = p.mark()
            p.proxy.send_signal(signal.SIGTERM)
            _, m = p.log.wait_for(SIGNAL_RE, 5, start)
            assert m.group(2) == "1000"
            t0 = time.monotonic()
            assert p.admin.get("/ready").status == 503
            sc.echo_roundtrip(s, b"still inside the deadline")
            assert p.proxy.wait_exit(10) == 0
            elapsed = time.monotonic() - t0
            assert 0.5 <= elapsed <= 6, f"exited {elapsed:.2f}s after SIGTERM with a 1s drain"
            assert sc.read_until_closed(s, timeout=5) == b""
            assert any("drain deadline reached: ending 1 remaining session(s)" in line
                       for line in p.log.snapshot()[start:])


def test_reload_refused_while_draining(ops):
    with EchoServer() as target:
        p = ops({"timeouts": {"drain": "30s"}})
        s = tunnel(p.addr, target.port)
        with s:
            start = p.mark()
            p.proxy.send_signal(signal.SIGTERM)
            p.log.wait_for(SIGNAL_RE, 5, start)
            r = p.admin.reload()
            assert r.status == 422
            assert r.json()["errors"] == ["shutting down"]
            s.shutdown(socket.SHUT_WR)
            assert sc.read_until_closed(s) == b""
        assert p.proxy.wait_exit(10) == 0
