"""Forwarding rules (`forwarding:`): matching by host pattern and port, host
CIDR, destination CIDR (on the resolved address), client CIDR and user or
group, first match wins; routes to direct, a named or URL upstream, a chain,
the pool, block (0x02) and redirect; `remote:` rewriting as the upstream
sees it; egress `bind:` and `prefer:` for direct dials; the ACL before and
after routing.

Three CleverSocks "markers" (U1, U2, U3) are the upstreams: which one
carried a session is in the front proxy's access record (dialled="via
URL") and in the marker's own access log (the target it was asked for)."""

from __future__ import annotations

import socket
import threading

import pytest

from support import routing as rt
from support import socksclient as sc
from support.dns import DNSServer
from support.proxy import DEFAULT_ARGS, Proxy
from support.servers import EchoServer, TCPServer

NAMES = {
    "x.corp.test": ["127.0.0.1"],
    "deep.a.corp.test": ["127.0.0.1"],
    "corp.test": ["127.0.0.1"],
    "other.test": ["127.0.0.1"],
    "two.test": ["127.0.0.2"],
    "one.test": ["127.0.0.1"],
    "api.new.test": ["127.0.0.1"],
    "new.test": ["127.0.0.1"],
    "bind.test": ["127.0.0.1"],
    "nobind.test": ["127.0.0.1"],
    "v4pref.test": ["::1", "127.0.0.1"],
    "v6pref.test": ["::1", "127.0.0.1"],
    "anypref.test": ["::1", "127.0.0.1"],
}


@pytest.fixture(scope="module")
def world():
    """Module-wide: a DNS server knowing NAMES, three marker upstreams, and
    echo servers on 127.0.0.2 and 127.0.0.4."""
    dns = DNSServer(NAMES, ttl=0)
    procs, servers = [], []
    try:
        for _ in range(3):
            procs.append(Proxy(["--dns-server", dns.addr_text]))
        servers += [EchoServer("127.0.0.2"), EchoServer("127.0.0.4")]
        yield {"dns": dns, "U": procs, "echo2": servers[0], "echo4": servers[1]}
    finally:
        errors = []
        for p in procs:
            try:
                p.finish()
            except AssertionError as exc:
                errors.append(exc)
        for s in servers:
            s.close()
        dns.close()
        if errors:
            raise errors[0]


def via(proxy) -> str:
    return f"via {rt.socks5_url(proxy)}"


def front(routed, world, rules, *args, **extra):
    config = {"forwarding": rules, **extra}
    return routed(config, "--dns-server", world["dns"].addr_text, *args)


def test_host_patterns_ports_cidr_and_first_match(routed, world, echo_server):
    u1, u2, u3 = world["U"]
    echo4 = world["echo4"]
    other_port = rt.closed_port()
    a = front(routed, world, [
        {"match": f"deep.a.corp.test:{echo_server.port}", "upstream": rt.socks5_url(u2)},
        {"match": f"*.corp.test:{echo_server.port}", "upstream": rt.socks5_url(u1)},
        {"match": "127.0.0.4/31:*", "upstream": rt.socks5_url(u3)},
        {"match": f"*:{other_port}", "upstream": rt.socks5_url(u2)},
    ])
    p = echo_server.port
    cases = [
        ("deep.a.corp.test", p, via(u2)),   # first match wins over the broader rule 1
        ("x.corp.test", p, via(u1)),
        ("X.Corp.Test", p, via(u1)),        # names match case-insensitively
        ("corp.test", p, "127.0.0.1:%d" % p),  # "*." is subdomains only: direct
        ("127.0.0.4", echo4.port, via(u3)),  # host CIDR pattern
        ("other.test", p, "127.0.0.1:%d" % p),  # unmatched: the default route, direct
    ]
    for host, port, dialled in cases:
        rt.echo_session(a.addr, host, port, host.encode())
        rec = rt.wait_access(a, target=f"{host}:{port}", result="ok")
        assert rec["dialled"] == dialled, (host, rec)
    # The port pattern alone: x.corp.test on another port skips rule 1 and
    # hits rule 3 (nothing listens there: U2 reports 0x05).
    assert rt.rep_of(a.addr, "x.corp.test", other_port) == sc.REP_REFUSED
    assert rt.wait_access(a, target=f"x.corp.test:{other_port}")["route"] == rt.socks5_url(u2)
    rt.wait_access(u2, target=f"x.corp.test:{other_port}", rep="0x05")
    assert rt.wait_access(a, target=f"corp.test:{p}")["route"] == "direct"


def test_destination_cidr_rule_resolves_a_name_for_the_rule(routed, world):
    u1 = world["U"][0]
    echo2 = world["echo2"]
    dns = world["dns"]
    a = front(routed, world, [{"dst": ["127.0.0.2/32"], "upstream": rt.socks5_url(u1)}])
    before = len(dns.queried("two.test"))
    rt.echo_session(a.addr, "127.0.0.2", echo2.port, b"ip in cidr")
    rt.echo_session(a.addr, "two.test", echo2.port, b"name resolving into the cidr")
    assert rt.wait_access(a, target=f"127.0.0.2:{echo2.port}")["dialled"] == via(u1)
    assert rt.wait_access(a, target=f"two.test:{echo2.port}")["dialled"] == via(u1)
    assert len(dns.queried("two.test")) > before  # the front resolved it for the rule...
    rt.wait_access(u1, target=f"two.test:{echo2.port}", result="ok")  # ...and still sent the name
    # A name outside the CIDR: the default route.
    with EchoServer("127.0.0.1") as e1:
        rt.echo_session(a.addr, "one.test", e1.port, b"outside")
        assert rt.wait_access(a, target=f"one.test:{e1.port}")["route"] == "direct"
    # A name that does not resolve cannot be matched: host unreachable.
    assert rt.rep_of(a.addr, "unknown-name.test", 80) == sc.REP_HOST_UNREACH


def test_client_cidr_rule(routed, world, echo_server):
    u2 = world["U"][1]
    a = front(routed, world, [{"src": ["127.0.0.2/32"], "upstream": rt.socks5_url(u2)}])
    rt.echo_session(a.addr, "127.0.0.1", echo_server.port, b"from .2", source="127.0.0.2")
    rec = rt.wait_record(a, lambda r: r["client"].startswith("127.0.0.2:"))
    assert rec["dialled"] == via(u2)
    rt.wait_access(u2, target=f"127.0.0.1:{echo_server.port}", result="ok")
    rt.echo_session(a.addr, "127.0.0.1", echo_server.port, b"from .1", source="127.0.0.1")
    rec = rt.wait_record(a, lambda r: r["client"].startswith("127.0.0.1:"))
    assert rec["route"] == "direct"


def test_user_and_group_rules(routed, world, echo_server):
    u1, u2, _ = world["U"]
    a = front(routed, world, [
        {"users": ["@ops"], "upstream": rt.socks5_url(u1)},
        {"users": ["carol"], "upstream": rt.socks5_url(u2)},
    ], users=[
        {"name": "bob", "password": "bob-pw", "groups": ["ops"]},
        {"name": "carol", "password": "carol-pw"},
        {"name": "dave", "password": "dave-pw", "groups": ["dev"]},
    ])
    for user, dialled in [("bob", via(u1)), ("carol", via(u2)), ("dave", f"127.0.0.1:{echo_server.port}")]:
        rt.echo_session(a.addr, "127.0.0.1", echo_server.port, user.encode(), user=user, password=f"{user}-pw")
        rec = rt.wait_access(a, user=user, result="ok")
        assert rec["dialled"] == dialled, rec


def test_route_kinds(routed, world, echo_server):
    """direct, a named upstream, a chain (list), the pool, block and
    redirect, side by side in one rule list."""
    u1, u2, u3 = world["U"]
    banner = b"REDIRECTED\n"

    def greet(conn, peer):
        conn.sendall(banner)
        sc.read_until_closed(conn, timeout=10)

    with TCPServer(greet) as redirect_target:
        a = front(routed, world, [
            {"match": "direct.test:*", "upstream": "direct"},
            {"match": "named.test:*", "upstream": "u1"},
            {"match": "chain.test:*", "upstream": ["u1", rt.socks5_url(u2)]},
            {"match": "pool.test:*", "upstream": "pool"},
            {"match": "blocked.test:*", "upstream": "block"},
            {"match": "redirect.test:*", "redirect": f"127.0.0.1:{redirect_target.port}"},
        ], upstreams={"u1": rt.socks5_url(u1)}, proxy_pool={"members": [rt.socks5_url(u3)]})
        world["dns"].set("direct.test", ["127.0.0.1"])
        world["dns"].set("named.test", ["127.0.0.1"])
        world["dns"].set("chain.test", ["127.0.0.1"])
        world["dns"].set("pool.test", ["127.0.0.1"])
        p = echo_server.port

        rt.echo_session(a.addr, "direct.test", p)
        assert rt.wait_access(a, target=f"direct.test:{p}")["dialled"] == f"127.0.0.1:{p}"

        rt.echo_session(a.addr, "named.test", p)
        assert rt.wait_access(a, target=f"named.test:{p}")["dialled"] == via(u1)
        rt.wait_access(u1, target=f"named.test:{p}", result="ok")

        rt.echo_session(a.addr, "chain.test", p)
        rec = rt.wait_access(a, target=f"chain.test:{p}")
        assert rec["route"] == f"{rt.socks5_url(u1)}>{rt.socks5_url(u2)}"
        rt.wait_access(u1, target=str(u2.endpoint), result="ok")
        rt.wait_access(u2, target=f"chain.test:{p}", result="ok")

        rt.echo_session(a.addr, "pool.test", p)
        assert rt.wait_access(a, target=f"pool.test:{p}")["dialled"] == via(u3)
        rt.wait_access(u3, target=f"pool.test:{p}", result="ok")

        assert rt.rep_of(a.addr, "blocked.test", p) == sc.REP_NOT_ALLOWED
        rec = rt.wait_access(a, target=f"blocked.test:{p}")
        assert rec["result"] == "not_allowed" and rec["rep"] == "0x02"

        # Redirect: the client asked for redirect.test:1 and got the fixed target.
        s = rt.tunnel(a.addr, "redirect.test", 1)
        with s:
            assert sc.recv_exact(s, len(banner)) == banner
        rec = rt.wait_access(a, target="redirect.test:1")
        assert rec["dialled"] == f"127.0.0.1:{redirect_target.port}"
        assert "redirect" in rec["route"]

        # Nothing unmatched went to the pool: proxy_pool.enabled is false.
        rt.echo_session(a.addr, "127.0.0.1", p)
        assert rt.wait_access(a, target=f"127.0.0.1:{p}")["route"] == "direct"


def test_remote_rewrites_the_target_sent_upstream(routed, world, echo_server):
    u1, u2, _ = world["U"]
    p = echo_server.port
    a = front(routed, world, [
        {"match": "*.old.test:*", "upstream": rt.socks5_url(u1), "remote": f"*.new.test:{p}"},
        {"match": ".apex.test:*", "upstream": rt.socks5_url(u1), "remote": "*.new.test:*"},
        {"match": "svc.test:*", "upstream": rt.socks5_url(u2), "remote": "127.0.0.1:*"},
        {"match": "alias.test:*", "upstream": "direct", "remote": f"127.0.0.1:{p}"},
    ])
    # '*' carries what the match's '*' covered; the port is replaced.
    rt.echo_session(a.addr, "api.old.test", 1234, b"rewritten")
    rt.wait_access(u1, target=f"api.new.test:{p}", result="ok")
    assert "api.old.test:1234" not in rt.targets_seen(u1)
    # ".apex.test" matched the apex itself: nothing for '*', the "*." goes.
    rt.echo_session(a.addr, "apex.test", p, b"apex")
    rt.wait_access(u1, target=f"new.test:{p}", result="ok")
    # An IP rewrite, the requested port kept.
    rt.echo_session(a.addr, "svc.test", p, b"to an address")
    rt.wait_access(u2, target=f"127.0.0.1:{p}", result="ok")
    # On a direct route the rewrite is what gets dialled.
    rt.echo_session(a.addr, "alias.test", 9, b"alias")
    assert rt.wait_access(a, target="alias.test:9")["dialled"] == f"127.0.0.1:{p}"


def test_rewrite_that_does_not_fit_a_name_is_refused(routed, world, echo_server):
    """A rewrite that would be longer than 255 bytes cannot be sent: the
    request fails; the upstream is never asked for the un-rewritten name."""
    u1 = world["U"][0]
    suffix = ".".join(["s" * 60] * 3) + ".test"  # 187 bytes
    a = front(routed, world, [{"match": "*.short.test:*", "upstream": rt.socks5_url(u1),
                               "remote": f"*.{suffix}:*"}])
    label = "l" * 60
    host = ".".join([label, label, "short.test"])  # captured part: 121 bytes -> 121 + 1 + 187 > 255
    mark = rt.mark(u1)
    rep = rt.rep_of(a.addr, host, echo_server.port)
    # A sentinel through the same upstream: once U1 logged it, U1 has logged
    # whatever it was asked before.
    sentinel = "x.short.test"
    rt.quick_session(a.addr, sentinel, echo_server.port)
    rt.wait_record(u1, lambda r: r["target"].startswith("x." + suffix[:10]), start=mark)
    asked = [r["target"] for r in rt.access_since(u1, mark)]
    assert not any(t.startswith(host + ":") for t in asked), \
        f"the upstream was asked for the name the rewrite should have replaced: {asked}"
    assert rep != sc.REP_SUCCEEDED


def test_egress_bind_address(routed, world):
    peers = []

    def record(conn, peer):
        peers.append(peer[0])
        conn.sendall(b"ok")

    with TCPServer(record) as target:
        a = front(routed, world, [{"match": "bind.test:*", "upstream": "direct", "bind": "127.0.0.5"}])
        for host in ("bind.test", "nobind.test"):
            s = rt.tunnel(a.addr, host, target.port)
            with s:
                assert sc.recv_exact(s, 2) == b"ok"
        assert peers == ["127.0.0.5", "127.0.0.1"]


class DualStackRecorder:
    """Listeners on one port on both 127.0.0.1 and ::1; each connection gets
    "ok" and its peer address is recorded (which family the dial used)."""

    def __init__(self):
        self.seen: list[str] = []
        self.socks: list[socket.socket] = []
        for _ in range(50):
            v4 = socket.socket(socket.AF_INET)
            v4.bind(("127.0.0.1", 0))
            self.port = v4.getsockname()[1]
            v6 = socket.socket(socket.AF_INET6)
            v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                v6.bind(("::1", self.port))
            except OSError:
                v4.close()
                v6.close()
                continue
            self.socks = [v4, v6]
            break
        else:
            raise RuntimeError("no port free on both 127.0.0.1 and ::1")
        for s in self.socks:
            s.listen(16)
        self._stop_r, self._stop_w = socket.socketpair()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import selectors
        sel = selectors.DefaultSelector()
        for s in self.socks + [self._stop_r]:
            sel.register(s, selectors.EVENT_READ)
        try:
            for _ in range(10000):
                for key, _ in sel.select():
                    if key.fileobj is self._stop_r:
                        return
                    conn, peer = key.fileobj.accept()
                    self.seen.append(peer[0])
                    with conn:
                        conn.sendall(b"ok")
        finally:
            sel.close()

    def close(self):
        self._stop_w.send(b"x")
        self._thread.join(5)
        for s in self.socks + [self._stop_r, self._stop_w]:
            s.close()


@pytest.fixture
def dual_stack_recorder():
    r = DualStackRecorder()
    yield r.port, r.seen
    r.close()


def test_prefer_family_for_direct_dials(routed, world, dual_stack_recorder):
    port, seen = dual_stack_recorder
    a = front(routed, world, [
        {"match": "v4pref.test:*", "upstream": "direct", "prefer": "only_ipv4"},
        {"match": "v6pref.test:*", "upstream": "direct", "prefer": "only_ipv6"},
    ])
    for host in ("v4pref.test", "v6pref.test", "anypref.test"):
        s = rt.tunnel(a.addr, host, port)
        with s:
            assert sc.recv_exact(s, 2) == b"ok"
    # The default (connect.prefer: ipv6) tries ::1 first.
    assert seen == ["127.0.0.1", "::1", "::1"]


def test_acl_applies_before_and_after_routing(routed, world, echo_server):
    """The ACL decides on the requested target before any route is taken
    (an upstream route does not lift a deny), and on a redirect's target."""
    u1 = world["U"][0]
    denied = EchoServer("127.0.0.6")
    try:
        config = {"forwarding": [
            {"match": "127.0.0.6:*", "upstream": rt.socks5_url(u1)},
            {"match": "elsewhere.test:*", "redirect": f"127.0.0.6:{denied.port}"},
        ]}
        a = routed(config, "--dns-server", world["dns"].addr_text,
                   default_args=["--deny", "127.0.0.6", *DEFAULT_ARGS])
        mark = rt.mark(u1)
        assert rt.rep_of(a.addr, "127.0.0.6", denied.port) == sc.REP_NOT_ALLOWED
        assert rt.rep_of(a.addr, "elsewhere.test", 80) == sc.REP_NOT_ALLOWED
        assert f"127.0.0.6:{denied.port}" not in [r.get("target") for r in rt.access_since(u1, mark)]
        assert denied.peers == []
    finally:
        denied.close()


def test_bad_rules_are_refused_at_load(tmp_path):
    from support.proxy import run_cli
    bad = {
        "unknown upstream name": {"forwarding": [{"match": "*:*", "upstream": "nosuchname"}]},
        "bad port pattern": {"forwarding": [{"match": "x.test:http", "upstream": "direct"}]},
        "two stars in remote": {"forwarding": [{"match": "*.a.test:*", "upstream": "socks5://127.0.0.1:1",
                                                "remote": "*.*.b.test:*"}]},
        "pool without members": {"forwarding": [{"match": "*:*", "upstream": "pool"}]},
        "direct in a chain": {"forwarding": [{"match": "*:*", "upstream": ["socks5://127.0.0.1:1", "direct://"]}]},
        "bad bind": {"forwarding": [{"match": "*:*", "upstream": "direct", "bind": "eth0"}]},
        "bad prefer": {"forwarding": [{"match": "*:*", "upstream": "direct", "prefer": "ipv5"}]},
        "redirect without port": {"forwarding": [{"match": "*:*", "redirect": "127.0.0.1"}]},
        "no condition": {"forwarding": [{"upstream": "direct"}]},
    }
    for what, config in bad.items():
        path = rt.write_config(tmp_path / "bad.yaml", config)
        r = run_cli(["--check-config", "-c", str(path)])
        assert r.returncode != 0, f"{what}: accepted\n{r.stdout.decode()}{r.stderr.decode()}"
        assert b"forwarding[0]" in r.stderr + r.stdout, f"{what}: {r.stderr.decode()}"
