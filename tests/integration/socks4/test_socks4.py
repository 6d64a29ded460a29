"""SOCKS4 and SOCKS4a CONNECT: 0x5A / 0x5B, USERID and hostname bounds,
refusal when users are configured."""

from __future__ import annotations

import socket

import pytest

from support import constants as C
from support import socksclient as sc
from support.servers import EchoServer


def assert_rejected_then_close(sock: socket.socket, timeout: float = 5.0) -> None:
    reply = sc.read_reply4(sock, timeout)
    assert (reply.vn, reply.cd) == (0x00, sc.S4_REJECTED), f"expected 00 5b, got {reply.raw.hex(' ')}"
    sc.expect_closed(sock)


@pytest.mark.parametrize("userid", [b"", b"whoever", b"x" * 255], ids=["empty", "short", "255"])
def test_socks4_connect_granted(noauth_proxy, userid):
    """Without users the USERID is accepted and ignored (up to 255 bytes)."""
    with EchoServer() as target:
        sock, reply = sc.open_tunnel4(noauth_proxy.addr, "127.0.0.1", target.port, userid)
        with sock:
            assert reply.raw[:2] == b"\x00\x5a"
            sc.echo_roundtrip(sock, b"socks4 tunnel")
            target.wait_accept()


@pytest.mark.parametrize("name", ["localhost", C.NAME_V4, C.LONG_NAME], ids=["hosts-file", "dns", "253-bytes"])
def test_socks4a_connect_granted(noauth_proxy, echo_server, name):
    sock, reply = sc.open_tunnel4(noauth_proxy.addr, name, echo_server.port, b"someone")
    with sock:
        assert reply.raw[:2] == b"\x00\x5a"
        sc.echo_roundtrip(sock, b"socks4a tunnel")


def test_socks4_over_ipv6_listener(noauth_proxy, echo_server):
    ep = noauth_proxy.endpoint_for(socket.AF_INET6)
    sock, _ = sc.open_tunnel4(ep.sockaddr, "127.0.0.1", echo_server.port)
    with sock:
        sc.echo_roundtrip(sock, b"v6 listener")


def test_socks4_refused_port(noauth_proxy):
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        with sc.connect(noauth_proxy.addr) as sock:
            sock.sendall(sc.request4("127.0.0.1", reserved.getsockname()[1]))
            assert_rejected_then_close(sock)


def test_socks4a_unresolvable_name(noauth_proxy):
    with sc.connect(noauth_proxy.addr) as sock:
        sock.sendall(sc.request4(C.NAME_MISSING, 80))
        assert_rejected_then_close(sock)


def test_userid_longer_than_255_is_rejected(noauth_proxy, echo_server):
    with sc.connect(noauth_proxy.addr) as sock:
        sock.sendall(sc.request4("127.0.0.1", echo_server.port, b"x" * 256))
        assert_rejected_then_close(sock)


def test_unterminated_userid_is_rejected_without_waiting_forever(noauth_proxy, echo_server):
    """1000 bytes of USERID and no NUL: the proxy must give up at the cap."""
    with sc.connect(noauth_proxy.addr) as sock:
        head = sc.request4("127.0.0.1", echo_server.port)[:8]
        sock.sendall(head + b"u" * 1000)
        assert_rejected_then_close(sock)


def test_hostname_longer_than_255_is_rejected(noauth_proxy, echo_server):
    with sc.connect(noauth_proxy.addr) as sock:
        sock.sendall(sc.request4("h" * 256, echo_server.port))
        assert_rejected_then_close(sock)


def test_unterminated_hostname_is_rejected(noauth_proxy, echo_server):
    with sc.connect(noauth_proxy.addr) as sock:
        req = sc.request4("example.test", echo_server.port)
        sock.sendall(req[:-len(b"example.test\x00")] + b"h" * 1000)
        assert_rejected_then_close(sock)


# BIND (0x02) is supported (tests/integration/udp_bind).
@pytest.mark.parametrize("cmd", [0x03, 0x00, 0xFF], ids=["0x03", "0x00", "0xff"])
def test_socks4_unsupported_command(noauth_proxy, echo_server, cmd):
    with sc.connect(noauth_proxy.addr) as sock:
        sock.sendall(sc.request4("127.0.0.1", echo_server.port, cmd=cmd))
        assert_rejected_then_close(sock)


@pytest.mark.parametrize("host,userid", [
    ("127.0.0.1", b""), ("127.0.0.1", C.AUTH_USER.encode()),
    (C.NAME_V4, b""), (C.NAME_V4, C.AUTH_USER.encode()),
], ids=["socks4", "socks4-user", "socks4a", "socks4a-user"])
def test_socks4_refused_when_users_configured(auth_proxy, host, userid):
    with EchoServer() as target:
        with sc.connect(auth_proxy.addr) as sock:
            sock.sendall(sc.request4(host, target.port, userid))
            assert_rejected_then_close(sock)
        assert target.peers == [], "SOCKS4 reached the target on an auth proxy"
