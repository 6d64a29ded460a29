"""The seed's Kubernetes example (seeds/000 "Smart Upstream Selection"),
verbatim, with local CleverSocks instances standing in for the exit nodes.

The configuration names the exit nodes by name on port 1080, so the scenario
runs inside a network namespace of its own (only `lo`; 127.0.0.0/8 is all
on lo): aws-exit-node.internal -> 127.0.0.2:1080 and gcp-exit-node.internal
-> 127.0.0.3:1080, resolved by the front proxy's DNS server (which knows
only those two names).  The exit nodes and the default pool member resolve
the *.amazonaws.com / *.googleapis.com names with a DNS server of their own:
the front never resolves a target.  `source: FILE` is a file literally
named FILE in the front proxy's working directory.  Each exit node's access
log shows which traffic left through it."""

from __future__ import annotations

import pytest

from support import routing as rt
from support import socksclient as sc
from support.dns import DNSServer
from support.proxy import Proxy
from support.servers import HTTPServer

SEED_CONFIG = """\
forwarding:
  - match: "*.amazonaws.com:*"
    upstream: "aws-exit-node.internal:1080"
    remote: "*.amazonaws.com:*"
  - match: "*.googleapis.com:*"
    upstream: "gcp-exit-node.internal:1080"
    remote: "*.googleapis.com:*"
proxy_pool:
  enabled: true
  source: FILE
"""

AWS_NAMES = ["s3.us-east-1.amazonaws.com", "ec2.amazonaws.com", "sts.amazonaws.com"]
GCP_NAMES = ["storage.googleapis.com", "www.googleapis.com"]
OTHER_NAMES = ["example.test", "amazonaws.com", "googleapis.com.evil.test"]


def http_get(ns, proxy_addr, host: str, port: int, path: str) -> bytes:
    """GET http://host:port/path through the proxy, from inside the namespace."""
    reply, s = rt.socks5_connect(proxy_addr, host, port, sock=ns.socket())
    with s:
        assert reply.rep == sc.REP_SUCCEEDED, (host, reply)
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        return sc.read_until_closed(s, timeout=10)


@pytest.mark.deadline(60)
def test_seed_kubernetes_example(netns, tmp_path):
    ns = netns
    started = []
    servers = []
    try:
        front_dns = ns.run_in(lambda: DNSServer({"aws-exit-node.internal": ["127.0.0.2"],
                                                 "gcp-exit-node.internal": ["127.0.0.3"]}, ttl=0))
        servers.append(front_dns)
        exit_dns = ns.run_in(lambda: DNSServer({n: ["127.0.0.1"] for n in AWS_NAMES + GCP_NAMES + OTHER_NAMES},
                                               ttl=0))
        servers.append(exit_dns)
        web = ns.run_in(lambda: HTTPServer("127.0.0.1"))
        servers.append(web)

        def exit_node(listen):
            p = Proxy(["--dns-server", exit_dns.addr_text], [listen], prefix=ns.exec_prefix)
            started.append(p)
            return p

        aws = exit_node("127.0.0.2:1080")
        gcp = exit_node("127.0.0.3:1080")
        default = exit_node("127.0.0.4:0")
        assert str(aws.endpoint) == "127.0.0.2:1080" and str(gcp.endpoint) == "127.0.0.3:1080"

        workdir = tmp_path / "front"
        workdir.mkdir()
        (workdir / "FILE").write_text(f"{rt.socks5_url(default)}\n")
        (workdir / "config.yaml").write_text(SEED_CONFIG)
        front = Proxy(["-c", "config.yaml", "--dns-server", front_dns.addr_text], ["127.0.0.1:0"],
                      prefix=[*ns.exec_prefix, "env", "-C", str(workdir)])
        started.append(front)

        port = web.endpoint.port
        for name in AWS_NAMES + GCP_NAMES + OTHER_NAMES:
            body = http_get(ns, front.addr, name, port, f"/{name}")
            assert body.startswith(b"HTTP/1.1 200 OK") and f"/{name}".encode() in body, body[:200]
        body = http_get(ns, front.addr, "127.0.0.1", port, "/by-address")
        assert b"/by-address" in body

        for name in AWS_NAMES:
            rec = rt.wait_access(aws, target=f"{name}:{port}", result="ok")
            assert rec["dialled"] == f"127.0.0.1:{port}"
            assert rt.wait_access(front, target=f"{name}:{port}")["route"] == "socks5://aws-exit-node.internal:1080"
        for name in GCP_NAMES:
            rt.wait_access(gcp, target=f"{name}:{port}", result="ok")
            assert rt.wait_access(front, target=f"{name}:{port}")["route"] == "socks5://gcp-exit-node.internal:1080"
        # Unmatched traffic (including the bare apex: "*." means subdomains)
        # leaves through the default pool's member from FILE.
        for target in [f"{n}:{port}" for n in OTHER_NAMES] + [f"127.0.0.1:{port}"]:
            rt.wait_access(default, target=target, result="ok")
            assert rt.wait_access(front, target=target)["route"] == "pool"

        def names(proxy):  # (the pool's health probes connect without a request: target "-")
            return {t.rsplit(":", 1)[0] for t in rt.targets_seen(proxy) if t != "-"}
        assert names(aws) == set(AWS_NAMES)
        assert names(gcp) == set(GCP_NAMES)
        assert names(default) == set(OTHER_NAMES) | {"127.0.0.1"}
        # The front resolved the exit nodes, never a target.
        assert {q for q, _ in front_dns.queries} <= {"aws-exit-node.internal", "gcp-exit-node.internal"}
        assert {"aws-exit-node.internal", "gcp-exit-node.internal"} <= {q for q, _ in front_dns.queries}
        assert len(web.requests) == len(AWS_NAMES + GCP_NAMES + OTHER_NAMES) + 1

        # Any port: the pattern's ":*" (nothing listens: the exit node says 0x05).
        closed = ns.run_in(lambda: rt.closed_port())
        reply, s = rt.socks5_connect(front.addr, AWS_NAMES[0], closed, sock=ns.socket())
        s.close()
        assert reply.rep == sc.REP_REFUSED
        rt.wait_access(aws, target=f"{AWS_NAMES[0]}:{closed}", rep="0x05")
    finally:
        errors = []
        for p in reversed(started):
            try:
                p.finish()
            except AssertionError as exc:
                errors.append(exc)
        for s in servers:
            s.close()
    if errors:
        raise errors[0]
