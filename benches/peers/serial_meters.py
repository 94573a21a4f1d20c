"""Serial-bus benchmark peer: pymodbus meters on a pty, a replaying client,
and the report that compares emgate's round time with the wire time.

scripts/bench-serial drives it; each subcommand is one step of a run:

  serve   pymodbus 3.16.1 ModbusSerialServer on one end of a socat pty pair,
          serving UNITS meters with the registers of a profile; every packet
          it receives or sends is recorded (time, direction, bytes) in TRACE
          (JSON lines, flushed every 0.2 s), so the report knows the exact
          requests emgate sent and how long pymodbus took to answer each.
  replay  on the other end (emgate stopped): the same requests, one round
          after another, back to back, with no silence, by a minimal
          blocking client (write, read until the answer's length). Its
          round time is the peer's own figure: pymodbus's answer time plus
          the pty, with no gateway in the way.
  report  the table row: theoretical wire time of the requests (README
          formula, checked against emgate's own planned round), configured
          delays, emgate's achieved round (emgate_bus_round_seconds sampled
          from /metrics, cross-checked with the poll-duration histogram),
          the peer's figure, and the overhead that is emgate's.

Why a peer of our own rather than tests/peers/pymodbus_server.py: that one
serves raw blocks for interop tests; this one serves a whole profile per
unit and records timing, which only the benchmark needs.
"""

import argparse
import asyncio
import json
import os
import signal
import struct
import sys
import time
import tomllib

# Bits per character: start + 8 data + no parity + 1 stop (what the bench configures).
BITS_PER_CHAR = 10
FUNCTION = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


def silence_s(baud):
    """t3.5: 3.5 characters at <= 19200 baud, 1.75 ms above (Modbus over Serial Line 2.5.1.1)."""
    return 0.00175 if baud > 19200 else 3.5 * BITS_PER_CHAR / baud


def answer_data_len(fc, count):
    return (count + 7) // 8 if fc <= 2 else 2 * count


def wire_s(fc, count, baud):
    """Request (8 bytes) plus answer (5 + data bytes) on the wire."""
    return (8 + 5 + answer_data_len(fc, count)) * BITS_PER_CHAR / baud


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def request_bytes(unit, fc, start, count):
    body = struct.pack(">BBHH", unit, fc, start, count)
    return body + struct.pack("<H", crc16(body))


# --- serve -----------------------------------------------------------------


def profile_words(path):
    """Register words per kind for one meter: every point's registers, f32
    points at the middle of their plausible range (so readings pass
    validation), everything else zero."""
    with open(path, "rb") as f:
        profile = tomllib.load(f)
    words = {"holding": {}, "input": {}}
    for p in profile["points"]:
        kind = p["register"]
        if kind not in words:
            continue
        addr = int(p["address"])
        width = 1 if p["type"] in ("u16", "i16") else 4 if p["type"] in ("f64", "u64", "i64") else 2
        regs = [0] * width
        if p["type"] == "f32" and p.get("order", "abcd") == "abcd":
            value = (float(p.get("min", 0)) + float(p.get("max", 0))) / 2
            regs = list(struct.unpack(">HH", struct.pack(">f", value)))
        for i, w in enumerate(regs):
            words[kind][addr + i] = w
    return words


def device(unit, words):
    from pymodbus.simulator import DataType, SimData, SimDevice

    def block(kind):
        regs = words[kind]
        if not regs:
            return [SimData(65535, count=1, datatype=DataType.INVALID)]
        top = max(regs) + 1
        # One contiguous block from 0, so merged reads across gaps answer.
        return [SimData(0, values=[regs.get(a, 0) for a in range(top)], datatype=DataType.UINT16)]

    bits = [SimData(65535, values=[False], datatype=DataType.BITS)]
    return SimDevice(id=unit, simdata=(bits, bits, block("holding"), block("input")))


async def serve(args):
    from pymodbus.server import ModbusSerialServer

    words = profile_words(args.profile)
    devices = [device(u, words) for u in range(1, args.units + 1)]
    trace = []
    out = open(args.trace, "w")

    def on_packet(sending, data):
        trace.append((time.perf_counter(), time.time(), "tx" if sending else "rx", data.hex()))
        return data

    server = ModbusSerialServer(
        devices,
        port=args.port,
        baudrate=args.baud,
        parity="N",
        trace_packet=on_packet,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve_forever())

    async def flush():
        while True:
            await asyncio.sleep(0.2)
            lines = trace[:]
            del trace[: len(lines)]
            for mono, wall, d, h in lines:
                out.write(json.dumps({"t": mono, "wall": wall, "dir": d, "hex": h}) + "\n")
            out.flush()

    flusher = asyncio.create_task(flush())
    print(f"ready serial {args.port}", flush=True)
    await stop.wait()
    flusher.cancel()
    for mono, wall, d, h in trace:
        out.write(json.dumps({"t": mono, "wall": wall, "dir": d, "hex": h}) + "\n")
    out.close()
    await server.shutdown()
    serving.cancel()


# --- trace analysis ----------------------------------------------------------


def load_trace(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def requests_in(packet_hex):
    """Read requests (fc 1..4, 8 bytes, CRC fits) in one received packet."""
    data = bytes.fromhex(packet_hex)
    found = []
    i = 0
    while i + 8 <= len(data):
        unit, fc, start, count = struct.unpack(">BBHH", data[i : i + 6])
        if 1 <= fc <= 4 and struct.unpack("<H", data[i + 6 : i + 8])[0] == crc16(data[i : i + 6]):
            found.append((unit, fc, start, count))
            i += 8
        else:
            i += 1
    return found


def one_round(trace, until_wall=None):
    """The distinct requests emgate sent, in the order it first sent them:
    one poll round (every meter, every planned read)."""
    seen = []
    for rec in trace:
        if rec["dir"] != "rx" or (until_wall is not None and rec["wall"] >= until_wall):
            continue
        for r in requests_in(rec["hex"]):
            if r not in seen:
                seen.append(r)
    return seen


def server_answer_times(trace, since_wall, until_wall):
    """pymodbus's own time per request: request received to answer handed to
    the transport (inside the peer, from its trace)."""
    times = []
    pending = None
    for rec in trace:
        if not since_wall <= rec["wall"] < until_wall:
            continue
        if rec["dir"] == "rx":
            if pending is None:
                pending = rec["t"]
        elif pending is not None:
            times.append(rec["t"] - pending)
            pending = None
    return times


# --- replay ------------------------------------------------------------------


def replay(args):
    import serial

    trace = load_trace(args.trace)
    reqs = one_round(trace)
    if not reqs:
        sys.exit("replay: the trace holds no request: did emgate poll?")
    frames = [(request_bytes(*r), 5 + answer_data_len(r[1], r[3])) for r in reqs]
    port = serial.Serial(args.port, baudrate=args.baud, timeout=1.0)
    port.reset_input_buffer()
    rounds = []
    started_wall = time.time()
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for frame, answer_len in frames:
            port.write(frame)
            got = 0
            while got < answer_len:
                chunk = port.read(answer_len - got)
                if not chunk:
                    sys.exit(f"replay: no answer to {frame.hex()}")
                got += len(chunk)
        rounds.append(time.perf_counter() - t0)
    port.close()
    rounds.sort()
    result = {
        "requests": len(reqs),
        "rounds": len(rounds),
        "median_round_s": rounds[len(rounds) // 2],
        "mean_round_s": sum(rounds) / len(rounds),
        "since_wall": started_wall,
        "until_wall": time.time(),
    }
    with open(args.out, "w") as f:
        json.dump(result, f)


# --- report ------------------------------------------------------------------


def histogram(metrics_path, name, endpoint):
    """(sum, count) of histogram `name` for `endpoint` in a /metrics text."""
    total = count = None
    label = f'endpoint="{endpoint}"'
    with open(metrics_path) as f:
        for line in f:
            if label not in line:
                continue
            if line.startswith(name + "_sum"):
                total = float(line.rsplit(" ", 1)[1])
            elif line.startswith(name + "_count"):
                count = float(line.rsplit(" ", 1)[1])
    if total is None or count is None:
        sys.exit(f"report: {name} for {endpoint} not in {metrics_path}")
    return total, count


def counter(metrics_path, name):
    """The first sample of `name` in a /metrics text (the bench has one endpoint)."""
    with open(metrics_path) as f:
        for line in f:
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    sys.exit(f"report: {name} not in {metrics_path}")


def report(args):
    trace = load_trace(args.trace)
    with open(args.replay) as f:
        peer = json.load(f)
    reqs = one_round(trace, until_wall=peer["since_wall"])
    n = len(reqs)
    baud = args.baud
    s = silence_s(baud)
    turnaround = args.turnaround_ms / 1000
    delay = args.delay_ms / 1000
    # README formula, per read: request + answer bytes, 2 x t3.5, then the delays.
    wire = sum(wire_s(fc, count, baud) + 2 * s for _, fc, _, count in reqs)
    delays = n * (turnaround + delay)

    name = "emgate_modbus_poll_duration_seconds"
    sum0, count0 = histogram(args.metrics0, name, args.endpoint)
    sum1, count1 = histogram(args.metrics1, name, args.endpoint)
    polls = count1 - count0
    if polls < args.meters:
        sys.exit(f"report: only {polls:.0f} meter polls in the window: emgate did not poll")
    rounds = polls / args.meters
    # Cross-check: the meters' poll times summed (no scheduling between them).
    polled = (sum1 - sum0) / rounds
    # The achieved round as the status API shows it: the last round, sampled
    # once per poll interval.
    samples = [counter(m, "emgate_bus_round_seconds") for m in args.samples]
    achieved = sum(samples) / len(samples)
    planned = counter(args.metrics1, "emgate_bus_planned_round_seconds")
    if abs(planned - (wire + delays)) > 1e-4:
        sys.exit(
            f"report: emgate plans {planned * 1000:.3f} ms a round, this script {(wire + delays) * 1000:.3f} ms:"
            " the README formula and this script disagree"
        )
    def delta(metric):
        return counter(args.metrics1, metric) - counter(args.metrics0, metric)

    sent = delta("emgate_modbus_requests_total")
    failed = delta("emgate_modbus_timeouts_total") + delta("emgate_modbus_exceptions_total")
    if failed:
        sys.exit(f"report: {failed:.0f} meter polls failed in the window: the figures would mislead")

    # What emgate waits on purpose on a pty, per read: the linger of one t3.5
    # after the answer (the send's own t3.5 overlaps it), then the longer of
    # the turnaround and the inter-request delay (they overlap too).
    deliberate = n * (s + max(turnaround, delay))
    peer_round = peer["median_round_s"]
    overhead = achieved - peer_round - deliberate
    served = server_answer_times(trace, peer["since_wall"], peer["until_wall"])
    served.sort()
    inside = served[len(served) // 2] * n if served else float("nan")
    row = {
        "baud": baud,
        "meters": args.meters,
        "requests": n,
        "wire_ms": wire * 1000,
        "delays_ms": delays * 1000,
        "planned_ms": planned * 1000,
        "achieved_ms": achieved * 1000,
        "samples": len(samples),
        "polled_ms": polled * 1000,
        "rounds": rounds,
        "requests_sent": sent,
        "deliberate_ms": deliberate * 1000,
        "peer_ms": peer_round * 1000,
        "peer_inside_ms": inside * 1000,
        "overhead_ms": overhead * 1000,
        "overhead_pct": 100 * overhead / (wire + delays),
        "overhead_per_read_us": overhead / n * 1e6,
    }
    with open(args.out, "a") as f:
        f.write(json.dumps(row) + "\n")


def table(args):
    with open(args.rows) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    head = (
        "| baud | requests per round | theoretical wire time | configured delays | achieved round "
        "| of which deliberate silence | peer's figure (pymodbus alone) | emgate overhead | overhead % of wire + delays |"
    )
    print(head)
    print("|" + "---|" * 9)
    for r in rows:
        print(
            f"| {r['baud']} | {r['requests']} ({r['meters']} meters) | {r['wire_ms']:.1f} ms "
            f"| {r['delays_ms']:.1f} ms | {r['achieved_ms']:.1f} ms (mean of {r['samples']} samples; "
            f"meters' polls {r['polled_ms']:.1f} ms) "
            f"| {r['deliberate_ms']:.1f} ms | {r['peer_ms']:.1f} ms (inside pymodbus {r['peer_inside_ms']:.1f} ms) "
            f"| {r['overhead_ms']:.1f} ms = {r['overhead_per_read_us']:.0f} µs per read | {r['overhead_pct']:.1f} % |"
        )
    print()
    print("theoretical wire time + configured delays = emgate's planned round "
          "(emgate_bus_planned_round_seconds), checked to 0.1 ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--port", required=True)
    p.add_argument("--baud", type=int, required=True)
    p.add_argument("--profile", required=True)
    p.add_argument("--units", type=int, required=True)
    p.add_argument("--trace", required=True)
    p = sub.add_parser("replay")
    p.add_argument("--port", required=True)
    p.add_argument("--baud", type=int, required=True)
    p.add_argument("--trace", required=True)
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--out", required=True)
    p = sub.add_parser("report")
    for k in ("trace", "replay", "metrics0", "metrics1", "out", "endpoint"):
        p.add_argument("--" + k, required=True)
    p.add_argument("--samples", nargs="+", required=True, help="/metrics texts, one per poll interval")
    p.add_argument("--baud", type=int, required=True)
    p.add_argument("--meters", type=int, required=True)
    p.add_argument("--turnaround-ms", type=float, default=0)
    p.add_argument("--delay-ms", type=float, default=0)
    p = sub.add_parser("table")
    p.add_argument("--rows", required=True)
    args = ap.parse_args()
    if args.cmd == "serve":
        asyncio.run(serve(args))
    elif args.cmd == "replay":
        replay(args)
    elif args.cmd == "report":
        report(args)
    else:
        table(args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
