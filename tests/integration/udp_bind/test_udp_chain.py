"""UDP through upstream SOCKS5 hops: the front instance opens a UDP
ASSOCIATE on the back one and passes datagrams on unchanged; the back one
relays to the target (and resolves names: the front's DNS server knows
none)."""

from __future__ import annotations

import shutil

import pytest

from support import constants as C
from support import routing as rt
from support import socksclient as sc
from support.dns import DNSServer
from support.udp import Association

BACK_USER = ("bhop", "b-secret")


@pytest.fixture
def empty_dns():
    with DNSServer({}, ttl=0) as dns:
        yield dns


def route_all(url_or_list, how: str) -> dict:
    if how == "pool":
        return {"proxy_pool": {"enabled": True, "members": [url_or_list],
                               "health_check": {"interval": "1h"}}}
    return {"forwarding": [{"match": "*:*", "upstream": url_or_list}]}


def targets(udp_echo, udp_echo6):
    return [(udp_echo.addr, udp_echo.addr), (udp_echo6.addr, udp_echo6.addr),
            ((C.NAME_V4, udp_echo.port), udp_echo.addr)]


@pytest.mark.parametrize("how", ["forwarding", "pool"])
@pytest.mark.parametrize("back_auth", [False, True], ids=["open", "auth"])
def test_two_instances(configured, make_proxy, dns_server, empty_dns, udp_echo, udp_echo6, how, back_auth):
    back_args = ["--dns-server", dns_server.addr_text]
    if back_auth:
        back_args += ["--user", "{}:{}".format(*BACK_USER)]
    back = make_proxy(*back_args)
    url = rt.socks5_url(back, *(BACK_USER if back_auth else (None, None)))
    front = configured(route_all(url, how), "--dns-server", empty_dns.addr_text)
    with Association(front.addr) as a:
        for (host, port), sender in targets(udp_echo, udp_echo6):
            d = a.roundtrip((host, port), f"two-hops-{host}".encode())
            assert (d.host, d.port) == sender, f"reply wrapped as {d.host}:{d.port}, sender {sender}"
        start_front, start_back = rt.mark(front), rt.mark(back)
    # Closing the client's control connection ends both associations.
    f = rt.wait_access(front, start=start_front, cmd="udp")
    assert f["result"] == "closed" and f["rep"] == "0x00", f
    assert f["route"] != "direct" and f["dialled"].startswith("via 127.0.0.1:"), f
    b = rt.wait_access(back, start=start_back, cmd="udp")
    assert b["result"] == "closed" and b["rep"] == "0x00", b
    assert int(b["up"]) > 0 and int(b["down"]) > 0, b
    if back_auth:
        assert b["user"] == BACK_USER[0]
    assert empty_dns.queried(C.NAME_V4) == [], "the front instance resolved the name itself"
    assert dns_server.queried(C.NAME_V4), "the back instance never resolved the name"


def test_three_instances_as_a_chain(configured, make_proxy, dns_server, empty_dns, udp_echo, udp_echo6):
    """``upstream: [M, B]``: the front reaches B through M and associates
    there; datagrams reach the targets through B."""
    back = make_proxy("--dns-server", dns_server.addr_text)
    middle = make_proxy("--dns-server", empty_dns.addr_text)
    front = configured(route_all([rt.socks5_url(middle), rt.socks5_url(back)], "forwarding"),
                       "--dns-server", empty_dns.addr_text)
    with Association(front.addr) as a:
        for (host, port), sender in targets(udp_echo, udp_echo6):
            d = a.roundtrip((host, port), f"three-hops-{host}".encode())
            assert (d.host, d.port) == sender
        start = rt.mark(back)
    rec = rt.wait_access(back, start=start, cmd="udp")
    assert rec["result"] == "closed", rec
    m = rt.wait_access(middle, cmd="connect")
    assert m["target"] == str(back.endpoint), m


def test_upstream_association_end_ends_ours(configured, udp_echo):
    """When the back instance ends its association (here: its idle timeout),
    the front one ends the client's too (control connection closed)."""
    back = configured({"udp": {"idle_timeout": "1s"}})
    front = configured(route_all(rt.socks5_url(back), "forwarding"))
    with Association(front.addr) as a:
        a.roundtrip(udp_echo.addr, b"then-idle")
        sc.expect_closed(a.tcp, timeout=6.0)
    assert rt.wait_access(back, cmd="udp")["result"] == "idle_timeout"
    assert rt.wait_access(front, cmd="udp")["result"] == "closed"


def test_upstream_refusal_reaches_the_client(configured, udp_echo):
    """The back instance refuses the association (its ``udp.max_per_ip``):
    the client hears a failure reply, not a dead relay."""
    back = configured({"udp": {"max_per_ip": 1}})
    front = configured(route_all(rt.socks5_url(back), "forwarding"))
    with Association(front.addr) as first:
        first.roundtrip(udp_echo.addr, b"takes-the-slot")
        second = Association(front.addr, expect_ok=False)
        with second:
            assert second.reply.rep != sc.REP_SUCCEEDED, second.reply
            sc.expect_closed(second.tcp)
        first.roundtrip(udp_echo.addr, b"first-unaffected")


def test_socks4_upstream_cannot_carry_udp(configured, make_proxy):
    """SOCKS4 has no UDP: routed to a socks4:// upstream, UDP ASSOCIATE is
    refused with REP 0x07 (command not supported)."""
    back = make_proxy()
    front = configured(route_all(rt.socks5_url(back, scheme="socks4"), "forwarding"))
    a = Association(front.addr, expect_ok=False)
    with a:
        assert a.reply.rep == sc.REP_CMD_UNSUPPORTED, a.reply


def test_dante_as_the_upstream(configured, udp_echo):
    """A foreign SOCKS5 server (Debian's danted) as the UDP upstream: our
    UDP ASSOCIATE on it (DST 0.0.0.0:0) and its relay address work."""
    if not shutil.which("danted"):
        pytest.skip("danted missing (Debian package dante-server)")
    dante = rt.DanteUpstream()
    try:
        front = configured(route_all(rt.socks5_url(dante), "forwarding"))
        with Association(front.addr) as a:
            for i in range(3):
                d = a.roundtrip(udp_echo.addr, f"via-dante-{i}".encode())
                assert (d.host, d.port) == udp_echo.addr
    finally:
        dante.stop()
