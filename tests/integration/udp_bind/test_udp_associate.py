"""UDP ASSOCIATE (RFC 1928 §7) with a hand-written client: the reply's
BND.ADDR, the datagram header both ways, the request hint, who may send,
FRAG, per-datagram ACL, unsolicited replies, and the association's end.

Drops are checked without waiting for silence where possible: the dropped
datagram is followed by a valid "marker" from the same client; once the
marker's echo is back, the echo server must have seen the marker alone (the
relay handles one client socket's datagrams in order), and the matching
``cleversocks_udp_dropped_total{reason=…}`` sample is exactly 1.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest

from support import constants as C
from support import routing as rt
from support import socksclient as sc
from support.dns import DNSServer
from support.proxy import DEFAULT_ARGS
from support.servers import EchoServer
from support.udp import QUIET, Association, UDPEchoServer, udp_from, udp_header, wait_until

DROPPED = "cleversocks_udp_dropped_total"


def assert_only_marker(assoc: Association, echo: UDPEchoServer, marker: bytes = b"marker") -> None:
    """Send a valid datagram; its echo must be the next thing the client
    gets, and the echo server must have received nothing else."""
    assoc.roundtrip(echo.addr, marker)
    got = [data for _, data in echo.drain()]
    assert got == [marker], f"the echo server received {got!r}, expected only the marker"


def relay_port_free(relay: tuple[str, int]) -> bool:
    """True when nobody holds the relay's UDP port any more (we can bind it)."""
    with socket.socket(socket.AF_INET6 if ":" in relay[0] else socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(relay)
        except OSError:
            return False
        return True


# ---- the reply ------------------------------------------------------------------

@pytest.mark.parametrize("listen,atyp", [("127.0.0.1:0", sc.ATYP_IPV4), ("[::1]:0", sc.ATYP_IPV6)],
                         ids=["v4", "v6"])
def test_bnd_is_the_listener_address(make_proxy, udp_echo, listen, atyp):
    """A listener on a concrete address: BND.ADDR is exactly that address,
    BND.PORT a real UDP port there (datagrams sent to it are relayed)."""
    proxy = make_proxy(listen=[listen])
    with Association(proxy.addr) as a:
        assert a.reply.atyp == atyp, a.reply.raw.hex(" ")
        assert a.reply.host == proxy.endpoint.host, a.reply
        assert a.reply.port not in (0, proxy.endpoint.port), a.reply
        a.roundtrip(udp_echo.addr, b"to-bnd")


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["v4", "v6"])
def test_bnd_is_concrete_on_a_wildcard_listener(make_proxy, netns, family):
    """Listening on 0.0.0.0 / [::] (inside a namespace of our own): the reply
    names the address the client reached (127.0.0.1 / ::1), never the
    wildcard, and that address works."""
    loop = "127.0.0.1" if family == socket.AF_INET else "::1"
    proxy = make_proxy(listen=["0.0.0.0:0" if family == socket.AF_INET else "[::]:0"],
                       prefix=netns.exec_prefix)
    in_ns = lambda fam, type_: netns.socket(fam, type_)  # noqa: E731
    with UDPEchoServer(loop, sock=in_ns(family, socket.SOCK_DGRAM)) as echo, \
            Association((loop, proxy.endpoint.port), sock_factory=in_ns) as a:
        assert a.reply.host == loop, f"BND.ADDR {a.reply.host}: expected {loop} (the address the client reached)"
        assert a.reply.port != 0
        a.roundtrip(echo.addr, b"wildcard-listener")


def test_bnd_is_the_advertise_address(configured, udp_echo):
    """``udp.advertise_address`` (NAT): BND.ADDR is that address; the port is
    the relay's real port (on the listener's address)."""
    proxy = configured({"udp": {"advertise_address": "127.0.0.9"}})
    with Association(proxy.addr) as a:
        assert a.reply.atyp == sc.ATYP_IPV4
        assert a.reply.host == "127.0.0.9", a.reply
        assert a.reply.port != 0
        real = ("127.0.0.1", a.reply.port)
        a.send(*udp_echo.addr, b"via-real-port", to=real)
        assert a.recv(relay=real).payload == b"via-real-port"


# ---- the datagram header both ways ----------------------------------------------------

@pytest.mark.parametrize("listen", ["127.0.0.1:0", "[::1]:0"], ids=["via-v4", "via-v6"])
@pytest.mark.parametrize("target_family", ["v4", "v6"])
def test_reply_carries_the_senders_address(make_proxy, udp_echo, udp_echo6, listen, target_family):
    """Replies are wrapped with the target's exact address and port, in the
    target's family (ATYP 1 / 4), whatever family the client uses."""
    echo = udp_echo if target_family == "v4" else udp_echo6
    proxy = make_proxy(listen=[listen])
    with Association(proxy.addr) as a:
        for i in range(3):
            payload = f"wrap-{i}".encode()
            d = a.roundtrip(echo.addr, payload)
            assert d.frag == 0
            assert d.atyp == (sc.ATYP_IPV4 if target_family == "v4" else sc.ATYP_IPV6), d.raw[:24].hex(" ")
            assert (d.host, d.port) == echo.addr, f"reply header names {d.host}:{d.port}, sender was {echo.endpoint}"
        peer, data = echo.next_peer()
        assert data == b"wrap-0"
        assert peer[1] != a.local[1], "the target saw the client's own port, not the proxy's"


@pytest.mark.parametrize("name,target_family", [(C.NAME_V4, "v4"), (C.NAME_V6, "v6"), ("localhost", "v4")],
                         ids=["name-v4", "name-v6", "localhost"])
def test_domain_target(make_proxy, dns_server, udp_echo, udp_echo6, name, target_family):
    """A name as DST.ADDR: the proxy resolves it (the test DNS server, or
    localhost) and relays; the reply carries the address that answered."""
    echo = udp_echo if target_family == "v4" else udp_echo6
    proxy = make_proxy("--dns-server", dns_server.addr_text)
    with Association(proxy.addr) as a:
        for i in range(2):  # the second one is answered from the cache
            a.send(name, echo.port, f"named-{i}".encode())
            d = a.recv()
            assert d.payload == f"named-{i}".encode()
            assert (d.host, d.port) == echo.addr
    if name != "localhost":
        assert dns_server.queried(name), f"the proxy never asked the test DNS server for {name}"


def test_names_are_resolved_once_and_cached(make_proxy, udp_echo):
    """A burst of 4 datagrams to a name not yet resolved all arrive (resolved
    asynchronously, one lookup); later datagrams come from the cache (no
    further queries)."""
    with DNSServer({"cached.test": ["127.0.0.1"]}, ttl=300) as dns:
        proxy = make_proxy("--dns-server", dns.addr_text)
        with Association(proxy.addr) as a:
            for i in range(4):
                a.send(b"cached.test", udp_echo.port, b"burst-%d" % i)
            got = sorted(a.recv().payload for _ in range(4))
            assert got == [b"burst-%d" % i for i in range(4)]
            asked = list(dns.queries)
            for i in range(5):
                a.roundtrip(("cached.test", udp_echo.port), b"cached-%d" % i)
            assert dns.queries == asked, f"queries after the first answer: {dns.queries[len(asked):]}"
        assert asked.count(("cached.test", "A")) == 1, asked


def test_unknown_name_dropped(make_proxy, metrics_of, dns_server, udp_echo):
    """A name that does not resolve: the datagram is dropped (counted), the
    association goes on."""
    proxy = make_proxy("--dns-server", dns_server.addr_text)
    m = metrics_of(proxy)
    with Association(proxy.addr) as a:
        a.send(C.NAME_MISSING.encode(), udp_echo.port, b"nowhere")
        dns_server.wait_query(C.NAME_MISSING, 5)
        wait_until(lambda: m(DROPPED, reason="other") >= 1, 5.0, lambda t: a.nothing_within(t) or None)
        assert_only_marker(a, udp_echo)
    assert m(DROPPED, reason="other") == 1


def test_numeric_names_are_the_addresses_they_spell(make_proxy, metrics_of, dns_server, udp_echo):
    """A DST.ADDR name that spells an address as browsers and inet_aton read
    it ("0x7f.0.0.1", "127.1") is that address, relayed without DNS; one
    that only looks like an address ("1.2.3.4.5") is dropped without DNS.
    ("0177.0.0.1" is covered over TCP, in a namespace: read wrongly, it
    would be a public address.)"""
    proxy = make_proxy("--dns-server", dns_server.addr_text)
    m = metrics_of(proxy)
    names = ["0x7f.0.0.1", "127.1", "2130706433", "0x7f000001", "127.0.0.1."]
    with Association(proxy.addr) as a:
        for name in names:
            d = a.roundtrip((name.encode(), udp_echo.port), name.encode())  # bytes: always a DOMAIN
            assert d.atyp == sc.ATYP_IPV4 and (d.host, d.port) == udp_echo.addr, (name, d.raw[:24].hex(" "))
        udp_echo.drain()
        a.send(b"1.2.3.4.5", udp_echo.port, b"nowhere")
        wait_until(lambda: m(DROPPED, reason="other") >= 1, 5.0, lambda t: a.nothing_within(t) or None)
        assert_only_marker(a, udp_echo)
    assert m(DROPPED, reason="other") == 1
    for name in [*names, "1.2.3.4.5"]:
        assert dns_server.queried(name) == [] and dns_server.queried(name.rstrip(".")) == [], name


def test_udp_counters(make_proxy, metrics_of, udp_echo, udp_echo6):
    """/metrics: associations, datagrams each way and drops by reason add up
    to what happened; the access record carries the payload bytes."""
    proxy = make_proxy()
    with Association(proxy.addr) as a, udp_from("127.0.0.2") as stranger:
        for i in range(5):
            a.roundtrip((udp_echo if i % 2 else udp_echo6).addr, b"0123456789")
        udp_echo.drain()
        a.send(*udp_echo.addr, b"frag", frag=1)
        a.send(*udp_echo.addr, b"stranger", sock=stranger)
        assert_only_marker(a, udp_echo, b"m")
        start = rt.mark(proxy)
    rec = rt.wait_access(proxy, start=start, cmd="udp")
    assert (rec["up"], rec["down"]) == ("51", "51"), rec
    m = metrics_of(proxy)
    assert m("cleversocks_udp_associations_total") == 1
    assert m("cleversocks_udp_datagrams_total", direction="up") == 6
    assert m("cleversocks_udp_datagrams_total", direction="down") == 6
    assert m(DROPPED, reason="fragment") == 1
    assert m(DROPPED, reason="source") == 1
    assert sum(m(DROPPED, reason=r) for r in ("malformed", "acl", "unsolicited", "rate", "other")) == 0


def test_socks4_has_no_udp(make_proxy):
    """SOCKS4 command 3 does not exist: rejected with 0x5B."""
    proxy = make_proxy()
    with sc.connect(proxy.addr) as s:
        s.sendall(sc.request4("127.0.0.1", 53, cmd=sc.CMD_UDP))
        r = sc.read_reply4(s)
        assert (r.vn, r.cd) == (0, sc.S4_REJECTED), r.raw.hex(" ")


def test_malformed_header_dropped(make_proxy, metrics_of, udp_echo):
    proxy = make_proxy()
    with Association(proxy.addr) as a:
        a.send_raw(b"\x00\x00\x00\x09garbage")          # unknown ATYP
        a.send_raw(b"\x00\x00")                          # too short
        a.send_raw(udp_header("127.0.0.1", udp_echo.port)[:6])  # address cut short
        assert_only_marker(a, udp_echo)
    assert metrics_of(proxy)(DROPPED, reason="malformed") == 3


@pytest.mark.parametrize("frag", [1, 0x7F, 0x80, 0xFF])
def test_frag_nonzero_dropped(make_proxy, metrics_of, udp_echo, frag):
    """FRAG ≠ 0 (a fragment, or the end-of-sequence bit): dropped and counted;
    the association keeps working."""
    proxy = make_proxy()
    with Association(proxy.addr) as a:
        a.send(*udp_echo.addr, b"fragment", frag=frag)
        assert_only_marker(a, udp_echo)
    assert metrics_of(proxy)(DROPPED, reason="fragment") == 1


def test_frag_nonzero_as_first_datagram_does_not_fix_the_port(make_proxy, udp_echo):
    """A dropped first datagram must not become the association's fixed
    source: a fragment from one port, then valid traffic from another."""
    proxy = make_proxy()
    with Association(proxy.addr) as a, udp_from("127.0.0.1") as other:
        a.send(*udp_echo.addr, b"frag-first", frag=1, sock=other)
        assert_only_marker(a, udp_echo)


# ---- the request hint ---------------------------------------------------------------

@pytest.mark.parametrize("listen", ["127.0.0.1:0", "[::1]:0"], ids=["v4", "v6"])
def test_hint_all_zero(make_proxy, udp_echo, udp_echo6, listen):
    """DST 0.0.0.0:0 / [::]:0 ("not known yet"): the first datagram from the
    client's IP fixes the port; it works to both families."""
    proxy = make_proxy(listen=[listen])
    with Association(proxy.addr, hint=None) as a:
        assert a.hint[1] == 0
        a.roundtrip(udp_echo.addr, b"zero-hint-4")
        a.roundtrip(udp_echo6.addr, b"zero-hint-6")


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "[::1]:0"], ids=["v4", "v6"])
def test_hint_exact(make_proxy, metrics_of, udp_echo, listen):
    """DST = the client's own IP:port: only that port is accepted, even for
    the very first datagram (another port of the same IP is dropped)."""
    proxy = make_proxy(listen=[listen])
    with Association(proxy.addr, hint="self") as a, udp_from(a.local[0]) as other:
        assert tuple(a.hint) == a.local
        a.send(*udp_echo.addr, b"wrong-port-first", sock=other)
        assert_only_marker(a, udp_echo)
    assert metrics_of(proxy)(DROPPED, reason="source") == 1


def test_hint_unspecified_address_with_port(make_proxy, metrics_of, udp_echo):
    """DST 0.0.0.0:PORT (client knows its port, not its address): that port is
    the accepted one."""
    proxy = make_proxy()
    with udp_from("127.0.0.1") as probe:
        port = probe.getsockname()[1]
    with Association(proxy.addr, hint=("0.0.0.0", port), udp_bind=("127.0.0.1", port)) as a, \
            udp_from("127.0.0.1") as other:
        a.send(*udp_echo.addr, b"other-port", sock=other)
        assert_only_marker(a, udp_echo)
    assert metrics_of(proxy)(DROPPED, reason="source") == 1


@pytest.mark.parametrize("hint_kind", ["target", "other-host"])
def test_hint_names_another_host(make_proxy, hint_kind):
    """Clients that wrongly put the target (or any other host) in the request:
    the association still works from the client's real address and port."""
    proxy = make_proxy()
    with UDPEchoServer("127.0.0.2") as echo:
        hint = echo.addr if hint_kind == "target" else ("127.0.0.3", 9)
        with Association(proxy.addr, hint=hint) as a:
            assert a.local[0] == "127.0.0.1" and a.local[1] != hint[1]
            d = a.roundtrip(echo.addr, b"target-as-hint")
            assert (d.host, d.port) == echo.addr
            a.roundtrip(echo.addr, b"again")


def test_hint_as_domain_name(make_proxy, udp_echo):
    """PySocks sends DST as the name "0" with its port; other clients send a
    real name: neither may break the association."""
    proxy = make_proxy()
    for name in ("0", "client.example"):
        with Association(proxy.addr, hint=(name.encode(), 4242)) as a:
            a.roundtrip(udp_echo.addr, b"name-hint")


# ---- who may send ---------------------------------------------------------------

def test_other_source_port_dropped_after_first(make_proxy, metrics_of, udp_echo):
    """Zero hint: the first datagram fixes the port; later ones from another
    port of the same IP are dropped."""
    proxy = make_proxy()
    with Association(proxy.addr) as a, udp_from("127.0.0.1") as other:
        a.roundtrip(udp_echo.addr, b"first")
        udp_echo.drain()
        a.send(*udp_echo.addr, b"from-other-port", sock=other)
        assert_only_marker(a, udp_echo)
        assert a.nothing_within(QUIET, sock=other), "the other port got an answer"
    assert metrics_of(proxy)(DROPPED, reason="source") == 1


@pytest.mark.parametrize("first", [True, False], ids=["before-first", "after-first"])
def test_other_source_ip_dropped(make_proxy, metrics_of, udp_echo, first):
    """A datagram from 127.0.0.2 (the control connection came from 127.0.0.1)
    is dropped, before or after the client's first datagram."""
    proxy = make_proxy()
    with Association(proxy.addr) as a, udp_from("127.0.0.2") as stranger:
        if not first:
            a.roundtrip(udp_echo.addr, b"first")
            udp_echo.drain()
        a.send(*udp_echo.addr, b"from-127.0.0.2", sock=stranger)
        assert_only_marker(a, udp_echo)
        assert a.nothing_within(QUIET, sock=stranger)
    assert metrics_of(proxy)(DROPPED, reason="source") == 1


def test_unsolicited_reply_dropped(make_proxy, metrics_of, udp_echo):
    """A datagram to the proxy's outbound socket from a host:port the client
    never sent to is not relayed (the next thing the client gets is the
    marker's echo)."""
    proxy = make_proxy()
    with Association(proxy.addr) as a, udp_from("127.0.0.1") as stranger:
        a.roundtrip(udp_echo.addr, b"open-the-path")
        outbound, _ = udp_echo.next_peer()
        stranger.sendto(b"unsolicited", outbound)
        assert_only_marker(a, udp_echo)
    assert metrics_of(proxy)(DROPPED, reason="unsolicited") == 1


def test_unsolicited_reply_relayed_when_allowed(configured, metrics_of, udp_echo):
    """``udp.allow_unsolicited: true``: the stranger's datagram reaches the
    client, wrapped with the stranger's address."""
    proxy = configured({"udp": {"allow_unsolicited": True}})
    with Association(proxy.addr) as a, udp_from("127.0.0.1") as stranger:
        a.roundtrip(udp_echo.addr, b"open-the-path")
        outbound, _ = udp_echo.next_peer()
        stranger.sendto(b"unsolicited", outbound)
        d = a.recv()
        assert d.payload == b"unsolicited"
        assert (d.host, d.port) == stranger.getsockname()
    assert metrics_of(proxy)(DROPPED, reason="unsolicited") == 0


# ---- the ACL, per datagram ---------------------------------------------------------

def test_acl_applies_per_datagram(make_proxy, metrics_of, dns_server, udp_echo):
    """A deny rule for one target port (and one name) drops those datagrams;
    others on the same association pass."""
    with UDPEchoServer("127.0.0.1") as denied:
        args = ["--deny", f"127.0.0.1:{denied.port}", "--deny", "blocked.test",
                *DEFAULT_ARGS, "--dns-server", dns_server.addr_text]
        dns_server.set("blocked.test", ["127.0.0.1"])
        proxy = make_proxy(default_args=args)
        with Association(proxy.addr) as a:
            a.send(*denied.addr, b"to-denied-port")
            a.send("blocked.test", udp_echo.port, b"to-denied-name")
            assert_only_marker(a, udp_echo)
            a.send(C.NAME_V4, udp_echo.port, b"by-allowed-name")
            assert a.recv().payload == b"by-allowed-name"
            assert denied.drain() == []
        assert metrics_of(proxy)(DROPPED, reason="acl") == 2


def test_acl_denies_udp_command_only(make_proxy, udp_echo):
    """A rule limited to ``cmd=udp`` drops datagrams to that port while
    CONNECT to the same address still passes."""
    with EchoServer("127.0.0.1") as tcp_echo:
        args = ["--deny", f"dst=127.0.0.1 port={udp_echo.port} cmd=udp", *DEFAULT_ARGS]
        proxy = make_proxy(default_args=args)
        with Association(proxy.addr) as a, UDPEchoServer("127.0.0.1") as allowed:
            a.send(*udp_echo.addr, b"denied")
            assert_only_marker(a, allowed)
            assert udp_echo.drain() == []
        s, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", tcp_echo.port)
        with s:
            sc.echo_roundtrip(s, b"connect-still-allowed")


def test_builtin_blocks_apply_per_datagram(make_proxy, metrics_of, dns_server, udp_echo):
    """The built-in blocks (private, link-local/metadata, unspecified,
    multicast) hold for datagrams as for CONNECT, also for a name that
    resolves into a blocked range (checked after DNS)."""
    dns_server.set("rebind.test", ["10.9.8.7"])
    proxy = make_proxy("--dns-server", dns_server.addr_text)
    blocked = [("10.1.2.3", 53), ("192.168.1.1", 53), ("169.254.169.254", 80), ("0.0.0.0", udp_echo.port),
               ("224.0.0.1", 5353), ("fd00::1", 53), ("rebind.test", 53)]
    m = metrics_of(proxy)
    with Association(proxy.addr) as a:
        for host, port in blocked:
            a.send(host, port, b"must-not-leave")
        assert_only_marker(a, udp_echo)
        # rebind.test is resolved asynchronously: wait for its verdict while
        # checking that nothing comes back meanwhile.
        wait_until(lambda: m(DROPPED, reason="acl") >= len(blocked), 5.0,
                   lambda t: a.nothing_within(t) or None)
        assert a.nothing_within(0.01)
    assert m(DROPPED, reason="acl") == len(blocked), \
        f"{m(DROPPED, reason='acl')} datagrams dropped by the ACL, expected {len(blocked)}"
    assert m(DROPPED, reason="other") == 0
    assert udp_echo.drain() == []


def test_datagram_to_a_closed_port_does_not_break_the_association(make_proxy, udp_echo):
    """ICMP port unreachable from one target leaves the association working."""
    proxy = make_proxy()
    with udp_from("127.0.0.1") as s:
        closed = s.getsockname()
    with Association(proxy.addr) as a:
        for _ in range(3):
            a.send(*closed, b"nobody-home")
            a.roundtrip(udp_echo.addr, b"still-fine")


# ---- the end of an association -------------------------------------------------------

def test_association_ends_with_its_tcp_connection(make_proxy, udp_echo):
    """Closing the control connection ends the association: its relay socket
    is closed (the port is free) and a datagram sent there gets no reply."""
    proxy = make_proxy()
    a = Association(proxy.addr)
    try:
        a.roundtrip(udp_echo.addr, b"alive")
        relay = a.relay
        start = rt.mark(proxy)
        a.tcp.close()
        rec = rt.wait_access(proxy, start=start, cmd="udp")
        assert rec["result"] == "closed", rec
        assert relay_port_free(relay), f"the relay port {relay} is still bound after the association ended"
        udp_echo.drain()
        a.send(*udp_echo.addr, b"after-close")
        assert a.nothing_within(QUIET), "a datagram sent after the association closed got a reply"
        assert udp_echo.drain() == [], "a datagram sent after the association closed reached the target"
    finally:
        a.close()


def test_association_ends_when_the_client_resets(make_proxy, udp_echo):
    """An RST on the control connection ends the association just the same."""
    proxy = make_proxy()
    a = Association(proxy.addr)
    try:
        a.roundtrip(udp_echo.addr, b"alive")
        relay = a.relay
        start = rt.mark(proxy)
        a.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        a.tcp.close()
        rt.wait_access(proxy, start=start, cmd="udp")
        assert relay_port_free(relay)
    finally:
        a.close()


def test_bytes_on_the_control_connection_are_ignored(make_proxy, udp_echo):
    """Bytes a client sends on the control connection do not end the
    association (only EOF or an error does)."""
    proxy = make_proxy()
    with Association(proxy.addr) as a:
        a.tcp.sendall(b"keepalive?")
        a.roundtrip(udp_echo.addr, b"still-alive")
        assert sc.is_open_after(a.tcp, QUIET)


def test_idle_timeout_ends_the_association(configured, udp_echo):
    """``udp.idle_timeout``: no datagram either way for that long ends the
    association (control connection closed by the proxy, relay port freed,
    access record result=idle_timeout), not sooner."""
    proxy = configured({"udp": {"idle_timeout": "1s"}})
    with Association(proxy.addr) as a:
        a.roundtrip(udp_echo.addr, b"last-traffic")
        t0 = time.monotonic()
        start = rt.mark(proxy)
        sc.expect_closed(a.tcp, timeout=6.0)
        elapsed = time.monotonic() - t0
        rec = rt.wait_access(proxy, start=start, cmd="udp")
        assert rec["result"] == "idle_timeout", rec
        assert elapsed >= 0.9, f"closed after {elapsed:.2f}s, before the 1s idle timeout"
        assert relay_port_free(a.relay)
        a.send(*udp_echo.addr, b"after-idle")
        assert a.nothing_within(QUIET)


def test_traffic_keeps_the_association_alive(configured, udp_echo):
    """Datagrams more often than the idle timeout keep it open past it (and
    past the handshake and connect deadlines, which end with the reply)."""
    proxy = configured({"udp": {"idle_timeout": "1s"}}, "--handshake-timeout", "500ms",
                       "--connect-timeout", "500ms")
    with Association(proxy.addr) as a:
        t0 = time.monotonic()
        for i in range(6):  # ~0.4 s apart, paced by receive timeouts: ~2.4 s in all
            a.roundtrip(udp_echo.addr, f"tick-{i}".encode())
            assert a.nothing_within(0.4)
        assert time.monotonic() - t0 > 1.5
        assert sc.is_open_after(a.tcp, 0.01), "the association ended although traffic kept flowing"
        a.roundtrip(udp_echo.addr, b"still-here")


# ---- sizes -------------------------------------------------------------------------

@pytest.mark.parametrize("listen,size", [
    ("127.0.0.1:0", 0), ("127.0.0.1:0", 1), ("127.0.0.1:0", 1472), ("127.0.0.1:0", 9000),
    # The largest datagram IPv4 carries (65,507 bytes) minus the 10-byte header.
    ("127.0.0.1:0", 65507 - 10),
    # IPv6: 65,527 bytes of UDP payload minus the 22-byte header.
    ("[::1]:0", 65527 - 22),
], ids=["empty", "1", "1472", "9000", "max-v4", "max-v6"])
def test_datagram_sizes(make_proxy, udp_echo, udp_echo6, listen, size):
    """Payloads from empty to the largest the family carries pass unchanged
    both ways."""
    echo = udp_echo6 if listen.startswith("[") else udp_echo
    proxy = make_proxy(listen=[listen])
    payload = bytes((i * 7 + 3) & 0xFF for i in range(size))
    with Association(proxy.addr) as a:
        a.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        d = a.roundtrip(echo.addr, payload)
        assert len(d.payload) == size


@pytest.mark.parametrize("name", ["0", "client.example"])
def test_hint_as_domain_name_with_address_based_forwarding_rules(configured, dns_server, udp_echo, name):
    """A forwarding rule on a destination CIDR makes the router want the
    target's address.  The hint of a UDP ASSOCIATE is not a target (PySocks
    sends the name "0"): it must not be resolved into a refusal."""
    config = {"forwarding": [{"match": "*:*", "dst": ["10.0.0.0/8"], "upstream": "socks5://127.0.0.1:9"}]}
    proxy = configured(config, "--dns-server", dns_server.addr_text)
    with Association(proxy.addr, hint=(name.encode(), 4242), expect_ok=False) as a:
        assert a.reply.rep == sc.REP_SUCCEEDED, \
            f"UDP ASSOCIATE with hint {name!r}:4242 refused: {a.reply.raw.hex(' ')}"
        a.roundtrip(udp_echo.addr, b"name-hint-with-cidr-rule")
