"""Start the CleverSocks binary under test and follow its log.

The binary is ``$CLEVERSOCKS_BIN`` (default ``build/release/cleversocks``
relative to the repository root).  Every start passes ``DEFAULT_ARGS`` first,
then the test's own options, then the listen addresses.

CleverSocks logs to stderr one line containing ``listening on ADDR:PORT`` per
listen address and then a line containing ``ready``.  A background thread
reads stderr (and stdout) line by line and keeps every line; waiters block on
a ``threading.Condition`` with a deadline.

``CS_IMPL=dante`` runs the same harness against Debian's Dante (``danted``)
instead.  It is a development aid for validating tests that do not depend on
CleverSocks-specific behaviour: listen addresses are translated into a
temporary danted.conf, options Dante has no equivalent for make the test skip,
and tuning options (timeouts, DNS, verbosity) are ignored.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# Options every start uses, before the test's own.  The ACL issue will block
# loopback targets by default; the lead then sets this to
# ['--allow', '127.0.0.0/8', '--allow', '::1'].
# Loopback targets are blocked by default (built-in ACL blocks); the tests
# talk to servers on 127.0.0.1 and ::1, so every proxy allows exactly those.
DEFAULT_ARGS: list[str] = ["--allow", "127.0.0.0/8", "--allow", "::1",
                           # the admin API binds a free port so proxies can run side by side
                           "--admin-listen", "127.0.0.1:0"]

START_TIMEOUT = float(os.environ.get("CS_START_TIMEOUT", "15"))
STOP_TIMEOUT = 5.0

LISTEN_RE = re.compile(
    r"listening on (\[[0-9A-Fa-f:.%\w]+\]|\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})")
READY_RE = re.compile(r"\bready\b")
ACCESS_RE = re.compile(r"\baccess\b")
FIELD_RE = re.compile(r"\b([a-z_]+)=(\S+)")
SANITIZER_RE = re.compile(
    r"ERROR: (?:Address|Leak|Memory|Thread|UndefinedBehavior)Sanitizer"
    r"|WARNING: ThreadSanitizer|runtime error: ")


def implementation() -> str:
    return os.environ.get("CS_IMPL", "cleversocks")


def binary() -> Path:
    raw = os.environ.get("CLEVERSOCKS_BIN")
    path = Path(raw) if raw else Path("build/release/cleversocks")
    return path if path.is_absolute() else REPO_ROOT / path


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a proxy process: ours minus CLEVERSOCKS_BIN (the
    harness' own variable; CleverSocks refuses unknown CLEVERSOCKS_* names as
    configuration errors), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "CLEVERSOCKS_BIN"}
    env.update(extra or {})
    return env


def require_binary() -> Path:
    """Skip the calling test when the binary has not been built yet."""
    path = binary()
    if implementation() == "cleversocks" and not os.access(path, os.X_OK):
        pytest.skip(f"CleverSocks binary not built: {path}")
    return path


@dataclass(frozen=True)
class Endpoint:
    host: str  # bare address: "127.0.0.1" or "::1"
    port: int

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    @property
    def sockaddr(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def __str__(self) -> str:
        return f"{self.url_host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> "Endpoint":
        host, _, port = text.rpartition(":")
        return cls(host.strip("[]"), int(port))


class LogFollower:
    """Reads a byte stream line by line in a daemon thread and keeps the lines."""

    def __init__(self, stream, name: str):
        self.lines: list[str] = []
        self.eof = False
        self.cond = threading.Condition()
        self._stream = stream
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for raw in iter(self._stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self.cond:
                    self.lines.append(line)
                    self.cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self.cond:
                self.eof = True
                self.cond.notify_all()

    def wait_for(self, pattern, timeout: float, start: int = 0):
        """Return (index, match) of the first line at or after ``start`` matching
        ``pattern`` (a regex or a predicate returning a truthy value)."""
        if isinstance(pattern, str):
            pattern = re.compile(pattern)
        test = pattern.search if hasattr(pattern, "search") else pattern
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    m = test(self.lines[i])
                    if m:
                        return i, m
                    i += 1
                if self.eof:
                    raise LookupError(f"stream closed before a line matched {pattern!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no line matched {pattern!r} within {timeout}s")
                self.cond.wait(remaining)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def snapshot(self) -> list[str]:
        with self.cond:
            return list(self.lines)

    def text(self) -> str:
        return "\n".join(self.snapshot())


class ProxyStartError(RuntimeError):
    pass


def parse_fields(line: str) -> dict[str, str]:
    return dict(FIELD_RE.findall(line))


# Every proxy started and not yet stopped (the test report shows their logs
# when a test fails).
LIVE: list["Proxy"] = []


class Proxy:
    """One running proxy process.  Use as a context manager or call stop()."""

    def __init__(self, args=(), listen=("127.0.0.1:0",), *, prefix=(),
                 start_timeout: float = START_TIMEOUT, wait_ready: bool = True,
                 default_args=None, env: dict[str, str] | None = None):
        """``default_args`` replaces DEFAULT_ARGS for this start (``[]``: none,
        e.g. to see the built-in blocks on loopback targets); ``env`` adds
        environment variables (e.g. CLEVERSOCKS_* overrides)."""
        self.args = list(args)
        self.default_args = list(DEFAULT_ARGS if default_args is None else default_args)
        self.listen = list(listen)
        self.prefix = list(prefix)
        self.endpoints: list[Endpoint] = []
        self.returncode: int | None = None
        self.stop_requested = False  # set by send_signal/stop/kill
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self.impl = implementation()
        if self.impl == "dante":
            cmd = self._dante_command()
        else:
            cmd = [str(require_binary()), *self.default_args, *self.args, *self.listen]
        self.cmd = [*self.prefix, *cmd]
        self.proc = subprocess.Popen(
            self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, cwd=REPO_ROOT, env=child_env(env))
        self.log = LogFollower(self.proc.stderr, f"proxy-stderr-{self.proc.pid}")
        self.out = LogFollower(self.proc.stdout, f"proxy-stdout-{self.proc.pid}")
        LIVE.append(self)
        if wait_ready:
            try:
                self._wait_ready(start_timeout)
            except BaseException:
                self.kill()
                raise

    # ---- start-up -----------------------------------------------------------

    def _wait_ready(self, timeout: float) -> None:
        if self.impl == "dante":
            return self._dante_wait_ready(timeout)
        deadline = time.monotonic() + timeout
        want = max(1, len(self.listen))
        index = 0
        try:
            for _ in range(want):
                index, m = self.log.wait_for(LISTEN_RE, deadline - time.monotonic(), index)
                self.endpoints.append(Endpoint(m.group(1).strip("[]"), int(m.group(2))))
                index += 1
            self.log.wait_for(READY_RE, max(0.0, deadline - time.monotonic()), index)
        except (TimeoutError, LookupError) as exc:
            try:
                code = self.proc.wait(timeout=2 if isinstance(exc, LookupError) else 0.01)
            except subprocess.TimeoutExpired:
                code = None
            self.log.join(1.0)
            raise ProxyStartError(
                f"{' '.join(self.cmd)}: not ready ({exc}); "
                f"{'still running' if code is None else f'exit code {code}'}\n"
                f"stderr:\n{self.log.text()}\nstdout:\n{self.out.text()}") from None

    # ---- addresses ----------------------------------------------------------

    @property
    def endpoint(self) -> Endpoint:
        return self.endpoints[0]

    @property
    def addr(self) -> tuple[str, int]:
        return self.endpoints[0].sockaddr

    def endpoint_for(self, family: int) -> Endpoint:
        for ep in self.endpoints:
            if ep.family == family:
                return ep
        raise LookupError(f"proxy has no listener of family {family}")

    # ---- log ----------------------------------------------------------------

    def access_records(self) -> list[dict[str, str]]:
        return [parse_fields(line) for line in self.log.snapshot() if ACCESS_RE.search(line)]

    def wait_access(self, timeout: float = 10.0, **expected: str) -> dict[str, str]:
        """Wait for an access-log line whose fields include ``expected``."""
        def match(line: str):
            if not ACCESS_RE.search(line):
                return None
            fields = parse_fields(line)
            if all(fields.get(k) == v for k, v in expected.items()):
                return fields
            return None
        _, fields = self.log.wait_for(match, timeout)
        return fields

    # ---- lifecycle ----------------------------------------------------------

    def send_signal(self, sig: int) -> None:
        self.stop_requested = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        self.returncode = self.proc.wait(timeout=timeout)
        self.log.join(2.0)
        self.out.join(2.0)
        return self.returncode

    def kill(self) -> None:
        self.stop_requested = True
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.wait_exit(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        self._cleanup()

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait, then SIGKILL.  Returns the exit code of the SIGTERM
        stop, or None if the process had to be killed."""
        if self.proc.poll() is None:
            self.send_signal(signal.SIGTERM)
            try:
                self.wait_exit(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        else:
            self.wait_exit(timeout)
        self._cleanup()
        return self.returncode

    def unexpected_exit(self) -> str | None:
        """A description if the process exited without being asked to."""
        code = self.proc.poll()
        if code is None or self.stop_requested:
            return None
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        return f"proxy exited unexpectedly ({how})"

    def finish(self) -> None:
        """Stop (SIGTERM, then SIGKILL); fail if the proxy had died on its own
        or a sanitizer reported."""
        died = self.unexpected_exit()
        self.stop()
        assert died is None, died + ":\n" + "\n".join(self.log.snapshot()[-60:])
        reports = self.sanitizer_reports()
        assert not reports, "sanitizer reported:\n" + "\n".join(self.log.snapshot()[-200:])

    def sanitizer_reports(self) -> list[str]:
        return [line for line in self.log.snapshot() if SANITIZER_RE.search(line)]

    def _cleanup(self) -> None:
        if self in LIVE:
            LIVE.remove(self)
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                if stream is not None and self.log.eof and self.out.eof:
                    stream.close()
            except OSError:
                pass
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> "Proxy":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- Dante (development aid) -------------------------------------------

    _DANTE_IGNORED = {"--handshake-timeout", "--connect-timeout", "--idle-timeout",
                      "--drain-timeout", "--dns-server", "-w", "--log-format", "--relay"}

    def _dante_command(self) -> list[str]:
        args = list(self.args)
        while args:
            opt = args.pop(0)
            if opt in self._DANTE_IGNORED:
                args.pop(0)
            elif re.fullmatch(r"-v+|-q", opt):
                pass
            else:
                pytest.skip(f"Dante has no equivalent of CleverSocks option {opt}")
        self._tmpdir = tempfile.TemporaryDirectory(prefix="cs-dante-")
        internal = []
        for text in self.listen or ["127.0.0.1:1080"]:
            ep = Endpoint.parse(text)
            if ep.port == 0:
                # Dante cannot bind port 0: reserve a free port (dev mode only).
                with socket.socket(ep.family) as s:
                    s.bind((ep.host, 0))
                    ep = Endpoint(ep.host, s.getsockname()[1])
            self.endpoints.append(ep)
            internal.append(f"internal: {ep.host} port = {ep.port}")
        conf = "\n".join([
            "logoutput: stderr",
            *internal,
            "external: 127.0.0.1",
            "external: ::1",
            "external.rotation: route",
            "clientmethod: none",
            "socksmethod: none",
            "user.privileged: root",
            "user.unprivileged: nobody",
            "timeout.negotiate: 10",
            "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }",
            "client pass { from: ::1/128 to: ::/0 }",
            "socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 log: disconnect }",
            "socks pass { from: ::1/128 to: ::/0 log: disconnect }",
            "socks pass { from: 127.0.0.0/8 to: ::/0 }",
            "socks pass { from: ::1/128 to: 0.0.0.0/0 }",
            "",
        ])
        path = Path(self._tmpdir.name) / "danted.conf"
        path.write_text(conf)
        return ["danted", "-f", str(path), "-N", "1",
                "-p", str(Path(self._tmpdir.name) / "danted.pid")]

    def _dante_wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.endpoints)
        for _ in range(1000):
            if not pending:
                return
            ep = pending[0]
            with socket.socket(ep.family) as s:
                if s.connect_ex(ep.sockaddr) == 0:
                    pending.pop(0)
                    continue
            if time.monotonic() > deadline:
                break
            try:  # pace the retries on the process' exit, not on a sleep
                self.proc.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                pass
        if pending:
            raise ProxyStartError(f"danted not ready: {self.log.text()}")


def run_cli(args, timeout: float = 10.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the binary to completion (for --version, --help, bad arguments);
    ``env`` adds environment variables."""
    path = require_binary()
    try:
        return subprocess.run([str(path), *args], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout, cwd=REPO_ROOT,
                              env=child_env(env))
    except subprocess.TimeoutExpired as exc:
        err = (exc.stderr or b"").decode(errors="replace")
        raise AssertionError(f"cleversocks {' '.join(args)}: still running after {timeout}s "
                             f"(expected it to exit); stderr:\n{err}") from None


def is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False
