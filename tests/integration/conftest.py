"""Shared fixtures for the black-box integration tests.

Run with Debian's interpreter: ``/usr/bin/python3 -m pytest tests/integration``.
Feature folders (cli/, clients/, socks5/, socks4/, relay/, lifecycle/) hold
the tests; tests/support/ holds the servers, the launcher and the raw client.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # .../tests

from support import constants as C  # noqa: E402
from support.dns import DNSServer  # noqa: E402
from support.netns import NetNS, NetNSUnavailable  # noqa: E402
from support import proxy as proxy_mod  # noqa: E402
from support.proxy import Proxy, implementation  # noqa: E402
from support.servers import EchoServer, HTTPServer  # noqa: E402

DEFAULT_DEADLINE = 60.0


def pytest_configure(config):
    config.addinivalue_line("markers", "deadline(seconds): per-test wall-clock limit "
                            f"(default {DEFAULT_DEADLINE:.0f}s)")
    config.addinivalue_line("markers", "chromium: drives headless Chromium (slow start-up)")


class DeadlineExceeded(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Every test call is bounded in time: SIGALRM raises in the main thread,
    interrupting any blocking call, and fixtures' finalizers then clean up."""
    marker = item.get_closest_marker("deadline")
    seconds = float(marker.args[0]) if marker else DEFAULT_DEADLINE

    def on_alarm(signum, frame):
        raise DeadlineExceeded(f"test exceeded its {seconds:.0f}s deadline")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of every live proxy's log to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("call", "setup"):
        for p in list(proxy_mod.LIVE):
            lines = p.log.snapshot()[-60:]
            state = p.unexpected_exit() or "running"
            report.sections.append((f"proxy log (pid {p.proc.pid}, {state}: {' '.join(p.cmd[1:])})",
                                    "\n".join(lines)))


# ---- proxies ----------------------------------------------------------------

@pytest.fixture
def make_proxy(request):
    """Factory: ``make_proxy(*args, listen=[...], prefix=[...])`` starts a
    proxy (DEFAULT_ARGS first) and stops it at teardown."""
    started: list[Proxy] = []

    def factory(*args, listen=("127.0.0.1:0",), prefix=(), **kw) -> Proxy:
        p = Proxy(args, listen, prefix=prefix, **kw)
        started.append(p)
        return p

    yield factory
    errors = []
    for p in reversed(started):
        try:
            p.finish()
        except AssertionError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def dns_server():
    with DNSServer(C.DNS_RECORDS) as dns:
        yield dns


@pytest.fixture(scope="module")
def noauth_proxy(dns_server):
    """No users; listens on 127.0.0.1:0 and [::1]:0."""
    p = Proxy(["--dns-server", dns_server.addr_text], ["127.0.0.1:0", "[::1]:0"])
    yield p
    p.finish()


@pytest.fixture(scope="module")
def auth_proxy(dns_server):
    """One user (alice:wonderland); listens on 127.0.0.1:0 and [::1]:0."""
    p = Proxy(["--user", f"{C.AUTH_USER}:{C.AUTH_PASSWORD}", "--dns-server", dns_server.addr_text],
              ["127.0.0.1:0", "[::1]:0"])
    yield p
    p.finish()


# ---- targets ----------------------------------------------------------------

@pytest.fixture(scope="session")
def echo_server():
    s = EchoServer("127.0.0.1")
    yield s
    s.close()


@pytest.fixture(scope="session")
def echo_server6():
    s = EchoServer("::1")
    yield s
    s.close()


@pytest.fixture(scope="session")
def http4():
    s = HTTPServer("127.0.0.1")
    yield s
    s.close()


@pytest.fixture(scope="session")
def http6():
    s = HTTPServer("::1")
    yield s
    s.close()


@pytest.fixture
def netns():
    try:
        ns = NetNS()
    except NetNSUnavailable as exc:
        pytest.skip(str(exc))
    yield ns
    ns.close()


@pytest.fixture
def clean_env():
    """Environment for client subprocesses: no proxy variables leaking in."""
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                                "socks_proxy", "socks5_proxy")}
    return env


@pytest.fixture(scope="session")
def impl():
    return implementation()
