#!/usr/bin/env python3
"""Peer benchmark: emgate against the Node-RED flow many sites use today,
on the same Modbus server, at the NeuronEX grid.

The grid: 10 Modbus TCP connections x 10 devices (unit ids 1..10) x 1 000
float32 points, every second = 100 000 points/s offered, into InfluxDB 1.x.

One invocation:
  1. writes a profile of 1 000 float32 holding-register points (2 000
     registers per device) and a gateway configuration into a scratch folder;
  2. starts ONE `emgate simulate` that serves the 10 endpoints; both
     contenders poll this same server process, one after the other, each
     alone on the machine (besides the server and its own influxd);
  3. emgate: `emgate run` with that configuration, defaults otherwise
     (InfluxDB v1, gzip on, aggregation on with its default windows), into
     its own private influxd;
  4. Node-RED: installs Node-RED 4, node-red-contrib-modbus 5.23.3 and
     node-red-contrib-influxdb from the npm registry into the scratch folder
     (`npm install --prefix`), generates a typical site flow (a shared
     modbus-client per connection; per device 17 modbus-read nodes of at most
     124 registers every 1 s -> a function node decoding the float32 pairs into
     fields -> influxdb out, measurement `reading`), and runs it headless into
     its own private influxd;
  5. for each contender, after --warmup seconds, measures over --seconds:
     CPU as % of one core (utime+stime from /proc/PID/stat of the process and
     its children), peak RSS (VmHWM), and points landed per second = the
     number of float field values stored in its influxd with a time stamp in
     the window (InfluxQL count(*) over `reading`, summed over the 1 000
     point fields), divided by the window;
  6. prints one table and the Node-RED/emgate ratios.

    cargo build --release
    scripts/peer_bench.py                       # both, 60 s each after 20 s warm-up
    scripts/peer_bench.py --only emgate --seconds 30
    scripts/peer_bench.py --scratch /tmp/pb     # keep (and reuse) the npm install
    scripts/peer_bench.py --nice -10            # root, shared machine: shield both equally

Below the table it prints, per contender, the slowest and fastest second, the
server's and the influxd's CPU, the load average and how long the contender's
threads waited for a CPU: on a busy machine that says whose figure it is.

Needs: influxd 1.x on PATH, node >= 18 and npm (for Node-RED), and the npm
registry reachable the first time (the packages are installed into the
scratch folder, never into the repository). Everything listens on 127.0.0.1.
"""

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, free_ports, http, start_influxd  # noqa: E402

CONNECTIONS = 10
DEVICES = 10
POINTS = 1000
OFFERED = CONNECTIONS * DEVICES * POINTS  # field values per second
DATABASE = "emgate"
MEASUREMENT = "reading"
PROFILE = "peer_f32_1000"
# Largest read of whole float32 pairs within Modbus's 125-register limit.
READ_REGS = 124
NPM_PACKAGES = ["node-red@4", "node-red-contrib-modbus@5.23.3", "node-red-contrib-influxdb"]


def point_name(i):
    return f"f{i:04d}_pct"


def point_value(i):
    """What the simulator serves for point i: the midpoint of min 0 and max
    i + 1 (a gauge of an unknown quantity is served at the midpoint of its
    plausible range), so every point is valid and distinct."""
    return (i + 1) / 2


def write_profile(dirname):
    lines = ['description = "peer benchmark: 1000 float32 holding registers (NeuronEX grid)"', ""]
    for i in range(POINTS):
        lines += ["[[points]]", f'name = "{point_name(i)}"', 'register = "holding"',
                  f"address = {2 * i}", 'type = "f32"', 'unit = "pct"', "min = 0", f"max = {i + 1}", ""]
    os.makedirs(dirname, exist_ok=True)
    with open(os.path.join(dirname, f"{PROFILE}.toml"), "w") as f:
        f.write("\n".join(lines))


def meter_id(c, u):
    return f"c{c:02d}-d{u:02d}"


def write_config(d, ports, influx_url):
    """The gateway configuration; `simulate` reads the same file (its influxdb
    section is ignored there)."""
    sites = os.path.join(d, "sites")
    profiles = os.path.join(d, "profiles")
    os.makedirs(sites, exist_ok=True)
    write_profile(profiles)
    main = ["[gateway]", 'id = "peerbench"', f'data_dir = "{d}/emgate-data"', f'sites_dir = "{sites}"',
            f'profiles_dir = "{profiles}"', ""]
    if influx_url:
        # The HTTP API stays on (part of emgate's normal cost), on a free port.
        main += ["[api]", f'listen = "127.0.0.1:{free_port()}"', ""]
        main += ["[influxdb]", 'api = "v1"', f'url = "{influx_url}"', f'database = "{DATABASE}"', ""]
    for c, port in enumerate(ports):
        main += ["[[endpoints]]", f'id = "conn{c:02d}"', 'host = "127.0.0.1"', f"port = {port}", ""]
        site = ["[site]", f'id = "S{c:02d}"', f'name = "peer bench site {c}"', ""]
        for u in range(DEVICES):
            site += ["[[meters]]", f'id = "{meter_id(c, u)}"', 'energy = "electricity"', "level = 3",
                     f'profile = "{PROFILE}"', f'endpoint = "conn{c:02d}"', f"unit_id = {u + 1}",
                     "poll_interval_secs = 1", ""]
        with open(os.path.join(sites, f"s{c:02d}.toml"), "w") as f:
            f.write("\n".join(site))
    path = os.path.join(d, "emgate.toml" if influx_url else "simulate.toml")
    with open(path, "w") as f:
        f.write("\n".join(main))
    return path


# ---------------------------------------------------------------- Node-RED


DECODE = """// Decode the float32 pairs (big-endian, ABCD) of one modbus-read block into fields.
const buf = msg.responseBuffer.buffer;
const base = Number(msg.input.payload.address) / 2;
const fields = {};
for (let i = 0; i + 4 <= buf.length; i += 4) {
    fields['f' + String(base + i / 4).padStart(4, '0') + '_pct'] = buf.readFloatBE(i);
}
msg.payload = [fields, { meter: '%METER%' }];
return msg;
"""


def write_flows(path, ports, influx_port, buffer_commands=True):
    """A typical site flow: per connection a shared modbus-client; per device
    one modbus-read per block of at most 124 registers (every 1 s), one
    function node that decodes the floats, into one influxdb out per
    connection (measurement `reading`, tag `meter`, InfluxDB time stamps)."""
    nodes = [{"id": "tab", "type": "tab", "label": "peer bench", "disabled": False, "info": ""},
             {"id": "influx", "type": "influxdb", "hostname": "127.0.0.1", "port": str(influx_port),
              "protocol": "http", "database": DATABASE, "name": "private influxd", "usetls": False,
              "tls": "", "influxdbVersion": "1.x", "url": f"http://127.0.0.1:{influx_port}",
              "timeout": "10", "rejectUnauthorized": True}]
    regs = 2 * POINTS
    blocks = [(a, min(READ_REGS, regs - a)) for a in range(0, regs, READ_REGS)]
    for c, port in enumerate(ports):
        client, out = f"client{c}", f"out{c}"
        nodes.append({"id": client, "type": "modbus-client", "name": f"conn{c:02d}", "clienttype": "tcp",
                      "bufferCommands": buffer_commands, "stateLogEnabled": False, "queueLogEnabled": False,
                      "failureLogEnabled": True, "tcpHost": "127.0.0.1", "tcpPort": str(port),
                      "tcpType": "DEFAULT", "serialPort": "/dev/ttyUSB", "serialType": "RTU-BUFFERD",
                      "serialBaudrate": "9600", "serialDatabits": "8", "serialStopbits": "1",
                      "serialParity": "none", "serialConnectionDelay": "100",
                      "serialAsciiResponseStartDelimiter": "0x3A", "unit_id": 1, "commandDelay": 1,
                      "clientTimeout": 1000, "reconnectOnTimeout": True, "reconnectTimeout": 2000,
                      "parallelUnitIdsAllowed": True})
        nodes.append({"id": out, "type": "influxdb out", "z": "tab", "influxdb": "influx",
                      "name": f"conn{c:02d} to influxdb", "measurement": MEASUREMENT, "precision": "",
                      "retentionPolicy": "", "database": "database", "precisionV18FluxV20": "ms",
                      "retentionPolicyV18Flux": "", "org": "organisation", "bucket": "bucket",
                      "x": 700, "y": 40 * c, "wires": []})
        for u in range(DEVICES):
            fn = f"decode{c}_{u}"
            nodes.append({"id": fn, "type": "function", "z": "tab", "name": f"decode {meter_id(c, u)}",
                          "func": DECODE.replace("%METER%", meter_id(c, u)), "outputs": 1, "timeout": 0,
                          "noerr": 0, "initialize": "", "finalize": "", "libs": [], "x": 450,
                          "y": 40 * c, "wires": [[out]]})
            for b, (adr, qty) in enumerate(blocks):
                nodes.append({"id": f"read{c}_{u}_{b}", "type": "modbus-read", "z": "tab",
                              "name": f"{meter_id(c, u)} @{adr}", "topic": "", "showStatusActivities": False,
                              "logIOActivities": False, "showErrors": False, "showWarnings": True,
                              "unitid": str(u + 1), "dataType": "HoldingRegister", "adr": str(adr),
                              "quantity": str(qty), "rate": "1", "rateUnit": "s", "delayOnStart": False,
                              "startDelayTime": "", "server": client, "useIOFile": False, "ioFile": "",
                              "useIOForPayload": False, "emptyMsgOnFail": False, "x": 200, "y": 40 * c,
                              "wires": [[fn], []]})
    with open(path, "w") as f:
        json.dump(nodes, f, indent=1)
    return len(blocks)


def write_settings(path, userdir):
    with open(path, "w") as f:
        f.write(f"""// Generated by scripts/peer_bench.py: headless Node-RED (no editor, no HTTP nodes).
module.exports = {{
    uiHost: "127.0.0.1",
    uiPort: {free_port()},
    httpAdminRoot: false,
    httpNodeRoot: false,
    userDir: {json.dumps(userdir)},
    flowFile: "flows.json",
    flowFilePretty: false,
    credentialSecret: false,
    logging: {{ console: {{ level: "warn", metrics: false, audit: false }} }},
    functionExternalModules: false,
    diagnostics: {{ enabled: false }},
    runtimeState: {{ enabled: false }},
    telemetry: {{ enabled: false }},
    externalModules: {{ autoInstall: false, palette: {{ allowInstall: false }} }},
}};
""")


def npm_install(scratch):
    red = os.path.join(scratch, "node_modules", "node-red", "red.js")
    need = [os.path.join(scratch, "node_modules", p, "package.json")
            for p in ("node-red", "node-red-contrib-modbus", "node-red-contrib-influxdb")]
    if all(os.path.exists(p) for p in need):
        with open(need[1]) as f:
            if json.load(f).get("version") == "5.23.3":
                return red
    print(f"installing {' '.join(NPM_PACKAGES)} into {scratch} (npm registry) ...", flush=True)
    r = subprocess.run(["npm", "install", "--prefix", scratch, "--no-audit", "--no-fund", "--loglevel", "error",
                        *NPM_PACKAGES], capture_output=True, text=True)
    if r.returncode != 0 or not os.path.exists(red):
        sys.exit(f"npm install of {' '.join(NPM_PACKAGES)} failed (is the npm registry reachable?):\n"
                 f"{r.stderr[-2000:]}")
    return red


def versions(scratch):
    out = {}
    for p in ("node-red", "node-red-contrib-modbus", "node-red-contrib-influxdb"):
        with open(os.path.join(scratch, "node_modules", p, "package.json")) as f:
            out[p] = json.load(f)["version"]
    return out


# ---------------------------------------------------------------- measuring


def tree_usage(pid):
    """CPU seconds (utime+stime, plus reaped children's) and VmHWM MiB summed
    over `pid` and its live descendants."""
    tck = os.sysconf("SC_CLK_TCK")
    stats = {}
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(e)] = (int(fields[1]), sum(int(x) for x in fields[11:15]) / tck)
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        for q, (ppid, _) in stats.items():
            if ppid == p and q not in tree:
                tree.add(q)
                frontier.append(q)
    cpu = sum(stats[p][1] for p in tree if p in stats)
    hwm = 0.0
    for p in tree:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm += int(line.split()[1]) / 1024
        except OSError:
            pass
    return cpu, hwm


def influxql(url, q):
    """Run one InfluxQL query (long timeout: counting millions of values takes a while)."""
    u = f"{url}/query?" + urllib.parse.urlencode({"db": DATABASE, "q": q, "epoch": "ns"})
    with urllib.request.urlopen(u, timeout=600) as r:
        res = json.loads(r.read())["results"][0]
    if "error" in res:
        sys.exit(f"influxd query failed: {res['error']}\n  {q}")
    return res


def runqueue_wait(pid):
    """Seconds the threads of `pid` spent runnable but waiting for a CPU
    (/proc/PID/task/*/schedstat): how much other load on the machine held
    the contender back."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e9


def landed(url, t0, t1):
    """Float field values of `reading` with a time stamp in [t0, t1) (whole
    seconds): (total, per second, how many point fields had any)."""
    res = influxql(url, f"SELECT count(*) FROM {MEASUREMENT} WHERE time >= {t0}s AND time < {t1}s "
                        "GROUP BY time(1s) fill(0)")
    per_second = [0] * (t1 - t0)
    fields = set()
    for series in res.get("series", []):
        cols = series["columns"]
        for row in series["values"]:
            n = 0
            for col, v in zip(cols[1:], row[1:]):
                if col.startswith("count_f") and v:
                    n += v
                    fields.add(col)
            idx = row[0] // 1_000_000_000 - t0  # epoch=ns
            if 0 <= idx < len(per_second):
                per_second[idx] += n
    return sum(per_second), per_second, len(fields)


def sample_check(url):
    """One stored value of two points, against what the simulator serves."""
    bad = []
    for i in (0, POINTS - 1):
        res = influxql(url, f"SELECT last({point_name(i)}) FROM {MEASUREMENT}")
        try:
            v = res["series"][0]["values"][0][1]
        except (KeyError, IndexError):
            bad.append(f"{point_name(i)} missing")
            continue
        if not math.isclose(v, point_value(i), rel_tol=1e-6):
            bad.append(f"{point_name(i)} = {v}, expected {point_value(i)}")
    return bad


def wait_port(port, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def create_db(url):
    http(url + "/query", urllib.parse.urlencode({"q": f"CREATE DATABASE {DATABASE}"}).encode())


def stop(proc, timeout=60):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(name, proc, url, args, log, influx):
    """Warm up, then measure CPU and landed points over a whole-second window
    (plus, for the record, the CPU of the Modbus server and of the influxd)."""
    time.sleep(args.warmup)
    if proc.poll() is not None:
        sys.exit(f"{name} exited during warm-up (code {proc.returncode}); see {log}")
    # Start the window on a whole second: emgate stamps readings with their slot.
    time.sleep(math.ceil(time.time()) - time.time())
    t0 = int(round(time.time()))
    cpu0, _ = tree_usage(proc.pid)
    wait0 = runqueue_wait(proc.pid)
    side0 = [tree_usage(p)[0] for p in (args.sim_pid, influx.pid)]
    load0 = load_line()
    m0 = time.monotonic()
    hwm = 0.0
    # Sample the peak each second: a process that exits has no VmHWM left to read.
    while time.monotonic() - m0 < args.seconds - 1 and proc.poll() is None:
        time.sleep(1)
        hwm = max(hwm, tree_usage(proc.pid)[1])
    time.sleep(max(0.0, args.seconds - (time.monotonic() - m0)))
    if proc.poll() is not None:
        with open(log) as f:
            tail = f.readlines()[-20:]
        sys.exit(f"{name} exited during the window (code {proc.returncode}); the end of its log:\n"
                 + "".join(tail))
    cpu1, hwm1 = tree_usage(proc.pid)
    hwm = max(hwm, hwm1)
    wait1 = runqueue_wait(proc.pid)
    side1 = [tree_usage(p)[0] for p in (args.sim_pid, influx.pid)]
    wall = time.monotonic() - m0
    load1 = load_line()
    t1 = t0 + args.seconds
    # Let the window's last points land (emgate flushes every second and then
    # writes; Node-RED writes each message as it goes).
    time.sleep(args.grace)
    alive = proc.poll() is None
    count, per_second, fields = landed(url, t0, t1)
    bad = sample_check(url)
    sim_pct, influx_pct = (100 * (b - a) / wall for a, b in zip(side0, side1))
    return {"name": name, "per_second": per_second, "sim_pct": sim_pct, "influx_pct": influx_pct,
            "load": f"{load0} -> {load1}", "wait_pct": 100 * (wait1 - wait0) / wall,
            "cpu_pct": 100 * (cpu1 - cpu0) / wall, "rss": hwm,
            "landed": count / args.seconds, "fields": fields, "alive": alive, "bad": bad,
            "window": (t0, t1)}


def run_emgate(args, d, ports):
    influx, url = start_influxd(os.path.join(d, "influx-emgate"))
    try:
        create_db(url)
        cfg = write_config(d, ports, url)
        check = subprocess.run([args.binary, "check-config", "--config", cfg], capture_output=True, text=True)
        if check.returncode != 0:
            sys.exit(f"generated emgate config invalid:\n{check.stderr}")
        log = os.path.join(d, "emgate.log")
        with open(log, "w") as lf:
            gw = subprocess.Popen([args.binary, "--log-level", "warn", "run", "--config", cfg,
                                   "--stats-interval", "0"], stdout=lf, stderr=lf)
            try:
                return measure("emgate", gw, url, args, log, influx)
            finally:
                stop(gw)
    finally:
        stop(influx)


def run_nodered(args, d, ports, scratch):
    red = npm_install(scratch)
    influx, url = start_influxd(os.path.join(d, "influx-nodered"))
    try:
        create_db(url)
        userdir = os.path.join(d, "nodered-userdir")
        os.makedirs(userdir, exist_ok=True)
        port = int(url.rsplit(":", 1)[1])
        reads = write_flows(os.path.join(userdir, "flows.json"), ports, port, not args.nodered_unqueued)
        settings = os.path.join(userdir, "settings.js")
        write_settings(settings, userdir)
        log = os.path.join(d, "nodered.log")
        with open(log, "w") as lf:
            nr = subprocess.Popen([args.node, red, "--userDir", userdir, "--settings", settings],
                                  stdout=lf, stderr=lf, cwd=userdir)
            try:
                res = measure("Node-RED", nr, url, args, log, influx)
            finally:
                stop(nr)
        res["reads_per_device"] = reads
        res["versions"] = versions(scratch)
        return res
    finally:
        stop(influx)


def check_peers(args):
    missing = []
    if not shutil.which("influxd"):
        missing.append("influxd (InfluxDB 1.x; Debian: apt-get install influxdb)")
    if not os.path.exists(args.binary):  # the Modbus server is `emgate simulate` either way
        missing.append(f"{args.binary} (run `cargo build --release` first, or pass --binary)")
    if args.only in (None, "nodered"):
        if not shutil.which(args.node):
            missing.append(f"{args.node} (Node.js >= 18, for Node-RED 4)")
        if not shutil.which("npm"):
            missing.append("npm (installs Node-RED and its nodes from the npm registry)")
    if missing:
        sys.exit("peer benchmark: missing peer(s):\n  " + "\n  ".join(missing))


def set_nice(nice):
    """Run the benchmark, and every process it starts, at `nice`. With the
    kernel's autogroup scheduling (sched_autogroup_enabled), CPU is shared
    between sessions before nice values count, so the benchmark gets a
    session (autogroup) of its own and gives it the same nice value."""
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)  # inherited by every process started below
    except PermissionError:
        sys.exit(f"--nice {nice}: not permitted (a negative nice value needs root)")
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(nice))
    except OSError:
        pass  # no autogroup scheduling: the process nice value is enough


def load_line():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60, help="measured window per contender")
    ap.add_argument("--warmup", type=int, default=20, help="seconds before the window (connect, first flushes)")
    ap.add_argument("--grace", type=int, default=10,
                    help="seconds after the window before counting, for the last writes to land")
    ap.add_argument("--only", choices=["emgate", "nodered"], help="run one contender only")
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    ap.add_argument("--binary", default=os.path.join(target, "release", "emgate"),
                    help="the emgate binary, which serves the Modbus grid too "
                         "(default: $CARGO_TARGET_DIR/release/emgate, else target/release/emgate)")
    ap.add_argument("--node", default="node", help="the Node.js binary")
    ap.add_argument("--scratch", help="folder for the npm install (kept, reused); default: a temporary one")
    ap.add_argument("--workdir", help="keep configurations, logs and databases here (default: a temporary folder)")
    ap.add_argument("--nodered-unqueued", action="store_true",
                    help="modbus-client with bufferCommands off (default: on, the node's default)")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the whole benchmark (server, contenders, influxds) at this nice value; a negative "
                         "one (root only) shields it from other work on a shared machine, equally for both")
    args = ap.parse_args()
    check_peers(args)
    if args.nice:
        set_nice(args.nice)

    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        ctx = contextlib.nullcontext(os.path.abspath(args.workdir))
    else:
        ctx = tempfile.TemporaryDirectory(prefix="peer_bench.")
    with ctx as d:
        scratch = os.path.abspath(args.scratch) if args.scratch else os.path.join(d, "npm")
        os.makedirs(scratch, exist_ok=True)
        if args.only in (None, "nodered"):
            npm_install(scratch)  # before the server starts: the install is not measured
        ports = free_ports(CONNECTIONS)
        sim_cfg = write_config(os.path.join(d, "sim"), ports, None)
        sim_log = open(os.path.join(d, "simulate.log"), "w")
        sim = subprocess.Popen([args.binary, "--log-level", "warn", "simulate", "--config", sim_cfg],
                               stdout=sim_log, stderr=sim_log)
        args.sim_pid = sim.pid
        results = []
        try:
            if not all(wait_port(p) for p in ports):
                sys.exit("emgate simulate did not open its 10 endpoints")
            print(f"grid: {CONNECTIONS} connections x {DEVICES} devices x {POINTS} float32 points every 1 s = "
                  f"{OFFERED} points/s offered; one `emgate simulate` serves both, contenders run one after "
                  f"the other; warm-up {args.warmup} s, window {args.seconds} s; nice {args.nice}; "
                  f"load before: {load_line()}",
                  flush=True)
            sim_cpu0, _ = tree_usage(sim.pid)
            sim_t0 = time.monotonic()
            if args.only in (None, "emgate"):
                results.append(run_emgate(args, os.path.join(d, "emgate"), ports))
                print(f"  emgate done (load {load_line()})", flush=True)
            if args.only in (None, "nodered"):
                results.append(run_nodered(args, os.path.join(d, "nodered"), ports, scratch))
                print(f"  Node-RED done (load {load_line()})", flush=True)
            sim_cpu1, sim_hwm = tree_usage(sim.pid)
            sim_pct = 100 * (sim_cpu1 - sim_cpu0) / (time.monotonic() - sim_t0)
        finally:
            stop(sim)
            sim_log.close()

    print()
    print(f"| contender | CPU, % of one core | peak RSS, MiB | points landed/s | % of {OFFERED} offered |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {r['cpu_pct']:.1f} | {r['rss']:.0f} | {r['landed']:.0f} | "
              f"{100 * r['landed'] / OFFERED:.1f} |")
    by = {r["name"]: r for r in results}
    if "emgate" in by and "Node-RED" in by:
        e, n = by["emgate"], by["Node-RED"]
        cpu_ratio = n["cpu_pct"] / e["cpu_pct"] if e["cpu_pct"] > 0 else float("inf")
        mem_ratio = n["rss"] / e["rss"] if e["rss"] > 0 else float("inf")
        print(f"\nNode-RED / emgate: CPU {cpu_ratio:.1f}x, memory {mem_ratio:.1f}x")
    print()
    for r in results:
        ps = r["per_second"]
        notes = [f"{r['fields']} point fields counted",
                 f"per second of the window: min {min(ps)}, max {max(ps)}, seconds under 100 %: "
                 f"{sum(1 for v in ps if v < CONNECTIONS * DEVICES * POINTS)}"]
        if "versions" in r:
            notes.append(", ".join(f"{k} {v}" for k, v in r["versions"].items()))
            notes.append(f"{r['reads_per_device']} modbus-read nodes per device")
        notes.append(f"during the window: Modbus server {r['sim_pct']:.1f} %, its influxd {r['influx_pct']:.1f} % "
                     f"of one core, load average {r['load']}; its threads waited for a CPU "
                     f"{r['wait_pct']:.1f} % of the window")
        if not r["alive"]:
            notes.append("EXITED before the count")
        notes.append("values as served" if not r["bad"] else "WRONG VALUES: " + "; ".join(r["bad"]))
        print(f"{r['name']}: " + "; ".join(notes))
    print(f"the Modbus server (emgate simulate): {sim_pct:.1f} % of one core over the whole run, "
          f"peak RSS {sim_hwm:.0f} MiB")
    if any(r["bad"] or not r["alive"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
