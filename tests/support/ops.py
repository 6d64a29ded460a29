"""Helpers for the operations tests (tests/integration/ops): YAML
configurations for proxies started with ``-c FILE``, file updates the way
operators and Kubernetes make them, and waiting for reloads in the log.

Proxies for these tests do NOT get the harness' ``--allow 127.0.0.0/8``
rules: those are command-line rules, which come before the file's and would
shadow every rule a test puts in the file.  Instead the file turns the
loopback built-in block off, and each test states its own rules.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import security as sec
from . import socksclient as sc
from .admin import AdminClient
from .proxy import Proxy

# Every start: a free admin port; nothing else from DEFAULT_ARGS.
OPS_DEFAULT_ARGS = ["--admin-listen", "127.0.0.1:0"]

# The base of every test configuration: loopback targets reachable.
BASE_CONFIG = {"acl": {"builtin_blocks": {"loopback": False}}}

RELOADED_RE = re.compile(r"configuration reloaded \(([^)]+)\): generation (\d+), (\d+) user\(s\), (\d+) rule\(s\)")
REFUSED_RE = re.compile(r"reload \(([^)]+)\) refused, still serving generation (\d+)")


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def render(config) -> str:
    """A configuration dict (merged onto BASE_CONFIG) as YAML; text as is."""
    if isinstance(config, str):
        return config
    return yaml.safe_dump(merge(BASE_CONFIG, config or {}), sort_keys=False)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` the way careful tools do: write a temporary file in
    the same directory, then rename it over the old one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_in_place(path: Path, text: str) -> None:
    """Rewrite ``path`` in place (truncate + write), the way editors do."""
    with open(path, "w") as f:
        f.write(text)


@dataclass
class OpsProxy:
    proxy: Proxy
    config_path: Path
    admin: AdminClient | None

    @property
    def addr(self):
        return self.proxy.addr

    @property
    def log(self):
        return self.proxy.log

    def mark(self) -> int:
        """Index of the next log line (wait for events after this point)."""
        return len(self.proxy.log.snapshot())

    def write(self, config, atomic: bool = True) -> None:
        (write_atomic if atomic else write_in_place)(self.config_path, render(config))

    def wait_reloaded(self, trigger: str, start: int, timeout: float = 10.0) -> int:
        """Wait for "configuration reloaded (TRIGGER): generation N" at or
        after log line ``start``; returns N."""
        def match(line):
            m = RELOADED_RE.search(line)
            return m if m and m.group(1) == trigger else None
        _, m = self.proxy.log.wait_for(match, timeout, start)
        return int(m.group(2))

    def wait_refused(self, trigger: str, start: int, timeout: float = 10.0) -> tuple[int, int]:
        """Wait for "reload (TRIGGER) refused, still serving generation N";
        returns (N, index of that line)."""
        def match(line):
            m = REFUSED_RE.search(line)
            return m if m and m.group(1) == trigger else None
        i, m = self.proxy.log.wait_for(match, timeout, start)
        return int(m.group(2)), i

    def sighup(self) -> None:
        self.proxy.proc.send_signal(signal.SIGHUP)


def rep_of(proxy_addr, host: str, port: int, **kw) -> int:
    """The SOCKS5 REP for a fresh CONNECT (the socket is closed)."""
    return sec.socks5_rep(proxy_addr, host, port, **kw)


def tunnel(proxy_addr, port: int, host: str = "127.0.0.1", **kw):
    """An open SOCKS5 tunnel (REP 0 asserted)."""
    sock, _ = sc.open_tunnel(proxy_addr, host, port, **kw)
    return sock
