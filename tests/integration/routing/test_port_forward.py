"""Port forwarding (seeds/004 "PPP -> DCS"): a plain TCP client (curl, no
proxy settings) connects to a `port_forward` listen port of one CleverSocks
(PPP) and reaches a local HTTP target through another (DCS) as its SOCKS5
upstream; the target name is resolved by DCS."""

from __future__ import annotations

import subprocess

import pytest

from support import constants as C
from support import routing as rt
from support.proxy import Endpoint, Proxy
from support.servers import HTTPServer

FAR_NAME = rt.FAR_NAME


def forward_endpoint(proxy, index: int = 0) -> Endpoint:
    """The address of the proxy's index-th port forward, from its log."""
    start = 0
    for _ in range(index + 1):
        i, m = proxy.log.wait_for(rt.FORWARD_RE, 10, start)
        start = i + 1
    return Endpoint(m.group(1).strip("[]"), int(m.group(2)))


def curl(url: str, env, prefix=()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, "curl", "-sS", "--noproxy", "*", "--max-time", "10", url],
                          capture_output=True, timeout=20, env=env)


def test_curl_reaches_the_target_through_an_upstream(routed, make_proxy, near_dns, far_dns, http4, clean_env):
    dcs = make_proxy("--dns-server", far_dns.addr_text, "--user", f"{C.AUTH_USER}:{C.AUTH_PASSWORD}")
    ppp = routed({"port_forward": [{"listen": "127.0.0.1:0", "target": f"{FAR_NAME}:{http4.endpoint.port}",
                                    "via": rt.socks5_url(dcs, C.AUTH_USER, C.AUTH_PASSWORD)}]},
                 "--dns-server", near_dns.addr_text)
    ep = forward_endpoint(ppp)
    for i in range(3):
        r = curl(f"http://{ep}/ppp-{i}", clean_env)
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout == http4.body_for(f"/ppp-{i}")
    assert [q.path for q in http4.requests_for("/ppp-2")] == ["/ppp-2"]
    rec = rt.wait_access(dcs, target=f"{FAR_NAME}:{http4.endpoint.port}", result="ok")
    assert rec["user"] == C.AUTH_USER and rec["dialled"] == f"127.0.0.1:{http4.endpoint.port}"
    rec = rt.wait_access(ppp, target=f"{FAR_NAME}:{http4.endpoint.port}", result="ok")
    assert rec["proto"] == "forward" and rec["dialled"].startswith("via socks5://")
    assert near_dns.queried(FAR_NAME) == []
    assert C.AUTH_PASSWORD not in ppp.log.text()


@pytest.mark.parametrize("via", ["chain", "pool", "direct"])
def test_port_forward_via_chain_pool_or_direct(routed, make_proxy, far_dns, http4, clean_env, via):
    d1 = make_proxy("--dns-server", far_dns.addr_text)
    d2 = make_proxy("--dns-server", far_dns.addr_text)
    pf = {"listen": "127.0.0.1:0", "target": f"127.0.0.1:{http4.endpoint.port}"}
    extra = {}
    if via == "chain":
        pf["via"] = [rt.socks5_url(d1), rt.socks5_url(d2)]
    elif via == "pool":
        pf["via"] = "pool"
        extra = {"proxy_pool": {"members": [rt.socks5_url(d1)]}}
    ppp = routed({"port_forward": [pf], **extra}, "--dns-server", far_dns.addr_text)
    ep = forward_endpoint(ppp)
    r = curl(f"http://{ep}/via-{via}", clean_env)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == http4.body_for(f"/via-{via}")
    rec = rt.wait_access(ppp, target=f"127.0.0.1:{http4.endpoint.port}", result="ok")
    if via == "chain":
        rt.wait_access(d1, target=str(d2.endpoint), result="ok")
        rt.wait_access(d2, target=f"127.0.0.1:{http4.endpoint.port}", result="ok")
    elif via == "pool":
        assert rec["dialled"] == f"via {rt.socks5_url(d1)}"
        rt.wait_access(d1, target=f"127.0.0.1:{http4.endpoint.port}", result="ok")
    else:
        assert rec["dialled"] == f"127.0.0.1:{http4.endpoint.port}"
        assert rt.access_lines(d1) == [] and rt.access_lines(d2) == []


def test_port_forward_to_a_dead_target_closes_and_keeps_serving(routed, make_proxy, http4, clean_env):
    dcs = make_proxy()
    ppp = routed({"port_forward": [
        {"listen": "127.0.0.1:0", "target": f"127.0.0.1:{rt.closed_port()}", "via": rt.socks5_url(dcs)},
        {"listen": "127.0.0.1:0", "target": f"127.0.0.1:{http4.endpoint.port}", "via": rt.socks5_url(dcs)},
    ]})
    dead, alive = forward_endpoint(ppp, 0), forward_endpoint(ppp, 1)
    r = curl(f"http://{dead}/", clean_env)
    assert r.returncode != 0 and r.stdout == b""
    r = curl(f"http://{alive}/second", clean_env)
    assert r.returncode == 0 and r.stdout == http4.body_for("/second")


@pytest.mark.deadline(40)
def test_seed_ppp_to_dcs_on_port_8887(netns, tmp_path, clean_env):
    """The issue's own words: `curl http://127.0.0.1:8887/` reaches the
    target through an upstream CleverSocks (in a namespace: port 8887 is
    ours there)."""
    ns = netns
    started = []
    web = ns.run_in(lambda: HTTPServer("127.0.0.1"))
    try:
        dcs = Proxy([], ["127.0.0.1:1080"], prefix=ns.exec_prefix)
        started.append(dcs)
        cfg = tmp_path / "ppp.yaml"
        rt.write_config(cfg, {"port_forward": [{"listen": "127.0.0.1:8887", "target": f"127.0.0.1:{web.endpoint.port}",
                                                "via": "socks5://127.0.0.1:1080"}]})
        ppp = Proxy(["-c", str(cfg)], ["127.0.0.1:0"], prefix=ns.exec_prefix)
        started.append(ppp)
        assert str(forward_endpoint(ppp)) == "127.0.0.1:8887"
        r = curl("http://127.0.0.1:8887/", clean_env, prefix=ns.exec_prefix)
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout == web.body_for("/")
        rt.wait_access(dcs, target=f"127.0.0.1:{web.endpoint.port}", result="ok")
    finally:
        errors = []
        for p in reversed(started):
            try:
                p.finish()
            except AssertionError as exc:
                errors.append(exc)
        web.close()
    if errors:
        raise errors[0]
