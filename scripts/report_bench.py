#!/usr/bin/env python3
"""Benchmark of `emgate report targets`: SITES sites, a year of daily windows.

Starts a private influxd (127.0.0.1, temporary directory), writes for every
site and every local day of YEAR a `site_consumption` 1d window for
electricity, natural gas and the total, plus one `output_t` year entry per
site; writes a configuration with one site file per site, each with a cap
and an intensity target for YEAR; then runs

    /usr/bin/time -v emgate report targets --year YEAR --format json

and prints the wall time, the peak RSS and the report's counts per level.

    cargo build --release
    scripts/report_bench.py --sites 300 --year 2025
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http, start_influxd  # noqa: E402

DAY = 86_400


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=300)
    ap.add_argument("--year", type=int, default=2025)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/emgate"))
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="report-bench-")
    influxd, url = start_influxd(os.path.join(tmp, "influxd"))
    try:
        http(url + "/query?q=CREATE+DATABASE+bench", b"")
        # Local midnight (Asia/Shanghai, +08:00, no DST) of Jan 1.
        import datetime
        jan1 = int(datetime.datetime(a.year, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=8))).timestamp())
        days = (datetime.date(a.year + 1, 1, 1) - datetime.date(a.year, 1, 1)).days
        points = 0
        for s in range(a.sites):
            site = f"s{s:03d}"
            lines = []
            for d in range(days):
                t = jan1 + d * DAY
                kwh = 10_000 + (s * 37 + d * 11) % 5_000
                m3 = 1_000 + (s * 13 + d * 7) % 500
                e_kgce = kwh * 0.1229
                g_kgce = m3 * 1.2143
                tot = e_kgce + g_kgce
                lines.append(f"site_consumption,energy=electricity,site={site},unit=kwh,window=1d amount={kwh},kgce={e_kgce},controlled_kgce={e_kgce},coverage=1,meters=1i {t}")
                lines.append(f"site_consumption,energy=natural_gas,site={site},unit=m3,window=1d amount={m3},kgce={g_kgce},controlled_kgce={g_kgce},coverage=1,meters=1i {t}")
                lines.append(f"site_consumption,energy=total,site={site},unit=kgce,window=1d amount={tot},kgce={tot},controlled_kgce={tot},coverage=1,meters=2i {t}")
            lines.append(f'entry,item=output_t,period={a.year},site={site} value={1000 + s},unit="t",period_start="",period_end="",entered_by="bench",reason="",id="01J{s:023d}",supersedes="" {jan1 + days * DAY}')
            points += len(lines)
            code, body = http(f"{url}/write?db=bench&precision=s", "\n".join(lines).encode())
            if code != 204:
                sys.exit(f"write: {code} {body}")
        cfg = os.path.join(tmp, "config")
        os.makedirs(os.path.join(cfg, "sites"))
        os.makedirs(os.path.join(cfg, "profiles"))
        with open(os.path.join(cfg, "emgate.toml"), "w") as f:
            f.write(f'[gateway]\nid = "bench"\ndata_dir = "{cfg}/data"\nprofiles_dir = "{cfg}/profiles"\n'
                    f'[influxdb]\napi = "v1"\nurl = "{url}"\ndatabase = "bench"\n'
                    '[aggregation]\nwindows = ["1d", "1mo"]\n')
        for s in range(a.sites):
            # Caps around the year's use (about 1 115 tce), so several levels occur.
            cap = 900 + (s * 7) % 400
            with open(os.path.join(cfg, "sites", f"s{s:03d}.toml"), "w") as f:
                f.write(f'[site]\nid = "s{s:03d}"\nname = "Site {s}"\ntimezone = "Asia/Shanghai"\n\n'
                        f'[[targets]]\nyear = {a.year}\ncap_tce = {cap}\n'
                        'intensity_unit = "kgce_per_t"\nintensity_item = "output_t"\n'
                        f'base_year = {a.year - 1}\nbase_intensity = 2300\nannual_decrease_pct = 3\n')
        print(f"{a.sites} sites, {days} days, {points} points written")
        cmd = ["/usr/bin/time", "-v", a.binary, "report", "targets", "--config",
               os.path.join(cfg, "emgate.toml"), "--year", str(a.year), "--format", "json"]
        print("command:", " ".join(cmd[2:]))
        for _ in range(a.runs):
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"report failed: {p.stderr}")
            wall = re.search(r"Elapsed \(wall clock\) time.*: (.*)", p.stderr).group(1)
            rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
            cpu = float(re.search(r"User time \(seconds\): ([\d.]+)", p.stderr).group(1)) + float(
                re.search(r"System time \(seconds\): ([\d.]+)", p.stderr).group(1))
            report = json.loads(p.stdout)
            print(f"wall {wall}  report CPU {cpu:.2f} s  peak RSS {rss / 1024:.1f} MiB  sites {len(report['sites'])}  counts {report['counts']}")
    finally:
        influxd.terminate()
        influxd.wait()


if __name__ == "__main__":
    main()
