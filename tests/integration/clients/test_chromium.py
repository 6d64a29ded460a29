"""Headless Chromium fetching local pages through the (no-auth) proxy;
Chromium does not do SOCKS auth."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from support import constants as C
from support.proxy import implementation

pytestmark = pytest.mark.chromium


def chromium(proxy_ep, url, tmp_path, env):
    exe = shutil.which("chromium")
    if not exe:
        pytest.skip("chromium not installed (scripts/install-deps.sh test)")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
           f"--proxy-server=socks5://{proxy_ep}", "--proxy-bypass-list=<-loopback>",
           "--dump-dom", url]
    return subprocess.run(cmd, capture_output=True, timeout=90, env=env)


def page(server, path: str, marker: str) -> None:
    server.pages[path] = (f"<!doctype html><html><head><title>{marker}</title></head>"
                          f"<body><p id='m'>{marker}</p></body></html>").encode()


@pytest.mark.deadline(120)
def test_chromium_fetches_page_by_ip(noauth_proxy, http4, tmp_path, clean_env):
    path, marker = "/chromium/ip.html", "cleversocks-chromium-by-ip"
    page(http4, path, marker)
    r = chromium(noauth_proxy.endpoint, http4.url(path), tmp_path, clean_env)
    assert marker in r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")[-2000:]
    assert http4.requests_for(path), "the page was not requested from the target"
    if implementation() == "cleversocks":
        # it really went through the proxy (loopback is not bypassed)
        noauth_proxy.wait_access(target=f"127.0.0.1:{http4.endpoint.port}", proto="socks5")


@pytest.mark.deadline(120)
def test_chromium_fetches_page_by_name_resolved_by_proxy(noauth_proxy, http4, tmp_path, clean_env):
    """target.test is only known to the proxy's DNS server: the page can only
    load if Chromium sent the name through SOCKS5 and the proxy resolved it."""
    path, marker = "/chromium/name.html", "cleversocks-chromium-by-name"
    page(http4, path, marker)
    r = chromium(noauth_proxy.endpoint, http4.url(path, host=C.NAME_V4), tmp_path, clean_env)
    assert marker in r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")[-2000:]
    reqs = http4.requests_for(path)
    assert reqs and reqs[0].host_header == f"{C.NAME_V4}:{http4.endpoint.port}"


@pytest.mark.deadline(120)
def test_chromium_over_ipv6_listener_to_ipv6_target(noauth_proxy, http6, tmp_path, clean_env):
    import socket
    path, marker = "/chromium/v6.html", "cleversocks-chromium-v6"
    page(http6, path, marker)
    r = chromium(noauth_proxy.endpoint_for(socket.AF_INET6), http6.url(path), tmp_path, clean_env)
    assert marker in r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")[-2000:]
