#!/usr/bin/env python3
"""Turns the raw records of one bench/run.sh run into the results table.

Input : RAW      JSON lines {"server","case","rep","server_died",
                 "result": <loadgen record, or null if it printed none>}
        SERVERS  TSV lines  name, label, status ("ok" or why it was skipped),
                 auth ("1" if it supports RFC 1929 here)
        META     JSON object with the run parameters (copied to the output)
Output: OUT.md and OUT.json (the table, the ratios and the issue's targets);
        the Markdown also goes to stdout.

Every cell is the median over the repetitions. Standard library only.
"""

import json
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
    if metric in ("sessions_per_s", "open_rate_per_s"):
        return f"{value:,.0f}"
    if metric in ("p50_us", "p99_us"):
        return f"{value:.0f}"
    if metric == "kib_per_tunnel":
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio_rows(table, servers, columns):
    """CleverSocks / best peer and CleverSocks / direct, per column."""
    peers = [s["name"] for s in servers if s["name"] not in ("direct", "cleversocks")]
    best_peer, vs_direct = {}, {}
    for col in columns:
        key, better = col[0], col[4]
        cs = table.get("cleversocks", {}).get(key, {}).get("value")
        peer_values = [table[p][key]["value"] for p in peers if table[p][key]["value"] is not None]
        if cs is not None and peer_values:
            best = max(peer_values) if better == HIGH else min(peer_values)
            best_peer[key] = cs / best if best else None
        direct = table.get("direct", {}).get(key, {}).get("value")
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


def markdown(meta, servers, columns, table, best_peer, vs_direct, target_list):
    lines = [
        "# CleverSocks benchmark",
        "",
        f"{meta['date']} · commit `{meta['commit']}` · {meta['cpus']} CPUs ({meta['cpu_model']}) · "
        f"kernel {meta['kernel']} · loopback",
        "",
        f"W={meta['workers']} workers (generator threads too) · {meta['duration_s']} s measured after "
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
    lines += [
        "",
        "Ratios are CleverSocks' figure divided by the other; for RTT and KiB lower is better, so "
        "there a ratio below 1 is a win. `n/a`: the server cannot do it here (Dante's RFC 1929 "
        "needs system users); `–`: no counterpart (direct has no handshake or proxy process); "
        "`not run`: server or measurement skipped; `server died`: it exited during the run; `(N err)`: failed sessions or streams, summed over the runs; "
        "`(N open)`: the level was not reached (median over the runs; 20,000 descriptors per "
        "process hold about 9,990 two-socket tunnels); `(k of n runs short)`: some runs did not "
        "reach it. The raw JSON records say why runs failed (`first_error`).",
    ]
    skipped = [s for s in servers if s["status"] != "ok"]
    if skipped:
        lines.append("")
        lines += [f"- {s['label']} not run: {s['status']}" for s in skipped]
    lines += ["", "## Targets (issue 3)", ""]
    if table.get("cleversocks") and any(t["status"] != "unknown" for t in target_list):
        for t in target_list:
            measured = "" if t["measured"] is None else f" — measured {t['measured']:.2f}"
            lines.append(f"- {t['status']}: {t['target']}{measured}")
        lines.append("- not measured here: near-linear scaling with W (rerun with a larger "
                     "BENCH_WORKERS on a machine with ≥ W cores)")
    else:
        lines.append("CleverSocks was not measured in this run.")
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: report.py RAW.jsonl SERVERS.tsv META.json OUT_PREFIX")
    raw_path, servers_path, meta_path, out_prefix = sys.argv[1:]
    records, servers, meta = load(raw_path, servers_path, meta_path)
    levels = meta["idle_levels"]
    columns = BASE_COLUMNS + idle_columns(levels)
    table = {s["name"]: {c[0]: cell(s, c, records, meta["cases"]) for c in columns} for s in servers}
    best_peer, vs_direct = ratio_rows(table, servers, columns)
    target_list = targets(table, best_peer, vs_direct, levels) if "cleversocks" in table else []

    md = markdown(meta, servers, columns, table, best_peer, vs_direct, target_list)
    with open(out_prefix + ".md", "w", encoding="utf-8") as f:
        f.write(md)
    result = {
        "meta": meta,
        "columns": [{"key": c[0], "header": c[1], "case": c[2], "better": c[4]} for c in columns],
        "servers": servers,
        "table": table,
        "cleversocks_vs_best_peer": best_peer,
        "cleversocks_vs_direct": vs_direct,
        "targets": target_list,
    }
    with open(out_prefix + ".json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
        f.write("\n")
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
