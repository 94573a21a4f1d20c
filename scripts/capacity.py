#!/usr/bin/env python3
"""Capacity benchmark (issue 16, Performance item 3): the most points per
second emgate sustains through poll -> validate -> aggregate -> encode ->
spool, at 1, 10 and 100 Modbus TCP connections, against the bare
tokio-modbus client loop (examples/bare_modbus.rs) on the same server.

    cargo build --release && cargo build --release --example bare_modbus
    scripts/capacity.py                          # 1, 10 and 100 connections
    scripts/capacity.py --connections 1 --points 992 --seconds 15

Per connection count C:
1. One Modbus server process: `emgate simulate` (tokio-modbus server), C
   endpoints on C loopback ports, each with up to 247 unit ids of a
   generated profile of `--points` contiguous float32 input registers
   (one counter, the rest gauges with a plausible range). The gateway
   plans each meter into reads of 124 registers (62 points), the last
   shorter; the bare loop issues exactly the same reads.
2. The bare loop: C connections, back-to-back reads (one outstanding per
   connection) for `--bare-seconds`: reads/s, points/s, its CPU. Its rate
   moves from run to run (a ping-pong between two processes is faster
   when they happen to share a core), so it runs again after every
   gateway trial, and the ratios are taken against the median of all its
   runs.
3. emgate back to back (`--pairs` runs): more meters than any client can
   poll in a second, so emgate reads without pause through the whole
   pipeline; its counted reads/s is its per-read speed.
4. emgate sustained: `emgate run` with N meters spread over the C
   endpoints, all polled every second (poll intervals are whole seconds;
   1 s is the shortest), aggregation on (the defaults), output to the file
   sink through the spool. N is searched (bisection) for the largest load
   with no overrun, no missed slot, no timeout, no exception and no
   pipeline stall in a measured window of `--seconds` (after a warm-up of
   `--warmup`). The counters are differenced between two periodic stats
   records, so the connection set-up does not count. The sustained rate
   is the load itself: N x reads per meter, every second.

Both clients are separate processes from the server; CPU is from
/proc/PID/stat (% of one core), peak RSS is VmHWM. Results belong in
BENCHMARKS.md with the command line and the machine's load.
"""

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_ports, proc_usage  # noqa: E402

MAX_UNITS = 247
POINTS_PER_READ = 62
COUNTERS = ["readings", "points", "points_flagged", "requests", "requests_ok", "timeouts", "exceptions",
            "overruns", "missed_slots", "pipeline_stalls", "lines_written", "lines_dropped"]


def write_profile(dirname, points):
    """`capacity_f32`: `points` contiguous float32 input registers from 0."""
    os.makedirs(dirname, exist_ok=True)
    lines = ['description = "capacity benchmark: contiguous float32 input registers"',
             'consumption = "import_kwh"', "",
             "[[points]]", 'name = "import_kwh"', 'register = "input"', "address = 0",
             'type = "f32"', 'kind = "counter"', 'unit = "kwh"', ""]
    for i in range(1, points):
        lines += ["[[points]]", f'name = "p{i:05d}_kw"', 'register = "input"', f"address = {2 * i}",
                  'type = "f32"', 'unit = "kw"', "min = -100000", "max = 100000", ""]
    with open(os.path.join(dirname, "capacity_f32.toml"), "w") as f:
        f.write("\n".join(lines))


def write_config(dirname, name, ports, per_endpoint, profiles):
    """A configuration with per_endpoint[e] meters (unit ids 1..) on port e."""
    sites = os.path.join(dirname, name + "-sites")
    os.makedirs(sites)
    main = ["[gateway]", f'id = "{name}"', f'data_dir = "{dirname}/{name}-data"',
            f'sites_dir = "{sites}"', f'profiles_dir = "{profiles}"', "",
            "[file_sink]", f'path = "{dirname}/{name}-data/lines.lp"', "batch_size = 5000",
            "flush_interval_ms = 1000", ""]
    for e, (port, units) in enumerate(zip(ports, per_endpoint)):
        main += ["[[endpoints]]", f'id = "ep{e}"', 'host = "127.0.0.1"', f"port = {port}",
                 "timeout_ms = 2000", ""]
        if units == 0:
            continue
        site = ["[site]", f'id = "S{e:05d}"', f'name = "capacity site {e}"', ""]
        for u in range(units):
            site += ["[[meters]]", f'id = "m{e:05d}-{u:03d}"', 'energy = "electricity"', "level = 2",
                     'profile = "capacity_f32"', f'endpoint = "ep{e}"', f"unit_id = {u + 1}",
                     "poll_interval_secs = 1", ""]
        with open(os.path.join(sites, f"s{e:05d}.toml"), "w") as f:
            f.write("\n".join(site))
    path = os.path.join(dirname, name + ".toml")
    with open(path, "w") as f:
        f.write("\n".join(main))
    return path


def spread(n, c):
    """n meters over c endpoints, as even as possible."""
    return [n // c + (1 if e < n % c else 0) for e in range(c)]


def check(binary, cfg):
    r = subprocess.run([binary, "check-config", "--config", cfg], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"generated config {cfg} invalid:\n{r.stderr}")


def last_stats(path):
    """The last periodic stats record in the gateway's JSON log."""
    rec = None
    with open(path) as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("fields", {}).get("message") in ("stats", "final stats"):
                rec = r
    return rec


def run_bare(bare, ports, units, points, seconds):
    p = subprocess.Popen([bare, *[a for port in ports for a in ("--addr", f"127.0.0.1:{port}")],
                          "--units", str(units), "--points", str(points), "--seconds", str(seconds)],
                         stdout=subprocess.PIPE, text=True)
    time.sleep(min(1.0, seconds / 4))
    cpu0, _ = proc_usage(p.pid)
    t0 = time.monotonic()
    # Sample CPU just before the loop ends (the process is gone afterwards).
    time.sleep(max(0.0, seconds - min(1.0, seconds / 4) - 0.3))
    cpu1, hwm = proc_usage(p.pid)
    wall = time.monotonic() - t0
    out, _ = p.communicate(timeout=60)
    if p.returncode != 0:
        sys.exit(f"bare loop failed: {out}")
    r = json.loads(out)
    r["cpu_pct"] = 100 * (cpu1 - cpu0) / wall
    r["rss_mib"] = hwm
    return r


def run_gateway(binary, d, ports, n, args, trial):
    name = f"gw{trial}"
    cfg = write_config(d, name, ports, spread(n, len(ports)), os.path.join(d, "profiles"))
    log_path = os.path.join(d, name + ".log")
    log = open(log_path, "w")
    gw = subprocess.Popen([binary, "--log-format", "json", "--log-level", "warn,emgate=info",
                           "run", "--config", cfg, "--stats-interval", "1"], stderr=log)
    time.sleep(args.warmup)
    s0 = last_stats(log_path)
    # A large configuration may take longer than the warm-up to start.
    for _ in range(100):
        if s0 is not None or gw.poll() is not None:
            break
        time.sleep(0.2)
        s0 = last_stats(log_path)
    cpu0, _ = proc_usage(gw.pid)
    t0 = time.monotonic()
    time.sleep(args.seconds)
    s1 = last_stats(log_path)
    cpu1, hwm = proc_usage(gw.pid)
    wall = time.monotonic() - t0
    gw.send_signal(signal.SIGTERM)
    code = gw.wait(timeout=120)
    log.close()
    if s0 is None or s1 is None or gw.returncode is None:
        sys.exit(f"gateway logged no stats (exit {code}); see {log_path}")
    f0, f1 = s0["fields"], s1["fields"]
    span = (parse_ts(s1["timestamp"]) - parse_ts(s0["timestamp"]))
    delta = {k: (f1.get(k) or 0) - (f0.get(k) or 0) for k in COUNTERS}
    ok = (delta["requests"] > 0 and delta["overruns"] == 0 and delta["missed_slots"] == 0
          and delta["timeouts"] == 0 and delta["pipeline_stalls"] == 0
          and delta["exceptions"] == 0)
    return {
        "meters": n, "ok": ok, "exit": code, "span": span, "delta": delta,
        "reads_per_s": delta["requests"] / span if span > 0 else 0.0,
        "points_per_s": delta["points"] / span if span > 0 else 0.0,
        "cpu_pct": 100 * (cpu1 - cpu0) / wall, "rss_mib": hwm,
    }


def parse_ts(ts):
    """Seconds of an RFC 3339 timestamp (as tracing-subscriber writes it)."""
    from datetime import datetime
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return (xs[n // 2] + xs[(n - 1) // 2]) / 2 if xs else 0.0


def show_trial(label, r):
    dl = r["delta"]
    print(f"  emgate {label} {r['meters']:5d} meters: {'ok  ' if r['ok'] else 'FAIL'} "
          f"{r['reads_per_s']:8.0f} reads/s {r['points_per_s']:10.0f} points/s "
          f"cpu {r['cpu_pct']:5.1f}% rss {r['rss_mib']:4.0f} MiB "
          f"(overruns {dl['overruns']}, missed {dl['missed_slots']}, timeouts {dl['timeouts']}, "
          f"stalls {dl['pipeline_stalls']}, exit {r['exit']})", flush=True)


def measure(c, args):
    """One connection count: the bare loop sampled between every gateway
    trial (its rate moves from run to run), emgate back to back
    (overloaded, `--pairs` times), then the bisection for the largest
    sustained load."""
    reads_per_meter = math.ceil(args.points * 2 / 124)
    with tempfile.TemporaryDirectory() as d:
        write_profile(os.path.join(d, "profiles"), args.points)
        ports = free_ports(c)
        units = min(MAX_UNITS, max(1, math.ceil(args.max_meters / c)))
        sim_cfg = write_config(d, "sim", ports, [units] * c, os.path.join(d, "profiles"))
        check(args.binary, sim_cfg)
        sim = subprocess.Popen([args.binary, "--log-level", "warn", "simulate", "--config", sim_cfg],
                               stderr=subprocess.DEVNULL)
        bare_samples = []
        first_bare = None

        def sample_bare():
            nonlocal first_bare
            r = run_bare(args.bare, ports, units, args.points, args.bare_seconds)
            first_bare = first_bare or r
            bare_samples.append(r["reads_per_s"])
            print(f"  bare loop: {r['reads_per_s']:.0f} reads/s, {r['points_per_s']:.0f} points/s, "
                  f"cpu {r['cpu_pct']:.1f}%, rss {r['rss_mib']:.0f} MiB, errors {r['errors']}", flush=True)

        try:
            time.sleep(2 + units * c * args.points / 2e6)
            sample_bare()
            trial = 0
            # Back to back: more meters than any client can poll in a
            # second, so emgate reads without pause; its counted rate is
            # its per-read speed, set beside the bare loop's, alternately.
            b2b = []
            overload = min(units * c, math.ceil(1.5 * bare_samples[0] / reads_per_meter))
            for _ in range(args.pairs):
                trial += 1
                r = run_gateway(args.binary, d, ports, overload, args, trial)
                show_trial("back to back", r)
                if r["delta"]["overruns"] > 0 or r["delta"]["missed_slots"] > 0:
                    b2b.append(r["reads_per_s"])
                sample_bare()
            # The gateway cannot poll more reads a second than the bare loop does.
            hi = min(units * c, math.ceil(1.05 * max(bare_samples) / reads_per_meter))
            lo = 0
            best = None
            # The first probe at the top: if it passes, the bound is the server's unit ids.
            probe = hi
            while lo < hi:
                trial += 1
                r = run_gateway(args.binary, d, ports, probe, args, trial)
                show_trial("sustained", r)
                if r["ok"]:
                    lo = probe
                    best = r
                else:
                    hi = probe - 1
                sample_bare()
                if lo >= hi:
                    break
                # Bisect, but step finely near the top so the answer is close.
                probe = max(lo + 1, (lo + hi + 1) // 2)
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait(timeout=30)
    if best is not None:
        # What the gateway sustained is the load it was given: every read
        # of every meter, every second (checked: no overrun, no missed slot).
        best["load_reads_per_s"] = best["meters"] * reads_per_meter
    bare = dict(first_bare)
    bare["samples"] = bare_samples
    bare["median"] = median(bare_samples)
    return bare, best, b2b, units


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, nargs="+", default=[1, 10, 100])
    ap.add_argument("--points", type=int, default=6448,
                    help="float32 points per meter (6448 = 104 reads of 62 points: 247 units x 104 = 25 688 reads/s, room above 0.8x the bare loop on one connection)")
    ap.add_argument("--max-meters", type=int, default=300,
                    help="meters the server serves in all (at most 247 per connection)")
    ap.add_argument("--seconds", type=float, default=15, help="measured window per gateway trial")
    ap.add_argument("--warmup", type=float, default=4, help="seconds before the window")
    ap.add_argument("--bare-seconds", type=float, default=10)
    ap.add_argument("--pairs", type=int, default=3,
                    help="back-to-back gateway runs, each followed by a bare loop run")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "emgate"))
    ap.add_argument("--bare", default=os.path.join(ROOT, "target", "release", "examples", "bare_modbus"))
    args = ap.parse_args()
    for b, how in [(args.binary, "cargo build --release"),
                   (args.bare, "cargo build --release --example bare_modbus")]:
        if not os.path.exists(b):
            sys.exit(f"{b} not found: run `{how}` first")
    reads_per_meter = math.ceil(args.points * 2 / 124)
    print(f"profile: {args.points} float32 input registers per meter = {reads_per_meter} reads "
          f"of up to 124 registers; poll every 1 s; aggregation defaults; file sink", flush=True)
    rows = []
    for c in args.connections:
        print(f"{c} connection(s):", flush=True)
        rows.append((c, *measure(c, args)))
    print()
    print("| connections | bare loop reads/s: median (min–max, runs) | emgate back to back reads/s: median (min–max) "
          "| back to back / bare | emgate meters sustained | emgate reads/s sustained | emgate points/s "
          "| emgate CPU | emgate peak RSS | sustained / bare |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c, bare, best, b2b, units in rows:
        samples = bare["samples"]
        bare_col = f"{bare['median']:.0f} ({min(samples):.0f}–{max(samples):.0f}, {len(samples)})"
        b2b_col = f"{median(b2b):.0f} ({min(b2b):.0f}–{max(b2b):.0f})" if b2b else "–"
        b2b_ratio = f"{median(b2b) / bare['median']:.2f}" if b2b else "–"
        if best is None:
            print(f"| {c} | {bare_col} | {b2b_col} | {b2b_ratio} | none passed | | | | | |")
            continue
        capped = " (all units served)" if best["meters"] >= units * c else ""
        load = best["load_reads_per_s"]
        print(f"| {c} | {bare_col} | {b2b_col} | {b2b_ratio} | {best['meters']}{capped} | {load:.0f} "
              f"| {best['meters'] * args.points:.0f} | {best['cpu_pct']:.0f} % | {best['rss_mib']:.0f} MiB "
              f"| {load / bare['median']:.2f} |")


if __name__ == "__main__":
    main()
