"""proxychains4 (generated config, strict_chain, proxy_dns, auth) and ncat
(--proxy-type socks5 with --proxy-auth, and socks4) through the proxy."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from support import constants as C
from support.proxy import implementation

PAYLOAD = b"".join(b"line %04d through ncat\n" % i for i in range(500))


def need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.skip(f"{tool} not installed (scripts/install-deps.sh test)")
    return path


# ---- proxychains4 -----------------------------------------------------------

def proxychains_conf(tmp_path, entry: str, proxy_dns: bool = True):
    lines = ["strict_chain", "quiet_mode"]
    if proxy_dns:
        lines += ["proxy_dns", "remote_dns_subnet 224"]
    lines += ["tcp_read_time_out 10000", "tcp_connect_time_out 5000", "", "[ProxyList]", entry, ""]
    path = tmp_path / "proxychains.conf"
    path.write_text("\n".join(lines))
    return path


def run_proxychains(conf, url, env):
    need("proxychains4")
    return subprocess.run(["proxychains4", "-f", str(conf), "curl", "-sS", "--max-time", "10", url],
                          capture_output=True, timeout=30, env=env)


@pytest.mark.parametrize("host", [C.NAME_V4, "127.0.0.1"], ids=["proxy-dns-name", "ip"])
def test_proxychains_socks5_with_auth(auth_proxy, http4, tmp_path, clean_env, host):
    ep = auth_proxy.endpoint
    conf = proxychains_conf(tmp_path, f"socks5 {ep.host} {ep.port} {C.AUTH_USER} {C.AUTH_PASSWORD}")
    path = f"/proxychains/socks5/{host}"
    r = run_proxychains(conf, http4.url(path, host=host), clean_env)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert r.stdout == http4.body_for(path)
    if implementation() == "cleversocks":
        rec = auth_proxy.wait_access(user=C.AUTH_USER, target=f"{host}:{http4.endpoint.port}")
        assert rec.get("result") == "ok"


def test_proxychains_socks5_wrong_password_fails(auth_proxy, http4, tmp_path, clean_env):
    ep = auth_proxy.endpoint
    conf = proxychains_conf(tmp_path, f"socks5 {ep.host} {ep.port} {C.AUTH_USER} wrong")
    path = "/proxychains/wrong-password"
    r = run_proxychains(conf, http4.url(path), clean_env)
    assert r.returncode != 0
    assert http4.requests_for(path) == []


def test_proxychains_socks5_noauth(noauth_proxy, http4, tmp_path, clean_env):
    ep = noauth_proxy.endpoint
    conf = proxychains_conf(tmp_path, f"socks5 {ep.host} {ep.port}")
    path = "/proxychains/socks5-noauth"
    r = run_proxychains(conf, http4.url(path, host=C.NAME_V4), clean_env)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert r.stdout == http4.body_for(path)


@pytest.mark.parametrize("host", ["127.0.0.1", C.NAME_V4], ids=["socks4", "socks4a-proxy-dns"])
def test_proxychains_socks4(noauth_proxy, http4, tmp_path, clean_env, host):
    ep = noauth_proxy.endpoint
    conf = proxychains_conf(tmp_path, f"socks4 {ep.host} {ep.port} someone")
    path = f"/proxychains/socks4/{host}"
    r = run_proxychains(conf, http4.url(path, host=host), clean_env)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert r.stdout == http4.body_for(path)


# ---- ncat -------------------------------------------------------------------

def run_ncat(proxy_ep, proxy_type, target_host, target_port, env, auth=None, dns=None,
             data=PAYLOAD):
    need("ncat")
    cmd = ["ncat", "--proxy", str(proxy_ep), "--proxy-type", proxy_type, "-w", "5"]
    if auth is not None:
        cmd += ["--proxy-auth", auth]
    if dns is not None:
        cmd += ["--proxy-dns", dns]
    cmd += [target_host, str(target_port)]
    return subprocess.run(cmd, input=data, capture_output=True, timeout=30, env=env)


@pytest.mark.parametrize("listener", ["v4", "v6"])
def test_ncat_socks5_with_auth(auth_proxy, echo_server, clean_env, listener):
    import socket
    ep = auth_proxy.endpoint_for(socket.AF_INET6 if listener == "v6" else socket.AF_INET)
    r = run_ncat(ep, "socks5", "127.0.0.1", echo_server.port, clean_env,
                 auth=f"{C.AUTH_USER}:{C.AUTH_PASSWORD}")
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert r.stdout == PAYLOAD


def test_ncat_socks5_remote_dns(auth_proxy, echo_server, clean_env):
    r = run_ncat(auth_proxy.endpoint, "socks5", C.NAME_V4, echo_server.port, clean_env,
                 auth=f"{C.AUTH_USER}:{C.AUTH_PASSWORD}", dns="remote")
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert r.stdout == PAYLOAD


def test_ncat_socks5_wrong_password(auth_proxy, echo_server, clean_env):
    r = run_ncat(auth_proxy.endpoint, "socks5", "127.0.0.1", echo_server.port, clean_env,
                 auth=f"{C.AUTH_USER}:nope")
    assert r.returncode != 0
    assert r.stdout == b""


def test_ncat_socks5_noauth(noauth_proxy, echo_server6, clean_env):
    r = run_ncat(noauth_proxy.endpoint, "socks5", "::1", echo_server6.port, clean_env)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert r.stdout == PAYLOAD


@pytest.mark.parametrize("auth", [None, "someone"], ids=["no-userid", "userid"])
def test_ncat_socks4(noauth_proxy, echo_server, clean_env, auth):
    r = run_ncat(noauth_proxy.endpoint, "socks4", "127.0.0.1", echo_server.port, clean_env, auth=auth)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert r.stdout == PAYLOAD


def test_ncat_socks4_refused_by_auth_proxy(auth_proxy, echo_server, clean_env):
    r = run_ncat(auth_proxy.endpoint, "socks4", "127.0.0.1", echo_server.port, clean_env,
                 auth=C.AUTH_USER)
    assert r.returncode != 0
    assert r.stdout == b""
