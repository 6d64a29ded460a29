"""bench/report.py on synthetic run records: the side-by-side table's server
CPU figures and ratios, and the --scaling report's speed-up, efficiency and
target. report.py is pure (files in, files out), so these need no servers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parents[2] / "bench" / "report.py"

SERVERS = [("direct", "direct, no proxy", "ok", "0"), ("cleversocks", "CleverSocks 0.1.0", "ok", "1"),
           ("dante", "Dante 1.4.2", "ok", "0"), ("microsocks", "microsocks 1.0.3", "ok", "1")]


def meta(cases, scaling=()):
    return {"date": "2026-11-23T00:00:00Z", "commit": "abc1234", "cpus": 8, "cpu_model": "test CPU",
            "kernel": "6.18", "workers": 1, "generator_threads": 1, "pinning": "test", "duration_s": 3,
            "warmup_s": 1, "reps": 3, "clients": 64, "pings": 10000, "idle_levels": [1000],
            "loadavg_before": 0.0, "cases": cases, "scaling": list(scaling), "quick": False}


def record(server, case, rep, result, workers=1, placement="pinned", died=False):
    return {"server": server, "case": case, "rep": rep, "workers": workers, "placement": placement,
            "server_died": died, "result": result}


def throughput(gbit, util=None):
    r = {"mode": "throughput", "gbit_s": gbit, "errors": 0}
    if util is not None:
        r.update(server_cpu_s=util * 3, server_cpu_util=util)
    return r


def sessions(rate, util=None):
    r = {"mode": "sessions", "sessions_per_s": rate, "errors": 0}
    if util is not None:
        r.update(server_cpu_s=util * 3, server_cpu_util=util)
    return r


def run_report(tmp_path, records, meta_obj, *flags, servers_list=SERVERS):
    raw, servers, meta_path = tmp_path / "raw.jsonl", tmp_path / "servers.tsv", tmp_path / "meta.json"
    raw.write_text("".join(json.dumps(r) + "\n" for r in records))
    servers.write_text("".join("\t".join(s) + "\n" for s in servers_list))
    meta_path.write_text(json.dumps(meta_obj))
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(REPORT), *flags, str(raw), str(servers), str(meta_path), str(out)],
                   check=True, capture_output=True, timeout=60)
    return json.loads((tmp_path / "out.json").read_text()), (tmp_path / "out.md").read_text()


def test_server_cpu_table_divides_each_run_by_the_servers_cpu(tmp_path):
    recs = []
    for rep in (1, 2, 3):
        recs += [
            record("direct", "thr_up_1", rep, throughput(30.0)),
            # 25 Gbit/s at half a CPU: 50 per CPU-second, whatever the rate ratio says.
            record("cleversocks", "thr_up_1", rep, throughput(25.0, 0.5)),
            record("dante", "thr_up_1", rep, throughput(15.0, 1.0)),
            record("microsocks", "thr_up_1", rep, throughput(2.5, 1.0)),
            record("direct", "sess_ipv4", rep, sessions(14000.0)),
            record("cleversocks", "sess_ipv4", rep, sessions(7000.0 + rep, 1.0)),
            record("dante", "sess_ipv4", rep, sessions(3800.0, 0.95)),
            record("microsocks", "sess_ipv4", rep, sessions(7200.0, 0.9)),
        ]
    # A run whose server exited: no CPU figure, the rest of the record kept.
    recs.append(record("microsocks", "thr_up_1", 4,
                       {**throughput(2.6), "server_cpu_s": None, "server_cpu_util": None}, died=True))
    result, md = run_report(tmp_path, recs, meta(["thr_up_1", "sess_ipv4"]))

    cpu = result["server_cpu"]["table"]
    assert "direct" not in cpu
    assert cpu["cleversocks"]["cpu_up1"]["value"] == pytest.approx(50.0)
    assert cpu["cleversocks"]["cpu_up1"]["cpu_util"] == pytest.approx(0.5)
    assert cpu["dante"]["cpu_up1"]["value"] == pytest.approx(15.0)
    assert cpu["microsocks"]["cpu_up1"]["value"] == pytest.approx(2.5)  # the died run has none
    assert cpu["cleversocks"]["cpu_sess_ipv4"]["value"] == pytest.approx(7002.0)
    assert cpu["microsocks"]["cpu_sess_ipv4"]["value"] == pytest.approx(8000.0)
    ratios = result["server_cpu"]["cleversocks_vs_best_peer"]
    assert ratios["cpu_up1"] == pytest.approx(50.0 / 15.0)
    assert ratios["cpu_sess_ipv4"] == pytest.approx(7002.0 / 8000.0)
    # The main table is unchanged by the CPU figures: rates and their ratios.
    assert result["cleversocks_vs_best_peer"]["up1"] == pytest.approx(25.0 / 15.0)
    assert "## Server CPU" in md
    assert "| CleverSocks 0.1.0 | 50.0 (50 %) | 7,002 (100 %) |" in md
    assert "**CleverSocks / best peer** | 3.33× | 0.88× |" in md


def test_no_server_cpu_section_without_cpu_figures(tmp_path):
    recs = [record(s, "thr_up_1", 1, throughput(g)) for s, g in
            (("direct", 30.0), ("cleversocks", 25.0), ("dante", 15.0), ("microsocks", 2.5))]
    result, md = run_report(tmp_path, recs, meta(["thr_up_1"]))
    assert "## Server CPU" not in md
    assert result["server_cpu"]["table"]["cleversocks"]["cpu_up1"]["value"] is None


def latency(p50, p99):
    return {"mode": "latency", "p50_us": p50, "p99_us": p99, "samples": 10000, "errors": 0}


def test_a_cleversocks_variant_row_is_no_peer_and_has_its_own_ratio_to_direct(tmp_path):
    """cleversocks_busy_poll runs only the latency case: its other cells say
    "not run", its faster RTT is not counted as the best peer's, and its own
    row of ratios to direct follows CleverSocks'."""
    servers = SERVERS[:2] + [("cleversocks_busy_poll", "CleverSocks 0.1.0, --busy-poll 50us", "ok", "1")] + SERVERS[2:]
    recs = []
    for rep in (1, 2, 3):
        recs += [
            record("direct", "latency", rep, latency(30.0, 50.0)),
            record("cleversocks", "latency", rep, latency(60.0, 100.0)),
            record("cleversocks_busy_poll", "latency", rep, latency(45.0 + rep, 75.0)),
            record("dante", "latency", rep, latency(90.0, 140.0)),
            record("microsocks", "latency", rep, latency(70.0, 110.0)),
        ]
        recs += [record(s, "sess_ipv4", rep, sessions(r, 1.0)) for s, r in
                 (("direct", 9000.0), ("cleversocks", 5000.0), ("dante", 2000.0), ("microsocks", 4000.0))]
    result, md = run_report(tmp_path, recs, meta(["latency", "sess_ipv4"]), servers_list=servers)

    variant = result["table"]["cleversocks_busy_poll"]
    assert variant["rtt_p50"]["value"] == pytest.approx(47.0)
    assert variant["sess_ipv4"]["text"] == "not run"
    # Peers are Dante and microsocks only: the best peer's p50 is microsocks' 70.
    assert result["cleversocks_vs_best_peer"]["rtt_p50"] == pytest.approx(60.0 / 70.0)
    assert result["cleversocks_vs_best_peer"]["sess_ipv4"] == pytest.approx(5000.0 / 4000.0)
    assert result["variants_vs_direct"]["cleversocks_busy_poll"]["rtt_p50"] == pytest.approx(47.0 / 30.0)
    assert result["variants_vs_direct"]["cleversocks_busy_poll"]["rtt_p99"] == pytest.approx(1.5)
    assert "| CleverSocks 0.1.0, --busy-poll 50us | not run | " in md
    assert "| **CleverSocks 0.1.0, --busy-poll 50us / direct** | – | – | – | – | – | – | – | – | 1.57× | 1.50× |" in md
    # No row of "not run" cells in the CPU table for a server that ran no rate case.
    assert "--busy-poll 50us | not run | not run" not in md.split("## Server CPU")[1]


def test_the_direct_across_row_is_a_baseline_not_a_peer_and_leaves_the_targets_on_direct(tmp_path):
    """direct_across (the target on the servers' CPUs) is a baseline: its
    figures are neither the best peer's nor the targets' reference, and
    CleverSocks gets a row of ratios to it."""
    servers = SERVERS[:1] + [("direct_across", "direct, target on the servers' CPUs", "ok", "0")] + SERVERS[1:]
    recs = []
    for rep in (1, 2, 3):
        recs += [
            record("direct", "latency", rep, latency(20.0, 30.0)),
            # Faster than every proxy, but no peer: it must not become the best peer.
            record("direct_across", "latency", rep, latency(70.0 + rep, 140.0)),
            record("cleversocks", "latency", rep, latency(150.0, 280.0)),
            record("dante", "latency", rep, latency(180.0, 320.0)),
            record("microsocks", "latency", rep, latency(160.0, 270.0)),
        ]
        recs += [record(s, "thr_up_1", rep, throughput(g)) for s, g in
                 (("direct", 20.0), ("direct_across", 28.0), ("cleversocks", 14.0), ("dante", 9.0),
                  ("microsocks", 2.0))]
    result, md = run_report(tmp_path, recs, meta(["latency", "thr_up_1", "thr_down_1"]), servers_list=servers)

    across = result["table"]["direct_across"]
    assert across["rtt_p50"]["value"] == pytest.approx(72.0)
    assert across["up1"]["value"] == pytest.approx(28.0)
    assert across["down1"]["text"] == "not run"  # a case that has no record
    assert result["cleversocks_vs_best_peer"]["rtt_p50"] == pytest.approx(150.0 / 160.0)
    assert result["cleversocks_vs_best_peer"]["up1"] == pytest.approx(14.0 / 9.0)
    assert result["cleversocks_vs_direct"]["rtt_p50"] == pytest.approx(150.0 / 20.0)
    assert result["cleversocks_vs_direct"]["up1"] == pytest.approx(14.0 / 20.0)
    assert result["cleversocks_vs_references"]["direct_across"]["rtt_p50"] == pytest.approx(150.0 / 72.0)
    assert result["cleversocks_vs_references"]["direct_across"]["up1"] == pytest.approx(14.0 / 28.0)
    p50 = next(t for t in result["targets"] if t["target"].startswith("RTT p50"))
    assert p50["measured"] == pytest.approx(7.5) and p50["status"] == "NOT met"
    up_direct = next(t for t in result["targets"] if t["target"] == "1 stream up ≥ 0.5× direct")
    assert up_direct["measured"] == pytest.approx(0.7) and up_direct["status"] == "met"
    assert "| direct, target on the servers' CPUs | 28.00 | not run | " in md
    assert "| **CleverSocks / direct, target on the servers' CPUs** | 0.50× | – | " in md
    assert " | 2.08× | 2.00× |" in md


def test_a_direct_across_row_that_could_not_run_has_no_ratio_row(tmp_path):
    servers = SERVERS[:1] + [("direct_across", "direct, target on the servers' CPUs", "not pinned", "0")] + SERVERS[1:]
    recs = [record(s, "latency", 1, latency(p50, 2 * p50)) for s, p50 in
            (("direct", 20.0), ("cleversocks", 40.0), ("dante", 50.0), ("microsocks", 45.0))]
    result, md = run_report(tmp_path, recs, meta(["latency"]), servers_list=servers)
    assert result["table"]["direct_across"]["rtt_p50"]["text"] == "not run"
    assert result["cleversocks_vs_references"] == {}
    assert "**CleverSocks / direct, target" not in md
    assert "- direct, target on the servers' CPUs not run: not pinned" in md


def test_a_server_that_never_accepted_shows_failed_not_not_run(tmp_path):
    recs = [record("direct", "latency", 1, latency(30.0, 50.0)),
            record("cleversocks", "latency", 1, latency(60.0, 100.0)),
            record("dante", "latency", 1, None),  # run.sh: it did not accept connections
            record("microsocks", "latency", 1, latency(70.0, 110.0))]
    result, _ = run_report(tmp_path, recs, meta(["latency"]))
    assert result["table"]["dante"]["rtt_p50"]["text"] == "failed"
    assert result["table"]["dante"]["up1"]["text"] == "not run"


def test_the_header_says_how_idle_cpus_waited_when_run_sh_recorded_it(tmp_path):
    recs = [record(s, "latency", 1, latency(p50, 2 * p50)) for s, p50 in
            (("direct", 20.0), ("cleversocks", 40.0), ("dante", 50.0), ("microsocks", 45.0))]
    idle = "cpuidle driver haltpoll, governor haltpoll, guest_halt_poll_ns 200000 (set by --halt-poll)"
    result, md = run_report(tmp_path, recs, dict(meta(["latency"]), cpu_idle=idle))
    assert f"kernel 6.18 · loopback · CPU idle: {idle}\n" in md
    assert result["meta"]["cpu_idle"] == idle
    _, md = run_report(tmp_path, recs, meta(["latency"]))  # an older meta.json: no such field
    assert "CPU idle" not in md
    _, md = run_report(tmp_path, scaling_records({1: ("pinned", 5000.0)}),
                       dict(meta(["sess_ipv4"], scaling=[1]), cpu_idle=idle), "--scaling")
    assert f"loopback · CPU idle: {idle} · 3 s measured" in md


def test_the_header_names_the_tcp_congestion_control_the_measurements_ran_with(tmp_path):
    recs = [record(s, "thr_up_1", 1, {"gbit_s": g, "server_cpu_util": 0.5}) for s, g in
            (("direct", 50.0), ("cleversocks", 25.0), ("dante", 12.0), ("microsocks", 3.0))]
    idle = "cpuidle driver haltpoll, governor haltpoll, guest_halt_poll_ns 0"
    cc = "reno (set by --congestion-control)"
    result, md = run_report(tmp_path, recs, dict(meta(["thr_up_1"]), cpu_idle=idle, tcp_congestion=cc))
    assert f"loopback · CPU idle: {idle} · TCP congestion control: {cc}\n" in md
    assert result["meta"]["tcp_congestion"] == cc
    _, md = run_report(tmp_path, recs, meta(["thr_up_1"]))  # an older meta.json: no such field
    assert "congestion" not in md
    _, md = run_report(tmp_path, scaling_records({1: ("pinned", 5000.0)}),
                       dict(meta(["sess_ipv4"], scaling=[1]), tcp_congestion="bbr (the machine's default)"),
                       "--scaling")
    assert "loopback · TCP congestion control: bbr (the machine's default) · 3 s measured" in md


def test_the_header_says_how_the_tools_moved_the_bulk_bytes(tmp_path):
    recs = [record(s, "thr_up_1", 1, {"gbit_s": g, "server_cpu_util": 0.5}) for s, g in
            (("direct", 50.0), ("cleversocks", 45.0), ("dante", 12.0), ("microsocks", 3.0))]
    cc = "cubic (set by --congestion-control)"
    result, md = run_report(tmp_path, recs, dict(meta(["thr_up_1"]), tcp_congestion=cc, bulk_io="zerocopy"))
    assert (f"TCP congestion control: {cc} · bulk I/O of the tools: zerocopy (tee and splice from a pipe, "
            "recv with MSG_TRUNC)\n") in md
    assert result["meta"]["bulk_io"] == "zerocopy"
    _, md = run_report(tmp_path, recs, dict(meta(["thr_up_1"]), bulk_io="copy"))
    assert "loopback · bulk I/O of the tools: copy (send and recv through a buffer)\n" in md
    _, md = run_report(tmp_path, recs, meta(["thr_up_1"]))  # an older meta.json: no such field
    assert "bulk I/O" not in md
    _, md = run_report(tmp_path, scaling_records({1: ("pinned", 5000.0)}),
                       dict(meta(["sess_ipv4"], scaling=[1]), bulk_io="zerocopy"), "--scaling")
    assert "loopback · bulk I/O of the tools: zerocopy (tee and splice from a pipe, recv with MSG_TRUNC) · 3 s" in md


def scaling_records(rates):
    """rates: {workers: (placement, cleversocks sessions/s)}; direct always higher."""
    recs = []
    for w, (placement, rate) in rates.items():
        for rep in (1, 2, 3):
            recs.append(record("direct", "sess_ipv4", rep, sessions(2 * rate), w, placement))
            recs.append(record("cleversocks", "sess_ipv4", rep, sessions(rate, 0.99 * w), w, placement))
    return recs


def test_scaling_speedup_and_efficiency_count_pinned_rows_only(tmp_path):
    recs = scaling_records({1: ("pinned", 7000.0), 2: ("pinned", 13300.0), 4: ("pinned", 25200.0),
                            8: ("shared", 20000.0)})
    result, md = run_report(tmp_path, recs, meta(["sess_ipv4"], scaling=[1, 2, 4, 8]), "--scaling")
    rows = {r["workers"]: r for r in result["cases"]["sess_ipv4"]}
    assert rows[2]["speedup"] == pytest.approx(1.9)
    assert rows[2]["efficiency"] == pytest.approx(0.95)
    assert rows[4]["efficiency"] == pytest.approx(0.9)
    assert "speedup" not in rows[8]  # shared: not counted
    assert rows[4]["per_server_cpu"]["value"] == pytest.approx(25200.0 / (0.99 * 4))
    assert rows[4]["per_server_cpu"]["cpu_util"] == pytest.approx(3.96)
    assert rows[2]["cleversocks"]["value"] == pytest.approx(13300.0)
    [target] = result["targets"]
    assert target["status"] == "met"
    assert target["measured"] == pytest.approx(0.9)
    assert "| 8 | shared | 40,000 | 20,000 | – | – |" in md


def test_scaling_below_the_threshold_is_not_met(tmp_path):
    recs = scaling_records({1: ("pinned", 7000.0), 2: ("pinned", 10500.0)})
    result, _ = run_report(tmp_path, recs, meta(["sess_ipv4"], scaling=[1, 2]), "--scaling")
    [target] = result["targets"]
    assert target["status"] == "NOT met"
    assert target["measured"] == pytest.approx(0.75)


def test_scaling_with_only_one_pinned_width_is_not_measured(tmp_path):
    recs = scaling_records({1: ("pinned", 7000.0), 2: ("shared", 7600.0)})
    result, md = run_report(tmp_path, recs, meta(["sess_ipv4"], scaling=[1, 2]), "--scaling")
    assert result["targets"][0]["status"] == "unknown"
    assert "not measured: sessions/s IPv4: near-linear with W" in md
