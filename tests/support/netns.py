"""Network namespaces created by a test: only ``lo`` up, nothing routable.

    with NetNS() as ns:
        proxy = Proxy(listen=["127.0.0.1:0"], prefix=ns.exec_prefix)
        sock = ns.socket(socket.AF_INET)      # a socket living inside ns
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
from itertools import count

CLONE_NEWNET = 0x40000000
_seq = count()


class NetNSUnavailable(RuntimeError):
    pass


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


class NetNS:
    def __init__(self):
        if os.geteuid() != 0:
            raise NetNSUnavailable("network namespaces need root")
        self.name = f"cs-test-{os.getpid()}-{next(_seq)}"
        r = _ip("netns", "add", self.name)
        if r.returncode != 0:
            raise NetNSUnavailable(f"ip netns add failed: {r.stderr.strip()}")
        r = _ip("-n", self.name, "link", "set", "lo", "up")
        if r.returncode != 0:
            self.close()
            raise NetNSUnavailable(f"cannot bring lo up: {r.stderr.strip()}")

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def run_in(self, fn, timeout: float = 10.0):
        """Call ``fn()`` on a thread that has entered the namespace (setns
        changes only the calling thread) and return its result.  Sockets
        created by ``fn`` stay in the namespace and are usable anywhere."""
        box: dict = {}

        def body():
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, os.strerror(err))
                finally:
                    os.close(fd)
                box["result"] = fn()
            except BaseException as exc:
                box["error"] = exc

        t = threading.Thread(target=body, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            raise TimeoutError("netns worker did not finish")
        if "error" in box:
            raise box["error"]
        return box["result"]

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
        return self.run_in(lambda: socket.socket(family, type))

    def close(self) -> None:
        _ip("netns", "del", self.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
