"""log.format: json — every line is one JSON object; access records carry
the documented fields with the values the client and target saw."""

from __future__ import annotations

import json
import re
import socket

import pytest

from support import socksclient as sc
from support.ops import rep_of, tunnel
from support.servers import EchoServer

ACCESS_FIELDS = {"ts", "level", "event", "session", "client", "user", "proto", "cmd", "target", "dialled",
                 "route", "result", "rep", "up", "down", "duration_ms"}
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def records(lines):
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    return out


def wait_access_json(proxy, client, timeout=10.0) -> dict:
    want = f"{client[0]}:{client[1]}"

    def match(line):
        try:
            rec = json.loads(line)
        except ValueError:
            return None
        return rec if rec.get("event") == "access" and rec.get("client") == want else None
    _, rec = proxy.log.wait_for(match, timeout)
    return rec


@pytest.mark.parametrize("how", ["file", "command_line"])
def test_every_line_is_json_and_access_records_have_the_fields(ops, how):
    with EchoServer() as target:
        config = {"users": [{"name": "alice", "password": "wonderland"}],
                  "acl": {"rules": [{"name": "no \"quotes\" port", "action": "deny", "ports": [1]}]}}
        if how == "file":
            config["log"] = {"format": "json"}
            p = ops(config)
        else:
            p = ops(config, "--log-format", "json")
        s = tunnel(p.addr, target.port, user="alice", password="wonderland")
        with s:
            client = s.getsockname()
            s.sendall(b"u" * 1000)
            assert sc.recv_exact(s, 1000) == b"u" * 1000
            s.sendall(b"v" * 234)
            s.shutdown(socket.SHUT_WR)
            assert sc.read_until_closed(s) == b"v" * 234
        rec = wait_access_json(p.proxy, client)
        assert set(rec) == ACCESS_FIELDS, set(rec) ^ ACCESS_FIELDS
        assert rec["level"] == "info"
        assert TS_RE.match(rec["ts"]), rec["ts"]
        assert isinstance(rec["session"], int)
        assert (rec["user"], rec["proto"], rec["cmd"]) == ("alice", "socks5", "connect")
        assert rec["target"] == rec["dialled"] == f"127.0.0.1:{target.port}"
        assert rec["route"] == "direct"
        assert (rec["result"], rec["rep"]) == ("ok", "0x00")
        assert (rec["up"], rec["down"]) == (1234, 1234)
        assert isinstance(rec["duration_ms"], float) and rec["duration_ms"] >= 0

        # a refusal names the rule (a name with quotes stays valid JSON)
        with sc.connect(p.addr) as d:
            client = d.getsockname()
            d.sendall(sc.greeting(sc.USERPASS))
            sc.read_method(d)
            d.sendall(sc.userpass("alice", "wonderland"))
            assert sc.read_auth_status(d) == b"\x01\x00"
            d.sendall(sc.request("127.0.0.1", 1))
            assert sc.read_reply(d).rep == sc.REP_NOT_ALLOWED
        rec = wait_access_json(p.proxy, client)
        assert set(rec) == ACCESS_FIELDS | {"rule"}
        assert (rec["rule"], rec["result"], rec["rep"]) == ('no "quotes" port', "not_allowed", "0x02")
        assert rec["dialled"] is None

        # a failed login: no user, no target
        with sc.connect(p.addr) as f:
            client = f.getsockname()
            f.sendall(sc.greeting(sc.USERPASS))
            sc.read_method(f)
            f.sendall(sc.userpass("alice", "wrong"))
            assert sc.read_auth_status(f) == b"\x01\x01"
        rec = wait_access_json(p.proxy, client)
        assert (rec["result"], rec["user"], rec["target"], rec["rep"]) == ("auth_failed", None, None, None)

        assert p.proxy.stop() == 0
        recs = records(p.proxy.log.snapshot())
        for r in recs:
            assert TS_RE.match(r["ts"]) and r["level"] in ("trace", "debug", "info", "warning", "error", "critical")
            assert ("msg" in r) != ("event" in r), r
        msgs = [r["msg"] for r in recs if "msg" in r]
        assert any(m.startswith("listening on 127.0.0.1:") for m in msgs)
        assert any(m.startswith("admin API at http://") for m in msgs)
        assert any(m.startswith("ready: ") for m in msgs)
        assert msgs[-1] == "stopped"


def test_json_log_with_reload_errors(ops):
    """Multi-line operator messages (reload errors) are JSON lines too."""
    p = ops({"log": {"format": "json"}})
    start = p.mark()
    p.config_path.write_text("log:\n  format: json\ntimeouts:\n  conect: 1s\n")
    p.wait_refused("file change", start)
    r = p.admin.reload()
    assert r.status == 422
    assert p.proxy.stop() == 0
    recs = records(p.proxy.log.snapshot())
    errors = [r["msg"] for r in recs if r["level"] == "error"]
    assert f"  {p.config_path}:4:3: timeouts.conect: unknown key (did you mean 'connect'?)" in errors


def test_access_log_can_be_turned_off(ops):
    with EchoServer() as target:
        p = ops({"log": {"access_log": False}})
        with tunnel(p.addr, target.port) as s:
            sc.echo_roundtrip(s, b"x")
        # a refused target (nothing listens on port 1); neither session is logged
        assert rep_of(p.addr, "127.0.0.1", 1) == sc.REP_REFUSED
        assert p.proxy.stop() == 0
        assert not [line for line in p.proxy.log.snapshot() if "access session=" in line]
