#!/usr/bin/env bash
# The one place where CleverSocks' Debian 12 dependencies are pinned by name.
# Usage: scripts/install-deps.sh [build|test|bench|package|all]   (default: all)
# Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail

BUILD_PKGS=(
  g++ cmake ninja-build make pkg-config
  libboost1.81-dev          # Asio + Beast (header-only), Boost.System
  libspdlog-dev libfmt-dev  # logging
  libcli11-dev              # command line
  libc-ares-dev             # asynchronous DNS
  libyaml-cpp-dev           # configuration
  nlohmann-json3-dev        # JSON (admin API, pool files)
  libsodium-dev             # argon2id, constant-time compare, keyed hash
  libmaxminddb-dev          # GeoIP
  libsystemd-dev            # sd_notify
  libsqlite3-dev libpq-dev  # traffic recorder stores
)
TEST_PKGS=(
  libgtest-dev libgmock-dev
  clang libclang-rt-14-dev  # sanitizers + libFuzzer
  curl ncat proxychains4 python3-socks python3-pytest
  chromium
  iproute2 procps
  python3-yaml groff-base   # tests/integration/deploy: manifests, man page
  python3-prometheus-client # tests/integration/ops: Prometheus text-format parser
  dante-client tnftp python3-pyftpdlib  # tests/integration/udp_bind: active FTP via socksify (BIND)
)
BENCH_PKGS=(
  libbenchmark-dev dante-server microsocks python3   # python3: bench/report.py
)
PACKAGE_PKGS=(
  dpkg-dev                  # dpkg-shlibdeps, for `make package` (CPack DEB)
)

want=()
case "${1:-all}" in
  build) want=("${BUILD_PKGS[@]}") ;;
  test)  want=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}") ;;
  bench) want=("${BUILD_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
  package) want=("${BUILD_PKGS[@]}" "${PACKAGE_PKGS[@]}") ;;
  all)   want=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${BENCH_PKGS[@]}" "${PACKAGE_PKGS[@]}") ;;
  *) echo "usage: $0 [build|test|bench|package|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
