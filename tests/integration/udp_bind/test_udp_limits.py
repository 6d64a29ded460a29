"""UDP ASSOCIATE limits (``udp.max_per_ip``, ``udp.max_per_user``,
``udp.rate``) and descriptor hygiene across 10,000 associations."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from support import constants as C
from support import routing as rt
from support import socksclient as sc
from support.servers import EchoServer
from support.udp import QUIET, Association, UDPEchoServer, fd_count, udp_header, wait_until

ASSOCIATIONS = int(os.environ.get("CS_UDP_ASSOCIATIONS", "10000"))


def refused(proxy, **kw) -> sc.Reply5:
    """A UDP ASSOCIATE that must be refused: returns the reply and checks the
    proxy then closes the control connection."""
    a = Association(proxy.addr, expect_ok=False, **kw)
    try:
        assert a.reply.rep != sc.REP_SUCCEEDED, f"expected a refusal, got {a.reply.raw.hex(' ')}"
        sc.expect_closed(a.tcp)
        return a.reply
    finally:
        a.close()


def test_max_per_ip(configured, metrics_of, udp_echo):
    """``udp.max_per_ip: 2``: a third concurrent association from the same IP
    is refused with REP 0x01; ending one makes room; CONNECT is not limited
    by it; another client IP has its own count."""
    proxy = configured({"udp": {"max_per_ip": 2}})
    with Association(proxy.addr) as a1, Association(proxy.addr) as a2:
        a1.roundtrip(udp_echo.addr, b"one")
        a2.roundtrip(udp_echo.addr, b"two")
        assert refused(proxy).rep == sc.REP_GENERAL
        with Association(proxy.addr, tcp_source="127.0.0.2") as other_ip:
            other_ip.roundtrip(udp_echo.addr, b"other-ip")
        with EchoServer() as tcp_echo:
            s, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", tcp_echo.port)
            with s:
                sc.echo_roundtrip(s, b"connect-unaffected")
        start = rt.mark(proxy)
        a1.close()
        rt.wait_access(proxy, start=start, cmd="udp", result="closed")
        with Association(proxy.addr) as a3:
            a3.roundtrip(udp_echo.addr, b"three")
        a2.roundtrip(udp_echo.addr, b"two-still")
    m = metrics_of(proxy)
    assert m("cleversocks_connections_rejected_total", reason="udp_associations") == 1
    assert m("cleversocks_udp_associations_total") == 4


def test_max_per_user(configured, metrics_of, udp_echo):
    """``udp.max_per_user: 1``: alice's second concurrent association is
    refused with REP 0x01, bob's is not."""
    proxy = configured({"udp": {"max_per_user": 1}},
                       "--user", f"{C.AUTH_USER}:{C.AUTH_PASSWORD}", "--user", "bob:builder")
    with Association(proxy.addr, user=C.AUTH_USER, password=C.AUTH_PASSWORD) as a:
        a.roundtrip(udp_echo.addr, b"alice")
        assert refused(proxy, user=C.AUTH_USER, password=C.AUTH_PASSWORD,
                       tcp_source="127.0.0.2").rep == sc.REP_GENERAL
        with Association(proxy.addr, user="bob", password="builder") as b:
            b.roundtrip(udp_echo.addr, b"bob")
    assert metrics_of(proxy)("cleversocks_connections_rejected_total", reason="udp_associations") == 1


def count_arrivals(a: Association, limit: int, first_timeout: float = 5.0) -> int:
    """Datagrams received until the relay stays quiet for QUIET (at most
    ``limit`` + 1 receives)."""
    got = 0
    timeout = first_timeout
    for _ in range(limit + 1):
        a.udp.settimeout(timeout)
        try:
            a.udp.recvfrom(65535)
        except socket.timeout:
            break
        got += 1
        timeout = QUIET
    return got


RATE = 5


def test_rate_limit_client_to_target(configured, metrics_of, udp_echo):
    """``udp.rate: 5``: a burst of 40 datagrams; about a second's worth (the
    bucket holds ``rate`` tokens) reaches the target, the rest is dropped and
    counted; a second association has its own budget."""
    proxy = configured({"udp": {"rate": RATE}})
    burst = 40
    with Association(proxy.addr) as a:
        t0 = time.monotonic()
        for i in range(burst):
            a.send(*udp_echo.addr, f"burst-{i}".encode())
        got = count_arrivals(a, burst)
        elapsed = time.monotonic() - t0
        allowed = RATE + int(elapsed * RATE) + 1
        assert 1 <= got <= allowed, f"{got} of {burst} datagrams relayed in {elapsed:.2f}s (rate {RATE}/s)"
        assert udp_echo.count == got
        with Association(proxy.addr) as b:
            b.roundtrip(udp_echo.addr, b"own-budget")
    dropped = metrics_of(proxy)("cleversocks_udp_dropped_total", reason="rate")
    assert dropped >= burst - allowed, f"{dropped} datagrams counted as rate-dropped"


def test_rate_limit_target_to_client(configured, metrics_of):
    """The limit applies to replies too: one request answered with 40
    datagrams reaches the client as about a second's worth."""
    proxy = configured({"udp": {"rate": RATE}})
    copies = 40
    with UDPEchoServer("127.0.0.1", copies=copies) as amplifier, Association(proxy.addr) as a:
        t0 = time.monotonic()
        a.send(*amplifier.addr, b"amplify-me")
        got = count_arrivals(a, copies)
        elapsed = time.monotonic() - t0
        allowed = RATE + int(elapsed * RATE) + 1
        assert 1 <= got <= allowed, f"{got} of {copies} replies relayed in {elapsed:.2f}s (rate {RATE}/s)"
    assert metrics_of(proxy)("cleversocks_udp_dropped_total", reason="rate") >= copies - allowed


def test_no_rate_limit_by_default(make_proxy, udp_echo):
    """``udp.rate: 0`` (the default): a burst of 40 all comes back."""
    proxy = make_proxy()
    with Association(proxy.addr) as a:
        for i in range(40):
            a.send(*udp_echo.addr, f"burst-{i}".encode())
        assert count_arrivals(a, 40) == 40


# ---- descriptors ------------------------------------------------------------------

def settle(proxy, baseline: int, timeout: float = 10.0) -> int:
    """Wait (paced by waiting on the process) until the proxy holds at most
    ``baseline`` descriptors; returns the last count."""
    def pace(t: float) -> None:
        try:
            proxy.proc.wait(timeout=t)
        except subprocess.TimeoutExpired:
            return
        raise AssertionError(f"the proxy exited: {proxy.unexpected_exit()}")
    wait_until(lambda: fd_count(proxy.proc.pid) <= baseline, timeout, pace)
    return fd_count(proxy.proc.pid)


@pytest.mark.deadline(120)
def test_many_associations_leave_no_descriptors(make_proxy, metrics_of, udp_echo, udp_echo6):
    """10,000 associations opened and closed one after another (every tenth
    relays a datagram, alternately to an IPv4 and an IPv6 target, so the
    outbound sockets are created and closed too) leave the proxy holding the
    descriptors it held before."""
    proxy = make_proxy("-w", "1")
    pid = proxy.proc.pid
    request = sc.greeting(sc.NO_AUTH) + sc.request("0.0.0.0", 0, sc.CMD_UDP)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u.settimeout(5)
    targets = [udp_header(*udp_echo.addr), udp_header(*udp_echo6.addr)]

    def one(i: int) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(5)
            s.connect(proxy.addr)
            s.sendall(request)  # greeting and request pipelined
            r = sc.recv_exact(s, 12)
            assert r[:5] == b"\x05\x00\x05\x00\x00", f"association {i}: {r.hex(' ')}"
            if i % 10 == 0:
                relay = (str(socket.inet_ntoa(r[6:10])), int.from_bytes(r[10:12], "big"))
                u.sendto(targets[(i // 10) % 2] + b"%d" % i, relay)
                data, _ = u.recvfrom(512)
                assert data.endswith(b"%d" % i), f"association {i}: echo {data!r}"
        finally:
            s.close()

    def wait_records(start: int, n: int, timeout: float) -> None:
        seen = [0]

        def count(line: str):
            if " access session=" in line and " cmd=udp " in line:
                seen[0] += 1
            return seen[0] >= n
        proxy.log.wait_for(count, timeout, start)

    # Warm-up: everything created once per process (resolver, scratch
    # buffers, admin) exists before the baseline is taken.
    start = rt.mark(proxy)
    for i in range(20):
        one(i)
    wait_records(start, 20, 10)
    metrics_of(proxy)("cleversocks_udp_associations_total")
    baseline = settle(proxy, fd_count(pid))

    start = rt.mark(proxy)
    t0 = time.monotonic()
    for i in range(ASSOCIATIONS):
        one(i)
    elapsed = time.monotonic() - t0
    u.close()
    wait_records(start, ASSOCIATIONS, 30)
    after = settle(proxy, baseline)
    print(f"{ASSOCIATIONS} associations in {elapsed:.1f}s; descriptors {baseline} -> {after}")
    assert after <= baseline, (f"the proxy holds {after} descriptors after {ASSOCIATIONS} associations, "
                               f"{baseline} before: {os.listdir(f'/proc/{pid}/fd')}")
    records = [line for line in proxy.log.snapshot()[start:] if " access session=" in line]
    bad = [r for r in records if " result=closed " not in r or " rep=0x00 " not in r]
    assert not bad, f"{len(bad)} associations did not end cleanly, e.g. {bad[:3]}"
    assert metrics_of(proxy)("cleversocks_udp_associations_total") == ASSOCIATIONS + 20
