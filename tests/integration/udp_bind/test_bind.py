"""BIND (RFC 1928 §4, and SOCKS4) with a hand-written client: exact
addresses in both replies, only the expected peer accepted, the wait's
timeout, the relay after the second reply."""

from __future__ import annotations

import socket
import time

import pytest

from support import constants as C
from support import routing as rt
from support import socksclient as sc
from support.proxy import DEFAULT_ARGS
from support.udp import negotiate

BINDS = "cleversocks_binds_total"


def bind5(proxy_addr, host: str, port: int = 0, timeout: float = 5.0) -> tuple[socket.socket, sc.Reply5]:
    """Control connection + BIND request; returns it with the first reply
    (asserted successful)."""
    s = sc.connect(proxy_addr, timeout)
    try:
        r = negotiate(s, host, port, cmd=sc.CMD_BIND, timeout=timeout)
        assert (r.ver, r.rep) == (sc.VER5, sc.REP_SUCCEEDED), f"first BIND reply {r.raw.hex(' ')}"
    except BaseException:
        s.close()
        raise
    return s, r


def connect_from(addr, source: str | None = None, timeout: float = 5.0) -> socket.socket:
    return rt.connect_from(tuple(addr), source, timeout)


def relay_both_ways(client: socket.socket, peer: socket.socket) -> None:
    client.sendall(b"client->peer")
    assert sc.recv_exact(peer, 12) == b"client->peer"
    peer.sendall(b"peer->client!")
    assert sc.recv_exact(client, 13) == b"peer->client!"
    # Half-close each way is passed on like CONNECT.
    peer.shutdown(socket.SHUT_WR)
    assert sc.read_until_closed(client) == b""
    client.sendall(b"after-peer-eof")
    assert sc.recv_exact(peer, 14) == b"after-peer-eof"
    client.shutdown(socket.SHUT_WR)
    assert sc.read_until_closed(peer) == b""


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_bind_replies_carry_exact_addresses(make_proxy, metrics_of, family):
    """First reply: the address and port the proxy listens on (connecting
    there works); second reply: exactly the connecting peer's address and
    port; then data flows both ways."""
    loop = "127.0.0.1" if family == "v4" else "::1"
    proxy = make_proxy(listen=["127.0.0.1:0" if family == "v4" else "[::1]:0"])
    client, first = bind5(proxy.addr, loop, 0)
    with client:
        assert first.atyp == (sc.ATYP_IPV4 if family == "v4" else sc.ATYP_IPV6), first.raw.hex(" ")
        assert first.host == loop and first.port not in (0, proxy.endpoint.port), first
        with connect_from((first.host, first.port), loop) as peer:
            second = sc.read_reply(client)
            assert (second.ver, second.rep) == (sc.VER5, sc.REP_SUCCEEDED), second.raw.hex(" ")
            assert second.atyp == first.atyp
            assert (second.host, second.port) == peer.getsockname()[:2], \
                f"second reply names {second.host}:{second.port}, the peer is {peer.getsockname()[:2]}"
            relay_both_ways(client, peer)
    rec = rt.wait_access(proxy, cmd="bind")
    assert rec["result"] == "ok" and rec["rep"] == "0x00", rec
    assert metrics_of(proxy)(BINDS, result="accepted") == 1


def test_bind_only_the_expected_peer(make_proxy, metrics_of):
    """DST.ADDR 127.0.0.1: a connection from 127.0.0.2 is closed and the wait
    goes on (no second reply for it); the one from 127.0.0.1 is the peer."""
    proxy = make_proxy()
    client, first = bind5(proxy.addr, "127.0.0.1", 0)
    with client:
        with connect_from((first.host, first.port), "127.0.0.2") as intruder:
            assert sc.read_until_closed(intruder) == b"", "the intruder got data"
        with connect_from((first.host, first.port), "127.0.0.1") as peer:
            second = sc.read_reply(client)
            assert second.rep == sc.REP_SUCCEEDED
            assert (second.host, second.port) == peer.getsockname()[:2], \
                f"second reply {second.host}:{second.port}; expected peer {peer.getsockname()[:2]}"
            relay_both_ways(client, peer)
    m = metrics_of(proxy)
    assert m(BINDS, result="rejected_peer") == 1
    assert m(BINDS, result="accepted") == 1


def test_bind_expected_peer_on_another_address(make_proxy):
    """The usual case: the peer (an FTP server, say) is not the client.  DST
    127.0.0.2: the first reply names an address 127.0.0.2 can connect to; a
    connection from the client's own address (127.0.0.1) is refused; the
    one from 127.0.0.2 is the peer."""
    proxy = make_proxy()
    client, first = bind5(proxy.addr, "127.0.0.2", 2121)
    with client:
        assert first.host.startswith("127.") and first.port != 0, first
        with connect_from((first.host, first.port), "127.0.0.1") as intruder:
            assert sc.read_until_closed(intruder) == b""
        with connect_from((first.host, first.port), "127.0.0.2") as peer:
            second = sc.read_reply(client)
            assert (second.rep, second.host, second.port) == (sc.REP_SUCCEEDED, *peer.getsockname()[:2])
            relay_both_ways(client, peer)


def test_bind_expected_peer_by_name(make_proxy, dns_server):
    """DST.ADDR as a name: its addresses are the expected peers."""
    proxy = make_proxy("--dns-server", dns_server.addr_text)
    client, first = bind5(proxy.addr, C.NAME_V4, 0)
    with client:
        with connect_from((first.host, first.port), "127.0.0.2") as intruder:
            assert sc.read_until_closed(intruder) == b""
        with connect_from((first.host, first.port), "127.0.0.1") as peer:
            second = sc.read_reply(client)
            assert (second.rep, second.host, second.port) == (sc.REP_SUCCEEDED, *peer.getsockname()[:2])


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_bind_unspecified_address_accepts_anyone(make_proxy, family):
    """DST.ADDR 0.0.0.0 / :: (the client does not know the peer: "when
    given" in the issue): the first connection is the peer, whatever its
    address.  Nothing is dialled, so the built-in block of the unspecified
    range (checked on addresses dialled) has no say."""
    loop, other = ("127.0.0.1", "127.0.0.2") if family == "v4" else ("::1", "::1")
    proxy = make_proxy(listen=["127.0.0.1:0" if family == "v4" else "[::1]:0"])
    client, first = bind5(proxy.addr, "0.0.0.0" if family == "v4" else "::", 0)
    with client:
        assert first.host == loop
        with connect_from((first.host, first.port), other) as peer:
            second = sc.read_reply(client)
            assert (second.rep, second.host, second.port) == (sc.REP_SUCCEEDED, *peer.getsockname()[:2])
            relay_both_ways(client, peer)


def test_bind_one_connection_only(make_proxy):
    """After the peer connected, the listener is closed: a second connection
    to the same port is refused."""
    proxy = make_proxy()
    client, first = bind5(proxy.addr, "127.0.0.1", 0)
    with client, connect_from((first.host, first.port)) as peer:
        assert sc.read_reply(client).rep == sc.REP_SUCCEEDED
        with pytest.raises(ConnectionRefusedError):
            connect_from((first.host, first.port)).close()
        peer.sendall(b"x")
        assert sc.recv_exact(client, 1) == b"x"


def test_bind_timeout(configured):
    """``bind.timeout``: nobody connects, the wait ends with REP 0x04, the
    control connection closes and the listener is gone (connecting to the old
    port is refused)."""
    proxy = configured({"bind": {"timeout": "1s"}})
    t0 = time.monotonic()
    client, first = bind5(proxy.addr, "127.0.0.1", 0)
    with client:
        second = sc.read_reply(client, timeout=6.0)
        elapsed = time.monotonic() - t0
        assert (second.ver, second.rep) == (sc.VER5, sc.REP_HOST_UNREACH), second.raw.hex(" ")
        assert elapsed >= 0.9, f"the wait ended after {elapsed:.2f}s, before bind.timeout (1s)"
        sc.expect_closed(client)
    with pytest.raises(ConnectionRefusedError):
        connect_from((first.host, first.port)).close()
    rec = rt.wait_access(proxy, cmd="bind")
    assert rec["rep"] == "0x04", rec


def test_bind_client_leaves_before_the_peer(make_proxy):
    """The client closes while waiting: the listener is closed (connecting to
    it is then refused)."""
    proxy = make_proxy()
    client, first = bind5(proxy.addr, "127.0.0.1", 0)
    start = rt.mark(proxy)
    client.close()
    rt.wait_access(proxy, start=start, cmd="bind")
    with pytest.raises(ConnectionRefusedError):
        connect_from((first.host, first.port)).close()


def test_bind_advertise_address(configured):
    """``bind.advertise_address``: the first reply names it; the port is the
    real listening port (on the address toward the peer)."""
    proxy = configured({"bind": {"advertise_address": "127.0.0.9"}})
    client, first = bind5(proxy.addr, "127.0.0.1", 0)
    with client:
        assert (first.atyp, first.host) == (sc.ATYP_IPV4, "127.0.0.9"), first
        with connect_from(("127.0.0.1", first.port)) as peer:
            second = sc.read_reply(client)
            assert (second.rep, second.host, second.port) == (sc.REP_SUCCEEDED, *peer.getsockname()[:2])


def test_bind_denied_by_acl(make_proxy):
    """The ACL judges BIND on the expected peer: a deny rule for it (cmd=bind)
    refuses with REP 0x02 and opens no listener."""
    proxy = make_proxy(default_args=["--deny", "dst=127.0.0.2 cmd=bind", *DEFAULT_ARGS])
    with sc.connect(proxy.addr) as s:
        r = negotiate(s, "127.0.0.2", 0, cmd=sc.CMD_BIND)
        assert r.rep == sc.REP_NOT_ALLOWED, r.raw.hex(" ")
    client, _ = bind5(proxy.addr, "127.0.0.1", 0)
    client.close()


# ---- SOCKS4 ------------------------------------------------------------------------

def bind4(proxy_addr, host: str, port: int = 0, timeout: float = 5.0) -> tuple[socket.socket, sc.Reply4]:
    s = sc.connect(proxy_addr, timeout)
    try:
        s.sendall(sc.request4(host, port, cmd=sc.CMD_BIND))
        r = sc.read_reply4(s, timeout)
        assert (r.vn, r.cd) == (0, sc.S4_GRANTED), f"first SOCKS4 BIND reply {r.raw.hex(' ')}"
    except BaseException:
        s.close()
        raise
    return s, r


def test_socks4_bind(make_proxy):
    """SOCKS4 BIND: 0x5A with DSTPORT/DSTIP = where the proxy listens, then
    0x5A with the peer's port and IP, then the relay."""
    proxy = make_proxy()
    client, first = bind4(proxy.addr, "127.0.0.1", 21)
    with client:
        assert first.ip == "127.0.0.1" and first.port not in (0, proxy.endpoint.port), first
        with connect_from((first.ip, first.port), "127.0.0.1") as peer:
            second = sc.read_reply4(client)
            assert (second.vn, second.cd) == (0, sc.S4_GRANTED), second.raw.hex(" ")
            assert (second.ip, second.port) == peer.getsockname()[:2], \
                f"second reply {second.ip}:{second.port}; the peer is {peer.getsockname()[:2]}"
            relay_both_ways(client, peer)
    assert rt.wait_access(proxy, cmd="bind")["proto"] == "socks4"


def test_socks4a_bind_by_name(make_proxy, dns_server):
    proxy = make_proxy("--dns-server", dns_server.addr_text)
    client, first = bind4(proxy.addr, C.NAME_V4, 21)
    with client:
        assert first.ip == "127.0.0.1"
        with connect_from((first.ip, first.port), "127.0.0.1") as peer:
            second = sc.read_reply4(client)
            assert (second.cd, second.ip, second.port) == (sc.S4_GRANTED, *peer.getsockname()[:2])


def test_socks4_bind_unexpected_peer_and_timeout(configured):
    """SOCKS4: a connection from 127.0.0.2 is closed; the timeout then ends
    the wait with 0x5B and closes the listener."""
    proxy = configured({"bind": {"timeout": "1s"}})
    client, first = bind4(proxy.addr, "127.0.0.1", 21)
    with client:
        with connect_from((first.ip, first.port), "127.0.0.2") as intruder:
            assert sc.read_until_closed(intruder) == b""
        second = sc.read_reply4(client, timeout=6.0)
        assert (second.vn, second.cd) == (0, sc.S4_REJECTED), second.raw.hex(" ")
        sc.expect_closed(client)
    with pytest.raises(ConnectionRefusedError):
        connect_from((first.ip, first.port)).close()


@pytest.mark.parametrize("cmd", [sc.CMD_CONNECT, sc.CMD_BIND], ids=["connect", "bind"])
def test_name_lookup_is_bounded_by_the_connect_timeout(make_proxy, cmd):
    """A DNS server that never answers: the lookup of CONNECT's target or
    BIND's expected peer ends with the connect deadline (0x04,
    connect_timeout), not with the resolver's own retries (2 s × 2, which
    would end as dns_failure)."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # never read: every query goes unanswered
    with silent:
        proxy = make_proxy("--dns-server", "127.0.0.1:%d" % silent.getsockname()[1], "--connect-timeout", "300ms")
        with sc.connect(proxy.addr, 10) as s:
            r = negotiate(s, "never-answered.test", 80, cmd=cmd, timeout=10)
        assert (r.ver, r.rep) == (sc.VER5, sc.REP_HOST_UNREACH), r.raw.hex(" ")
        rec = rt.wait_access(proxy, target="never-answered.test:80")
        assert rec["result"] == "connect_timeout", rec
