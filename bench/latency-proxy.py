#!/usr/bin/env python3
"""Loopback TCP proxy that adds a fixed one-way delay in each direction.

  latency-proxy.py --target 127.0.0.1:PORT --delay-ms 25 --port-file F [--max-seconds 600]
                   [--turns-file T [--quiet-gap-ms 5]]

Every byte read from one side is written to the other DELAY ms after it was
read, order kept, no bandwidth cap: a long fat pipe of RTT = 2 x DELAY as seen
by request/response protocols. Listens on 127.0.0.1 (port 0; the chosen port
is written to --port-file). Exits after --max-seconds or on SIGTERM.

Copied from ../shared/tools/latency-proxy.py (so bench/ stands alone) and
given a turn counter: with --turns-file, it counts the turns of the
conversation over all connections, i.e. how often the byte flow starts
again in the other direction after the line was quiet for at least
--quiet-gap-ms (bytes that cross while both sides talk at once are no turn).
The first burst counts as a turn, so a conversation the client opens and
the server closes has 2 turns per round trip. It also counts the round
trips themselves: how often the client waited for an answer. A client
burst (bytes after ≥ --quiet-gap-ms of the client's quiet) starts a wait
unless one is open; the next server burst (after as much of the server's
quiet) read at least 0.8 × the delay after it ends the wait and counts one
round trip. So neither a greeting the server sends unasked at connect
(read before any client byte could have reached it) nor the client's last
word (a `Done` nobody answers) counts, whichever of the two greetings the
proxy reads first. Timestamps are taken where
the proxy reads the bytes, i.e. when each end sent them. On exit it writes
"turns N", "round_trips N" and the bursts (direction c>s or s>c, bytes,
ms since the first byte, bytes that crossed it) to the file, and "turns N"
to stderr. Where
both sides speak at once (the rsync daemon and sshd greet without waiting),
which of them is read first is a race: such counts vary by one turn. The TCP handshake is not
delayed (the proxy accepts on loopback and connects at once), so it costs
no round trip here, where it would cost one on a real network.
"""
import argparse
import asyncio
import signal
import sys
import time


class Turns:
    def __init__(self, gap, delay):
        self.gap = gap
        self.delay = delay
        self.last_dir = None
        self.last_t = None
        self.t0 = None
        self.bursts = []  # [direction, bytes, ms since t0, bytes the other way]
        self.last_of = {}  # direction -> when it last sent
        self.waiting = None  # when the client's unanswered burst started
        self.round_trips = 0

    def saw(self, direction, n):
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        fresh = now - self.last_of.get(direction, now - self.gap) >= self.gap
        self.last_of[direction] = now
        if fresh and direction == 'c>s' and self.waiting is None:
            self.waiting = now
        elif fresh and direction == 's>c' and self.waiting is not None \
                and now - self.waiting >= 0.8 * self.delay:
            self.round_trips += 1
            self.waiting = None
        quiet = self.last_t is None or now - self.last_t >= self.gap
        if direction != self.last_dir and quiet:
            self.bursts.append([direction, n, (now - self.t0) * 1000, 0])
            self.last_dir = direction
        elif self.bursts[-1][0] == direction:
            self.bursts[-1][1] += n
        else:  # crossing the burst, both sides talking at once
            self.bursts[-1][3] += n
        self.last_t = now


async def pump(reader, writer, delay, turns=None, direction=None):
    q = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await q.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass

    task = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            if turns is not None:
                turns.saw(direction, len(data))
            q.put_nowait((time.monotonic() + delay, data))
    except (ConnectionError, OSError):
        pass
    q.put_nowait((0, None))
    try:
        await task
    except (ConnectionError, OSError):
        pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--target', required=True)
    ap.add_argument('--delay-ms', type=float, default=25)
    ap.add_argument('--port-file', required=True)
    ap.add_argument('--max-seconds', type=float, default=600)
    ap.add_argument('--turns-file')
    ap.add_argument('--quiet-gap-ms', type=float, default=5)
    a = ap.parse_args()
    host, _, port = a.target.rpartition(':')
    delay = a.delay_ms / 1000.0
    turns = Turns(a.quiet_gap_ms / 1000.0, delay) if a.turns_file else None

    async def handle(cr, cw):
        try:
            sr, sw = await asyncio.open_connection(host, int(port))
        except OSError:
            cw.close()
            return
        try:
            await asyncio.gather(pump(cr, sw, delay, turns, 'c>s'), pump(sr, cw, delay, turns, 's>c'))
        except asyncio.CancelledError:  # still open when the proxy stops
            pass
        for w in (cw, sw):
            w.close()

    srv = await asyncio.start_server(handle, '127.0.0.1', 0)
    with open(a.port_file, 'w') as f:
        f.write(str(srv.sockets[0].getsockname()[1]))
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(1))
    try:
        await asyncio.wait_for(stop, a.max_seconds)
    except asyncio.TimeoutError:
        pass
    srv.close()
    if turns is not None:
        with open(a.turns_file, 'w') as f:
            f.write('turns %d\n' % len(turns.bursts))
            f.write('round_trips %d\n' % turns.round_trips)
            for d, n, ms, other in turns.bursts:
                f.write('%s %d %.1f%s\n' % (d, n, ms, ' (+%d the other way)' % other if other else ''))
        print("turns %d" % len(turns.bursts), file=sys.stderr)


asyncio.run(main())
