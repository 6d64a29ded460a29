"""Built-in blocks through the real proxy: every category for IPv4 and IPv6
targets, every IPv6 form that embeds a blocked IPv4 address, SMTP, names
that resolve to blocked addresses (test DNS server and /etc/hosts), cloud
metadata names refused before any DNS query, and a name with several
addresses dialling only the allowed ones.

None of these proxies allows anything extra, so a request is either refused
(REP 0x02, nothing dialled) or goes to a loopback server the test controls.
"""

from __future__ import annotations

import socket

import pytest

from support import socksclient as sc
from support import security as sec
from support.dns import QTYPE_A, DNSServer
from support.netns import NetNS, NetNSUnavailable
from support.proxy import Proxy
from support.servers import EchoServer

BLOCKED_V4 = [
    ("127.0.0.1", "builtin:loopback"),
    ("127.255.255.254", "builtin:loopback"),
    ("10.0.0.1", "builtin:private"),
    ("172.16.0.1", "builtin:private"),
    ("172.31.255.255", "builtin:private"),
    ("192.168.1.1", "builtin:private"),
    ("169.254.1.1", "builtin:link_local"),
    ("100.64.0.1", "builtin:cgnat"),
    ("100.127.255.254", "builtin:cgnat"),
    ("0.0.0.0", "builtin:unspecified"),
    ("0.1.2.3", "builtin:unspecified"),
    ("224.0.0.1", "builtin:multicast"),
    ("239.255.255.250", "builtin:multicast"),
    ("240.0.0.1", "builtin:reserved"),
    ("255.255.255.255", "builtin:reserved"),
    ("169.254.169.254", "builtin:metadata"),
    ("100.100.100.200", "builtin:metadata"),
]

BLOCKED_V6 = [
    ("::1", "builtin:loopback"),
    ("fec0::1", "builtin:private"),
    ("fe80::1", "builtin:link_local"),
    ("fc00::1", "builtin:unique_local"),
    ("fd12:3456::1", "builtin:unique_local"),
    ("::", "builtin:unspecified"),
    ("ff02::1", "builtin:multicast"),
    ("fd00:ec2::254", "builtin:metadata"),
]

# IPv6 transition forms embedding a blocked IPv4 address.
BLOCKED_EMBEDDED = [
    ("::ffff:127.0.0.1", "builtin:loopback", "mapped"),
    ("::ffff:10.0.0.1", "builtin:private", "mapped"),
    ("::ffff:169.254.169.254", "builtin:metadata", "mapped"),
    ("::127.0.0.1", "builtin:loopback", "compatible"),
    ("::10.0.0.1", "builtin:private", "compatible"),
    ("64:ff9b::7f00:1", "builtin:loopback", "nat64"),
    ("64:ff9b::a9fe:a9fe", "builtin:metadata", "nat64"),
    # A /96 inside 64:ff9b:1::/48 also reads as 0.0.0.0 in the /48 layout;
    # either reading may name the block.
    ("64:ff9b:1::a00:1", "builtin:private|builtin:unspecified", "nat64-local-96"),
    ("64:ff9b:1:a00:0:100::", "builtin:private", "nat64-local-48"),
    ("2002:7f00:1::1", "builtin:loopback", "6to4"),
    ("2002:a9fe:a9fe::1", "builtin:metadata", "6to4"),
    ("2001:0:7f00:1::ffff:ffff", "builtin:loopback", "teredo-server"),
    ("2001:0:808:808:8000:ffff:f5ff:fffe", "builtin:private", "teredo-client"),
    ("2001:db8::5efe:a00:1", "builtin:private", "isatap"),
    ("2001:db8::200:5efe:a9fe:a9fe", "builtin:metadata", "isatap-u"),
]


@pytest.fixture(scope="module")
def mod_dns():
    with DNSServer({}, ttl=0) as server:
        yield server


@pytest.fixture(scope="module")
def blocking(mod_dns):
    """No rules at all: only the built-in blocks."""
    p = Proxy(["--dns-server", mod_dns.addr_text], ["127.0.0.1:0", "[::1]:0"],
              default_args=sec.defaults_without_rules())
    yield p
    p.finish()


def assert_blocked(proxy, host, port, rule, client_family_addr=None):
    a = sec.socks5(client_family_addr or proxy.addr, host, port)
    assert a.stage == "reply", f"{host}:{port}: ended at {a.stage}"
    assert a.rep == sc.REP_NOT_ALLOWED, f"{host}:{port}: REP {a.rep:#04x}, expected 0x02 ({rule})"
    rec = sec.wait_access(proxy, client=sec.fmt_addr(a.client))
    assert rec.get("result") == "not_allowed", rec
    assert rec.get("rep") == "0x02", rec
    assert rec.get("rule") in rule.split("|"), rec
    assert rec.get("dialled") == "-", f"something was dialled: {rec}"


@pytest.mark.parametrize("address,rule", BLOCKED_V4, ids=[a for a, _ in BLOCKED_V4])
def test_ipv4_builtin_block(blocking, address, rule):
    assert_blocked(blocking, address, 443, rule)


@pytest.mark.parametrize("address,rule", BLOCKED_V6, ids=[a for a, _ in BLOCKED_V6])
def test_ipv6_builtin_block(blocking, address, rule):
    assert_blocked(blocking, address, 443, rule)


@pytest.mark.parametrize("address,rule,form", BLOCKED_EMBEDDED, ids=[f for _, _, f in BLOCKED_EMBEDDED])
def test_ipv6_embedded_ipv4_block(blocking, address, rule, form):
    assert_blocked(blocking, address, 443, rule)


def test_loopback_target_is_not_dialled(blocking, echo_server, echo_server6):
    """A live server on 127.0.0.1 / ::1: refused, and no connection reaches it."""
    before4, before6 = len(echo_server.peers), len(echo_server6.peers)
    for host, port in (("127.0.0.1", echo_server.port), ("::1", echo_server6.port),
                       ("::ffff:127.0.0.1", echo_server.port), ("localhost", echo_server.port)):
        assert sec.socks5_rep(blocking.addr, host, port) == sc.REP_NOT_ALLOWED, host
    assert len(echo_server.peers) == before4, "the proxy connected to 127.0.0.1"
    assert len(echo_server6.peers) == before6, "the proxy connected to ::1"


def test_ipv6_listener_same_blocks(blocking):
    v6 = blocking.endpoint_for(socket.AF_INET6).sockaddr
    assert_blocked(blocking, "169.254.169.254", 80, "builtin:metadata", v6)
    assert_blocked(blocking, "::ffff:10.0.0.1", 80, "builtin:private", v6)


def test_ip_literal_sent_as_domain_is_checked_as_ip(blocking, mod_dns):
    for name, rule in ((b"127.0.0.1", "builtin:loopback"), (b"169.254.169.254", "builtin:metadata"),
                       (b"::1", "builtin:loopback"), (b"::ffff:10.0.0.1", "builtin:private")):
        a = sec.socks5(blocking.addr, name, 80)
        assert a.rep == sc.REP_NOT_ALLOWED, name
        rec = sec.wait_access(blocking, client=sec.fmt_addr(a.client))
        assert rec["rule"] == rule, rec
        assert mod_dns.queried(name.decode()) == [], f"the IP literal {name!r} was sent to DNS"


@pytest.fixture(scope="module")
def ns_blocking():
    """Only the built-in blocks, in a namespace with only ``lo``: were a name
    read wrongly ("0177.0.0.1" as 177.0.0.1), nothing could leave."""
    try:
        ns = NetNS()
    except NetNSUnavailable as exc:
        pytest.skip(str(exc))

    def udp():
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        return u
    try:
        with DNSServer({}, ttl=0, sock=ns.run_in(udp)) as dns:
            p = Proxy(["--dns-server", dns.addr_text], ["127.0.0.1:0"], prefix=ns.exec_prefix,
                      default_args=sec.defaults_without_rules())
            try:
                yield ns, p, dns
            finally:
                p.finish()
    finally:
        ns.close()


def _ask_in_ns(ns_blocking, name, port=80):
    ns, p, dns = ns_blocking
    a = sec.socks5(p.addr, name, port, sock=ns.socket(socket.AF_INET))
    assert a.stage == "reply", (name, a)
    rec = sec.wait_access(p, client=sec.fmt_addr(a.client))
    text = name.decode()
    assert dns.queried(text) == [] and dns.queried(text.rstrip(".")) == [], f"{text} was sent to DNS"
    assert rec["dialled"] == "-", rec
    return a.rep, rec


@pytest.mark.parametrize("name", [b"127.0.0.1.", b"127.0.0.01", b"0177.0.0.1", b"0x7f.0.0.1", b"0X7F.1", b"127.1",
                                  b"2130706433", b"0x7f000001", b"017700000001", b"0:0:0:0:0:0:0:1"])
def test_numeric_names_are_read_as_the_address_they_spell(ns_blocking, name):
    """Names that spell an address the way browsers and inet_aton read them
    (octal, hex, fewer parts, a trailing dot) are that address: refused as
    loopback by its rule, never dialled, never sent to DNS."""
    rep, rec = _ask_in_ns(ns_blocking, name)
    assert rep == sc.REP_NOT_ALLOWED and rec["rule"] == "builtin:loopback", (name, rec)


@pytest.mark.parametrize("name", [b"1.2.3.4.5", b"09.1.1.1", b"127.0.0.256", b"1.1.16777216", b"4294967296",
                                  b"example.1", b"1..2"])
def test_names_that_only_look_like_addresses_are_unreachable_without_dns(ns_blocking, name):
    """A name whose last label is a number but which is no valid address is
    no DNS name either: host unreachable (0x04), and DNS never hears of it."""
    rep, rec = _ask_in_ns(ns_blocking, name)
    assert rep == sc.REP_HOST_UNREACH and rec["result"] == "host_not_found", (name, rec)


def test_smtp_port_blocked(blocking, mod_dns):
    assert_blocked(blocking, "8.8.8.8", 25, "builtin:smtp")
    assert_blocked(blocking, "2001:4860:4860::8888", 25, "builtin:smtp")
    assert_blocked(blocking, "mail.smtp.test", 25, "builtin:smtp")
    assert mod_dns.queried("mail.smtp.test") == [], "SMTP is refused on the port alone: no DNS needed"


@pytest.mark.parametrize("answer,rule", [
    (["10.0.0.1"], "builtin:private"),
    (["169.254.169.254"], "builtin:metadata"),
    (["127.0.0.1"], "builtin:loopback"),
    (["192.168.0.10", "172.16.5.5"], "builtin:private"),
    (["::1"], "builtin:loopback"),
    (["fd00:ec2::254"], "builtin:metadata"),
    (["::ffff:10.0.0.1"], "builtin:private"),
    (["64:ff9b::a9fe:a9fe"], "builtin:metadata"),
], ids=["private", "metadata", "loopback", "two-private", "v6-loopback", "v6-metadata", "mapped", "nat64"])
def test_domain_resolving_to_blocked_address(blocking, mod_dns, answer, rule):
    name = "evil-" + "-".join(answer).replace(":", "x").replace(".", "-") + ".test"
    mod_dns.set(name, answer)
    assert_blocked(blocking, name, 80, rule)
    assert mod_dns.queried(name), "the name was never resolved (blocked for another reason?)"


def test_domain_from_etc_hosts_resolving_to_loopback(blocking, mod_dns, echo_server):
    """/etc/hosts is read before DNS: localhost → 127.0.0.1, blocked."""
    hosts = open("/etc/hosts").read().split()
    if "localhost" not in hosts:
        pytest.skip("/etc/hosts has no localhost entry")
    before = len(echo_server.peers)
    assert_blocked(blocking, "localhost", echo_server.port, "builtin:loopback")
    assert len(echo_server.peers) == before
    assert mod_dns.queried("localhost") == [], "localhost should come from /etc/hosts"


METADATA_NAMES = ["metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                  "METADATA.Google.Internal.", "metadata.azure.internal"]


@pytest.mark.parametrize("name", METADATA_NAMES)
def test_metadata_hostname_blocked_before_dns(blocking, mod_dns, name):
    mod_dns.set(name, ["203.0.113.9"])  # were it asked, DNS would give a harmless answer
    assert_blocked(blocking, name, 80, "builtin:metadata")
    assert mod_dns.queried(name) == [], f"the proxy asked DNS for {name}"


def test_metadata_hostname_blocked_before_dns_with_quickstart_rules(bare_proxy, dns):
    """The quick-start rules (`--allow 127.0.0.0/8 --allow ::1`, the README's
    example) put CIDR rules first. They cannot match a metadata name, and the
    name is refused whatever it resolves to — so no DNS query may leave."""
    proxy = bare_proxy("--allow", "127.0.0.0/8", "--allow", "::1", "--dns-server", dns.addr_text)
    for name in ("metadata.google.internal", "metadata.goog"):
        dns.set(name, ["203.0.113.9"])
        assert_blocked(proxy, name, 80, "builtin:metadata")
        assert dns.queried(name) == [], (
            f"metadata name {name} was looked up in DNS ({dns.queried(name)}) before being refused")


def test_smtp_name_refused_before_dns_with_quickstart_rules(bare_proxy, dns):
    """Port 25 is refused whatever the name resolves to: with the quick-start
    CIDR rules first, no DNS query may leave either."""
    proxy = bare_proxy("--allow", "127.0.0.0/8", "--allow", "::1", "--dns-server", dns.addr_text)
    dns.set("mx.smtp.test", ["203.0.113.25"])
    assert_blocked(proxy, "mx.smtp.test", 25, "builtin:smtp")
    assert dns.queried("mx.smtp.test") == [], (
        f"mx.smtp.test:25 was looked up in DNS ({dns.queried('mx.smtp.test')}) before being refused")


def test_metadata_hostname_blocked_via_socks4a(blocking, mod_dns):
    mod_dns.set("metadata.google.internal", ["203.0.113.9"])
    before = len(mod_dns.queried("metadata.google.internal"))
    assert sec.socks4_cd(blocking.addr, "metadata.google.internal", 80) == sc.S4_REJECTED
    assert len(mod_dns.queried("metadata.google.internal")) == before


def test_name_with_several_addresses_dials_only_allowed(bare_proxy, dns, echo_server):
    """Blocked answers are dropped, the allowed one is dialled."""
    proxy = bare_proxy("--allow", "127.0.0.1", "--dns-server", dns.addr_text)
    dns.set("mixed.test", ["10.0.0.1", "169.254.169.254", "127.0.0.2", "127.0.0.1", "fe80::1", "::1"])
    a = sec.socks5(proxy.addr, "mixed.test", echo_server.port, keep=True)
    try:
        assert a.rep == sc.REP_SUCCEEDED, f"REP {a.rep}"
        sc.echo_roundtrip(a.sock, b"only the allowed address")
    finally:
        a.close()
    rec = sec.wait_access(proxy, client=sec.fmt_addr(a.client))
    assert rec["dialled"] == f"127.0.0.1:{echo_server.port}", rec
    # Only blocked answers: refused with the block's name, nothing dialled.
    dns.set("allbad.test", ["10.0.0.1", "127.0.0.2"])
    a2 = sec.socks5(proxy.addr, "allbad.test", echo_server.port)
    assert a2.rep == sc.REP_NOT_ALLOWED
    rec2 = sec.wait_access(proxy, client=sec.fmt_addr(a2.client))
    assert rec2["rule"] in ("builtin:private", "builtin:loopback"), rec2
    assert rec2["dialled"] == "-", rec2


class FlipDNS(DNSServer):
    """Answers the first A query for ``name`` with ``first`` and every later
    one with ``then``: a second lookup between check and dial would get the
    other address."""

    def __init__(self, name: str, first: str, then: str):
        super().__init__({name: [first]}, ttl=0)
        self.flip_name, self.then = name, then

    def _answer(self, data: bytes):
        reply = super()._answer(data)
        try:
            qname, qtype, _ = self._question(data, 12)
        except (IndexError, ValueError):
            return reply
        if qname == self.flip_name and qtype == QTYPE_A:
            self.set(qname, [self.then])
        return reply


def test_no_second_lookup_between_check_and_dial(bare_proxy, echo_server):
    """TOCTOU: the address checked is the address dialled. DNS answers the
    allowed 127.0.0.1 once, then only the blocked 127.0.0.2; a listener on
    127.0.0.2 at the same port must never see a connection."""
    try:
        trap = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        trap.bind(("127.0.0.2", echo_server.port))
    except OSError as exc:
        pytest.skip(f"cannot bind 127.0.0.2:{echo_server.port}: {exc}")
    trap.listen(8)
    trap.setblocking(False)
    with trap, FlipDNS("flip.test", "127.0.0.1", "127.0.0.2") as dns:
        proxy = bare_proxy("--allow", "127.0.0.1", "--dns-server", dns.addr_text)
        a = sec.socks5(proxy.addr, "flip.test", echo_server.port, keep=True)
        try:
            assert a.rep == sc.REP_SUCCEEDED, f"REP {a.rep}"
            sc.echo_roundtrip(a.sock, b"checked == dialled")
        finally:
            a.close()
        rec = sec.wait_access(proxy, client=sec.fmt_addr(a.client))
        assert rec["dialled"] == f"127.0.0.1:{echo_server.port}", rec
        try:
            conn, peer = trap.accept()
            conn.close()
            raise AssertionError(f"the proxy connected to the blocked 127.0.0.2 (from {peer})")
        except BlockingIOError:
            pass
