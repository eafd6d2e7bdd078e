"""Chat load generator: N chatters in one room of a golive server, M messages/s into it, and the
delivery latency of every message to every receiver (`python -m bench.chat_load --port P`).

It runs in a process of its own (bench/chat.py starts it) so that its CPU is its own and the
server's is the server's. It speaks the wire contract of `GET /chat/<name>` (README, "Chat and
interaction") over raw asyncio Protocols on uvloop: the WebSocket client handshake and framing
(RFC 6455: client frames masked, server frames not) are a few dozen lines, and owning them is
what makes 250k received objects/s affordable in Python on a core that the server shares:

- A received frame costs a few dict and array operations, never a JSON decode: the send time
  is in each message's text (`cb:<seq>:<monotonic ns>`, the same host's CLOCK_MONOTONIC), found
  by a compiled regex over the frame's payload. The room sends one batch to every member, so
  the same payload bytes reach thousands of clients: a small cache keyed by the payload maps it
  to its parsed contents (the regex runs once per distinct payload), and each reception only
  appends (frame id, arrival ns) to two arrays of its client. Every reception is still its own:
  latency, loss and duplicates are computed from them after the run, with numpy, over all
  receivers and all messages (not a sample).
- Only the first frames (the welcome, or a refusal) and frames holding an `error` object are
  json-decoded.

Protocol of a run: connect `--clients` chatters gradually (`--connect-rate` per second), each
from one of several loopback source addresses (127.0.x.y, `--per-address` chatters each, so
they look like many households), each joining with a distinct name; when all have a welcome
(or failed), print `{"event": "joined"}`, then send `--rate` messages/s for `--seconds` (0:
until a line `stop` or EOF on stdin), each from the next of a rotating set of senders sized so
that none exceeds `--user-rate` messages/s (the room's per-user limit, with a margin), printing
`{"event": "sending", "t": ...}` and `{"event": "sent", "t": ...}` around the sending (times in
CLOCK_MONOTONIC seconds, so the caller can measure the server's CPU over the same window).
After the last send it waits until deliveries stop, then prints the report as one JSON object
with `"event": "report"` (figures in it are documented in `Load.report`).

A client that joined before the first send and was still connected after the last is one that
"kept up": it must have received every message the server accepted (sent minus those the
server refused with an `error` to the sender). A client the server closed (1013 too slow, or
anything else) is counted apart, by close code, and its losses are not counted as lost.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import math
import os
import re
import resource
import sys
import time
from array import array
from collections import Counter
from typing import Any, cast

import numpy as np

MARK = re.compile(rb"cb:(\d+):(\d+)")  # a bench message's text: cb:<seq>:<send monotonic ns>
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
CACHE_LIMIT = 4096  # distinct payloads remembered: a few batches' worth at any room size

# client states
HANDSHAKE, JOINING, JOINED, CLOSED = range(4)


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame, masked as RFC 6455 requires of clients (5.3): the XOR runs on
    two big integers rather than byte by byte, since the joins and sends go through here."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    if not n:
        return head + mask
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return head + mask + (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


def text_frame(obj: dict[str, Any]) -> bytes:
    return client_frame(0x1, json.dumps(obj, separators=(",", ":")).encode())


def source_address(index: int) -> str:
    """The `index`-th loopback source address: 127.0.0.2, ..., 127.0.0.251, 127.0.1.2, ...
    (all of 127/8 is loopback on Linux; each address has its own ephemeral ports)."""
    return f"127.{index // 62500 % 250}.{index // 250 % 250}.{index % 250 + 2}"


Entry = tuple[int, int, tuple[str, ...]]  # (frame id or -1, bench messages, error codes)


class Frames:
    """The parsed contents of every distinct received payload: frame id -> its bench messages
    (seq, send ns) as slices of two flat arrays, and the error codes it carries."""

    def __init__(self) -> None:
        self.start = array("q")  # frame id -> first index in seq/sent
        self.count = array("q")  # frame id -> how many bench messages
        self.seq = array("q")
        self.sent = array("q")
        self.cache: dict[bytes, Entry] = {}
        self.parsed = 0  # payloads that missed the cache and went through the regex
        self.decoded = 0  # payloads json-decoded (those with an error object)

    def lookup(self, payload: bytes) -> Entry:
        """(frame id or -1, bench messages in it, error codes) of one message's payload."""
        entry = self.cache.get(payload)
        if entry is None:
            entry = self._parse(payload, [payload])
        return entry

    def chunk(self, data: bytes) -> Entry | None:
        """The same for a whole read that is nothing but complete, unfragmented text frames
        (the usual case): keyed by the read's bytes, so a repeated read needs no framing at
        all. None when the read holds anything else (the caller frames it)."""
        payloads = []
        pos, size = 0, len(data)
        while pos < size:
            if size - pos < 2 or data[pos] != 0x81:
                return None
            length, head = data[pos + 1], 2
            if length == 126:
                length, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                length, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
            if length & 0x80 or pos + head + length > size:
                return None  # masked (a server must not) or incomplete
            payloads.append(data[pos + head : pos + head + length])
            pos += head + length
        return self._parse(data, payloads)

    def _parse(self, key: bytes, payloads: list[bytes]) -> Entry:
        self.parsed += 1
        marks = [m for payload in payloads for m in MARK.findall(payload)]
        errors: tuple[str, ...] = ()
        for payload in payloads:
            if b'"error"' in payload:
                errors += self._errors(payload)
        fid = -1
        if marks:
            fid = len(self.start)
            self.start.append(len(self.seq))
            self.count.append(len(marks))
            for seq, sent in marks:
                self.seq.append(int(seq))
                self.sent.append(int(sent))
        entry = (fid, len(marks), errors)
        if len(self.cache) >= CACHE_LIMIT:
            del self.cache[next(iter(self.cache))]  # the oldest: batches do not come back
        self.cache[key] = entry
        return entry

    def _errors(self, payload: bytes) -> tuple[str, ...]:
        self.decoded += 1
        try:
            decoded = json.loads(payload)
        except ValueError:
            return ("undecodable",)
        objects = decoded if isinstance(decoded, list) else [decoded]
        return tuple(
            str(o.get("code")) for o in objects if isinstance(o, dict) and o.get("type") == "error"
        )


class Chatter(asyncio.Protocol):
    """One WebSocket chat client: handshake, join, then count what arrives."""

    def __init__(self, load: Load, index: int) -> None:
        self.load = load
        self.index = index
        self.name = f"chatter {index}"
        self.state = HANDSHAKE
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.fragments: list[bytes] = []  # a fragmented message's frames so far (rare)
        self.key = base64.b64encode(os.urandom(16))
        self.connected_at = 0
        self.joined_at = 0  # monotonic ns of the welcome
        self.fids = array("q")  # per reception: frame id ...
        self.arrivals = array("q")  # ... and monotonic ns of its arrival
        self.objects = 0  # bench messages received
        self.errors: Counter[str] = Counter()
        self.close_code: int | None = None  # the server's close code, when it closed
        self.failure: str | None = None  # why the join failed
        self.joined = load.loop.create_future()

    # ---- asyncio.Protocol ----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but are one
        self.transport = cast(asyncio.Transport, transport)
        self.connected_at = time.monotonic_ns()
        load = self.load
        self.transport.write(
            b"GET /chat/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
            b"\r\n" % (load.room.encode(), load.port, self.key)
        )

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if self.state == JOINED and not self.buffer:
            # The fast path, where the generator spends its time: a read of whole text frames
            # seen before (the room's batch, as every member gets it) is one dict lookup.
            frames = self.load.frames
            entry = frames.cache.get(data) or frames.chunk(data)
            if entry is not None:
                self._received(entry, now)
                return
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        if self.state == HANDSHAKE:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = data
                return
            if not self._handshake(data[:end]):
                return
            data = data[end + 4 :]
        # any other read: frame by frame
        pos, size = 0, len(data)
        while size - pos >= 2:
            b0, length = data[pos], data[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                head = 10
            end = pos + head + length
            if end > size:
                break
            payload = data[pos + head : end]
            pos = end
            opcode = b0 & 0x0F
            if opcode == 0x1 and b0 & 0x80 and self.state == JOINED:
                self._received(self.load.frames.lookup(payload), now)
            else:
                self._other(opcode, bool(b0 & 0x80), payload, now)
            if self.state == CLOSED:
                return
        if pos < size:
            self.buffer = data[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state != CLOSED:
            self.state = CLOSED
            if self.close_code is None and not self.load.closing:
                self.close_code = 1006  # closed without a close frame
        if not self.joined.done():
            self.failure = self.failure or f"closed ({self.close_code})"
            self.joined.set_result(False)

    # ---- the rest of the protocol ----

    def _handshake(self, head: bytes) -> bool:
        status, _, rest = head.partition(b"\r\n")
        accept = base64.b64encode(hashlib.sha1(self.key + GUID).digest())
        headers = {}
        for line in rest.split(b"\r\n"):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if not status.startswith(b"HTTP/1.1 101") or headers.get(b"sec-websocket-accept") != accept:
            self._fail(f"handshake: {status.decode(errors='replace')}")
            return False
        self.state = JOINING
        self.send(text_frame({"type": "join", "name": self.name}))
        return True

    def _received(self, entry: Entry, now: int) -> None:
        fid, count, errors = entry
        if fid >= 0:
            self.fids.append(fid)
            self.arrivals.append(now)
            self.objects += count
        if errors:
            self.errors.update(errors)

    def _other(self, opcode: int, final: bool, payload: bytes, now: int) -> None:
        if opcode in (0x0, 0x1, 0x2):
            # a fragmented message (aiohttp does not fragment; the RFC allows it)
            self.fragments.append(payload)
            if not final:
                return
            payload, self.fragments = b"".join(self.fragments), []
            if self.state == JOINED:
                self._received(self.load.frames.lookup(payload), now)
            elif self.state == JOINING:
                self._join_answer(payload, now)
        elif opcode == 0x8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.send(client_frame(0x8, payload[:2]))
            self.close()
            if not self.joined.done():
                self._fail(f"closed ({self.close_code})")
        elif opcode == 0x9:
            self.send(client_frame(0xA, payload))

    def _join_answer(self, payload: bytes, now: int) -> None:
        try:
            decoded = json.loads(payload)
        except ValueError:
            self._fail("undecodable first frame")
            return
        for obj in decoded if isinstance(decoded, list) else [decoded]:
            kind = obj.get("type") if isinstance(obj, dict) else None
            if kind == "welcome":
                self.state = JOINED
                self.joined_at = now
                self.joined.set_result(True)
            elif kind == "error":
                self._fail(f"refused: {obj.get('code')}")
                return

    def _fail(self, why: str) -> None:
        self.failure = why
        if not self.joined.done():
            self.joined.set_result(False)
        self.close()

    def send(self, frame: bytes) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(frame)
        return True

    def close(self) -> None:
        self.state = CLOSED
        if self.transport is not None:
            self.transport.close()


class Load:
    """One run: connect, join, send, drain, report."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.loop = asyncio.get_running_loop()
        self.host: str = args.host
        self.port: int = args.port
        self.room: str = args.room
        self.frames = Frames()
        self.chatters: list[Chatter] = []
        self.closing = False
        self.senders: list[Chatter] = []
        self.sent = 0
        self.unsent = 0  # sends skipped because the sender's connection was gone
        self.lag: list[float] = []  # event-loop lateness samples in the window, seconds

    async def connect(self, index: int) -> None:
        chatter = Chatter(self, index)
        self.chatters.append(chatter)
        source = source_address(index // self.args.per_address)
        try:
            await self.loop.create_connection(
                lambda: chatter, self.host, self.port, local_addr=(source, 0)
            )
        except OSError as exc:
            chatter.failure = f"connect: {exc.strerror or exc}"
            chatter.state = CLOSED
            if not chatter.joined.done():
                chatter.joined.set_result(False)

    async def join_all(self) -> float:
        """Connect every chatter at the connect rate; wait for every welcome (or refusal)."""
        args = self.args
        started = time.monotonic()
        tasks = []
        for index in range(args.clients):
            delay = started + index / args.connect_rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.connect(index)))
        await asyncio.gather(*tasks)
        pending = [c.joined for c in self.chatters if not c.joined.done()]
        if pending:
            await asyncio.wait(pending, timeout=args.join_timeout)
        for chatter in self.chatters:
            if not chatter.joined.done():
                chatter._fail("no welcome in time")
        return time.monotonic() - started

    def pick_senders(self) -> list[Chatter]:
        """Enough joined chatters that each sends at most half the per-user rate (the limit is
        a token bucket: sends at exactly the limit would be refused at the first jitter)."""
        joined = [c for c in self.chatters if c.state == JOINED]
        wanted = max(1, math.ceil(self.args.rate / (self.args.user_rate * 0.5)))
        if joined and self.args.rate / min(wanted, len(joined)) > self.args.user_rate:
            emit({"event": "warning", "message": f"only {len(joined)} senders for "
                  f"{self.args.rate:g}/s: each sends more than the per-user limit"})
        # spread over the room (and so over the source addresses)
        step = max(1, len(joined) // wanted)
        return joined[::step][:wanted]

    async def send_all(self, stop: asyncio.Event) -> None:
        args = self.args
        senders = self.senders = self.pick_senders()
        if not senders:
            return
        started = time.monotonic()
        deadline = started + args.seconds if args.seconds > 0 else math.inf
        seq = 0
        while not stop.is_set():
            due = started + seq / args.rate
            if due >= deadline:
                break
            delay = due - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                continue
            sender = senders[seq % len(senders)]
            text = f"cb:{seq}:{time.monotonic_ns()}"
            if sender.send(text_frame({"type": "message", "text": text})):
                self.sent += 1
            else:
                self.unsent += 1
            seq += 1

    async def watch_lag(self, stop: asyncio.Event) -> None:
        """How late this process's event loop runs timers: if it is saturated, the latencies
        it measures are its own."""
        interval = 0.01
        while not stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(interval)
            self.lag.append(time.monotonic() - before - interval)

    async def drain(self, quiet: float, limit: float) -> None:
        """Wait until deliveries stop (nothing new for `quiet` seconds), at most `limit`."""
        deadline = time.monotonic() + limit
        last, still = -1, time.monotonic()
        while time.monotonic() < deadline:
            total = sum(c.objects for c in self.chatters)
            if total != last:
                last, still = total, time.monotonic()
            elif time.monotonic() - still >= quiet:
                return
            await asyncio.sleep(0.05)

    async def run(self) -> dict[str, Any]:
        args = self.args
        ramp = await self.join_all()
        joined = sum(1 for c in self.chatters if c.state == JOINED)
        emit({"event": "joined", "joined": joined, "clients": args.clients, "seconds": ramp})
        stop = asyncio.Event()
        stdin_task = asyncio.create_task(stop_on_stdin(stop)) if args.seconds <= 0 else None
        lag_stop = asyncio.Event()
        lag_task = asyncio.create_task(self.watch_lag(lag_stop))
        cpu0, t0 = own_cpu(), time.monotonic()
        emit({"event": "sending", "t": t0})
        await self.send_all(stop)
        cpu1, t1 = own_cpu(), time.monotonic()
        if stdin_task is not None:
            stdin_task.cancel()
        lag_stop.set()
        await lag_task
        emit({"event": "sent", "t": t1, "sent": self.sent})
        await self.drain(args.drain_quiet, args.drain_limit)
        self.closing = True
        cpu = [(after - before) / (t1 - t0) for before, after in zip(cpu0, cpu1, strict=True)]
        report = self.report(ramp, (t0, t1), cpu[0], cpu[1])
        for chatter in self.chatters:
            if chatter.state != CLOSED:
                chatter.send(client_frame(0x8, (1000).to_bytes(2, "big")))
                chatter.close()
        await asyncio.sleep(0.2)  # let the close frames go out
        return report

    def report(
        self, ramp: float, window: tuple[float, float], user: float, system: float
    ) -> dict[str, Any]:
        """The run's figures:

        joined / join_failed (reasons) / join_ms (connect to welcome, p50/p99); sent, unsent,
        refused (error codes the senders got back); accepted = sent - refused; kept_up: chatters
        joined throughout; lost: messages accepted but never received, summed over kept-up
        chatters (lost_clients: how many of them lost any); duplicates; dropped: chatters the
        server closed, by close code (too slow is 1013); latency_ms over every reception of
        every message by every chatter; frames and cache figures; cpu: this process's
        user+sys over the sending window, in cores (and each apart); loop_lag_ms: how late
        its event loop ran a 10 ms timer.
        """
        chatters = self.chatters
        joined = [c for c in chatters if c.joined_at]
        kept_up = [c for c in joined if c.close_code is None and c.state == JOINED]
        dropped = Counter(str(c.close_code) for c in joined if c.close_code is not None)
        failed = Counter(c.failure for c in chatters if not c.joined_at)
        errors: Counter[str] = Counter()
        for chatter in chatters:
            errors.update(chatter.errors)
        # Errors a sender got back are its refused messages (rate_limited, slow_mode, ...);
        # the bench sends nothing else that could be refused.
        refused = sum(errors.values())
        accepted = self.sent - refused
        latencies, lost, lost_clients, duplicates, receptions = self._deliveries(
            kept_up, accepted
        )
        frames = sum(len(c.fids) for c in chatters)
        join_ms = [(c.joined_at - c.connected_at) / 1e6 for c in joined]
        lag = np.asarray(self.lag) * 1e3 if self.lag else np.zeros(1)
        return {
            "event": "report",
            "clients": len(chatters),
            "joined": len(joined),
            "join_failed": dict(failed),
            "join_ms": _points(np.asarray(join_ms), (50, 99)),
            "ramp_seconds": round(ramp, 2),
            "window": list(window),
            "rate": self.args.rate,
            "senders": len(self.senders),
            "sent": self.sent,
            "unsent": self.unsent,
            "refused": dict(errors),
            "accepted": accepted,
            "kept_up": len(kept_up),
            "receptions": receptions,
            "expected": accepted * len(kept_up),
            "lost": lost,
            "lost_clients": lost_clients,
            "duplicates": duplicates,
            "dropped": dict(dropped),
            "latency_ms": _points(latencies, (50, 95, 99, 100)),
            "frames": frames,
            "distinct_payloads": self.frames.parsed,
            "json_decoded": self.frames.decoded,
            "cpu": round(user + system, 4),
            "cpu_user": round(user, 4),
            "cpu_system": round(system, 4),
            "loop_lag_ms": _points(lag, (99, 100)),
        }

    def _deliveries(
        self, kept_up: list[Chatter], accepted: int
    ) -> tuple[np.ndarray, int, int, int, int]:
        """Latency of every reception (ms), and losses and duplicates, from the per-chatter
        (frame id, arrival) arrays: expanded to messages a chunk of chatters at a time, so
        that memory stays a few arrays of one chunk's receptions."""
        frames = self.frames
        start = np.frombuffer(frames.start, dtype=np.int64)
        count = np.frombuffer(frames.count, dtype=np.int64)
        seq = np.frombuffer(frames.seq, dtype=np.int64)
        sent = np.frombuffer(frames.sent, dtype=np.int64)
        span = int(seq.max()) + 1 if len(seq) else 1
        kept = {id(c) for c in kept_up}
        latencies: list[np.ndarray] = []
        lost = lost_clients = duplicates = receptions = 0
        chunk = 256
        for first in range(0, len(self.chatters), chunk):
            group = self.chatters[first : first + chunk]
            fids = np.concatenate(
                [np.frombuffer(c.fids, dtype=np.int64) for c in group] + [np.zeros(0, np.int64)]
            )
            arrivals = np.concatenate(
                [np.frombuffer(c.arrivals, dtype=np.int64) for c in group]
                + [np.zeros(0, np.int64)]
            )
            owner = np.repeat(np.arange(len(group)), [len(c.fids) for c in group])
            counts = count[fids]
            # message index of every (reception, message in its frame)
            offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            message = np.repeat(start[fids], counts) + offsets
            latencies.append(((np.repeat(arrivals, counts) - sent[message]) / 1e6).astype(
                np.float32))
            who = np.repeat(owner, counts)
            receptions += len(message)
            unique = np.unique(who * span + seq[message])
            duplicates += len(message) - len(unique)
            got = np.bincount(unique // span, minlength=len(group))
            for chatter, received in zip(group, got, strict=True):
                if id(chatter) in kept and received < accepted:
                    lost += accepted - int(received)
                    lost_clients += 1
        return (
            np.concatenate([*latencies, np.zeros(0, np.float32)]),
            lost, lost_clients, duplicates, receptions,
        )


def _points(values: np.ndarray, points: tuple[float, ...]) -> dict[str, float] | None:
    if not len(values):
        return None
    figures = np.percentile(values, points)
    names = ["max" if p == 100 else f"p{p:g}" for p in points]
    return {n: round(float(v), 2) for n, v in zip(names, figures, strict=True)}


def own_cpu() -> tuple[float, float]:
    """(user, system) CPU seconds of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


async def stop_on_stdin(stop: asyncio.Event) -> None:
    """With --seconds 0: send until the caller writes `stop` (or closes our stdin)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip() == b"stop":
            break
    stop.set()


def emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


def raise_file_limit() -> None:
    """One descriptor per chatter: take the hard limit (20000 on the bench machine)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chat_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="golive's HTTP port")
    parser.add_argument("--room", default="bench", help="the stream whose room to join")
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--connect-rate", type=float, default=500.0, help="connections/s")
    parser.add_argument("--per-address", type=int, default=16,
                        help="chatters per loopback source address")
    parser.add_argument("--rate", type=float, default=50.0, help="messages/s into the room")
    parser.add_argument("--user-rate", type=float, default=0.5,
                        help="the room's per-user limit, messages/s (5 per 10 s by default)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="sending time; 0: until `stop` on stdin")
    parser.add_argument("--join-timeout", type=float, default=30.0)
    parser.add_argument("--drain-quiet", type=float, default=1.0,
                        help="after the last send, stop when nothing arrived for this long")
    parser.add_argument("--drain-limit", type=float, default=10.0)
    return parser.parse_args(argv)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    return await Load(args).run()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    raise_file_limit()
    try:
        import uvloop
    except ImportError:
        report = asyncio.run(amain(args))
    else:
        report = uvloop.run(amain(args))
    emit(report)


if __name__ == "__main__":
    main()
