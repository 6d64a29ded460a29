"""Configuration from the command line's point of view: --check-config
(exit 0 / exit 2 with "file:line:column: key.path: message" on stderr),
--print-config, and the precedence command line > environment > file >
defaults, end to end."""

from __future__ import annotations

import pytest
import yaml

from support import socksclient as sc
from support.proxy import REPO_ROOT, run_cli
from support.servers import EchoServer

from support.ops import rep_of, render

EXAMPLE = REPO_ROOT / "config.example.yaml"


def check(path, *args, env=None):
    r = run_cli(["--check-config", "-c", str(path), *args], env=env)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def printed(*args, env=None) -> dict:
    r = run_cli(["--print-config", *args], env=env)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return yaml.safe_load(r.stdout)


# ---- --check-config -----------------------------------------------------------

def test_check_config_accepts_the_shipped_example():
    code, out, err = check(EXAMPLE)
    assert (code, err) == (0, ""), err
    assert out == f"configuration OK: {EXAMPLE}\n"


def test_check_config_accepts_a_full_configuration(tmp_path):
    path = tmp_path / "full.yaml"
    path.write_text(render({
        "listen": ["127.0.0.1:0", {"address": "[::1]:0", "proxy_protocol": "v2"}],
        "workers": 2,
        "users": [{"name": "alice", "password": "wonderland", "groups": ["admins"]}],
        "acl": {"default": "deny", "rules": [
            {"name": "admins", "action": "allow", "users": ["@admins"], "dst": ["10.0.0.0/8", "*.corp.example"],
             "ports": [22, "8000-8999"], "commands": ["connect"]}]},
        "limits": {"max_sessions": 100, "rate_per_ip": 2.5},
        "timeouts": {"connect": "1500ms", "idle": "5m", "drain": 3},
        "log": {"format": "json", "level": "debug"},
        "forwarding": [{"match": "*.amazonaws.com:*", "upstream": "aws-exit-node.internal:1080",
                        "remote": "*.amazonaws.com:*"}],
    }))
    code, out, err = check(path)
    assert (code, err) == (0, ""), err
    assert out == f"configuration OK: {path}\n"


ERROR_CASES = {
    "unknown_key_did_you_mean": ("timeouts:\n  conect: 5s\n",
                                 "{f}:2:3: timeouts.conect: unknown key (did you mean 'connect'?)"),
    "unknown_top_level_key": ("timeout:\n  connect: 5s\n",
                              "{f}:1:1: timeout: unknown key (did you mean 'timeouts'?)"),
    "bad_duration": ("timeouts:\n  idle: 5 minutes\n",
                     "{f}:2:9: timeouts.idle: expected a duration (10, 1.5, 500ms, 2s, 1m, 1h) (got '5 minutes')"),
    "bad_enum": ("log:\n  level: loud\n",
                 "{f}:2:10: log.level: expected one of: error, warn, info, debug, trace (got 'loud')"),
    "bad_cidr": ("acl:\n  rules:\n    - action: deny\n      dst: [10.0.0.0/33]\n",
                 "{f}:4:13: acl.rules[0].dst[0]: invalid prefix length (got '10.0.0.0/33')"),
    "wrong_node_type": ("workers: [1, 2]\n", "{f}:1:10: workers: expected a single value"),
    "duplicate_key": ("log:\n  level: info\n  level: debug\n", "{f}:3:3: log.level: duplicate key"),
    "yaml_syntax": ("log:\n  level: [info\n", "{f}:3:1: end of sequence flow not found"),
    "missing_field_in_list_item": (
        "users:\n  - name: bob\n",
        "{f}:2:5: users[0].password: a user needs a password (plain text or an argon2id hash)"),
    "unknown_key_in_list_item": ("acl:\n  rules:\n    - name: x\n      acton: deny\n",
                                 "{f}:4:7: acl.rules[0].acton: unknown key (did you mean 'action'?)"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_check_config_reports_each_error_kind(tmp_path, case):
    text, expected = ERROR_CASES[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out, err = check(path)
    assert code == 2, (code, out, err)
    assert out == ""
    assert err.splitlines() == [expected.format(f=path), "cleversocks: 1 error(s) in the configuration"], err


def test_check_config_collects_every_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "listen:\n  - 127.0.0.1:0\n"           # 1-2
        "timeouts:\n  conect: 5s\n"             # 3-4
        "  idle: 5 minutes\n"                   # 5
        "log:\n  level: loud\n"                 # 6-7
        "acl:\n  rules:\n    - name: r1\n      action: deny\n      dst: [10.0.0.0/33]\n"  # 8-12
        "workers: [1, 2]\n"                     # 13
        "users:\n  - name: bob\n")              # 14-15
    code, _, err = check(path)
    assert code == 2
    f = str(path)
    assert err.splitlines() == [
        f"{f}:4:3: timeouts.conect: unknown key (did you mean 'connect'?)",
        f"{f}:5:9: timeouts.idle: expected a duration (10, 1.5, 500ms, 2s, 1m, 1h) (got '5 minutes')",
        f"{f}:7:10: log.level: expected one of: error, warn, info, debug, trace (got 'loud')",
        f"{f}:12:13: acl.rules[0].dst[0]: invalid prefix length (got '10.0.0.0/33')",
        f"{f}:13:10: workers: expected a single value",
        f"{f}:15:5: users[0].password: a user needs a password (plain text or an argon2id hash)",
        "cleversocks: 6 error(s) in the configuration",
    ], err


def test_check_config_reports_file_environment_and_command_line_errors_together(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("timeouts:\n  idle: forever\n")
    code, _, err = check(path, "--connect-timeout", "soon",
                         env={"CLEVERSOCKS_TIMEOUTS_CONECT": "3s"})
    assert code == 2
    lines = err.splitlines()
    assert lines[0] == f"{path}:2:9: timeouts.idle: expected a duration (10, 1.5, 500ms, 2s, 1m, 1h) (got 'forever')"
    assert lines[1] == ("environment: CLEVERSOCKS_TIMEOUTS_CONECT: unknown environment variable "
                        "(did you mean CLEVERSOCKS_TIMEOUTS_CONNECT?)")
    assert lines[2].startswith("command line: ") and lines[2].endswith(
        "expected a duration (10, 1.5, 500ms, 2s, 1m, 1h) (got 'soon')"), lines[2]
    assert lines[3:] == ["cleversocks: 3 error(s) in the configuration"]


def test_check_config_names_the_option_the_user_typed(tmp_path):
    """A bad value given as --connect-timeout is reported under that option
    (not under an option name that does not exist)."""
    path = tmp_path / "empty.yaml"
    path.write_text("")
    code, _, err = check(path, "--connect-timeout", "soon")
    assert code == 2
    assert err.splitlines()[0] == (
        "command line: --connect-timeout: expected a duration (10, 1.5, 500ms, 2s, 1m, 1h) (got 'soon')"), err


def test_check_config_reports_errors_found_when_compiling(tmp_path):
    """Problems only found when the configuration is compiled (an unreadable
    users file) also exit 2 and name the file."""
    path = tmp_path / "c.yaml"
    missing = tmp_path / "no-such-users.txt"
    path.write_text(render({"users_file": str(missing)}))
    code, out, err = check(path)
    assert code == 2, (out, err)
    assert f"users file '{missing}': cannot be read" in err
    assert err.splitlines()[-1] == "cleversocks: 1 error(s) in the configuration"


def test_check_config_unreadable_file(tmp_path):
    path = tmp_path / "absent.yaml"
    code, _, err = check(path)
    assert code == 2
    assert err.splitlines() == [f"{path}: cannot be read (No such file or directory)",
                                "cleversocks: 1 error(s) in the configuration"]


def test_check_config_refuses_a_directory(tmp_path):
    """std::ifstream reads a directory as an empty file, i.e. the defaults:
    with users that were configured in the file, that is an open proxy."""
    code, _, err = check(tmp_path)
    assert code == 2
    assert err.splitlines() == [f"{tmp_path}: cannot be read (Is a directory)",
                                "cleversocks: 1 error(s) in the configuration"]


def test_proxy_refuses_to_start_on_a_bad_file(tmp_path):
    """The server itself (not only --check-config) exits 2 with the same
    messages in its log."""
    path = tmp_path / "bad.yaml"
    path.write_text("timeouts:\n  conect: 5s\n")
    r = run_cli(["-c", str(path), "--admin-listen", "127.0.0.1:0", "127.0.0.1:0"], timeout=10)
    assert r.returncode == 2
    assert f"{path}:2:3: timeouts.conect: unknown key (did you mean 'connect'?)" in r.stderr.decode()


# ---- --print-config -----------------------------------------------------------

def test_print_config_of_the_example_is_the_defaults():
    assert printed("-c", str(EXAMPLE)) == printed()


def test_print_config_shows_the_file_and_round_trips(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(render({
        "workers": 3,
        "users": [{"name": "alice", "password": "wonderland"}],
        "acl": {"default": "deny", "rules": [{"name": "web", "action": "allow", "ports": [80, 443]}]},
        "timeouts": {"connect": "1500ms"},
        "limits": {"rate_per_ip": 2.5},
        "relay": {"buffer_size": "128KiB"},
        "forwarding": [{"match": "*.googleapis.com:*", "upstream": "gcp-exit-node.internal:1080",
                        "remote": "*.googleapis.com:*"}],
    }))
    r = run_cli(["--print-config", "-c", str(path)])
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load(r.stdout)
    assert doc["workers"] == 3
    assert doc["timeouts"]["connect"] == "1500ms"
    assert doc["timeouts"]["idle"] == "1h"  # defaults are printed too
    assert doc["acl"]["default"] == "deny"
    assert doc["acl"]["builtin_blocks"]["loopback"] is False
    assert doc["acl"]["rules"] == [{"name": "web", "action": "allow", "ports": [80, 443]}]
    assert doc["users"] == [{"name": "alice", "password": "wonderland"}]
    assert doc["relay"]["buffer_size"] == "128KiB"
    assert doc["forwarding"][0]["remote"] == "*.googleapis.com:*"
    # What --print-config prints is a configuration that loads to itself.
    again = tmp_path / "printed.yaml"
    again.write_bytes(r.stdout)
    r2 = run_cli(["--print-config", "-c", str(again)])
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout == r.stdout
    code, _, err = check(again)
    assert code == 0, err


def test_print_config_refuses_a_bad_configuration(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("log:\n  format: xml\n")
    r = run_cli(["--print-config", "-c", str(path)])
    assert r.returncode == 2
    assert r.stdout == b""
    assert f"{path}:2:11: log.format: expected one of: text, json (got 'xml')" in r.stderr.decode()


# ---- precedence ---------------------------------------------------------------

def test_precedence_command_line_over_environment_over_file_over_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(render({"timeouts": {"connect": "3s", "idle": "4s", "handshake": "5s"},
                            "limits": {"max_sessions": 10, "max_sessions_per_ip": 11}}))
    env = {"CLEVERSOCKS_TIMEOUTS_CONNECT": "6s", "CLEVERSOCKS_TIMEOUTS_IDLE": "7s",
           "CLEVERSOCKS_LIMITS_MAX_SESSIONS": "12"}

    file_only = printed("-c", str(path))
    assert file_only["timeouts"] == {"handshake": "5s", "connect": "3s", "idle": "4s", "drain": "30s"}

    with_env = printed("-c", str(path), env=env)
    assert with_env["timeouts"] == {"handshake": "5s", "connect": "6s", "idle": "7s", "drain": "30s"}
    assert with_env["limits"]["max_sessions"] == 12
    assert with_env["limits"]["max_sessions_per_ip"] == 11

    with_cli = printed("-c", str(path), "--connect-timeout", "8s", "--max-sessions", "13", env=env)
    assert with_cli["timeouts"] == {"handshake": "5s", "connect": "8s", "idle": "7s", "drain": "30s"}
    assert with_cli["limits"]["max_sessions"] == 13
    assert with_cli["limits"]["max_sessions_per_ip"] == 11


def test_environment_list_and_config_path(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(render({"listen": ["127.0.0.1:2001"], "workers": 3}))
    other = tmp_path / "other.yaml"
    other.write_text(render({"workers": 4}))
    env = {"CLEVERSOCKS_CONFIG": str(path), "CLEVERSOCKS_LISTEN": "127.0.0.1:2002,[::1]:2003"}
    doc = printed(env=env)
    assert doc["workers"] == 3                      # the file named by CLEVERSOCKS_CONFIG
    assert doc["listen"] == ["127.0.0.1:2002", "[::1]:2003"]
    assert printed("-c", str(other), env=env)["workers"] == 4  # -c wins over CLEVERSOCKS_CONFIG
    # positional listen addresses (command line) win over the environment
    assert printed("127.0.0.1:2004", env=env)["listen"] == ["127.0.0.1:2004"]


def test_precedence_observed_in_behaviour(ops):
    """acl.default: the file says deny, the environment says allow, the
    command line says deny — each level wins over the one below, as seen by
    a client."""
    with EchoServer() as target:
        p = ops({"acl": {"default": "deny"}})
        assert rep_of(p.addr, "127.0.0.1", target.port) == sc.REP_NOT_ALLOWED

        p = ops({"acl": {"default": "deny"}}, env={"CLEVERSOCKS_ACL_DEFAULT": "allow"})
        assert rep_of(p.addr, "127.0.0.1", target.port) == sc.REP_SUCCEEDED

        p = ops({"acl": {"default": "deny"}}, "--default-action", "deny", env={"CLEVERSOCKS_ACL_DEFAULT": "allow"})
        assert rep_of(p.addr, "127.0.0.1", target.port) == sc.REP_NOT_ALLOWED


def test_environment_and_command_line_survive_reload(ops):
    """The environment captured at start and the command line keep
    overriding the file after reloads (precedence holds on every load)."""
    with EchoServer() as target, EchoServer() as other:
        p = ops({"acl": {"default": "deny"}}, "--deny", f"127.0.0.1:{other.port}",
                env={"CLEVERSOCKS_ACL_DEFAULT": "allow"})
        assert rep_of(p.addr, "127.0.0.1", target.port) == sc.REP_SUCCEEDED
        assert rep_of(p.addr, "127.0.0.1", other.port) == sc.REP_NOT_ALLOWED
        # the file now allows the other port explicitly: the command-line
        # rule still comes first
        p.write({"acl": {"default": "deny", "rules": [{"name": "other", "action": "allow",
                                                        "ports": [other.port]}]}})
        r = p.admin.reload()
        assert r.status == 200, r.text
        assert r.json()["generation"] >= 2
        assert rep_of(p.addr, "127.0.0.1", target.port) == sc.REP_SUCCEEDED
        assert rep_of(p.addr, "127.0.0.1", other.port) == sc.REP_NOT_ALLOWED
        assert p.admin.status()["acl_rules"] == 2
