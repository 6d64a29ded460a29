"""The per-session access-log line: one per session, key=value fields that
match what the client and the target saw."""

from __future__ import annotations

import json
import re
import socket

import pytest

from support import constants as C
from support import socksclient as sc
from support.proxy import ACCESS_RE, implementation
from support.servers import EchoServer

pytestmark = pytest.mark.skipif(implementation() != "cleversocks", reason="CleverSocks log format")

FIELDS = ("session", "client", "user", "proto", "cmd", "target", "dialled", "result", "rep",
          "up", "down", "duration_ms")


def fmt(addr) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def test_access_line_for_successful_socks5_session(make_proxy):
    proxy = make_proxy("--user", f"{C.AUTH_USER}:{C.AUTH_PASSWORD}")
    with EchoServer() as target:
        sock, reply = sc.open_tunnel(proxy.addr, "127.0.0.1", target.port, C.AUTH_USER, C.AUTH_PASSWORD)
        client = sock.getsockname()
        with sock:
            sock.sendall(b"u" * 1000)
            assert sc.recv_exact(sock, 1000) == b"u" * 1000
            sock.sendall(b"v" * 234)
            sock.shutdown(socket.SHUT_WR)
            assert sc.read_until_closed(sock) == b"v" * 234
        rec = proxy.wait_access(client=fmt(client))
    missing = [f for f in FIELDS if f not in rec]
    assert not missing, f"access line lacks {missing}: {rec}"
    assert rec["user"] == C.AUTH_USER
    assert rec["proto"] == "socks5"
    assert rec["cmd"] == "connect"
    assert rec["target"] == f"127.0.0.1:{target.port}"
    assert rec["dialled"] == f"127.0.0.1:{target.port}"
    assert rec["result"] == "ok"
    assert rec["rep"].lower() == "0x00"
    assert rec["up"] == "1234", rec
    assert rec["down"] == "1234", rec
    assert re.fullmatch(r"\d+(\.\d+)?", rec["duration_ms"]), rec["duration_ms"]


def test_access_line_domain_target_and_socks4(noauth_proxy, echo_server):
    sock, _ = sc.open_tunnel(noauth_proxy.addr, C.NAME_V4, echo_server.port)
    client = sock.getsockname()
    with sock:
        sc.echo_roundtrip(sock, b"12345")
    rec = noauth_proxy.wait_access(client=fmt(client))
    assert rec["target"] == f"{C.NAME_V4}:{echo_server.port}"
    assert rec["dialled"] == f"127.0.0.1:{echo_server.port}"
    assert rec["user"] == "-"
    assert (rec["up"], rec["down"]) == ("5", "5")

    sock, _ = sc.open_tunnel4(noauth_proxy.addr, "127.0.0.1", echo_server.port, b"ignored-userid")
    client = sock.getsockname()
    with sock:
        sc.echo_roundtrip(sock, b"abc")
    rec = noauth_proxy.wait_access(client=fmt(client))
    assert rec["proto"] == "socks4"
    assert rec["result"] == "ok"
    assert rec["user"] == "-"


def test_access_line_for_refused_target(noauth_proxy):
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        with sc.connect(noauth_proxy.addr) as sock:
            client = sock.getsockname()
            reply = sc.handshake5(sock, "127.0.0.1", port)
            assert reply.rep == sc.REP_REFUSED
    rec = noauth_proxy.wait_access(client=fmt(client))
    assert rec["result"] != "ok"
    assert rec["rep"].lower() == "0x05"
    assert rec["target"] == f"127.0.0.1:{port}"
    assert rec["up"] == "0" and rec["down"] == "0"


def test_one_access_line_per_session(make_proxy, echo_server):
    proxy = make_proxy()
    clients = []
    for i in range(5):
        sock, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", echo_server.port)
        clients.append(fmt(sock.getsockname()))
        with sock:
            sc.echo_roundtrip(sock, b"x")
    for c in clients:
        proxy.wait_access(client=c)
    assert proxy.stop() == 0
    counted = [r["client"] for r in proxy.access_records()]
    for c in clients:
        assert counted.count(c) == 1, f"{c}: {counted.count(c)} access lines"


def test_quiet_hides_access_lines(make_proxy, echo_server):
    proxy = make_proxy("-q")
    sock, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", echo_server.port)
    with sock:
        sc.echo_roundtrip(sock, b"quiet")
    # wait for the session to end on the proxy side: its stderr is complete
    # once the process has exited
    assert proxy.stop() == 0
    assert [line for line in proxy.log.snapshot() if ACCESS_RE.search(line) and "session=" in line] == []


def test_json_log_format(make_proxy, echo_server):
    proxy = make_proxy("--log-format", "json")
    sock, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", echo_server.port)
    with sock:
        sc.echo_roundtrip(sock, b"json")
    assert proxy.stop() == 0
    lines = [line for line in proxy.log.snapshot() if line.strip()]
    assert lines
    records = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON log line: {line!r}")
        assert isinstance(obj, dict), line
        records.append(obj)
    assert any("access" in json.dumps(r) for r in records), "no access record in JSON logs"
