"""Regression tests for public SOCKS authentication bugs, run against a
proxy whose users come from a users file with argon2id hashes (the slow,
off-loop, cached verification path) plus one plain-text user.

- Dante CVE-2024-54662: a rule requiring authentication fell through to
  "no authentication".
- sing-box GHSA-r5hm-mp3j-285g: a CONNECT sent before (instead of) the
  username/password sub-negotiation was served.
- CVE-2002-2368: 255-byte usernames/passwords overflowed fixed buffers;
  zero-length ones mis-parsed.
- microsocks #9: credentials compared by prefix ("user" matched "userX").
"""

from __future__ import annotations

import socket

import pytest

from support import socksclient as sc
from support import security as sec
from support.proxy import Proxy
from support.servers import EchoServer

LOOPBACK = ("--allow", "127.0.0.0/8", "--allow", "::1")
OK = b"\x01\x00"

LONG_USER = "U" * 254 + "z"
LONG_PASSWORD = ("p4ss:" * 51)[:254] + "!"
assert len(LONG_USER) == 255 and len(LONG_PASSWORD) == 255


@pytest.fixture(scope="module")
def users_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cve-users")
    path = d / "users"
    path.write_text(
        f"user:{sec.hash_password('secret')}\n"
        f"{LONG_USER}:{sec.hash_password(LONG_PASSWORD)}\n"
        "plainuser:plainpw\n")
    return path


@pytest.fixture(scope="module")
def proxy(users_file):
    p = Proxy(["--users-file", str(users_file), "--auth-lockout-after", "0", *LOOPBACK],
              default_args=sec.defaults_without_rules())
    yield p
    p.finish()


@pytest.fixture
def target():
    with EchoServer() as t:
        yield t


def refused_status(status: bytes) -> bool:
    return len(status) == 2 and status[0] == 0x01 and status[1] != 0x00


def test_cve_2024_54662_auth_required_never_falls_through_to_noauth(proxy, target):
    # Only "no auth" offered: refused, closed, nothing dialled.
    with sc.connect(proxy.addr) as s:
        s.sendall(sc.greeting(sc.NO_AUTH))
        assert sc.read_method(s) == b"\x05\xff"
        sc.expect_closed(s)
    # "No auth" offered with a CONNECT right behind it.
    with sc.connect(proxy.addr) as s:
        s.sendall(sc.greeting(sc.NO_AUTH) + sc.request("127.0.0.1", target.port) + b"payload")
        assert sc.read_method(s) == b"\x05\xff"
        sc.expect_closed(s)
    # Both offered: username/password is chosen, never "no auth".
    for methods in ((sc.NO_AUTH, sc.USERPASS), (sc.USERPASS, sc.NO_AUTH), (0x01, sc.NO_AUTH, sc.USERPASS)):
        with sc.connect(proxy.addr) as s:
            s.sendall(sc.greeting(*methods))
            assert sc.read_method(s) == b"\x05\x02", methods
    # Unknown methods only: refused.
    with sc.connect(proxy.addr) as s:
        s.sendall(sc.greeting(0x01, 0x03, 0x80, 0xFF))
        assert sc.read_method(s) == b"\x05\xff"
    # SOCKS4/4a cannot authenticate: refused when users are configured.
    assert sec.socks4_cd(proxy.addr, "127.0.0.1", target.port) == sc.S4_REJECTED
    assert sec.socks4_cd(proxy.addr, "127.0.0.1", target.port, userid=b"user") == sc.S4_REJECTED
    assert sec.socks4_cd(proxy.addr, "localhost", target.port, userid=b"plainuser") == sc.S4_REJECTED
    assert target.peers == [], "the proxy connected to the target without authentication"


def test_ghsa_r5hm_mp3j_285g_connect_before_auth_is_rejected(proxy, target):
    # CONNECT where the RFC 1929 request belongs.
    with sc.connect(proxy.addr) as s:
        s.sendall(sc.greeting(sc.USERPASS))
        assert sc.read_method(s) == b"\x05\x02"
        s.sendall(sc.request("127.0.0.1", target.port))
        assert refused_status(sc.recv_exact(s, 2))
        sc.expect_closed(s)
    # Greeting + CONNECT + credentials pipelined in the wrong order.
    with sc.connect(proxy.addr) as s:
        s.sendall(sc.greeting(sc.USERPASS) + sc.request("127.0.0.1", target.port) + sc.userpass("user", "secret"))
        assert sc.read_method(s) == b"\x05\x02"
        assert refused_status(sc.recv_exact(s, 2))
        sc.expect_closed(s)
    # A failed login followed by a CONNECT: the CONNECT is never served.
    with sc.connect(proxy.addr) as s:
        s.sendall(sc.greeting(sc.USERPASS) + sc.userpass("user", "wrong") + sc.request("127.0.0.1", target.port))
        assert sc.read_method(s) == b"\x05\x02"
        assert refused_status(sc.recv_exact(s, 2))
        sc.expect_closed(s)
    assert target.peers == [], "the proxy connected to the target without a successful login"
    # And with the right credentials the same pipeline works.
    with sc.connect(proxy.addr) as s:
        s.sendall(sc.greeting(sc.USERPASS) + sc.userpass("user", "secret") + sc.request("127.0.0.1", target.port))
        assert sc.read_method(s) == b"\x05\x02"
        assert sc.read_auth_status(s) == OK
        assert sc.read_reply(s).rep == sc.REP_SUCCEEDED
        sc.echo_roundtrip(s, b"after auth")


def test_cve_2002_2368_255_byte_username_and_password(proxy, target):
    a = sec.socks5(proxy.addr, "127.0.0.1", target.port, user=LONG_USER, password=LONG_PASSWORD, keep=True)
    try:
        assert a.auth == OK and a.rep == sc.REP_SUCCEEDED, (a.auth.hex(), a.rep)
        sc.echo_roundtrip(a.sock, b"long credentials")
    finally:
        a.close()
    for user, password in ((LONG_USER[:-1] + "y", LONG_PASSWORD), (LONG_USER, LONG_PASSWORD[:-1] + "?"),
                           (LONG_USER[:-1], LONG_PASSWORD), (LONG_USER, LONG_PASSWORD[:-1]),
                           ("U" * 255, "p" * 255)):
        assert refused_status(sec.login(proxy.addr, user, password)), (len(user), len(password))


def test_cve_2002_2368_zero_length_username_and_password(proxy):
    for user, password in (("", ""), ("", "secret"), ("user", ""), ("", LONG_PASSWORD), (LONG_USER, "")):
        assert refused_status(sec.login(proxy.addr, user, password)), (len(user), len(password))
    # Raw: ULEN 0 and PLEN 0 on the wire, then a closed connection.
    with sc.connect(proxy.addr) as s:
        s.sendall(sc.greeting(sc.USERPASS) + b"\x01\x00\x00")
        assert sc.read_method(s) == b"\x05\x02"
        assert refused_status(sc.recv_exact(s, 2))
        sc.expect_closed(s)
    # Declared lengths longer than what is sent: no reply, no crash, closed on EOF.
    with sc.connect(proxy.addr) as s:
        s.sendall(sc.greeting(sc.USERPASS) + b"\x01\xff" + b"A" * 10)
        assert sc.read_method(s) == b"\x05\x02"
        s.shutdown(socket.SHUT_WR)
        assert sc.read_until_closed(s) == b""
    # The proxy is still serving.
    assert sec.login(proxy.addr, "user", "secret") == OK


@pytest.mark.parametrize("user,password", [
    ("userX", "secret"), ("use", "secret"), ("user\x00", "secret"), ("USER", "secret"), ("user ", "secret"),
    ("user", "secretX"), ("user", "secre"), ("user", "secret\x00"), ("user", "SECRET"),
    ("plainuserX", "plainpw"), ("plainuse", "plainpw"), ("plainuser", "plainpwX"), ("plainuser", "plainp"),
], ids=lambda v: repr(v))
def test_microsocks_9_no_prefix_matching(proxy, user, password):
    # Warm the cache with the right credentials first: a cached success must
    # not make a prefix or extension of them acceptable.
    assert sec.login(proxy.addr, "user", "secret") == OK
    assert sec.login(proxy.addr, "plainuser", "plainpw") == OK
    assert refused_status(sec.login(proxy.addr, user, password)), f"{user!r}/{password!r} accepted"
