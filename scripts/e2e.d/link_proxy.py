"""A client's emulated mobile link beyond what `tc tbf` shapes: latency and cuts.

Listens on a loopback port inside the client's network namespace and relays each connection to
the coordinator over the namespace's shaped veth (the token bucket there meters the rate).

- Latency: every chunk is held RTT/2 in each direction (pipelined: the hold is a delay, not a
  rate), and a new connection waits one RTT before its first byte moves, as a TCP handshake
  over the emulated path would.
- Cuts: each direction of a connection is reset (RST to both ends) after an exponentially
  distributed number of bytes whose mean is what that direction's rate moves in 60/c seconds,
  so cuts arrive as a Poisson process at c per minute of transfer: the simulator's outage
  model (`outagesPerHour` = 60·c while a transfer runs). Besides, an upload append (a request
  whose head starts `PATCH `) is cut with probability p after a uniform random number of its
  body bytes, so resumed uploads happen at all (a 22 kB frame is too short for the rate-based
  cuts to hit it often). Seeded; each cut is logged.

Usage: link_proxy.py --listen PORT --upstream HOST:PORT --rtt-ms R --up-mbit U --down-mbit D
                     [--cuts-per-minute C] [--append-cut-probability P] [--seed S] [--log FILE]
"""
import argparse
import asyncio
import random
import socket
import struct
import sys
import time

# Bytes a direction may hold before it stops reading (back-pressure toward the sender).
HOLD_LIMIT = 1 << 20


class Cut(Exception):
    pass


class Connection:
    def __init__(self, number, args, log):
        self.number = number
        self.args = args
        self.log = log
        # One generator per connection: its cuts depend on the seed and its number, not on how
        # the other connections' events interleaved.
        rng = random.Random(f"{args.seed}/{number}")
        self.rng = rng
        self.moved = {"up": 0, "down": 0}
        self.received = {"up": 0, "down": 0}
        self.reason = {"up": "rate", "down": "rate"}
        self.limit = {}
        for direction, mbit in (("up", args.up_mbit), ("down", args.down_mbit)):
            if args.cuts_per_minute > 0:
                mean_bytes = mbit * 1e6 / 8 * 60 / args.cuts_per_minute
                self.limit[direction] = int(rng.expovariate(1 / mean_bytes))
            else:
                self.limit[direction] = None
        self.writers = []
        self.cut = False

    def reset(self, direction):
        if self.cut:
            return
        self.cut = True
        self.log(f"cut connection={self.number} kind={self.reason[direction]} direction={direction} after_bytes={self.moved[direction]} "
                 f"up={self.moved['up']} down={self.moved['down']}")
        for w in self.writers:
            sock = w.get_extra_info("socket")
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            w.transport.abort()

    def maybe_cut_append(self, data):
        """With the append-cut probability, moves the upstream cut into this PATCH's body."""
        if not data.startswith(b"PATCH ") or self.rng.random() >= self.args.append_cut_probability:
            return
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return
        length = 0
        for line in data[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or 0)
        if length < 1:
            return
        at = self.received["up"] + end + 4 + self.rng.randrange(length)
        if self.limit["up"] is None or at < self.limit["up"]:
            self.limit["up"] = at
            self.reason["up"] = "append"

    async def pump(self, reader, writer, direction, delay):
        """Relays one direction with a fixed hold, honouring the cut threshold."""
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()
        held = 0
        room = asyncio.Event()
        room.set()

        async def receive():
            nonlocal held
            while True:
                await room.wait()
                data = await reader.read(65536)
                if direction == "up":
                    self.maybe_cut_append(data)
                self.received[direction] += len(data)
                queue.put_nowait((loop.time() + delay, data))
                if not data:
                    return
                held += len(data)
                if held >= HOLD_LIMIT:
                    room.clear()

        async def send():
            nonlocal held
            while True:
                due, data = await queue.get()
                pause = due - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                held -= len(data)
                if held < HOLD_LIMIT:
                    room.set()
                limit = self.limit[direction]
                if limit is not None and self.moved[direction] + len(data) >= limit:
                    head = data[: limit - self.moved[direction]]
                    self.moved[direction] += len(head)
                    writer.write(head)
                    await writer.drain()
                    self.reset(direction)
                    raise Cut()
                self.moved[direction] += len(data)
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.ensure_future(receive()), asyncio.ensure_future(send())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()


class Proxy:
    def __init__(self, args):
        self.args = args
        self.count = 0
        self.cuts = 0
        self.started = time.monotonic()
        self.log_file = open(args.log, "a", buffering=1) if args.log else sys.stderr

    def log(self, text):
        self.log_file.write(f"{time.monotonic() - self.started:9.3f} {text}\n")

    async def handle(self, client_reader, client_writer):
        self.count += 1
        c = Connection(self.count, self.args, self.log)
        host, port = self.args.upstream.rsplit(":", 1)
        try:
            server_reader, server_writer = await asyncio.open_connection(host, int(port))
        except OSError as e:
            self.log(f"connection={c.number} upstream refused: {e}")
            client_writer.transport.abort()
            return
        c.writers = [client_writer, server_writer]
        rtt = self.args.rtt_ms / 1000
        # The emulated handshake: one round trip before the first byte moves.
        await asyncio.sleep(rtt)
        pumps = [asyncio.ensure_future(c.pump(client_reader, server_writer, "up", rtt / 2)),
                 asyncio.ensure_future(c.pump(server_reader, client_writer, "down", rtt / 2))]
        opened = time.monotonic()
        pending = set(pumps)
        ends = []
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                e = t.exception()
                ends.append(("up" if t is pumps[0] else "down") + ":" + (type(e).__name__ if e else "eof"))
            if any(t.exception() is not None for t in done):
                break
        for t in pending:
            t.cancel()
        for w in c.writers:
            if c.cut:
                w.transport.abort()
            else:
                w.close()
        if c.cut:
            self.cuts += 1
        self.log(f"closed connection={c.number} up={c.moved['up']} down={c.moved['down']} "
                 f"seconds={time.monotonic() - opened:.3f} ends={','.join(ends)}")

    async def serve(self):
        server = await asyncio.start_server(self.handle, "127.0.0.1", self.args.listen)
        self.log(f"listening port={self.args.listen} upstream={self.args.upstream} rtt_ms={self.args.rtt_ms} "
                 f"cuts_per_minute={self.args.cuts_per_minute} seed={self.args.seed}")
        async with server:
            await server.serve_forever()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--rtt-ms", type=float, required=True)
    p.add_argument("--up-mbit", type=float, required=True)
    p.add_argument("--down-mbit", type=float, required=True)
    p.add_argument("--cuts-per-minute", type=float, default=0)
    p.add_argument("--append-cut-probability", type=float, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log")
    asyncio.run(Proxy(p.parse_args()).serve())


if __name__ == "__main__":
    main()
