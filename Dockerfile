# CleverSocks container image: build on Debian 12, run on Debian 12 slim with
# only the shared libraries the binary links.
#
#   docker build -t cleversocks:0.1.0 .
#   docker run -d --name cleversocks --stop-timeout 40 \
#     -p 127.0.0.1:1080:1080 -p 127.0.0.1:9090:9090 cleversocks:0.1.0
#
# The default configuration is deploy/docker/config.yaml (SOCKS on
# 0.0.0.0:1080 without users, admin on 0.0.0.0:9090, JSON logs): see there
# how to require users. To use your own, mount a directory holding a
# config.yaml at /etc/cleversocks (-v ./conf:/etc/cleversocks:ro): edits are
# then seen and reloaded live (a single-file bind mount keeps the old file
# when an editor replaces it). `docker kill -s HUP cleversocks` also reloads.

# Runtime libraries of /usr/bin/cleversocks, by Debian package. The build
# stage fails if the binary needs a library from a package not listed here
# (libc6 and libgcc-s1 are part of every Debian image).
ARG RUNTIME_PACKAGES="libc-ares2 libfmt9 libmaxminddb0 libsodium23 libspdlog1.10 libstdc++6 libsystemd0 libyaml-cpp0.7"

# ---- build ------------------------------------------------------------------
FROM debian:12-slim AS build
ARG RUNTIME_PACKAGES

WORKDIR /src
# Dependencies first: this layer stays cached until install-deps.sh changes.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh build \
 && rm -rf /var/lib/apt/lists/*

COPY . .
# Release build of the proxy only: no unit tests (no GoogleTest needed), no
# benchmarks.
RUN cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCS_BUILD_TESTS=OFF -DCS_BUILD_BENCH=OFF \
 && cmake --build build/release --target cleversocks -j "$(nproc)" \
 && strip --strip-unneeded -o /cleversocks build/release/cleversocks \
 && /cleversocks --version

# Guard: every library the binary links directly (DT_NEEDED) must come from
# a package in RUNTIME_PACKAGES (or libc6/libgcc-s1, part of every Debian
# image), else the image would not start. Indirect libraries (libsystemd0's
# liblz4, libgcrypt, ...) come with those packages' own dependencies.
RUN set -eu; \
    readelf -d /cleversocks | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p' > /tmp/sonames; \
    ldd /cleversocks > /tmp/ldd; \
    : > /tmp/owners; \
    while read -r so; do \
      case "$so" in ld-linux*) continue ;; esac; \
      lib=$(awk -v so="$so" '$1 == so && $2 == "=>" { print $3 }' /tmp/ldd); \
      if [ -z "$lib" ]; then echo "Dockerfile: cannot resolve $so" >&2; exit 1; fi; \
      dpkg -S "*/$(basename "$(dirname "$lib")")/$so" >> /tmp/owners; \
    done < /tmp/sonames; \
    cut -d: -f1 /tmp/owners | sort -u > /tmp/needed; \
    missing=""; \
    for p in $(cat /tmp/needed); do \
      case " $RUNTIME_PACKAGES libc6 libgcc-s1 " in *" $p "*) ;; *) missing="$missing $p" ;; esac; \
    done; \
    if [ -n "$missing" ]; then \
      echo "Dockerfile: add to RUNTIME_PACKAGES:$missing" >&2; exit 1; \
    fi; \
    echo "runtime packages needed: $(tr '\n' ' ' < /tmp/needed)"

# ---- runtime ----------------------------------------------------------------
FROM debian:12-slim
ARG RUNTIME_PACKAGES

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $RUNTIME_PACKAGES \
 && rm -rf /var/lib/apt/lists/*

# A fixed numeric UID/GID, so that Kubernetes' runAsNonRoot can check it and
# mounted secrets can be made readable to it (fsGroup 10001).
RUN groupadd --system --gid 10001 cleversocks \
 && useradd --uid 10001 --gid cleversocks --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin cleversocks

COPY --from=build /cleversocks /usr/bin/cleversocks
COPY deploy/docker/config.yaml /etc/cleversocks/config.yaml
COPY config.example.yaml /usr/share/doc/cleversocks/config.example.yaml

# Unprivileged: ports 1080 and 9090 need no capability. The process writes
# no file, so the image runs with a read-only root file system.
USER 10001:10001
# 1080: SOCKS. 9090: admin HTTP (metrics, health, readiness, reload).
EXPOSE 1080 9090

# No HEALTHCHECK: Kubernetes ignores it and probes /health and /ready on the
# admin port itself (deploy/kubernetes/deployment.yaml), and the image has
# no HTTP client to run one with. For plain Docker or Compose, check from
# outside, or with bash's /dev/tcp, e.g. in Compose:
#   healthcheck:
#     test: ["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /ready HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]

# cleversocks handles SIGTERM itself (readiness false, listeners closed,
# tunnels drained up to timeouts.drain, exit 0) and starts no child process,
# so it runs as PID 1 without an init. Give it the drain time on stop:
# `docker stop -t 40` / `docker run --stop-timeout 40`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/cleversocks"]
CMD ["-c", "/etc/cleversocks/config.yaml"]
