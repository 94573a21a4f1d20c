#!/usr/bin/env python3
"""MQTT load harness: how many messages per second flow from a local Mosquitto
through the gateway into its spool, and who runs out of CPU first.

Starts a private `mosquitto` on a free loopback port, an `emgate run` with
METERS MQTT meters (water meters, JSON payloads, file sink), then METERS
`mosquitto_pub -l` processes that each publish MESSAGES readings of one meter
as fast as the broker takes them (QoS 1, distinct one-second time stamps).
It waits until the gateway has counted every message, then reports messages/s
and the CPU time of the gateway, the broker and the publishers.

    cargo build --release
    scripts/mqtt_load.py --meters 8 --messages 25000

Everything listens on 127.0.0.1 only. Results belong in BENCHMARKS.md with the
command line.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, proc_usage  # noqa: E402


def write_config(d, port, meters, aggregate):
    os.makedirs(os.path.join(d, "sites"))
    main = [
        "[gateway]", 'id = "mqttload"', f'data_dir = "{d}/data"', f'sites_dir = "{d}/sites"',
        f'profiles_dir = "{ROOT}/config/profiles"', "",
        "[file_sink]", f'path = "{d}/data/lines.lp"', "batch_size = 5000", "",
        "[validation]", "max_lateness_secs = 864000", "",
        "[aggregation]", "windows = " + ('["15m", "1h", "1d"]' if aggregate else "[]"), "",
        "[[mqtt]]", 'id = "b"', 'host = "127.0.0.1"', f"port = {port}", "",
        "[[mqtt.subscriptions]]", 'topic = "load/{meter}"', "qos = 1", 'format = "json"', "",
    ]
    site = ["[site]", 'id = "L1"', 'name = "load"', ""]
    for m in range(meters):
        site += ["[[meters]]", f'id = "w{m:03d}"', 'energy = "water"', "level = 2",
                 'profile = "water_meter"', 'broker = "b"', "poll_interval_secs = 1", ""]
    with open(os.path.join(d, "sites", "l1.toml"), "w") as f:
        f.write("\n".join(site))
    path = os.path.join(d, "emgate.toml")
    with open(path, "w") as f:
        f.write("\n".join(main))
    return path


def last_stats(log_path):
    stats = {}
    with open(log_path) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            fields = rec.get("fields", {})
            if fields.get("message") in ("stats", "final stats"):
                stats = fields
    return stats


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meters", type=int, default=8, help="meters = parallel publishers")
    ap.add_argument("--messages", type=int, default=25000, help="messages per meter")
    ap.add_argument("--aggregate", action="store_true", help="keep the default 15m/1h/1d windows on")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "emgate"))
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: run `cargo build --release` first")
    for tool in ("mosquitto", "mosquitto_pub"):
        if not any(os.path.exists(os.path.join(p, tool)) for p in ("/usr/sbin", "/usr/bin")):
            sys.exit(f"{tool} not found: apt-get install mosquitto mosquitto-clients")

    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        conf = os.path.join(d, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 0\nmax_inflight_messages 0\n")
        broker = subprocess.Popen(["mosquitto", "-c", conf], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        cfg = write_config(d, port, args.meters, args.aggregate)
        log_path = os.path.join(d, "gateway.log")
        gw_log = open(log_path, "w")
        gw = subprocess.Popen([args.binary, "--log-format", "json", "--log-level", "warn,emgate=info",
                               "run", "--config", cfg, "--stats-interval", "1"], stderr=gw_log)
        deadline = time.monotonic() + 30
        while "mqtt subscribed" not in open(log_path).read():
            if time.monotonic() > deadline or gw.poll() is not None:
                sys.exit("gateway did not subscribe:\n" + open(log_path).read())
            time.sleep(0.1)

        # Payloads: one reading per second of the last MESSAGES seconds.
        start = int(time.time()) - args.messages - 10
        files = []
        for m in range(args.meters):
            path = os.path.join(d, f"w{m:03d}.txt")
            with open(path, "w") as f:
                for i in range(args.messages):
                    f.write(f'{{"ts":{start + i},"volume_m3":{1000 + i * 0.01:.2f},"flow_m3h":{0.6 + (i % 7) * 0.1:.1f}}}\n')
            files.append(path)

        gw_cpu0, _ = proc_usage(gw.pid)
        br_cpu0, _ = proc_usage(broker.pid)
        t0 = time.monotonic()
        pubs = [subprocess.Popen(["mosquitto_pub", "-p", str(port), "-q", "1", "-l",
                                  "-t", f"load/w{m:03d}"], stdin=open(files[m]))
                for m in range(args.meters)]
        total = args.meters * args.messages
        for p in pubs:
            p.wait()
        t_published = time.monotonic() - t0
        # The publishers are the only children reaped so far.
        pub_cpu = sum(os.times()[2:4])
        deadline = time.monotonic() + 120
        while True:
            seen = int(last_stats(log_path).get("mqtt_messages", 0))
            if seen >= total or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        gw_cpu1, hwm = proc_usage(gw.pid)
        br_cpu1, _ = proc_usage(broker.pid)
        gw.send_signal(signal.SIGTERM)
        gw.wait(timeout=60)
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=30)
        final = last_stats(log_path)
        print(f"{args.meters} publishers x {args.messages} JSON messages (QoS 1) = {total}; "
              f"aggregation {'on' if args.aggregate else 'off'}")
        print(f"published in {t_published:.1f} s; gateway counted {final.get('mqtt_messages')} messages, "
              f"{final.get('mqtt_readings')} readings, {final.get('mqtt_rejected')} rejected, "
              f"{final.get('mqtt_acked')} acked, {final.get('lines_written')} lines written")
        print(f"end to end {elapsed:.1f} s = {total / elapsed:.0f} messages/s")
        print(f"cpu: gateway {gw_cpu1 - gw_cpu0:.1f} s ({100 * (gw_cpu1 - gw_cpu0) / elapsed:.0f}% of one core, "
              f"peak rss {hwm:.0f} MiB), mosquitto {br_cpu1 - br_cpu0:.1f} s "
              f"({100 * (br_cpu1 - br_cpu0) / elapsed:.0f}%), publishers {pub_cpu:.1f} s")
        if int(final.get("mqtt_messages", 0)) != total:
            sys.exit("not every message arrived")


if __name__ == "__main__":
    main()
