"""UDP ASSOCIATE (RFC 1928 §7) and BIND (§4) helpers for the udp_bind tests.

- ``UDPEchoServer``: answers every datagram to its sender (optionally with a
  prefix) and records who sent what, so a test sees the proxy's outbound
  address.
- ``udp_header`` / ``parse_udp``: the SOCKS5 UDP request header, built and
  parsed strictly.
- ``Association``: a raw client — the TCP control connection (greeting,
  optional RFC 1929, UDP ASSOCIATE with any hint) and a UDP socket facing
  the relay the reply named.  Receives are bounded by socket timeouts.
- ``fd_count`` / ``metric``: descriptors of a process, one sample of /metrics.

Nothing here sleeps: every wait is a receive with a timeout.
"""

from __future__ import annotations

import ipaddress
import os
import queue
import re
import selectors
import socket
import threading
import time
from dataclasses import dataclass

from . import socksclient as sc
from .proxy import Endpoint

RECV_TIMEOUT = 5.0
# "Nothing comes back" is checked by waiting this long for a datagram.
QUIET = 0.5


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


# ---- header -----------------------------------------------------------------

def udp_header(host: str | bytes, port: int, frag: int = 0, atyp: int | None = None) -> bytes:
    """RSV RSV FRAG ATYP DST.ADDR DST.PORT; ``host`` an IP literal or a name
    (``bytes`` always a name)."""
    return b"\x00\x00" + bytes([frag]) + sc.encode_addr(host, atyp) + port.to_bytes(2, "big")


@dataclass
class UDPDatagram:
    frag: int
    atyp: int
    host: str
    port: int
    payload: bytes
    raw: bytes


def parse_udp(data: bytes) -> UDPDatagram:
    """A datagram from the relay; raises ProtocolError unless well-formed."""
    if len(data) < 4 or data[0:2] != b"\x00\x00":
        raise sc.ProtocolError(f"bad UDP header: {data[:24].hex(' ')}")
    frag, atyp = data[2], data[3]
    if atyp == sc.ATYP_IPV4:
        end = 4 + 4
        host = str(ipaddress.IPv4Address(data[4:end]))
    elif atyp == sc.ATYP_IPV6:
        end = 4 + 16
        host = str(ipaddress.IPv6Address(data[4:end]))
    elif atyp == sc.ATYP_DOMAIN:
        ln = data[4]
        end = 5 + ln
        host = data[5:end].decode("ascii", "replace")
    else:
        raise sc.ProtocolError(f"bad ATYP in UDP header: {data[:24].hex(' ')}")
    if len(data) < end + 2:
        raise sc.ProtocolError(f"truncated UDP header: {data[:24].hex(' ')}")
    port = int.from_bytes(data[end:end + 2], "big")
    return UDPDatagram(frag, atyp, host, port, data[end + 2:], data)


# ---- a UDP echo target -----------------------------------------------------------

class UDPEchoServer:
    """Binds ``host``:0; every datagram goes back to its sender as
    ``prefix + data`` (``copies`` times).  ``received`` is a queue of
    (peer, data)."""

    def __init__(self, host: str = "127.0.0.1", prefix: bytes = b"", sock: socket.socket | None = None,
                 copies: int = 1):
        """``sock``: an unbound UDP socket to use (e.g. one made in a network
        namespace); it is bound to ``host``:0."""
        self.prefix = prefix
        self.copies = copies
        self.sock = sock or socket.socket(family_of(host), socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.endpoint = Endpoint(host, self.sock.getsockname()[1])
        self.received: queue.Queue = queue.Queue()
        self.count = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"udp-echo-{self.endpoint}")
        self._thread.start()

    @property
    def host(self) -> str:
        return self.endpoint.host

    @property
    def port(self) -> int:
        return self.endpoint.port

    @property
    def addr(self) -> tuple[str, int]:
        return self.endpoint.sockaddr

    def _loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while True:
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        data, peer = self.sock.recvfrom(65535)
                    except OSError:
                        continue
                    self.count += 1
                    self.received.put((peer[:2], data))
                    for _ in range(self.copies):
                        try:
                            self.sock.sendto(self.prefix + data, peer)
                        except OSError:
                            pass
        finally:
            sel.close()

    def next_peer(self, timeout: float = RECV_TIMEOUT) -> tuple[tuple[str, int], bytes]:
        """The next (sender, datagram) this server got."""
        return self.received.get(timeout=timeout)

    def drain(self) -> list[tuple[tuple[str, int], bytes]]:
        out = []
        while True:
            try:
                out.append(self.received.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self._wake_w.send(b"x")
        self._thread.join(5.0)
        self.sock.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- the raw client -------------------------------------------------------------

class Association:
    """One UDP ASSOCIATE.  The UDP socket is created (and bound to
    ``udp_bind``, default: the loopback of the relay's family, port 0) before
    the request, so ``hint="self"`` can name its exact address.

    ``hint``: ``(host, port)``, ``"self"`` (the UDP socket's own address) or
    ``None`` (0.0.0.0:0 / [::]:0 by the control connection's family)."""

    def __init__(self, proxy_addr, hint=None, *, udp_bind: tuple[str, int] | None = None,
                 tcp_source: str | None = None, user: str | None = None,
                 password: str | None = None, timeout: float = RECV_TIMEOUT, expect_ok: bool = True,
                 sock_factory=socket.socket):
        """``sock_factory(family, type)`` makes both sockets (e.g. one living
        in a network namespace)."""
        self.proxy_addr = tuple(proxy_addr)
        self.tcp = _connect_from(self.proxy_addr, tcp_source, timeout, sock_factory)
        self.udp: socket.socket | None = None
        try:
            local = self.tcp.getsockname()[0]
            bind_to = udp_bind or (local, 0)
            self.udp = sock_factory(family_of(bind_to[0]), socket.SOCK_DGRAM)
            self.udp.bind(bind_to)
            if hint == "self":
                hint = self.udp.getsockname()[:2]
            elif hint is None:
                hint = ("::" if ":" in local else "0.0.0.0", 0)
            self.hint = hint
            self.reply = negotiate(self.tcp, hint[0], hint[1], user, password, timeout)
            if expect_ok and (self.reply.ver != sc.VER5 or self.reply.rep != sc.REP_SUCCEEDED):
                raise sc.ProtocolError(f"UDP ASSOCIATE: reply {self.reply.raw.hex(' ')}")
        except BaseException:
            self.close()
            raise

    @property
    def ok(self) -> bool:
        return self.reply.rep == sc.REP_SUCCEEDED

    @property
    def relay(self) -> tuple[str, int]:
        """BND.ADDR:BND.PORT from the reply: where datagrams go."""
        return (self.reply.host, self.reply.port)

    @property
    def local(self) -> tuple[str, int]:
        return self.udp.getsockname()[:2]

    def send(self, host, port: int, payload: bytes, frag: int = 0, sock: socket.socket | None = None,
             to: tuple[str, int] | None = None) -> None:
        (sock or self.udp).sendto(udp_header(host, port, frag) + payload, to or self.relay)

    def send_raw(self, data: bytes, sock: socket.socket | None = None) -> None:
        (sock or self.udp).sendto(data, self.relay)

    def recv(self, timeout: float = RECV_TIMEOUT, sock: socket.socket | None = None,
             relay: tuple[str, int] | None = None) -> UDPDatagram:
        """The next datagram from the relay (``relay``, default the reply's
        BND); from any other source it is an error."""
        s = sock or self.udp
        relay = relay or self.relay
        s.settimeout(timeout)
        try:
            data, src = s.recvfrom(65535)
        except socket.timeout:
            raise TimeoutError(f"no datagram from the relay {relay} within {timeout}s") from None
        if (_norm(src[0]), src[1]) != (_norm(relay[0]), relay[1]):
            raise sc.ProtocolError(f"datagram from {src}, not from the relay {relay}")
        return parse_udp(data)

    def nothing_within(self, timeout: float = QUIET, sock: socket.socket | None = None) -> bool:
        """True when no datagram arrives within ``timeout`` (an ICMP port
        unreachable reported on the socket counts as nothing too)."""
        s = sock or self.udp
        s.settimeout(timeout)
        try:
            data, src = s.recvfrom(65535)
        except socket.timeout:
            return True
        except ConnectionRefusedError:
            return True
        raise sc.ProtocolError(f"unexpected datagram from {src}: {data[:64].hex(' ')}")

    def roundtrip(self, target: tuple[str, int], payload: bytes, timeout: float = RECV_TIMEOUT,
                  prefix: bytes = b"") -> UDPDatagram:
        """Send one datagram to ``target`` and return the (checked) answer."""
        self.send(target[0], target[1], payload)
        d = self.recv(timeout)
        if d.payload != prefix + payload:
            raise sc.ProtocolError(f"echo mismatch: sent {payload!r}, got {d.payload[:64]!r}")
        return d

    def close(self) -> None:
        for s in (self.udp, self.tcp):
            if s is not None:
                s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _norm(host: str) -> str:
    return str(ipaddress.ip_address(host.split("%")[0]))


def _connect_from(addr, source: str | None, timeout: float, factory=socket.socket) -> socket.socket:
    s = factory(family_of(addr[0]), socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        if source is not None:
            s.bind((source, 0))
        s.connect(tuple(addr))
    except BaseException:
        s.close()
        raise
    return s


def negotiate(sock: socket.socket, host, port: int, user=None, password=None,
              timeout: float = RECV_TIMEOUT, cmd: int = sc.CMD_UDP) -> sc.Reply5:
    """Greeting (+ RFC 1929) + a request with ``cmd``; returns the reply."""
    if user is None:
        sock.sendall(sc.greeting(sc.NO_AUTH))
        method = sc.read_method(sock, timeout)
        if method != bytes([sc.VER5, sc.NO_AUTH]):
            raise sc.ProtocolError(f"method selection: expected 05 00, got {method.hex(' ')}")
    else:
        sock.sendall(sc.greeting(sc.USERPASS))
        method = sc.read_method(sock, timeout)
        if method != bytes([sc.VER5, sc.USERPASS]):
            raise sc.ProtocolError(f"method selection: expected 05 02, got {method.hex(' ')}")
        sock.sendall(sc.userpass(user, password))
        status = sc.read_auth_status(sock, timeout)
        if status != b"\x01\x00":
            raise sc.ProtocolError(f"auth: expected 01 00, got {status.hex(' ')}")
    sock.sendall(sc.request(host, port, cmd))
    return sc.read_reply(sock, timeout)


def udp_from(host: str) -> socket.socket:
    """A UDP socket bound to ``host``:0 (a second source for drop tests)."""
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.bind((host, 0))
    return s


# ---- process and metrics ------------------------------------------------------------

def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)\s*$")


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    want = {k: v for k, v in labels.items()}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in want.items()):
            return float(m.group(3))
    return 0.0


def wait_until(pred, timeout: float, pace) -> bool:
    """Evaluate ``pred`` until it is true or ``timeout`` passes; ``pace(t)``
    blocks for at most ``t`` seconds between tries (a process wait, a socket
    receive) — never a bare sleep."""
    deadline = time.monotonic() + timeout
    for _ in range(100_000):
        if pred():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return bool(pred())
        pace(min(0.05, left))
    return bool(pred())
