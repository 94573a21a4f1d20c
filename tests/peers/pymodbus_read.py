"""Reads a Modbus server with pymodbus 3.16.1's client, for interoperability tests.

emgate's simulator is written against our own reading of the specification;
this client is an implementation we did not write, so a test that reads the
simulator with it proves the simulator speaks Modbus (here: RTU frames with
CRC inside TCP, as a serial server forwards them) as others do.

Usage: pymodbus_read.py SPEC  (SPEC is JSON text)

    {"host": "127.0.0.1", "port": 15020, "framer": "rtu" | "socket",
     "timeout": 2.0,
     "reads": [{"unit": 2, "table": "holding", "address": 10, "count": 2}]}

`table` is one of "coils", "discrete", "holding", "input". Prints one JSON
array on stdout, one element per read, in order:

    {"words": [1, 38064]}  |  {"bits": [1, 0]}  |  {"exception": 2}
    |  {"error": "text"}   (no answer in time, or a frame pymodbus refused)

Exits 0 after all reads, 1 when the connection cannot be made, with a
message when pymodbus is not 3.16.1.
"""

import asyncio
import json
import sys

import pymodbus
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType


async def main(spec):
    framer = FramerType.RTU if spec.get("framer", "rtu") == "rtu" else FramerType.SOCKET
    client = AsyncModbusTcpClient(
        spec.get("host", "127.0.0.1"),
        port=int(spec["port"]),
        framer=framer,
        timeout=float(spec.get("timeout", 2.0)),
        # One request per read: a retry would hide a missing answer.
        retries=0,
    )
    if not await client.connect():
        print(json.dumps({"error": "cannot connect"}))
        return 1
    calls = {
        "coils": client.read_coils,
        "discrete": client.read_discrete_inputs,
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
    }
    results = []
    try:
        for read in spec["reads"]:
            count = int(read["count"])
            try:
                rr = await calls[read["table"]](
                    int(read["address"]), count=count, device_id=int(read["unit"])
                )
            except ModbusException as e:
                results.append({"error": str(e)})
                continue
            if rr.isError():
                results.append({"exception": int(rr.exception_code)})
            elif read["table"] in ("coils", "discrete"):
                # pymodbus pads bits to whole bytes.
                results.append({"bits": [int(b) for b in rr.bits[:count]]})
            else:
                results.append({"words": [int(w) for w in rr.registers]})
    finally:
        client.close()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    if pymodbus.__version__ != "3.16.1":
        sys.exit(f"pymodbus 3.16.1 needed, found {pymodbus.__version__}: run scripts/test")
    sys.exit(asyncio.run(main(json.loads(sys.argv[1]))))
