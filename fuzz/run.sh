#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for a while.
#
#   fuzz/run.sh TARGET... [SECONDS]     TARGET: socks5_request, socks5_request_fuzz, or "all"
#   fuzz/run.sh all 60                  every target for 60 s each (default 60)
#
# Each target runs on a scratch copy of its seed corpus under
# build/fuzz/run/<target>/corpus, which keeps growing across runs; the repo
# corpus (fuzz/corpus/<target>) only changes when you ask:
#
#   FUZZ_MERGE=1 fuzz/run.sh socks5_request 0    merge (minimised) scratch inputs into fuzz/corpus
#
# Environment: BUILD_DIR (default build/fuzz), JOBS (ninja -j, default 2),
# FUZZ_RUNS (run each target for exactly this many executions instead of
# SECONDS, e.g. FUZZ_RUNS=10000000 fuzz/run.sh all, how fuzz/RESULTS.md was
# made), FUZZ_ARGS (extra libFuzzer flags). Inputs are capped at 1024 bytes
# (http_connect_response: 9000, past its 8 KiB head limit). Crash/timeout/leak
# reproducers land in build/fuzz/run/<target>/artifacts/. Exit status 1 if any
# target crashed. Targets run one at a time, one job each.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build/fuzz}"
jobs="${JOBS:-2}"
all_targets=(socks5_greeting socks5_auth socks5_request socks5_udp socks5_reply socks4_request socks4_reply address_parse
  upstream_reply proxy_protocol http_connect_response proxy_url rule_spec acl_pattern)

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[[ $# -ge 1 ]] || usage

seconds=60
args=("$@")
if [[ "${args[-1]}" =~ ^[0-9]+$ ]]; then
  seconds="${args[-1]}"
  unset 'args[-1]'
fi
[[ ${#args[@]} -ge 1 ]] || usage
runs="${FUZZ_RUNS:-}"
if [[ -n "$runs" && ! "$runs" =~ ^[1-9][0-9]*$ ]]; then
  echo "FUZZ_RUNS must be a positive number" >&2
  exit 2
fi
if [[ -z "$runs" && "$seconds" -eq 0 && "${FUZZ_MERGE:-0}" != 1 ]]; then
  echo "SECONDS must be > 0 (libFuzzer treats 0 as 'forever')" >&2
  exit 2
fi

targets=()
for a in "${args[@]}"; do
  if [[ "$a" == all ]]; then
    targets+=("${all_targets[@]}")
    continue
  fi
  t="${a%_fuzz}"
  if [[ ! " ${all_targets[*]} " =~ " $t " ]]; then
    echo "unknown target: $a (known: ${all_targets[*]})" >&2
    exit 2
  fi
  targets+=("$t")
done

# ---------------------------------------------------------------- build
if [[ ! -f "$build/build.ninja" ]]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCS_FUZZ=ON -DCS_SANITIZE=address,undefined >/dev/null
fi
ninja -C "$build" -j "$jobs" $(printf '%s_fuzz ' "${targets[@]}") >/dev/null

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

# ---------------------------------------------------------------- run
status=0
summary=()
for t in "${targets[@]}"; do
  bin="$build/fuzz/${t}_fuzz"
  work="$build/run/$t"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp -n "$root/fuzz/corpus/$t/"* "$work/corpus/" 2>/dev/null || true

  if [[ "${FUZZ_MERGE:-0}" == 1 ]]; then
    "$bin" -merge=1 "$root/fuzz/corpus/$t" "$work/corpus" >"$work/merge.log" 2>&1
    echo "$t: merged into fuzz/corpus/$t ($(ls "$root/fuzz/corpus/$t" | wc -l) files)"
    [[ "$seconds" -gt 0 || -n "$runs" ]] || continue
  fi

  if [[ -n "$runs" ]]; then
    budget=(-runs="$runs")
  else
    budget=(-max_total_time="$seconds")
  fi
  max_len=1024
  [[ "$t" == http_connect_response ]] && max_len=9000

  log="$work/fuzz.log"
  before=$(ls "$work/artifacts" | wc -l)
  start=$(date +%s)
  set +e
  # shellcheck disable=SC2086
  "$bin" "$work/corpus" "${budget[@]}" -max_len="$max_len" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  set -e
  elapsed=$(($(date +%s) - start))
  after=$(ls "$work/artifacts" | wc -l)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  corpus=$(ls "$work/corpus" | wc -l)
  crashes=$((after - before))
  if [[ $rc -ne 0 || $crashes -gt 0 ]]; then
    status=1
    result="CRASH (rc=$rc, see $log)"
  else
    result=ok
  fi
  summary+=("$(printf '%-22s %10s %6s %7s %6s %6s %7s %7s  %s' "$t" "${execs:-?}" "$elapsed" "${rate:-?}" "${cov:-?}" \
    "${ft:-?}" "$corpus" "$crashes" "$result")")
done

printf '%-22s %10s %6s %7s %6s %6s %7s %7s  %s\n' target execs secs exec/s cov ft corpus crashes result
printf '%s\n' "${summary[@]}"
exit $status
