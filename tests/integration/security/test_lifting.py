"""Lifting built-in blocks with allow rules: a rule at least as specific as
the block lifts it, a wider one does not. Private, link-local, metadata,
CGNAT and SMTP targets are real listeners inside a network namespace the
test creates (addresses on its `lo`), so nothing leaves the machine."""

from __future__ import annotations

import socket
import subprocess

import pytest

from support import socksclient as sc
from support import security as sec
from support.dns import DNSServer
from support.servers import EchoServer

NS_ADDRESSES = ["10.0.0.1", "169.254.1.1", "169.254.169.254", "100.64.0.1", "100.100.100.200"]


def listen_in(ns, host: str, port: int = 0) -> socket.socket:
    """A listening socket inside ``ns``; connections complete in the kernel
    backlog, which is all a CONNECT needs to succeed."""
    def make():
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(16)
        return s
    return ns.run_in(make)


@pytest.fixture
def lab(netns):
    for addr in NS_ADDRESSES:
        r = subprocess.run(["ip", "-n", netns.name, "addr", "add", f"{addr}/32", "dev", "lo"],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            pytest.skip(f"cannot add {addr} in the namespace: {r.stderr.strip()}")
    return netns


def rep_in(ns, proxy, host, port) -> tuple[int, dict]:
    """REP of a CONNECT from inside ``ns``, and the access record of a
    refusal (a tunnel to a never-accepting listener logs only at its end)."""
    a = sec.socks5(proxy.addr, host, port, sock=ns.socket(socket.AF_INET))
    assert a.stage == "reply", a
    if a.rep == sc.REP_SUCCEEDED:
        return a.rep, {"result": "ok"}
    return a.rep, sec.wait_access(proxy, client=sec.fmt_addr(a.client))


def start_in(ns, bare_proxy, *rules):
    return bare_proxy(*rules, prefix=ns.exec_prefix)


# ---- inside the namespace ----------------------------------------------------------

def test_specific_allow_lifts_private(lab, bare_proxy):
    target = listen_in(lab, "10.0.0.1")
    port = target.getsockname()[1]
    with target:
        p = start_in(lab, bare_proxy, "--allow", "10.0.0.0/8")
        rep, rec = rep_in(lab, p, "10.0.0.1", port)
        assert rep == sc.REP_SUCCEEDED, rec
        p2 = start_in(lab, bare_proxy, "--allow", "10.0.0.1")
        assert rep_in(lab, p2, "10.0.0.1", port)[0] == sc.REP_SUCCEEDED


@pytest.mark.parametrize("spec", ["0.0.0.0/0", "8.0.0.0/5", "*", "*:1-65535"])
def test_wide_allow_does_not_lift_private(lab, bare_proxy, spec):
    target = listen_in(lab, "10.0.0.1")
    with target:
        p = start_in(lab, bare_proxy, "--allow", spec)
        rep, rec = rep_in(lab, p, "10.0.0.1", target.getsockname()[1])
        assert rep == sc.REP_NOT_ALLOWED, rec
        assert rec["rule"] == "builtin:private", rec


def test_link_local_lift_does_not_lift_metadata(lab, bare_proxy):
    ll = listen_in(lab, "169.254.1.1")
    md = listen_in(lab, "169.254.169.254")
    with ll, md:
        p = start_in(lab, bare_proxy, "--allow", "169.254.0.0/16")
        assert rep_in(lab, p, "169.254.1.1", ll.getsockname()[1])[0] == sc.REP_SUCCEEDED
        rep, rec = rep_in(lab, p, "169.254.169.254", md.getsockname()[1])
        assert rep == sc.REP_NOT_ALLOWED and rec["rule"] == "builtin:metadata", rec
        p2 = start_in(lab, bare_proxy, "--allow", "169.254.169.254")
        assert rep_in(lab, p2, "169.254.169.254", md.getsockname()[1])[0] == sc.REP_SUCCEEDED
        rep, rec = rep_in(lab, p2, "169.254.1.1", ll.getsockname()[1])
        assert rep == sc.REP_NOT_ALLOWED and rec["rule"] == "builtin:link_local", rec


def test_cgnat_lift_does_not_lift_alibaba_metadata(lab, bare_proxy):
    cg = listen_in(lab, "100.64.0.1")
    md = listen_in(lab, "100.100.100.200")
    with cg, md:
        p = start_in(lab, bare_proxy, "--allow", "100.64.0.0/10")
        assert rep_in(lab, p, "100.64.0.1", cg.getsockname()[1])[0] == sc.REP_SUCCEEDED
        rep, rec = rep_in(lab, p, "100.100.100.200", md.getsockname()[1])
        assert rep == sc.REP_NOT_ALLOWED and rec["rule"] == "builtin:metadata", rec


@pytest.mark.parametrize("spec,lifted", [
    ("127.0.0.1:25", True),
    ("127.0.0.0/8:20-30", True),
    ("dst=127.0.0.1 port=25,80", True),
    ("127.0.0.1", False),
    ("127.0.0.1:*", False),
    ("127.0.0.1:1-65535", False),
    ("127.0.0.1:1-2000", False),
], ids=["exact", "narrow-range", "list", "no-port", "star", "all-ports", "wide-range"])
def test_smtp_lifted_by_a_narrow_port_rule(lab, bare_proxy, spec, lifted):
    target = listen_in(lab, "127.0.0.1", 25)
    with target:
        p = start_in(lab, bare_proxy, "--allow", spec)
        rep, rec = rep_in(lab, p, "127.0.0.1", 25)
        if lifted:
            assert rep == sc.REP_SUCCEEDED, rec
        else:
            assert rep == sc.REP_NOT_ALLOWED and rec["rule"] == "builtin:smtp", rec


def test_allow_by_name_does_not_lift(lab, bare_proxy):
    """An allow rule that matched by domain names no address range: the
    name resolving to 10.0.0.1 stays blocked; naming the range lifts it."""
    def udp():
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        return u
    target = listen_in(lab, "10.0.0.1")
    port = target.getsockname()[1]
    with target, DNSServer({"intranet.corp.test": ["10.0.0.1"]}, ttl=0, sock=lab.run_in(udp)) as dns:
        p = start_in(lab, bare_proxy, "--allow", "intranet.corp.test", "--default-action", "deny",
                     "--dns-server", dns.addr_text)
        rep, rec = rep_in(lab, p, "intranet.corp.test", port)
        assert rep == sc.REP_NOT_ALLOWED and rec["rule"] == "builtin:private", rec
        p2 = start_in(lab, bare_proxy, "--allow", "dst=intranet.corp.test,10.0.0.0/8", "--default-action", "deny",
                      "--dns-server", dns.addr_text)
        rep, rec = rep_in(lab, p2, "intranet.corp.test", port)
        assert rep == sc.REP_SUCCEEDED, rec


def test_own_public_address_is_blocked_until_named(netns, bare_proxy):
    """A public address on one of the proxy host's interfaces reaches every
    service bound to all addresses (an admin API, a database), loopback block
    or not: builtin:local refuses it, an allow rule naming the address lifts
    it, and an address that appears later is refused from the next reload."""
    import signal

    from support.ops import RELOADED_RE

    def add_address(addr):
        r = subprocess.run(["ip", "-n", netns.name, "addr", "add", f"{addr}/32", "dev", "lo"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr

    add_address("198.51.100.10")
    target = listen_in(netns, "0.0.0.0")  # a service bound to every address
    port = target.getsockname()[1]
    with target:
        p = start_in(netns, bare_proxy)
        rep, rec = rep_in(netns, p, "198.51.100.10", port)
        assert rep == sc.REP_NOT_ALLOWED and rec["rule"] == "builtin:local", rec
        wide = start_in(netns, bare_proxy, "--allow", "198.51.100.0/24")
        rep, rec = rep_in(netns, wide, "198.51.100.10", port)
        assert rep == sc.REP_NOT_ALLOWED and rec["rule"] == "builtin:local", rec
        named = start_in(netns, bare_proxy, "--allow", "198.51.100.10")
        assert rep_in(netns, named, "198.51.100.10", port)[0] == sc.REP_SUCCEEDED

        add_address("198.51.100.11")
        assert rep_in(netns, p, "198.51.100.11", port)[0] == sc.REP_SUCCEEDED, "not read before a reload"
        start = len(p.log.snapshot())
        p.proc.send_signal(signal.SIGHUP)
        p.log.wait_for(RELOADED_RE, 10.0, start)
        rep, rec = rep_in(netns, p, "198.51.100.11", port)
        assert rep == sc.REP_NOT_ALLOWED and rec["rule"] == "builtin:local", rec


# ---- loopback on the host -------------------------------------------------------------

def test_loopback_lift_is_exact(bare_proxy, echo_server, echo_server6):
    other = EchoServer("127.0.0.2")
    try:
        p = bare_proxy("--allow", "127.0.0.1", listen=("127.0.0.1:0",))
        assert sec.socks5_rep(p.addr, "127.0.0.1", echo_server.port) == sc.REP_SUCCEEDED
        assert sec.socks5_rep(p.addr, "127.0.0.2", other.port) == sc.REP_NOT_ALLOWED
        assert sec.socks5_rep(p.addr, "::1", echo_server6.port) == sc.REP_NOT_ALLOWED
        assert other.peers == []
    finally:
        other.close()


def test_ipv4_lift_does_not_open_ipv6_forms(bare_proxy, echo_server, echo_server6):
    p = bare_proxy("--allow", "127.0.0.0/8")
    assert sec.socks5_rep(p.addr, "127.0.0.1", echo_server.port) == sc.REP_SUCCEEDED
    assert sec.socks5_rep(p.addr, "::ffff:127.0.0.1", echo_server.port) == sc.REP_SUCCEEDED, \
        "a mapped address is its IPv4 address"
    for host in ("::1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1"):
        a = sec.socks5(p.addr, host, echo_server6.port)
        assert a.rep == sc.REP_NOT_ALLOWED, host
        assert sec.wait_access(p, client=sec.fmt_addr(a.client))["rule"] == "builtin:loopback"


def test_ipv6_lift_does_not_open_ipv4(bare_proxy, echo_server, echo_server6):
    p = bare_proxy("--allow", "::1")
    assert sec.socks5_rep(p.addr, "::1", echo_server6.port) == sc.REP_SUCCEEDED
    assert sec.socks5_rep(p.addr, "127.0.0.1", echo_server.port) == sc.REP_NOT_ALLOWED


def test_wide_allow_does_not_lift_loopback(bare_proxy, echo_server, echo_server6):
    p = bare_proxy("--allow", "0.0.0.0/0", "--allow", "::/0")
    before4, before6 = len(echo_server.peers), len(echo_server6.peers)
    for host, port in (("127.0.0.1", echo_server.port), ("::1", echo_server6.port)):
        a = sec.socks5(p.addr, host, port)
        assert a.rep == sc.REP_NOT_ALLOWED, host
        assert sec.wait_access(p, client=sec.fmt_addr(a.client))["rule"] == "builtin:loopback"
    assert (len(echo_server.peers), len(echo_server6.peers)) == (before4, before6)
