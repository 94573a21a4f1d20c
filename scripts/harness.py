"""Shared pieces of the benchmark harnesses (scale.py, catchup.py): free
loopback ports, a private influxd 1.x, and a process's CPU and memory."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request


def free_ports(n):
    """`n` distinct free ports: every socket stays bound until all are chosen."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(url, data=None):
    req = urllib.request.Request(url, data=data)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()


def start_influxd(d):
    port, rpc = free_ports(2)
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "influxdb.conf")
    with open(conf, "w") as f:
        f.write(f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  cache-max-memory-size = "4g"
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
[monitor]
  store-enabled = false
[logging]
  level = "warn"
""")
    proc = subprocess.Popen([shutil.which("influxd") or "/usr/bin/influxd", "run", "-config", conf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if http(url + "/ping")[0] == 204:
                return proc, url
        except OSError:
            time.sleep(0.1)
    sys.exit("influxd did not start")


def query(url, db, q):
    u = f"{url}/query?" + urllib.parse.urlencode({"db": db, "q": q})
    return json.loads(http(u)[1])


def proc_usage(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return cpu, hwm


