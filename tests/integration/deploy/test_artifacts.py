"""The service-integration artifacts: systemd units, Dockerfile, Kubernetes
manifests, Grafana dashboard, man page and packaging files.

Each check reads the artifact as its consumer would (YAML/JSON parsers,
groff, systemd-analyze, the proxy's own --check-config) and compares it with
the sources of truth: docs/metrics.md for metric names, config.example.yaml
for configuration keys, ``cleversocks --help`` for options. Checks that need
a tool or binary feature this machine lacks are skipped with the reason.

    /usr/bin/python3 -m pytest tests/integration/deploy
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="python3-yaml is not installed")

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
SERVICE = DEPLOY / "systemd" / "cleversocks.service"
SOCKET = DEPLOY / "systemd" / "cleversocks.socket"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
DOCKER_CONFIG = DEPLOY / "docker" / "config.yaml"
K8S = DEPLOY / "kubernetes"
DASHBOARD = DEPLOY / "grafana" / "cleversocks-dashboard.json"
MANPAGE = REPO / "docs" / "cleversocks.1"
METRICS_DOC = REPO / "docs" / "metrics.md"
EXAMPLE_CONFIG = REPO / "config.example.yaml"
PACKAGING = REPO / "cmake" / "Packaging.cmake"
DEBIAN_SCRIPTS = REPO / "cmake" / "debian"

TIMEOUT = 30  # seconds, for every subprocess


def binary() -> Path:
    path = Path(os.environ.get("CLEVERSOCKS_BIN", "build/release/cleversocks"))
    return path if path.is_absolute() else REPO / path


def require_binary() -> Path:
    path = binary()
    if not os.access(path, os.X_OK):
        pytest.skip(f"CleverSocks binary not built: {path}")
    return path


def clean_env() -> dict[str, str]:
    """The environment without CLEVERSOCKS_* overrides (they would change
    what --check-config validates)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CLEVERSOCKS_")}


def run(cmd, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", TIMEOUT)
    return subprocess.run([str(c) for c in cmd], **kw)


def parse_duration(text) -> float:
    """Config/systemd durations: 30, 1.5, 500ms, 30s, 1m, 1h, 1min."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|sec|m|min|h)?\s*", str(text))
    assert m, f"not a duration: {text!r}"
    scale = {"ms": 0.001, None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    return float(m.group(1)) * scale


def example_config() -> dict:
    return yaml.safe_load(EXAMPLE_CONFIG.read_text())


def key_paths(node, prefix="") -> set[str]:
    """Dotted paths of every mapping key (lists are leaves)."""
    out = set()
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            out.add(path)
            out |= key_paths(v, path)
    return out


# ---- YAML and JSON --------------------------------------------------------

YAML_FILES = sorted(DEPLOY.rglob("*.yaml")) + [EXAMPLE_CONFIG]


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_yaml_parses(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} holds no YAML document"
    for d in docs:
        assert isinstance(d, dict), f"{path}: top level is {type(d).__name__}, not a mapping"


def test_dashboard_json_parses():
    d = json.loads(DASHBOARD.read_text())
    assert d["title"] and d["uid"]
    assert isinstance(d["panels"], list) and d["panels"]


# ---- configurations shipped with the artifacts ----------------------------

def k8s_docs() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def k8s_object(kind: str) -> dict:
    found = [d for d in k8s_docs() if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind} in {K8S}, found {len(found)}"
    return found[0]


def configmap_config_text() -> str:
    cm = k8s_object("ConfigMap")
    assert "config.yaml" in cm["data"], "the ConfigMap must have a config.yaml key"
    return cm["data"]["config.yaml"]


SHIPPED_CONFIGS = {
    "kubernetes-configmap": configmap_config_text,
    "docker": lambda: DOCKER_CONFIG.read_text(),
}


@pytest.mark.parametrize("name", sorted(SHIPPED_CONFIGS))
def test_shipped_config_uses_only_documented_keys(name):
    """Every key of the artifact's config.yaml exists in config.example.yaml,
    which documents every key (unknown keys are errors for the loader)."""
    config = yaml.safe_load(SHIPPED_CONFIGS[name]())
    known = key_paths(example_config())
    unknown = sorted(key_paths(config) - known)
    assert not unknown, f"keys not in config.example.yaml: {unknown}"


def check_config_supported(bin_path: Path) -> bool:
    r = run([bin_path, "--help"])
    return "--check-config" in r.stdout


@pytest.fixture(scope="module")
def checker() -> Path:
    """The binary, if it supports --check-config -c FILE."""
    bin_path = require_binary()
    if not check_config_supported(bin_path):
        pytest.skip(f"{bin_path} does not support --check-config -c FILE yet")
    return bin_path


@pytest.fixture(scope="module")
def users_file(checker, tmp_path_factory) -> Path:
    """A users file with one argon2id hash made by `cleversocks passwd`."""
    r = run([checker, "passwd", "alice"], input="correct horse battery staple\n")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    assert line.startswith("alice:$argon2id$"), line
    path = tmp_path_factory.mktemp("users") / "users"
    path.write_text(line + "\n")
    return path


def check_config(bin_path: Path, text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return run([bin_path, "--check-config", "-c", path], env=clean_env())


@pytest.mark.parametrize("name", sorted(SHIPPED_CONFIGS))
def test_shipped_config_passes_check_config(name, checker, users_file, tmp_path):
    config = yaml.safe_load(SHIPPED_CONFIGS[name]())
    if config.get("users_file"):
        # The path exists only inside the pod (Secret mount): point it at a
        # real users file, everything else is checked as shipped.
        config["users_file"] = str(users_file)
    r = check_config(checker, yaml.safe_dump(config, sort_keys=False), tmp_path)
    assert r.returncode == 0, f"--check-config refused the {name} config:\n{r.stdout}{r.stderr}"


def test_check_config_refuses_an_unknown_key(checker, tmp_path):
    """Control for the test above: --check-config really validates."""
    r = check_config(checker, "timeouts:\n  drian: 30s\n", tmp_path)
    assert r.returncode != 0, "an unknown key was accepted"
    assert "drian" in r.stdout + r.stderr


# ---- Grafana dashboard ----------------------------------------------------

def documented_metrics() -> dict[str, dict]:
    """name → {type, labels} from the table in docs/metrics.md."""
    out = {}
    for line in METRICS_DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"`cleversocks_[a-z0-9_]+`", cells[0]):
            labels = set(re.findall(r"`([a-z_]+)`(?:\s*=|\s*[,;]|\s*$)", cells[2]))
            labels = {lab for lab in labels if not lab.startswith("cleversocks_")}
            out[cells[0].strip("`")] = {"type": cells[1], "labels": labels}
    assert len(out) > 10, "could not read the metrics table of docs/metrics.md"
    return out


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, PromQL) for every query: panels, annotations, variables."""
    d = json.loads(DASHBOARD.read_text())
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append((f"panel {p.get('title')!r}", t["expr"]))
            walk(p.get("panels", []))

    walk(d["panels"])
    for a in d.get("annotations", {}).get("list", []):
        if "expr" in a:
            out.append((f"annotation {a['name']!r}", a["expr"]))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            out.append((f"variable {v['name']!r}", q))
    return out


HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def test_dashboard_uses_only_documented_metrics():
    documented = documented_metrics()
    problems = []
    for where, expr in dashboard_exprs():
        for name in re.findall(r"\bcleversocks_[a-z0-9_]+", expr):
            if name in documented:
                if documented[name]["type"] == "histogram":
                    problems.append(f"{where}: histogram {name} used without _bucket/_sum/_count")
                continue
            base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
            if base and documented.get(base, {}).get("type") == "histogram":
                continue
            problems.append(f"{where}: {name} is not in docs/metrics.md")
    assert not problems, "\n".join(problems)


def test_dashboard_uses_only_documented_labels():
    documented = documented_metrics()
    allowed = set().union(*(m["labels"] for m in documented.values())) | {"instance", "job", "le"}
    d = json.loads(DASHBOARD.read_text())
    problems = []
    for where, expr in dashboard_exprs():
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            for label in filter(None, (x.strip() for x in group.split(","))):
                if label not in allowed:
                    problems.append(f"{where}: label {label!r}")
    for p in d["panels"]:
        for t in p.get("targets", []):
            for label in re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", t.get("legendFormat", "")):
                if label not in allowed:
                    problems.append(f"panel {p['title']!r}: legend label {label!r}")
    assert not problems, "labels not in docs/metrics.md:\n" + "\n".join(problems)


def test_dashboard_covers_the_operational_metrics():
    used = set()
    for _, expr in dashboard_exprs():
        used |= set(re.findall(r"\bcleversocks_[a-z0-9_]+", expr))
    wanted = {
        "cleversocks_ready", "cleversocks_sessions_active", "cleversocks_connections_accepted_total",
        "cleversocks_connections_rejected_total", "cleversocks_handshakes_total",
        "cleversocks_auth_attempts_total", "cleversocks_acl_blocks_total", "cleversocks_replies_total",
        "cleversocks_relayed_bytes_total", "cleversocks_session_duration_seconds_bucket",
        "cleversocks_connect_duration_seconds_bucket", "cleversocks_dns_lookups_total",
        "cleversocks_dns_cache_hits_total", "cleversocks_config_generation",
        "cleversocks_config_reloads_total", "cleversocks_user_bytes_total",
    }
    assert not wanted - used, f"no panel shows {sorted(wanted - used)}"
    quantile_exprs = [e for _, e in dashboard_exprs() if "histogram_quantile" in e]
    for q in ("0.5", "0.9", "0.99"):
        for metric in ("cleversocks_session_duration_seconds_bucket", "cleversocks_connect_duration_seconds_bucket"):
            assert any(f"histogram_quantile({q}," in e and metric in e and "le" in e for e in quantile_exprs), \
                f"no p{q} of {metric}"


def test_dashboard_structure():
    d = json.loads(DASHBOARD.read_text())
    assert d["schemaVersion"] >= 36
    assert any(i["name"] == "DS_PROMETHEUS" and i["pluginId"] == "prometheus" for i in d["__inputs"])
    ids = []

    def walk(panels):
        for p in panels:
            ids.append(p["id"])
            assert {"h", "w", "x", "y"} <= set(p["gridPos"]), p["title"]
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
            if p["type"] != "row":
                assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]
                assert p["targets"], p["title"]
                for t in p["targets"]:
                    assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
            walk(p.get("panels", []))

    walk(d["panels"])
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    # The variable of the same name makes ${DS_PROMETHEUS} resolve when the
    # file is provisioned rather than imported.
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"


def test_dashboard_promql_is_valid(tmp_path):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    exprs = [e for where, e in dashboard_exprs() if not where.startswith("variable")]
    subst = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$job": ".*", "$instance": ".*"}
    rules = []
    for i, e in enumerate(exprs):
        for k, v in subst.items():
            e = e.replace(k, v)
        assert "$" not in e, f"unsubstituted variable in {e}"
        rules.append({"record": f"dashboard:expr{i}", "expr": e})
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = run([promtool, "check", "rules", path])
    assert r.returncode == 0, r.stdout + r.stderr


# ---- man page -------------------------------------------------------------

def test_manpage_renders_without_warnings():
    if not shutil.which("groff"):
        pytest.skip("groff is not installed (Debian package groff-base)")
    r = run(["groff", "-man", "-Tutf8", "-ww", "-z", MANPAGE])
    assert r.returncode == 0 and r.stderr == "", r.stderr


def manpage_text() -> str:
    """The roff source with escapes for '-' undone."""
    return MANPAGE.read_text().replace("\\-", "-").replace("\\%", "")


def test_manpage_documents_every_option():
    bin_path = require_binary()
    help_text = run([bin_path, "--help"]).stdout
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])\b", help_text))
    subcommands = re.findall(r"^  ([a-z]+)\s{2,}", help_text.split("Subcommands:")[-1], re.M) \
        if "Subcommands:" in help_text else []
    text = manpage_text()
    missing = sorted(o for o in options | set(subcommands) if not re.search(rf"(?<![\w-]){re.escape(o)}\b", text))
    assert not missing, f"in --help but not in docs/cleversocks.1: {missing}"
    for needed in ("-c", "--check-config", "passwd"):
        assert re.search(rf"(?<![\w-]){re.escape(needed)}\b", text), needed


def test_manpage_sections_and_version():
    text = MANPAGE.read_text()
    sections = re.findall(r"^\.SH\s+\"?([A-Z ]+)\"?$", text, re.M)
    for s in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SIGNALS", "FILES", "ENVIRONMENT",
              "EXIT STATUS", "EXAMPLES", "SEE ALSO"):
        assert s in sections, f"no .SH {s}"
    for word in ("SIGHUP", "SIGTERM", "SIGINT", "CLEVERSOCKS_CONFIG", "/etc/cleversocks/config.yaml"):
        assert word in text, word
    version = re.search(r"project\([^)]*VERSION\s+([0-9.]+)", (REPO / "CMakeLists.txt").read_text()).group(1)
    th = re.search(r"^\.TH\s+(.*)$", text, re.M).group(1)
    assert f"cleversocks {version}" in th, f".TH says {th!r}, the project is version {version}"


# ---- systemd units --------------------------------------------------------

def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections → [(key, value)], keys may repeat (systemd semantics)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, [])
            continue
        assert current is not None, f"{path}: key outside a section: {line}"
        assert "=" in line, f"{path}: not KEY=VALUE: {line}"
        key, value = line.split("=", 1)
        sections[current].append((key.strip(), value.strip()))
    return sections


def values(unit, section, key) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def value(unit, section, key) -> str:
    vs = values(unit, section, key)
    assert vs, f"[{section}] {key}= is missing"
    return vs[-1]


def test_service_unit_required_keys():
    u = parse_unit(SERVICE)
    assert value(u, "Service", "Type") == "notify"
    exec_start = shlex.split(value(u, "Service", "ExecStart"))
    assert exec_start[0] == "/usr/bin/cleversocks"
    assert exec_start[exec_start.index("-c") + 1] == "/etc/cleversocks/config.yaml"
    assert value(u, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert value(u, "Service", "Restart") == "on-failure"
    assert int(value(u, "Service", "LimitNOFILE")) >= 65536
    assert values(u, "Install", "WantedBy") == ["multi-user.target"]


def test_service_stop_timeout_covers_the_drain_deadline():
    u = parse_unit(SERVICE)
    stop = parse_duration(value(u, "Service", "TimeoutStopSec"))
    drain = parse_duration(example_config()["timeouts"]["drain"])
    assert stop > drain, f"TimeoutStopSec={stop}s does not cover timeouts.drain={drain}s"


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RestrictSUIDSGID": "yes",
    "RestrictRealtime": "yes",
    "SystemCallArchitectures": "native",
}


def test_service_unit_hardening():
    u = parse_unit(SERVICE)
    for key, want in HARDENING.items():
        assert value(u, "Service", key) == want, f"{key}= should be {want}"
    assert set(value(u, "Service", "RestrictAddressFamilies").split()) == \
        {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    assert "@system-service" in values(u, "Service", "SystemCallFilter")
    # No capabilities (ports 1080/9090; the socket unit binds lower ports).
    assert value(u, "Service", "CapabilityBoundingSet") == ""
    assert values(u, "Service", "AmbientCapabilities") in ([], [""])
    # Not root: a dedicated user or a dynamic one.
    user = values(u, "Service", "User")
    assert (user and user[-1] not in ("root", "0")) or value(u, "Service", "DynamicUser") == "yes"


def test_socket_unit():
    u = parse_unit(SOCKET)
    assert values(u, "Socket", "ListenStream") == ["127.0.0.1:1080"]
    assert values(u, "Socket", "Accept") in ([], ["no"]), "one service for all connections"
    assert values(u, "Socket", "Service") in ([], ["cleversocks.service"])
    assert values(u, "Install", "WantedBy") == ["sockets.target"]
    # Only SOCKS listeners may be passed: the proxy treats each as one.
    admin_port = example_config()["admin"]["listen"].rsplit(":", 1)[1]
    assert not any(v.endswith(":" + admin_port) for v in values(u, "Socket", "ListenStream"))


def test_units_pass_systemd_analyze(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed")
    units = []
    for src in (SERVICE, SOCKET):
        dst = tmp_path / src.name
        dst.write_text(src.read_text())
        units.append(dst)
    r = run([analyze, "verify", "--man=no", *units])
    # Problems in the files themselves are reported as FILE:LINE: ...; the
    # missing /usr/bin/cleversocks of this machine is not one of them.
    problems = [line for line in (r.stdout + r.stderr).splitlines()
                if re.match(rf"{re.escape(str(tmp_path))}/cleversocks\.\w+:\d+:", line)]
    assert not problems, "\n".join(problems)


# ---- Dockerfile -----------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    out = []
    text = DOCKERFILE.read_text()
    text = re.sub(r"\\\n", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def docker_stages() -> list[list[tuple[str, str]]]:
    stages, preamble = [], []
    for ins in dockerfile_instructions():
        if ins[0] == "FROM":
            stages.append([ins])
        elif stages:
            stages[-1].append(ins)
        else:
            preamble.append(ins)
    return [preamble] + stages


def runtime_packages() -> set[str]:
    for word, rest in docker_stages()[0]:
        if word == "ARG" and rest.startswith("RUNTIME_PACKAGES="):
            return set(rest.split("=", 1)[1].strip('"').split())
    raise AssertionError("no ARG RUNTIME_PACKAGES before the first FROM")


def test_dockerfile_stages():
    preamble, *stages = docker_stages()
    assert len(stages) == 2, "a build stage and a runtime stage"
    build, runtime = stages
    assert build[0][1].split()[0] == "debian:12-slim" and build[0][1].split()[-1] == "build"
    assert runtime[0][1].split()[0] == "debian:12-slim"
    build_runs = " ".join(rest for word, rest in build if word == "RUN")
    assert "scripts/install-deps.sh build" in build_runs
    assert "--target cleversocks" in build_runs
    assert "-DCS_BUILD_TESTS=OFF" in build_runs
    runtime_ins = dict((w, r) for w, r in runtime)  # last of each kind
    user = runtime_ins["USER"].split(":")[0]
    assert user not in ("root", "0") and user.isdigit(), "numeric non-root USER (for runAsNonRoot)"
    assert set(runtime_ins["EXPOSE"].split()) == {"1080", "9090"}
    cmd = json.loads(runtime_ins.get("ENTRYPOINT", "[]")) + json.loads(runtime_ins["CMD"])
    assert cmd[0] == "/usr/bin/cleversocks"
    assert cmd[cmd.index("-c") + 1] == "/etc/cleversocks/config.yaml"
    copies = [r for w, r in runtime if w == "COPY"]
    assert any(c.split()[-1] == "/etc/cleversocks/config.yaml" for c in copies)


def dockerignored(rel: str, patterns: list[str]) -> bool:
    """Enough of .dockerignore's matching for the patterns used there."""
    import fnmatch
    ignored = False
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        pat = pat[3:] if pat.startswith("**/") else pat
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hit = any(fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p.split("/")[-1], pat) and "/" not in pat
                  for p in prefixes)
        if hit:
            ignored = not negate
    return ignored


def test_docker_context_has_what_the_build_copies():
    patterns = [l.strip() for l in DOCKERIGNORE.read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    needed = ["CMakeLists.txt", "cmake/Dependencies.cmake", "cmake/Options.cmake", "src/CMakeLists.txt",
              "app/main.cpp", "scripts/install-deps.sh", "config.example.yaml", "deploy/docker/config.yaml"]
    for _, stage in enumerate(docker_stages()[1:]):
        for word, rest in stage:
            if word == "COPY" and "--from=" not in rest:
                needed += [s for s in rest.split()[:-1] if s != "."]
    for rel in needed:
        assert (REPO / rel).exists(), f"{rel} does not exist"
        assert not dockerignored(rel, patterns), f"{rel} is excluded by .dockerignore"
    for rel in ("build/release/CMakeCache.txt", ".git/HEAD", "tests/unit/test_support.hpp"):
        assert dockerignored(rel, patterns), f"{rel} should not be in the build context"


def test_docker_runtime_packages_cover_the_binary():
    """Every library the binary links directly (DT_NEEDED) comes from a
    package the runtime stage installs (the check the build stage runs);
    indirect ones come with those packages' dependencies."""
    bin_path = require_binary()
    if not all(shutil.which(t) for t in ("ldd", "readelf")) or not Path("/var/lib/dpkg/info").is_dir():
        pytest.skip("needs ldd, readelf and dpkg's database (Debian)")
    sonames = re.findall(r"\(NEEDED\).*\[(.+)\]", run(["readelf", "-d", bin_path]).stdout)
    resolved = dict(re.findall(r"^\s*(\S+)\s+=>\s+(/\S+)", run(["ldd", bin_path]).stdout, re.M))
    assert sonames
    if any(so.startswith(("libasan", "libtsan", "libubsan")) for so in sonames):
        pytest.skip("sanitizer build: its runtime libraries are not part of the image")
    patterns = {}
    for so in sonames:
        if so.startswith("ld-linux"):
            continue
        assert so in resolved, f"ldd cannot resolve {so}"
        patterns[so] = f"*/{Path(resolved[so]).parent.name}/{so}"
    # What `dpkg -S PATTERN` answers, read from dpkg's file lists directly
    # (one pass instead of one slow dpkg -S per library).
    suffixes = {p[1:]: so for so, p in patterns.items()}  # "/x86_64-linux-gnu/libfoo.so.1"
    owners: dict[str, set[str]] = {so: set() for so in patterns}
    for listing in Path("/var/lib/dpkg/info").glob("*.list"):
        for line in listing.read_text(errors="replace").splitlines():
            for suffix, so in suffixes.items():
                if line.endswith(suffix):
                    owners[so].add(listing.stem.split(":")[0])
    for so, pkgs in owners.items():
        assert pkgs, f"{so} belongs to no Debian package: the image could not install it"
    needed = set().union(*owners.values())
    missing = needed - runtime_packages() - {"libc6", "libgcc-s1"}
    assert not missing, f"add to RUNTIME_PACKAGES in the Dockerfile: {sorted(missing)}"


# ---- Kubernetes -----------------------------------------------------------

def container() -> dict:
    spec = k8s_object("Deployment")["spec"]["template"]["spec"]
    (c,) = [c for c in spec["containers"] if c["name"] == "cleversocks"]
    return c


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def test_k8s_objects_and_labels():
    kinds = sorted(d["kind"] for d in k8s_docs())
    assert kinds == ["ConfigMap", "Deployment", "Service"]
    dep = k8s_object("Deployment")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    svc = k8s_object("Service")
    assert svc["spec"]["selector"].items() <= labels.items()
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kust["resources"]) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def test_k8s_probes_and_ports_match_the_config():
    config = yaml.safe_load(configmap_config_text())
    c = container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["admin"] == port_of(config["admin"]["listen"])
    assert ports["socks"] in {port_of(a if isinstance(a, str) else a["address"]) for a in config["listen"]}
    assert config["admin"]["enabled"] is True
    assert not config["admin"]["listen"].startswith("127."), "the kubelet cannot probe the pod's loopback"
    live, ready = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
    assert live["path"] == "/health" and ready["path"] == "/ready"
    for probe in (live, ready):
        assert probe["port"] in ("admin", ports["admin"])
    svc_ports = k8s_object("Service")["spec"]["ports"]
    assert [p["targetPort"] for p in svc_ports] == ["socks"], "only the SOCKS port in the Service"
    ann = k8s_object("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true"
    assert int(ann["prometheus.io/port"]) == ports["admin"]
    assert ann["prometheus.io/path"] == "/metrics"


def test_k8s_grace_period_covers_the_drain():
    config = yaml.safe_load(configmap_config_text())
    drain = parse_duration(config.get("timeouts", {}).get("drain", example_config()["timeouts"]["drain"]))
    pre_stop = 0.0
    cmd = container().get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if cmd:
        assert Path(cmd[0]).name == "sleep"
        pre_stop = parse_duration(cmd[1])
    grace = k8s_object("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > pre_stop + drain, f"grace {grace}s <= preStop {pre_stop}s + drain {drain}s"


def test_k8s_pod_security_and_config_mount():
    spec = k8s_object("Deployment")["spec"]["template"]["spec"]
    assert spec["enableServiceLinks"] is False, \
        "service links inject CLEVERSOCKS_* variables, which the proxy refuses as unknown overrides"
    pod_sc, sc = spec["securityContext"], container()["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] != 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    c = container()
    assert c["args"][c["args"].index("-c") + 1] == "/etc/cleversocks/config.yaml"
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    (cfg,) = [n for n, v in volumes.items() if v.get("configMap", {}).get("name") == k8s_object("ConfigMap")["metadata"]["name"]]
    assert mounts[cfg]["mountPath"] == "/etc/cleversocks"
    assert "subPath" not in mounts[cfg], "subPath mounts never see ConfigMap updates (no hot reload)"
    config = yaml.safe_load(configmap_config_text())
    if config.get("users_file"):
        users_dir = str(Path(config["users_file"]).parent)
        assert any(m["mountPath"] == users_dir and "subPath" not in m for m in c["volumeMounts"]), \
            f"users_file {config['users_file']} is not on a mounted volume"


def test_k8s_kustomize_builds():
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed")
    r = run([kubectl, "kustomize", K8S])
    assert r.returncode == 0, r.stderr
    assert sorted(d["kind"] for d in yaml.safe_load_all(r.stdout) if d) == ["ConfigMap", "Deployment", "Service"]


# ---- packaging --------------------------------------------------------------

def test_packaging_sources_exist():
    text = PACKAGING.read_text()
    paths = re.findall(r"\$\{CS_PKG_SOURCE_DIR\}/([^\"\s)\\]+)", text)
    paths += [f"cmake/debian/{n}" for n in re.findall(r"\$\{CS_PKG_DEBIAN_DIR\}/([^\"\s)\\]+)", text)]
    paths = [p for p in paths if p != "LICENSE"]  # installed as copyright once it exists
    assert len(paths) >= 9
    for rel in paths:
        assert (REPO / rel).is_file(), f"cmake/Packaging.cmake installs {rel}, which does not exist"
    for dest in ("/lib/systemd/system", "/etc/cleversocks", "share/man/man1", "share/doc/cleversocks",
                 "share/cleversocks/grafana"):
        assert dest in text, dest
    conffiles = (DEBIAN_SCRIPTS / "conffiles").read_text().split()
    assert conffiles == ["/etc/cleversocks/config.yaml"]


@pytest.mark.parametrize("script", ["postinst", "prerm", "postrm"])
def test_maintainer_scripts_are_valid_sh(script):
    path = DEBIAN_SCRIPTS / script
    assert path.read_text().startswith("#!/bin/sh\n")
    r = run(["sh", "-n", path])
    assert r.returncode == 0, r.stderr
    # The account the unit runs as is the one postinst creates.
    if script == "postinst":
        assert f"adduser --system --group" in path.read_text()
        assert value(parse_unit(SERVICE), "Service", "User") in path.read_text()
