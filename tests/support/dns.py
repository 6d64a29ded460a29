"""A tiny authoritative UDP DNS server for tests.

Answers A and AAAA queries from a dict ``name -> [ip, ...]`` (IPv4 entries
answer A, IPv6 entries answer AAAA), NOERROR with no answer for a known name
without a record of the asked type, and NXDOMAIN for every other name.
Every query is recorded as ``(name, qtype)`` in ``queries``.

    dns = DNSServer({"target.test": ["127.0.0.1", "::1"]})
    proxy = Proxy(["--dns-server", dns.addr_text])
    dns.set("evil.test", ["10.0.0.1"])      # change answers at run time
"""

from __future__ import annotations

import ipaddress
import selectors
import socket
import struct
import threading

QTYPE_A = 1
QTYPE_AAAA = 28
QTYPE_NAMES = {1: "A", 28: "AAAA", 5: "CNAME", 15: "MX", 16: "TXT", 33: "SRV", 65: "HTTPS"}
RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


class DNSServer:
    def __init__(self, records: dict[str, list[str]] | None = None,
                 host: str = "127.0.0.1", ttl: int = 60, sock: socket.socket | None = None):
        self.ttl = ttl
        self._records: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.queries: list[tuple[str, str]] = []
        for name, ips in (records or {}).items():
            self.set(name, ips)
        if sock is None:
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(fam, socket.SOCK_DGRAM)
            sock.bind((host, 0))
        self.sock = sock
        self.host, self.port = sock.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="dns-server")
        self._thread.start()

    @property
    def addr_text(self) -> str:
        """The ``IP:PORT`` form ``--dns-server`` takes."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def set(self, name: str, ips: list[str]) -> None:
        for ip in ips:
            ipaddress.ip_address(ip)  # validate early
        with self._lock:
            self._records[_norm(name)] = list(ips)

    def remove(self, name: str) -> None:
        with self._lock:
            self._records.pop(_norm(name), None)

    def queried(self, name: str) -> list[str]:
        with self._lock:
            return [t for n, t in self.queries if n == _norm(name)]

    def wait_query(self, name: str, timeout: float) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: any(n == _norm(name) for n, _ in self.queries),
                                       timeout):
                raise TimeoutError(f"no DNS query for {name} within {timeout}s")

    # ---- wire -----------------------------------------------------------------

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
                        data, peer = self.sock.recvfrom(4096)
                    except OSError:
                        continue
                    reply = self._answer(data)
                    if reply is not None:
                        try:
                            self.sock.sendto(reply, peer)
                        except OSError:
                            pass
        finally:
            sel.close()

    def _answer(self, data: bytes) -> bytes | None:
        if len(data) < 12:
            return None
        qid, flags, qdcount = struct.unpack("!HHH", data[:6])
        if flags & 0x8000:  # a response, not a query
            return None
        opcode = (flags >> 11) & 0xF
        rd = flags & 0x0100
        try:
            name, qtype, end = self._question(data, 12) if qdcount == 1 else (None, 0, 12)
        except (IndexError, ValueError, struct.error):
            name, qtype, end = None, 0, 12
        if name is None or opcode != 0:
            rcode = RCODE_FORMERR if name is None else RCODE_NOTIMP
            return struct.pack("!HHHHHH", qid, 0x8000 | (opcode << 11) | rd | 0x80 | rcode,
                               0, 0, 0, 0)
        question = data[12:end]
        with self._cond:
            self.queries.append((name, QTYPE_NAMES.get(qtype, str(qtype))))
            self._cond.notify_all()
            ips = self._records.get(name)
        answers = []
        if ips is None:
            rcode = RCODE_NXDOMAIN
        else:
            rcode = RCODE_NOERROR
            for ip in ips:
                addr = ipaddress.ip_address(ip)
                if (qtype == QTYPE_A and addr.version == 4) or \
                        (qtype == QTYPE_AAAA and addr.version == 6):
                    rdata = addr.packed
                    answers.append(struct.pack("!HHHIH", 0xC00C, qtype, 1, self.ttl,
                                               len(rdata)) + rdata)
        # QR, opcode, AA, RD copied, RA, rcode
        rflags = 0x8000 | (opcode << 11) | 0x0400 | rd | 0x0080 | rcode
        header = struct.pack("!HHHHHH", qid, rflags, 1, len(answers), 0, 0)
        return header + question + b"".join(answers)

    @staticmethod
    def _question(data: bytes, pos: int) -> tuple[str, int, int]:
        labels = []
        for _ in range(128):
            length = data[pos]
            pos += 1
            if length == 0:
                break
            if length & 0xC0:
                raise ValueError("compression in question")
            labels.append(data[pos:pos + length].decode("ascii", "replace"))
            pos += length
        else:
            raise ValueError("too many labels")
        qtype, _qclass = struct.unpack("!HH", data[pos:pos + 4])
        return _norm(".".join(labels)), qtype, pos + 4

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
