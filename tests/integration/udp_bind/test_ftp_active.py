"""An active-mode FTP download through Dante's ``socksify`` (Debian
dante-client) with a classic command-line client (tnftp, ``passive off``)
against a local pyftpdlib server: the data connection comes back through a
SOCKS BIND on the proxy.

Dante's client library adds direct routes for loopback and local networks
by itself (for CONNECT and UDP, not BIND).  With them (Dante's default) the
FTP control connection goes direct and the BIND request names 0.0.0.0 as
the peer (Dante does not know it); with ``SOCKS_AUTOADD_LANROUTES=no`` the
control connection is a CONNECT through the proxy too and the BIND names
the FTP server's address.  Both are real-world configurations.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import threading
import warnings

import pytest

from support import routing as rt

with warnings.catch_warnings():  # pyftpdlib 1.5 imports asyncore, asynchat, spwd
    warnings.simplefilter("ignore", DeprecationWarning)
    pyftpdlib = pytest.importorskip("pyftpdlib")  # Debian python3-pyftpdlib
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

FILE_BYTES = 3 * 1024 * 1024 + 12345
FTP_USER, FTP_PASSWORD = "ftpuser", "ftp-secret"


def ftp_client() -> str:
    for name in ("tnftp", "ftp"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no command-line FTP client (Debian package tnftp)")


@pytest.fixture
def ftp_server(tmp_path):
    """pyftpdlib on 127.0.0.1:0 serving TMP/root (one fixed user), in a
    thread; returns (port, file name, sha256, server)."""
    root = tmp_path / "root"
    root.mkdir()
    data = os.urandom(FILE_BYTES)
    (root / "payload.bin").write_bytes(data)
    auth = DummyAuthorizer()
    auth.add_user(FTP_USER, FTP_PASSWORD, str(root), perm="elr")

    class Handler(FTPHandler):
        pass
    Handler.authorizer = auth
    Handler.timeout = 30
    # The data connection comes from the proxy's address, not the client's.
    Handler.permit_foreign_addresses = True
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    server = ThreadedFTPServer(("127.0.0.1", 0), Handler)
    stop = threading.Event()

    def loop():
        for _ in range(10_000_000):  # bounded; each pass waits at most 50 ms for I/O
            if stop.is_set():
                break
            server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)

    t = threading.Thread(target=loop, daemon=True, name="ftp-server")
    t.start()
    yield server.address[1], "payload.bin", hashlib.sha256(data).hexdigest(), server
    stop.set()
    t.join(10)
    server.close_all()


def socks_conf(tmp_path, proxy, proxyprotocol: str):
    path = tmp_path / "dante.conf"
    path.write_text(
        "logoutput: stderr\n"
        "route {\n"
        f"    from: 0.0.0.0/0 to: 0.0.0.0/0 via: {proxy.endpoint.host} port = {proxy.endpoint.port}\n"
        f"    proxyprotocol: {proxyprotocol}\n"
        "    method: none\n"
        "}\n")
    return path


@pytest.mark.deadline(90)
@pytest.mark.parametrize("proxyprotocol", ["socks_v5", "socks_v4"])
@pytest.mark.parametrize("control", ["via-proxy", "direct"])
def test_active_ftp_download_through_socksify(make_proxy, ftp_server, tmp_path, clean_env,
                                              proxyprotocol, control):
    if not shutil.which("socksify"):
        pytest.skip("socksify missing (Debian package dante-client)")
    client = ftp_client()
    port, name, sha, _server = ftp_server
    proxy = make_proxy()
    out = tmp_path / "downloaded.bin"
    env = dict(clean_env, SOCKS_CONF=str(socks_conf(tmp_path, proxy, proxyprotocol)))
    if control == "via-proxy":
        env["SOCKS_AUTOADD_LANROUTES"] = "no"
    script = (f"user {FTP_USER} {FTP_PASSWORD}\n"
              "passive off\n"
              "binary\n"
              f"get {name} {out}\n"
              "quit\n")
    r = subprocess.run(["socksify", client, "-n", "-v", "127.0.0.1", str(port)],
                       input=script.encode(), capture_output=True, timeout=60, env=env)
    transcript = (r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace"))[-3000:]
    assert out.exists(), f"nothing downloaded; ftp said:\n{transcript}"
    got = hashlib.sha256(out.read_bytes()).hexdigest()
    assert out.stat().st_size == FILE_BYTES and got == sha, \
        f"downloaded {out.stat().st_size} bytes, sha256 {got}; expected {FILE_BYTES}, {sha}\n{transcript}"
    # The data connection came through a BIND on the proxy.
    rec = rt.wait_access(proxy, cmd="bind")
    assert rec["result"] == "ok" and rec["rep"] in ("0x00", "0x5a"), rec
    assert int(rec["down"]) == FILE_BYTES, rec
    if control == "via-proxy":
        c = rt.wait_access(proxy, cmd="connect")
        assert c["target"] == f"127.0.0.1:{port}", c
