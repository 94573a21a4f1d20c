#!/usr/bin/env python3
"""Catch-up harness: how fast a spool backlog drains into a local InfluxDB.

1. Starts a private influxd 1.x (temporary directory, free loopback ports).
2. Builds a backlog: `emgate simulate` + `emgate run` poll ENDPOINTS x UNITS
   meters every second for BACKLOG seconds while the InfluxDB URL points at a
   port nobody listens on, so everything stays in the spool.
3. Stops that gateway, then starts a second `emgate run` on the same spool
   with the real InfluxDB URL and no meters: it only drains.
4. Reports the drain time, lines/s and points/s, the gateway's CPU time and
   peak memory, and checks InfluxDB holds exactly the spooled lines.

    cargo build --release
    scripts/catchup.py --endpoints 100 --units 100 --backlog 60

Everything listens on 127.0.0.1 only. Results belong in BENCHMARKS.md.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, free_ports, http, proc_usage, query, start_influxd  # noqa: E402


def write_config(d, url, endpoints, units, with_meters):
    sites = os.path.join(d, "sites")
    os.makedirs(sites, exist_ok=True)
    for f in os.listdir(sites):
        os.remove(os.path.join(sites, f))
    main = ["[gateway]", 'id = "catchup"', f'data_dir = "{d}/gw"', f'sites_dir = "{sites}"',
            f'profiles_dir = "{ROOT}/config/profiles"', "",
            "[influxdb]", 'api = "v1"', f'url = "{url}"', 'database = "emgate"', "batch_size = 5000",
            "retry_initial_ms = 200", "retry_max_ms = 1000", "",
            "[spool]", "max_bytes = 68719476736", ""]
    ports = free_ports(endpoints)
    for e, port in enumerate(ports):
        main += ["[[endpoints]]", f'id = "ep{e}"', 'host = "127.0.0.1"', f"port = {port}", "timeout_ms = 2000", ""]
        if not with_meters:
            continue
        site = ["[site]", f'id = "S{e:05d}"', f'name = "site {e}"', ""]
        for u in range(units):
            site += ["[[meters]]", f'id = "m{e:05d}-{u:03d}"', 'energy = "electricity"', "level = 2",
                     'profile = "eastron_sdm630"', f'endpoint = "ep{e}"', f"unit_id = {u + 1}",
                     "poll_interval_secs = 1", ""]
        with open(os.path.join(sites, f"s{e:05d}.toml"), "w") as f:
            f.write("\n".join(site))
    path = os.path.join(d, "emgate.toml")
    with open(path, "w") as f:
        f.write("\n".join(main))
    return path


def final_stats(log):
    fields = {}
    with open(log) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("fields", {}).get("message") in ("final stats", "stats"):
                fields = rec["fields"]
    return fields


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoints", type=int, default=100)
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--backlog", type=int, default=60, help="seconds of polling while InfluxDB is away")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "emgate"))
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: run `cargo build --release` first")
    with tempfile.TemporaryDirectory() as d:
        influx, url = start_influxd(os.path.join(d, "influx"))
        try:
            http(url + "/query", urllib.parse.urlencode({"q": "CREATE DATABASE emgate"}).encode())
            dead = f"http://127.0.0.1:{free_port()}"
            cfg = write_config(d, dead, args.endpoints, args.units, True)
            sim = subprocess.Popen([args.binary, "--log-level", "error", "simulate", "--config", cfg])
            time.sleep(2)
            log1 = os.path.join(d, "run1.log")
            with open(log1, "w") as l1:
                gw = subprocess.Popen([args.binary, "--log-format", "json", "--log-level", "warn,emgate=info",
                                       "run", "--config", cfg, "--stats-interval", "0"], stderr=l1)
                time.sleep(args.backlog)
                gw.send_signal(signal.SIGTERM)
                gw.wait(timeout=120)
            sim.send_signal(signal.SIGTERM)
            sim.wait(timeout=30)
            built = final_stats(log1)
            spooled = built.get("lines_spooled", 0)
            points = built.get("points", 0)
            spool_dir = os.path.join(d, "gw", "spool")
            size = sum(os.path.getsize(os.path.join(spool_dir, f)) for f in os.listdir(spool_dir))
            print(f"backlog: {spooled} lines, {points} points ({points / max(args.backlog, 1):.0f} points/s "
                  f"for {args.backlog} s), spool {size / 2**20:.0f} MiB on disk")

            cfg = write_config(d, url, args.endpoints, args.units, False)
            log2 = os.path.join(d, "run2.log")
            with open(log2, "w") as l2:
                influx_cpu0, _ = proc_usage(influx.pid)
                t0 = time.monotonic()
                gw = subprocess.Popen([args.binary, "--log-format", "json", "--log-level", "warn,emgate=info",
                                       "run", "--config", cfg, "--stats-interval", "0"], stderr=l2)
                cpu, hwm = 0.0, 0.0
                while True:
                    time.sleep(0.25)
                    cpu, hwm = proc_usage(gw.pid)
                    count = query(url, "emgate", "SELECT count(q) FROM reading")
                    series = count["results"][0].get("series")
                    stored = series[0]["values"][0][1] if series else 0
                    if stored >= spooled:
                        break
                    if time.monotonic() - t0 > 3600:
                        sys.exit("drain did not finish within an hour")
                drained = time.monotonic() - t0
                influx_cpu = proc_usage(influx.pid)[0] - influx_cpu0
                gw.send_signal(signal.SIGTERM)
                gw.wait(timeout=60)
            count = query(url, "emgate", "SELECT count(q) FROM reading")
            stored = count["results"][0]["series"][0]["values"][0][1]
            print(f"drain: {drained:.1f} s (until InfluxDB counts every line) = {spooled / drained:.0f} lines/s, "
                  f"{points / drained:.0f} points/s")
            print(f"gateway while draining: cpu {cpu:.1f} s ({100 * cpu / drained:.0f}% of one core), peak rss {hwm:.0f} MiB")
            print(f"influxd while draining: cpu {influx_cpu:.1f} s ({100 * influx_cpu / drained:.0f}% of one core)")
            print(f"influxdb holds {stored} readings; spooled {spooled}: {'OK' if stored == spooled else 'MISMATCH'}")
            print(f"one-hour backlog at this size ({points / max(args.backlog, 1):.0f} points/s) would drain in about "
                  f"{drained * 3600 / args.backlog / 60:.1f} min")
        finally:
            influx.send_signal(signal.SIGTERM)
            influx.wait(timeout=30)


if __name__ == "__main__":
    main()
