"""curl through the proxy in every SOCKS mode, with and without --proxy-user,
over IPv4 and IPv6 listeners, to IPv4, IPv6 and hostname targets."""

from __future__ import annotations

import itertools
import socket
import subprocess

import pytest

from support import constants as C

MODES = ["socks5", "socks5-hostname", "socks4", "socks4a"]
LISTENERS = {"v4": socket.AF_INET, "v6": socket.AF_INET6}
_seq = itertools.count()


def run_curl(mode, proxy_ep, url, env, proxy_user=None):
    cmd = ["curl", "-sS", "--max-time", "10", "--connect-timeout", "5",
           f"--{mode}", str(proxy_ep), url]
    if proxy_user is not None:
        cmd += ["--proxy-user", proxy_user]
    return subprocess.run(cmd, capture_output=True, timeout=20, env=env)


def targets_for(mode):
    """(name, kind) of targets a mode can reach: IP literals curl sends as
    such; hostnames only in the modes where the proxy resolves."""
    out = ["ip4"]
    if mode.startswith("socks5"):
        out.append("ip6")
    if mode in ("socks5-hostname", "socks4a"):
        out.append("name")
    return out


def target_url(kind, http4, http6, path):
    if kind == "ip4":
        return http4, http4.url(path)
    if kind == "ip6":
        return http6, http6.url(path)
    return http4, http4.url(path, host=C.NAME_V4)


NOAUTH_CASES = [
    pytest.param(lst, mode, kind, user, id=f"{lst}-{mode}-{kind}-{'user' if user else 'nouser'}")
    for lst in LISTENERS for mode in MODES for kind in targets_for(mode)
    for user in (None, "bob:secret")
]


@pytest.mark.parametrize("listener,mode,kind,user", NOAUTH_CASES)
def test_curl_noauth_proxy(noauth_proxy, http4, http6, clean_env, listener, mode, kind, user):
    """Without users every mode works; a --proxy-user is ignored (SOCKS5 picks
    no-auth, SOCKS4 USERID is accepted and ignored)."""
    path = f"/curl/{mode}/{listener}/{kind}/{next(_seq)}"
    server, url = target_url(kind, http4, http6, path)
    r = run_curl(mode, noauth_proxy.endpoint_for(LISTENERS[listener]), url, clean_env, user)
    assert r.returncode == 0, f"curl exit {r.returncode}: {r.stderr.decode(errors='replace')}"
    assert r.stdout == server.body_for(path)
    assert len(server.requests_for(path)) == 1


AUTH_OK_CASES = [
    pytest.param(lst, mode, kind, id=f"{lst}-{mode}-{kind}")
    for lst in LISTENERS for mode in ("socks5", "socks5-hostname") for kind in targets_for(mode)
]


@pytest.mark.parametrize("listener,mode,kind", AUTH_OK_CASES)
def test_curl_auth_proxy_with_credentials(auth_proxy, http4, http6, clean_env, listener, mode, kind):
    path = f"/curl-auth/{mode}/{listener}/{kind}/{next(_seq)}"
    server, url = target_url(kind, http4, http6, path)
    r = run_curl(mode, auth_proxy.endpoint_for(LISTENERS[listener]), url, clean_env,
                 f"{C.AUTH_USER}:{C.AUTH_PASSWORD}")
    assert r.returncode == 0, f"curl exit {r.returncode}: {r.stderr.decode(errors='replace')}"
    assert r.stdout == server.body_for(path)
    assert len(server.requests_for(path)) == 1


AUTH_REFUSED_CASES = [
    pytest.param(lst, mode, user, id=f"{lst}-{mode}-{label}")
    for lst in LISTENERS
    for mode in MODES
    for label, user in (("nouser", None),
                        ("wrongpass", f"{C.AUTH_USER}:not-{C.AUTH_PASSWORD}"),
                        ("wronguser", f"mallory:{C.AUTH_PASSWORD}"),
                        ("rightuser", f"{C.AUTH_USER}:{C.AUTH_PASSWORD}"))
    # SOCKS5 with the right credentials succeeds (test above)
    if not (mode.startswith("socks5") and label == "rightuser")
]


@pytest.mark.parametrize("listener,mode,user", AUTH_REFUSED_CASES)
def test_curl_auth_proxy_refuses(auth_proxy, http4, clean_env, listener, mode, user):
    """With users configured: SOCKS5 without or with wrong credentials fails,
    and SOCKS4/4a is refused even with the right user name (no password)."""
    path = f"/curl-refused/{mode}/{listener}/{next(_seq)}"
    url = http4.url(path) if mode != "socks4a" else http4.url(path, host=C.NAME_V4)
    r = run_curl(mode, auth_proxy.endpoint_for(LISTENERS[listener]), url, clean_env, user)
    assert r.returncode != 0, f"curl succeeded through an auth proxy: {r.stdout[:200]!r}"
    assert http4.requests_for(path) == []
