"""Upstream protocols other than plain SOCKS5 (SOCKS4/4a, HTTP CONNECT with
Basic auth), how upstream errors map to the reply our client gets, and
upstreams that break the protocol on purpose (curl CVE-2023-38545, socat
CVE-2026-56123 are the named cases: a reply with a domain length >= 0x80, a
truncated reply, an unknown ATYP): the client gets an error reply, never a
crash, and the proxy keeps serving."""

from __future__ import annotations

import base64
import os

import pytest

from support import routing as rt
from support import socksclient as sc
from support.httpconnect import HTTPConnectProxy
from support.proxy import DEFAULT_ARGS
from support.servers import TCPServer

FAR_NAME, FAR_NAME6 = rt.FAR_NAME, rt.FAR_NAME6


def forward_all(url: str) -> dict:
    return {"forwarding": [{"match": "*:*", "upstream": url}]}


def assert_still_serving(proxy, echo_server):
    """A fresh session on a direct route works (the proxy survived)."""
    rt.echo_session(proxy.addr, "127.0.0.1", echo_server.port, b"still here")
    assert proxy.unexpected_exit() is None


def front_with_direct_escape(routed, url, echo_server, *args):
    """A proxy routing everything through ``url`` except the echo server's
    port on 127.0.0.1, which stays direct (to show it keeps serving)."""
    return routed({"forwarding": [
        {"match": f"127.0.0.1:{echo_server.port}", "upstream": "direct"},
        {"match": "*:*", "upstream": url},
    ]}, *args)


# ---- SOCKS4 / SOCKS4a upstreams ---------------------------------------------------------

def test_socks4a_upstream_sends_the_name(routed, make_proxy, near_dns, far_dns, echo_server):
    b = make_proxy("--dns-server", far_dns.addr_text)  # no users: serves SOCKS4
    a = routed(forward_all(rt.socks5_url(b, scheme="socks4a")), "--dns-server", near_dns.addr_text)
    rt.echo_session(a.addr, FAR_NAME, echo_server.port, b"4a")
    rec = rt.wait_access(b, target=f"{FAR_NAME}:{echo_server.port}", result="ok")
    assert rec["proto"] == "socks4"
    assert near_dns.queried(FAR_NAME) == []
    # An IPv4 target goes as an address.
    rt.echo_session(a.addr, "127.0.0.1", echo_server.port, b"4a-ip")
    assert rt.wait_access(b, target=f"127.0.0.1:{echo_server.port}")["proto"] == "socks4"


def test_socks4_upstream_resolves_locally(routed, make_proxy, near_dns, far_dns, echo_server):
    """Plain SOCKS4 carries only an IPv4 address: the proxy resolves the
    name itself and sends the address."""
    b = make_proxy("--dns-server", near_dns.addr_text)
    a = routed(forward_all(rt.socks5_url(b, scheme="socks4")), "--dns-server", far_dns.addr_text)
    rt.echo_session(a.addr, FAR_NAME, echo_server.port, b"socks4")
    rec = rt.wait_access(b, target=f"127.0.0.1:{echo_server.port}", result="ok")
    assert rec["proto"] == "socks4"
    assert far_dns.queried(FAR_NAME)
    assert near_dns.queried(FAR_NAME) == []


@pytest.mark.parametrize("scheme", ["socks4", "socks4a"])
def test_socks4_upstream_cannot_carry_ipv6(routed, make_proxy, near_dns, echo_server6, scheme):
    b = make_proxy()
    a = routed(forward_all(rt.socks5_url(b, scheme=scheme)), "--dns-server", near_dns.addr_text)
    assert rt.rep_of(a.addr, "::1", echo_server6.port) == sc.REP_ATYP_UNSUPPORTED
    # Nothing was sent upstream (at most an empty connection was opened).
    assert all(r["target"] == "-" and r["proto"] == "-" for r in rt.access_lines(b)), rt.access_lines(b)


def test_socks4_upstream_rejection(routed, make_proxy, near_dns):
    """SOCKS4's single failure code (0x5B) does not say whose fault it was:
    a general failure for our client."""
    b = make_proxy()
    a = routed(forward_all(rt.socks5_url(b, scheme="socks4")), "--dns-server", near_dns.addr_text)
    assert rt.rep_of(a.addr, "127.0.0.1", rt.closed_port()) == sc.REP_GENERAL
    rt.wait_access(b, rep="0x5b")


# ---- HTTP CONNECT upstreams ------------------------------------------------------------------

@pytest.fixture
def http_proxy():
    servers = []

    def make(**kw):
        kw.setdefault("hosts", {FAR_NAME: "127.0.0.1"})
        s = HTTPConnectProxy(**kw)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.close()


@pytest.mark.parametrize("kind", ["ipv4", "ipv6", "domain"])
def test_http_connect_upstream(routed, http_proxy, near_dns, echo_server, echo_server6, kind):
    hp = http_proxy()
    a = routed(forward_all(f"http://{hp.endpoint}"), "--dns-server", near_dns.addr_text)
    host, port, authority = {
        "ipv4": ("127.0.0.1", echo_server.port, f"127.0.0.1:{echo_server.port}"),
        "ipv6": ("::1", echo_server6.port, f"[::1]:{echo_server6.port}"),
        "domain": (FAR_NAME, echo_server.port, f"{FAR_NAME}:{echo_server.port}"),
    }[kind]
    rt.echo_session(a.addr, host, port, b"through CONNECT")
    assert hp.requests == [(authority, None)]
    assert near_dns.queried(FAR_NAME) == []


def test_http_connect_basic_auth_with_percent_encoded_credentials(routed, http_proxy, near_dns, echo_server):
    user, password = "bo b", "p@ss:w%rd"
    hp = http_proxy(credentials=(user, password))
    a = routed(forward_all(f"http://bo%20b:p%40ss%3Aw%25rd@{hp.endpoint}"), "--dns-server", near_dns.addr_text)
    rt.echo_session(a.addr, FAR_NAME, echo_server.port, b"basic")
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    assert hp.requests == [(f"{FAR_NAME}:{echo_server.port}", expected)]
    assert password not in a.log.text() and "p%40ss" not in a.log.text()


def test_http_connect_407_is_a_general_failure(routed, http_proxy, near_dns, echo_server):
    hp = http_proxy(credentials=("bob", "right"))
    a = front_with_direct_escape(routed, f"http://bob:wrong@{hp.endpoint}", echo_server,
                                 "--dns-server", near_dns.addr_text)
    assert rt.rep_of(a.addr, FAR_NAME, echo_server.port) == sc.REP_GENERAL
    a2 = routed(forward_all(f"http://{hp.endpoint}"), "--dns-server", near_dns.addr_text)
    assert rt.rep_of(a2.addr, FAR_NAME, echo_server.port) == sc.REP_GENERAL
    assert_still_serving(a, echo_server)


def test_http_connect_403_is_not_allowed(routed, http_proxy, near_dns, echo_server):
    hp = http_proxy(deny={f"{FAR_NAME}:{echo_server.port}"})
    a = routed(forward_all(f"http://{hp.endpoint}"), "--dns-server", near_dns.addr_text)
    assert rt.rep_of(a.addr, FAR_NAME, echo_server.port) == sc.REP_NOT_ALLOWED


def test_http_connect_502_is_host_unreachable(routed, http_proxy, near_dns):
    hp = http_proxy()
    a = routed(forward_all(f"http://{hp.endpoint}"), "--dns-server", near_dns.addr_text)
    assert rt.rep_of(a.addr, FAR_NAME, rt.closed_port()) == sc.REP_HOST_UNREACH


@pytest.mark.parametrize("status,rep", [(403, 0x02), (405, 0x02), (404, 0x01), (500, 0x01), (502, 0x04),
                                        (503, 0x01), (504, 0x04), (301, 0x01), (100, 0x01)])
def test_http_connect_status_mapping(routed, http_proxy, near_dns, echo_server, status, rep):
    hp = http_proxy(status=status)
    a = routed(forward_all(f"http://{hp.endpoint}"), "--dns-server", near_dns.addr_text)
    assert rt.rep_of(a.addr, FAR_NAME, echo_server.port) == rep


def test_http_connect_bytes_after_the_head_reach_the_client(routed, http_proxy, near_dns):
    """A server that speaks first, through a proxy that sends its first
    bytes in the same segment as the 200 head: they are tunnel data."""
    banner = b"220 banner from a server that speaks first\r\n"

    def speak_first(conn, peer):
        conn.sendall(banner)
        sc.read_until_closed(conn, timeout=10)

    with TCPServer(speak_first) as target:
        hp = http_proxy(coalesce=True)
        a = routed(forward_all(f"http://{hp.endpoint}"), "--dns-server", near_dns.addr_text)
        s = rt.tunnel(a.addr, "127.0.0.1", target.port)
        with s:
            assert sc.recv_exact(s, len(banner)) == banner
        rec = rt.wait_access(a, target=f"127.0.0.1:{target.port}")
        assert int(rec["down"]) == len(banner)


# ---- upstream errors -> our reply ----------------------------------------------------------------

def test_far_end_refused_maps_to_0x05(routed, make_proxy, near_dns):
    b = make_proxy()
    a = routed(forward_all(rt.socks5_url(b)), "--dns-server", near_dns.addr_text)
    assert rt.rep_of(a.addr, "127.0.0.1", rt.closed_port()) == sc.REP_REFUSED
    rt.wait_access(b, rep="0x05")
    # The same through three instances (each hop passes the code on).
    c = routed(forward_all(rt.socks5_url(a)), "--dns-server", near_dns.addr_text)
    assert rt.rep_of(c.addr, "127.0.0.1", rt.closed_port()) == sc.REP_REFUSED


def test_far_end_not_allowed_and_unknown_host_pass_through(routed, make_proxy, near_dns, far_dns, echo_server):
    # The deny must come before the harness' loopback allow (first match wins).
    b = make_proxy("--dns-server", far_dns.addr_text,
                   default_args=["--deny", f"127.0.0.1:{echo_server.port}", *DEFAULT_ARGS])
    a = routed(forward_all(rt.socks5_url(b)), "--dns-server", near_dns.addr_text)
    assert rt.rep_of(a.addr, "127.0.0.1", echo_server.port) == sc.REP_NOT_ALLOWED
    assert rt.rep_of(a.addr, "no-such-name.test", 80) == sc.REP_HOST_UNREACH
    assert far_dns.queried("no-such-name.test") and near_dns.queried("no-such-name.test") == []


@pytest.mark.parametrize("code", [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08])
def test_every_upstream_reply_code_reaches_the_client(routed, near_dns, code):
    """A defined REP from the upstream is what the far end said about the
    target: our client gets the same code."""
    def reply_with_code(conn):
        rt.read_socks5_request(conn)
        conn.sendall(bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0]))

    with rt.ScriptedUpstream(reply_with_code) as up:
        a = routed(forward_all(rt.socks5_url(up.endpoint)), "--dns-server", near_dns.addr_text)
        assert rt.rep_of(a.addr, "127.0.0.1", 9) == code


@pytest.mark.parametrize("code", [0x09, 0x80, 0xFF])
def test_undefined_upstream_reply_code_is_a_general_failure(routed, near_dns, code):
    def reply_with_code(conn):
        rt.read_socks5_request(conn)
        conn.sendall(bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0]))

    with rt.ScriptedUpstream(reply_with_code) as up:
        a = routed(forward_all(rt.socks5_url(up.endpoint)), "--dns-server", near_dns.addr_text)
        assert rt.rep_of(a.addr, "127.0.0.1", 9) == sc.REP_GENERAL


def test_unreachable_upstream(routed, near_dns, echo_server):
    """Nothing listens at the upstream's address: the upstream's failure,
    reported as a general failure (0x01) -- not 0x05, which would blame the
    target that was never tried."""
    a = front_with_direct_escape(routed, f"socks5://127.0.0.1:{rt.closed_port()}", echo_server,
                                 "--dns-server", near_dns.addr_text)
    assert rt.rep_of(a.addr, "127.0.0.1", 9) in (sc.REP_GENERAL, sc.REP_HOST_UNREACH)
    rec = rt.wait_access(a, target="127.0.0.1:9")
    assert rec["rep"] in ("0x01", "0x04")
    # An upstream named by a name nobody can resolve: the same.
    a2 = routed(forward_all("socks5://upstream-nowhere.test:1080"), "--dns-server", near_dns.addr_text)
    assert rt.rep_of(a2.addr, "127.0.0.1", 9) in (sc.REP_GENERAL, sc.REP_HOST_UNREACH)
    assert_still_serving(a, echo_server)


def test_unreachable_middle_hop_is_not_the_targets_refusal(routed, make_proxy, near_dns, echo_server):
    """B is up, C (B's next hop) is not: B answers 0x05 about C, but the
    client's target was never tried -- a general failure, not 0x05."""
    b = make_proxy()
    a = routed({"forwarding": [{"match": "*:*", "upstream": [rt.socks5_url(b),
                                                             f"socks5://127.0.0.1:{rt.closed_port()}"]}]},
               "--dns-server", near_dns.addr_text)
    assert rt.rep_of(a.addr, "127.0.0.1", echo_server.port) == sc.REP_GENERAL
    rt.wait_access(b, rep="0x05")


def test_upstream_that_never_answers_times_out(routed, near_dns, echo_server):
    def hang(conn):
        rt.read_socks5_request(conn)
        sc.read_until_closed(conn, timeout=10)

    with rt.ScriptedUpstream(hang) as up:
        a = front_with_direct_escape(routed, rt.socks5_url(up.endpoint), echo_server,
                                     "--dns-server", near_dns.addr_text, "--connect-timeout", "1s")
        assert rt.rep_of(a.addr, "127.0.0.1", 9, timeout=8) == sc.REP_HOST_UNREACH
        assert rt.wait_access(a, target="127.0.0.1:9")["result"] == "connect_timeout"
        assert_still_serving(a, echo_server)


# ---- malicious upstreams ------------------------------------------------------------------------------

def _s5(reply: bytes, close: bool = True):
    """After a normal greeting and request, send ``reply`` (then close)."""
    def script(conn):
        rt.read_socks5_request(conn)
        conn.sendall(reply)
        if not close:
            sc.read_until_closed(conn, timeout=10)
    return script


def _raw(data: bytes):
    """Answer the greeting with ``data`` and close."""
    def script(conn):
        sc.recv_exact(conn, 3)
        conn.sendall(data)
    return script


def _auth(status: bytes):
    """Choose RFC 1929, read the credentials, answer ``status``."""
    def script(conn):
        sc.recv_exact(conn, 2 + 2)
        conn.sendall(b"\x05\x02")
        ulen = sc.recv_exact(conn, 2)[1]
        sc.recv_exact(conn, ulen)
        plen = sc.recv_exact(conn, 1)[0]
        sc.recv_exact(conn, plen)
        conn.sendall(status)
    return script


PORT = b"\x00\x50"
MALICIOUS_SOCKS5 = {
    # CVE-2023-38545 / CVE-2026-56123 shapes: domain lengths >= 0x80.
    "domain_len_0x80_truncated": _s5(b"\x05\x00\x00\x03\x80" + b"a" * 20),
    "domain_len_0xff_truncated": _s5(b"\x05\x00\x00\x03\xff" + b"a" * 200),
    "domain_len_0xff_no_port": _s5(b"\x05\x00\x00\x03\xff" + b"a" * 255),
    "domain_len_0xc8_with_nul": _s5(b"\x05\x00\x00\x03\xc8" + b"a" * 50 + b"\x00" + b"a" * 149 + PORT, close=False),
    "domain_len_0": _s5(b"\x05\x00\x00\x03\x00" + PORT, close=False),
    "unknown_atyp_0x00": _s5(b"\x05\x00\x00\x00" + b"\x00" * 20, close=False),
    "unknown_atyp_0x02": _s5(b"\x05\x00\x00\x02" + b"\x7f\x00\x00\x01" + PORT, close=False),
    "unknown_atyp_0x05": _s5(b"\x05\x00\x00\x05" + b"\x00" * 20, close=False),
    "unknown_atyp_0xff": _s5(b"\x05\x00\x00\xff" + b"\xff" * 300, close=False),
    "truncated_after_rep": _s5(b"\x05\x00\x00"),
    "truncated_ipv4": _s5(b"\x05\x00\x00\x01\x7f\x00"),
    "truncated_ipv6": _s5(b"\x05\x00\x00\x04" + b"\x00" * 10),
    "reply_bad_version": _s5(b"\x04\x00\x00\x01\x7f\x00\x00\x01" + PORT, close=False),
    "reply_version_0": _s5(b"\x00\x5a\x00\x50\x7f\x00\x00\x01", close=False),
    "http_answer": _raw(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
    "random_garbage": _raw(os.urandom(64).replace(b"\x05", b"\x06")),
    "method_bad_version": _raw(b"\x04\x00"),
    "method_no_acceptable": _raw(b"\x05\xff"),
    "method_not_offered_userpass": _raw(b"\x05\x02"),
    "method_gssapi": _raw(b"\x05\x01"),
    "method_truncated": _raw(b"\x05"),
    "closed_at_once": lambda conn: None,
}

MALICIOUS_AUTH = {
    "auth_refused": _auth(b"\x01\x01"),
    "auth_bad_version": _auth(b"\x05\x00"),
    "auth_truncated": _auth(b"\x01"),
}


@pytest.mark.parametrize("name", sorted(MALICIOUS_SOCKS5))
def test_malicious_socks5_upstream(routed, near_dns, echo_server, name):
    with rt.ScriptedUpstream(MALICIOUS_SOCKS5[name]) as up:
        a = front_with_direct_escape(routed, rt.socks5_url(up.endpoint), echo_server,
                                     "--dns-server", near_dns.addr_text)
        for _ in range(3):
            assert rt.rep_of(a.addr, FAR_NAME, 80) == sc.REP_GENERAL
        assert up.errors == []
        assert_still_serving(a, echo_server)


@pytest.mark.parametrize("name", sorted(MALICIOUS_AUTH))
def test_malicious_socks5_upstream_auth(routed, near_dns, echo_server, name):
    with rt.ScriptedUpstream(MALICIOUS_AUTH[name]) as up:
        a = front_with_direct_escape(routed, rt.socks5_url(up.endpoint, "u", "p"), echo_server,
                                     "--dns-server", near_dns.addr_text)
        assert rt.rep_of(a.addr, FAR_NAME, 80) == sc.REP_GENERAL
        assert up.errors == []
        assert_still_serving(a, echo_server)


def test_long_domain_in_a_complete_reply_is_accepted(routed, near_dns, echo_server):
    """A BND.ADDR name of 200 bytes (length byte >= 0x80) is legal in RFC
    1928: read exactly, no overflow, the tunnel works and bytes after the
    reply are tunnel data (never parsed as part of the reply)."""
    name = b"b" * 200

    def long_bnd(conn):
        rt.read_socks5_request(conn)
        conn.sendall(b"\x05\x00\x00\x03" + bytes([len(name)]) + name + PORT + b"tunnel-bytes")
        data = sc.recv_exact(conn, 4)
        conn.sendall(data)
        sc.read_until_closed(conn, timeout=10)

    with rt.ScriptedUpstream(long_bnd) as up:
        a = routed(forward_all(rt.socks5_url(up.endpoint)), "--dns-server", near_dns.addr_text)
        s = rt.tunnel(a.addr, FAR_NAME, 80)
        with s:
            assert sc.recv_exact(s, len(b"tunnel-bytes")) == b"tunnel-bytes"
            s.sendall(b"ping")
            assert sc.recv_exact(s, 4) == b"ping"
        assert up.errors == []


MALICIOUS_SOCKS4 = {
    "bad_vn": b"\x05\x5a\x00\x50\x7f\x00\x00\x01",
    "truncated": b"\x00\x5a\x00\x50",
    "rejected_5b": b"\x00\x5b\x00\x00\x00\x00\x00\x00",
    "rejected_5c": b"\x00\x5c\x00\x00\x00\x00\x00\x00",
    "unknown_cd": b"\x00\x42\x00\x00\x00\x00\x00\x00",
    "socks5_reply": b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50",
}


@pytest.mark.parametrize("name", sorted(MALICIOUS_SOCKS4))
def test_malicious_socks4_upstream(routed, near_dns, echo_server, name):
    def script_simple(conn):
        sc.recv_exact(conn, 9)  # VN CD PORT IP (4 bytes) NUL: plain SOCKS4, empty USERID
        conn.sendall(MALICIOUS_SOCKS4[name])
        if name != "truncated":  # a truncated reply, then EOF
            sc.read_until_closed(conn, timeout=10)

    with rt.ScriptedUpstream(script_simple) as up:
        a = front_with_direct_escape(routed, f"socks4://{up.endpoint}", echo_server,
                                     "--dns-server", near_dns.addr_text)
        assert rt.rep_of(a.addr, "127.0.0.9", 80) == sc.REP_GENERAL
        assert up.errors == []
        assert_still_serving(a, echo_server)


def _http(data: bytes, close: bool = True):
    def script(conn):
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buf += chunk
        conn.sendall(data)
        if not close:
            sc.read_until_closed(conn, timeout=10)
    return script


MALICIOUS_HTTP = {
    "endless_headers": _http(b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * 9000, close=False),
    "not_http": _http(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", close=False),
    "status_four_digits": _http(b"HTTP/1.1 2000 OK\r\n\r\n", close=False),
    "status_letters": _http(b"HTTP/1.1 2xx OK\r\n\r\n", close=False),
    "http2_version": _http(b"HTTP/2.0 200 OK\r\n\r\n", close=False),
    "nul_in_header": _http(b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n", close=False),
    "bare_lf_header": _http(b"HTTP/1.1 200 OK\r\nX-A: a\nX-B: b\r\n\r\n", close=False),
    "truncated_head": _http(b"HTTP/1.1 200 OK\r\nX-A: a\r\n"),
    "truncated_status": _http(b"HTTP/1.1 20"),
    "empty": _http(b""),
}


@pytest.mark.parametrize("name", sorted(MALICIOUS_HTTP))
def test_malicious_http_connect_upstream(routed, near_dns, echo_server, name):
    with rt.ScriptedUpstream(MALICIOUS_HTTP[name]) as up:
        a = front_with_direct_escape(routed, f"http://{up.endpoint}", echo_server,
                                     "--dns-server", near_dns.addr_text)
        assert rt.rep_of(a.addr, FAR_NAME, 80) == sc.REP_GENERAL
        assert up.errors == []
        assert_still_serving(a, echo_server)


# ---- credentials and names that do not fit ---------------------------------------------------

@pytest.mark.parametrize("field", ["user", "password"])
def test_upstream_credentials_over_255_bytes_are_refused_at_load(tmp_path, field):
    from support.proxy import run_cli
    long = "x" * 256
    creds = f"{long}:pw" if field == "user" else f"user:{long}"
    path = rt.write_config(tmp_path / "c.yaml", forward_all(f"socks5://{creds}@127.0.0.1:1080"))
    r = run_cli(["--check-config", "-c", str(path)])
    assert r.returncode != 0
    assert b"255" in r.stderr + r.stdout
    # Exactly 255 (percent-encoded to more on the wire of the URL) is fine.
    ok = "%41" * 255
    creds = f"{ok}:pw" if field == "user" else f"user:{ok}"
    path = rt.write_config(tmp_path / "d.yaml", forward_all(f"socks5://{creds}@127.0.0.1:1080"))
    r = run_cli(["--check-config", "-c", str(path)])
    assert r.returncode == 0, r.stderr.decode()
