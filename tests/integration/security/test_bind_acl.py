"""The ACL on BIND's expected peer when DST.ADDR is a name: judged like
CONNECT's target — on the name, then on every address it resolves to (the
built-in blocks and the rules, first match wins). A name with no allowed
address is refused with REP 0x02 (SOCKS4a: 0x5B), counted and logged like
any ACL refusal, and opens no listener; a name with allowed addresses
expects only those, and whoever connects must be one of them.

Every proxy here starts without the harness' loopback allows (bare_proxy),
so 127.0.0.0/8 and ::1 are under the built-in loopback block unless a test
allows part of it."""

from __future__ import annotations

import socket

import pytest

from support import socksclient as sc
from support import security as sec
from support.admin import AdminClient
from support.udp import metric, negotiate

BINDS = "cleversocks_binds_total"
ACL_BLOCKS = "cleversocks_acl_blocks_total"


def metrics(proxy, name: str, **labels: str) -> float:
    return metric(AdminClient.of(proxy).metrics_text(), name, **labels)


def bind_request(proxy, host: str, port: int = 0) -> tuple[socket.socket, sc.Reply5]:
    """Control connection + BIND request; returns both (the caller closes)."""
    s = sc.connect(proxy.addr, 5.0)
    try:
        return s, negotiate(s, host, port, cmd=sc.CMD_BIND, timeout=5.0)
    except BaseException:
        s.close()
        raise


def assert_bind_refused(proxy, host: str, rule: str, port: int = 0) -> None:
    """BIND ``host`` gets REP 0x02, the control connection is closed, the
    access log names ``rule``, and the refusal is counted."""
    before = metrics(proxy, ACL_BLOCKS, rule=rule)
    s, r = bind_request(proxy, host, port)
    with s:
        client = s.getsockname()
        assert (r.ver, r.rep) == (sc.VER5, sc.REP_NOT_ALLOWED), \
            f"BIND {host}: first reply {r.raw.hex(' ')}, expected REP 0x02 ({rule})"
        assert (r.host, r.port) in (("0.0.0.0", 0), ("::", 0)), f"a refusal named a listener: {r}"
        sc.expect_closed(s)
    rec = sec.wait_access(proxy, client=sec.fmt_addr(client))
    assert rec["cmd"] == "bind", rec
    assert rec["result"] == "not_allowed" and rec["rep"] == "0x02", rec
    assert rec["rule"] == rule, rec
    assert rec.get("dialled") == "-", f"a peer was accepted: {rec}"
    assert metrics(proxy, ACL_BLOCKS, rule=rule) == before + 1, f"the refusal by {rule} was not counted"
    assert metrics(proxy, BINDS, result="accepted") == 0


@pytest.mark.parametrize("answer,rule", [
    (["127.0.0.1"], "builtin:loopback"),
    (["::1"], "builtin:loopback"),
    (["10.0.0.1"], "builtin:private"),
    (["169.254.169.254"], "builtin:metadata"),
    (["::ffff:127.0.0.1"], "builtin:loopback"),
    (["10.0.0.1", "127.0.0.1"], "builtin:loopback|builtin:private"),
], ids=["loopback", "v6-loopback", "private", "metadata", "mapped-loopback", "all-blocked"])
def test_bind_name_resolving_to_blocked_address_refused(bare_proxy, dns, answer, rule):
    """The probe's case: BIND lo.test (→ 127.0.0.1) used to succeed while
    BIND 127.0.0.1 was refused.  Now both get 0x02, after DNS."""
    proxy = bare_proxy("--dns-server", dns.addr_text)
    name = "bind-" + "-".join(answer).replace(":", "x").replace(".", "-") + ".test"
    dns.set(name, answer)
    s, r = bind_request(proxy, name)
    with s:
        client = s.getsockname()
        assert r.rep == sc.REP_NOT_ALLOWED, f"BIND {name} ({answer}): first reply {r.raw.hex(' ')}"
        sc.expect_closed(s)
    assert dns.queried(name), "the name was never resolved (refused for another reason?)"
    rec = sec.wait_access(proxy, client=sec.fmt_addr(client))
    assert rec["cmd"] == "bind" and rec["result"] == "not_allowed" and rec["rep"] == "0x02", rec
    assert rec["rule"] in rule.split("|"), rec
    assert rec.get("dialled") == "-", rec
    assert metrics(proxy, ACL_BLOCKS, rule=rec["rule"]) == 1
    assert metrics(proxy, BINDS, result="accepted") == 0


def test_bind_ip_and_name_of_a_blocked_peer_alike(bare_proxy, dns):
    """The IP form (refused before) and the name form answer the same."""
    proxy = bare_proxy("--dns-server", dns.addr_text)
    dns.set("lo.test", ["127.0.0.1"])
    assert_bind_refused(proxy, "127.0.0.1", "builtin:loopback")
    assert_bind_refused(proxy, "lo.test", "builtin:loopback", port=4444)


def test_bind_localhost_from_etc_hosts_refused(bare_proxy, dns):
    """localhost comes from /etc/hosts (no DNS query) and is loopback."""
    hosts = open("/etc/hosts").read().split()
    if "localhost" not in hosts:
        pytest.skip("/etc/hosts has no localhost entry")
    proxy = bare_proxy("--dns-server", dns.addr_text)
    assert_bind_refused(proxy, "localhost", "builtin:loopback")
    assert dns.queried("localhost") == [], "localhost should come from /etc/hosts"


def test_bind_name_refused_by_a_rule_on_its_address(bare_proxy, dns):
    """Rules too, in order: a deny on the address (cmd=bind) placed before
    the allow of its range refuses the name that resolves to it."""
    proxy = bare_proxy("--deny", "dst=127.0.0.3 cmd=bind name=no-bind-3", "--allow", "127.0.0.0/8",
                       "--dns-server", dns.addr_text)
    dns.set("three.test", ["127.0.0.3"])
    assert_bind_refused(proxy, "three.test", "no-bind-3")
    # The same address for CONNECT is not this rule's business (cmd=bind):
    # it is allowed by the next rule, and nothing listens there.
    assert sec.socks5_rep(proxy.addr, "three.test", 9) != sc.REP_NOT_ALLOWED


def test_socks4a_bind_name_resolving_to_blocked_address_refused(bare_proxy, dns):
    proxy = bare_proxy("--dns-server", dns.addr_text)
    dns.set("lo4.test", ["127.0.0.1"])
    with sc.connect(proxy.addr, 5.0) as s:
        s.sendall(sc.request4("lo4.test", 21, cmd=sc.CMD_BIND))
        r = sc.read_reply4(s, 5.0)
        assert (r.vn, r.cd) == (0, sc.S4_REJECTED), f"SOCKS4a BIND lo4.test: {r.raw.hex(' ')}"
        sc.expect_closed(s)
    rec = sec.wait_access(proxy, proto="socks4", target="lo4.test:21")
    assert rec["rule"] == "builtin:loopback" and rec["result"] == "not_allowed" and rec["rep"] == "0x5b", rec
    assert metrics(proxy, BINDS, result="accepted") == 0


def test_bind_name_resolving_to_allowed_address_works(bare_proxy, dns):
    """A name with one allowed address (127.0.0.2) and one blocked one
    (127.0.0.1): the BIND succeeds, a connection from the blocked address
    is closed, the one from the allowed address is the peer and is relayed."""
    proxy = bare_proxy("--allow", "127.0.0.2", "--dns-server", dns.addr_text)
    dns.set("peer.test", ["127.0.0.1", "127.0.0.2"])
    s, first = bind_request(proxy, "peer.test", 2121)
    with s:
        assert (first.ver, first.rep) == (sc.VER5, sc.REP_SUCCEEDED), f"first reply {first.raw.hex(' ')}"
        assert first.host.startswith("127.") and first.port != 0, first
        with sec.connect_from((first.host, first.port), "127.0.0.1", 5.0) as intruder:
            assert sc.read_until_closed(intruder) == b"", "a peer from the blocked address got data"
        with sec.connect_from((first.host, first.port), "127.0.0.2", 5.0) as peer:
            second = sc.read_reply(s)
            assert (second.rep, second.host, second.port) == (sc.REP_SUCCEEDED, *peer.getsockname()[:2]), \
                f"second reply {second.raw.hex(' ')}; the peer is {peer.getsockname()[:2]}"
            s.sendall(b"client->peer")
            assert sc.recv_exact(peer, 12) == b"client->peer"
            peer.sendall(b"peer->client")
            assert sc.recv_exact(s, 12) == b"peer->client"
    rec = sec.wait_access(proxy, target="peer.test:2121")
    assert rec["result"] == "ok" and rec["rep"] == "0x00", rec
    assert rec["dialled"].startswith("127.0.0.2:"), rec
    assert metrics(proxy, BINDS, result="rejected_peer") == 1
    assert metrics(proxy, BINDS, result="accepted") == 1


def test_bind_unnamed_peer_must_pass_the_acl(bare_proxy):
    """DST 0.0.0.0 (peer unknown): the peer that connects is judged as a
    target would be — from 127.0.0.1 (loopback block) it is closed, from the
    allowed 127.0.0.2 it is the peer."""
    proxy = bare_proxy("--allow", "127.0.0.2")
    s, first = bind_request(proxy, "0.0.0.0", 0)
    with s:
        assert first.rep == sc.REP_SUCCEEDED, first.raw.hex(" ")
        with sec.connect_from((first.host, first.port), "127.0.0.1", 5.0) as intruder:
            assert sc.read_until_closed(intruder) == b""
        with sec.connect_from((first.host, first.port), "127.0.0.2", 5.0) as peer:
            second = sc.read_reply(s)
            assert (second.rep, second.host, second.port) == (sc.REP_SUCCEEDED, *peer.getsockname()[:2])
    assert metrics(proxy, BINDS, result="rejected_peer") == 1
