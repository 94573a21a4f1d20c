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

Everything listens on 127.0.0.1 only. Output goes to a file sink in a
temporary directory. Results belong in BENCHMARKS.md with the command line.
"""

import argparse
import json
import os
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
                 windows=None, boilers=0, with_boilers=True):
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
        for u in range(units):
            site += ["[[meters]]", f'id = "m{e:05d}-{u:03d}"', 'energy = "electricity"', "level = 2",
                     f'profile = "{profile}"', f'endpoint = "ep{e}"', f"unit_id = {u + 1}",
                     f"poll_interval_secs = {interval}", ""]
        with open(os.path.join(sites, f"s{e:05d}.toml"), "w") as f:
            f.write("\n".join(site))
    path = os.path.join(dirname, "emgate.toml")
    with open(path, "w") as f:
        f.write("\n".join(main))
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoints", type=int, default=100)
    ap.add_argument("--units", type=int, default=100, help="meters per endpoint (max 247)")
    ap.add_argument("--interval", type=int, default=10, help="poll interval, seconds")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--profile", default="eastron_sdm630")
    ap.add_argument("--influx", action="store_true", help="write to a private influxd instead of a file")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "emgate"))
    ap.add_argument("--windows", nargs="+", help="aggregation windows, e.g. 1m (default: the gateway's)")
    ap.add_argument("--boilers", type=int, default=0,
                    help="simulated boilers (3 meters each) besides the meters above")
    ap.add_argument("--boiler-meters-only", action="store_true",
                    help="the boilers' meters without [[boilers]] (the stage's 'before')")
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: run `cargo build --release` first")

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
