"""Reads DL/T 645-2007 meters with the `dlt645` package 3.2.0 (PyPI), for interoperability tests.

emgate's simulator is written against our own reading of the standard; this
client is an implementation we did not write (its TCP client, `TcpClient`,
under `MeterClientService`), so a test that reads the simulator with it
proves the simulator speaks DL/T 645 as others do: frames, +0x33, checksum,
DI byte order, BCD values with the sign bit, and the wake-up bytes in front
of answers (the library skips up to four).

Usage: dlt645_read.py SPEC  (SPEC is JSON text)

    {"host": "127.0.0.1", "port": 15020, "timeout": 1.0,
     "read_address": true,
     "address": "129078563412",
     "reads": ["00010000", "02010100"]}

`address` is given to the library's `set_address` as it wants it: the six
address bytes **in wire order** (lowest byte first), as hex digits. The
standard's nameplate 123456789012 is sent `12 90 78 56 34 12`, so this
client is given "129078563412" for it (see `MeterClientService.set_address`:
`string_to_bcd(address)` big-endian, copied into the frame as is).

With `read_address`, a read-address request (0x13 to AA..AA) comes first;
the library returns the address digits in wire order too.

Prints one JSON object on stdout:

    {"address": "129078563412" | null,
     "reads": [{"di": "00010000", "value": 1036.0} | {"di": "...", "error": "no value"}]}

Exits 0 after all reads, 1 when the connection cannot be made, with a
message when dlt645 is not 3.2.0.
"""

import json
import sys

import dlt645
from dlt645 import MeterClientService

# One read per DI class of the standard: DI3 = 00 energy, 02 variables.
READERS = {0x00: "read_00", 0x02: "read_02"}


def main(spec):
    client = MeterClientService.new_tcp_client(
        spec.get("host", "127.0.0.1"), int(spec["port"]), timeout=float(spec.get("timeout", 1.0))
    )
    if not client.connect():
        print(json.dumps({"error": "cannot connect"}))
        return 1
    out = {"address": None, "reads": []}
    try:
        if spec.get("read_address"):
            item = client.read_address()
            out["address"] = None if item is None else item.value
        if not client.set_address(spec["address"]):
            print(json.dumps({"error": "set_address refused " + spec["address"]}))
            return 1
        for di_text in spec["reads"]:
            di = int(di_text, 16)
            reader = READERS.get(di >> 24)
            if reader is None:
                out["reads"].append({"di": di_text, "error": "DI class not read by this script"})
                continue
            item = getattr(client, reader)(di)
            if item is None or item.value is None:
                # No answer in time, an error answer, or a frame the library refused.
                out["reads"].append({"di": di_text, "error": "no value"})
            else:
                out["reads"].append({"di": di_text, "value": float(item.value)})
    finally:
        client.disconnect()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    if dlt645.__version__ != "3.2.0":
        sys.exit(f"dlt645 3.2.0 needed, found {dlt645.__version__}: run scripts/test")
    sys.exit(main(json.loads(sys.argv[1])))
