"""Connection limits under a flood from 127.0.0.2 while a client on
127.0.0.1 keeps succeeding: concurrent sessions (global, per IP, per user)
and the per-IP connection rate. Over a connection limit the proxy closes
the new connection at once without a byte; over the per-user limit the
request gets REP 0x01; existing tunnels are untouched. Loops are bounded;
nothing sleeps to synchronise."""

from __future__ import annotations

import threading
import time

import pytest

from support import socksclient as sc
from support import security as sec

LOOPBACK = ("--allow", "127.0.0.0/8", "--allow", "::1")
FLOODER = "127.0.0.2"
LEGIT = "127.0.0.1"


def tunnel(proxy, echo, source, user=None, password=None):
    a = sec.socks5(proxy.addr, "127.0.0.1", echo.port, source=source, keep=True, user=user, password=password)
    assert a.stage == "reply" and a.rep == sc.REP_SUCCEEDED, \
        f"tunnel from {source}: stage {a.stage}, method {a.method.hex()}, REP {a.rep}"
    return a


def legit_roundtrip(proxy, echo, n: int = 3) -> None:
    """n sessions one after the other; each is over (its access line
    written, which the proxy does after giving its slots back) before the
    next starts, so only the flooder's sessions count against the limits."""
    for i in range(n):
        a = tunnel(proxy, echo, LEGIT)
        try:
            sc.echo_roundtrip(a.sock, f"legit {i}".encode())
        finally:
            a.close()
        proxy.wait_access(client=f"{a.client[0]}:{a.client[1]}")


def eventually_admitted(proxy, source, attempts: int = 200) -> bool:
    """A released slot is given back when the proxy notices the close:
    retry (bounded) until a new connection is answered."""
    for _ in range(attempts):
        if not sec.refused_at_once(proxy.addr, source):
            return True
    return False


def test_max_sessions_per_ip(bare_proxy, echo_server):
    p = bare_proxy("--max-sessions-per-ip", "3", *LOOPBACK)
    held = [tunnel(p, echo_server, FLOODER) for _ in range(3)]
    try:
        for _ in range(20):
            assert sec.refused_at_once(p.addr, FLOODER), "a 4th session from 127.0.0.2 was admitted"
            legit_roundtrip(p, echo_server, 1)
        for i, a in enumerate(held):  # existing tunnels untouched
            sc.echo_roundtrip(a.sock, f"still here {i}".encode())
        held.pop().close()
        assert eventually_admitted(p, FLOODER), "a closed session never gave its slot back"
    finally:
        for a in held:
            a.close()


def test_max_sessions_global(bare_proxy, echo_server):
    p = bare_proxy("--max-sessions", "3", *LOOPBACK)
    held = [tunnel(p, echo_server, FLOODER) for _ in range(3)]
    try:
        assert sec.refused_at_once(p.addr, FLOODER)
        assert sec.refused_at_once(p.addr, LEGIT), "the global limit applies to every client"
        for i, a in enumerate(held):
            sc.echo_roundtrip(a.sock, f"still here {i}".encode())
        held.pop().close()
        # The probes' own sessions take the slot for a moment: retry (bounded).
        for _ in range(200):
            a = sec.socks5(p.addr, "127.0.0.1", echo_server.port, source=LEGIT, keep=True)
            if a.stage == "reply":
                break
        else:
            pytest.fail("a closed session never gave its global slot back")
        try:
            assert a.rep == sc.REP_SUCCEEDED
            sc.echo_roundtrip(a.sock, b"slot reused")
        finally:
            a.close()
    finally:
        for a in held:
            a.close()


def test_max_sessions_per_user(bare_proxy, echo_server):
    p = bare_proxy("--user", "alice:a-pw", "--user", "bob:b-pw", "--max-sessions-per-user", "2", *LOOPBACK)
    held = [tunnel(p, echo_server, FLOODER, "alice", "a-pw") for _ in range(2)]
    try:
        for source in (FLOODER, LEGIT):
            a = sec.socks5(p.addr, "127.0.0.1", echo_server.port, source=source, user="alice", password="a-pw")
            assert a.auth == b"\x01\x00", "the login itself succeeds"
            assert a.rep == sc.REP_GENERAL, f"3rd alice session: REP {a.rep}, expected 0x01"
            rec = sec.wait_access(p, client=sec.fmt_addr(a.client))
            assert rec["result"] == "limit_reached" and rec["rep"] == "0x01" and rec["user"] == "alice", rec
        b = tunnel(p, echo_server, LEGIT, "bob", "b-pw")
        sc.echo_roundtrip(b.sock, b"bob is fine")
        b.close()
        for i, a in enumerate(held):
            sc.echo_roundtrip(a.sock, f"alice {i}".encode())
        held.pop().close()
        for _ in range(200):
            a = sec.socks5(p.addr, "127.0.0.1", echo_server.port, source=LEGIT, user="alice", password="a-pw")
            if a.rep == sc.REP_SUCCEEDED:
                break
        else:
            pytest.fail("alice's closed session never gave its slot back")
    finally:
        for a in held:
            a.close()


def test_rate_per_ip_flood(bare_proxy, echo_server):
    rate, burst = 5.0, 5
    p = bare_proxy("--rate-per-ip", str(rate), "--burst-per-ip", str(burst), *LOOPBACK)
    t0 = time.monotonic()
    admitted = refused = 0
    legit_ok = 0
    for i in range(60):
        if sec.refused_at_once(p.addr, FLOODER):
            refused += 1
        else:
            admitted += 1
        if i % 20 == 0:  # 3 legit connections in all: within 127.0.0.1's own burst
            legit_roundtrip(p, echo_server, 1)
            legit_ok += 1
    elapsed = time.monotonic() - t0
    assert legit_ok == 3
    assert admitted >= 1, "nothing from 127.0.0.2 was admitted"
    assert refused >= 1, "the flood was never refused"
    assert admitted <= burst + rate * elapsed + 1, \
        f"{admitted} admitted in {elapsed:.2f}s with rate {rate}/s, burst {burst}"


def test_flood_does_not_starve_legit_client(bare_proxy, echo_server):
    """A thread floods from 127.0.0.2 (holding what it gets) while the main
    thread keeps opening tunnels from 127.0.0.1: every legit one succeeds."""
    p = bare_proxy("--max-sessions-per-ip", "8", "--rate-per-ip", "50", "--burst-per-ip", "20", *LOOPBACK)
    stop = threading.Event()
    stats = {"admitted": 0, "refused": 0, "errors": []}
    held = []

    def flood():
        try:
            for _ in range(400):
                if stop.is_set():
                    break
                try:
                    s = sec.connect_from(p.addr, FLOODER, timeout=5)
                except OSError as exc:
                    stats["errors"].append(repr(exc))
                    continue
                try:
                    s.sendall(sc.greeting(sc.NO_AUTH))
                    data = sec._read_some(s, 2, 5)
                except OSError:
                    data = b""
                if data == b"\x05\x00":
                    stats["admitted"] += 1
                    held.append(s)  # keep the slot busy
                else:
                    stats["refused"] += 1
                    s.close()
        except BaseException as exc:  # noqa: BLE001 (reported below)
            stats["errors"].append(repr(exc))

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        for i in range(10):
            legit_roundtrip(p, echo_server, 1)
    finally:
        stop.set()
        t.join(30)
        for s in held:
            s.close()
    assert not t.is_alive()
    assert stats["refused"] > 0, stats
    assert stats["admitted"] <= 8, f"more than --max-sessions-per-ip held at once: {stats}"
