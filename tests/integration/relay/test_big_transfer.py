"""A large transfer in both directions at once through the proxy, checked by
sha256 at both ends.  Size: ``CS_BIG_BYTES`` (default 1 GiB per direction;
sanitizer builds can use less)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from support import constants as C
from support import socksclient as sc
from support.servers import DuplexHashServer, DuplexResult, recv_hash, send_pattern

BIG = int(os.environ.get("CS_BIG_BYTES", str(1 << 30)))


@pytest.mark.deadline(600)
@pytest.mark.parametrize("engine", ["adaptive", "splice", "copy"])
def test_full_duplex_transfer_sha256(make_proxy, engine):
    proxy = make_proxy("--relay", engine, "--user", f"{C.AUTH_USER}:{C.AUTH_PASSWORD}")
    creds = (C.AUTH_USER, C.AUTH_PASSWORD)
    total = BIG
    with DuplexHashServer(total, seed=2) as target:
        sock, _ = sc.open_tunnel(proxy.addr, "127.0.0.1", target.port, *creds, timeout=10)
        with sock:
            for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
            sock.settimeout(120)
            client = DuplexResult()

            def sender():
                try:
                    client.sent_sha = send_pattern(sock, 1, total)
                    sock.shutdown(socket.SHUT_WR)
                except BaseException as exc:
                    client.errors.append(exc)

            t0 = time.monotonic()
            t = threading.Thread(target=sender, daemon=True)
            t.start()
            client.recv_bytes, client.recv_sha = recv_hash(sock, total)
            t.join(300)
            assert not t.is_alive(), "client sender did not finish"
            elapsed = time.monotonic() - t0
        server = target.results.get(timeout=120)
    assert not client.errors and not server.errors, (client.errors, server.errors)
    assert client.recv_bytes == total, f"client received {client.recv_bytes} of {total} bytes"
    assert server.recv_bytes == total, f"target received {server.recv_bytes} of {total} bytes"
    assert client.recv_sha == server.sent_sha, "target -> client bytes corrupted"
    assert server.recv_sha == client.sent_sha, "client -> target bytes corrupted"
    print(f"{2 * total / elapsed / (1 << 20):.0f} MiB/s aggregate over {elapsed:.1f}s")
