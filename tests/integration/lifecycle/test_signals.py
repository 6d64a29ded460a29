"""SIGTERM / SIGINT: stop accepting, let open tunnels finish up to
--drain-timeout, exit 0."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import pytest

from support import socksclient as sc

DRAIN_LONG = "30"


def new_clients_refused(proxy, deadline: float) -> bool:
    """True once a new client is no longer served: the connect is refused,
    or the connection gets no method reply / is closed.  Attempts are paced
    by waiting on the proxy process (which must stay alive meanwhile)."""
    for _ in range(100):
        try:
            with sc.connect(proxy.addr, timeout=1) as s:
                s.sendall(sc.greeting(sc.NO_AUTH))
                try:
                    if sc.read_method(s, timeout=1) != b"\x05\x00":
                        return True
                except (EOFError, TimeoutError):
                    return True
        except (ConnectionRefusedError, ConnectionResetError, socket.timeout):
            return True
        if time.monotonic() > deadline:
            return False
        try:
            proxy.proc.wait(timeout=0.05)
            return False  # exited: not the state we want to observe
        except subprocess.TimeoutExpired:
            pass
    return False


@pytest.mark.parametrize("loop", [[], ["--busy-poll", "10ms"]], ids=["sleeping", "polling"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_idle_proxy_exits_zero_on_signal(make_proxy, sig, loop):
    proxy = make_proxy(*loop)
    proxy.send_signal(sig)
    assert proxy.wait_exit(5) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_drain_keeps_open_tunnel_working_then_exits_when_it_closes(make_proxy, echo_server, sig):
    proxy = make_proxy("--drain-timeout", DRAIN_LONG)
    sock, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", echo_server.port)
    with sock:
        sc.echo_roundtrip(sock, b"before signal")
        proxy.send_signal(sig)
        t0 = time.monotonic()
        assert new_clients_refused(proxy, t0 + 5), "still accepting new clients while draining"
        # the open tunnel keeps working in both directions during the drain
        for i in range(5):
            sc.echo_roundtrip(sock, b"draining %d " % i * 1000)
        assert proxy.proc.poll() is None, "exited while a tunnel was still open"
        sock.shutdown(socket.SHUT_WR)
        assert sc.read_until_closed(sock) == b""
    # the last tunnel closed: exit promptly, long before --drain-timeout
    assert proxy.wait_exit(5) == 0
    assert time.monotonic() - t0 < 10


def test_drain_deadline_closes_remaining_tunnels(make_proxy, echo_server):
    proxy = make_proxy("--drain-timeout", "1")
    sock, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", echo_server.port)
    with sock:
        sc.echo_roundtrip(sock, b"before signal")
        proxy.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        assert proxy.wait_exit(8) == 0
        elapsed = time.monotonic() - t0
        assert 0.7 <= elapsed <= 5, f"exited {elapsed:.2f}s after SIGTERM with --drain-timeout 1"
        assert sc.read_until_closed(sock, timeout=5) == b""  # the tunnel was closed

