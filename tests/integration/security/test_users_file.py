"""`cleversocks passwd` and --users-file: argon2id hashes and plain
passwords side by side, wrong passwords and unknown users refused, and file
errors stopping start-up with FILE:LINE; a users file that is a directory
or names no user never turns authentication off."""

from __future__ import annotations

import subprocess

import pytest

from support import socksclient as sc
from support import security as sec
from support.proxy import ProxyStartError, require_binary, run_cli

LOOPBACK = ("--allow", "127.0.0.0/8", "--allow", "::1")
OK = b"\x01\x00"


@pytest.fixture(scope="module")
def hashes():
    """argon2id hashes made once per module (each takes ~0.1 s)."""
    return {pw: sec.hash_password(pw) for pw in ("alice-pw", "")}


# ---- cleversocks passwd ---------------------------------------------------------

def test_passwd_prints_an_argon2id_hash():
    r = sec.passwd("s3cret")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode().strip()
    assert sec.ARGON2ID_RE.match(out), out
    assert "s3cret" not in r.stdout.decode() + r.stderr.decode()
    again = sec.passwd("s3cret").stdout.decode().strip()
    assert again != out, "the same password hashed twice must get different salts"


def test_passwd_with_name_prints_a_users_file_line():
    r = sec.passwd("pw:with:colons", name="carol")
    assert r.returncode == 0, r.stderr
    line = r.stdout.decode().strip()
    name, _, hashed = line.partition(":")
    assert name == "carol" and sec.ARGON2ID_RE.match(hashed), line


def test_passwd_without_input_fails():
    r = subprocess.run([str(require_binary()), "passwd"], input=b"", capture_output=True, timeout=30)
    assert r.returncode != 0, r.stdout
    assert r.stdout == b""


# ---- a users file with hashed and plain users ----------------------------------------

def write_users(tmp_path, text: str, name: str = "users.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_users_file_hashed_and_plain(bare_proxy, tmp_path, hashes, echo_server):
    path = write_users(tmp_path, (
        "# CleverSocks users\n"
        "\n"
        f"alice:{hashes['alice-pw']}\n"
        "   # an indented comment\n"
        "bob:plain:text:pw\n"
        f"nopass:{hashes['']}\n"))
    p = bare_proxy("--users-file", str(path), *LOOPBACK)
    # Plain-text passwords are accepted with a warning.
    assert any("plain" in line.lower() and "warn" in line.lower() for line in p.log.snapshot()), p.log.text()
    for user, password in (("alice", "alice-pw"), ("bob", "plain:text:pw"), ("nopass", "")):
        a = sec.socks5(p.addr, "127.0.0.1", echo_server.port, user=user, password=password, keep=True)
        try:
            assert a.auth == OK, f"{user}: {a.auth.hex()}"
            assert a.rep == sc.REP_SUCCEEDED
            sc.echo_roundtrip(a.sock, user.encode())
        finally:
            a.close()
        rec = sec.wait_access(p, client=sec.fmt_addr(a.client))
        assert rec["user"] == user, rec
    for user, password in (("alice", "wrong"), ("alice", "alice-pw "), ("alice", "ALICE-PW"),
                           ("bob", "plain"), ("bob", "plain:text:pwX"), ("nopass", "x"),
                           ("mallory", "alice-pw"), ("# CleverSocks users", ""), ("Alice", "alice-pw")):
        status = sec.login(p.addr, user, password)
        assert status[0] == 0x01 and status[1] != 0x00, f"{user!r}/{password!r}: {status.hex()}"
    # Authentication is required: "no auth" is not offered.
    with sc.connect(p.addr) as s:
        s.sendall(sc.greeting(sc.NO_AUTH))
        assert sc.read_method(s) == b"\x05\xff"


def test_users_file_merges_with_user_option(bare_proxy, tmp_path, hashes):
    path = write_users(tmp_path, f"alice:{hashes['alice-pw']}\n")
    p = bare_proxy("--users-file", str(path), "--user", "dave:dave-pw", *LOOPBACK)
    assert sec.login(p.addr, "alice", "alice-pw") == OK
    assert sec.login(p.addr, "dave", "dave-pw") == OK


def test_users_file_crlf_lines(bare_proxy, tmp_path, hashes):
    path = write_users(tmp_path, f"alice:{hashes['alice-pw']}\r\nbob:bob-pw\r\n")
    p = bare_proxy("--users-file", str(path), *LOOPBACK)
    assert sec.login(p.addr, "alice", "alice-pw") == OK
    assert sec.login(p.addr, "bob", "bob-pw") == OK, "CR is not part of the password"


def test_cached_verification_still_checks_the_password(bare_proxy, tmp_path, hashes):
    """Successful argon2 checks are cached; the cache must not turn into a
    name-only check."""
    path = write_users(tmp_path, f"alice:{hashes['alice-pw']}\n")
    p = bare_proxy("--users-file", str(path), "--auth-lockout-after", "0", "-w", "1", *LOOPBACK)
    for _ in range(3):
        assert sec.login(p.addr, "alice", "alice-pw") == OK
    for wrong in ("alice-p", "alice-pwX", "", "alice-pw\x00"):
        assert sec.login(p.addr, "alice", wrong) != OK, repr(wrong)
    assert sec.login(p.addr, "alice", "alice-pw") == OK


# ---- file errors -------------------------------------------------------------------

def start_fails(bare_proxy, *args) -> str:
    with pytest.raises(ProxyStartError) as exc:
        bare_proxy(*args)
    code, err = sec.start_failure(exc.value)
    assert code is not None and code != 0, f"expected an exit, got: {exc.value}"
    return err


@pytest.mark.parametrize("text,bad_line", [
    ("alice:pw\nno-colon-here\n", 2),
    ("# c\n\n:empty-name\n", 3),
    ("alice:pw\nbob:pw\n" + "carol:" + "p" * 256 + "\n", 3),
    ("u" * 256 + ":pw\n", 1),
], ids=["no-colon", "empty-name", "password-too-long", "name-too-long"])
def test_users_file_error_names_file_and_line(bare_proxy, tmp_path, text, bad_line):
    path = write_users(tmp_path, text)
    err = start_fails(bare_proxy, "--users-file", str(path))
    assert f"{path}:{bad_line}" in err, err


def test_users_file_reports_every_bad_line(bare_proxy, tmp_path):
    path = write_users(tmp_path, "ok:pw\nbad1\nok2:pw\nbad2\n")
    err = start_fails(bare_proxy, "--users-file", str(path))
    assert f"{path}:2" in err and f"{path}:4" in err, err


def test_users_file_missing(bare_proxy, tmp_path):
    path = tmp_path / "does-not-exist"
    err = start_fails(bare_proxy, "--users-file", str(path))
    assert str(path) in err, err


def test_users_file_that_is_a_directory_stops_start_up(bare_proxy, tmp_path):
    """open(2) succeeds on a directory and reads nothing: it must not load as
    an empty users file (no users: no authentication)."""
    path = tmp_path / "users.d"
    path.mkdir()
    err = start_fails(bare_proxy, "--users-file", str(path))
    assert f"users file '{path}': cannot be read (Is a directory)" in err, err


@pytest.mark.parametrize("text", ["", "# nobody yet\n\n"], ids=["empty", "comments-only"])
def test_users_file_naming_no_user_stops_start_up(bare_proxy, tmp_path, text):
    """A users file asks for authentication; one that names nobody would run
    an open proxy instead, which is almost certainly a mistake."""
    path = write_users(tmp_path, text)
    err = start_fails(bare_proxy, "--users-file", str(path))
    assert f"users file '{path}' names no user: refusing to run without authentication" in err, err


def test_empty_users_file_with_other_users_warns(bare_proxy, tmp_path):
    """Users given elsewhere keep authentication on: an empty users file is
    taken, with a warning."""
    path = write_users(tmp_path, "")
    p = bare_proxy("--users-file", str(path), "--user", "dave:dave-pw", *LOOPBACK)
    assert any("warn" in line and f"users file '{path}' names no user" in line for line in p.log.snapshot()), \
        p.log.text()
    assert sec.login(p.addr, "dave", "dave-pw") == OK
    with sc.connect(p.addr) as s:
        s.sendall(sc.greeting(sc.NO_AUTH))
        assert sc.read_method(s) == b"\x05\xff"


def test_users_file_malformed_hash_is_an_error(bare_proxy, tmp_path, hashes):
    """A line whose secret starts like an argon2 hash but is not one can
    never log in; a typo there should stop start-up like any other."""
    truncated = hashes["alice-pw"][:40]
    path = write_users(tmp_path, f"alice:{truncated}\n")
    err = start_fails(bare_proxy, "--users-file", str(path))
    assert f"{path}:1" in err, err


def test_bad_user_option_stops_start_up():
    r = run_cli(["--user", "no-colon", "127.0.0.1:0"])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert b"no-colon" in r.stderr
