"""A DL/T 645-2007 meter we did not write: the `dlt645` package from PyPI
(3.2.0, `MeterServerService`), serving one meter over TCP (a serial
server's transparent link: emgate's `transport = "rtu_over_tcp"`) or on a
serial device (one end of a socat pty pair: `transport = "serial"`).

Usage: dlt645_server.py SPEC  (SPEC is JSON text)

    {"tcp": 15020}                                  (127.0.0.1), or
    {"serial": "/path/of/pty", "baudrate": 9600},
    plus
    {"address": "129078563412",
     "values": [["00010000", 12345.67], ["02010100", 220.1], ...]}

"address" is handed to the library's `set_address` as it is: see below,
it is the WIRE order, not the nameplate. "values" are data identifiers
written DI3 DI2 DI1 DI0 as in the standard's tables, each set through the
library's own setter for its class (`set_00` for energy, DI3 = 00;
`set_02` for variables, DI3 = 02); a value the library refuses (out of the
range it allows for that DI) stops the script with an error, so a test
never reads a value that was not set.

Prints "ready tcp PORT" or "ready serial PATH" once serving; exits on
SIGTERM or SIGINT. The library's own logging stays off (its default).

What this library does on the wire, read from its source
(dlt645/service/serversvc/server_service.py, protocol/protocol.py,
common/transform.py, config/variable_types.py, model/data/define/energy_def.py)
and checked byte by byte in tests/integration/dlt645_interop.rs against
answers worked out by hand from the standard:

* `set_address(str)` runs `string_to_bcd(s)` big-endian: the string's
  first two digits become the first byte on the wire. The standard sends
  the address lowest byte first (nameplate 123456789012 goes on the wire
  as 12 90 78 56 34 12), so the meter numbered 123456789012 is given
  "129078563412": the wire order, NOT the nameplate. (Given the nameplate
  digits it would answer only to 12 34 56 78 90 12 on the wire, which
  is the meter numbered 129078563412.)
* Answers start with 4 x FE (`build_frame`'s default preamble_count).
* A read (C = 0x11) for its own address is answered 0x91 with the DI
  echoed (DI0 first, +0x33) and the value BCD lowest byte first, +0x33,
  CS = byte sum from the first 0x68, 0x16: as the standard says.
* Read address (C = 0x13 to AAAAAAAAAAAA) is answered 0x93 from its own
  address, with that address as the data, wire order, +0x33.
* Formats per DI: energy (DI3 = 00, e.g. 00010000) XXXXXX.XX, 4 bytes;
  voltage 0201xx00 XXX.X, 2 bytes; current 0202xx00 XXX.XXX, 3 bytes;
  active power 0203xx00 XX.XXXX, 3 bytes; power factor 0206xx00 X.XXX,
  2 bytes; frequency 02800002 XX.XX, 2 bytes. A negative value sets the
  top bit of the top (last sent) byte, as the standard's sign bit.
  Values are rounded to the format's resolution with Python's `round`.
* Its deviations from the standard (a gateway must cope, a test must
  know): a read addressed to ANOTHER meter is not ignored but answered
  with an error frame (C = 0xD1, error byte 0x01 "other") under the
  address it was sent to; a read to the broadcast address 999999999999
  (meant for time sync and freeze, no answer) or the wildcard
  AAAAAAAAAAAA is answered as if it were its own; every answer carries
  the request's address, not the meter's own (a wildcard read is answered
  from AAAAAAAAAAAA, so a master cannot learn the address that way); a DI it does not know is answered 0xD1 with error byte
  0x02 (no data) when its DI3 is 00..04, 0x01 (other) otherwise. So two
  of these servers cannot share one bus, and a mis-addressed meter reads
  as `dlt645:other`, not `timeout`.
* Serial: pyserial cannot set parity E on a pty (termios EINVAL), so the
  serial server runs 8N1; emgate's endpoint must say `parity = "none"`.
"""

import json
import signal
import sys
import threading

from dlt645 import MeterServerService


def meter(spec):
    if "tcp" in spec:
        svc = MeterServerService.new_tcp_server("127.0.0.1", int(spec["tcp"]), 5.0)
        where = f"tcp {spec['tcp']}"
    else:
        path = spec["serial"]
        svc = MeterServerService.new_rtu_server(
            path, 8, 1, int(spec.get("baudrate", 9600)), "N", 1.0
        )
        where = f"serial {path}"
    svc.set_address(spec["address"])
    for di_text, value in spec.get("values", []):
        di = int(di_text, 16)
        setter = {0x00: svc.set_00, 0x02: svc.set_02}.get(di >> 24)
        if setter is None:
            sys.exit(f"DI {di_text}: only energy (00..) and variables (02..) are set here")
        if not setter(di, float(value)):
            sys.exit(f"DI {di_text}: the library refused the value {value}")
    return svc, where


def main(spec):
    svc, where = meter(spec)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if not svc.start():
        sys.exit(f"cannot serve on {where}")
    print(f"ready {where}", flush=True)
    while not stop.wait(0.2):
        pass
    svc.stop()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: dlt645_server.py SPEC_JSON")
    main(json.loads(sys.argv[1]))
