"""PySocks (python3-socks) through the proxy: SOCKS5 with/without auth and
remote DNS, SOCKS4 and SOCKS4a."""

from __future__ import annotations

import socket

import pytest

socks = pytest.importorskip("socks")  # PySocks; run with /usr/bin/python3

from support import constants as C  # noqa: E402
from support import socksclient as sc  # noqa: E402
from support.servers import EchoServer  # noqa: E402

S5, S4 = socks.SOCKS5, socks.SOCKS4


def pysocks_connect(proxy_ep, proxy_type, host, port, rdns=False, user=None, password=None):
    s = socks.socksocket(proxy_ep.family, socket.SOCK_STREAM)
    s.settimeout(10)
    s.set_proxy(proxy_type, proxy_ep.host, proxy_ep.port, rdns=rdns,
                username=user, password=password)
    try:
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


def http_get(sock, host_header: str, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n".encode())
    data = sc.read_until_closed(sock, timeout=10)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], head[:100]
    return body


@pytest.mark.parametrize("listener", [socket.AF_INET, socket.AF_INET6], ids=["v4", "v6"])
@pytest.mark.parametrize("target,rdns", [
    ("127.0.0.1", False), ("::1", False), (C.NAME_V4, True), ("127.0.0.1", True),
], ids=["ip4", "ip6", "name-rdns", "ip4-rdns"])
@pytest.mark.parametrize("auth", [False, True], ids=["noauth", "auth"])
def test_pysocks_socks5(request, http4, http6, listener, target, rdns, auth):
    proxy = request.getfixturevalue("auth_proxy" if auth else "noauth_proxy")
    creds = (C.AUTH_USER, C.AUTH_PASSWORD) if auth else (None, None)
    server = http6 if target == "::1" else http4
    path = f"/pysocks5/{target}/{rdns}/{auth}/{listener}"
    with pysocks_connect(proxy.endpoint_for(listener), S5, target, server.endpoint.port,
                         rdns, *creds) as s:
        assert http_get(s, target, path) == server.body_for(path)


def test_pysocks_socks5_userpass_offered_to_noauth_proxy(noauth_proxy, echo_server):
    """PySocks offers 00 and 02 when given credentials; the proxy picks 00."""
    with pysocks_connect(noauth_proxy.endpoint, S5, "127.0.0.1", echo_server.port,
                         user="bob", password="x") as s:
        sc.echo_roundtrip(s, b"pysocks")


@pytest.mark.parametrize("user,password", [(None, None), (C.AUTH_USER, "wrong"), ("bob", C.AUTH_PASSWORD)],
                         ids=["no-credentials", "wrong-password", "unknown-user"])
def test_pysocks_socks5_auth_refused(auth_proxy, user, password):
    with EchoServer() as target:
        with pytest.raises(socks.ProxyError):
            pysocks_connect(auth_proxy.endpoint, S5, "127.0.0.1", target.port,
                            user=user, password=password).close()
        assert target.peers == [], "a refused client reached the target"


def test_pysocks_socks5_connection_refused_reply(noauth_proxy):
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        with pytest.raises(socks.ProxyError, match="0x05"):
            pysocks_connect(noauth_proxy.endpoint, S5, "127.0.0.1", reserved.getsockname()[1]).close()


@pytest.mark.parametrize("target,rdns,user", [
    ("127.0.0.1", False, None), ("127.0.0.1", False, "someone"),
    (C.NAME_V4, True, None), ("localhost", True, "someone"),
], ids=["socks4", "socks4-userid", "socks4a", "socks4a-hosts-file"])
def test_pysocks_socks4(noauth_proxy, echo_server, target, rdns, user):
    with pysocks_connect(noauth_proxy.endpoint, S4, target, echo_server.port, rdns, user) as s:
        sc.echo_roundtrip(s, b"pysocks4 " + target.encode())


def test_pysocks_socks4_refused_by_auth_proxy(auth_proxy, echo_server):
    with pytest.raises(socks.ProxyError):
        pysocks_connect(auth_proxy.endpoint, S4, "127.0.0.1", echo_server.port,
                        user=C.AUTH_USER).close()


def test_pysocks_create_connection_large_echo(auth_proxy, echo_server):
    payload = bytes(range(256)) * 4096  # 1 MiB
    s = socks.create_connection(("127.0.0.1", echo_server.port), timeout=10,
                                proxy_type=S5, proxy_addr=auth_proxy.endpoint.host,
                                proxy_port=auth_proxy.endpoint.port, proxy_rdns=False,
                                proxy_username=C.AUTH_USER, proxy_password=C.AUTH_PASSWORD)
    with s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        assert sc.read_until_closed(s, timeout=20, limit=len(payload) + 1) == payload
