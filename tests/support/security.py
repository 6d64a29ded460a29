"""Helpers for the security tests (tests/integration/security): clients bound
to a chosen loopback source address, one-call SOCKS attempts that return the
reply code, "refused at once" detection, access-log parsing that understands
quoted values, and `cleversocks passwd`.

Everything binds port 0 and waits with bounded timeouts.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from dataclasses import dataclass

from . import socksclient as sc
from .proxy import DEFAULT_ARGS, REPO_ROOT, require_binary

# Access-log fields; values may be "quoted with \"escapes\"" (rule names
# such as "--deny 127.0.0.1" contain spaces).
_FIELD_QUOTED_RE = re.compile(r'\b([a-z_]+)=("(?:[^"\\]|\\.)*"|\S+)')


def defaults_without_rules() -> list[str]:
    """DEFAULT_ARGS minus its --allow/--deny rules: the harness' other
    defaults (e.g. a free admin port) stay, the loopback allows go, so the
    built-in blocks are in force and each test states its own rules in the
    order it needs (first match wins)."""
    out: list[str] = []
    args = list(DEFAULT_ARGS)
    i = 0
    while i < len(args):
        if args[i] in ("--allow", "--deny") and i + 1 < len(args):
            i += 2
            continue
        if args[i].startswith(("--allow=", "--deny=")):
            i += 1
            continue
        out.append(args[i])
        i += 1
    return out


def access_fields(line: str) -> dict[str, str]:
    """key=value fields of a text access-log line, quoted values unquoted."""
    out = {}
    for key, value in _FIELD_QUOTED_RE.findall(line):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        out[key] = value
    return out


def wait_access(proxy, timeout: float = 10.0, **expected: str) -> dict[str, str]:
    """The first access-log line whose fields include ``expected`` (quoted
    values compared unquoted)."""
    def match(line: str):
        if "access session=" not in line:
            return None
        fields = access_fields(line)
        if all(fields.get(k) == v for k, v in expected.items()):
            return fields
        return None
    _, fields = proxy.log.wait_for(match, timeout)
    return fields


def fmt_addr(addr) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---- clients ------------------------------------------------------------------

def connect_from(proxy_addr, source: str | None = None, timeout: float = sc.DEFAULT_TIMEOUT,
                 sock: socket.socket | None = None) -> socket.socket:
    """A TCP connection to the proxy, from ``source`` (e.g. "127.0.0.2")
    when given.  ``sock`` is a pre-made socket (e.g. one living in a netns)."""
    host = proxy_addr[0]
    if sock is None:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if source is not None:
            sock.bind((source, 0))
        sock.connect(tuple(proxy_addr))
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass
class Attempt:
    """What a SOCKS5 attempt saw. ``stage`` is where it ended:
    "closed" (no bytes at all), "method", "auth", "reply"."""
    stage: str
    method: bytes = b""
    auth: bytes = b""
    reply: sc.Reply5 | None = None
    sock: socket.socket | None = None
    client: tuple | None = None

    @property
    def rep(self) -> int | None:
        return self.reply.rep if self.reply else None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def socks5(proxy_addr, host, port: int, *, user=None, password=None, source: str | None = None,
           keep: bool = False, timeout: float = sc.DEFAULT_TIMEOUT,
           sock: socket.socket | None = None, cmd: int = sc.CMD_CONNECT) -> Attempt:
    """Greeting (+ RFC 1929) + request; never raises for a refusal.  With
    ``keep`` the socket stays open in the result (for tunnels)."""
    s = connect_from(proxy_addr, source, timeout, sock)
    res = Attempt(stage="closed", sock=s, client=s.getsockname())
    try:
        s.sendall(sc.greeting(sc.NO_AUTH if user is None else sc.USERPASS))
        try:
            res.method = sc.read_method(s, timeout)
        except EOFError as exc:
            if exc.args and exc.args[0]:
                raise sc.ProtocolError(f"partial method selection {exc.args[0].hex(' ')}") from None
            return res
        res.stage = "method"
        if res.method[1] == sc.NO_ACCEPTABLE:
            return res
        if user is not None:
            s.sendall(sc.userpass(user, password))
            res.auth = sc.read_auth_status(s, timeout)
            res.stage = "auth"
            if res.auth != b"\x01\x00":
                return res
        s.sendall(sc.request(host, port, cmd))
        res.reply = sc.read_reply(s, timeout)
        res.stage = "reply"
        return res
    finally:
        if not keep or res.stage != "reply" or res.rep != sc.REP_SUCCEEDED:
            res.close()


def socks5_rep(proxy_addr, host, port: int, **kw) -> int:
    """The REP code of a CONNECT (asserting the handshake got that far)."""
    a = socks5(proxy_addr, host, port, **kw)
    if a.stage != "reply":
        raise AssertionError(f"CONNECT {host}:{port}: ended at stage {a.stage!r} "
                             f"(method {a.method.hex(' ')}, auth {a.auth.hex(' ')})")
    return a.rep


def socks4_cd(proxy_addr, host, port: int, userid: bytes = b"", source: str | None = None,
              timeout: float = sc.DEFAULT_TIMEOUT) -> int:
    """The CD code of a SOCKS4/4a CONNECT."""
    with connect_from(proxy_addr, source, timeout) as s:
        s.sendall(sc.request4(host, port, userid))
        return sc.read_reply4(s, timeout).cd


def refused_at_once(proxy_addr, source: str | None = None, timeout: float = sc.DEFAULT_TIMEOUT) -> bool:
    """True when the proxy accepts the TCP connection and closes it without
    sending a byte (a connection limit); False when it answers the greeting."""
    try:
        s = connect_from(proxy_addr, source, timeout)
    except ConnectionRefusedError:
        raise AssertionError("the proxy's listener refused the TCP connection") from None
    with s:
        try:
            s.sendall(sc.greeting(sc.NO_AUTH))
        except (BrokenPipeError, ConnectionResetError):
            return True
        data = _read_some(s, 2, timeout)
        if data == b"":
            return True
        if data[:2] == b"\x05\x00" or data[:2] == b"\x05\x02" or data[:2] == b"\x05\xff":
            return False
        raise sc.ProtocolError(f"unexpected bytes {data.hex(' ')}")


def _read_some(s: socket.socket, n: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    out = b""
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"neither an answer nor a close within {timeout}s")
        s.settimeout(left)
        try:
            chunk = s.recv(n - len(out))
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return out
        if not chunk:
            return out
        out += chunk
    return out


def login(proxy_addr, user, password, source: str | None = None,
          timeout: float = sc.DEFAULT_TIMEOUT) -> bytes:
    """RFC 1929 status bytes for one login attempt (the socket is closed)."""
    with connect_from(proxy_addr, source, timeout) as s:
        s.sendall(sc.greeting(sc.USERPASS))
        method = sc.read_method(s, timeout)
        if method != b"\x05\x02":
            raise sc.ProtocolError(f"method selection: expected 05 02, got {method.hex(' ')}")
        s.sendall(sc.userpass(user, password))
        return sc.read_auth_status(s, timeout)


# ---- cleversocks passwd ---------------------------------------------------------

ARGON2ID_RE = re.compile(r"^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")


def passwd(password: str | bytes, name: str | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Runs ``cleversocks passwd [NAME]`` with ``password`` + newline on stdin."""
    data = password.encode() if isinstance(password, str) else password
    args = [str(require_binary()), "passwd"] + ([name] if name is not None else [])
    return subprocess.run(args, input=data + b"\n", capture_output=True, timeout=timeout, cwd=REPO_ROOT)


def hash_password(password: str | bytes) -> str:
    r = passwd(password)
    if r.returncode != 0:
        raise AssertionError(f"cleversocks passwd failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    out = r.stdout.decode().strip()
    if not ARGON2ID_RE.match(out):
        raise AssertionError(f"cleversocks passwd printed {out!r}, not an argon2id hash")
    return out


def start_failure(exc: BaseException) -> tuple[int | None, str]:
    """(exit code, stderr) from a ProxyStartError's message."""
    text = str(exc)
    m = re.search(r"exit code (-?\d+)", text)
    err = text.split("stderr:\n", 1)[-1].split("\nstdout:\n", 1)[0]
    return (int(m.group(1)) if m else None), err
