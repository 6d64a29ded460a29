"""The admin HTTP API: /health, /ready, /api/v1/status, POST /api/v1/reload,
404 / 405 / 400, bounded headers and bodies, and --no-admin."""

from __future__ import annotations

import re
import socket

import pytest

from support import socksclient as sc
from support.admin import ADMIN_RE
from support.ops import OPS_DEFAULT_ARGS, tunnel
from support.proxy import ProxyStartError, run_cli
from support.routing import connect_from
from support.servers import EchoServer


def version() -> str:
    out = run_cli(["--version"]).stdout.decode().strip()
    m = re.fullmatch(r"cleversocks (\S+)", out)
    assert m, out
    return m.group(1)


def test_health_and_ready(ops):
    p = ops()
    r = p.admin.get("/health")
    assert (r.status, r.text) == (200, "ok\n")
    assert r.headers["cache-control"] == "no-store"
    r = p.admin.get("/ready")
    assert (r.status, r.text) == (200, "ready\n")
    # a query string does not change the route
    assert p.admin.get("/health?verbose=1").status == 200


def test_status_fields(ops, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("bob:builder\ncarol:secret\n")
    p = ops({"workers": 2, "users": [{"name": "alice", "password": "wonderland"}], "users_file": str(users),
             "acl": {"rules": [{"name": "a", "action": "allow", "ports": [1]},
                               {"name": "b", "action": "deny", "ports": [2]}]}},
            listen=("127.0.0.1:0", "[::1]:0"))
    r = p.admin.get("/api/v1/status")
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    st = r.json()
    assert st["version"] == version()
    assert isinstance(st["uptime_seconds"], int) and 0 <= st["uptime_seconds"] < 60
    assert st["ready"] is True
    assert st["config_generation"] == 1
    assert st["config_file"] == str(p.config_path)
    assert st["workers"] == 2
    assert st["listeners"] == [str(ep) for ep in p.proxy.endpoints]
    assert st["sessions_active"] == 0
    assert st["users"] == 3
    assert st["acl_rules"] == 2


def test_status_counts_active_sessions(ops):
    with EchoServer() as target:
        p = ops()
        socks = [tunnel(p.addr, target.port) for _ in range(3)]
        try:
            for s in socks:
                sc.echo_roundtrip(s, b"x")
            assert p.admin.status()["sessions_active"] == 3
        finally:
            for s in socks:
                s.close()


def test_reload_endpoint(ops):
    p = ops()
    r = p.admin.post("/api/v1/reload")
    assert r.status == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"result": "ok", "generation": 2, "errors": []}
    assert p.admin.reload().json()["generation"] == 3
    assert p.admin.status()["config_generation"] == 3


def test_reload_endpoint_refuses_a_broken_file(ops):
    p = ops()
    p.config_path.write_text("timeouts:\n  conect: 5s\n  idle: 5 minutes\n")
    r = p.admin.reload()
    assert r.status == 422, r.text
    body = r.json()
    f = str(p.config_path)
    assert body == {"result": "rejected", "generation": 1, "errors": [
        f"{f}:2:3: timeouts.conect: unknown key (did you mean 'connect'?)",
        f"{f}:3:9: timeouts.idle: expected a duration (10, 1.5, 500ms, 2s, 1m, 1h) (got '5 minutes')",
    ]}
    assert p.admin.status()["config_generation"] == 1
    assert p.admin.get("/ready").status == 200


@pytest.mark.parametrize("path", ["/", "/metric", "/metrics/", "/healthz", "/api/v1/statu", "/api/v1/status/x",
                                  "/api/v2/status", "/API/V1/STATUS", "/%2e%2e/etc/passwd"])
def test_unknown_paths_are_404(ops_shared, path):
    r = ops_shared.admin.get(path)
    assert (r.status, r.text) == (404, "not found\n")


@pytest.mark.parametrize("method,path", [
    ("POST", "/metrics"), ("POST", "/health"), ("PUT", "/ready"), ("DELETE", "/api/v1/status"),
    ("GET", "/api/v1/reload"), ("PUT", "/api/v1/reload"), ("PATCH", "/api/v1/status"),
])
def test_wrong_methods_are_405(ops_shared, method, path):
    r = ops_shared.admin.request(method, path)
    assert (r.status, r.text) == (405, "method not allowed\n")


def test_head_is_not_a_get(ops_shared):
    r = ops_shared.admin.request("HEAD", "/health")
    assert r.status == 405


def _status_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def test_oversized_header_gets_400_and_close(ops_shared):
    req = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n"
    data, closed = ops_shared.admin.raw(req)
    assert _status_line(data) == "HTTP/1.1 400 Bad Request", data[:200]
    assert b"\r\nConnection: close\r\n" in data
    assert closed, "the connection stayed open after the 400"
    assert ops_shared.admin.get("/health").status == 200  # still serving


def test_many_headers_over_the_limit_get_400(ops_shared):
    req = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 90) for i in range(120)) \
        + b"\r\n"
    data, closed = ops_shared.admin.raw(req)
    assert _status_line(data) == "HTTP/1.1 400 Bad Request", data[:200]
    assert closed


@pytest.mark.parametrize("declared_only", [False, True], ids=["body_sent", "length_declared"])
def test_oversized_body_gets_400_and_close(ops_shared, declared_only):
    body = b"" if declared_only else b"b" * 100_000
    req = b"POST /api/v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + body
    gen = ops_shared.admin.status()["config_generation"]
    data, closed = ops_shared.admin.raw(req)
    assert _status_line(data) == "HTTP/1.1 400 Bad Request", data[:200]
    assert closed
    # the oversized request did not reach the handler
    assert ops_shared.admin.status()["config_generation"] == gen


def test_body_within_bounds_is_accepted(ops_shared):
    gen = ops_shared.admin.status()["config_generation"]
    r = ops_shared.admin.post("/api/v1/reload", b"{}" + b" " * 60_000)
    assert r.status == 200
    assert r.json()["generation"] == gen + 1


def test_malformed_request_gets_400(ops_shared):
    data, closed = ops_shared.admin.raw(b"garbage\r\n\r\n")
    assert _status_line(data) == "HTTP/1.1 400 Bad Request"
    assert closed


def test_keep_alive_serves_several_requests(ops_shared):
    ep = ops_shared.admin.endpoint
    with socket.create_connection(ep.sockaddr, timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 2 + b"GET /ready HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        data = sc.read_until_closed(s, timeout=5)
    assert data.count(b"HTTP/1.1 200 OK") == 3, data


def test_no_admin_flag(make_proxy):
    """--no-admin: no admin listener at all — the admin port stays free, and
    the proxy starts even when that port is taken (it never binds it)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # taken, not listening
        port = holder.getsockname()[1]
        p = make_proxy("--no-admin", default_args=["--admin-listen", f"127.0.0.1:{port}"])
        assert not any(ADMIN_RE.search(line) for line in p.log.snapshot())
        # Control: without --no-admin the same start fails on the taken port.
        with pytest.raises(ProxyStartError, match=rf"cannot listen on 127\.0\.0\.1:{port} \(admin\)"):
            make_proxy(default_args=["--admin-listen", f"127.0.0.1:{port}"], start_timeout=5)


def test_admin_disabled_in_the_file(ops):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        p = ops({"admin": {"enabled": False}}, admin=False, default_args=["--admin-listen", f"127.0.0.1:{port}"])
        assert not any(ADMIN_RE.search(line) for line in p.log.snapshot())


def test_admin_on_ipv6(ops):
    p = ops({}, default_args=["--admin-listen", "[::1]:0"])
    assert p.admin.endpoint.host == "::1"
    assert p.admin.get("/health").status == 200


def test_admin_listen_from_the_file(ops):
    """admin.listen in the file is used when the command line does not set it."""
    p = ops({"admin": {"listen": "127.0.0.1:0"}}, default_args=[])
    assert p.admin.get("/health").status == 200


@pytest.fixture(scope="module")
def ops_shared(tmp_path_factory):
    """One proxy for the read-only protocol checks."""
    from support.admin import AdminClient, admin_endpoint
    from support.ops import OpsProxy, render
    from support.proxy import Proxy
    path = tmp_path_factory.mktemp("admin") / "config.yaml"
    path.write_text(render({}))
    p = Proxy(["-c", str(path)], default_args=OPS_DEFAULT_ARGS)
    try:
        yield OpsProxy(p, path, AdminClient(admin_endpoint(p)))
    finally:
        p.finish()


def _idle_admin_connection(p, source: str) -> socket.socket:
    """A keep-alive connection from ``source`` that made one request and now
    waits (a client polling /health on it)."""
    s = connect_from(p.admin.endpoint.sockaddr, source, timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    for _ in range(100):
        if data.endswith(b"ok\n"):
            break
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK"), data[:100]
    return s


def _closed_by_server(s: socket.socket) -> bool:
    s.settimeout(5)
    return s.recv(1) == b""


def test_idle_keep_alive_connections_do_not_lock_out_the_next_client(ops):
    """64 keep-alive connections that each made a request and now wait (16
    from each of four clients, the most one client may hold) fill the admin
    API's 64 slots: the next scrape is still answered, and the one that
    waited longest is closed."""
    p = ops()
    idle = []
    try:
        for i in range(64):
            idle.append(_idle_admin_connection(p, f"127.0.0.{2 + i % 4}"))
        assert p.admin.get("/health").status == 200
        assert _closed_by_server(idle[0]), "the longest-waiting idle connection was not the one closed"
        idle[-1].sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle[-1].recv(4096).startswith(b"HTTP/1.1 200 OK"), "a recent one was closed instead"
    finally:
        for s in idle:
            s.close()


def test_one_client_holds_at_most_16_admin_connections(ops):
    """Past 16 connections from one address, that client's own longest-waiting
    connection makes room: another client's older connection is untouched,
    and the client keeps its 16 most recent."""
    p = ops()
    other = _idle_admin_connection(p, "127.0.0.3")  # waited longest of all
    mine = []
    try:
        for _ in range(20):
            mine.append(_idle_admin_connection(p, "127.0.0.2"))
        for i, s in enumerate(mine[:4]):
            assert _closed_by_server(s), f"connection {i} of 20 from one client is still open"
        for i, s in enumerate(mine[4:], start=4):
            s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200 OK"), f"connection {i} of 20 was closed"
        other.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
        assert other.recv(4096).startswith(b"HTTP/1.1 200 OK"), "another client's connection was closed"
    finally:
        other.close()
        for s in mine:
            s.close()
