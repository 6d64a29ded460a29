"""Fixtures for the routing tests: proxies configured from a YAML file (the
`forwarding`, `upstreams`, `proxy_pool` and `port_forward` sections) with
the harness' DEFAULT_ARGS (loopback allowed at every hop, free admin port),
and two DNS servers per test -- ``near_dns`` knows no names (a proxy that
must not resolve points at it: its query log proves it did not) and
``far_dns`` knows the test names (the far end of a chain points at it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import routing as rt
from support.dns import DNSServer
from support.proxy import implementation

FAR_NAME, FAR_NAME6 = rt.FAR_NAME, rt.FAR_NAME6


def pytest_collection_modifyitems(config, items):
    if implementation() != "cleversocks":
        skip = pytest.mark.skip(reason="CleverSocks routing features")
        for item in items:
            if Path(str(item.fspath)).parent == Path(__file__).parent:
                item.add_marker(skip)


@pytest.fixture
def routed(make_proxy, tmp_path):
    """``routed(config, *args, name="proxy", **kw)``: writes ``config`` (a
    dict or YAML text) to TMP/NAME.yaml and starts a proxy with ``-c`` (plus
    DEFAULT_ARGS and ``args``)."""
    counter = [0]

    def start(config, *args, name: str | None = None, **kw):
        counter[0] += 1
        path = tmp_path / f"{name or 'proxy'}-{counter[0]}.yaml"
        rt.write_config(path, config)
        p = make_proxy("-c", str(path), *args, **kw)
        p.config_path = path
        return p
    return start


@pytest.fixture
def near_dns():
    with DNSServer({}, ttl=0) as dns:
        yield dns


@pytest.fixture
def far_dns():
    with DNSServer({FAR_NAME: ["127.0.0.1"], FAR_NAME6: ["::1"]}, ttl=0) as dns:
        yield dns
