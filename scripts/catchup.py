#!/usr/bin/env python3
"""Catch-up harness: how fast a spool backlog drains into a local database.

1. Builds a backlog: `emgate simulate` + `emgate run` poll ENDPOINTS x UNITS
   meters every second for BACKLOG seconds while the InfluxDB URL points at a
   port nobody listens on, so everything stays in the spool.
2. For every TARGET (`influxd`: a private influxd 1.x; `victoria-metrics`: a
   private single-node VictoriaMetrics, which takes line protocol at /write;
   `null`: scripts/null_influx.py, which reads and counts but stores nothing,
   to see how fast emgate drains when no database bounds it) and every IN_FLIGHT value (`[influxdb] max_in_flight`), starts a fresh
   database, copies the backlog's spool, and starts an `emgate run` with no
   meters on that copy: it only drains.
3. Reports per drain the time until the database counts every spooled line,
   lines/s and points/s, the ratio of the drain rate to the rate the backlog
   was written at, the gateway's and the database's CPU, and checks that the
   database holds exactly the spooled lines (InfluxQL `count(q)`; in
   VictoriaMetrics `sum(count_over_time(reading_q[2d]))`, one sample per line).

    cargo build --release
    scripts/catchup.py --endpoints 60 --units 100 --backlog 60 \
        --target influxd,victoria-metrics --in-flight 1,4,8

Everything listens on 127.0.0.1 only. Results belong in BENCHMARKS.md.
"""

import argparse
import json
import os
import shutil
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


def write_config(d, url, endpoints, units, with_meters, in_flight=1):
    sites = os.path.join(d, "sites")
    os.makedirs(sites, exist_ok=True)
    for f in os.listdir(sites):
        os.remove(os.path.join(sites, f))
    main = ["[gateway]", 'id = "catchup"', f'data_dir = "{d}/gw"', f'sites_dir = "{sites}"',
            f'profiles_dir = "{ROOT}/config/profiles"', "",
            "[influxdb]", 'api = "v1"', f'url = "{url}"', 'database = "emgate"', "batch_size = 5000",
            "retry_initial_ms = 200", "retry_max_ms = 1000", f"max_in_flight = {in_flight}", "",
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


def start_victoria(d):
    port = free_port()
    os.makedirs(d, exist_ok=True)
    binary = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
    proc = subprocess.Popen([binary, f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={d}/data",
                             "-retentionPeriod=100y", "-search.latencyOffset=0s", "-search.disableCache",
                             "-loggerLevel=ERROR"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if http(url + "/health")[0] == 200:
                return proc, url
        except OSError:
            time.sleep(0.1)
    sys.exit("victoria-metrics did not start")


class Target:
    """A private database of one kind: start it, count `reading` lines in it."""

    def __init__(self, kind, d):
        self.kind = kind
        if kind == "influxd":
            self.proc, self.url = start_influxd(os.path.join(d, "influx"))
            http(self.url + "/query", urllib.parse.urlencode({"q": "CREATE DATABASE emgate"}).encode())
        elif kind == "victoria-metrics":
            self.proc, self.url = start_victoria(os.path.join(d, "vm"))
        elif kind == "null":
            # A write endpoint that stores nothing (scripts/null_influx.py):
            # how fast emgate drains when the database is not the bound.
            port = free_port()
            self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "null_influx.py"),
                                          str(port)])
            self.url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    if http(self.url + "/ping")[0] == 204:
                        break
                except OSError:
                    time.sleep(0.1)
        else:
            sys.exit(f"unknown target {kind!r}: give influxd, victoria-metrics or null")

    def count(self):
        """Lines stored: one `q` value per `reading` line."""
        if self.kind == "null":
            return int(http(self.url + "/count")[1])
        if self.kind == "influxd":
            r = query(self.url, "emgate", "SELECT count(q) FROM reading")
            series = r["results"][0].get("series")
            return series[0]["values"][0][1] if series else 0
        http(self.url + "/internal/force_flush")
        q = urllib.parse.urlencode({"query": "sum(count_over_time(reading_q[2d]))"})
        r = json.loads(http(f"{self.url}/api/v1/query?{q}")[1])
        result = r["data"]["result"]
        return int(float(result[0]["value"][1])) if result else 0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def drain(args, d, kind, in_flight, spool_src, spooled, points, write_rate):
    run_dir = os.path.join(d, f"drain-{kind}-{in_flight}")
    os.makedirs(os.path.join(run_dir, "gw"))
    shutil.copytree(spool_src, os.path.join(run_dir, "gw", "spool"))
    target = Target(kind, run_dir)
    try:
        cfg = write_config(run_dir, target.url, args.endpoints, args.units, False, in_flight)
        log = os.path.join(run_dir, "run.log")
        with open(log, "w") as out:
            db_cpu0, _ = proc_usage(target.proc.pid)
            t0 = time.monotonic()
            gw = subprocess.Popen([args.binary, "--log-format", "json", "--log-level", "warn,emgate=info",
                                   "run", "--config", cfg, "--stats-interval", "0"], stderr=out)
            cpu, hwm = 0.0, 0.0
            while True:
                time.sleep(0.25)
                cpu, hwm = proc_usage(gw.pid)
                if target.count() >= spooled:
                    break
                if time.monotonic() - t0 > 3600:
                    sys.exit("drain did not finish within an hour")
            drained = time.monotonic() - t0
            db_cpu = proc_usage(target.proc.pid)[0] - db_cpu0
            gw.send_signal(signal.SIGTERM)
            gw.wait(timeout=60)
        stored = target.count()
    finally:
        target.stop()
    rate = points / drained
    print(f"{kind}, max_in_flight {in_flight}: drain {drained:.1f} s = {spooled / drained:.0f} lines/s, "
          f"{rate:.0f} points/s = {rate / write_rate:.1f}x the write rate; "
          f"gateway {100 * cpu / drained:.0f}% of one core, peak rss {hwm:.0f} MiB; "
          f"{kind} {100 * db_cpu / drained:.0f}% of one core; "
          f"stored {stored} of {spooled} lines: {'OK' if stored == spooled else 'MISMATCH'}", flush=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"target": kind, "in_flight": in_flight, "drain_s": drained, "points_per_s": rate,
            "ratio": rate / write_rate, "gateway_cpu": cpu / drained, "db_cpu": db_cpu / drained,
            "exact": stored == spooled}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoints", type=int, default=100)
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--backlog", type=int, default=60, help="seconds of polling while the database is away")
    ap.add_argument("--target", default="influxd",
                    help="comma-separated: influxd, victoria-metrics, null (a write endpoint that stores nothing: scripts/null_influx.py); each drain gets a fresh one")
    ap.add_argument("--in-flight", default="1,4",
                    help="comma-separated [influxdb] max_in_flight values to drain with")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "emgate"))
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: run `cargo build --release` first")
    targets = [t.strip() for t in args.target.split(",") if t.strip()]
    in_flights = [int(n) for n in args.in_flight.split(",")]
    with tempfile.TemporaryDirectory() as d:
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
        write_rate = points / max(args.backlog, 1)
        print(f"backlog: {spooled} lines, {points} points ({write_rate:.0f} points/s "
              f"for {args.backlog} s), spool {size / 2**20:.0f} MiB on disk", flush=True)
        results = [drain(args, d, kind, n, spool_dir, spooled, points, write_rate)
                   for kind in targets for n in in_flights]
        print(json.dumps({"backlog": {"lines": spooled, "points": points, "write_points_per_s": write_rate},
                          "drains": results}))


if __name__ == "__main__":
    main()
