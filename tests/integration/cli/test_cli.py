"""Command line: --version, --help, bad arguments, listen addresses,
duration forms, workers."""

from __future__ import annotations

import re
import socket

import pytest

from support import socksclient as sc
from support.proxy import DEFAULT_ARGS, Endpoint, READY_RE, implementation, run_cli

pytestmark = pytest.mark.skipif(implementation() != "cleversocks",
                                reason="CleverSocks command line")


def text(r) -> tuple[str, str]:
    return r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def test_version():
    r = run_cli(["--version"])
    out, err = text(r)
    assert r.returncode == 0, err
    assert re.fullmatch(r"cleversocks \S+\n?", out), f"stdout={out!r} stderr={err!r}"


def test_help():
    r = run_cli(["--help"])
    out, err = text(r)
    assert r.returncode == 0, err
    for opt in ("--version", "--help", "--user", "--handshake-timeout", "--connect-timeout",
                "--idle-timeout", "--drain-timeout", "--dns-server", "--log-format", "-q", "-v", "-w"):
        assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", out), f"--help does not mention {opt}"


@pytest.mark.parametrize("args", [
    ["not-an-address"],
    ["127.0.0.1"],                 # no port
    ["127.0.0.1:"],
    ["127.0.0.1:65536"],
    ["127.0.0.1:-1"],
    ["127.0.0.1:http"],
    ["256.0.0.1:1080"],
    ["::1:1080"],                  # IPv6 without brackets
    ["[::1:1080"],
    ["[::1]"],
    ["[nothex::1]:1080"],
    ["localhost:1080"],            # listen takes addresses, not names
    ["127.0.0.1:0", "garbage"],
], ids=lambda a: " ".join(a))
def test_unparsable_listen_address(args):
    r = run_cli([*DEFAULT_ARGS, *args])
    out, err = text(r)
    assert r.returncode != 0, f"accepted {args}: {err}"
    assert err.strip(), "no error message on stderr"
    assert not READY_RE.search(err)


@pytest.mark.parametrize("args", [
    ["--bogus-option"],
    ["--handshake-timeout", "abc"],
    ["--handshake-timeout", "-1"],
    ["--connect-timeout", "5parsecs"],
    ["--idle-timeout", ""],
    ["--drain-timeout", "1h30"],
    ["--log-format", "xml"],
    ["--dns-server", "not-an-ip:53"],
    ["--dns-server", "127.0.0.1:99999"],
    ["--user", "no-colon"],
    ["-w", "abc"],
], ids=lambda a: " ".join(a) or "empty")
def test_bad_option(args):
    r = run_cli([*DEFAULT_ARGS, *args, "127.0.0.1:0"])
    out, err = text(r)
    assert r.returncode != 0, f"accepted {args}: {err}"
    assert (err + out).strip(), "no error message"
    assert not READY_RE.search(err)


@pytest.mark.parametrize("opt", ["--user", "--handshake-timeout", "--dns-server"])
def test_option_missing_its_value(opt):
    r = run_cli([*DEFAULT_ARGS, "127.0.0.1:0", opt])
    out, err = text(r)
    assert r.returncode != 0, f"accepted a bare {opt}: {err}"
    assert (err + out).strip()


def test_options_before_listen_addresses_do_not_swallow_them(make_proxy, echo_server):
    """`cleversocks [OPTIONS] [LISTEN ...]`: a LISTEN after a repeatable
    option (--user, --dns-server) is a listen address, not another value of
    that option."""
    proxy = make_proxy("--user", "u1:p1", "--dns-server", "127.0.0.1:53", listen=["127.0.0.2:0"])
    assert proxy.endpoint.host == "127.0.0.2" and proxy.endpoint.port != 0
    sock, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", echo_server.port, "u1", "p1")
    sock.close()
    # "127.0.0.2:0" must not have become a user "127.0.0.2" with password "0"
    with sc.connect(proxy.addr) as s:
        s.sendall(sc.greeting(sc.USERPASS) + sc.userpass("127.0.0.2", "0"))
        assert sc.read_method(s) == b"\x05\x02"
        assert sc.read_auth_status(s)[1] != 0


def test_listen_address_in_use_fails():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        r = run_cli([*DEFAULT_ARGS, f"127.0.0.1:{taken.getsockname()[1]}"])
    out, err = text(r)
    assert r.returncode != 0, err
    assert err.strip()


def test_second_instance_on_the_same_port_fails(make_proxy):
    """SO_REUSEPORT must not let a second process join a port another
    cleversocks already serves (the two would split clients silently, each
    with its own users)."""
    first = make_proxy()
    r = run_cli([*DEFAULT_ARGS, str(first.endpoint)], timeout=5)
    out, err = text(r)
    assert r.returncode != 0, err
    assert err.strip()


def test_several_listen_addresses(make_proxy, echo_server):
    proxy = make_proxy(listen=["127.0.0.1:0", "[::1]:0", "127.0.0.2:0"])
    assert [ep.host for ep in proxy.endpoints] == ["127.0.0.1", "::1", "127.0.0.2"]
    assert all(ep.port != 0 for ep in proxy.endpoints)
    for ep in proxy.endpoints:
        sock, _ = sc.open_tunnel(ep.sockaddr, "127.0.0.1", echo_server.port)
        with sock:
            sc.echo_roundtrip(sock, f"via {ep}".encode())


def test_ipv6_listener_logged_with_brackets(make_proxy):
    proxy = make_proxy(listen=["[::1]:0"])
    assert re.search(rf"listening on \[::1\]:{proxy.endpoint.port}\b", proxy.log.text())


def test_default_listen_address_is_127_0_0_1_1080(netns, make_proxy, echo_server):
    """No LISTEN argument: 127.0.0.1:1080 (inside a fresh namespace, where
    the port is surely free)."""
    proxy = make_proxy(listen=[], prefix=netns.exec_prefix)
    assert proxy.endpoints == [Endpoint("127.0.0.1", 1080)]
    sock = netns.run_in(lambda: sc.connect(("127.0.0.1", 1080)))
    with sock:
        sock.sendall(sc.greeting(sc.NO_AUTH))
        assert sc.read_method(sock) == b"\x05\x00"


@pytest.mark.parametrize("opt,value", [
    ("--connect-timeout", "1.5"), ("--connect-timeout", "500ms"), ("--idle-timeout", "1m"),
    ("--idle-timeout", "2s"), ("--drain-timeout", "2"), ("--handshake-timeout", "10s"),
])
def test_duration_forms_accepted(make_proxy, echo_server, opt, value):
    proxy = make_proxy(opt, value)
    sock, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", echo_server.port)
    with sock:
        sc.echo_roundtrip(sock, b"duration")


@pytest.mark.parametrize("verbosity", ["-v", "-vv", "-vvv", "-q"])
def test_verbosity_flags(make_proxy, echo_server, verbosity):
    proxy = make_proxy(verbosity)
    sock, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", echo_server.port)
    with sock:
        sc.echo_roundtrip(sock, b"verbosity")
