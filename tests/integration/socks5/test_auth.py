"""RFC 1928 method negotiation and RFC 1929 username/password, including the
auth regressions: no-auth refused when users exist, CONNECT before auth,
length edge cases, prefix matches."""

from __future__ import annotations

import pytest

from support import constants as C
from support import socksclient as sc
from support.proxy import ProxyStartError
from support.servers import EchoServer

USER, PASSWORD = C.AUTH_USER, C.AUTH_PASSWORD


def negotiate(proxy_addr, *methods: int):
    sock = sc.connect(proxy_addr)
    sock.sendall(sc.greeting(*methods))
    return sock, sc.read_method(sock)


def try_login(proxy_addr, user, password) -> tuple:
    """Returns (socket, 2-byte RFC 1929 status)."""
    sock, method = negotiate(proxy_addr, sc.USERPASS)
    assert method == b"\x05\x02", method.hex(" ")
    sock.sendall(sc.userpass(user, password))
    return sock, sc.read_auth_status(sock)


def assert_login_ok_and_connect(proxy_addr, user, password) -> None:
    with EchoServer() as target:
        sock, status = try_login(proxy_addr, user, password)
        with sock:
            assert status == b"\x01\x00", f"login {user!r} refused: {status.hex(' ')}"
            sock.sendall(sc.request("127.0.0.1", target.port))
            reply = sc.read_reply(sock)
            assert reply.rep == sc.REP_SUCCEEDED, reply.raw.hex(" ")
            sc.echo_roundtrip(sock, b"authenticated")


def assert_login_refused(proxy_addr, user, password) -> None:
    sock, status = try_login(proxy_addr, user, password)
    with sock:
        assert status[0] == 0x01 and status[1] != 0x00, \
            f"login {user!r}/{password!r}: expected 01 <non-zero>, got {status.hex(' ')}"
        sc.expect_closed(sock)


# ---- method negotiation -----------------------------------------------------

def test_users_configured_only_noauth_offered_is_refused(auth_proxy):
    sock, method = negotiate(auth_proxy.addr, sc.NO_AUTH)
    with sock:
        assert method == b"\x05\xff"
        sc.expect_closed(sock)


def test_users_configured_picks_userpass(auth_proxy):
    for methods in ((sc.NO_AUTH, sc.USERPASS), (sc.USERPASS, sc.NO_AUTH),
                    (0x01, 0x80, sc.USERPASS, 0xFE)):
        sock, method = negotiate(auth_proxy.addr, *methods)
        with sock:
            assert method == b"\x05\x02", f"offered {methods}: {method.hex(' ')}"


def test_no_users_only_userpass_offered_is_refused(noauth_proxy):
    sock, method = negotiate(noauth_proxy.addr, sc.USERPASS)
    with sock:
        assert method == b"\x05\xff"
        sc.expect_closed(sock)


def test_no_users_picks_noauth(noauth_proxy):
    for methods in ((sc.NO_AUTH,), (sc.USERPASS, sc.NO_AUTH), (0x01, 0x03, sc.NO_AUTH)):
        sock, method = negotiate(noauth_proxy.addr, *methods)
        with sock:
            assert method == b"\x05\x00", f"offered {methods}: {method.hex(' ')}"


def test_only_unknown_methods_are_refused(noauth_proxy, auth_proxy):
    for proxy in (noauth_proxy, auth_proxy):
        sock, method = negotiate(proxy.addr, 0x01, 0x03, 0x80)
        with sock:
            assert method == b"\x05\xff"
            sc.expect_closed(sock)


# ---- RFC 1929 ---------------------------------------------------------------

def test_login_success(auth_proxy):
    assert_login_ok_and_connect(auth_proxy.addr, USER, PASSWORD)


@pytest.mark.parametrize("user,password", [
    (USER, "not-" + PASSWORD),
    ("mallory", PASSWORD),
    (USER, ""),
    ("", PASSWORD),
    (USER + "X", PASSWORD),          # prefix of a configured user must not match
    (USER[:-1], PASSWORD),
    (USER, PASSWORD + "X"),
    (USER, PASSWORD[:-1]),
    (USER.upper(), PASSWORD),
    (PASSWORD, USER),
], ids=["wrong-password", "unknown-user", "empty-password", "empty-user", "user-longer",
        "user-shorter", "password-longer", "password-shorter", "user-case", "swapped"])
def test_login_failure_status_then_close(auth_proxy, user, password):
    assert_login_refused(auth_proxy.addr, user, password)


def test_user_prefix_does_not_match(make_proxy):
    """Configured 'userX': 'user' (a prefix) is refused; and vice versa."""
    p1 = make_proxy("--user", "userX:pw")
    assert_login_refused(p1.addr, "user", "pw")
    assert_login_ok_and_connect(p1.addr, "userX", "pw")
    p2 = make_proxy("--user", "user:pw")
    assert_login_refused(p2.addr, "userX", "pw")
    assert_login_ok_and_connect(p2.addr, "user", "pw")


def test_several_users(make_proxy):
    proxy = make_proxy("--user", "u1:p1", "--user", "u2:p2")
    assert_login_ok_and_connect(proxy.addr, "u1", "p1")
    assert_login_ok_and_connect(proxy.addr, "u2", "p2")
    assert_login_refused(proxy.addr, "u1", "p2")
    assert_login_refused(proxy.addr, "u2", "p1")


def test_user_option_splits_at_first_colon(make_proxy):
    proxy = make_proxy("--user", "carol:pa:ss:word")
    assert_login_ok_and_connect(proxy.addr, "carol", "pa:ss:word")
    assert_login_refused(proxy.addr, "carol:pa", "ss:word")


def test_255_byte_username_and_password(make_proxy):
    user = "u" * 254 + "Z"
    password = "p:" * 127 + "!"
    assert len(user) == 255 and len(password) == 255
    proxy = make_proxy("--user", f"{user}:{password}")
    assert_login_ok_and_connect(proxy.addr, user, password)
    assert_login_refused(proxy.addr, user[:-1] + "Y", password)
    assert_login_refused(proxy.addr, user, password[:-1] + "?")


@pytest.mark.parametrize("spec,user,password", [
    (":", "", ""),
    (":secret", "", "secret"),
    ("nopass:", "nopass", ""),
], ids=["both-empty", "empty-user", "empty-password"])
def test_zero_length_credentials_when_configured(make_proxy, spec, user, password):
    try:
        proxy = make_proxy("--user", spec)
    except ProxyStartError as exc:
        stderr = str(exc).split("stderr:\n", 1)[-1].strip().splitlines()
        if "exit code" not in str(exc) or not any("--user" in line for line in stderr):
            raise  # not a refusal of the option: a real start-up failure
        pytest.skip(f"the CLI does not accept --user {spec!r}: {stderr[0] if stderr else exc}")
    assert_login_ok_and_connect(proxy.addr, user, password)
    assert_login_refused(proxy.addr, user + "x", password)
    assert_login_refused(proxy.addr, user, password + "x")


# ---- CONNECT before / instead of auth --------------------------------------

def test_connect_instead_of_auth_is_rejected(auth_proxy):
    with EchoServer() as target:
        sock, method = negotiate(auth_proxy.addr, sc.USERPASS)
        with sock:
            assert method == b"\x05\x02"
            sock.sendall(sc.request("127.0.0.1", target.port))
            status = sc.recv_exact(sock, 2)
            assert status[0] == 0x01 and status[1] != 0x00, \
                f"expected an RFC 1929 failure status, got {status.hex(' ')}"
            sc.expect_closed(sock)
        assert target.peers == [], "the proxy connected to the target without auth"


def test_pipelined_connect_without_auth_is_rejected(auth_proxy):
    """Greeting offering 0x02 immediately followed by a CONNECT (no auth)."""
    with EchoServer() as target:
        with sc.connect(auth_proxy.addr) as sock:
            sock.sendall(sc.greeting(sc.USERPASS) + sc.request("127.0.0.1", target.port) + b"data")
            assert sc.read_method(sock) == b"\x05\x02"
            status = sc.recv_exact(sock, 2)
            assert status[0] == 0x01 and status[1] != 0x00, status.hex(" ")
            sc.expect_closed(sock)
        assert target.peers == []


def test_noauth_greeting_then_connect_is_refused_with_users(auth_proxy):
    """Offering only 0x00 and sending a CONNECT right behind it: 05 FF, close,
    and no outbound connection."""
    with EchoServer() as target:
        with sc.connect(auth_proxy.addr) as sock:
            sock.sendall(sc.greeting(sc.NO_AUTH) + sc.request("127.0.0.1", target.port))
            assert sc.read_method(sock) == b"\x05\xff"
            sc.expect_closed(sock)
        assert target.peers == []


@pytest.mark.parametrize("version", [0x00, 0x02, 0x05])
def test_bad_subnegotiation_version_is_rejected(auth_proxy, version):
    sock, method = negotiate(auth_proxy.addr, sc.USERPASS)
    with sock:
        assert method == b"\x05\x02"
        sock.sendall(bytes([version]) + sc.userpass(USER, PASSWORD)[1:])
        status = sc.recv_exact(sock, 2)
        assert status[1] != 0x00, status.hex(" ")
        sc.expect_closed(sock)
