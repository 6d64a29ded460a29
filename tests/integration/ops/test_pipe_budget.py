"""A non-root proxy whose user's pipe budget (fs.pipe-user-pages-soft) is
spent: the kernel creates its splice pipes at 2 pages. Relaying must stay
correct, and the operator must be told: one warning in the log and
``cleversocks_relay_pipes_limited_total``.

A helper process running as ``nobody`` spends the budget first (the budget
is per user, for all of that user's processes); the proxy starts as root
and drops to ``nobody`` (``run_as``), as a packaged service would run.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from support import socksclient as sc

NOBODY = 65534

# Creates pipes until the kernel answers with a 2-page one, says so, and
# holds them all until its stdin closes.
HOG = r"""
import fcntl, os, resource, sys
F_GETPIPE_SZ = 1032
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
minimum = 2 * os.sysconf("SC_PAGE_SIZE")
held = []
for _ in range(int(sys.argv[1])):
    held.append(os.pipe())
    if fcntl.fcntl(held[-1][1], F_GETPIPE_SZ) <= minimum:
        print("spent", len(held), flush=True)
        break
else:
    print("never", len(held), flush=True)
sys.stdin.read()
"""


def soft_budget_pages() -> int:
    return int(Path("/proc/sys/fs/pipe-user-pages-soft").read_text())


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no sample {name} in /metrics")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run processes as nobody")
def test_spent_pipe_budget_is_relayed_correctly_counted_and_logged(ops, echo_server):
    soft = soft_budget_pages()
    if soft <= 0:
        pytest.skip("fs.pipe-user-pages-soft is 0 (no limit) here")
    pipes = soft // 16 + 64  # default pipes are 16 pages
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 2 * pipes + 64:
        pytest.skip(f"the helper needs {2 * pipes + 64} descriptors to spend the budget")
    hog = subprocess.Popen([sys.executable, "-c", HOG, str(pipes)], user=NOBODY, group=NOBODY, extra_groups=[],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        first = hog.stdout.readline().split()
        assert first and first[0] == "spent", f"the helper never saw a limited pipe: {first}"

        p = ops({"run_as": {"user": "nobody"}, "acl": {"rules": [{"name": "loopback", "action": "allow", "dst": ["127.0.0.0/8"]}]}})
        assert p.log.wait_for(r"running as user nobody", 10)
        with sc.open_tunnel(p.addr, "127.0.0.1", echo_server.port)[0] as sock:
            # Each direction's splice moves at most 8 KiB through such a pipe.
            for i in range(8):
                sc.echo_roundtrip(sock, bytes([i]) * (64 << 10) + os.urandom(1000))

        p.log.wait_for(r"pipes of 8192 bytes only: this user's pipe buffers exceed fs.pipe-user-pages-soft", 10)
        text = p.admin.get("/metrics").text
        assert metric(text, "cleversocks_relay_pipes_limited_total") >= 1
        assert metric(text, "cleversocks_relay_pipes_created_total") >= metric(
            text, "cleversocks_relay_pipes_limited_total")
        warnings = [line for line in p.log.snapshot() if "fs.pipe-user-pages-soft" in line]
        assert len(warnings) == 1, warnings  # once per process, however many pipes
    finally:
        hog.stdin.close()
        hog.wait(10)
