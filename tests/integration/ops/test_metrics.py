"""GET /metrics: Prometheus text format that a real parser accepts, the
families docs/metrics.md documents, and exact counter values after a known
set of sessions."""

from __future__ import annotations

import re
import socket
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import security as sec
from support import socksclient as sc
from support.proxy import REPO_ROOT, run_cli
from support.servers import TCPServer, recv_all

DOC = REPO_ROOT / "docs" / "metrics.md"


def scrape(admin) -> dict[str, dict]:
    """{family name: {"type": ..., "samples": {(sample name, labels...): value}}}"""
    r = admin.get("/metrics")
    assert r.status == 200, r.text
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    out = {}
    for fam in text_string_to_metric_families(r.text):
        samples = {}
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = s.value
        out[fam.name] = {"type": fam.type, "samples": samples}
    return out


def value(m: dict, sample: str, **labels) -> float:
    fam = re.sub(r"(_total|_bucket|_count|_sum)$", "", sample)
    assert fam in m, f"no metric family {fam}"
    key = (sample, tuple(sorted(labels.items())))
    assert key in m[fam]["samples"], f"no series {sample}{labels}; have {sorted(m[fam]['samples'])}"
    return m[fam]["samples"][key]


def series(m: dict, sample: str) -> dict[tuple, float]:
    fam = re.sub(r"(_total|_bucket|_count|_sum)$", "", sample)
    return {k[1]: v for k, v in m[fam]["samples"].items() if k[0] == sample}


def documented() -> dict[str, str]:
    """name → type from the table in docs/metrics.md."""
    out = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"\|\s*`(cleversocks_[a-z_]+)`\s*\|\s*(counter|gauge|histogram)\s*\|", line)
        if m:
            out[m.group(1)] = m.group(2)
    assert out, "no metrics table in docs/metrics.md"
    return out


def family_name(doc_name: str, kind: str) -> str:
    # prometheus_client names counter families without the _total suffix
    return doc_name[: -len("_total")] if kind == "counter" and doc_name.endswith("_total") else doc_name


def test_scrape_parses_and_matches_the_documentation(ops):
    # a pool member (a closed local port) so the per-upstream families exist
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        member = f"socks5://127.0.0.1:{closed.getsockname()[1]}"
        p = ops({"proxy_pool": {"enabled": True, "members": [member]}})
        m = scrape(p.admin)
    doc = documented()
    for name, kind in doc.items():
        fam = family_name(name, kind)
        assert fam in m, f"documented metric {name} is not exported"
        assert m[fam]["type"] == kind, f"{name}: exported as {m[fam]['type']}, documented as {kind}"
    exported = {family_name(n, k) for n, k in doc.items()}
    undocumented = sorted(set(m) - exported)
    assert not undocumented, f"exported but not in docs/metrics.md: {undocumented}"
    for fam, data in m.items():
        assert fam.startswith("cleversocks_"), fam
        if data["type"] == "counter":
            assert all(name.endswith("_total") for name, _ in data["samples"]), fam
    assert value(m, "cleversocks_build_info", version=run_cli(["--version"]).stdout.decode().split()[1]) == 1
    assert abs(value(m, "cleversocks_start_time_seconds") - time.time()) < 60
    assert value(m, "cleversocks_ready") == 1
    assert value(m, "cleversocks_config_generation") == 1


# ---- exact values after a known set of sessions ---------------------------------

def reply_server(conn: socket.socket, peer) -> None:
    """Reads until EOF, then answers 2*n + 7 bytes (n = bytes read) and
    closes: 'up' and 'down' differ, so a swapped direction shows."""
    n = len(recv_all(conn, timeout=20))
    conn.sendall(b"d" * (2 * n + 7))
    conn.shutdown(socket.SHUT_WR)


def transfer(sock: socket.socket, n: int) -> None:
    sock.sendall(b"u" * n)
    sock.shutdown(socket.SHUT_WR)
    got = sc.read_until_closed(sock, timeout=20, limit=1 << 24)
    assert len(got) == 2 * n + 7


def exactly(got: dict, expected: dict, what: str) -> None:
    """Every series in ``expected`` has its value; any other series of the
    family (a label value added later, e.g. a new refusal reason) is 0."""
    want = {k: expected.get(k, 0) for k in got}
    missing = set(expected) - set(got)
    assert not missing, f"{what}: no series for {sorted(missing)}"
    assert got == want, f"{what}: {got} != {want}"


def hist_check(m, name, count):
    assert value(m, f"{name}_count") == count
    buckets = series(m, f"{name}_bucket")
    ordered = sorted(buckets.items(), key=lambda kv: float(dict(kv[0])["le"]))
    values = [v for _, v in ordered]
    assert values == sorted(values), f"{name}: buckets not cumulative {ordered}"
    assert dict(ordered[-1][0])["le"] == "+Inf" and values[-1] == count
    assert value(m, f"{name}_sum") >= 0


@pytest.mark.deadline(60)
def test_exact_counters_after_a_known_set_of_sessions(ops):
    user, password = "alice", "wonderland"
    deny_port_holder = socket.socket()
    deny_port_holder.bind(("127.0.0.1", 0))  # a port nobody listens on; the ACL refuses before dialling
    deny_port = deny_port_holder.getsockname()[1]
    rule_port_holder = socket.socket()
    rule_port_holder.bind(("127.0.0.1", 0))
    rule_port = rule_port_holder.getsockname()[1]
    with deny_port_holder, rule_port_holder, TCPServer(reply_server) as target:
        p = ops({"users": [{"name": user, "password": password}],
                 "limits": {"max_sessions_per_ip": 1},
                 "acl": {"rules": [{"name": "no-rule-port", "action": "deny", "ports": [rule_port]}]}},
                "--deny", f"127.0.0.1:{deny_port}")
        deny_rule = f"--deny 127.0.0.1:{deny_port}"
        # Every session from its own source address: the per-IP limit of 1
        # only bites where the test wants it (127.0.0.3).
        sources = (f"127.0.0.{i}" for i in range(10, 250))
        up_sizes = [1000, 20_000, 300_000]
        ok_clients, denied_clients, failed_clients = [], [], []

        # N = 3 + 1 successful CONNECTs with known byte counts
        for n in up_sizes:
            a = sec.socks5(p.addr, "127.0.0.1", target.port, user=user, password=password,
                           source=next(sources), keep=True)
            assert a.rep == sc.REP_SUCCEEDED
            with a.sock:
                transfer(a.sock, n)
            ok_clients.append((a.client, n))
        # M = 2 refused by the --deny rule, 1 by the file's rule
        for port in (deny_port, deny_port, rule_port):
            a = sec.socks5(p.addr, "127.0.0.1", port, user=user, password=password, source=next(sources))
            assert a.rep == sc.REP_NOT_ALLOWED
            denied_clients.append((a.client, port))
        # K = 3 failed logins (unknown user: no lockout reached)
        for _ in range(3):
            a = sec.socks5(p.addr, "127.0.0.1", target.port, user="mallory", password="x", source=next(sources))
            assert (a.stage, a.auth) == ("auth", b"\x01\x01")
            failed_clients.append(a.client)
        # a connection refused by a limit: 127.0.0.3 already has a session
        held = sec.socks5(p.addr, "127.0.0.1", target.port, user=user, password=password,
                          source="127.0.0.3", keep=True)
        assert held.rep == sc.REP_SUCCEEDED
        assert sec.refused_at_once(p.addr, source="127.0.0.3")
        with held.sock:
            transfer(held.sock, 4321)
        ok_clients.append((held.client, 4321))

        # every session has finished: its access-log line is written after
        # its counters
        for client, n in ok_clients:
            rec = sec.wait_access(p.proxy, client=sec.fmt_addr(client))
            assert (rec["result"], rec["up"], rec["down"]) == ("ok", str(n), str(2 * n + 7)), rec
        for client, port in denied_clients:
            rec = sec.wait_access(p.proxy, client=sec.fmt_addr(client))
            assert rec["result"] == "not_allowed"
            assert rec["rule"] == (deny_rule if port == deny_port else "no-rule-port")
        for client in failed_clients:
            assert sec.wait_access(p.proxy, client=sec.fmt_addr(client))["result"] == "auth_failed"

        m = scrape(p.admin)
        n_ok, n_denied, n_failed = len(ok_clients), len(denied_clients), len(failed_clients)
        up = sum(n for _, n in ok_clients)
        down = sum(2 * n + 7 for _, n in ok_clients)

        assert value(m, "cleversocks_connections_accepted_total") == n_ok + n_denied + n_failed + 1
        exactly({dict(k)["reason"]: v for k, v in series(m, "cleversocks_connections_rejected_total").items()},
                {"max_sessions": 0, "max_sessions_per_ip": 1, "max_sessions_per_user": 0, "connection_rate": 0},
                "connections_rejected_total")
        expected_hs = {(v, r): 0 for v in ("unknown", "socks4", "socks5") for r in ("ok", "error", "timeout")}
        expected_hs[("socks5", "ok")] = n_ok + n_denied
        expected_hs[("socks5", "error")] = n_failed
        exactly({(dict(k)["version"], dict(k)["result"]): v
                 for k, v in series(m, "cleversocks_handshakes_total").items()}, expected_hs, "handshakes_total")
        exactly({dict(k)["result"]: v for k, v in series(m, "cleversocks_auth_attempts_total").items()},
                {"success": n_ok + n_denied, "failure": n_failed, "throttled": 0}, "auth_attempts_total")
        exactly({dict(k)["rule"]: v for k, v in series(m, "cleversocks_acl_blocks_total").items()},
                {deny_rule: 2, "no-rule-port": 1, "default": 0, "builtin:loopback": 0}, "acl_blocks_total")
        exactly({dict(k)["code"]: v for k, v in series(m, "cleversocks_replies_total").items()},
                {"ok": n_ok, "general_failure": 0, "not_allowed": n_denied, "network_unreachable": 0,
                 "host_unreachable": 0, "refused": 0, "ttl_expired": 0, "command_not_supported": 0,
                 "address_type_not_supported": 0}, "replies_total")
        assert value(m, "cleversocks_relayed_bytes_total", direction="up") == up
        assert value(m, "cleversocks_relayed_bytes_total", direction="down") == down
        # splice relay (the default): pipes only while bytes are in flight,
        # reused once idle; the proxy runs as root, whose pipes are never limited
        assert 1 <= value(m, "cleversocks_relay_pipes_created_total") <= 2 * n_ok
        assert value(m, "cleversocks_relay_pipes_limited_total") == 0
        assert value(m, "cleversocks_relay_pipe_grow_refused_total") == 0
        assert series(m, "cleversocks_user_sessions_total") == {(("user", user),): n_ok + n_denied}
        assert value(m, "cleversocks_user_bytes_total", user=user, direction="up") == up
        assert value(m, "cleversocks_user_bytes_total", user=user, direction="down") == down
        hist_check(m, "cleversocks_session_duration_seconds", n_ok + n_denied + n_failed)
        hist_check(m, "cleversocks_connect_duration_seconds", n_ok)
        assert value(m, "cleversocks_session_exceptions_total") == 0
        assert value(m, "cleversocks_accept_errors_total") == 0
        assert value(m, "cleversocks_dns_lookups_total") == 0  # IP targets only
        assert value(m, "cleversocks_dns_failures_total") == 0
        assert value(m, "cleversocks_config_reloads_total", result="success") == 0
        assert value(m, "cleversocks_config_reloads_total", result="failure") == 0
        # The active-sessions gauge drops right after each access line:
        # bounded poll until it shows 0 (no event marks that instant).
        for _ in range(200):
            if value(scrape(p.admin), "cleversocks_sessions_active") == 0:
                break
        assert value(scrape(p.admin), "cleversocks_sessions_active") == 0


def test_reload_counters_and_generation(ops):
    p = ops()
    assert p.admin.reload().status == 200
    assert p.admin.reload().status == 200
    start = p.mark()
    p.config_path.write_text("workers: [\n")
    assert p.wait_refused("file change", start)[0] == 3  # inotify saw it first
    assert p.admin.reload().status == 422
    m = scrape(p.admin)
    assert value(m, "cleversocks_config_generation") == 3
    assert value(m, "cleversocks_config_reloads_total", result="success") == 2
    assert value(m, "cleversocks_config_reloads_total", result="failure") == 2


def test_acl_block_series_per_configured_rule(ops):
    """Each configured rule (and each built-in block) has its series from the
    start, at 0; rule names are the label values."""
    p = ops({"acl": {"rules": [{"name": "r-one", "action": "deny", "ports": [1]},
                               {"action": "allow", "ports": [2]}]}})
    m = scrape(p.admin)
    rules = {dict(k)["rule"] for k in series(m, "cleversocks_acl_blocks_total")}
    assert {"r-one", "rule 2", "default", "builtin:loopback", "builtin:private", "builtin:smtp",
            "builtin:metadata"} <= rules
