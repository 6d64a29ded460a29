"""Proxy pools: every strategy's distribution over 1,000 sessions, failover
past a killed member with no client-visible failure, re-admission after a
passing health check, drain/enable through the admin API, pool-file reload
(proxybroker2 JSON and URL lines) without touching open tunnels, and
/api/v1/upstreams and the upstream metrics reflecting all of it.

Members are CleverSocks instances (the module's three, or a test's own
when it kills one).  Which member carried how many sessions comes from the
front proxy's /api/v1/upstreams (`sessions` per member)."""

from __future__ import annotations

import json
import signal

import pytest

from support import routing as rt
from support import socksclient as sc
from support.admin import AdminClient
from support.dns import DNSServer
from support.httpconnect import HTTPConnectProxy
from support.proxy import Proxy
from support.servers import EchoServer

N = 1000
HASH_NAMES = {f"t{i}.hash.test": ["127.0.0.1"] for i in range(10)}


@pytest.fixture(scope="module")
def pool_dns():
    with DNSServer(HASH_NAMES, ttl=60) as dns:
        yield dns


@pytest.fixture(scope="module")
def members3(pool_dns):
    procs = []
    try:
        for _ in range(3):
            procs.append(Proxy(["--dns-server", pool_dns.addr_text]))
        yield procs
    finally:
        errors = []
        for p in procs:
            try:
                p.finish()
            except AssertionError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def urls(procs) -> list[str]:
    return [rt.socks5_url(p) for p in procs]


def pool_front(routed, members, strategy="round_robin", *args, pool=None, **extra):
    """A front proxy whose default route is the pool (health probes once at
    start, then hourly: the test drives everything else)."""
    cfg = {"enabled": True, "members": members, "strategy": strategy,
           "health_check": {"interval": "1h", "timeout": "2s"}}
    cfg.update(pool or {})
    p = routed({"proxy_pool": cfg, **extra}, *args)
    return p, AdminClient.of(p)


def run(addr, n, host, port, **kw) -> int:
    """n sequential sessions; returns how many did not get REP 0."""
    failures = 0
    for _ in range(n):
        if rt.quick_session(addr, host, port, **kw) != sc.REP_SUCCEEDED:
            failures += 1
    return failures


def counts(admin, member_urls) -> list[int]:
    by = rt.sessions_by_member(admin)
    return [by[u] for u in member_urls]


def delta(after, before):
    return [a - b for a, b in zip(after, before)]


# ---- strategies ------------------------------------------------------------------------------

def test_round_robin(routed, members3, echo_server):
    u = urls(members3)
    a, admin = pool_front(routed, u)
    assert run(a.addr, N, "127.0.0.1", echo_server.port) == 0
    c = counts(admin, u)
    assert sum(c) == N
    assert max(c) - min(c) <= 1, c
    rec = rt.wait_access(a, result="ok")
    assert rec["route"] == "pool" and rec["dialled"] in {f"via {x}" for x in u}
    # The metrics say the same as the API.
    text = admin.metrics_text()
    assert rt.metric_by_upstream(text, "cleversocks_upstream_sessions_total") == {x: float(n) for x, n in zip(u, c)}
    assert set(rt.metric_by_upstream(text, "cleversocks_upstream_state").values()) == {0.0}
    assert set(rt.metric_by_upstream(text, "cleversocks_upstream_active_sessions").values()) == {0.0}
    hist = rt.metric_by_upstream(text, "cleversocks_upstream_connect_duration_seconds_count")
    assert all(hist[x] >= n for x, n in zip(u, c)), hist
    for m in rt.members(admin).values():
        assert m["state"] == "closed" and m["failures"] == 0 and m["latency_ms"] is not None


def test_random(routed, members3, echo_server):
    u = urls(members3)
    a, admin = pool_front(routed, u, "random")
    assert run(a.addr, N, "127.0.0.1", echo_server.port) == 0
    c = counts(admin, u)
    assert sum(c) == N
    # Binomial(1000, 1/3): sd ~ 15; +-80 is > 5 sd.
    assert all(abs(x - N / 3) <= 80 for x in c), c
    # Not a rotation in disguise: consecutive sessions often share a member
    # (expected ~333 of 999; round-robin gives 0).
    seq = [r["dialled"] for r in rt.wait_records(a, N, lambda r: r.get("route") == "pool")]
    assert len(seq) == N
    repeats = sum(1 for x, y in zip(seq, seq[1:]) if x == y)
    assert repeats >= 200, repeats


def test_weighted(routed, members3, echo_server):
    u = urls(members3)
    weights = [1, 2, 7]
    a, admin = pool_front(routed, [{"url": x, "weight": w} for x, w in zip(u, weights)], "weighted")
    assert run(a.addr, N, "127.0.0.1", echo_server.port) == 0
    c = counts(admin, u)
    assert sum(c) == N
    for x, w in zip(c, weights):
        assert abs(x / N - w / 10) <= 0.06, (c, weights)
    assert [m["weight"] for m in rt.upstreams(admin)["pool"]["members"]] == weights


def test_least_latency(routed, members3, echo_server):
    """Two fast members and one that answers after 100 ms: once measured,
    the slow one is avoided."""
    slow = HTTPConnectProxy(delay=0.1)
    try:
        u = urls(members3[:2]) + [f"http://{slow.endpoint}"]
        a, admin = pool_front(routed, u, "least_latency")
        assert run(a.addr, N, "127.0.0.1", echo_server.port) == 0
        c = counts(admin, u)
        assert sum(c) == N
        assert c[2] <= 20, c
        ms = {url: m["latency_ms"] for url, m in rt.members(admin).items()}
        if c[2] > 0:
            assert ms[u[2]] > max(ms[u[0]], ms[u[1]]), ms
    finally:
        slow.close()


def active_by_member(admin) -> dict[str, int]:
    return {url: m["active_sessions"] for url, m in rt.members(admin).items()}


def test_least_connections(routed, members3, echo_server):
    """Long tunnels spread evenly; then two members keep PINNED tunnels each
    and one none, and new sessions go to the idle one.

    PINNED > 1 on purpose: a client sees its session's EOF a moment before
    the front releases the member's slot, so under load the next session can
    find the idle member at 1.  That must not tie it with the busy ones."""
    pinned_per_member = 3
    u = urls(members3)
    a, admin = pool_front(routed, u, "least_connections")
    held = {x: [] for x in u}
    try:
        for _ in range(pinned_per_member * len(u)):
            before = active_by_member(admin)
            s = rt.tunnel(a.addr, "127.0.0.1", echo_server.port)
            after = active_by_member(admin)
            grown = [x for x in u if after[x] == before[x] + 1]
            assert len(grown) == 1 and sum(after.values()) == sum(before.values()) + 1, (before, after)
            # Least connections: a tunnel never goes to a member busier than another.
            assert before[grown[0]] == min(before.values()), (before, grown)
            held[grown[0]].append(s)
        assert sorted(len(v) for v in held.values()) == [pinned_per_member] * len(u), held
        idle = u[0]
        for s in held.pop(idle):
            s.close()
        rt.wait_member(admin, idle, lambda m: m["active_sessions"] == 0, what="idle")
        assert active_by_member(admin) == {x: 0 if x == idle else pinned_per_member for x in u}
        before = counts(admin, u)
        assert run(a.addr, N, "127.0.0.1", echo_server.port) == 0
        d = dict(zip(u, delta(counts(admin, u), before)))
        assert d[idle] >= 0.95 * N, d
        for socks in held.values():
            for s in socks:
                sc.echo_roundtrip(s, b"still pinned")
    finally:
        for socks in held.values():
            for s in socks:
                s.close()


def _sticky(admin, u, keys, per_key, session):
    """Runs per_key sessions for each key; asserts each key's sessions all
    went to one member; returns {key: member url}."""
    owner = {}
    for key in keys:
        before = counts(admin, u)
        for _ in range(per_key):
            assert session(key) == sc.REP_SUCCEEDED
        d = delta(counts(admin, u), before)
        assert sorted(d) == [0] * (len(u) - 1) + [per_key], (key, d)
        owner[key] = u[d.index(per_key)]
    return owner


def test_hash_by_client_ip(routed, members3, echo_server):
    u = urls(members3)
    a, admin = pool_front(routed, u, "hash", pool={"hash_key": "client_ip"})
    sources = [f"127.0.0.{10 + i}" for i in range(10)]
    owner = _sticky(admin, u, sources, N // 10,
                    lambda src: rt.quick_session(a.addr, "127.0.0.1", echo_server.port, source=src))
    assert len(set(owner.values())) >= 2, owner
    # Rendezvous hashing: draining one member moves only its own keys.
    victim = max(set(owner.values()), key=lambda m: list(owner.values()).count(m))
    mid = rt.members(admin)[victim]["id"]
    assert admin.post(f"/api/v1/upstreams/{mid}/drain").status == 200
    moved = _sticky(admin, u, sources, 5,
                    lambda src: rt.quick_session(a.addr, "127.0.0.1", echo_server.port, source=src))
    for src in sources:
        if owner[src] == victim:
            assert moved[src] != victim
        else:
            assert moved[src] == owner[src], (src, owner[src], moved[src])
    assert admin.post(f"/api/v1/upstreams/{mid}/enable").status == 200
    back = _sticky(admin, u, sources, 2,
                   lambda src: rt.quick_session(a.addr, "127.0.0.1", echo_server.port, source=src))
    assert back == owner


def test_hash_by_user(routed, members3, echo_server):
    u = urls(members3)
    users = [f"user{i}" for i in range(10)]
    args = [x for name in users for x in ("--user", f"{name}:pw-{name}")]
    a, admin = pool_front(routed, u, "hash", *args, pool={"hash_key": "user"})
    owner = _sticky(admin, u, users, N // 10,
                    lambda name: rt.quick_session(a.addr, "127.0.0.1", echo_server.port,
                                                  user=name, password=f"pw-{name}"))
    assert len(set(owner.values())) >= 2, owner


def test_hash_by_target(routed, members3, echo_server):
    u = urls(members3)
    a, admin = pool_front(routed, u, "hash", pool={"hash_key": "target"})
    names = sorted(HASH_NAMES)
    owner = _sticky(admin, u, names, N // 10,
                    lambda name: rt.quick_session(a.addr, name, echo_server.port))
    assert len(set(owner.values())) >= 2, owner


# ---- health: failover, ejection, re-admission --------------------------------------------

@pytest.mark.deadline(90)
def test_killed_member_fails_over_and_comes_back(routed, make_proxy, echo_server):
    own = [make_proxy() for _ in range(3)]
    u = urls(own)
    a, admin = pool_front(routed, u, pool={
        "max_tries": 3, "eject_after": 2, "eject_base": "300ms", "eject_max": "1s",
        "health_check": {"interval": "200ms", "timeout": "500ms"}})
    assert run(a.addr, 60, "127.0.0.1", echo_server.port) == 0
    assert counts(admin, u) == [20, 20, 20]

    victim_port = own[1].endpoint.port
    own[1].kill()
    # Every session after the kill succeeds: a refused member costs latency,
    # not an error (the next candidate is tried).
    assert run(a.addr, 300, "127.0.0.1", echo_server.port) == 0
    c = counts(admin, u)
    assert c[1] == 20 and c[0] + c[2] == 340, c
    m = rt.members(admin)[u[1]]
    assert m["state"] in ("open", "half_open") and m["failures"] >= 2, m
    assert "ejected_for_ms" in m or m["state"] == "half_open"
    text = admin.metrics_text()
    assert rt.metric_by_upstream(text, "cleversocks_upstream_state")[u[1]] in (1.0, 2.0)
    assert rt.metric_by_upstream(text, "cleversocks_upstream_failures_total")[u[1]] >= 2

    # Back on the same port: a passing probe closes the circuit.
    make_proxy(listen=(f"127.0.0.1:{victim_port}",))
    rt.wait_member(admin, u[1], lambda m: m["state"] == "closed", timeout=15, what="closed")
    before = counts(admin, u)
    assert run(a.addr, 60, "127.0.0.1", echo_server.port) == 0
    d = delta(counts(admin, u), before)
    assert d[1] >= 15, d
    assert rt.metric_by_upstream(admin.metrics_text(), "cleversocks_upstream_state")[u[1]] == 0.0


def test_member_down_at_start_is_ejected_by_probes(routed, make_proxy, echo_server):
    """A member that never answered: the active probes eject it ("failed
    its health check ... ejected" in the log) and no session is tried on it."""
    up = make_proxy()
    dead = f"socks5://127.0.0.1:{rt.closed_port()}"
    a, admin = pool_front(routed, [rt.socks5_url(up), dead], pool={
        "eject_after": 1, "eject_base": "10s", "health_check": {"interval": "100ms", "timeout": "500ms"}})
    a.log.wait_for(rt.EJECTED_RE, 10)
    m = rt.wait_member(admin, dead, lambda m: m["state"] == "open", what="open")
    assert m["sessions"] == 0
    failures = m["failures"]
    assert run(a.addr, 20, "127.0.0.1", echo_server.port) == 0
    assert rt.members(admin)[rt.socks5_url(up)]["sessions"] == 20
    # No dial went to the ejected member (only probes count as failures).
    assert rt.members(admin)[dead]["sessions"] == 0
    assert rt.members(admin)[dead]["failures"] >= failures


def test_retries_are_bounded_by_max_tries(routed, echo_server):
    """Three dead members and a good one, round-robin, never ejected: with
    max_tries 2 a session whose first two candidates are dead fails (0x01);
    with max_tries 4 every session finds the good one."""
    dead = [f"socks5://127.0.0.1:{rt.closed_port()}" for _ in range(3)]
    good_proxy = Proxy([])
    try:
        members = dead + [rt.socks5_url(good_proxy)]
        no_eject = {"eject_after": 1000}
        a, admin = pool_front(routed, members, pool={"max_tries": 2, **no_eject})
        reps = [rt.quick_session(a.addr, "127.0.0.1", echo_server.port) for _ in range(8)]
        # Rotation starts at members 0,1,2,3,0,...: [d1,d2] and [d2,d3] fail.
        assert reps == [1, 1, 0, 0, 1, 1, 0, 0], reps
        by = rt.members(admin)
        assert by[members[3]]["sessions"] == 4
        assert sum(by[d]["failures"] for d in dead) >= 12  # 2 + 2 + 1 + 1 per round of four
        b, admin_b = pool_front(routed, members, pool={"max_tries": 4, **no_eject})
        assert [rt.quick_session(b.addr, "127.0.0.1", echo_server.port) for _ in range(8)] == [0] * 8
    finally:
        good_proxy.finish()


def test_a_member_that_drops_syns_gets_only_its_share_of_the_deadline(routed, echo_server):
    """A member that never answers (its listen queue is full, so Linux drops
    the SYNs) used to take the whole connect deadline: the session failed
    though the next member was fine, and its breaker never counted it. Now
    each candidate gets connect / candidates, and a silent one is a failure."""
    import socket
    import time

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    fillers = []
    try:
        for _ in range(3):  # the first fills the queue, later SYNs are dropped
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(hole.getsockname())
            fillers.append(f)
        probe = socket.socket()
        probe.settimeout(0.3)
        with pytest.raises(OSError):  # the hole really holds: no SYN-ACK
            probe.connect(hole.getsockname())
        probe.close()
        good = Proxy([])
        try:
            members = [f"socks5://127.0.0.1:{hole.getsockname()[1]}", rt.socks5_url(good)]
            a, admin = pool_front(routed, members, timeouts={"connect": "2s"},
                                  pool={"max_tries": 2, "eject_after": 1, "eject_base": "1m"})
            t0 = time.monotonic()
            # Round-robin starts at the hole: 1 s there, then the good member.
            assert rt.quick_session(a.addr, "127.0.0.1", echo_server.port) == sc.REP_SUCCEEDED
            took = time.monotonic() - t0
            assert took < 1.9, f"the silent member took {took:.2f}s of a 2 s deadline"
            by = rt.members(admin)
            assert by[members[0]]["failures"] >= 1 and by[members[0]]["state"] == "open", by[members[0]]
            # Ejected: the next sessions do not wait for it.
            for _ in range(3):
                assert rt.quick_session(a.addr, "127.0.0.1", echo_server.port) == sc.REP_SUCCEEDED
            assert rt.members(admin)[members[1]]["sessions"] == 4
        finally:
            good.finish()
    finally:
        for f in fillers:
            f.close()
        hole.close()


def test_socks5_health_probe(routed, make_proxy, echo_server):
    """kind: socks5 probes a SOCKS5 handshake and CONNECT to the target: an
    upstream that accepts TCP but does not speak SOCKS5 is ejected; a plain
    connect probe would keep it."""
    def garbage(conn):
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    good = make_proxy()
    with rt.ScriptedUpstream(garbage) as broken:
        members = [rt.socks5_url(good), rt.socks5_url(broken.endpoint)]
        a, admin = pool_front(routed, members, pool={
            "eject_after": 1, "eject_base": "30s",
            "health_check": {"interval": "100ms", "timeout": "1s", "kind": "socks5",
                             "target": f"127.0.0.1:{echo_server.port}"}})
        rt.wait_member(admin, members[1], lambda m: m["state"] == "open", what="ejected by the socks5 probe")
        assert rt.members(admin)[members[0]]["state"] == "closed"
        rt.wait_access(good, target=f"127.0.0.1:{echo_server.port}", result="ok")  # the probe's CONNECT
        assert run(a.addr, 10, "127.0.0.1", echo_server.port) == 0
        assert rt.members(admin)[members[0]]["sessions"] == 10

        # A connect-only probe sees nothing wrong with it.
        b, admin_b = pool_front(routed, members, pool={
            "eject_after": 1, "health_check": {"interval": "100ms", "timeout": "1s", "kind": "connect"}})
        seen = len(broken.peers)
        for _ in range(200):  # each wait returns on one accepted connection (queued ones first)
            if len(broken.peers) >= seen + 3:
                break
            broken.wait_accept(timeout=5)
        assert len(broken.peers) >= seen + 3
        assert rt.members(admin_b)[members[1]]["state"] == "closed"


def test_health_check_settings_apply_on_reload(routed, make_proxy, echo_server):
    """A reload that shortens health_check.interval and adds a dead member:
    the new member is probed (and ejected) on the new interval -- not after
    the old interval (1 h) has run out."""
    good = make_proxy()
    a, admin = pool_front(routed, [rt.socks5_url(good)])  # interval 1h
    dead = f"socks5://127.0.0.1:{rt.closed_port()}"
    start = rt.mark(a)
    rt.write_config(a.config_path, {"proxy_pool": {
        "enabled": True, "members": [rt.socks5_url(good), dead], "eject_after": 1, "eject_base": "30s",
        "health_check": {"interval": "200ms", "timeout": "1s"}}})
    a.proc.send_signal(signal.SIGHUP)
    a.log.wait_for(rt.RELOADED_RE, 10, start)
    rt.wait_member(admin, dead, lambda m: m["state"] == "open", timeout=5, what="ejected by a probe")


# ---- drain / enable ----------------------------------------------------------------------------

def test_drain_and_enable(routed, members3, echo_server):
    u = urls(members3)
    a, admin = pool_front(routed, u)
    held = rt.tunnel(a.addr, "127.0.0.1", echo_server.port)
    try:
        by = rt.members(admin)
        x = next(url for url, m in by.items() if m["active_sessions"] == 1)
        xid = by[x]["id"]
        r = admin.post(f"/api/v1/upstreams/{xid}/drain")
        assert r.status == 200 and r.json()["drained"] is True and r.json()["id"] == xid
        before = counts(admin, u)
        assert run(a.addr, 60, "127.0.0.1", echo_server.port) == 0
        d = dict(zip(u, delta(counts(admin, u), before)))
        assert d[x] == 0 and sorted(d.values()) == [0, 30, 30], d
        # The open tunnel through the drained member carries on.
        sc.echo_roundtrip(held, b"drained but alive")
        m = rt.members(admin)[x]
        assert m["drained"] is True and m["active_sessions"] == 1
        assert rt.metric_by_upstream(admin.metrics_text(), "cleversocks_upstream_state")[x] == -1.0

        # Everyone drained: nothing to dial, a general failure.
        for url in u:
            admin.post(f"/api/v1/upstreams/{rt.members(admin)[url]['id']}/drain")
        assert rt.rep_of(a.addr, "127.0.0.1", echo_server.port) == sc.REP_GENERAL
        for url in u:
            assert admin.post(f"/api/v1/upstreams/{rt.members(admin)[url]['id']}/enable").status == 200

        before = counts(admin, u)
        assert run(a.addr, 60, "127.0.0.1", echo_server.port) == 0
        d = delta(counts(admin, u), before)
        assert d == [20, 20, 20], d
        assert rt.members(admin)[x]["drained"] is False
    finally:
        held.close()
    rt.wait_member(admin, x, lambda m: m["active_sessions"] == 0, what="idle")

    assert admin.post("/api/v1/upstreams/u000000000000/drain").status == 404
    assert admin.post(f"/api/v1/upstreams/{xid}/explode").status == 404
    assert admin.post(f"/api/v1/upstreams/{xid}").status == 404


# ---- pool file reload ----------------------------------------------------------------------------

def proxybroker_entry(port: int, *types: str, host: str = "127.0.0.1") -> dict:
    """One proxy as proxybroker2's `find --format json` writes it."""
    return {"host": host, "port": port, "geo": {"country": {"code": "--", "name": "Unknown"},
                                                 "region": {"code": "Unknown", "name": "Unknown"},
                                                 "city": "Unknown"},
            "types": [{"type": t, "level": "High" if t == "HTTP" else ""} for t in types],
            "avg_resp_time": 0.12, "error_rate": 0.0}


@pytest.mark.deadline(60)
def test_pool_file_reload(routed, members3, echo_server, tmp_path):
    m1, m2, m3 = members3
    p1, p2, p3 = (p.endpoint.port for p in members3)
    source = tmp_path / "proxies.json"
    source.write_text(json.dumps([
        proxybroker_entry(p1, "HTTP", "SOCKS5"),           # SOCKS5 preferred
        proxybroker_entry(p2, "SOCKS4", "HTTPS"),          # SOCKS4 over CONNECT
        proxybroker_entry(9, "HTTP"),                      # plain HTTP only: skipped
    ], indent=2))
    a, admin = pool_front(routed, [], pool={"source": str(source)})
    assert sorted(rt.members(admin)) == sorted([f"socks5://127.0.0.1:{p1}", f"socks4://127.0.0.1:{p2}"])

    held = rt.tunnel(a.addr, "127.0.0.1", echo_server.port)
    try:
        held_member = next(url for url, m in rt.members(admin).items() if m["active_sessions"] == 1)
        assert run(a.addr, 10, "127.0.0.1", echo_server.port) == 0

        # v2: the JSON now lists M2 (as SOCKS5) and M3; M1 is gone.
        start = rt.mark(a)
        rt_write(source, json.dumps([proxybroker_entry(p2, "SOCKS5"), proxybroker_entry(p3, "CONNECT:80", "SOCKS5")]))
        a.log.wait_for(rt.RELOADED_RE, 10, start)
        now = rt.members(admin)
        assert sorted(now) == sorted([f"socks5://127.0.0.1:{p2}", f"socks5://127.0.0.1:{p3}"])
        sc.echo_roundtrip(held, b"open across the reload")
        m1_mark = rt.mark(m1)
        before = sum(m["sessions"] for m in now.values())
        assert run(a.addr, 20, "127.0.0.1", echo_server.port) == 0
        assert sum(m["sessions"] for m in rt.members(admin).values()) == before + 20
        assert rt.access_since(m1, m1_mark) == []  # nothing new went to the removed member
        text = admin.metrics_text()
        assert f"socks5://127.0.0.1:{p1}" not in rt.metric_by_upstream(text, "cleversocks_upstream_sessions_total")

        # v3: one URL per line, comments and blank lines ignored.
        start = rt.mark(a)
        rt_write(source, f"# pool\nsocks5://127.0.0.1:{p1}\n\n   socks5://127.0.0.1:{p3}  \n")
        a.log.wait_for(rt.RELOADED_RE, 10, start)
        now = rt.members(admin)
        assert sorted(now) == sorted([f"socks5://127.0.0.1:{p1}", f"socks5://127.0.0.1:{p3}"])
        before = counts(admin, sorted(now))
        assert run(a.addr, 20, "127.0.0.1", echo_server.port) == 0
        assert delta(counts(admin, sorted(now)), before) == [10, 10]
        sc.echo_roundtrip(held, b"still open")
    finally:
        held.close()
    rec = rt.wait_record(a, lambda r: r["dialled"] == f"via {held_member}" and int(r["up"]) > 20)
    assert rec["result"] == "ok"


def rt_write(path, text: str) -> None:
    """Replace the file atomically (write + rename), as tools do."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def test_pool_file_with_errors_keeps_the_good_members(routed, members3, echo_server, tmp_path):
    source = tmp_path / "proxies.txt"
    p1 = members3[0].endpoint.port
    source.write_text(f"socks5://127.0.0.1:{p1}\nftp://127.0.0.1:21\ndirect://\nnot a url\n")
    a, admin = pool_front(routed, [], pool={"source": str(source)})
    assert list(rt.members(admin)) == [f"socks5://127.0.0.1:{p1}"]
    text = a.log.text()
    assert "proxy_pool.source" in text and "2:" in text and "3:" in text and "4:" in text
    assert run(a.addr, 5, "127.0.0.1", echo_server.port) == 0


def test_pool_can_be_named_by_a_rule_without_being_the_default(routed, members3, echo_server):
    u = urls(members3[:1])
    p = routed({"proxy_pool": {"members": u},
                "forwarding": [{"match": f"*:{echo_server.port}", "upstream": "pool"}]})
    rt.echo_session(p.addr, "127.0.0.1", echo_server.port)
    assert rt.wait_access(p, target=f"127.0.0.1:{echo_server.port}")["dialled"] == f"via {u[0]}"
    with EchoServer("127.0.0.1") as other:
        rt.echo_session(p.addr, "127.0.0.1", other.port)
        assert rt.wait_access(p, target=f"127.0.0.1:{other.port}")["route"] == "direct"


def test_weighted_members_in_a_reload(routed, members3, echo_server):
    """The documented {url, weight} member form arriving by reload (SIGHUP):
    the running proxy takes it (it must never die on a configuration)."""
    u = urls(members3)
    a, admin = pool_front(routed, u)
    start = rt.mark(a)
    rt.write_config(a.config_path, {"proxy_pool": {
        "enabled": True, "strategy": "weighted", "health_check": {"interval": "1h"},
        "members": [{"url": u[0], "weight": 3}, u[1], {"url": u[2]}]}})
    a.proc.send_signal(signal.SIGHUP)
    a.log.wait_for(lambda line: rt.RELOADED_RE.search(line) or "refused" in line, 10, start)
    assert a.unexpected_exit() is None
    assert [m["weight"] for m in rt.upstreams(admin)["pool"]["members"]] == [3, 1, 1]
    assert run(a.addr, 10, "127.0.0.1", echo_server.port) == 0
