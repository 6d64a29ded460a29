"""SOCKS5 CONNECT replies, one raw-socket test per reply code (RFC 1928 §6).

Every error reply must be a complete, well-formed reply sent before the
proxy closes the connection.
"""

from __future__ import annotations

import select
import socket
import time

import pytest

from support import constants as C
from support import socksclient as sc
from support.servers import EchoServer


def send_request(proxy_addr, req: bytes, timeout: float = 5.0) -> tuple[socket.socket, sc.Reply5]:
    """No-auth greeting, then ``req``; returns the socket and the reply."""
    sock = sc.connect(proxy_addr, timeout)
    sock.sendall(sc.greeting(sc.NO_AUTH))
    assert sc.read_method(sock) == b"\x05\x00"
    sock.sendall(req)
    return sock, sc.read_reply(sock, timeout)


def assert_error_then_close(sock: socket.socket, reply: sc.Reply5, rep: int) -> None:
    assert reply.ver == 5 and reply.rsv == 0, f"malformed reply {reply.raw.hex(' ')}"
    assert reply.rep == rep, f"expected REP {rep:#04x}, got {reply.raw.hex(' ')}"
    sc.expect_closed(sock)


def closed_port(host: str = "127.0.0.1") -> socket.socket:
    """A bound, non-listening socket: the port is reserved and SYNs to it get RST."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    return s


# ---- 0x00 and BND.ADDR ------------------------------------------------------

@pytest.mark.parametrize("listener", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("target_host", ["127.0.0.1", "::1"])
def test_success_bnd_is_the_outbound_socket_address(noauth_proxy, listener, target_host):
    """REP 0x00, BND.ADDR/BND.PORT equal to the peer address the target sees
    on accept (the local address of the proxy's outbound socket)."""
    with EchoServer(target_host) as target:
        ep = noauth_proxy.endpoint_for(socket.AF_INET6 if ":" in listener else socket.AF_INET)
        sock, reply = sc.open_tunnel(ep.sockaddr, target_host, target.port)
        with sock:
            peer = target.wait_accept()
            assert reply.atyp == (sc.ATYP_IPV6 if ":" in target_host else sc.ATYP_IPV4)
            assert (reply.host, reply.port) == (peer[0], peer[1])
            sc.echo_roundtrip(sock, b"bnd check")


@pytest.mark.parametrize("name", [C.NAME_V4, C.LONG_NAME], ids=["short", "253-bytes"])
def test_success_domain_target(noauth_proxy, name):
    with EchoServer("127.0.0.1") as target:
        sock, reply = sc.open_tunnel(noauth_proxy.addr, name, target.port)
        with sock:
            peer = target.wait_accept()
            assert (reply.atyp, reply.host, reply.port) == (sc.ATYP_IPV4, peer[0], peer[1])
            sc.echo_roundtrip(sock, b"domain target")


def test_domain_resolving_to_ipv6(noauth_proxy, echo_server6):
    sock, reply = sc.open_tunnel(noauth_proxy.addr, C.NAME_V6, echo_server6.port)
    with sock:
        assert reply.atyp == sc.ATYP_IPV6 and reply.host == "::1"
        sc.echo_roundtrip(sock, b"v6 by name")


def test_domain_with_unreachable_first_address_falls_back(noauth_proxy, echo_server):
    """dual.test resolves to ::1 and 127.0.0.1; only 127.0.0.1 listens on the
    port, so the proxy must try the other address."""
    sock, reply = sc.open_tunnel(noauth_proxy.addr, C.NAME_DUAL, echo_server.port)
    with sock:
        assert reply.host == "127.0.0.1"
        sc.echo_roundtrip(sock, b"fallback")


def test_etc_hosts_consulted_before_dns(noauth_proxy, echo_server):
    """'localhost' is in /etc/hosts, not in the test DNS server."""
    sock, _ = sc.open_tunnel(noauth_proxy.addr, "localhost", echo_server.port)
    with sock:
        sc.echo_roundtrip(sock, b"hosts file")


# ---- error replies ----------------------------------------------------------

def test_domain_length_zero_is_general_failure(noauth_proxy):
    sock, reply = send_request(noauth_proxy.addr, b"\x05\x01\x00\x03\x00\x00\x50")
    with sock:
        assert_error_then_close(sock, reply, sc.REP_GENERAL)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", C.NAME_V4])
def test_closed_port_is_connection_refused(noauth_proxy, host):
    with closed_port("::1" if host == "::1" else "127.0.0.1") as reserved:
        port = reserved.getsockname()[1]
        sock, reply = send_request(noauth_proxy.addr, sc.request(host, port))
        with sock:
            assert_error_then_close(sock, reply, sc.REP_REFUSED)


def test_dns_failure_is_host_unreachable(noauth_proxy, dns_server):
    sock, reply = send_request(noauth_proxy.addr, sc.request(C.NAME_MISSING, 80))
    with sock:
        assert_error_then_close(sock, reply, sc.REP_HOST_UNREACH)
    assert dns_server.queried(C.NAME_MISSING), "the proxy did not ask the --dns-server"


# BIND and UDP ASSOCIATE are supported (tests/integration/udp_bind).
@pytest.mark.parametrize("cmd", [0x00, 0x04, 0x09, 0xFF], ids=["0x00", "0x04", "0x09", "0xff"])
def test_unsupported_command(noauth_proxy, echo_server, cmd):
    sock, reply = send_request(noauth_proxy.addr, sc.request("127.0.0.1", echo_server.port, cmd=cmd))
    with sock:
        assert_error_then_close(sock, reply, sc.REP_CMD_UNSUPPORTED)


@pytest.mark.parametrize("atyp", [0x00, 0x02, 0x05, 0xFF])
def test_unknown_address_type(noauth_proxy, atyp):
    req = bytes([5, 1, 0, atyp]) + bytes([127, 0, 0, 1, 0, 80])
    sock, reply = send_request(noauth_proxy.addr, req)
    with sock:
        assert_error_then_close(sock, reply, sc.REP_ATYP_UNSUPPORTED)


def test_network_unreachable_inside_namespace(netns, make_proxy):
    """In a namespace with only lo up, 192.0.2.1 and 2001:db8::1 have no
    route: REP 0x03."""
    proxy = make_proxy(listen=["127.0.0.1:0"], prefix=netns.exec_prefix)
    for target in ("192.0.2.1", "2001:db8::1"):
        sock = netns.run_in(lambda: sc.connect(proxy.addr))
        with sock:
            sock.sendall(sc.greeting(sc.NO_AUTH))
            assert sc.read_method(sock) == b"\x05\x00"
            sock.sendall(sc.request(target, 80))
            reply = sc.read_reply(sock)
            assert_error_then_close(sock, reply, sc.REP_NET_UNREACH)


def fill_backlog(listener: socket.socket, limit: int = 16) -> list[socket.socket]:
    """Connect until a SYN goes unanswered (accept queue of a backlog-0
    listener full); returns every socket (keep them open)."""
    out = []
    for _ in range(limit):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        out.append(s)
        s.connect_ex(listener.getsockname())
        _, writable, _ = select.select([], [s], [], 0.5)
        if not writable:
            return out
    for s in out:
        s.close()
    pytest.fail("could not fill the accept queue of a backlog-0 listener")


@pytest.mark.deadline(30)
def test_connect_timeout_is_host_unreachable_and_does_not_delay_others(make_proxy, echo_server):
    """A target whose SYNs are never answered gets REP 0x04 after
    --connect-timeout, while another client on the same (single) worker is
    served at once."""
    proxy = make_proxy("--connect-timeout", "1", "-w", "1")
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    fillers = fill_backlog(blackhole)
    try:
        with sc.connect(proxy.addr, timeout=10) as slow:
            slow.sendall(sc.greeting(sc.NO_AUTH))
            assert sc.read_method(slow) == b"\x05\x00"
            slow.sendall(sc.request("127.0.0.1", blackhole.getsockname()[1]))
            t0 = time.monotonic()

            t1 = time.monotonic()
            fast, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", echo_server.port, timeout=5)
            with fast:
                sc.echo_roundtrip(fast, b"not blocked")
            fast_elapsed = time.monotonic() - t1
            readable, _, _ = select.select([slow], [], [], 0)
            assert not readable, "the black-holed CONNECT was answered before the timeout"
            assert fast_elapsed < 0.8, f"second client took {fast_elapsed:.2f}s"

            reply = sc.read_reply(slow, timeout=10)
            elapsed = time.monotonic() - t0
            assert_error_then_close(slow, reply, sc.REP_HOST_UNREACH)
            assert 0.7 <= elapsed <= 4.0, f"connect timeout fired after {elapsed:.2f}s"
    finally:
        for s in fillers:
            s.close()
        blackhole.close()


# ---- malformed greetings ----------------------------------------------------

def test_greeting_with_bad_version_is_closed(noauth_proxy):
    with sc.connect(noauth_proxy.addr) as sock:
        sock.sendall(b"\x06\x01\x00")
        sc.read_until_closed(sock)  # any bytes, but the proxy must close


def test_greeting_with_zero_methods_gets_no_acceptable_method(noauth_proxy):
    with sc.connect(noauth_proxy.addr) as sock:
        sock.sendall(b"\x05\x00")
        data = sc.read_until_closed(sock)
        assert data in (b"", b"\x05\xff"), data.hex(" ")
