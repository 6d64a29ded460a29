#!/usr/bin/env bash
# bench/run.sh — CleverSocks against direct, Dante and microsocks, side by side
# on loopback (the script behind `make bench`; issue 3). See bench/README.md.
#
# usage: bench/run.sh [--quick] [--reps N] [--duration S] [--workers W]
#                     [--servers "direct direct_across cleversocks cleversocks_busy_poll dante microsocks"]
#                     [--cases "idle latency ..."] [--no-install]
#                     [--micro-only | --no-micro] [--no-pin] [--no-netns]
#                     [--halt-poll NS] [--congestion-control ALGO|system]
#                     [--bulk-io zerocopy|copy]
#        bench/run.sh --scaling "1 2 4" [--cases "sess_ipv4 thr_up_8"] [...]
# Every flag has a BENCH_* environment twin (listed below). After the side-by-
# side runs come the micro-benchmarks (bench/micro, Google Benchmark).
# --scaling runs direct and CleverSocks alone at each worker count W instead,
# the server on W CPUs and the generator on the others (report: scaling.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# ---------------------------------------------------------------- settings --
# CPU pinning (default on with 2+ CPUs): the server under test runs on the
# last SERVER_CPUS CPUs, the generator and the target on the others, so
# every server gets the same cores however many threads it starts (without
# it, a thread-per-connection server wins CPU share from the generator, not
# sessions from its design). Off: everything shares every CPU.
PIN=${BENCH_PIN:-1}
NCPU=$(nproc)
SERVER_CPUS=${BENCH_SERVER_CPUS:-$(( NCPU >= 2 ? NCPU / 2 : 1 ))}
WORKERS=${BENCH_WORKERS:-}               # proxy workers (default: its CPUs)
GEN_THREADS=${BENCH_GEN_THREADS:-}       # generator / target threads (default: theirs)
DURATION=${BENCH_DURATION:-3}             # measured seconds per throughput/sessions run
WARMUP=${BENCH_WARMUP:-1}                 # unmeasured seconds before that
REPS=${BENCH_REPS:-3}                     # runs per cell; the table shows medians
CLIENTS=${BENCH_CLIENTS:-64}              # concurrent session clients (idle: handshakes in flight)
PINGS=${BENCH_PINGS:-10000}               # latency round trips measured
IDLE_LEVELS=${BENCH_IDLE_LEVELS:-1000,5000,10000}
# direct_across: no proxy again, with the target on the servers' CPUs. For
# the round trip, what crossing CPUs costs on this machine (a proxied round
# trip crosses them four times, a direct one never); for throughput and
# sessions, what the generator drives with a CPU to itself.
SERVERS=${BENCH_SERVERS:-"direct direct_across cleversocks cleversocks_busy_poll dante microsocks"}
# Idle first: it needs the most ephemeral ports, and session runs leave
# thousands of TIME_WAIT sockets behind for a minute.
CASES=${BENCH_CASES:-"idle latency thr_up_1 thr_down_1 thr_up_8 thr_down_8 sess_ipv4 sess_domain sess_ipv4_auth sess_domain_auth"}
BUILD_DIR=${BENCH_BUILD_DIR:-build/bench}
RESULTS_DIR=${BENCH_RESULTS_DIR:-bench/results}
INSTALL=${BENCH_INSTALL:-1}
# A fresh network namespace (only lo) for every measurement, when root: no
# run meets the TIME_WAIT sockets of the ones before it. Without it, a
# server that binds its outgoing sockets (Dante) fills the ephemeral port
# range for a minute and every later connect() pays for scanning it, or
# fails (EADDRNOTAVAIL).
NETNS=${BENCH_NETNS:-1}
NETNS_NOTE=""                             # the report's words for it, once it is known to apply
JOBS=${BENCH_JOBS:-$(nproc)}              # parallel compile jobs for the tools
# Micro-benchmarks (bench/micro): 1 after the side-by-side runs, 0 never,
# only: nothing else (report in $RESULTS_DIR/micro.md).
MICRO=${BENCH_MICRO:-1}
MICRO_ARGS=${BENCH_MICRO_ARGS:-}          # extra micro_bench flags, e.g. --benchmark_filter=acl
QUICK=0
# Worker counts for --scaling (empty: the side-by-side run). Its cases
# default to the session rate and 8-stream throughput the issue names.
SCALING=${BENCH_SCALING:-}
SCALING_CASES="sess_ipv4 thr_up_8"
CASES_GIVEN=${BENCH_CASES:+1}
AUTH_USER=${BENCH_AUTH_USER:-bench}      # RFC 1929 credentials for the "+ auth" columns
AUTH_PASS=${BENCH_AUTH_PASS:-bench-secret}
# Unset: run.sh builds it first (make build), so the binary measured is the
# tree whose commit the report names. Set: that binary, as it is.
CLEVERSOCKS_BIN_GIVEN=${CLEVERSOCKS_BIN:+1}
CLEVERSOCKS_BIN=${CLEVERSOCKS_BIN:-build/release/cleversocks}
CLEVERSOCKS_ARGS=${CLEVERSOCKS_ARGS:-}    # extra flags for every CleverSocks run
BUSY_POLL=${BENCH_BUSY_POLL:-50us}        # the cleversocks_busy_poll row's --busy-poll
# Flags that make CleverSocks require that user; set it empty to leave its
# "+ auth" cells n/a.
CLEVERSOCKS_AUTH_ARGS=${CLEVERSOCKS_AUTH_ARGS-"--user $AUTH_USER:$AUTH_PASS"}
# Guest halt polling (Linux's cpuidle-haltpoll driver, in a KVM guest): how
# long an idle vCPU polls before it halts. A halted vCPU takes a VM exit to
# wake, which on some hosts is most of a cross-CPU round trip (bench/README,
# "RTT"). Empty: the machine's setting, as it is; NS: that value for the run,
# restored afterwards (root only). The report records the setting either way.
HALT_POLL=${BENCH_HALT_POLL:-}
HALT_POLL_FILE=/sys/module/haltpoll/parameters/guest_halt_poll_ns
HALT_POLL_SAVED=""                        # the machine's value while --halt-poll replaces it
# TCP congestion control in the measurement namespaces, for every server and
# the direct baseline alike: cubic (Linux's default) unless told otherwise,
# so that hosts whose default differs measure the same thing; "system": the
# machine's default, which a new namespace inherits. It matters on loopback:
# bbr paces each socket with a high-resolution timer when no fq qdisc does
# it, and lo has none (bench/README, "TCP congestion control"). Needs root
# and the namespaces; without them the machine's default applies. The
# report records which one ran.
CONGESTION=${BENCH_CONGESTION_CONTROL:-cubic}
CONGESTION_GIVEN=${BENCH_CONGESTION_CONTROL:+1}
CC_ALLOWED_FILE=/proc/sys/net/ipv4/tcp_allowed_congestion_control
CC_ALLOWED_SAVED=""                       # the machine's list while ALGO is added to it
CC_APPLIED=0                              # 1 once the namespaces get CONGESTION
# How the generator and the target move the throughput streams' bytes:
# zerocopy (tee and splice from a pipe, recv with MSG_TRUNC: neither copies a
# byte, so they are not what bounds a server on the other CPUs) or copy
# (send/recv through a buffer, as most clients do). bench/README, "Bulk I/O
# of the tools". The report records which one ran.
BULK_IO=${BENCH_BULK_IO:-zerocopy}

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1; REPS=1; DURATION=1; WARMUP=0.5; PINGS=2000 ;;
    --reps) REPS=${2:?--reps needs a value}; shift ;;
    --duration) DURATION=${2:?--duration needs a value}; shift ;;
    --workers) WORKERS=${2:?--workers needs a value}; shift ;;
    --no-pin) PIN=0 ;;
    --no-netns) NETNS=0 ;;
    --servers) SERVERS=${2:?--servers needs a value}; shift ;;
    --cases) CASES=${2:?--cases needs a value}; CASES_GIVEN=1; shift ;;
    --scaling) SCALING=${2:?--scaling needs worker counts, e.g. "1 2 4"}; shift ;;
    --no-install) INSTALL=0 ;;
    --micro-only) MICRO=only ;;
    --no-micro) MICRO=0 ;;
    --halt-poll) HALT_POLL=${2:?--halt-poll needs nanoseconds, e.g. 200000}; shift ;;
    --congestion-control)
      CONGESTION=${2:?--congestion-control needs an algorithm (e.g. reno) or system}; CONGESTION_GIVEN=1; shift ;;
    --bulk-io) BULK_IO=${2:?--bulk-io needs zerocopy or copy}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

GIVEN_WORKERS=$WORKERS GIVEN_GEN_THREADS=$GEN_THREADS
[[ $BULK_IO == zerocopy || $BULK_IO == copy ]] || { echo "run.sh: --bulk-io is zerocopy or copy, not $BULK_IO" >&2; exit 2; }

# place CPUS [WORKERS]: the server under test on the last CPUS CPUs, the
# generator and the target on the others (with PIN and 2+ CPUs), or
# everything on every CPU. Sets SERVER_SET GEN_SET ON_SERVER ON_GEN PINNING
# PLACEMENT (pinned / shared), WORKERS (default: CPUS, or every CPU when
# shared) and GEN_THREADS (default: the generator's CPUs).
place() {
  local cpus=$1
  WORKERS=${2:-$GIVEN_WORKERS} GEN_THREADS=$GIVEN_GEN_THREADS
  if ((PIN && NCPU >= 2 && cpus < NCPU)); then
    SERVER_SET="$((NCPU - cpus))-$((NCPU - 1))"
    GEN_SET="0-$((NCPU - cpus - 1))"
    WORKERS=${WORKERS:-$cpus}
    GEN_THREADS=${GEN_THREADS:-$((NCPU - cpus))}
    ON_SERVER=(taskset -c "$SERVER_SET")
    ON_GEN=(taskset -c "$GEN_SET")
    PINNING="servers on CPUs $SERVER_SET, generator and target on CPUs $GEN_SET"
    PLACEMENT=pinned
  else
    WORKERS=${WORKERS:-$NCPU}
    GEN_THREADS=${GEN_THREADS:-$NCPU}
    ON_SERVER=()
    ON_GEN=()
    PINNING="not pinned"
    PLACEMENT=shared
  fi
}

if [[ -n $SCALING ]]; then
  for w in $SCALING; do
    [[ $w =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --scaling takes worker counts (not $w)" >&2; exit 2; }
  done
  [[ -n $CASES_GIVEN ]] || CASES=$SCALING_CASES
  MICRO=0
  SERVERS=${BENCH_SERVERS:-"direct cleversocks"}
  place "${SCALING%% *}" "${SCALING%% *}"
elif ((PIN && NCPU >= 2)); then
  ((SERVER_CPUS >= 1 && SERVER_CPUS < NCPU)) || { echo "run.sh: BENCH_SERVER_CPUS must be 1..$((NCPU - 1))" >&2; exit 2; }
  place "$SERVER_CPUS"
else
  PIN=0
  place "$NCPU"
fi

log() { printf '%s\n' "$*" >&2; }
die() { log "run.sh: $*"; exit 1; }

[[ $MICRO == 0 || $MICRO == 1 || $MICRO == only ]] || die "BENCH_MICRO must be 0, 1 or only (not $MICRO)"
KNOWN_CASES=" idle latency thr_up_1 thr_down_1 thr_up_8 thr_down_8 sess_ipv4 sess_domain sess_ipv4_auth sess_domain_auth "
read -ra CASE_LIST <<<"$CASES"
for c in "${CASE_LIST[@]}"; do
  [[ $KNOWN_CASES == *" $c "* ]] || die "unknown case $c (known:$KNOWN_CASES)"
done

# ------------------------------------------------------- process tracking --
# Every server starts through spawn(), in its own session (setsid), so its pid
# is also its process group id: stopping it also reaches any children it
# forked (Dante), and nothing else.
STARTED=()
WORK=""
IN_NS=()   # command prefix that enters the current measurement's namespace
NS=""
NS_SEQ=0

# enter_netns / leave_netns: a namespace with only lo (up) around one
# measurement; no-ops when NETNS=0.
enter_netns() {
  IN_NS=()
  ((NETNS)) || return 0
  NS="cleversocks-bench-$$-$((NS_SEQ += 1))"
  ip netns add "$NS" || die "ip netns add $NS failed (run as root, or use --no-netns)"
  ip -n "$NS" link set lo up
  IN_NS=(ip netns exec "$NS")
  if ((CC_APPLIED)); then
    "${IN_NS[@]}" sh -c 'echo "$1" >/proc/sys/net/ipv4/tcp_congestion_control' sh "$CONGESTION" ||
      die "--congestion-control: could not set $CONGESTION in $NS"
  fi
}
leave_netns() {
  if [[ -n $NS ]]; then
    ip netns del "$NS" 2>/dev/null || true
  fi
  NS=""
  IN_NS=()
}

alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $st != Z* ]]; }

# stop_pid PID: SIGTERM, a bounded wait, then SIGKILL for whatever is left of
# its process group.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || break
    sleep 0.03
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local pid
  for pid in "${STARTED[@]}"; do
    stop_pid "$pid"
  done
  STARTED=()
  leave_netns
  if [[ -n $HALT_POLL_SAVED ]]; then
    echo "$HALT_POLL_SAVED" >"$HALT_POLL_FILE" || log "could not restore $HALT_POLL_FILE to $HALT_POLL_SAVED"
    HALT_POLL_SAVED=""
  fi
  if [[ -n $CC_ALLOWED_SAVED ]]; then
    echo "$CC_ALLOWED_SAVED" >"$CC_ALLOWED_FILE" || log "could not restore $CC_ALLOWED_FILE to $CC_ALLOWED_SAVED"
    CC_ALLOWED_SAVED=""
  fi
  [[ -n $WORK ]] && rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# spawn NAME CMD...: start CMD in the background (on the servers' CPUs, or
# the generator's for NAME=target), logging to $WORK/NAME.log; sets
# SPAWNED_PID.
spawn() {
  local name=$1 on=("${ON_SERVER[@]}")
  shift
  [[ $name == target ]] && on=("${ON_GEN[@]}")
  # Truncate here, not in the child's redirection: that runs after the fork,
  # and meanwhile the caller could read the previous instance's output.
  : >"$WORK/$name.log"
  setsid "${IN_NS[@]}" "${on[@]}" "$@" >>"$WORK/$name.log" 2>&1 &
  SPAWNED_PID=$!
  STARTED+=("$SPAWNED_PID")
}

stop_server() {
  local pid=$1 keep=() p
  stop_pid "$pid"
  for p in "${STARTED[@]}"; do
    [[ $p == "$pid" ]] || keep+=("$p")
  done
  STARTED=("${keep[@]}")
}

# log_tail NAME: the end of a server's log, for failure messages.
log_tail() {
  if [[ -s $WORK/$1.log ]]; then
    tail -n 5 "$WORK/$1.log" | sed 's/^/    /' >&2
  else
    log "    (its log is empty)"
  fi
}

# A port the kernel considers free right now (bind to port 0, then release).
free_port() {
  "${IN_NS[@]}" python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT PID: until 127.0.0.1:PORT accepts a connection; gives up
# after 200 tries (about 5 s) or as soon as PID dies.
wait_port() {
  local port=$1 pid=$2 i
  for ((i = 0; i < 200; i++)); do
    if ((${#IN_NS[@]})); then
      "${IN_NS[@]}" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && return 0
    elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    alive "$pid" || return 1
    sleep 0.025
  done
  return 1
}

# ------------------------------------------------------------------ peers --
# One function per peer: peer_NAME ACTION [PORT AUTH]
#   label       print the row label (name and version)
#   check       succeed if it can run here, else print why not
#   auth        succeed if it does RFC 1929 in this setup
#   start P A   spawn it listening on 127.0.0.1:P (A=1: require user/pass)
#   cases       optional: print the only cases it runs (default: every one)
# To add a peer, write peer_NAME and add NAME to SERVERS (see README.md).
# Names starting with "cleversocks" are CleverSocks itself, and "direct_*"
# no-proxy baselines (no start: loadgen --direct): no ratio compares
# CleverSocks with them as peers.

pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null | sed 's/[+-].*//'; }

peer_cleversocks() {
  case $1 in
    label)
      local version
      version=$("$CLEVERSOCKS_BIN" --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -n 1) || true
      echo "CleverSocks${version:+ $version}" ;;
    check)
      [[ -x $CLEVERSOCKS_BIN ]] && return 0
      echo "no binary at $CLEVERSOCKS_BIN (build it, or set CLEVERSOCKS_BIN)"
      return 1 ;;
    auth) [[ -n $CLEVERSOCKS_AUTH_ARGS ]] ;;
    start)
      local extra=() auth_args=()
      read -ra extra <<<"$CLEVERSOCKS_ARGS ${4:-}"
      [[ $3 == 1 ]] && read -ra auth_args <<<"$CLEVERSOCKS_AUTH_ARGS"
      # The address goes first: options such as --user take several values
      # and would swallow an address that follows them. Its default policy
      # refuses private and loopback destinations; like the peers' rules,
      # allow the loopback target.
      # CleverSocks reads CLEVERSOCKS_* variables as settings and refuses
      # unknown ones: the bench's own must not reach it.
      spawn cleversocks env -u CLEVERSOCKS_BIN -u CLEVERSOCKS_ARGS -u CLEVERSOCKS_AUTH_ARGS \
        "$CLEVERSOCKS_BIN" "127.0.0.1:$2" -q -w "$WORKERS" \
        --allow 127.0.0.0/8 --allow ::1/128 "${extra[@]}" "${auth_args[@]}" ;;
  esac
}

# CleverSocks with a non-default setting that trades CPU for latency: its
# event loops poll for BUSY_POLL before they sleep. Only the round trip, which
# is what it changes (sessions/s and bulk stayed within noise when tried).
peer_cleversocks_busy_poll() {
  case $1 in
    label) echo "$(peer_cleversocks label), --busy-poll $BUSY_POLL" ;;
    cases) echo latency ;;
    start) peer_cleversocks start "$2" "$3" "--busy-poll $BUSY_POLL" ;;
    *) peer_cleversocks "$@" ;;
  esac
}

# No proxy, with the target on the servers' CPUs: a round trip crosses CPUs
# twice, where a proxied one crosses them four times; a stream or a session
# has the generator's CPU to itself, as the generator has beside a proxy.
peer_direct_across() {
  case $1 in
    label) echo "direct, target on the servers' CPUs" ;;
    check) [[ $PLACEMENT == pinned ]] && return 0; echo "not pinned"; return 1 ;;
    auth) return 1 ;;
    cases) echo "latency thr_up_1 thr_down_1 thr_up_8 thr_down_8 sess_ipv4" ;;
  esac
}

peer_dante() {
  case $1 in
    label) echo "Dante $(pkg_version dante-server)" ;;
    check) command -v danted >/dev/null && return 0; echo "danted not installed"; return 1 ;;
    auth) return 1 ;;  # Dante's RFC 1929 checks system (passwd/PAM) users: not set up here
    start)
      local conf="$WORK/danted-$2.conf"
      {
        echo "logoutput: stderr"
        echo "internal: 127.0.0.1 port = $2"
        # Dante binds each outgoing socket to port 0 before connecting, so it
        # cannot reuse TIME_WAIT ports as connect() does. An address of its
        # own keeps the TIME_WAIT sockets other servers' session runs leave
        # on 127.0.0.1 from starving it of ephemeral ports.
        echo "external: 127.0.0.3"
        grep -q '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null && echo "external: ::1"
        echo "socksmethod: none"
        echo "clientmethod: none"
        if [[ $(id -u) == 0 ]]; then
          echo "user.privileged: root"
          echo "user.unprivileged: nobody"
        fi
        echo "client pass { from: 127.0.0.0/8 to: 0/0 }"
        echo "socks pass { from: 127.0.0.0/8 to: 0/0 }"
      } >"$conf"
      spawn dante danted -f "$conf" -p "$WORK/danted-$2.pid" ;;
  esac
}

peer_microsocks() {
  case $1 in
    label) echo "microsocks $(pkg_version microsocks)" ;;
    check) command -v microsocks >/dev/null && return 0; echo "microsocks not installed"; return 1 ;;
    auth) return 0 ;;
    start)
      local auth_args=()
      [[ $3 == 1 ]] && auth_args=(-u "$AUTH_USER" -P "$AUTH_PASS")
      # It logs every connection and has no quiet switch; the log goes to a file.
      spawn microsocks microsocks -i 127.0.0.1 -p "$2" "${auth_args[@]}" ;;
  esac
}

# start_target [NAME]: a fresh loopback target (echo, bulk source, bulk sink;
# ports chosen by the kernel) for each measurement, so no run meets the
# previous run's TIME_WAIT sockets towards the same ports. On the generator's
# CPUs as NAME=target (the default), else on the servers' (see spawn). Sets
# TARGET_PID and the *_PORT variables.
start_target() {
  local name=${1:-target} i ports=""
  spawn "$name" "$BUILD_DIR/target_server" -t "$GEN_THREADS" --bulk "$BULK_IO"
  TARGET_PID=$SPAWNED_PID
  for ((i = 0; i < 200; i++)); do
    ports=$(grep -m 1 '^{' "$WORK/$name.log" 2>/dev/null || true)
    [[ -n $ports ]] && break
    alive "$TARGET_PID" || die "target_server died: $(cat "$WORK/$name.log")"
    sleep 0.025
  done
  [[ $ports =~ \"echo\":([0-9]+),\"source\":([0-9]+),\"sink\":([0-9]+) ]] ||
    die "target_server gave no ports: $ports"
  ECHO_PORT=${BASH_REMATCH[1]} SOURCE_PORT=${BASH_REMATCH[2]} SINK_PORT=${BASH_REMATCH[3]}
}

# ------------------------------------------------------------------ cases --
# case_args CASE: the loadgen arguments for one measurement.
case_args() {
  local echo_t="127.0.0.1:$ECHO_PORT" timed=(-d "$DURATION" --warmup "$WARMUP")
  case $1 in
    thr_up_1) echo throughput --target "127.0.0.1:$SINK_PORT" --dir up -s 1 --bulk "$BULK_IO" "${timed[@]}" ;;
    thr_down_1) echo throughput --target "127.0.0.1:$SOURCE_PORT" --dir down -s 1 --bulk "$BULK_IO" "${timed[@]}" ;;
    thr_up_8) echo throughput --target "127.0.0.1:$SINK_PORT" --dir up -s 8 --bulk "$BULK_IO" "${timed[@]}" ;;
    thr_down_8) echo throughput --target "127.0.0.1:$SOURCE_PORT" --dir down -s 8 --bulk "$BULK_IO" "${timed[@]}" ;;
    sess_ipv4|sess_ipv4_auth) echo sessions --target "$echo_t" -c "$CLIENTS" "${timed[@]}" ;;
    sess_domain|sess_domain_auth) echo sessions --target "localhost:$ECHO_PORT" -c "$CLIENTS" "${timed[@]}" ;;
    latency) echo latency --target "$echo_t" -n "$PINGS" --warmup-count $((PINGS / 10)) ;;
    idle) echo idle --target "$echo_t" --levels "$IDLE_LEVELS" -c "$CLIENTS" --hold 0 --timeout 3 ;;
  esac
}

# Upper bound on one loadgen run, so a wedged server cannot hang the script.
case_time_limit() {
  case $1 in
    idle) echo 600 ;;
    latency) echo 300 ;;
    *) awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", d + w + 60 }' ;;
  esac
}

# run_case SERVER CASE REP: one measurement, appended to $RAW as records
# {"server","case","rep","server_died","result"}.
run_case() {
  local server=$1 case=$2 rep=$3 with_auth=0 port pid="" args via out rc line died=false tag only
  tag="  [$rep/$REPS] $(printf '%-13s %-16s' "$server" "$case")"
  [[ $case == *_auth ]] && with_auth=1
  if [[ $server == direct ]]; then
    [[ $with_auth == 1 || $case == sess_domain ]] && return 0  # no counterpart
  else
    [[ $with_auth == 1 ]] && ! "peer_$server" auth && return 0  # n/a
    only=" $("peer_$server" cases) "
    [[ $only == "  " || $only == *" $case "* ]] || return 0  # not one of its cases
  fi
  enter_netns
  if [[ $server == direct_across ]]; then
    start_target target_across  # on the servers' CPUs
  else
    start_target
  fi
  if [[ $server == direct* ]]; then
    via=(--direct)
  else
    port=$(free_port)
    "peer_$server" start "$port" "$with_auth"
    pid=$SPAWNED_PID
    if ! wait_port "$port" "$pid"; then
      log "$tag did not accept connections on 127.0.0.1:$port; its log ends with:"
      log_tail "$server"
      stop_server "$pid"
      stop_server "$TARGET_PID"
      leave_netns
      record "$server" "$case" "$rep" false null  # the table says it failed
      return 0
    fi
    via=(--proxy "127.0.0.1:$port")
    # --pid: idle weighs its memory; throughput and sessions its CPU time.
    via+=(--pid "$pid")
    [[ $with_auth == 1 ]] && via+=(--auth "$AUTH_USER:$AUTH_PASS")
  fi
  read -ra args <<<"$(case_args "$case")"
  rc=0
  out=$(timeout --foreground -k 5 "$(case_time_limit "$case")" \
    "${IN_NS[@]}" "${ON_GEN[@]}" "$LOADGEN" "${args[@]}" "${via[@]}" -t "$GEN_THREADS" 2>"$WORK/loadgen.err") || rc=$?
  if [[ -n $pid ]]; then
    if ! alive "$pid"; then
      died=true
      log "$tag $server died during the run; its log ends with:"
      log_tail "$server"
    fi
    stop_server "$pid"
  fi
  stop_server "$TARGET_PID"
  leave_netns
  while IFS= read -r line; do
    log "$tag $line"
  done <"$WORK/loadgen.err"
  ((rc == 0)) || log "$tag loadgen exited with status $rc"
  ((rc != 130)) || exit 130  # interrupted (SIGINT): stop the whole run
  # A run that printed nothing still leaves a record, so the table can say why.
  [[ $out == *\{* ]] || out=null
  while IFS= read -r line; do
    [[ $line == \{* || $line == null ]] || continue
    record "$server" "$case" "$rep" "$died" "$line"
  done <<<"$out"
}

# record SERVER CASE REP DIED RESULT: one line of $RAW.
record() {
  printf '{"server":"%s","case":"%s","rep":%d,"workers":%d,"placement":"%s","server_died":%s,"result":%s}\n' \
    "$1" "$2" "$3" "$WORKERS" "$PLACEMENT" "$4" "$5" >>"$RAW"
}

# ------------------------------------------------------------------ micro --
# run_micro OUT: runs micro_bench, its JSON into OUT (Google Benchmark's
# format), its table on stderr. Sets MICRO_NOTE to why it did not run, if so.
MICRO_NOTE=""
run_micro() {
  local out=$1 bin=$BUILD_DIR/micro/micro_bench args=() extra=() rc=0
  rm -f "$out"
  if [[ ! -x $bin ]]; then
    MICRO_NOTE="micro_bench not built: Google Benchmark not found (Debian: libbenchmark-dev)"
    log "skipping the micro-benchmarks: $MICRO_NOTE"
    return 0
  fi
  ((QUICK)) && args+=(--benchmark_min_time=0.1)
  read -ra extra <<<"$MICRO_ARGS"
  log "micro-benchmarks: $bin ${args[*]} ${extra[*]}"
  timeout --foreground -k 5 1800 "$bin" "${args[@]}" "${extra[@]}" \
    --benchmark_out="$out" --benchmark_out_format=json >&2 || rc=$?
  ((rc != 130)) || exit 130
  if ((rc != 0)) || [[ ! -s $out ]]; then
    MICRO_NOTE="micro_bench failed (exit status $rc)"
    log "$MICRO_NOTE"
  fi
}

# cpu_idle: how this machine's idle CPUs wait (cpuidle driver and governor,
# and the guest halt-polling window where there is one), for the report.
cpu_idle() {
  local d=/sys/devices/system/cpu/cpuidle driver governor text
  driver=$(cat "$d/current_driver" 2>/dev/null || echo none)
  governor=$(cat "$d/current_governor_ro" 2>/dev/null || cat "$d/current_governor" 2>/dev/null || echo none)
  text="cpuidle driver $driver, governor $governor"
  [[ -r $HALT_POLL_FILE ]] && text+=", guest_halt_poll_ns $(cat "$HALT_POLL_FILE")"
  [[ -n $HALT_POLL_SAVED ]] && text+=" (set by --halt-poll)"
  echo "$text"
}

# tcp_congestion: the congestion control the measurements ran with.
tcp_congestion() {
  if ((CC_APPLIED)); then
    if [[ -n $CONGESTION_GIVEN ]]; then
      echo "$CONGESTION (set by --congestion-control)"
    else
      echo "$CONGESTION (the bench's default in its namespaces; the machine's: $(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo unknown))"
    fi
  else
    echo "$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo unknown) (the machine's default)"
  fi
}

# write_meta FILE: the run's parameters, for report.py.
write_meta() {
  local commit cpu_model
  commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "none")
  if [[ $commit != none ]] && ! git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null; then
    commit="$commit+dirty"
  fi
  cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
  cat >"$1" <<EOF
{"date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "commit": "$commit", "cpus": $(nproc),
 "cpu_model": "${cpu_model//\"/}", "kernel": "$(uname -r)", "workers": $WORKERS,
 "generator_threads": $GEN_THREADS, "pinning": "$PINNING$NETNS_NOTE",
 "scaling": [$(tr -s ' ' ',' <<<"$SCALING" | sed 's/^,//; s/,$//')],
 "duration_s": $DURATION, "warmup_s": $WARMUP, "reps": $REPS, "clients": $CLIENTS,
 "pings": $PINGS, "idle_levels": [$IDLE_LEVELS], "loadavg_before": $LOADAVG,
 "cpu_idle": "$(cpu_idle)", "tcp_congestion": "$(tcp_congestion)", "bulk_io": "$BULK_IO",
 "cases": [$(printf '"%s",' "${CASE_LIST[@]}" | sed 's/,$//')],
 "quick": $( ((QUICK)) && echo true || echo false)}
EOF
}

# MICRO_REPORT_ARGS for OUT: report.py's options for the micro-benchmark results.
set_micro_report_args() {
  if [[ -s $1 ]]; then
    MICRO_REPORT_ARGS=(--micro "$1")
  else
    MICRO_REPORT_ARGS=(--micro-note "${MICRO_NOTE:-no micro_bench output}")
  fi
}

# ------------------------------------------------------------------- main --
if ((INSTALL)) && [[ -x scripts/install-deps.sh ]]; then
  scripts/install-deps.sh bench
fi
command -v python3 >/dev/null || die "python3 is needed for the report"
command -v cmake >/dev/null || die "cmake is needed to build the bench tools"

if [[ -z $CLEVERSOCKS_BIN_GIVEN && " $SERVERS" == *" cleversocks"* && $MICRO != only ]]; then
  log "building CleverSocks (make build) into $(dirname "$CLEVERSOCKS_BIN")"
  build_log=$(mktemp "${TMPDIR:-/tmp}/cleversocks-bench-build.XXXXXX")
  if ! make -C "$ROOT" build JOBS="$JOBS" >"$build_log" 2>&1; then
    tail -n 20 "$build_log" >&2
    rm -f "$build_log"
    die "make build failed (set CLEVERSOCKS_BIN to measure a binary built elsewhere)"
  fi
  rm -f "$build_log"
fi

# micro_bench also builds the project's modules from src/ there: the first
# build takes a few minutes.
log "building the bench tools in $BUILD_DIR"
micro_flag=ON
[[ $MICRO == 0 ]] && micro_flag=OFF
cmake -S bench -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DCS_BENCH_MICRO=$micro_flag >/dev/null
cmake --build "$BUILD_DIR" --parallel "$JOBS" >/dev/null
LOADGEN=$BUILD_DIR/loadgen

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cleversocks-bench.XXXXXX")
mkdir -p "$RESULTS_DIR"
LOADAVG=$(cut -d ' ' -f 1 /proc/loadavg)

if [[ $MICRO == only ]]; then
  awk -v l="$LOADAVG" 'BEGIN { exit !(l >= 0.5) }' &&
    log "warning: load average $LOADAVG before the run: other work on this machine will skew the figures"
  run_micro "$RESULTS_DIR/micro.gbench.json"
  write_meta "$WORK/meta.json"
  set_micro_report_args "$RESULTS_DIR/micro.gbench.json"
  python3 bench/report.py --micro-only "${MICRO_REPORT_ARGS[@]}" "$WORK/meta.json" "$RESULTS_DIR/micro"
  log "written: $RESULTS_DIR/micro.md, $RESULTS_DIR/micro.json"
  [[ -s $RESULTS_DIR/micro.gbench.json ]] && log "micro_bench's own JSON: $RESULTS_DIR/micro.gbench.json"
  exit 0
fi

OUT_NAME=latest
[[ -n $SCALING ]] && OUT_NAME=scaling
RAW=$RESULTS_DIR/$OUT_NAME.raw.jsonl
: >"$RAW"

if ((NETNS)); then
  if [[ $(id -u) != 0 ]] || ! command -v ip >/dev/null; then
    log "not root (or no ip(8)): measurements share the host's network namespace (see --no-netns)"
    NETNS=0
  fi
fi
((NETNS)) && NETNS_NOTE=" · each measurement in a fresh network namespace"

if [[ -n $HALT_POLL ]]; then
  [[ $HALT_POLL =~ ^[0-9]+$ ]] || die "--halt-poll takes nanoseconds (an integer), not '$HALT_POLL'"
  [[ -w $HALT_POLL_FILE ]] ||
    die "--halt-poll: $HALT_POLL_FILE is missing or not writable (needs root in a guest with cpuidle-haltpoll)"
  HALT_POLL_SAVED=$(cat "$HALT_POLL_FILE")
  echo "$HALT_POLL" >"$HALT_POLL_FILE" || die "--halt-poll: could not write $HALT_POLL_FILE"
  log "guest halt polling: $HALT_POLL ns for this run (was $HALT_POLL_SAVED; restored at exit)"
fi
log "CPU idle: $(cpu_idle)"

[[ $CONGESTION == system ]] && CONGESTION=""
if [[ -n $CONGESTION ]]; then
  why=""
  if ! ((NETNS)); then
    why="setting it needs root and the namespaces"
  elif ! [[ $CONGESTION =~ ^[a-z0-9_]+$ ]] ||
    ! grep -qw -- "$CONGESTION" /proc/sys/net/ipv4/tcp_available_congestion_control; then
    why="not available here ($(cat /proc/sys/net/ipv4/tcp_available_congestion_control))"
  fi
  if [[ -n $why ]]; then
    [[ -n $CONGESTION_GIVEN ]] && die "--congestion-control $CONGESTION: $why"
    log "TCP congestion control: not $CONGESTION ($why)"
    CONGESTION=""
  fi
fi
if [[ -n $CONGESTION ]]; then
  # A namespace other than the first may only pick an algorithm the machine
  # allows; add it for the run, restored at exit.
  if ! grep -qw -- "$CONGESTION" "$CC_ALLOWED_FILE"; then
    CC_ALLOWED_SAVED=$(cat "$CC_ALLOWED_FILE")
    echo "$CC_ALLOWED_SAVED $CONGESTION" >"$CC_ALLOWED_FILE" ||
      die "--congestion-control: could not add $CONGESTION to $CC_ALLOWED_FILE"
  fi
  CC_APPLIED=1
fi
log "TCP congestion control: $(tcp_congestion)"
log "bulk I/O of the generator and the target: $BULK_IO"

# Servers inherit this: 10,000 tunnels need ~20,000 descriptors in the proxy.
ulimit -n "$(ulimit -Hn)"
log "open-files limit for the servers: $(ulimit -n) (hard limit)"
# Everything shares the machine's cores: other work skews every figure.
awk -v l="$LOADAVG" 'BEGIN { exit !(l >= 0.5) }' &&
  log "warning: load average $LOADAVG before the run: other work on this machine will skew the figures"
[[ $(cat /proc/sys/net/ipv4/tcp_tw_reuse 2>/dev/null || echo 0) != 0 ]] ||
  log "warning: net.ipv4.tcp_tw_reuse is 0; session runs may run out of ephemeral ports"

# Which servers run, and how they are labelled.
SERVERS_TSV=$WORK/servers.tsv
: >"$SERVERS_TSV"
RUN=()
for s in $SERVERS; do
  if [[ $s == direct ]]; then
    printf 'direct\tdirect, no proxy\tok\t0\n' >>"$SERVERS_TSV"
    RUN+=(direct)
    continue
  fi
  declare -F "peer_$s" >/dev/null || die "unknown server $s (no peer_$s function)"
  if why=$("peer_$s" check); then
    RUN+=("$s")
    status=ok
  else
    log "skipping $s: $why"
    status=$why
  fi
  a=0
  "peer_$s" auth && a=1
  printf '%s\t%s\t%s\t%s\n' "$s" "$("peer_$s" label)" "$status" "$a" >>"$SERVERS_TSV"
done

# run_all WHAT: every case REPS times with the current placement. Servers
# alternate within each measurement, so drift over the run (thermal, noisy
# neighbours) spreads over all of them.
run_all() {
  local rep case s
  log "$1: ${RUN[*]}; W=$WORKERS; $PINNING$NETNS_NOTE; $REPS rep(s); ${DURATION}s measured + ${WARMUP}s warm-up"
  for ((rep = 1; rep <= REPS; rep++)); do
    for case in "${CASE_LIST[@]}"; do
      for s in "${RUN[@]}"; do
        run_case "$s" "$case" "$rep"
      done
    done
  done
}

started=$SECONDS
if [[ -n $SCALING ]]; then
  # Scaling: each worker count in turn, pinned only where the generator can
  # have as many CPUs as the server (2W <= CPUs); otherwise everything shares
  # every CPU and the report does not count that W as scaling.
  for w in $SCALING; do
    if ((PIN && 2 * w <= NCPU)); then
      place "$w" "$w"
    else
      place "$NCPU" "$w"
      log "W=$w: $NCPU CPUs cannot give the server $w and the generator $w: unpinned, not counted as scaling"
    fi
    run_all scaling
  done
  log "measurements took $((SECONDS - started)) s"
  write_meta "$WORK/meta.json"
  python3 bench/report.py --scaling "$RAW" "$SERVERS_TSV" "$WORK/meta.json" "$RESULTS_DIR/scaling"
  log "written: $RESULTS_DIR/scaling.md, $RESULTS_DIR/scaling.json (raw records: $RAW)"
  exit 0
fi
run_all servers
log "measurements took $((SECONDS - started)) s"

# The micro-benchmarks come last, once every server has stopped: each is one
# thread timing one function, and the servers' figures are not affected.
MICRO_OUT=$RESULTS_DIR/latest.gbench.json
if [[ $MICRO == 1 ]]; then
  run_micro "$MICRO_OUT"
else
  rm -f "$MICRO_OUT"
  MICRO_NOTE="--no-micro / BENCH_MICRO=0"
fi

write_meta "$WORK/meta.json"
set_micro_report_args "$MICRO_OUT"
python3 bench/report.py "${MICRO_REPORT_ARGS[@]}" "$RAW" "$SERVERS_TSV" "$WORK/meta.json" "$RESULTS_DIR/latest"
log "written: $RESULTS_DIR/latest.md, $RESULTS_DIR/latest.json (raw records: $RAW)"
[[ -s $MICRO_OUT ]] && log "micro_bench's own JSON: $MICRO_OUT"
exit 0
