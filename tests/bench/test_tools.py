"""The benchmark's own tools, loadgen and target_server, on loopback: each bulk I/O mode moves
bytes in both directions, counted the same at both ends, directly and through CleverSocks.

The tools come from BENCH_TOOLS_DIR and the proxy from CLEVERSOCKS_BIN; ctest sets both (see
tests/integration/CMakeLists.txt). Every process is bounded in time."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # .../tests
from support.proxy import Proxy  # noqa: E402

TOOLS = os.environ.get("BENCH_TOOLS_DIR")
PROXY = os.environ.get("CLEVERSOCKS_BIN")

pytestmark = pytest.mark.skipif(not TOOLS, reason="BENCH_TOOLS_DIR not set (ctest sets it)")


class Target:
    """target_server -t 1: its ports from its first line; its byte totals from its last."""

    def __init__(self, bulk):
        self.proc = subprocess.Popen([str(Path(TOOLS) / "target_server"), "-t", "1", "--bulk", bulk],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # printed once every port listens
        assert line.startswith("{"), self.proc.stderr.read()
        self.ports = json.loads(line)

    def stop(self):
        """SIGINT, then its totals line."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=10)
        totals = [json.loads(line) for line in out.splitlines() if '"totals"' in line]
        assert totals, "target_server printed no totals"
        return totals[0]


@pytest.fixture
def proxy():
    """This build's CleverSocks (tests/support's harness: it fails the test if the proxy died or a
    sanitizer reported)."""
    if not PROXY:
        pytest.skip("CLEVERSOCKS_BIN not set")
    p = Proxy(["-w", "1"])
    try:
        yield str(p.endpoint)
    finally:
        p.finish()


def throughput(target_port, direction, bulk, via, streams=2):
    cmd = [str(Path(TOOLS) / "loadgen"), "throughput", *via, "--target", f"127.0.0.1:{target_port}",
           "--dir", direction, "-s", str(streams), "-d", "0.5", "--warmup", "0.1", "--bulk", bulk]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("bulk", ["zerocopy", "copy"])
@pytest.mark.parametrize("through_proxy", [False, True], ids=["direct", "via_cleversocks"])
def test_each_bulk_mode_moves_bytes_both_ways_and_both_ends_agree(bulk, through_proxy, request):
    via = ["--proxy", request.getfixturevalue("proxy")] if through_proxy else ["--direct"]
    target = Target(bulk)
    try:
        assert target.ports["bulk"] == bulk
        up = throughput(target.ports["sink"], "up", bulk, via)
        down = throughput(target.ports["source"], "down", bulk, via)
    finally:
        totals = target.stop()
    for run in (up, down):
        assert run["bulk"] == bulk
        assert run["errors"] == 0
        assert run["bytes"] > 1 << 20, run  # at least a MiB in half a second, even under a sanitizer
    # loadgen counts the measured window only; the target counts every byte, warm-up included.
    assert totals["sink_bytes"] >= up["bytes"]
    assert totals["source_bytes"] >= down["bytes"]


def test_an_unknown_bulk_mode_is_refused_by_both_tools():
    bad = subprocess.run([str(Path(TOOLS) / "target_server"), "--bulk", "mmap"], capture_output=True,
                         text=True, timeout=10)
    assert bad.returncode != 0 and "--bulk is zerocopy or copy" in bad.stderr
    bad = subprocess.run([str(Path(TOOLS) / "loadgen"), "throughput", "--direct", "--target", "127.0.0.1:9",
                          "--bulk", "mmap"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "--bulk is zerocopy or copy" in bad.stderr
