"""The tunnel after CONNECT: half-close in both directions, idle timeout,
many tunnels at once."""

from __future__ import annotations

import hashlib
import os
import queue
import socket
import subprocess
import threading
import time

import pytest

from support import socksclient as sc
from support.servers import EchoServer, TCPServer, recv_all

BODY = bytes(range(256)) * 400  # 100 KiB
# Each relay engine (--relay), and the default one on event loops that poll
# before they sleep (--busy-poll): every test below runs with each.
ENGINES = {
    "adaptive": ["--relay", "adaptive"],
    "splice": ["--relay", "splice"],
    "copy": ["--relay", "copy"],
    "busy-poll": ["--busy-poll", "200us"],
}


@pytest.fixture(params=list(ENGINES))
def engine(request):
    """The proxy's arguments for one engine."""
    return ENGINES[request.param]


@pytest.fixture
def relay_proxy(make_proxy, engine):
    """A no-auth proxy on 127.0.0.1:0 and [::1]:0 using one relay engine."""
    return make_proxy(*engine, listen=["127.0.0.1:0", "[::1]:0"])


def test_client_eof_is_forwarded_and_reverse_direction_keeps_flowing(relay_proxy):
    """Client sends, then SHUT_WR.  The target must see EOF (it answers only
    after EOF), and its answer must still reach the half-closed client."""
    def handler(conn, peer):
        data = recv_all(conn, timeout=10)
        conn.sendall(b"got " + str(len(data)).encode() + b" " + hashlib.sha256(data).hexdigest().encode())
        # close without shutdown: the proxy must still deliver everything

    with TCPServer(handler) as target:
        sock, _ = sc.open_tunnel(relay_proxy.addr, "127.0.0.1", target.port)
        with sock:
            sock.sendall(BODY)
            sock.shutdown(socket.SHUT_WR)
            answer = sc.read_until_closed(sock, timeout=10)
        assert answer == b"got %d %s" % (len(BODY), hashlib.sha256(BODY).hexdigest().encode())
        assert not target.errors, target.errors


def test_target_eof_is_forwarded_and_client_direction_keeps_flowing(relay_proxy):
    """The target sends, then SHUT_WR, then keeps reading.  The client must
    see EOF after all the bytes, and what it sends afterwards must still reach
    the target."""
    received: queue.Queue = queue.Queue()

    def handler(conn, peer):
        conn.sendall(BODY)
        conn.shutdown(socket.SHUT_WR)
        received.put(recv_all(conn, timeout=10))

    with TCPServer(handler) as target:
        sock, _ = sc.open_tunnel(relay_proxy.addr, "127.0.0.1", target.port)
        with sock:
            first = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # until EOF from the target
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                first += chunk
            else:
                pytest.fail("target's EOF was not forwarded to the client")
            assert first == BODY
            late = b"written after the target half-closed" * 100
            sock.sendall(late)
            sock.shutdown(socket.SHUT_WR)
            assert received.get(timeout=10) == late
            assert sc.read_until_closed(sock, timeout=10) == b""
        assert not target.errors, target.errors


def test_both_directions_half_closed_ends_the_session(relay_proxy, echo_server):
    sock, _ = sc.open_tunnel(relay_proxy.addr, "127.0.0.1", echo_server.port)
    with sock:
        sock.sendall(b"ping")
        sock.shutdown(socket.SHUT_WR)
        assert sc.read_until_closed(sock, timeout=10) == b"ping"


def test_idle_timeout_closes_the_tunnel(make_proxy, engine):
    peer_eof = threading.Event()

    def handler(conn, peer):
        conn.settimeout(15)
        if recv_all(conn, timeout=15) == b"":
            peer_eof.set()

    proxy = make_proxy("--idle-timeout", "1", *engine)
    with TCPServer(handler) as target:
        sock, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", target.port)
        t0 = time.monotonic()
        with sock:
            data = sc.read_until_closed(sock, timeout=8)
        elapsed = time.monotonic() - t0
        assert data == b""
        assert 0.7 <= elapsed <= 5, f"idle tunnel closed after {elapsed:.2f}s with --idle-timeout 1"
        assert peer_eof.wait(5), "the target side of the idle tunnel was not closed"


def test_active_tunnel_outlives_idle_timeout(make_proxy, echo_server, engine):
    """Traffic every ~0.3 s for 3 s keeps a --idle-timeout 1 tunnel open."""
    proxy = make_proxy("--idle-timeout", "1", *engine)
    sock, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", echo_server.port)
    with sock:
        t0 = time.monotonic()
        rounds = 0
        while time.monotonic() - t0 < 3 and rounds < 50:
            sc.echo_roundtrip(sock, b"keepalive %d" % rounds)
            rounds += 1
            assert sc.is_open_after(sock, 0.3), f"tunnel closed after {time.monotonic() - t0:.2f}s"
        assert rounds >= 5


def test_idle_timeout_resets_on_one_way_traffic(make_proxy, engine):
    """Data flowing only target -> client also counts as activity."""
    stop = threading.Event()

    def handler(conn, peer):
        for i in range(40):
            if stop.wait(0.1):
                break
            conn.sendall(b"tick %d\n" % i)

    proxy = make_proxy("--idle-timeout", "1", *engine)
    with TCPServer(handler) as target:
        sock, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", target.port)
        with sock:
            got = b""
            t0 = time.monotonic()
            while time.monotonic() - t0 < 2.5:
                sock.settimeout(2)
                chunk = sock.recv(4096)
                assert chunk, f"tunnel closed after {time.monotonic() - t0:.2f}s despite traffic"
                got += chunk
            stop.set()
            assert got.startswith(b"tick 0\n")


@pytest.mark.parametrize("workers", ["1", "3"])
def test_many_concurrent_tunnels(make_proxy, echo_server, workers):
    proxy = make_proxy("-w", workers)
    n = 120
    socks = []
    try:
        for i in range(n):
            sock = sc.connect(proxy.addr)
            socks.append(sock)
            sock.sendall(sc.greeting(sc.NO_AUTH) + sc.request("127.0.0.1", echo_server.port))
        for sock in socks:
            assert sc.read_method(sock) == b"\x05\x00"
            assert sc.read_reply(sock).rep == sc.REP_SUCCEEDED
        for i, sock in enumerate(socks):
            sock.sendall(b"tunnel %d" % i)
        for i, sock in enumerate(socks):
            assert sc.recv_exact(sock, len(b"tunnel %d" % i)) == b"tunnel %d" % i
    finally:
        for sock in socks:
            sock.close()


def test_target_closing_immediately(relay_proxy):
    """The target accepts and closes at once: the client gets the success
    reply and then EOF, not a hang."""
    with TCPServer(lambda conn, peer: None) as target:
        sock, _ = sc.open_tunnel(relay_proxy.addr, "127.0.0.1", target.port)
        with sock:
            assert sc.read_until_closed(sock, timeout=10) == b""


def test_target_reset_closes_client(relay_proxy):
    def handler(conn, peer):
        conn.recv(16)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    with TCPServer(handler) as target:
        sock, _ = sc.open_tunnel(relay_proxy.addr, "127.0.0.1", target.port)
        with sock:
            sock.sendall(b"trigger reset")
            sc.read_until_closed(sock, timeout=10)


def test_tunnel_through_ipv6_everything(relay_proxy, echo_server6):
    ep = relay_proxy.endpoint_for(socket.AF_INET6)
    sock, reply = sc.open_tunnel(ep.sockaddr, "::1", echo_server6.port)
    with sock:
        assert reply.atyp == sc.ATYP_IPV6
        sc.echo_roundtrip(sock, BODY)


def test_echo_server_sanity():
    """The echo server itself (no proxy) half-closes after EOF."""
    with EchoServer() as target:
        with socket.create_connection(target.addr, timeout=5) as s:
            s.sendall(b"abc")
            s.shutdown(socket.SHUT_WR)
            assert recv_all(s, timeout=5) == b"abc"


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_busy_poll_workers_sleep_once_traffic_stops(make_proxy, echo_server):
    """--busy-poll spends CPU only while events keep coming: once the tunnel
    is quiet, every worker sleeps.  Over a quiet half second (timed by waiting
    on the process, which must stay up) the proxy uses a few ms of CPU, not
    the half second per worker a loop that never sleeps burns."""
    proxy = make_proxy("--busy-poll", "10ms", "-w", "2")
    sock, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", echo_server.port)
    with sock:
        for i in range(20):
            sc.echo_roundtrip(sock, b"ping %d" % i)
        before = proc_cpu_seconds(proxy.proc.pid)
        with pytest.raises(subprocess.TimeoutExpired):
            proxy.proc.wait(timeout=0.5)
        used = proc_cpu_seconds(proxy.proc.pid) - before
        sc.echo_roundtrip(sock, b"still open")
    assert used < 0.2, f"the proxy used {used:.2f} s of CPU in a quiet 0.5 s"
