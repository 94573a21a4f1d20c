"""One RS-485 bus with Modbus RTU and DL/T 645-2007 meters on it, as one
process on one end of a socat pty pair (two processes cannot both own one
pty end, so pymodbus's server and the dlt645 package's server cannot share
it): the bus of a mixed-bus test.

Neither protocol is ours: Modbus requests are taken off the line by
pymodbus 3.16.1's own RTU framer and decoder and answered by its own PDU
classes from a pymodbus simulator datastore (SimCore/SimDevice, the
devices built exactly as tests/peers/pymodbus_server.py builds them);
DL/T 645 requests are taken off the line by the dlt645 package's
(3.2.0) `DLT645Protocol` and answered by its `MeterServerService`, one per
meter. Only the meter addressed answers (a Modbus unit id or a DL/T 645
address nobody has: silence, as on a real bus; the library's own server
would answer a foreign address with an error frame, see
tests/peers/dlt645_server.py, so the dispatch by address is done here).

Usage: mixed_bus.py SPEC  (SPEC is JSON text)

    {"serial": "/path/of/pty", "baudrate": 9600, "delay_ms": 20,
     "modbus": [{"unit": 1, "holding": [...], "input": [...]}],
     "dlt645": [{"address": "129078563412",
                 "values": [["00010000", 12345.67], ...]}]}

"modbus" devices are as pymodbus_server.py takes them; a "dlt645" meter's
"address" is what the library's `set_address` takes (the wire order), its
"values" as dlt645_server.py takes them. Every answer is sent "delay_ms"
after its request is whole (a DL/T 645 meter's reply delay Td is 20 to 500
ms), which leaves a master that does not wait room to talk over it.

Prints "ready serial PATH" once the port is open, then one JSON line per
request taken off the line:

    {"proto": "modbus" | "dlt645", "who": unit id or wire address (hex),
     "what": "fc start count" | DI (DI3 first), "request": hex,
     "arrived": time its first byte was read,
     "answered": time the answer was written (null: no answer),
     "pending": bytes received after the request and before its answer}

Times are time.monotonic() seconds. A master that never talks over an
answer makes every "pending" 0 and every "arrived" later than the
previous "answered". Exits on SIGTERM or SIGINT.
"""

import asyncio
import json
import os
import select
import signal
import sys
import time

import serial
from dlt645 import DLT645Protocol, MeterServerService
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU
from pymodbus.simulator.simcore import SimCore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pymodbus_server import device  # noqa: E402  (the same devices as the pymodbus peer)


def dlt645_meter(spec):
    """A MeterServerService with no transport: only its request handler is used."""
    svc = MeterServerService(None)
    svc.set_address(spec["address"])
    for di_text, value in spec.get("values", []):
        di = int(di_text, 16)
        setter = {0x00: svc.set_00, 0x02: svc.set_02}.get(di >> 24)
        if setter is None or not setter(di, float(value)):
            sys.exit(f"DI {di_text}: cannot set {value}")
    return bytes(svc.address), svc


class Bus:
    def __init__(self, spec):
        self.port = serial.Serial(
            spec["serial"], baudrate=int(spec.get("baudrate", 9600)), timeout=0
        )
        self.fd = self.port.fileno()
        self.delay = float(spec.get("delay_ms", 20)) / 1000.0
        units = [device(d) for d in spec.get("modbus", [])]
        self.units = {u.id for u in units}
        self.context = SimCore(units) if units else None
        self.framer = FramerRTU(DecodePDU(True))
        self.meters = dict(dlt645_meter(m) for m in spec.get("dlt645", []))
        self.loop = asyncio.new_event_loop()
        # Received bytes and the time each was read.
        self.buf = bytearray()
        self.times = []

    def receive(self, timeout):
        """Reads what is there (waiting up to `timeout`); returns the count."""
        readable, _, _ = select.select([self.fd], [], [], timeout)
        if not readable:
            return 0
        data = os.read(self.fd, 4096)
        now = time.monotonic()
        self.buf += data
        self.times += [now] * len(data)
        return len(data)

    def drop(self, n):
        del self.buf[:n]
        del self.times[:n]

    def take(self):
        """The next whole request off the buffer: (proto, used, request) or None."""
        while self.buf:
            raw = bytes(self.buf)
            if raw[0] in (0xFE, 0x68):
                remaining, frame = DLT645Protocol.deserialize_with_remaining(raw)
                if frame is None:
                    if remaining == raw:
                        return None
                    self.drop(len(raw) - len(remaining))
                    continue
                return "dlt645", len(raw) - len(remaining), frame
            # pymodbus's framer takes a whole read's bytes as one frame
            # (it returns the buffer's length as used): cut the frame out
            # by the size its PDU class gives, then let pymodbus decode it.
            if len(raw) < 2:
                return None
            pdu_class = self.framer.decoder.lookupPduClass(raw)
            if pdu_class is None:
                self.drop(1)
                continue
            size = pdu_class.calculateRtuFrameSize(raw)
            if not size or len(raw) < size:
                return None
            _, pdu = self.framer.handleFrame(raw[:size], 0, 0)
            if pdu is None:
                self.drop(1)
                continue
            return "modbus", size, pdu
        return None

    def answer(self, proto, request):
        """(who, what, answer bytes or None)."""
        if proto == "dlt645":
            di = int.from_bytes(bytes(request.data[:4]), "little")
            who = bytes(request.addr).hex()
            svc = self.meters.get(bytes(request.addr))
            out = svc.handle_request(request) if svc is not None else None
            return who, f"{di:08X}", None if out is None else bytes(out)
        pdu = request
        what = f"{pdu.function_code} {getattr(pdu, 'address', '')} {getattr(pdu, 'count', '')}"
        if pdu.dev_id not in self.units:
            return str(pdu.dev_id), what, None
        response = self.loop.run_until_complete(
            pdu.datastore_update(self.context, pdu.dev_id)
        )
        return str(pdu.dev_id), what, self.framer.buildFrame(response)

    def serve(self, stop):
        while not stop[0]:
            self.receive(0.1)
            while (taken := self.take()) is not None:
                proto, used, request = taken
                raw, arrived = bytes(self.buf[:used]), self.times[0]
                self.drop(used)
                who, what, out = self.answer(proto, request)
                answered = None
                if out is not None:
                    time.sleep(self.delay)
                    # Whatever came meanwhile was sent while this answer
                    # was outstanding.
                    while self.receive(0):
                        pass
                    pending = len(self.buf)
                    os.write(self.fd, out)
                    answered = time.monotonic()
                else:
                    pending = len(self.buf)
                print(
                    json.dumps(
                        {
                            "proto": proto,
                            "who": who,
                            "what": what,
                            "request": raw.hex(),
                            "arrived": arrived,
                            "answered": answered,
                            "pending": pending,
                        }
                    ),
                    flush=True,
                )


def main(spec):
    stop = [False]

    def on_signal(*_):
        stop[0] = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    bus = Bus(spec)
    print(f"ready serial {spec['serial']}", flush=True)
    bus.serve(stop)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: mixed_bus.py SPEC_JSON")
    main(json.loads(sys.argv[1]))
