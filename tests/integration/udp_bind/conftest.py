"""Fixtures for the UDP ASSOCIATE and BIND tests: UDP echo targets on
127.0.0.1 and ::1, proxies started from a YAML file (``udp:``, ``bind:``,
``forwarding:`` sections) with the harness' DEFAULT_ARGS, and a reader of
/metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from support.admin import AdminClient
from support.proxy import implementation
from support.udp import UDPEchoServer, metric


def pytest_collection_modifyitems(config, items):
    # Exact addresses, limits, YAML keys and metrics are CleverSocks behaviour.
    if implementation() != "cleversocks":
        skip = pytest.mark.skip(reason="CleverSocks UDP/BIND behaviour")
        for item in items:
            if Path(str(item.fspath)).parent == Path(__file__).parent:
                item.add_marker(skip)


@pytest.fixture
def udp_echo():
    with UDPEchoServer("127.0.0.1") as s:
        yield s


@pytest.fixture
def udp_echo6():
    with UDPEchoServer("::1") as s:
        yield s


@pytest.fixture
def configured(make_proxy, tmp_path):
    """``configured(config, *args, **kw)``: writes ``config`` (a dict) to a
    YAML file and starts a proxy with ``-c FILE`` plus DEFAULT_ARGS and
    ``args`` (listen defaults to 127.0.0.1:0)."""
    counter = [0]

    def start(config: dict, *args, **kw):
        counter[0] += 1
        path = tmp_path / f"proxy-{counter[0]}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return make_proxy("-c", str(path), *args, **kw)
    return start


@pytest.fixture
def metrics_of():
    """``metrics_of(proxy)(name, **labels)``: one sample, read now."""
    def bind(proxy):
        admin = AdminClient.of(proxy)

        def read(name: str, **labels: str) -> float:
            return metric(admin.metrics_text(), name, **labels)
        return read
    return bind
