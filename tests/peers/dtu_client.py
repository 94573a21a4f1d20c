"""A software 4G DTU for tests: dials in to the gateway, announces itself
with a registration packet, then relays bytes both ways between the
gateway and a Modbus RTU-over-TCP server (pymodbus), as a DTU in
transparent mode relays between its TCP link and its RS-485 port.

Why our own: no DTU emulator exists for Python or Rust (fieldbus.md §5),
and the gateway's DTU side must be tested against bytes it did not produce,
with the registration and heartbeat habits of real DTUs (fieldbus.md §4).
Standard library only.

Usage:
    dtu_client.py --gateway HOST:PORT --upstream HOST:PORT
                  (--registration TEXT | --registration-hex HEX)
                  [--every-packet] [--heartbeat HEX --heartbeat-every SECONDS]

--every-packet  the registration is also put in front of every answer sent
                to the gateway (USR "data", HF2411 "both"); it is sent on
                connect in every mode, so the gateway knows the DTU before
                the first request.
--heartbeat     sent every --heartbeat-every seconds whatever the traffic
                (between answers), and right before every third answer in
                the same packet, and before every third answer in a packet
                of its own: the gateway must strip it wherever it comes
                between frames.

The first dial is retried for 10 s (the gateway may still be starting);
after the gateway closes the link the client does not dial again, so a
test sees each replacement or refusal exactly once.

Answers from the server are relayed as whole RTU frames (the DTU's packing),
so a heartbeat never lands inside one. Prints "ready" once connected and
registered, "closed by gateway" when the gateway closes the link (then
idles); exits on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import signal
import sys


def address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def rtu_frames(buf):
    """Splits whole RTU answer frames off the front of buf; returns
    (frames, rest). Bytes that start no read answer or exception are passed
    on as they are (the gateway must cope with them)."""
    frames = []
    while len(buf) >= 2:
        fc = buf[1]
        if fc & 0x80:
            need = 5
        elif 1 <= fc <= 4:
            if len(buf) < 3:
                break
            need = 5 + buf[2]
        else:
            frames.append(bytes(buf))
            return frames, bytearray()
        if len(buf) < need:
            break
        frames.append(bytes(buf[:need]))
        del buf[:need]
    return frames, buf


class Dtu:
    def __init__(self, args):
        self.args = args
        if args.registration_hex is not None:
            self.registration = bytes.fromhex(args.registration_hex)
        else:
            self.registration = args.registration.encode()
        self.heartbeat = bytes.fromhex(args.heartbeat) if args.heartbeat else None
        self.answers = 0
        self.lock = asyncio.Lock()
        self.gw_writer = None

    async def send(self, data):
        async with self.lock:
            self.gw_writer.write(data)
            await self.gw_writer.drain()

    async def answer(self, frame):
        """One answer to the gateway, with the prefix and heartbeats."""
        if self.args.every_packet:
            frame = self.registration + frame
        self.answers += 1
        if self.heartbeat is not None and self.answers % 3 == 0:
            frame = self.heartbeat + frame
        elif self.heartbeat is not None and self.answers % 3 == 1:
            await self.send(self.heartbeat)
        await self.send(frame)

    async def from_gateway(self, reader, up_writer):
        while True:
            try:
                data = await reader.read(4096)
            except OSError as e:
                # A close with our heartbeats unread in the gateway's
                # buffer arrives as a reset.
                print(f"closed by gateway ({e})", flush=True)
                return
            if not data:
                print("closed by gateway", flush=True)
                return
            up_writer.write(data)
            await up_writer.drain()

    async def from_upstream(self, reader):
        buf = bytearray()
        while True:
            data = await reader.read(4096)
            if not data:
                print("upstream closed", flush=True)
                return
            buf.extend(data)
            frames, buf = rtu_frames(buf)
            for frame in frames:
                await self.answer(frame)

    async def heartbeats(self):
        while True:
            await asyncio.sleep(self.args.heartbeat_every)
            try:
                await self.send(self.heartbeat)
            except OSError:
                return

    async def dial(self):
        """Dials the gateway until it answers (for 10 s), as a DTU redials."""
        for _ in range(200):
            try:
                return await asyncio.open_connection(*address(self.args.gateway))
            except OSError:
                await asyncio.sleep(0.05)
        return await asyncio.open_connection(*address(self.args.gateway))

    async def run(self):
        up_reader, up_writer = await asyncio.open_connection(*address(self.args.upstream))
        gw_reader, self.gw_writer = await self.dial()
        await self.send(self.registration)
        print("ready", flush=True)
        tasks = [
            asyncio.create_task(self.from_gateway(gw_reader, up_writer)),
            asyncio.create_task(self.from_upstream(up_reader)),
        ]
        if self.heartbeat is not None and self.args.heartbeat_every > 0:
            tasks.append(asyncio.create_task(self.heartbeats()))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([tasks[0], tasks[1], stopper], return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        self.gw_writer.close()
        up_writer.close()
        # Closed or not, it runs until told to stop (the test's lifecycle).
        await stopper


def main():
    p = argparse.ArgumentParser(description="a software DTU for tests")
    p.add_argument("--gateway", required=True, help="HOST:PORT of the gateway's [dtu] listen")
    p.add_argument("--upstream", required=True, help="HOST:PORT of an RTU-over-TCP server")
    reg = p.add_mutually_exclusive_group(required=True)
    reg.add_argument("--registration", help="registration packet as text")
    reg.add_argument("--registration-hex", help="registration packet as hex")
    p.add_argument("--every-packet", action="store_true")
    p.add_argument("--heartbeat", help="heartbeat packet as hex")
    p.add_argument("--heartbeat-every", type=float, default=0.0)
    args = p.parse_args()
    asyncio.run(Dtu(args).run())


if __name__ == "__main__":
    sys.exit(main())
