"""The start-up warning for a public listener without authentication, and
--allow-open. Public addresses are only bound inside a namespace the test
creates (nothing outside can reach them); the warning is printed before
`ready`, so its absence is checked once the proxy is ready."""

from __future__ import annotations

import pytest

from support import security as sec

WARNING = "WITHOUT authentication"


def warned(proxy) -> bool:
    return any(WARNING in line for line in proxy.log.snapshot())


@pytest.mark.parametrize("listen", [["0.0.0.0:0"], ["[::]:0"], ["127.0.0.1:0", "0.0.0.0:0"]],
                         ids=["any4", "any6", "loopback+any4"])
def test_public_listener_without_users_warns(netns, bare_proxy, listen):
    p = bare_proxy(listen=listen, prefix=netns.exec_prefix)
    assert warned(p), "no warning for a public listener without users:\n" + p.log.text()
    line = next(line for line in p.log.snapshot() if WARNING in line)
    assert "warn" in line.lower(), line


def test_allow_open_silences_the_warning(netns, bare_proxy):
    p = bare_proxy("--allow-open", listen=["0.0.0.0:0"], prefix=netns.exec_prefix)
    assert not warned(p), p.log.text()


def test_users_silence_the_warning(netns, bare_proxy, tmp_path):
    p = bare_proxy("--user", "alice:pw", listen=["0.0.0.0:0"], prefix=netns.exec_prefix)
    assert not warned(p), p.log.text()
    users = tmp_path / "users"
    users.write_text("bob:pw\n")
    q = bare_proxy("--users-file", str(users), listen=["[::]:0"], prefix=netns.exec_prefix)
    assert not warned(q), q.log.text()


@pytest.mark.parametrize("listen", [["127.0.0.1:0"], ["[::1]:0"], ["127.0.0.2:0"]],
                         ids=["127.0.0.1", "::1", "127.0.0.2"])
def test_loopback_listener_does_not_warn(bare_proxy, listen):
    p = bare_proxy(listen=listen)
    assert not warned(p), p.log.text()
