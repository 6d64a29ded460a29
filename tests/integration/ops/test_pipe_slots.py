"""A download whose bytes reach the proxy as fragments smaller than a page,
as data from a NIC does (one fragment per 1,448 B segment): the target
sendfile()s 2 KiB at a time from two pages in turn, so no fragment merges
with the next and a 64 KiB (16-slot) pipe fills its slots with 32 KiB. The
proxy must not take such a short splice for an empty socket: its pipe grows
(``cleversocks_relay_pipes_grown_total``), and every byte arrives intact.

The proxy is stopped (SIGSTOP) until the sender finds its socket full, so
the proxy's first splice after SIGCONT meets a queue of more fragments than
a pipe has slots, however fast the proxy would otherwise keep up."""

from __future__ import annotations

import hashlib
import os
import select
import signal
import socket
import threading

from support import socksclient as sc

CHUNK = 2048
CHUNKS = 2048  # 4 MiB
PAGE = os.sysconf("SC_PAGE_SIZE")


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no sample {name} in /metrics")


class HalfPageSender:
    """Accepts one connection and sends CHUNKS chunks with os.sendfile, from page 0 and page 2
    of a memfd in turn; ``sha`` is the SHA-256 of what it sent."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(20)
        self.port = self.listener.getsockname()[1]
        self.file = os.memfd_create("pipe-slots")
        pages = [os.urandom(CHUNK) + bytes(PAGE - CHUNK), bytes(PAGE), os.urandom(CHUNK) + bytes(PAGE - CHUNK)]
        os.write(self.file, b"".join(pages))
        digest = hashlib.sha256()
        for i in range(CHUNKS):
            digest.update(pages[0 if i % 2 == 0 else 2][:CHUNK])
        self.sha = digest.hexdigest()
        self.errors: list[BaseException] = []
        self.blocked = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.setblocking(False)
                for i in range(CHUNKS):
                    offset, sent = (0 if i % 2 == 0 else 2 * PAGE), 0
                    while sent < CHUNK:  # bounded: each pass sends a byte or waits at most 20 s
                        try:
                            sent += os.sendfile(conn.fileno(), self.file, offset + sent, CHUNK - sent)
                        except BlockingIOError:
                            self.blocked.set()  # the path is full: the proxy has a queue to read
                            if not select.select([], [conn], [], 20)[1]:
                                raise TimeoutError("the proxy read nothing for 20 s")
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            self.blocked.set()

    def close(self):
        self.thread.join(30)
        self.listener.close()
        os.close(self.file)


def test_a_pipe_whose_slots_fill_before_its_bytes_grows_and_the_download_is_intact(ops):
    # splice from the first byte (adaptive mode would copy the first 64 KiB)
    p = ops({"acl": {"rules": [{"name": "loopback", "action": "allow", "dst": ["127.0.0.0/8"]}]}}, "--relay", "splice")
    sender = HalfPageSender()
    try:
        sock, _ = sc.open_tunnel(p.addr, "127.0.0.1", sender.port, timeout=10)
        os.kill(p.proxy.proc.pid, signal.SIGSTOP)
        try:
            assert sender.blocked.wait(20), "the sender never filled the path"
        finally:
            os.kill(p.proxy.proc.pid, signal.SIGCONT)
        digest = hashlib.sha256()
        received = 0
        with sock:
            sock.settimeout(20)
            while received < CHUNK * CHUNKS:  # bounded by the size and the timeout
                data = sock.recv(1 << 20)
                if not data:
                    break
                received += len(data)
                digest.update(data)
    finally:
        sender.close()
    assert not sender.errors, sender.errors
    assert received == CHUNK * CHUNKS
    assert digest.hexdigest() == sender.sha, "bytes corrupted on the way"
    text = p.admin.get("/metrics").text
    assert metric(text, "cleversocks_relay_pipes_grown_total") >= 1, "the pipe never grew"
    assert metric(text, "cleversocks_relay_pipe_grow_refused_total") == 0
