"""Upstream chains: two and three CleverSocks instances, and Dante as a
foreign upstream, with and without RFC 1929 at each hop, to IPv4, IPv6 and
domain targets.  A domain target travels as a name and is resolved by the
far end only: the near hops point at a DNS server that knows no names (its
query log stays empty for the target), the last hop at one that does."""

from __future__ import annotations

import os
import shutil

import pytest

from support import constants as C
from support import routing as rt
from support import socksclient as sc

FAR_NAME = rt.FAR_NAME

HOP_USERS = {"B": ("bhop", "b-secret"), "C": ("chop", "c-secret")}
TARGET_KINDS = ["ipv4", "ipv6", "domain"]


def target_for(kind, echo_server, echo_server6):
    if kind == "ipv4":
        return "127.0.0.1", echo_server.port
    if kind == "ipv6":
        return "::1", echo_server6.port
    return FAR_NAME, echo_server.port


def hop_args(name: str, auth: bool, dns) -> list[str]:
    args = ["--dns-server", dns.addr_text]
    if auth:
        args += ["--user", "{}:{}".format(*HOP_USERS[name])]
    return args


def hop_url(proxy, name: str, auth: bool) -> str:
    return rt.socks5_url(proxy, *(HOP_USERS[name] if auth else (None, None)))


def client_creds(client_auth: bool) -> dict:
    return {"user": C.AUTH_USER, "password": C.AUTH_PASSWORD} if client_auth else {}


def forward_all(hops) -> dict:
    return {"forwarding": [{"match": "*:*", "upstream": hops if len(hops) > 1 else hops[0]}]}


def check_far_end_resolution(kind, host, port, near_dns, far_dns, first, last):
    """The name went upstream as a name: the first hop logged it as
    requested, never asked its DNS; the last hop got the name and resolved it."""
    if kind != "domain":
        return
    assert near_dns.queried(host) == [], f"a near hop resolved {host}: {near_dns.queries}"
    assert far_dns.queried(host), "the far end never resolved the name"
    rt.wait_access(first, target=f"{host}:{port}", result="ok")
    rec = rt.wait_access(last, target=f"{host}:{port}", result="ok")
    assert rec["dialled"] == f"127.0.0.1:{port}"


@pytest.mark.parametrize("kind", TARGET_KINDS)
@pytest.mark.parametrize("client_auth,hop_auth", [(False, False), (True, False), (False, True), (True, True)],
                         ids=["open-open", "auth-open", "open-auth", "auth-auth"])
def test_two_instance_chain(routed, make_proxy, near_dns, far_dns, echo_server, echo_server6,
                            kind, client_auth, hop_auth):
    b = make_proxy(*hop_args("B", hop_auth, far_dns), listen=("127.0.0.1:0", "[::1]:0"))
    a_args = ["--dns-server", near_dns.addr_text]
    if client_auth:
        a_args += ["--user", f"{C.AUTH_USER}:{C.AUTH_PASSWORD}"]
    a = routed(forward_all([hop_url(b, "B", hop_auth)]), *a_args)
    host, port = target_for(kind, echo_server, echo_server6)

    rt.echo_session(a.addr, host, port, b"two hops " + kind.encode(), **client_creds(client_auth))

    target = f"[{host}]:{port}" if kind == "ipv6" else f"{host}:{port}"
    rec = rt.wait_access(a, target=target)
    assert rec["result"] == "ok" and rec["rep"] == "0x00"
    assert rec["dialled"] == f"via {rt.socks5_url(b, HOP_USERS['B'][0], '***') if hop_auth else rt.socks5_url(b)}"
    if client_auth:
        assert rec["user"] == C.AUTH_USER
    far = rt.wait_access(b, target=target)
    assert far["result"] == "ok"
    assert far["user"] == (HOP_USERS["B"][0] if hop_auth else "-")
    # The hop's password is never logged by the proxy that uses it.
    assert HOP_USERS["B"][1] not in a.log.text()
    check_far_end_resolution(kind, host, port, near_dns, far_dns, a, b)


@pytest.mark.parametrize("kind", TARGET_KINDS)
@pytest.mark.parametrize("b_auth,c_auth", [(False, False), (True, False), (False, True), (True, True)],
                         ids=["open-open", "auth-open", "open-auth", "auth-auth"])
def test_three_instance_chain_as_hop_list(routed, make_proxy, near_dns, far_dns, echo_server, echo_server6,
                                          kind, b_auth, c_auth):
    """A's rule names the chain [B, C]: A asks B for a tunnel to C, then C
    for the target through it."""
    c = make_proxy(*hop_args("C", c_auth, far_dns), listen=("127.0.0.1:0",))
    b = make_proxy(*hop_args("B", b_auth, near_dns))
    a = routed(forward_all([hop_url(b, "B", b_auth), hop_url(c, "C", c_auth)]),
               "--dns-server", near_dns.addr_text)
    host, port = target_for(kind, echo_server, echo_server6)

    rt.echo_session(a.addr, host, port, b"three hops")

    target = f"[{host}]:{port}" if kind == "ipv6" else f"{host}:{port}"
    rec = rt.wait_access(a, target=target, result="ok")
    assert rec["route"].count(">") == 1, rec  # "B>C"
    # B was asked for C, not for the target; C for the target.
    mid = rt.wait_access(b, target=str(c.endpoint), result="ok")
    assert mid["user"] == (HOP_USERS["B"][0] if b_auth else "-")
    assert target not in rt.targets_seen(b)
    far = rt.wait_access(c, target=target, result="ok")
    assert far["user"] == (HOP_USERS["C"][0] if c_auth else "-")
    check_far_end_resolution(kind, host, port, near_dns, far_dns, a, c)


def test_three_instances_each_with_its_own_upstream(routed, make_proxy, near_dns, far_dns, echo_server):
    """Nested: A's upstream is B, B's upstream is C (each hop authenticated,
    the client too); a domain target is passed on as a name twice."""
    c = make_proxy(*hop_args("C", True, far_dns))
    b = routed(forward_all([hop_url(c, "C", True)]), *hop_args("B", True, near_dns), name="B")
    a = routed(forward_all([hop_url(b, "B", True)]), "--dns-server", near_dns.addr_text,
               "--user", f"{C.AUTH_USER}:{C.AUTH_PASSWORD}", name="A")
    port = echo_server.port

    for i in range(3):
        rt.echo_session(a.addr, FAR_NAME, port, b"nested %d" % i,
                        user=C.AUTH_USER, password=C.AUTH_PASSWORD)

    target = f"{FAR_NAME}:{port}"
    assert rt.wait_access(a, target=target, result="ok")["user"] == C.AUTH_USER
    assert rt.wait_access(b, target=target, result="ok")["user"] == HOP_USERS["B"][0]
    assert rt.wait_access(c, target=target, result="ok")["user"] == HOP_USERS["C"][0]
    assert near_dns.queried(FAR_NAME) == []
    assert far_dns.queried(FAR_NAME)


def test_upstream_credentials_rejected_by_the_hop(routed, make_proxy, near_dns, far_dns, echo_server):
    """Wrong RFC 1929 credentials for the hop: the client gets a general
    failure (the upstream's fault, not the target's), and the proxy serves on."""
    b = make_proxy(*hop_args("B", True, far_dns))
    a = routed(forward_all([rt.socks5_url(b, HOP_USERS["B"][0], "wrong")]), "--dns-server", near_dns.addr_text)
    assert rt.rep_of(a.addr, "127.0.0.1", echo_server.port) == sc.REP_GENERAL
    rt.wait_access(b, result="auth_failed")
    # Missing credentials for a hop that requires them: no acceptable method.
    a2 = routed(forward_all([rt.socks5_url(b)]), "--dns-server", near_dns.addr_text)
    assert rt.rep_of(a2.addr, "127.0.0.1", echo_server.port) == sc.REP_GENERAL


# ---- Dante (Debian's danted) as a foreign upstream ---------------------------------

DANTE_NAME = "dante-far.test"
DANTE_USER = ("csdanteuser", "dante-pass")


def _need_dante():
    if os.geteuid() != 0 or shutil.which("danted") is None or shutil.which("unshare") is None:
        pytest.skip("Dante as an upstream needs root (a private mount namespace), danted and unshare")


@pytest.fixture
def dante_open(echo_server):
    _need_dante()
    d = rt.DanteUpstream(hosts={DANTE_NAME: "127.0.0.1"})
    yield d
    d.stop()


@pytest.fixture
def dante_auth():
    _need_dante()
    d = rt.DanteUpstream(users=dict([DANTE_USER]), hosts={DANTE_NAME: "127.0.0.1"})
    yield d
    d.stop()


@pytest.mark.parametrize("kind", TARGET_KINDS)
def test_dante_upstream_without_auth(routed, dante_open, near_dns, echo_server, echo_server6, kind):
    a = routed(forward_all([rt.socks5_url(dante_open)]), "--dns-server", near_dns.addr_text)
    host, port = {"ipv4": ("127.0.0.1", echo_server.port), "ipv6": ("::1", echo_server6.port),
                  "domain": (DANTE_NAME, echo_server.port)}[kind]
    rt.echo_session(a.addr, host, port, b"via dante")
    rt.wait_access(a, result="ok", dialled=f"via {rt.socks5_url(dante_open)}")
    if kind == "domain":
        # Only Dante's private /etc/hosts knows the name.
        assert near_dns.queried(DANTE_NAME) == []


@pytest.mark.parametrize("kind", TARGET_KINDS)
def test_dante_upstream_with_username_auth(routed, dante_auth, near_dns, echo_server, echo_server6, kind):
    a = routed(forward_all([rt.socks5_url(dante_auth, *DANTE_USER)]), "--dns-server", near_dns.addr_text,
               "--user", f"{C.AUTH_USER}:{C.AUTH_PASSWORD}")
    host, port = {"ipv4": ("127.0.0.1", echo_server.port), "ipv6": ("::1", echo_server6.port),
                  "domain": (DANTE_NAME, echo_server.port)}[kind]
    rt.echo_session(a.addr, host, port, b"via dante, authenticated", user=C.AUTH_USER, password=C.AUTH_PASSWORD)
    dante_auth.log.wait_for(DANTE_USER[0], 10)
    assert near_dns.queried(DANTE_NAME) == []


def test_dante_rejects_wrong_password(routed, dante_auth, near_dns, echo_server):
    a = routed(forward_all([rt.socks5_url(dante_auth, DANTE_USER[0], "nope")]), "--dns-server", near_dns.addr_text)
    assert rt.rep_of(a.addr, "127.0.0.1", echo_server.port) == sc.REP_GENERAL
    rt.echo_session(routed({}, "--dns-server", near_dns.addr_text).addr, "127.0.0.1", echo_server.port)


def test_chain_through_dante_to_cleversocks(routed, make_proxy, dante_auth, near_dns, far_dns, echo_server):
    """A -> Dante (username) -> C (RFC 1929) -> target by name: Dante is a
    middle hop and is asked for C's address; C resolves the name."""
    c = make_proxy(*hop_args("C", True, far_dns))
    a = routed(forward_all([rt.socks5_url(dante_auth, *DANTE_USER), hop_url(c, "C", True)]),
               "--dns-server", near_dns.addr_text)
    rt.echo_session(a.addr, FAR_NAME, echo_server.port, b"dante in the middle")
    rt.wait_access(c, target=f"{FAR_NAME}:{echo_server.port}", result="ok", user=HOP_USERS["C"][0])
    assert near_dns.queried(FAR_NAME) == []


def test_refused_at_dante_maps_to_0x05(routed, dante_open, near_dns, echo_server):
    closed = rt.closed_port()
    a = routed(forward_all([rt.socks5_url(dante_open)]), "--dns-server", near_dns.addr_text)
    assert rt.rep_of(a.addr, "127.0.0.1", closed) == sc.REP_REFUSED
