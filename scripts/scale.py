#!/usr/bin/env python3
"""Scale harness: many simulated meters, one gateway process, measured.

Generates a configuration with ENDPOINTS serial servers of UNITS meters each,
starts `emgate simulate` and `emgate run` as two separate processes (so the
gateway's CPU and memory are its own), lets them run, and reports the
gateway's CPU time, peak memory, readings, missed slots and written lines.

    cargo build --release
    scripts/scale.py --endpoints 100 --units 100 --interval 10 --seconds 60

Boilers (issue 14): `--boilers N` adds N simulated boilers, each with its own
fuel meter (gas flow computer), steam meter (steam flow computer) and flue-gas
analyzer, on endpoints of 50 boilers (150 meters) each, every boiler a site of
its own. `--boiler-meters-only` generates the same meters without the
`[[boilers]]` tables: the "before" of the boiler stage's cost. Use short
windows so boiler windows close during the run:

    scripts/scale.py --endpoints 100 --units 100 --interval 1 --seconds 120 \
        --windows 1m --boilers 100 --boiler-meters-only
    scripts/scale.py --endpoints 100 --units 100 --interval 1 --seconds 120 \
        --windows 1m --boilers 100

Memory per meter (issue 16, performance item 5): `--memory N1 N2 ...` runs
the gateway once with `--base-meters` meters (default 0: no endpoints, no
meters, the same pipeline and sink) and once per N, each on a fresh
simulator and data directory, with the default aggregation (15m, 1h, 1d,
1mo; lateness 120 s, gauge statistics on) unless `--windows` says otherwise:

    scripts/scale.py --memory 10000 100000 --units 100 --interval 30 --rounds 4

For every run it waits until the gateway has counted `--rounds` readings per
meter (so every meter has been polled several times and all its window and
validation state exists), then samples VmRSS once a second for one more poll
interval (steady RSS = the median of those samples), and reads VmHWM (peak
RSS) and the CPU time over that steady interval. Memory per meter is
(RSS(N) - RSS(base)) / (N - base), and the marginal figure between the two
largest counts is printed too. Meters are `--units` per endpoint (at most
247), so 100 000 meters are 1 000 endpoints; the script raises its open-file
limit to the hard limit, which both child processes inherit.

Everything listens on 127.0.0.1 only. Output goes to a file sink in a
temporary directory. Results belong in BENCHMARKS.md with the command line.
"""

import argparse
import json
import math
import os
import resource
import statistics
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_ports, http, proc_usage, query, start_influxd  # noqa: E402


BOILERS_PER_ENDPOINT = 50


def boiler_site(k, endpoint, interval, with_boiler):
    """Site file of simulated boiler k: its three meters on `endpoint` (unit
    ids 3k+1..3k+3 of that endpoint) and, `with_boiler`, its [[boilers]]."""
    u = 3 * (k % BOILERS_PER_ENDPOINT)
    lines = ["[site]", f'id = "B{k:04d}"', f'name = "boiler house {k}"', ""]
    for i, (suffix, energy, level, profile) in enumerate([
        ("gas", "natural_gas", 1, "gas_flow_computer"),
        ("steam", "steam", 3, "steam_flow_computer"),
        ("flue", "natural_gas", 3, "flue_gas_analyzer"),
    ]):
        lines += ["[[meters]]", f'id = "b{k:04d}-{suffix}"', f'energy = "{energy}"', f"level = {level}",
                  f'profile = "{profile}"', f'endpoint = "{endpoint}"', f"unit_id = {u + i + 1}",
                  f"poll_interval_secs = {interval}", ""]
    if with_boiler:
        flue = f"b{k:04d}-flue"
        lines += ["[[boilers]]", f'id = "b{k:04d}"', f'name = "gas steam boiler {k}"', 'kind = "steam"',
                  "rated_capacity = 10.0", 'fuel = "natural_gas"', f'fuel_meter = "b{k:04d}-gas"',
                  f'output_meter = "b{k:04d}-steam"', "feed_water_c = 20.0",
                  f'exhaust_c = {{ meter = "{flue}", point = "exhaust_c" }}',
                  f'o2_pct = {{ meter = "{flue}", point = "o2_pct" }}',
                  f'co_ppm = {{ meter = "{flue}", point = "co_ppm" }}',
                  f'cold_air_c = {{ meter = "{flue}", point = "ambient_c" }}', "",
                  "[[boilers.fuel_records]]", 'from = "2025-01-01"', "lhv_kj_per_m3 = 35818", ""]
    return "\n".join(lines)


def write_config(dirname, endpoints, units, interval, profile, influx_url=None,
                 windows=None, boilers=0, with_boilers=True, meters=None):
    sites = os.path.join(dirname, "sites")
    os.makedirs(sites)
    boiler_endpoints = (boilers + BOILERS_PER_ENDPOINT - 1) // BOILERS_PER_ENDPOINT
    ports = free_ports(endpoints + boiler_endpoints)
    main = [
        "[gateway]",
        'id = "scale"',
        f'data_dir = "{dirname}/data"',
        f'sites_dir = "{sites}"',
        f'profiles_dir = "{ROOT}/config/profiles"',
        "",
    ]
    if windows:
        main += ["[aggregation]", "windows = [" + ", ".join(f'"{w}"' for w in windows) + "]", ""]
    if influx_url:
        main += ["[influxdb]", 'api = "v1"', f'url = "{influx_url}"', 'database = "emgate"',
                 "batch_size = 5000", ""]
    else:
        main += ["[file_sink]", f'path = "{dirname}/data/lines.lp"', "batch_size = 5000",
                 "flush_interval_ms = 1000", ""]
    for b in range(boiler_endpoints):
        main += ["[[endpoints]]", f'id = "boilers{b}"', 'host = "127.0.0.1"',
                 f"port = {ports[endpoints + b]}", "timeout_ms = 2000", ""]
    for k in range(boilers):
        with open(os.path.join(sites, f"b{k:04d}.toml"), "w") as f:
            f.write(boiler_site(k, f"boilers{k // BOILERS_PER_ENDPOINT}", interval, with_boilers))
    for e, port in enumerate(ports[:endpoints]):
        main += ["[[endpoints]]", f'id = "ep{e}"', 'host = "127.0.0.1"', f"port = {port}",
                 "timeout_ms = 2000", ""]
        site = [ "[site]", f'id = "S{e:05d}"', f'name = "scale site {e}"', ""]
        n_units = units if meters is None else min(units, meters - e * units)
        for u in range(n_units):
            site += ["[[meters]]", f'id = "m{e:05d}-{u:03d}"', 'energy = "electricity"', "level = 2",
                     f'profile = "{profile}"', f'endpoint = "ep{e}"', f"unit_id = {u + 1}",
                     f"poll_interval_secs = {interval}", ""]
        with open(os.path.join(sites, f"s{e:05d}.toml"), "w") as f:
            f.write("\n".join(site))
    path = os.path.join(dirname, "emgate.toml")
    with open(path, "w") as f:
        f.write("\n".join(main))
    return path


def proc_memory(pid):
    """VmRSS and VmHWM of `pid`, MiB."""
    got = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                got[key] = int(line.split()[1]) / 1024
    return got.get("VmRSS", 0.0), got.get("VmHWM", 0.0)


def last_stats(log):
    """The newest `stats` record's fields in the gateway's JSON log."""
    log.seek(0)
    fields = {}
    for line in log:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("fields", {}).get("message") in ("stats", "final stats"):
            fields = rec["fields"]
    return fields


def memory_run(args, meters):
    """One gateway with `meters` meters, measured as described in the module
    doc: a dict of the figures."""
    endpoints = math.ceil(meters / args.units)
    with tempfile.TemporaryDirectory() as d:
        influx, url = (None, None)
        if args.influx:
            influx, url = start_influxd(os.path.join(d, "influx"))
            http(url + "/query", urllib.parse.urlencode({"q": "CREATE DATABASE emgate"}).encode())
        cfg = write_config(d, endpoints, args.units, args.interval, args.profile, url,
                           args.windows, meters=meters)
        check = subprocess.run([args.binary, "check-config", "--config", cfg], capture_output=True, text=True)
        if check.returncode != 0:
            sys.exit(f"generated config invalid:\n{check.stderr}")
        sim = None
        if meters:
            sim = subprocess.Popen([args.binary, "--log-level", "warn", "simulate", "--config", cfg],
                                   stderr=subprocess.DEVNULL)
            time.sleep(2 + endpoints / 500)
        gw_log = open(os.path.join(d, "gateway.log"), "w+")
        t_start = time.monotonic()
        gw = subprocess.Popen([args.binary, "--log-format", "json", "--log-level", "warn,emgate=info",
                               "run", "--config", cfg, "--stats-interval", "2"], stderr=gw_log)
        # Wait until every meter has been read `rounds` times (by count).
        want = args.rounds * meters
        deadline = t_start + args.interval * (args.rounds + 3) + 60
        stats = {}
        while meters and time.monotonic() < deadline:
            time.sleep(2)
            if gw.poll() is not None:
                sys.exit(f"gateway exited with {gw.returncode}; log in {gw_log.name}")
            stats = last_stats(gw_log)
            if stats.get("readings", 0) >= want:
                break
        if not meters:
            time.sleep(args.interval)
        warm = time.monotonic() - t_start
        cpu0, _ = proc_usage(gw.pid)
        t0 = time.monotonic()
        samples = []
        while time.monotonic() - t0 < args.interval:
            samples.append(proc_memory(gw.pid)[0])
            time.sleep(1)
        cpu1, _ = proc_usage(gw.pid)
        wall = time.monotonic() - t0
        rss_now, hwm = proc_memory(gw.pid)
        samples.append(rss_now)
        gw.send_signal(signal.SIGTERM)
        code = gw.wait(timeout=120)
        if sim:
            sim.send_signal(signal.SIGTERM)
            sim.wait(timeout=60)
        final = last_stats(gw_log)
        if influx:
            influx.send_signal(signal.SIGTERM)
            influx.wait(timeout=30)
        return {
            "meters": meters, "endpoints": endpoints, "warm_s": warm,
            "rss": statistics.median(samples), "rss_min": min(samples), "rss_max": max(samples),
            "hwm": hwm, "cpu_pct": 100 * (cpu1 - cpu0) / wall, "exit": code,
            "readings": final.get("readings", 0), "reached": stats.get("readings", 0) >= want,
            "timeouts": final.get("timeouts"), "overruns": final.get("overruns"),
            "missed_slots": final.get("missed_slots"), "lines_written": final.get("lines_written"),
        }


def memory_main(args):
    """`--memory`: the baseline and every count, then the table."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = 2 * math.ceil(max(args.memory) / args.units) + 256
    if hard < need:
        sys.exit(f"open-file limit {hard} is below the {need} this run needs: raise `ulimit -Hn`")
    counts = [args.base_meters] + sorted(args.memory)
    runs = []
    for n in counts:
        r = memory_run(args, n)
        runs.append(r)
        print(f"  {n} meters: steady rss {r['rss']:.1f} MiB (min {r['rss_min']:.1f}, max {r['rss_max']:.1f}), "
              f"peak {r['hwm']:.1f} MiB, cpu {r['cpu_pct']:.1f}%, ready after {r['warm_s']:.0f} s, "
              f"readings {r['readings']}, timeouts {r['timeouts']}, overruns {r['overruns']}, "
              f"missed {r['missed_slots']}, exit {r['exit']}"
              + ("" if r["reached"] or not n else f" (NOT all meters read {args.rounds} times)"), flush=True)
    base = runs[0]
    sink = "a private influxd" if args.influx else "the file sink"
    print(f"\nprofile {args.profile}, {args.units} meters per endpoint, poll every {args.interval} s, "
          f"windows {args.windows or 'default (15m, 1h, 1d, 1mo)'}, output to {sink}, "
          f"steady RSS after {args.rounds} readings per meter\n")
    print("| meters | endpoints | poll interval | baseline RSS | steady RSS | peak RSS | per meter (steady) "
          "| per meter (peak) | gateway CPU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs[1:]:
        n = r["meters"] - base["meters"]
        per = (r["rss"] - base["rss"]) * 1024 * 1024 / n
        per_peak = (r["hwm"] - base["hwm"]) * 1024 * 1024 / n
        print(f"| {r['meters']:,} | {r['endpoints']:,} | {args.interval} s | {base['rss']:.1f} MiB "
              f"| {r['rss']:.1f} MiB | {r['hwm']:.1f} MiB | {per / 1024:.2f} KiB | {per_peak / 1024:.2f} KiB "
              f"| {r['cpu_pct']:.1f} % of one core |")
    if len(runs) >= 3:
        a, b = runs[-2], runs[-1]
        per = (b["rss"] - a["rss"]) * 1024 * 1024 / (b["meters"] - a["meters"])
        print(f"\nmarginal, {a['meters']:,} to {b['meters']:,} meters: {per / 1024:.2f} KiB per meter (steady RSS)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoints", type=int, default=100)
    ap.add_argument("--units", type=int, default=100, help="meters per endpoint (max 247)")
    ap.add_argument("--interval", type=int, default=10, help="poll interval, seconds")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--profile", default="eastron_sdm630")
    ap.add_argument("--influx", action="store_true", help="write to a private influxd instead of a file")
    ap.add_argument("--binary", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "emgate"))
    ap.add_argument("--windows", nargs="+", help="aggregation windows, e.g. 1m (default: the gateway's)")
    ap.add_argument("--boilers", type=int, default=0,
                    help="simulated boilers (3 meters each) besides the meters above")
    ap.add_argument("--boiler-meters-only", action="store_true",
                    help="the boilers' meters without [[boilers]] (the stage's 'before')")
    ap.add_argument("--memory", type=int, nargs="+", metavar="N",
                    help="memory per meter: measure a gateway with N meters for each N (see above)")
    ap.add_argument("--base-meters", type=int, default=0,
                    help="meters of the baseline gateway in --memory (default 0)")
    ap.add_argument("--rounds", type=int, default=4,
                    help="readings per meter before steady RSS is sampled in --memory (default 4)")
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: run `cargo build --release` first")
    if args.memory:
        if not 1 <= args.units <= 247:
            sys.exit("--units must be 1..247 (Modbus unit ids)")
        memory_main(args)
        return

    with tempfile.TemporaryDirectory() as d:
        influx, url = (None, None)
        if args.influx:
            influx, url = start_influxd(os.path.join(d, "influx"))
            http(url + "/query", urllib.parse.urlencode({"q": "CREATE DATABASE emgate"}).encode())
        cfg = write_config(d, args.endpoints, args.units, args.interval, args.profile, url,
                           args.windows, args.boilers, not args.boiler_meters_only)
        check = subprocess.run([args.binary, "check-config", "--config", cfg], capture_output=True, text=True)
        if check.returncode != 0:
            sys.exit(f"generated config invalid:\n{check.stderr}")
        sim = subprocess.Popen([args.binary, "--log-level", "warn", "simulate", "--config", cfg],
                               stderr=subprocess.DEVNULL)
        time.sleep(2)
        gw_log = open(os.path.join(d, "gateway.log"), "w+")
        gw = subprocess.Popen([args.binary, "--log-format", "json", "--log-level", "warn,emgate=info",
                               "run", "--config", cfg, "--stats-interval", "0"], stderr=gw_log)
        # Ignore the first interval (connection set-up), then measure a steady window.
        time.sleep(args.interval)
        cpu0, _ = proc_usage(gw.pid)
        t0 = time.monotonic()
        time.sleep(args.seconds)
        cpu1, hwm = proc_usage(gw.pid)
        wall = time.monotonic() - t0
        gw.send_signal(signal.SIGTERM)
        code = gw.wait(timeout=60)
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
        gw_log.seek(0)
        final = {}
        for line in gw_log:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("fields", {}).get("message") == "final stats":
                final = rec["fields"]
        meters = args.endpoints * args.units + 3 * args.boilers
        boilers = ""
        if args.boilers:
            boilers = (f", {args.boilers} boiler houses (3 meters each"
                       f"{', no [[boilers]]' if args.boiler_meters_only else ', with [[boilers]]'})")
        print(f"meters {meters} on {args.endpoints} endpoints{boilers}, poll every {args.interval} s, "
              f"profile {args.profile}, windows {args.windows or 'default'}, measured window {wall:.0f} s")
        print(f"gateway cpu {cpu1 - cpu0:.2f} s in {wall:.0f} s = {100 * (cpu1 - cpu0) / wall:.1f}% of one core; "
              f"peak rss {hwm:.0f} MiB; exit code {code}")
        for k in ["readings", "points", "points_flagged", "requests", "timeouts", "overruns",
                  "missed_slots", "lines_written", "lines_dropped"]:
            print(f"  {k:15} {final.get(k)}")
        if args.boilers and not influx:
            lp = os.path.join(d, "data", "lines.lp")
            counts = {}
            with open(lp, "rb") as f:
                for line in f:
                    m = line.split(b",", 1)[0].decode(errors="replace")
                    counts[m] = counts.get(m, 0) + 1
            print(f"  lines by measurement: {dict(sorted(counts.items()))}")
        expected = meters * (args.seconds + 2 * args.interval) / args.interval
        if influx:
            count = query(url, "emgate", "SELECT count(q) FROM reading")
            stored = count["results"][0]["series"][0]["values"][0][1]
            print(f"  influxdb holds {stored} readings (gateway counted {final.get('readings')})")
            influx.send_signal(signal.SIGTERM)
            influx.wait(timeout=30)
        print(f"  readings per second over the whole run: about {final.get('readings', 0) / (args.seconds + args.interval):.0f} "
              f"(upper bound {expected / (args.seconds + args.interval):.0f})")


if __name__ == "__main__":
    main()
