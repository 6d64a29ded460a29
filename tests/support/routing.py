"""Helpers for the routing tests (tests/integration/routing): configuration
files for proxies started with ``-c``, one-call SOCKS sessions (fast enough
for 1,000-session distributions), the pool's view through the admin API and
/metrics, scripted (malicious) upstreams, Dante as a foreign upstream, and
sockets inside a network namespace.

Every proxy still gets the harness' DEFAULT_ARGS (``--allow 127.0.0.0/8
--allow ::1``, a free admin port): each hop of a chain dials loopback.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from . import socksclient as sc
from .admin import AdminClient
from .proxy import Endpoint, LogFollower
from .servers import TCPServer

FORWARD_RE = re.compile(r"port forward on (\[[0-9A-Fa-f:.]+\]|\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5}) to ")
BACK_IN_RE = re.compile(r"upstream (\S+) passed its health check: back in rotation")
EJECTED_RE = re.compile(r"upstream (\S+) failed its health check \(.*\): ejected")
RELOADED_RE = re.compile(r"configuration reloaded \(([^)]+)\): generation (\d+)")
_QUOTED_FIELD_RE = re.compile(r'\b([a-z_]+)=("(?:[^"\\]|\\.)*"|\S+)')


# Names the routing tests' "far" DNS server knows (tests/integration/routing
# conftest.py); the "near" one knows none.
FAR_NAME = "far.test"          # -> 127.0.0.1
FAR_NAME6 = "far6.test"        # -> ::1


# Sockets that hold closed_port()'s ports until the test process ends.
_reserved: list[socket.socket] = []


def closed_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on: bound by a socket that never listens (a SYN
    to it gets RST) and stays open, so no later bind to port 0 (a proxy's
    admin API, say) can be given it. Bound-then-closed ports were: a test
    once found the proxy's own admin API on its "closed" port."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    _reserved.append(s)
    return s.getsockname()[1]


# ---- configuration ------------------------------------------------------------

def render(config) -> str:
    return config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)


def write_config(path: Path, config) -> Path:
    path.write_text(render(config))
    return path


def socks5_url(ep, user: str | None = None, password: str | None = None, scheme: str = "socks5") -> str:
    """``socks5://[user:pass@]host:port`` for an Endpoint, a Proxy or a server."""
    ep = getattr(ep, "endpoint", ep)
    creds = f"{user}:{password}@" if user is not None else ""
    return f"{scheme}://{creds}{ep}"


# ---- access log -----------------------------------------------------------------

def access_fields(line: str) -> dict[str, str]:
    """key=value fields of a text access line, "quoted" values unquoted."""
    out = {}
    for key, value in _QUOTED_FIELD_RE.findall(line):
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[key] = value
    return out


def access_lines(proxy) -> list[dict[str, str]]:
    return [access_fields(line) for line in proxy.log.snapshot() if " access session=" in line]


def wait_access(proxy, timeout: float = 10.0, start: int = 0, **expected: str) -> dict[str, str]:
    """The first access record at or after log line ``start`` whose fields
    include ``expected``."""
    def match(line: str):
        if " access session=" not in line:
            return None
        fields = access_fields(line)
        return fields if all(fields.get(k) == v for k, v in expected.items()) else None
    _, fields = proxy.log.wait_for(match, timeout, start)
    return fields


def wait_record(proxy, pred, timeout: float = 10.0, start: int = 0) -> dict[str, str]:
    """The first access record at or after log line ``start`` for which
    ``pred(fields)`` is true."""
    def match(line: str):
        if " access session=" not in line:
            return None
        fields = access_fields(line)
        return fields if pred(fields) else None
    _, fields = proxy.log.wait_for(match, timeout, start)
    return fields


def wait_records(proxy, n: int, pred=lambda r: True, timeout: float = 10.0) -> list[dict[str, str]]:
    """Waits until at least ``n`` access records satisfy ``pred``; returns them."""
    deadline = time.monotonic() + timeout
    with proxy.log.cond:
        for _ in range(1_000_000):
            got = [f for f in (access_fields(line) for line in proxy.log.lines if " access session=" in line)
                   if pred(f)]
            if len(got) >= n:
                return got
            remaining = deadline - time.monotonic()
            if remaining <= 0 or proxy.log.eof:
                break
            proxy.log.cond.wait(remaining)
    raise TimeoutError(f"{len(got)} of {n} access records within {timeout}s")


def mark(proxy) -> int:
    return len(proxy.log.snapshot())


def access_since(proxy, start: int) -> list[dict[str, str]]:
    """Access records from log line ``start`` on (see mark())."""
    return [access_fields(line) for line in proxy.log.snapshot()[start:] if " access session=" in line]


def targets_seen(proxy) -> list[str]:
    return [r.get("target", "") for r in access_lines(proxy)]


# ---- SOCKS sessions ----------------------------------------------------------------

def connect_from(addr, source: str | None = None, timeout: float = sc.DEFAULT_TIMEOUT,
                 sock: socket.socket | None = None) -> socket.socket:
    """A TCP connection to ``addr``, bound to ``source`` (port 0) if given;
    ``sock`` is a fresh socket to use (e.g. one created in a namespace)."""
    fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    s = sock or socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        if source is not None:
            s.bind((source, 0))
        s.connect(tuple(addr))
    except BaseException:
        s.close()
        raise
    return s


def request_bytes(host, port: int, user=None, password=None) -> bytes:
    """Greeting (+ RFC 1929) + CONNECT, pipelined in one write."""
    if user is None:
        return sc.greeting(sc.NO_AUTH) + sc.request(host, port)
    return sc.greeting(sc.USERPASS) + sc.userpass(user, password) + sc.request(host, port)


def socks5_connect(addr, host, port: int, user=None, password=None, source=None,
                   timeout: float = sc.DEFAULT_TIMEOUT, sock=None) -> tuple[sc.Reply5, socket.socket]:
    """A pipelined SOCKS5 CONNECT; returns (reply, socket) whatever the REP.
    The caller closes the socket."""
    s = connect_from(addr, source, timeout, sock)
    try:
        s.sendall(request_bytes(host, port, user, password))
        method = sc.recv_exact(s, 2, timeout)
        if user is None and method != b"\x05\x00":
            raise sc.ProtocolError(f"method selection {method.hex(' ')}")
        if user is not None:
            if method != b"\x05\x02":
                raise sc.ProtocolError(f"method selection {method.hex(' ')}")
            status = sc.recv_exact(s, 2, timeout)
            if status != b"\x01\x00":
                raise sc.ProtocolError(f"auth status {status.hex(' ')}")
        reply = sc.read_reply(s, timeout)
    except BaseException:
        s.close()
        raise
    return reply, s


def rep_of(addr, host, port: int, **kw) -> int:
    """The REP of one CONNECT (the connection is closed afterwards)."""
    reply, s = socks5_connect(addr, host, port, **kw)
    s.close()
    return reply.rep


def tunnel(addr, host, port: int, **kw) -> socket.socket:
    """An open tunnel (REP 0 asserted)."""
    reply, s = socks5_connect(addr, host, port, **kw)
    if reply.rep != sc.REP_SUCCEEDED:
        s.close()
        raise sc.ProtocolError(f"CONNECT {host}:{port}: REP {reply.rep:#04x}")
    return s


def echo_session(addr, host, port: int, payload: bytes = b"ping", **kw) -> None:
    """One complete session to an echo target: REP 0, payload echoed, then
    closed cleanly (half-close, the echo server's EOF comes back)."""
    s = tunnel(addr, host, port, **kw)
    try:
        sc.echo_roundtrip(s, payload)
        s.shutdown(socket.SHUT_WR)
        rest = sc.read_until_closed(s)
        if rest:
            raise sc.ProtocolError(f"unexpected bytes after the echo: {rest[:32]!r}")
    finally:
        s.close()


def quick_session(addr, host, port: int, **kw) -> int:
    """The cheapest complete session for distribution counts: REP, then close
    after the target's EOF. Returns REP."""
    reply, s = socks5_connect(addr, host, port, **kw)
    try:
        if reply.rep == sc.REP_SUCCEEDED:
            s.shutdown(socket.SHUT_WR)
            sc.read_until_closed(s)
    finally:
        s.close()
    return reply.rep


# ---- pool state ---------------------------------------------------------------------

def upstreams(admin: AdminClient) -> dict:
    r = admin.get("/api/v1/upstreams")
    assert r.status == 200, f"/api/v1/upstreams: {r.status} {r.text}"
    return r.json()


def members(admin: AdminClient) -> dict[str, dict]:
    """Pool members by URL (redacted, as the API shows them)."""
    return {m["url"]: m for m in upstreams(admin)["pool"]["members"]}


def sessions_by_member(admin: AdminClient) -> dict[str, int]:
    return {url: m["sessions"] for url, m in members(admin).items()}


def wait_member(admin: AdminClient, url: str, pred, timeout: float = 10.0, what: str = "") -> dict:
    """Polls the API (bounded) until ``pred(member)`` holds; returns it."""
    deadline = time.monotonic() + timeout
    last = None
    for _ in range(100000):
        last = members(admin).get(url)
        if last is not None and pred(last):
            return last
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)  # pacing of a bounded poll of API state, not a synchronising sleep
    raise TimeoutError(f"member {url} never became {what or pred}: last {last}")


_SAMPLE_RE = re.compile(r'^(\w+)\{([^}]*)\}\s+(\S+)$')


def metric_by_upstream(text: str, name: str) -> dict[str, float]:
    """Samples of metric ``name`` keyed by their ``upstream`` label."""
    out = {}
    for line in text.splitlines():
        m = _SAMPLE_RE.match(line)
        if not m or m.group(1) != name:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
        if "upstream" in labels and len(labels) == 1:
            out[labels["upstream"]] = float(m.group(3))
    return out


# ---- scripted upstreams -----------------------------------------------------------

class ScriptedUpstream(TCPServer):
    """A raw upstream whose behaviour per connection is ``script(conn)``
    (set ``script`` before each attempt).  Connections are counted."""

    def __init__(self, script=None, host: str = "127.0.0.1"):
        self.script = script
        super().__init__(self._handle, host, io_timeout=10.0)

    def _handle(self, conn: socket.socket, peer) -> None:
        script = self.script
        if script is not None:
            script(conn)


def read_socks5_request(conn: socket.socket) -> bytes:
    """Reads the greeting (answering 05 00) and the CONNECT request; returns
    the request bytes."""
    head = sc.recv_exact(conn, 2)
    sc.recv_exact(conn, head[1])
    conn.sendall(b"\x05\x00")
    req = sc.recv_exact(conn, 4)
    atyp = req[3]
    if atyp == sc.ATYP_IPV4:
        rest = sc.recv_exact(conn, 6)
    elif atyp == sc.ATYP_IPV6:
        rest = sc.recv_exact(conn, 18)
    else:
        n = sc.recv_exact(conn, 1)
        rest = n + sc.recv_exact(conn, n[0] + 2)
    return req + rest


# ---- Dante ----------------------------------------------------------------------------

class DanteUpstream:
    """Debian's danted as a foreign SOCKS5 upstream, in a private mount
    namespace (``unshare -m``) whose /etc/hosts (``hosts``: name -> IP) and,
    for ``users``, /etc/passwd and /etc/shadow are private copies: Dante's
    ``socksmethod: username`` checks system accounts, and the test's names
    resolve only there (so a successful domain CONNECT proves the far end
    resolved it).  Listens on 127.0.0.1 (a port reserved by binding 0:
    Dante cannot bind port 0)."""

    def __init__(self, users: dict[str, str] | None = None, hosts: dict[str, str] | None = None,
                 start_timeout: float = 15.0):
        self.tmp = tempfile.TemporaryDirectory(prefix="cs-dante-up-")
        d = Path(self.tmp.name)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.endpoint = Endpoint("127.0.0.1", s.getsockname()[1])
        mounts = []
        hosts_text = Path("/etc/hosts").read_text() + "".join(
            f"{ip} {name}\n" for name, ip in (hosts or {}).items())
        (d / "hosts").write_text(hosts_text)
        mounts.append(("hosts", "/etc/hosts"))
        if users:
            import warnings  # noqa: PLC0415
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import crypt as _crypt  # noqa: PLC0415  (Debian 12's python3 still has it)
            passwd = Path("/etc/passwd").read_text()
            shadow = Path("/etc/shadow").read_text()
            for i, (name, pw) in enumerate(users.items()):
                passwd += f"{name}:x:{47000 + i}:{47000 + i}::/nonexistent:/usr/sbin/nologin\n"
                shadow += f"{name}:{_crypt.crypt(pw, _crypt.mksalt(_crypt.METHOD_SHA512))}:19000:0:99999:7:::\n"
            (d / "passwd").write_text(passwd)
            (d / "shadow").write_text(shadow)
            os.chmod(d / "shadow", 0o600)
            mounts += [("passwd", "/etc/passwd"), ("shadow", "/etc/shadow")]
        conf = "\n".join([
            "logoutput: stderr",
            f"internal: 127.0.0.1 port = {self.endpoint.port}",
            "external: 127.0.0.1",
            "external: ::1",
            "external.rotation: route",
            "clientmethod: none",
            f"socksmethod: {'username' if users else 'none'}",
            "user.privileged: root",
            "user.unprivileged: nobody",
            "timeout.negotiate: 10",
            "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }",
            "socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 log: connect disconnect }",
            "socks pass { from: 127.0.0.0/8 to: ::/0 log: connect disconnect }",
            "",
        ])
        (d / "danted.conf").write_text(conf)
        script = " && ".join([f"mount --bind {d / src} {dst}" for src, dst in mounts] +
                             [f"exec danted -f {d / 'danted.conf'} -N 1 -p {d / 'danted.pid'}"])
        self.proc = subprocess.Popen(["unshare", "-m", "sh", "-c", script], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.log = LogFollower(self.proc.stderr, f"dante-{self.proc.pid}")
        try:
            self._wait_ready(start_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            with socket.socket() as s:
                if s.connect_ex(self.endpoint.sockaddr) == 0:
                    return
            if time.monotonic() > deadline:
                break
            try:  # pace the retries on the process' exit, not on a sleep
                code = self.proc.wait(timeout=0.05)
                raise RuntimeError(f"danted exited ({code}): {self.log.text()}")
            except subprocess.TimeoutExpired:
                pass
        raise RuntimeError(f"danted not ready within {timeout}s: {self.log.text()}")

    @property
    def addr(self):
        return self.endpoint.sockaddr

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.log.join(2.0)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.tmp.cleanup()


# ---- network namespaces ----------------------------------------------------------------

def ns_connect(ns, addr, timeout: float = sc.DEFAULT_TIMEOUT) -> socket.socket:
    """A TCP connection from inside namespace ``ns``."""
    fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    return connect_from(addr, None, timeout, sock=ns.socket(fam))

