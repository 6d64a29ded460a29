"""Handshake framing: everything pipelined in one send, one byte per send,
split at every position; and the handshake deadline for silent, stalled and
slow clients."""

from __future__ import annotations

import socket
import time

import pytest

from support import constants as C
from support import socksclient as sc
from support.proxy import Proxy

USER, PASSWORD = C.AUTH_USER, C.AUTH_PASSWORD
PAYLOAD = bytes(range(256)) * 16  # 4 KiB, every byte value


def auth_handshake(port: int) -> bytes:
    return (sc.greeting(sc.USERPASS) + sc.userpass(USER, PASSWORD)
            + sc.request("127.0.0.1", port))


def noauth_handshake(port: int, host: str = "127.0.0.1") -> bytes:
    return sc.greeting(sc.NO_AUTH) + sc.request(host, port)


def read_auth_replies(sock: socket.socket) -> None:
    assert sc.read_method(sock) == b"\x05\x02"
    assert sc.read_auth_status(sock) == b"\x01\x00"
    reply = sc.read_reply(sock)
    assert reply.rep == sc.REP_SUCCEEDED, reply.raw.hex(" ")


def read_noauth_replies(sock: socket.socket) -> None:
    assert sc.read_method(sock) == b"\x05\x00"
    reply = sc.read_reply(sock)
    assert reply.rep == sc.REP_SUCCEEDED, reply.raw.hex(" ")


def finish_echo(sock: socket.socket, expected: bytes) -> None:
    """The echo of everything sent so far, then a full close after our EOF."""
    assert sc.recv_exact(sock, len(expected)) == expected
    sock.shutdown(socket.SHUT_WR)
    assert sc.read_until_closed(sock) == b""


# ---- pipelining -------------------------------------------------------------

def test_pipelined_auth_handshake_and_payload(auth_proxy, echo_server):
    """Greeting + auth + CONNECT + first payload bytes in a single send."""
    with sc.connect(auth_proxy.addr) as sock:
        sock.sendall(auth_handshake(echo_server.port) + PAYLOAD)
        read_auth_replies(sock)
        finish_echo(sock, PAYLOAD)


def test_pipelined_noauth_handshake_and_payload(noauth_proxy, echo_server):
    with sc.connect(noauth_proxy.addr) as sock:
        sock.sendall(noauth_handshake(echo_server.port, C.NAME_V4) + PAYLOAD)
        read_noauth_replies(sock)
        finish_echo(sock, PAYLOAD)


@pytest.mark.parametrize("host", ["127.0.0.1", C.NAME_V4], ids=["socks4", "socks4a"])
def test_pipelined_socks4_and_payload(noauth_proxy, echo_server, host):
    with sc.connect(noauth_proxy.addr) as sock:
        sock.sendall(sc.request4(host, echo_server.port, b"uid") + PAYLOAD)
        assert sc.read_reply4(sock).raw[:2] == b"\x00\x5a"
        finish_echo(sock, PAYLOAD)


def test_pipelined_payload_then_eof(auth_proxy, echo_server):
    """Handshake + payload + FIN before the proxy has even answered: the
    payload still reaches the target and the echo comes back."""
    with sc.connect(auth_proxy.addr) as sock:
        sock.sendall(auth_handshake(echo_server.port) + PAYLOAD)
        sock.shutdown(socket.SHUT_WR)
        read_auth_replies(sock)
        assert sc.read_until_closed(sock) == PAYLOAD


# ---- one byte per send ------------------------------------------------------

def send_bytewise(sock: socket.socket, data: bytes) -> None:
    for i in range(len(data)):
        sock.send(data[i:i + 1])


def test_byte_by_byte_auth_handshake(auth_proxy, echo_server):
    with sc.connect(auth_proxy.addr, nodelay=True) as sock:
        send_bytewise(sock, sc.greeting(sc.USERPASS))
        assert sc.read_method(sock) == b"\x05\x02"
        send_bytewise(sock, sc.userpass(USER, PASSWORD))
        assert sc.read_auth_status(sock) == b"\x01\x00"
        send_bytewise(sock, sc.request("127.0.0.1", echo_server.port))
        assert sc.read_reply(sock).rep == sc.REP_SUCCEEDED
        send_bytewise(sock, PAYLOAD[:64])
        finish_echo(sock, PAYLOAD[:64])


@pytest.mark.parametrize("host", ["::1", C.NAME_V4], ids=["ipv6", "domain"])
def test_byte_by_byte_pipelined_noauth(noauth_proxy, echo_server, echo_server6, host):
    """The whole handshake and payload, one byte per segment, not waiting for
    any reply in between."""
    port = echo_server6.port if host == "::1" else echo_server.port
    with sc.connect(noauth_proxy.addr, nodelay=True) as sock:
        send_bytewise(sock, noauth_handshake(port, host) + PAYLOAD[:32])
        read_noauth_replies(sock)
        finish_echo(sock, PAYLOAD[:32])


@pytest.mark.parametrize("host", ["127.0.0.1", C.NAME_V4], ids=["socks4", "socks4a"])
def test_byte_by_byte_socks4(noauth_proxy, echo_server, host):
    with sc.connect(noauth_proxy.addr, nodelay=True) as sock:
        send_bytewise(sock, sc.request4(host, echo_server.port, b"someone") + PAYLOAD[:32])
        assert sc.read_reply4(sock).raw[:2] == b"\x00\x5a"
        finish_echo(sock, PAYLOAD[:32])


def test_split_at_every_position(auth_proxy, echo_server):
    """The pipelined auth handshake + payload sent as two segments, for every
    split position."""
    message = auth_handshake(echo_server.port) + b"tail-bytes"
    for cut in range(1, len(message)):
        with sc.connect(auth_proxy.addr, nodelay=True) as sock:
            sock.sendall(message[:cut])
            sock.sendall(message[cut:])
            try:
                read_auth_replies(sock)
                finish_echo(sock, b"tail-bytes")
            except (AssertionError, EOFError, TimeoutError) as exc:
                raise AssertionError(f"split at byte {cut}/{len(message)}: {exc!r}") from exc


# ---- handshake deadline -----------------------------------------------------

def time_until_closed(sock: socket.socket, start: float, timeout: float) -> float:
    sc.read_until_closed(sock, timeout)
    return time.monotonic() - start


@pytest.fixture(scope="module")
def deadline_proxy():
    p = Proxy(["--handshake-timeout", "1", "--user", f"{USER}:{PASSWORD}"])
    yield p
    p.finish()


def test_silent_client_closed_by_handshake_deadline(deadline_proxy):
    t0 = time.monotonic()
    with sc.connect(deadline_proxy.addr) as sock:
        elapsed = time_until_closed(sock, t0, 6)
    assert 0.7 <= elapsed <= 4, f"closed after {elapsed:.2f}s with --handshake-timeout 1"


@pytest.mark.parametrize("stage", ["after-greeting", "mid-auth", "after-auth", "mid-request",
                                   "partial-greeting", "socks4-partial"])
def test_stalled_client_closed_by_handshake_deadline(deadline_proxy, echo_server, stage):
    full_auth = sc.userpass(USER, PASSWORD)
    req = sc.request("127.0.0.1", echo_server.port)
    t0 = time.monotonic()
    with sc.connect(deadline_proxy.addr) as sock:
        if stage == "partial-greeting":
            sock.sendall(b"\x05\x02")
        elif stage == "socks4-partial":
            sock.sendall(sc.request4("127.0.0.1", echo_server.port, b"uid")[:-1])
        else:
            sock.sendall(sc.greeting(sc.USERPASS))
            assert sc.read_method(sock) == b"\x05\x02"
            if stage == "mid-auth":
                sock.sendall(full_auth[:4])
            elif stage in ("after-auth", "mid-request"):
                sock.sendall(full_auth)
                assert sc.read_auth_status(sock) == b"\x01\x00"
                if stage == "mid-request":
                    sock.sendall(req[:-1])
        elapsed = time_until_closed(sock, t0, 6)
    assert 0.7 <= elapsed <= 4, f"closed after {elapsed:.2f}s with --handshake-timeout 1"


def test_slow_dribbling_client_closed_by_handshake_deadline(deadline_proxy, echo_server):
    """One byte every 250 ms keeps the connection active but must not extend
    the handshake deadline (it bounds the whole handshake)."""
    req = sc.request("x" * 60 + ".test", echo_server.port)
    t0 = time.monotonic()
    with sc.connect(deadline_proxy.addr, nodelay=True) as sock:
        sock.sendall(sc.greeting(sc.USERPASS))
        assert sc.read_method(sock) == b"\x05\x02"
        sock.sendall(sc.userpass(USER, PASSWORD))
        assert sc.read_auth_status(sock) == b"\x01\x00"
        closed_at = None
        for i in range(len(req)):
            try:
                sock.send(req[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed_at = i
                break
            if not sc.is_open_after(sock, 0.25):
                closed_at = i
                break
        elapsed = time.monotonic() - t0
    assert closed_at is not None, "the dribbling client was never closed"
    assert elapsed <= 4, f"closed after {elapsed:.2f}s with --handshake-timeout 1"


def test_handshake_deadline_does_not_apply_to_tunnels(make_proxy, echo_server):
    proxy = make_proxy("--handshake-timeout", "1", "--idle-timeout", "60")
    sock, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", echo_server.port)
    with sock:
        assert sc.is_open_after(sock, 1.8), "tunnel closed by the handshake deadline"
        sc.echo_roundtrip(sock, b"still here")


@pytest.mark.parametrize("value,low,high", [("500ms", 0.3, 2.5), ("1.5", 1.2, 4.0), ("2s", 1.7, 5.0)])
def test_handshake_timeout_duration_forms(make_proxy, value, low, high):
    proxy = make_proxy("--handshake-timeout", value)
    t0 = time.monotonic()
    with sc.connect(proxy.addr) as sock:
        elapsed = time_until_closed(sock, t0, 8)
    assert low <= elapsed <= high, f"--handshake-timeout {value}: closed after {elapsed:.2f}s"


@pytest.mark.deadline(40)
def test_default_handshake_deadline_is_10s(noauth_proxy):
    t0 = time.monotonic()
    with sc.connect(noauth_proxy.addr) as sock:
        sock.sendall(b"\x05")
        elapsed = time_until_closed(sock, t0, 20)
    assert 9.0 <= elapsed <= 14.0, f"default handshake deadline fired after {elapsed:.2f}s"
