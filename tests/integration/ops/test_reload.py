"""Hot reload: SIGHUP, a change of the file on disk (inotify, Kubernetes
ConfigMap symlink swaps included) and POST /api/v1/reload.  Existing tunnels
keep running on the snapshot they started with; new sessions see the new
rules; a broken file is refused and nothing changes; users files reload;
restart-only keys are reported and not applied."""

from __future__ import annotations

import hashlib
import os
import random
import re
import socket
import threading

import pytest

from support import security as sec
from support import routing as rt
from support import socksclient as sc
from support.ops import render, rep_of, tunnel, write_atomic
from support.servers import EchoServer

# ---- streaming tunnels ------------------------------------------------------------

CHUNK = 32 * 1024
WINDOW = 4 * CHUNK


class Stream:
    """A tunnel to an echo server carrying data both ways at once until
    stop(): a sender thread writes a seeded byte stream, a receiver thread
    hashes what comes back.  finish() half-closes and compares."""

    def __init__(self, proxy_addr, port: int, seed: int, **kw):
        self.sock = tunnel(proxy_addr, port, **kw)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client = self.sock.getsockname()
        self.seed = seed
        self.sent = 0
        self.received = 0
        self.sent_hash = hashlib.sha256()
        self.recv_hash = hashlib.sha256()
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._rx_done = False
        self._progress = threading.Condition()
        self._tx = threading.Thread(target=self._send, daemon=True)
        self._rx = threading.Thread(target=self._recv, daemon=True)
        self.sock.settimeout(30)
        self._tx.start()
        self._rx.start()

    def _send(self):
        rng = random.Random(self.seed)
        try:
            while not self._stop.is_set():
                # at most WINDOW bytes in flight: the tunnels keep moving
                # without starving the rest of the test of CPU
                with self._progress:
                    self._progress.wait_for(lambda: self.sent - self.received < WINDOW or self._rx_done, 30)
                block = rng.randbytes(CHUNK)
                self.sock.sendall(block)
                self.sent_hash.update(block)
                self.sent += len(block)
            self.sock.shutdown(socket.SHUT_WR)
        except BaseException as exc:  # noqa: BLE001 (reported by finish)
            self.errors.append(exc)

    def _recv(self):
        try:
            while True:
                data = self.sock.recv(1 << 16)
                if not data:
                    break
                self.recv_hash.update(data)
                with self._progress:
                    self.received += len(data)
                    self._progress.notify_all()
        except BaseException as exc:  # noqa: BLE001
            self.errors.append(exc)
        finally:
            with self._progress:
                self._rx_done = True
                self._progress.notify_all()

    def wait_received(self, at_least: int, timeout: float = 20.0) -> None:
        """Block until ``at_least`` bytes came back (proof the tunnel moves)."""
        with self._progress:
            ok = self._progress.wait_for(lambda: self.received >= at_least or not self._rx.is_alive(), timeout)
        assert ok and self.received >= at_least, \
            f"tunnel {self.client}: {self.received} bytes back, wanted {at_least} ({self.errors})"

    def finish(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._tx.join(timeout)
        self._rx.join(timeout)
        self.sock.close()
        assert not self._tx.is_alive() and not self._rx.is_alive(), f"tunnel {self.client}: stuck"
        assert not self.errors, f"tunnel {self.client}: {self.errors!r}"
        assert self.received == self.sent, f"tunnel {self.client}: sent {self.sent}, got back {self.received}"
        assert self.recv_hash.hexdigest() == self.sent_hash.hexdigest(), f"tunnel {self.client}: bytes differ"

    def kill(self) -> None:
        self._stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def acl_config(deny_port: int | None, i: int) -> dict:
    rules = [{"name": "probe-deny", "action": "deny", "ports": [deny_port]}] if deny_port else []
    # "comment" in a rule name: every version differs from the previous one
    rules.append({"name": f"allow-all-v{i}", "action": "allow"})
    return {"acl": {"rules": rules}}


@pytest.mark.deadline(120)
def test_reload_under_load(ops):
    """20 reloads (SIGHUP, file change written atomically or in place, API)
    alternating a rule that denies the probe port, with tunnels streaming
    full duplex all along; plus broken files that must change nothing."""
    with EchoServer() as stream_target, EchoServer() as probe:
        p = ops(acl_config(probe.port, 0))
        assert rep_of(p.addr, "127.0.0.1", probe.port) == sc.REP_NOT_ALLOWED
        streams = [Stream(p.addr, stream_target.port, seed) for seed in range(4)]
        late: list[Stream] = []  # tunnels to the probe port, opened while it was allowed
        try:
            for s in streams:
                s.wait_received(CHUNK)
            gen = p.admin.generation()
            assert gen == 1
            mechanisms = ["sighup", "file-atomic", "api", "file-in-place"]
            for i in range(1, 21):
                deny = i % 2 == 0
                how = mechanisms[i % len(mechanisms)]
                start = p.mark()
                p.write(acl_config(probe.port if deny else None, i), atomic=how != "file-in-place")
                if how == "sighup":
                    p.sighup()
                    new_gen = p.wait_reloaded("SIGHUP", start)
                elif how == "api":
                    r = p.admin.reload()
                    assert r.status == 200, r.text
                    new_gen = r.json()["generation"]
                else:
                    new_gen = p.wait_reloaded("file change", start)
                assert new_gen > gen, f"reload {i} ({how}): generation {new_gen} after {gen}"
                status_gen = p.admin.generation()
                assert status_gen >= new_gen
                gen = status_gen
                # a fresh session sees the new rules
                want = sc.REP_NOT_ALLOWED if deny else sc.REP_SUCCEEDED
                got = rep_of(p.addr, "127.0.0.1", probe.port)
                assert got == want, f"reload {i} ({how}, deny={deny}): REP {got:#04x}, wanted {want:#04x}"
                if not deny and len(late) < 2:
                    late.append(Stream(p.addr, probe.port, 100 + i))
                # the streams keep moving
                for s in streams + late:
                    s.wait_received(s.received + CHUNK)

                if i in (7, 14):  # a broken file: refused, nothing changes
                    start = p.mark()
                    p.write("acl:\n  rules:\n    - action: deny\n      ports: [not-a-port]\n")
                    f = str(p.config_path)
                    refused_gen, at = p.wait_refused("file change", start)
                    assert refused_gen == gen
                    p.log.wait_for(f"{f}:4:15: acl.rules\\[0\\].ports\\[0\\]: expected PORT, LOW-HIGH or \\*",
                                   5, at)
                    r = p.admin.reload()
                    assert r.status == 422 and r.json()["generation"] == gen, r.text
                    start = p.mark()
                    p.sighup()
                    assert p.wait_refused("SIGHUP", start)[0] == gen
                    assert p.admin.generation() == gen
                    assert rep_of(p.addr, "127.0.0.1", probe.port) == want  # old rules still apply
                    for s in streams + late:
                        s.wait_received(s.received + CHUNK)
            assert len(late) == 2
            # the tunnels to the probe port opened while it was allowed went on
            # working through the reloads that deny it
            for s in streams + late:
                s.finish()
            for s in streams + late:
                rec = sec.wait_access(p.proxy, client=sec.fmt_addr(s.client))
                assert (rec["result"], rec["up"], rec["down"]) == ("ok", str(s.sent), str(s.sent)), rec
            st = p.admin.status()
            assert st["config_generation"] == gen >= 21
            assert st["ready"] is True
            metrics = p.admin.metrics_text().splitlines()
            assert f'cleversocks_config_reloads_total{{result="success"}} {gen - 1}' in metrics
            assert 'cleversocks_config_reloads_total{result="failure"} 6' in metrics  # 2 × (file, API, SIGHUP)
            assert "cleversocks_session_exceptions_total 0" in metrics
        finally:
            for s in streams + late:
                s.kill()


def test_broken_file_is_refused_and_nothing_changes(ops):
    with EchoServer() as target:
        p = ops(acl_config(None, 0))
        held = tunnel(p.addr, target.port)
        with held:
            sc.echo_roundtrip(held, b"before")
            f = str(p.config_path)
            bad = ("timeouts:\n  conect: 5s\n"
                   "acl:\n  default: maybe\n  rules:\n    - action: deny\n      ports: [%d]\n" % target.port)
            expected = [f"{f}:2:3: timeouts.conect: unknown key (did you mean 'connect'?)",
                        f"{f}:4:12: acl.default: expected one of: allow, deny (got 'maybe')"]
            # 1. the file change (inotify)
            start = p.mark()
            p.write(bad)
            gen, at = p.wait_refused("file change", start)
            assert gen == 1
            for i, e in enumerate(expected):
                assert p.log.wait_for(lambda line, e=e: line.endswith("  " + e), 5, at)[0] == at + 1 + i
            # 2. SIGHUP
            start = p.mark()
            p.sighup()
            assert p.wait_refused("SIGHUP", start)[0] == 1
            # 3. the API
            r = p.admin.reload()
            assert r.status == 422
            assert r.json() == {"result": "rejected", "generation": 1, "errors": expected}
            # nothing changed: generation, rules (the deny rule is not in force),
            # the open tunnel, readiness
            assert p.admin.generation() == 1
            assert rep_of(p.addr, "127.0.0.1", target.port) == sc.REP_SUCCEEDED
            sc.echo_roundtrip(held, b"after")
            assert p.admin.get("/ready").status == 200
            # a good file is taken again
            start = p.mark()
            p.write(acl_config(target.port, 1))
            assert p.wait_reloaded("file change", start) == 2
            assert rep_of(p.addr, "127.0.0.1", target.port) == sc.REP_NOT_ALLOWED
            sc.echo_roundtrip(held, b"still")  # started on generation 1: untouched


def test_broken_users_file_is_refused(ops, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("alice:wonderland\n")
    with EchoServer() as target:
        p = ops({"users_file": str(users)})
        start = p.mark()
        write_atomic(users, "alice:wonderland\nno-colon-here\n")
        gen, at = p.wait_refused("file change", start)
        assert gen == 1
        p.log.wait_for("users file has errors", 5, at)
        assert p.admin.generation() == 1
        with tunnel(p.addr, target.port, user="alice", password="wonderland") as s:
            sc.echo_roundtrip(s, b"x")


def assert_auth_required(p) -> None:
    """A client offering only NO AUTH is turned away (05 FF)."""
    with sc.connect(p.addr) as s:
        s.sendall(sc.greeting(sc.NO_AUTH))
        assert sc.read_method(s) == b"\x05\xff", "the proxy serves clients without authentication"


def reloads(p) -> dict[str, str]:
    lines = p.admin.metrics_text().splitlines()
    return {r: next((line.split()[-1] for line in lines
                     if line.startswith(f'cleversocks_config_reloads_total{{result="{r}"}} ')), "missing")
            for r in ("success", "failure")}


@pytest.mark.parametrize("emptied", ["", "# alice left\n\n"], ids=["truncated", "comments-only"])
def test_emptied_users_file_is_refused(ops, tmp_path, emptied):
    """A users file rewritten in place is empty for a moment (`: > users`
    then appending, a slow `cat new > users`). Reloading it as "no users"
    would serve everyone without authentication: the reload is refused and
    the users already loaded keep serving."""
    users = tmp_path / "users.txt"
    users.write_text("alice:wonderland\n")
    with EchoServer() as target:
        p = ops({"users_file": str(users)})
        start = p.mark()
        with open(users, "w") as f:  # truncated in place, closed: IN_CLOSE_WRITE
            f.write(emptied)
        gen, at = p.wait_refused("file change", start)
        assert gen == 1
        p.log.wait_for(re.escape(f"users file '{users}' names no user: refusing to run without authentication"),
                       5, at)
        assert p.admin.generation() == 1
        assert reloads(p) == {"success": "0", "failure": "1"}
        assert_auth_required(p)
        with tunnel(p.addr, target.port, user="alice", password="wonderland") as s:
            sc.echo_roundtrip(s, b"x")
        # the writer finishes: the file is what was loaded, nothing to reload
        with open(users, "a") as f:
            f.write("alice:wonderland\n")
        assert_auth_required(p)
        # and later changes are taken as usual
        start = p.mark()
        write_atomic(users, "alice:wonderland\nbob:builder\n")
        assert p.wait_reloaded("file change", start) == 2
        assert sec.login(p.addr, "bob", "builder") == b"\x01\x00"
        assert_auth_required(p)


def test_users_file_pointed_at_a_directory_is_refused(ops, tmp_path):
    """open(2) succeeds on a directory and reads nothing; it must not load
    as an empty users file (0 users: no authentication)."""
    users = tmp_path / "users.txt"
    users.write_text("alice:wonderland\n")
    users_dir = tmp_path / "users.d"
    users_dir.mkdir()
    with EchoServer() as target:
        p = ops({"users_file": str(users)})
        expected = re.escape(f"users file '{users_dir}': cannot be read (Is a directory)")
        start = p.mark()
        p.write({"users_file": str(users_dir)})
        gen, at = p.wait_refused("file change", start)
        assert gen == 1
        p.log.wait_for(expected, 5, at)
        start = p.mark()
        p.sighup()
        gen, at = p.wait_refused("SIGHUP", start)
        assert gen == 1
        p.log.wait_for(expected, 5, at)
        assert p.admin.generation() == 1
        assert reloads(p) == {"success": "0", "failure": "2"}
        assert_auth_required(p)
        with tunnel(p.addr, target.port, user="alice", password="wonderland") as s:
            sc.echo_roundtrip(s, b"x")


def test_emptied_users_file_next_to_inline_users_revokes_its_users(ops, tmp_path):
    """With users in the configuration file authentication stays on, so an
    empty users file is taken (with a warning): that is how its last user is
    removed."""
    users = tmp_path / "users.txt"
    users.write_text("alice:wonderland\n")
    p = ops({"users": [{"name": "dave", "password": "dave-pw"}], "users_file": str(users)})
    assert sec.login(p.addr, "alice", "wonderland") == b"\x01\x00"
    start = p.mark()
    write_atomic(users, "")
    assert p.wait_reloaded("file change", start) == 2
    p.log.wait_for(re.escape(f"users file '{users}' names no user; only the 1 user(s)"), 5, start)
    assert sec.login(p.addr, "alice", "wonderland")[1] != 0x00
    assert sec.login(p.addr, "dave", "dave-pw") == b"\x01\x00"
    assert_auth_required(p)


def test_kubernetes_configmap_symlink_swap(ops, tmp_path):
    """The kubelet layout: DIR/config.yaml → ..data/config.yaml, ..data →
    ..TIMESTAMP/; an update writes a new ..TIMESTAMP directory and renames a
    new ..data symlink over the old one."""
    cm = tmp_path / "configmap"
    cm.mkdir()
    v1 = cm / "..2024_01_01_00_00_00.000000001"
    v1.mkdir()
    (v1 / "config.yaml").write_text(render(acl_config(None, 1)))
    os.symlink(v1.name, cm / "..data")
    os.symlink("..data/config.yaml", cm / "config.yaml")
    with EchoServer() as target:
        p = ops(None, config_path=cm / "config.yaml", write=False)
        assert rep_of(p.addr, "127.0.0.1", target.port) == sc.REP_SUCCEEDED
        held = tunnel(p.addr, target.port)
        with held:
            for i, deny in ((2, True), (3, False)):
                new = cm / f"..2024_01_01_00_00_0{i}.000000001"
                new.mkdir()
                (new / "config.yaml").write_text(render(acl_config(target.port if deny else None, i)))
                start = p.mark()
                tmp_link = cm / "..data_tmp"
                os.symlink(new.name, tmp_link)
                os.rename(tmp_link, cm / "..data")  # the atomic swap
                old = v1 if i == 2 else cm / "..2024_01_01_00_00_02.000000001"
                for f in old.iterdir():
                    f.unlink()
                old.rmdir()
                assert p.wait_reloaded("file change", start) == i
                want = sc.REP_NOT_ALLOWED if deny else sc.REP_SUCCEEDED
                assert rep_of(p.addr, "127.0.0.1", target.port) == want
                sc.echo_roundtrip(held, b"ping %d" % i)


def test_users_file_hot_reload(ops, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("alice:wonderland\n")
    with EchoServer() as target:
        p = ops({"users_file": str(users)})
        assert sec.login(p.addr, "bob", "builder") == b"\x01\x01"

        # add bob: he can log in without a restart
        start = p.mark()
        write_atomic(users, "alice:wonderland\nbob:builder\n")
        assert p.wait_reloaded("file change", start) == 2
        p.log.wait_for(r"generation 2, 2 user\(s\)", 1, start)
        assert p.admin.status()["users"] == 2
        bob_tunnel = tunnel(p.addr, target.port, user="bob", password="builder")
        with bob_tunnel:
            sc.echo_roundtrip(bob_tunnel, b"bob was added")
            client = bob_tunnel.getsockname()

            # remove bob: new logins fail, his open tunnel keeps working
            start = p.mark()
            with open(users, "w") as f:  # in place this time
                f.write("alice:wonderland\n")
            assert p.wait_reloaded("file change", start) == 3
            assert p.admin.status()["users"] == 1
            assert sec.login(p.addr, "bob", "builder") == b"\x01\x01"
            sc.echo_roundtrip(bob_tunnel, b"bob was removed but this tunnel started before" * 100)
            with tunnel(p.addr, target.port, user="alice", password="wonderland") as s:
                sc.echo_roundtrip(s, b"alice unaffected")
            bob_tunnel.shutdown(socket.SHUT_WR)
            assert sc.read_until_closed(bob_tunnel) == b""
        rec = sec.wait_access(p.proxy, client=sec.fmt_addr(client))
        n = len(b"bob was added") + len(b"bob was removed but this tunnel started before") * 100
        assert (rec["user"], rec["result"], rec["up"], rec["down"]) == ("bob", "ok", str(n), str(n))


def test_users_file_next_to_the_config_file(ops, tmp_path):
    """Config and users file in the same directory (one inotify watch for
    both): a change to either reloads."""
    users = tmp_path / "users.txt"
    users.write_text("alice:wonderland\n")
    p = ops({"users_file": str(users)})
    start = p.mark()
    write_atomic(users, "alice:wonderland\ncarol:c\n")
    assert p.wait_reloaded("file change", start) == 2
    start = p.mark()
    p.write({"users_file": str(users), "timeouts": {"connect": "3s"}})
    assert p.wait_reloaded("file change", start) == 3
    assert sec.login(p.addr, "carol", "c") == b"\x01\x00"


def test_restart_only_keys_are_reported_and_not_applied(ops):
    with EchoServer() as target:
        p = ops({"workers": 1, "log": {"format": "text"}, "dns": {"cache_size": 4096}})
        assert p.admin.status()["workers"] == 1
        start = p.mark()
        p.write({"workers": 2, "log": {"format": "json"}, "dns": {"cache_size": 128},
                 "acl": {"rules": [{"name": "live", "action": "deny", "ports": [target.port]}]}})
        p.sighup()
        assert p.wait_reloaded("SIGHUP", start) >= 2
        lines = p.log.snapshot()[start:]
        for key, change in (("workers", "1 → 2"), ("log.format", "text → json"), ("dns.cache_size", "4096 → 128")):
            assert any(f"reload: {key}: {change} needs a restart to take effect; keeping the current value" in line
                       for line in lines), f"no restart notice for {key}:\n" + "\n".join(lines)
        st = p.admin.status()
        assert st["workers"] == 1                       # not applied
        assert not [line for line in p.log.snapshot()[start:] if line.startswith("{")]  # still text logs
        assert rep_of(p.addr, "127.0.0.1", target.port) == sc.REP_NOT_ALLOWED  # the live part applied


def test_port_forward_change_is_reported_and_not_applied(ops):
    """Port forwards are bound at start: a reload that changes one says so
    and the forward keeps its running target."""
    with EchoServer() as a, EchoServer() as b:
        def forward(port):
            return {"port_forward": [{"listen": "127.0.0.1:0", "target": f"127.0.0.1:{port}"}]}

        p = ops(forward(a.port))
        _, m = p.log.wait_for(rt.FORWARD_RE, 10)
        fwd = (m.group(1), int(m.group(2)))
        start = p.mark()
        p.write(forward(b.port))
        p.sighup()
        assert p.wait_reloaded("SIGHUP", start) >= 2
        lines = p.log.snapshot()[start:]
        assert any("reload: port_forward needs a restart to take effect; keeping the current value" in line
                   for line in lines), "no restart notice for port_forward:\n" + "\n".join(lines)
        with socket.create_connection(fwd, timeout=10) as c:
            c.sendall(b"ping")
            assert c.recv(4) == b"ping"
        a.wait_accept()          # the running target took it
        assert b.peers == []     # the file's new one did not


def test_reload_without_changes_reports_no_restart_keys(ops):
    """A reload of an unchanged file (workers left at its default, 0 = one
    per core) must not claim that a restart-only key changed."""
    p = ops({})
    start = p.mark()
    r = p.admin.reload()
    assert r.status == 200
    p.wait_reloaded("api", start)
    noise = [line for line in p.log.snapshot()[start:] if "needs a restart" in line]
    assert not noise, "spurious restart notice on an unchanged reload:\n" + "\n".join(noise)


def test_live_keys_apply_on_reload(ops):
    """A non-restart key (limits.max_sessions_per_ip) takes effect for new
    sessions at once."""
    with EchoServer() as target:
        p = ops({"limits": {"max_sessions_per_ip": 5}})
        a = tunnel(p.addr, target.port)
        with a:
            start = p.mark()
            p.write({"limits": {"max_sessions_per_ip": 1}})
            assert p.wait_reloaded("file change", start) == 2
            # 127.0.0.1 already holds a session: a second one is refused now
            assert sec.refused_at_once(p.addr)
            sc.echo_roundtrip(a, b"the first one still works")


def test_config_file_deleted_then_restored(ops):
    """Deleting the file is a refused reload (the old configuration keeps
    serving); putting it back is picked up."""
    with EchoServer() as target:
        p = ops(acl_config(None, 0))
        start = p.mark()
        p.config_path.unlink()
        gen, at = p.wait_refused("file change", start)
        assert gen == 1
        p.log.wait_for(f"{p.config_path}: cannot be read", 5, at)
        assert rep_of(p.addr, "127.0.0.1", target.port) == sc.REP_SUCCEEDED
        start = p.mark()
        p.write(acl_config(target.port, 1))
        assert p.wait_reloaded("file change", start) == 2
        assert rep_of(p.addr, "127.0.0.1", target.port) == sc.REP_NOT_ALLOWED


def test_users_file_moved_to_another_directory_is_watched(ops, tmp_path):
    """After a reload names a users file elsewhere, changes to the new file
    reload (the watch follows the configuration)."""
    old_dir = tmp_path / "old"
    new_dir = tmp_path / "new"
    old_dir.mkdir()
    new_dir.mkdir()
    (old_dir / "users.txt").write_text("alice:wonderland\n")
    (new_dir / "users.txt").write_text("alice:wonderland\n")
    p = ops({"users_file": str(old_dir / "users.txt")})
    start = p.mark()
    p.write({"users_file": str(new_dir / "users.txt")})
    assert p.wait_reloaded("file change", start) == 2
    start = p.mark()
    write_atomic(new_dir / "users.txt", "alice:wonderland\ndave:d\n")
    assert p.wait_reloaded("file change", start) == 3
    assert sec.login(p.addr, "dave", "d") == b"\x01\x00"


def _wait_idle(p) -> None:
    # the active-session count drops just after the access-log decision: a
    # bounded poll (no event marks it)
    for _ in range(500):
        if p.admin.status()["sessions_active"] == 0:
            return
    raise AssertionError("sessions still active")


def test_log_level_is_live(ops):
    """log.level applies on reload: at warn the (info-level) access log
    stops, back at info it resumes."""
    with EchoServer() as target:
        p = ops({"log": {"level": "info"}})

        def session() -> str:
            with tunnel(p.addr, target.port) as s:
                sc.echo_roundtrip(s, b"x")
                return sec.fmt_addr(s.getsockname())

        def set_level(level: str) -> None:
            p.write({"log": {"level": level}})
            r = p.admin.reload()  # applied when the answer comes
            assert r.status == 200, r.text

        a = session()
        sec.wait_access(p.proxy, client=a)
        set_level("warn")
        b = session()
        _wait_idle(p)  # b's access-log decision is made
        set_level("info")
        c = session()
        sec.wait_access(p.proxy, client=c)
        logged = {sec.access_fields(line).get("client") for line in p.log.snapshot() if "access session=" in line}
        assert a in logged and c in logged
        assert b not in logged, "a session ended at log.level warn was logged at info"


def test_existing_tunnels_keep_their_snapshot(ops):
    """A tunnel runs on the configuration it started with: after a reload
    sets timeouts.idle to 1s, a new idle tunnel is closed after 1s while an
    older one, idle for longer, stays open (it keeps the old 1h)."""
    with EchoServer() as target:
        p = ops({"timeouts": {"idle": "1h"}})
        old = tunnel(p.addr, target.port)
        with old:
            sc.echo_roundtrip(old, b"opened on generation 1")
            start = p.mark()
            p.write({"timeouts": {"idle": "1s"}})
            assert p.wait_reloaded("file change", start) == 2
            with tunnel(p.addr, target.port) as new:
                sc.echo_roundtrip(new, b"opened on generation 2")
                assert sc.read_until_closed(new, timeout=10) == b""  # the 1s idle timeout
            rec = sec.wait_access(p.proxy, result="idle_timeout")
            assert float(rec["duration_ms"]) >= 900
            # `old` has been idle at least as long, and is still served
            sc.echo_roundtrip(old, b"still here")
