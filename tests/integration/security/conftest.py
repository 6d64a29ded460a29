"""Fixtures for the security tests: proxies started WITHOUT the harness'
loopback allows (so the built-in blocks are in force and each test states
its own rules in order), a fresh test DNS server per test (its query log
shows whether the proxy asked), and the test GeoIP database."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import security as sec
from support.dns import DNSServer
from support.proxy import REPO_ROOT, implementation

GEOIP_COUNTRY = REPO_ROOT / "tests" / "data" / "geoip" / "GeoLite2-Country-Test.mmdb"


def pytest_collection_modifyitems(config, items):
    # The ACL, limits and log formats are CleverSocks features.
    if implementation() != "cleversocks":
        skip = pytest.mark.skip(reason="CleverSocks security features")
        for item in items:
            if Path(str(item.fspath)).parent == Path(__file__).parent:
                item.add_marker(skip)


@pytest.fixture
def bare_proxy(make_proxy):
    """``bare_proxy(*args, listen=..., prefix=...)``: a proxy with the
    harness' defaults minus its ACL rules."""
    def factory(*args, **kw):
        kw.setdefault("default_args", sec.defaults_without_rules())
        return make_proxy(*args, **kw)
    return factory


@pytest.fixture
def dns():
    """A test DNS server of our own (ttl 0: every lookup reaches it)."""
    with DNSServer({}, ttl=0) as server:
        yield server


@pytest.fixture(scope="session")
def geoip_db() -> str:
    if not GEOIP_COUNTRY.exists():
        pytest.fail(f"{GEOIP_COUNTRY} is missing (tests/data/geoip/ must be in the repository)")
    return str(GEOIP_COUNTRY)
