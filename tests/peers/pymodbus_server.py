"""A Modbus server built on pymodbus 3.16.1, for interoperability tests:
Modbus TCP, RTU frames over TCP, or RTU on a serial port (one end of a
socat pty pair in the tests).

emgate's own simulator and client are written against the same reading of
the specification; this peer is an implementation we did not write, so a
test that reads it proves the gateway speaks Modbus as others do.

Usage: pymodbus_server.py SPEC  (SPEC is JSON text, or "-" to read it from stdin)

    {"host": "127.0.0.1", "port": 15020, "framer": "socket" | "rtu",
     "serial": "/path/of/pty", "baudrate": 9600,
     "devices": [{"unit": 1,
                  "coils":    [{"address": 0, "bits":  [1, 0, 1]}],
                  "discrete": [{"address": 0, "bits":  [0, 1]}],
                  "holding":  [{"address": 10, "words": [1, 38064]}],
                  "input":    [{"address": 0, "words": [17254, 32768]}]}]}

With "serial", the server speaks RTU on that device instead of listening on
TCP ("host", "port" and "framer" are ignored), with parity N: pyserial
cannot set parity E on a pty (termios EINVAL).

Every block is served as raw 16-bit words (or bits): the test computes the
words itself, so nothing here interprets data types or byte orders.
Prints "ready HOST PORT" (or "ready serial PATH") on stdout once listening
(the port is open); exits on SIGTERM or SIGINT.
"""

import asyncio
import json
import signal
import sys

from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


def blocks(spec, key, field, datatype):
    out = []
    for block in spec.get(key, []):
        values = [int(v) for v in block[field]]
        if datatype == DataType.BITS:
            values = [bool(v) for v in values]
        out.append(SimData(int(block["address"]), values=values, datatype=datatype))
    if not out:
        # pymodbus rejects an empty table: park one entry at the last address,
        # an invalid register (reads answer an exception) or a False bit.
        if datatype == DataType.BITS:
            out.append(SimData(65535, values=[False], datatype=DataType.BITS))
        else:
            out.append(SimData(65535, count=1, datatype=DataType.INVALID))
    return out


def device(spec):
    simdata = (
        blocks(spec, "coils", "bits", DataType.BITS),
        blocks(spec, "discrete", "bits", DataType.BITS),
        blocks(spec, "holding", "words", DataType.UINT16),
        blocks(spec, "input", "words", DataType.UINT16),
    )
    return SimDevice(id=int(spec["unit"]), simdata=simdata)


async def main(spec):
    devices = [device(d) for d in spec["devices"]]
    # The server must be created inside the running loop.
    if "serial" in spec:
        path = spec["serial"]
        server = ModbusSerialServer(
            devices,
            framer=FramerType.RTU,
            port=path,
            baudrate=int(spec.get("baudrate", 9600)),
            parity="N",
        )
        where = f"serial {path}"
    else:
        host = spec.get("host", "127.0.0.1")
        port = int(spec["port"])
        framer = FramerType.RTU if spec.get("framer") == "rtu" else FramerType.SOCKET
        server = ModbusTcpServer(devices, address=(host, port), framer=framer)
        where = f"{host} {port}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # In the background: returns once listening (the serial port open).
    await server.serve_forever(background=True)
    print(f"ready {where}", flush=True)
    await stop.wait()
    await server.shutdown()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: pymodbus_server.py SPEC_JSON|-")
    text = sys.stdin.read() if sys.argv[1] == "-" else sys.argv[1]
    asyncio.run(main(json.loads(text)))
