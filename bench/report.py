#!/usr/bin/env python3
"""Turns the raw records of one bench/run.sh run into the results table.

Input : RAW      JSON lines {"server","case","rep","server_died",
                 "result": <loadgen record, or null if it printed none>}
        SERVERS  TSV lines  name, label, status ("ok" or why it was skipped),
                 auth ("1" if it supports RFC 1929 here)
        META     JSON object with the run parameters (copied to the output)
        --micro GBENCH.json   micro_bench's JSON (Google Benchmark format), for
                              the "Micro-benchmarks (ns/op)" section
        --micro-note TEXT     why there are no micro-benchmark figures
Output: OUT.md and OUT.json (the table, the ratios and the issue's targets);
        the Markdown also goes to stdout.

        report.py --micro-only (--micro GBENCH.json | --micro-note TEXT) META OUT
writes the micro-benchmark section alone (bench/run.sh --micro-only).

Every cell is the median over the repetitions. Standard library only.
"""

import argparse
import json
import re
import statistics
import sys
from collections import defaultdict

HIGH, LOW = "higher is better", "lower is better"

# Columns: key, header, case, metric, which way is better.
# Idle columns are added per level at run time (see idle_columns).
BASE_COLUMNS = [
    ("up1", "1 stream up Gbit/s", "thr_up_1", "gbit_s", HIGH),
    ("down1", "1 stream down Gbit/s", "thr_down_1", "gbit_s", HIGH),
    ("up8", "8 streams up Gbit/s", "thr_up_8", "gbit_s", HIGH),
    ("down8", "8 streams down Gbit/s", "thr_down_8", "gbit_s", HIGH),
    ("sess_ipv4", "sessions/s IPv4", "sess_ipv4", "sessions_per_s", HIGH),
    ("sess_domain", "sessions/s localhost", "sess_domain", "sessions_per_s", HIGH),
    ("sess_ipv4_auth", "sessions/s IPv4 + auth", "sess_ipv4_auth", "sessions_per_s", HIGH),
    ("sess_domain_auth", "sessions/s localhost + auth", "sess_domain_auth", "sessions_per_s", HIGH),
    ("rtt_p50", "RTT p50 µs", "latency", "p50_us", LOW),
    ("rtt_p99", "RTT p99 µs", "latency", "p99_us", LOW),
]

# Cases the direct baseline has no counterpart for (no SOCKS handshake, no
# proxy process to weigh).
DIRECT_NA = {"sess_domain", "sess_ipv4_auth", "sess_domain_auth"}


# The server's CPU over the measured window (loadgen --pid): each throughput
# and session column again, divided by the server's CPU use (the share of one
# CPU its process tree used), i.e. the work done per server CPU-second,
# whichever side of the machine was the bottleneck. Derived metric → rate.
PER_CPU = {"gbit_per_cpu": "gbit_s", "sessions_per_cpu_s": "sessions_per_s"}
CPU_COLUMNS = [(f"cpu_{key}", f"{header} ÷ server CPU", case, derived, better)
               for key, header, case, metric, better in BASE_COLUMNS
               for derived, rate in PER_CPU.items() if rate == metric]


def add_cpu_figures(records):
    """Adds the per-CPU figures to every loadgen record that has the server's CPU time."""
    for runs in records.values():
        for r in runs:
            res = r["result"]
            if not res or not res.get("server_cpu_util"):
                continue
            for derived, rate in PER_CPU.items():
                if res.get(rate) is not None:
                    res[derived] = res[rate] / res["server_cpu_util"]


def cpu_cell(server, col, records, cases):
    """Work per server CPU-second, with the server's median CPU use beside it."""
    out = cell(server, col, records, cases)
    if out["value"] is None:
        return out
    utils = [r["result"]["server_cpu_util"] for r in records.get((server["name"], col[2]), [])
             if r["result"] and r["result"].get("server_cpu_util") is not None]
    out["cpu_util"] = statistics.median(utils)
    out["text"] += f" ({out['cpu_util'] * 100:.0f} %)"
    return out


def idle_columns(levels):
    cols = []
    for level in levels:
        name = f"{level // 1000}k" if level % 1000 == 0 else str(level)
        cols.append((f"kib_{level}", f"KiB/idle tunnel {name}", "idle", ("kib_per_tunnel", level), LOW))
    cols.append(("open_rate", "tunnel open rate /s", "idle", ("open_rate_per_s", max(levels)), HIGH))
    return cols


def load(raw_path, servers_path, meta_path):
    records = defaultdict(list)  # (server, case) -> [run.sh record, ...]
    with open(raw_path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                records[(r["server"], r["case"])].append(r)
    servers = []
    with open(servers_path, encoding="utf-8") as f:
        for line in f:
            name, label, status, auth = line.rstrip("\n").split("\t")
            servers.append({"name": name, "label": label, "status": status, "auth": auth == "1"})
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    return records, servers, meta


def cell(server, col, records, cases):
    """Median of one column for one server, with the notes a reader needs."""
    key, _, case, metric, _ = col
    name = server["name"]
    if name == "direct" and (case in DIRECT_NA or key.startswith("kib_")):
        return {"text": "–", "value": None}
    if server["status"] != "ok" or case not in cases:
        return {"text": "not run", "value": None}
    if case.endswith("_auth") and not server["auth"]:
        return {"text": "n/a", "value": None}
    runs = records.get((name, case), [])
    if not runs:  # run.sh skipped it: not one of the cases this server runs
        return {"text": "not run", "value": None}
    died = any(r["server_died"] for r in runs)
    recs = [r["result"] for r in runs if r["result"] is not None]
    if isinstance(metric, tuple):  # idle: one record per level
        metric, level = metric
        recs = [r for r in recs if r.get("level") == level]
    values = [r[metric] for r in recs if r.get(metric) is not None]
    if not values:
        return {"text": "server died" if died else "failed", "value": None}
    value = statistics.median(values)
    out = {"value": value, "values": values}
    notes = ["server died"] if died else []
    errors = sum(r.get("errors", 0) for r in recs)
    if errors and case != "idle":
        notes.append(f"{errors:,} err")
        out["errors"] = errors
    if case == "idle":
        level = recs[0]["level"]
        opened = int(statistics.median(r["open"] for r in recs))
        short = sum(1 for r in recs if r["open"] < level)
        if opened < level:
            notes.append(f"{opened:,} open")
            out["open"] = opened
        elif short:
            notes.append(f"{short} of {len(recs)} runs short of {level:,}")
    out["text"] = fmt(value, metric) + (f" ({', '.join(notes)})" if notes else "")
    return out


def fmt(value, metric):
    if metric in ("sessions_per_s", "open_rate_per_s", "sessions_per_cpu_s"):
        return f"{value:,.0f}"
    if metric in ("p50_us", "p99_us"):
        return f"{value:.0f}"
    if metric in ("kib_per_tunnel", "gbit_per_cpu"):
        return f"{value:.1f}"
    return f"{value:.2f}"


def is_peer(name):
    """Servers other than the baselines (direct, direct_*) and CleverSocks
    itself (cleversocks_* rows are CleverSocks with a non-default setting)."""
    return not name.startswith(("direct", "cleversocks"))


def references(servers):
    """The direct_* baseline rows that ran."""
    return [s for s in servers if s["name"].startswith("direct_") and s["status"] == "ok"]


def variants(servers):
    """The cleversocks_* rows."""
    return [s for s in servers if s["name"].startswith("cleversocks_")]


def ratio_rows(table, servers, columns, cs_name="cleversocks", direct_name="direct"):
    """CleverSocks / best peer and CleverSocks / direct (or another baseline
    row), per column."""
    peers = [s["name"] for s in servers if is_peer(s["name"])]
    best_peer, vs_direct = {}, {}
    for col in columns:
        key, better = col[0], col[4]
        cs = table.get(cs_name, {}).get(key, {}).get("value")
        peer_values = [table[p][key]["value"] for p in peers if table[p][key]["value"] is not None]
        if cs is not None and peer_values:
            best = max(peer_values) if better == HIGH else min(peer_values)
            best_peer[key] = cs / best if best else None
        direct = table.get(direct_name, {}).get(key, {}).get("value")
        if cs is not None and direct:
            vs_direct[key] = cs / direct
    return best_peer, vs_direct


def targets(table, best_peer, vs_direct, levels):
    """The issue's targets, each met / not met / unknown (no data)."""
    out = []

    def check(text, ratio_or_value, op, bound):
        if ratio_or_value is None:
            status = "unknown"
        else:
            ok = ratio_or_value >= bound if op == ">=" else ratio_or_value <= bound
            status = "met" if ok else "NOT met"
        out.append({"target": text, "measured": ratio_or_value, "status": status})

    for key, what in (("up1", "1 stream up"), ("down1", "1 stream down")):
        check(f"{what} ≥ 2× best peer", best_peer.get(key), ">=", 2)
        check(f"{what} ≥ 0.5× direct", vs_direct.get(key), ">=", 0.5)
    for key, what in (("up8", "8 streams up"), ("down8", "8 streams down")):
        check(f"{what} ≥ 2× best peer", best_peer.get(key), ">=", 2)
    for key, what in (("sess_ipv4", "sessions/s IPv4"), ("sess_domain", "sessions/s localhost"),
                      ("sess_ipv4_auth", "sessions/s IPv4 + auth"),
                      ("sess_domain_auth", "sessions/s localhost + auth")):
        check(f"{what} ≥ 2× best peer", best_peer.get(key), ">=", 2)
    check("RTT p50 ≤ 1.15× direct", vs_direct.get("rtt_p50"), "<=", 1.15)
    check("RTT p99 ≤ 1.5× direct", vs_direct.get("rtt_p99"), "<=", 1.5)
    cs = table.get("cleversocks", {})
    for level in levels:
        check(f"≤ 4 KiB RSS per idle tunnel at {level:,}", cs.get(f"kib_{level}", {}).get("value"), "<=", 4)
    top = max(levels)
    top_cell = cs.get(f"kib_{top}", {})
    opened = top_cell.get("open", top if top_cell.get("value") is not None else None)
    check(f"all {top:,} idle tunnels open", opened, ">=", top)
    check("tunnel open rate ≥ best peer", best_peer.get("open_rate"), ">=", 1)
    return out


def ratio_text(r):
    return "–" if r is None else f"{r:.2f}×"


def cpu_markdown(servers, cpu_table, cpu_best_peer):
    """The "Server CPU" section: empty when no run recorded the server's CPU time."""
    rows = [s for s in servers if s["name"] != "direct"
            and any(cell["value"] is not None for cell in cpu_table[s["name"]].values())]
    cols = [c for c in CPU_COLUMNS if any(cpu_table[s["name"]][c[0]]["value"] is not None for s in rows)]
    if not cols:
        return []
    lines = [
        "## Server CPU",
        "",
        "The same runs, as work per CPU-second of the server's processes (user + system time of the "
        "process tree over the measured window, from /proc; on loopback a sender's system time also "
        "covers the receiver's TCP input, for every server alike), and in brackets the server's CPU "
        "use in % of one CPU. A server below 100 % was not what limited its row above.",
        "",
        "| | " + " | ".join(c[1] for c in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for s in rows:
        lines.append(f"| {s['label']} | " + " | ".join(cpu_table[s["name"]][c[0]]["text"] for c in cols) + " |")
    lines.append("| **CleverSocks / best peer** | "
                 + " | ".join(ratio_text(cpu_best_peer.get(c[0])) for c in cols) + " |")
    return lines


def idle_text(meta):
    """How idle CPUs waited during the run: on a VM, a halted vCPU's wake-up can be most of a
    cross-CPU round trip, so RTT figures from hosts with different settings do not compare."""
    return f" · CPU idle: {meta['cpu_idle']}" if meta.get("cpu_idle") else ""


def congestion_text(meta):
    """The TCP congestion control the measurements ran with: on loopback, bbr paces every socket
    with a high-resolution timer (lo has no fq qdisc to do it), which costs every server, and the
    direct baseline, CPU per byte; runs with different algorithms do not compare."""
    return f" · TCP congestion control: {meta['tcp_congestion']}" if meta.get("tcp_congestion") else ""


BULK_IO_WORDS = {"zerocopy": "zerocopy (tee and splice from a pipe, recv with MSG_TRUNC)",
                 "copy": "copy (send and recv through a buffer)"}


def bulk_io_text(meta):
    """How the generator and the target moved the throughput streams' bytes: copying them costs
    their CPU per byte, which on a machine with few CPUs bounds a fast server; runs with different
    modes do not compare."""
    mode = meta.get("bulk_io")
    return f" · bulk I/O of the tools: {BULK_IO_WORDS.get(mode, mode)}" if mode else ""


def run_conditions(meta):
    """The header's words for what, besides the servers, shaped the figures."""
    return idle_text(meta) + congestion_text(meta) + bulk_io_text(meta)


def markdown(meta, servers, columns, table, best_peer, vs_direct, target_list, cpu_lines=(),
             variant_vs_direct=None, vs_references=None):
    lines = [
        "# CleverSocks benchmark",
        "",
        f"{meta['date']} · commit `{meta['commit']}` · {meta['cpus']} CPUs ({meta['cpu_model']}) · "
        f"kernel {meta['kernel']} · loopback" + run_conditions(meta),
        "",
        f"W={meta['workers']} workers · {meta.get('generator_threads', meta['workers'])} generator threads · "
        f"{meta.get('pinning', 'not pinned')} · {meta['duration_s']} s measured after "
        f"{meta['warmup_s']} s warm-up · {meta['clients']} session clients · {meta['pings']} pings · "
        f"median of {meta['reps']} run(s) per cell, servers alternating"
        + (" · **quick mode**" if meta.get("quick") else ""),
        "",
        f"Load average before the run: {meta['loadavg_before']} (anything else running on the "
        "machine takes cores from the servers and the generator alike).",
        "",
        "| | " + " | ".join(c[1] for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for s in servers:
        row = table[s["name"]]
        lines.append(f"| {s['label']} | " + " | ".join(row[c[0]]["text"] for c in columns) + " |")
    lines.append("| **CleverSocks / best peer** | "
                 + " | ".join(ratio_text(best_peer.get(c[0])) for c in columns) + " |")
    lines.append("| **CleverSocks / direct** | "
                 + " | ".join(ratio_text(vs_direct.get(c[0])) for c in columns) + " |")
    for s in variants(servers):
        ratios = (variant_vs_direct or {}).get(s["name"], {})
        lines.append(f"| **{s['label']} / direct** | "
                     + " | ".join(ratio_text(ratios.get(c[0])) for c in columns) + " |")
    for s in references(servers):
        ratios = (vs_references or {}).get(s["name"], {})
        lines.append(f"| **CleverSocks / {s['label']}** | "
                     + " | ".join(ratio_text(ratios.get(c[0])) for c in columns) + " |")
    lines += [
        "",
        "Ratios are CleverSocks' figure divided by the other; for RTT and KiB lower is better, so "
        "there a ratio below 1 is a win. `n/a`: the server cannot do it here (Dante's RFC 1929 "
        "needs system users); `–`: no counterpart (direct has no handshake or proxy process); "
        "`not run`: server or measurement skipped; a `CleverSocks …, --busy-poll` row is CleverSocks "
        "with that non-default setting, measured where it changes something, and is no peer; the "
        "`direct, target on the servers' CPUs` row is no peer either: no proxy, with the target "
        "moved to the CPUs the servers run on, so a round trip crosses CPUs twice where a proxied "
        "one crosses them four times, and the generator has its CPU to itself, as beside a proxy "
        "(what it can drive; the issue's targets stay against `direct`); "
        "`server died`: it exited during the run; `(N err)`: failed sessions or streams, summed over the runs; "
        "`(N open)`: the level was not reached (median over the runs; 20,000 descriptors per "
        "process hold about 9,990 two-socket tunnels); `(k of n runs short)`: some runs did not "
        "reach it. The raw JSON records say why runs failed (`first_error`).",
    ]
    skipped = [s for s in servers if s["status"] != "ok"]
    if skipped:
        lines.append("")
        lines += [f"- {s['label']} not run: {s['status']}" for s in skipped]
    if cpu_lines:
        lines += [""] + list(cpu_lines)
    lines += ["", "## Targets (issue 3)", ""]
    if table.get("cleversocks") and any(t["status"] != "unknown" for t in target_list):
        for t in target_list:
            measured = "" if t["measured"] is None else f" — measured {t['measured']:.2f}"
            lines.append(f"- {t['status']}: {t['target']}{measured}")
        lines.append("- not measured here: near-linear scaling with W (`bench/run.sh --scaling \"1 2 4\"` "
                     "on a machine with at least 2W CPUs; see scaling.md)")
    else:
        lines.append("CleverSocks was not measured in this run.")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ scaling

# Near-linear: W workers on W CPUs do at least this share of W times what the
# smallest worker count did.
SCALING_EFFICIENCY = 0.8


def scaling_report(raw_path, servers_path, meta_path):
    """bench/run.sh --scaling: each case at each worker count, CleverSocks against
    W=smallest, with direct at the same placement as the generator's ceiling."""
    records, servers, meta = load(raw_path, servers_path, meta_path)
    add_cpu_figures(records)
    by_w = defaultdict(lambda: defaultdict(list))  # workers -> (server, case) -> [record]
    placement = {}
    for (name, case), runs in records.items():
        for r in runs:
            by_w[r["workers"]][(name, case)].append(r)
            placement[r["workers"]] = r["placement"]
    widths = [w for w in meta["scaling"] if w in placement]
    server = {s["name"]: s for s in servers}
    cpu_columns = {c[2]: c for c in CPU_COLUMNS}
    lines = [
        "# CleverSocks scaling",
        "",
        f"{meta['date']} · commit `{meta['commit']}` · {meta['cpus']} CPUs ({meta['cpu_model']}) · "
        f"kernel {meta['kernel']} · loopback{run_conditions(meta)} · {meta['duration_s']} s measured after "
        f"{meta['warmup_s']} s warm-up · median of {meta['reps']} run(s) per cell",
        "",
        "Each worker count W runs CleverSocks with `-w W` on W CPUs and the generator and target on "
        "the others (`pinned`), when the machine has at least 2W CPUs; otherwise everything shares "
        "every CPU (`shared`) and that row does not count as scaling. `direct` is the generator "
        "without a proxy at the same placement: its ceiling. Speed-up is against the smallest pinned "
        "W; efficiency is speed-up divided by the growth in W (1.00 = linear). The last column is "
        "CleverSocks' figure divided by its CPU use, with that use in brackets.",
    ]
    result = {"meta": meta, "cases": {}, "targets": []}
    for col in BASE_COLUMNS:
        case = col[2]
        if case not in meta["cases"] or case not in cpu_columns:
            continue
        base = None
        rows = []
        for w in widths:
            recs = by_w[w]
            row = {"workers": w, "placement": placement[w],
                   "direct": cell(server["direct"], col, recs, meta["cases"]),
                   "cleversocks": cell(server["cleversocks"], col, recs, meta["cases"]),
                   "per_server_cpu": cpu_cell(server["cleversocks"], cpu_columns[case], recs, meta["cases"])}
            cs = row["cleversocks"]["value"]
            if row["placement"] == "pinned" and cs:
                base = base or (w, cs)
                row["speedup"] = cs / base[1]
                row["efficiency"] = row["speedup"] / (w / base[0])
            rows.append(row)
        result["cases"][case] = rows
        lines += ["", f"## {col[1]}", "",
                  f"| W | placement | {server['direct']['label']} | {server['cleversocks']['label']} "
                  "| speed-up | efficiency | per server CPU-second |",
                  "|---|---|---|---|---|---|---|"]
        for row in rows:
            lines.append(
                f"| {row['workers']} | {row['placement']} | {row['direct']['text']} | "
                f"{row['cleversocks']['text']} | "
                + (f"{row['speedup']:.2f}× | {row['efficiency']:.2f}" if "speedup" in row else "– | –")
                + f" | {row['per_server_cpu']['text']} |")
        scaled = [r["efficiency"] for r in rows if "efficiency" in r and r["workers"] > base[0]]
        worst = min(scaled) if scaled else None
        status = "unknown" if worst is None else "met" if worst >= SCALING_EFFICIENCY else "NOT met"
        result["targets"].append({"target": f"{col[1]}: near-linear with W (efficiency ≥ {SCALING_EFFICIENCY})",
                                  "measured": worst, "status": status})
    skipped = [c for c in meta["cases"] if c not in cpu_columns]
    if skipped:
        lines += ["", "Not throughput or sessions cases, skipped: " + ", ".join(f"`{c}`" for c in skipped) + "."]
    lines += ["", "## Targets (issue 3)", ""]
    for t in result["targets"]:
        if t["status"] == "unknown":
            lines.append(f"- not measured: {t['target']} — no pinned W above the smallest "
                         f"(needs at least 2W CPUs; this machine has {meta['cpus']})")
        else:
            lines.append(f"- {t['status']}: {t['target']} — lowest efficiency {t['measured']:.2f}")
    return "\n".join(lines) + "\n", result


# ------------------------------------------------------------ micro-benchmarks

TIME_TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# Benchmark families (the name up to the first "/"), in report order: title
# and what one operation is.
MICRO_FAMILIES = [
    ("parse", "Protocol parsers", "parse one complete message (src/protocol)"),
    ("acl", "ACL evaluation", "acl::evaluate(): the default built-in blocks plus N user rules; none "
     "matches the targets, so every rule is tried, except before DNS, where the first rule that needs "
     "the address ends the pass"),
    ("route", "Rule lookup", "router::select() over N forwarding rules with domain patterns"),
    ("ip_set", "Address sets", "ip_set::contains() over N random prefixes; half the lookups hit"),
    ("auth", "Credential check", "what the session does per RFC 1929 request, before the rate limiter"),
]

ARG_RE = re.compile(r"^(?P<base>.*)/(?P<arg>[A-Za-z_]+):(?P<value>-?\d+)$")


def load_micro(path):
    """micro_bench's JSON → {"context": {...}, "benchmarks": [{name, ns_per_op, ...}]}.

    ns_per_op is CPU time per iteration (one operation each). With
    --benchmark_repetitions, the median aggregate stands for its runs."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    rows = data.get("benchmarks", [])
    medians = {r.get("run_name") for r in rows
               if r.get("run_type") == "aggregate" and r.get("aggregate_name") == "median"}
    out = []
    for r in rows:
        name = r.get("run_name") or r["name"]
        if r.get("run_type") == "aggregate":
            if r.get("aggregate_name") != "median":
                continue
        elif name in medians:
            continue
        entry = {"name": name}
        if r.get("error_occurred"):
            entry["error"] = r.get("error_message") or "error"
        else:
            scale = TIME_TO_NS.get(r.get("time_unit", "ns"), 1.0)
            entry["ns_per_op"] = r["cpu_time"] * scale
            entry["real_ns_per_op"] = r["real_time"] * scale
            entry["items_per_s"] = r.get("items_per_second")
            if r.get("run_type") == "aggregate":
                entry["repetitions"] = r.get("repetitions")
            else:
                entry["iterations"] = r.get("iterations")
        out.append(entry)
    ctx = data.get("context", {})
    keep = ("date", "host_name", "executable", "num_cpus", "mhz_per_cpu", "cpu_scaling_enabled",
            "load_avg", "library_build_type")
    return {"context": {k: ctx[k] for k in keep if k in ctx}, "benchmarks": out}


def fmt_ns(v):
    if v < 10:
        return f"{v:.2f}"
    if v < 100:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def fmt_rate(v):
    if v is None:
        return "–"
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g}"


def micro_cell(b):
    return f"error: {b['error']}" if "error" in b else fmt_ns(b["ns_per_op"])


def micro_tables(benchmarks):
    """Markdown lines: per family, a table of the plain benchmarks and one
    per argument name (e.g. rules) with a column per value."""
    families = defaultdict(list)
    order = []
    for b in benchmarks:
        fam = b["name"].split("/", 1)[0]
        if fam not in families:
            order.append(fam)
        families[fam].append(b)
    known = [f[0] for f in MICRO_FAMILIES]
    titles = {f[0]: (f[1], f[2]) for f in MICRO_FAMILIES}
    lines = []
    for fam in [f for f in known if f in families] + [f for f in order if f not in known]:
        title, what = titles.get(fam, (fam, ""))
        lines += ["", f"**{title}** — {what}" if what else f"**{title}**", ""]
        plain = [b for b in families[fam] if not ARG_RE.match(b["name"])]
        by_arg = defaultdict(dict)  # arg name -> base -> value -> benchmark
        for b in families[fam]:
            m = ARG_RE.match(b["name"])
            if m:
                by_arg[m["arg"]].setdefault(m["base"], {})[int(m["value"])] = b
        if plain:
            lines += ["| benchmark | ns/op | ops/s |", "|---|---:|---:|"]
            for b in plain:
                lines.append(f"| `{b['name']}` | {micro_cell(b)} | "
                             f"{fmt_rate(b.get('items_per_s')) if 'error' not in b else '–'} |")
            if by_arg:
                lines.append("")
        for arg, bases in by_arg.items():
            values = sorted({v for per in bases.values() for v in per})
            lines.append(f"| ns/op, by {arg} | " + " | ".join(f"{v:,}" for v in values) + " |")
            lines.append("|---|" + "---:|" * len(values))
            for base, per in bases.items():
                cells = [micro_cell(per[v]) if v in per else "–" for v in values]
                lines.append(f"| `{base}` | " + " | ".join(cells) + " |")
            lines.append("")
        if lines[-1] == "":
            lines.pop()
    return lines


def micro_markdown(micro, note):
    lines = ["## Micro-benchmarks (ns/op)", ""]
    if micro is None:
        lines.append(f"Not run: {note or 'no micro_bench output'}.")
        return lines
    ctx = micro["context"]
    reps = {b.get("repetitions") for b in micro["benchmarks"] if b.get("repetitions")}
    how = f"median of {max(reps)} repetitions" if reps else "one run each"
    load = ctx.get("load_avg")
    lines.append(
        "`micro_bench` (bench/micro, Google Benchmark): CPU time per operation on one thread, "
        f"{how}; lower is better; ops/s = 10⁹ / ns. Each figure is one function called in a loop: "
        "no sockets, no event loop. Load average when it started: "
        + (", ".join(f"{x:.2f}" for x in load) if load else "unknown") + "."
    )
    lines += micro_tables(micro["benchmarks"])
    return lines


def main_micro_only(args):
    if len(args.files) != 2:
        sys.exit("usage: report.py --micro-only (--micro GBENCH.json | --micro-note TEXT) META.json OUT_PREFIX")
    meta_path, out_prefix = args.files
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    micro = load_micro(args.micro) if args.micro else None
    lines = [
        "# CleverSocks micro-benchmarks",
        "",
        f"{meta['date']} · commit `{meta['commit']}` · {meta['cpus']} CPUs ({meta['cpu_model']}) · "
        f"kernel {meta['kernel']}",
        "",
    ] + micro_markdown(micro, args.micro_note)[2:]  # the title replaces the section heading
    md = "\n".join(lines) + "\n"
    with open(out_prefix + ".md", "w", encoding="utf-8") as f:
        f.write(md)
    with open(out_prefix + ".json", "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "micro": micro if micro is not None else {"note": args.micro_note}},
                  f, indent=2, ensure_ascii=False)
        f.write("\n")
    sys.stdout.write(md)


def main():
    parser = argparse.ArgumentParser(
        description="bench/run.sh's report",
        usage="report.py [--micro GBENCH.json | --micro-note TEXT] RAW.jsonl SERVERS.tsv META.json OUT_PREFIX\n"
              "       report.py --micro-only (--micro GBENCH.json | --micro-note TEXT) META.json OUT_PREFIX\n"
              "       report.py --scaling RAW.jsonl SERVERS.tsv META.json OUT_PREFIX")
    parser.add_argument("--micro", metavar="GBENCH.json")
    parser.add_argument("--micro-note", metavar="TEXT")
    parser.add_argument("--micro-only", action="store_true")
    parser.add_argument("--scaling", action="store_true",
                        help="RAW.jsonl SERVERS.tsv META.json OUT_PREFIX from bench/run.sh --scaling")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.micro_only:
        main_micro_only(args)
        return
    if args.scaling:
        if len(args.files) != 4:
            parser.error("--scaling expects RAW.jsonl SERVERS.tsv META.json OUT_PREFIX")
        md, result = scaling_report(*args.files[:3])
        with open(args.files[3] + ".md", "w", encoding="utf-8") as f:
            f.write(md)
        with open(args.files[3] + ".json", "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, ensure_ascii=False)
            f.write("\n")
        sys.stdout.write(md)
        return
    if len(args.files) != 4:
        parser.error("expected RAW.jsonl SERVERS.tsv META.json OUT_PREFIX")
    raw_path, servers_path, meta_path, out_prefix = args.files
    records, servers, meta = load(raw_path, servers_path, meta_path)
    add_cpu_figures(records)
    levels = meta["idle_levels"]
    columns = BASE_COLUMNS + idle_columns(levels)
    table = {s["name"]: {c[0]: cell(s, c, records, meta["cases"]) for c in columns} for s in servers}
    best_peer, vs_direct = ratio_rows(table, servers, columns)
    target_list = targets(table, best_peer, vs_direct, levels) if "cleversocks" in table else []
    cpu_table = {s["name"]: {c[0]: cpu_cell(s, c, records, meta["cases"]) for c in CPU_COLUMNS}
                 for s in servers if s["name"] != "direct"}
    cpu_best_peer, _ = ratio_rows(cpu_table, servers, CPU_COLUMNS)
    variant_vs_direct = {s["name"]: ratio_rows(table, servers, columns, s["name"])[1] for s in variants(servers)}
    vs_references = {s["name"]: ratio_rows(table, servers, columns, "cleversocks", s["name"])[1]
                     for s in references(servers)}

    md = markdown(meta, servers, columns, table, best_peer, vs_direct, target_list,
                  cpu_markdown(servers, cpu_table, cpu_best_peer), variant_vs_direct, vs_references)
    micro = load_micro(args.micro) if args.micro else None
    if micro is not None or args.micro_note:
        md += "\n" + "\n".join(micro_markdown(micro, args.micro_note)) + "\n"
    with open(out_prefix + ".md", "w", encoding="utf-8") as f:
        f.write(md)
    result = {
        "meta": meta,
        "columns": [{"key": c[0], "header": c[1], "case": c[2], "better": c[4]} for c in columns],
        "servers": servers,
        "table": table,
        "cleversocks_vs_best_peer": best_peer,
        "cleversocks_vs_direct": vs_direct,
        "variants_vs_direct": variant_vs_direct,
        "cleversocks_vs_references": vs_references,
        "server_cpu": {"columns": [{"key": c[0], "header": c[1], "case": c[2], "metric": c[3]}
                                   for c in CPU_COLUMNS],
                       "table": cpu_table, "cleversocks_vs_best_peer": cpu_best_peer},
        "targets": target_list,
    }
    if micro is not None or args.micro_note:
        result["micro"] = micro if micro is not None else {"note": args.micro_note}
    with open(out_prefix + ".json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
        f.write("\n")
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
