"""Fixtures for the operations tests: proxies configured from a YAML file in
the test's temporary directory (see tests/support/ops.py) with the admin API
on a free port."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.admin import AdminClient, admin_endpoint
from support.ops import OPS_DEFAULT_ARGS, OpsProxy, render
from support.proxy import implementation


def pytest_collection_modifyitems(config, items):
    if implementation() != "cleversocks":
        skip = pytest.mark.skip(reason="CleverSocks operations features")
        for item in items:
            if Path(str(item.fspath)).parent == Path(__file__).parent:
                item.add_marker(skip)


@pytest.fixture
def ops(make_proxy, tmp_path):
    """``ops(config, *args, env=..., admin=True, config_path=..., **kw)``:
    writes ``config`` (a dict merged onto BASE_CONFIG, or YAML text) to
    TMP/config.yaml (or ``config_path``) and starts a proxy with ``-c``."""
    def start(config=None, *args, env=None, admin=True, config_path: Path | None = None,
              write: bool = True, **kw) -> OpsProxy:
        path = config_path or tmp_path / "config.yaml"
        if write:
            path.write_text(render(config))
        kw.setdefault("default_args", OPS_DEFAULT_ARGS)
        p = make_proxy("-c", str(path), *args, env=env, **kw)
        client = AdminClient(admin_endpoint(p)) if admin else None
        return OpsProxy(p, path, client)
    return start
