"""A minimal raw SOCKS5 / SOCKS4 client for protocol edge cases.

Builders return the exact bytes of each message so tests can split, pipeline
or corrupt them; readers parse replies strictly and return the raw bytes too.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass

# SOCKS5 (RFC 1928)
VER5 = 0x05
NO_AUTH = 0x00
USERPASS = 0x02
NO_ACCEPTABLE = 0xFF
CMD_CONNECT = 0x01
CMD_BIND = 0x02
CMD_UDP = 0x03
ATYP_IPV4 = 0x01
ATYP_DOMAIN = 0x03
ATYP_IPV6 = 0x04

REP_SUCCEEDED = 0x00
REP_GENERAL = 0x01
REP_NOT_ALLOWED = 0x02
REP_NET_UNREACH = 0x03
REP_HOST_UNREACH = 0x04
REP_REFUSED = 0x05
REP_TTL = 0x06
REP_CMD_UNSUPPORTED = 0x07
REP_ATYP_UNSUPPORTED = 0x08

# SOCKS4
VER4 = 0x04
S4_GRANTED = 0x5A
S4_REJECTED = 0x5B

DEFAULT_TIMEOUT = 5.0


class ProtocolError(AssertionError):
    pass


def connect(addr, timeout: float = DEFAULT_TIMEOUT, nodelay: bool = False,
            family: int | None = None) -> socket.socket:
    host = addr[0]
    fam = family or (socket.AF_INET6 if ":" in host else socket.AF_INET)
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        if nodelay:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(timeout)
        s.connect(tuple(addr))
    except BaseException:
        s.close()
        raise
    return s


def recv_exact(sock: socket.socket, n: int, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Exactly ``n`` bytes; raises EOFError (with what was read) on early EOF
    and TimeoutError when they do not arrive in time."""
    deadline = time.monotonic() + timeout
    out = bytearray()
    while len(out) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"wanted {n} bytes, got {bytes(out).hex(' ') or 'nothing'} "
                               f"in {timeout}s")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(n - len(out))
        except socket.timeout:
            raise TimeoutError(f"wanted {n} bytes, got {bytes(out).hex(' ') or 'nothing'} "
                               f"in {timeout}s") from None
        except ConnectionResetError:
            raise EOFError(bytes(out)) from None
        if not chunk:
            raise EOFError(bytes(out))
        out += chunk
    return bytes(out)


def read_until_closed(sock: socket.socket, timeout: float = DEFAULT_TIMEOUT,
                      limit: int = 1 << 20) -> bytes:
    """Everything the peer sends until it closes (FIN or RST).  Raises
    TimeoutError if the connection is still open after ``timeout``."""
    deadline = time.monotonic() + timeout
    out = bytearray()
    while len(out) <= limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"connection still open after {timeout}s "
                               f"(received {bytes(out[:64]).hex(' ') or 'nothing'})")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        out += chunk
    return bytes(out)


def expect_closed(sock: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Assert the peer closes without sending anything more."""
    extra = read_until_closed(sock, timeout)
    if extra:
        raise ProtocolError(f"expected close, got extra bytes {extra[:64].hex(' ')}")


def is_open_after(sock: socket.socket, seconds: float) -> bool:
    """Wait up to ``seconds`` for the peer to send or close; True if nothing
    happened (the connection is still open and quiet)."""
    sock.settimeout(seconds)
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except socket.timeout:
        return True
    except (ConnectionResetError, BrokenPipeError):
        return False
    if data:
        raise ProtocolError(f"unexpected data {data.hex()}")
    return False


# ---- SOCKS5 builders --------------------------------------------------------

def greeting(*methods: int) -> bytes:
    return bytes([VER5, len(methods), *methods])


def userpass(user: bytes | str, password: bytes | str) -> bytes:
    u = user.encode() if isinstance(user, str) else user
    p = password.encode() if isinstance(password, str) else password
    if len(u) > 255 or len(p) > 255:
        raise ValueError("RFC 1929 fields are at most 255 bytes")
    return bytes([0x01, len(u)]) + u + bytes([len(p)]) + p


def encode_addr(host: str | bytes, atyp: int | None = None) -> bytes:
    """ATYP + address.  ``host`` may be an IP literal or a domain name."""
    if isinstance(host, bytes):
        return bytes([ATYP_DOMAIN, len(host)]) + host
    if atyp is None:
        try:
            ip = ipaddress.ip_address(host)
            atyp = ATYP_IPV4 if ip.version == 4 else ATYP_IPV6
        except ValueError:
            atyp = ATYP_DOMAIN
    if atyp == ATYP_IPV4:
        return bytes([ATYP_IPV4]) + ipaddress.IPv4Address(host).packed
    if atyp == ATYP_IPV6:
        return bytes([ATYP_IPV6]) + ipaddress.IPv6Address(host).packed
    raw = host.encode()
    return bytes([ATYP_DOMAIN, len(raw)]) + raw


def request(host: str | bytes, port: int, cmd: int = CMD_CONNECT, atyp: int | None = None) -> bytes:
    return bytes([VER5, cmd, 0x00]) + encode_addr(host, atyp) + port.to_bytes(2, "big")


@dataclass
class Reply5:
    ver: int
    rep: int
    rsv: int
    atyp: int
    host: str
    port: int
    raw: bytes


def read_method(sock: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    return recv_exact(sock, 2, timeout)


def read_auth_status(sock: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    return recv_exact(sock, 2, timeout)


def read_reply(sock: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> Reply5:
    """A complete SOCKS5 reply; the address part must be well-formed."""
    deadline = time.monotonic() + timeout
    head = recv_exact(sock, 4, timeout)
    ver, rep, rsv, atyp = head
    left = lambda: max(0.01, deadline - time.monotonic())  # noqa: E731
    if atyp == ATYP_IPV4:
        body = recv_exact(sock, 6, left())
        host = str(ipaddress.IPv4Address(body[:4]))
    elif atyp == ATYP_IPV6:
        body = recv_exact(sock, 18, left())
        host = str(ipaddress.IPv6Address(body[:16]))
    elif atyp == ATYP_DOMAIN:
        ln = recv_exact(sock, 1, left())
        body = ln + recv_exact(sock, ln[0] + 2, left())
        host = body[1:-2].decode("ascii", "replace")
    else:
        raise ProtocolError(f"reply with invalid ATYP: {head.hex(' ')}")
    port = int.from_bytes(body[-2:], "big")
    return Reply5(ver, rep, rsv, atyp, host, port, head + body)


def handshake5(sock: socket.socket, host, port: int, user=None, password=None,
               timeout: float = DEFAULT_TIMEOUT) -> Reply5:
    """Greeting (+ RFC 1929) + CONNECT; asserts method/auth success and
    returns the reply (which may be an error)."""
    if user is None:
        sock.sendall(greeting(NO_AUTH))
        method = read_method(sock, timeout)
        if method != bytes([VER5, NO_AUTH]):
            raise ProtocolError(f"method selection: expected 05 00, got {method.hex(' ')}")
    else:
        sock.sendall(greeting(USERPASS))
        method = read_method(sock, timeout)
        if method != bytes([VER5, USERPASS]):
            raise ProtocolError(f"method selection: expected 05 02, got {method.hex(' ')}")
        sock.sendall(userpass(user, password))
        status = read_auth_status(sock, timeout)
        if status != b"\x01\x00":
            raise ProtocolError(f"auth: expected 01 00, got {status.hex(' ')}")
    sock.sendall(request(host, port))
    return read_reply(sock, timeout)


def open_tunnel(proxy_addr, host, port: int, user=None, password=None,
                timeout: float = DEFAULT_TIMEOUT, nodelay: bool = False) -> tuple[socket.socket, Reply5]:
    """A connected tunnel through a SOCKS5 proxy; asserts REP 0x00."""
    sock = connect(proxy_addr, timeout, nodelay)
    try:
        reply = handshake5(sock, host, port, user, password, timeout)
        if reply.rep != REP_SUCCEEDED or reply.ver != VER5:
            raise ProtocolError(f"CONNECT {host}:{port}: reply {reply.raw.hex(' ')}")
    except BaseException:
        sock.close()
        raise
    return sock, reply


# ---- SOCKS4 / 4a ------------------------------------------------------------

def request4(host: str | bytes, port: int, userid: bytes = b"", cmd: int = CMD_CONNECT) -> bytes:
    """SOCKS4 when ``host`` is an IPv4 literal, SOCKS4a (DSTIP 0.0.0.1 +
    hostname) otherwise."""
    if isinstance(host, str):
        try:
            ip = ipaddress.IPv4Address(host).packed
            return bytes([VER4, cmd]) + port.to_bytes(2, "big") + ip + userid + b"\x00"
        except ValueError:
            host = host.encode()
    return (bytes([VER4, cmd]) + port.to_bytes(2, "big") + bytes([0, 0, 0, 1])
            + userid + b"\x00" + host + b"\x00")


@dataclass
class Reply4:
    vn: int
    cd: int
    port: int
    ip: str
    raw: bytes


def read_reply4(sock: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> Reply4:
    raw = recv_exact(sock, 8, timeout)
    return Reply4(raw[0], raw[1], int.from_bytes(raw[2:4], "big"),
                  str(ipaddress.IPv4Address(raw[4:8])), raw)


def open_tunnel4(proxy_addr, host, port: int, userid: bytes = b"",
                 timeout: float = DEFAULT_TIMEOUT) -> tuple[socket.socket, Reply4]:
    sock = connect(proxy_addr, timeout)
    try:
        sock.sendall(request4(host, port, userid))
        reply = read_reply4(sock, timeout)
        if reply.vn != 0 or reply.cd != S4_GRANTED:
            raise ProtocolError(f"SOCKS4 CONNECT {host}:{port}: reply {reply.raw.hex(' ')}")
    except BaseException:
        sock.close()
        raise
    return sock, reply


def echo_roundtrip(sock: socket.socket, payload: bytes, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Send ``payload`` through a tunnel to an echo server and check it comes back."""
    sock.sendall(payload)
    got = recv_exact(sock, len(payload), timeout)
    if got != payload:
        raise ProtocolError(f"echo mismatch: sent {len(payload)} bytes, got different bytes")
