"""golive's server as the ingest benchmark runs it: open mode on 127.0.0.1, plus one subscriber
on every stream that records when each MediaUnit reaches it.

    python -m bench.ingest_server --rtmp-port 0 --http-port 0 [--profile FILE]

Prints one JSON line {"event": "ready", "pid", "rtmp_port", "http_port"} once listening. On
SIGTERM/SIGINT, a line "dump" on stdin, or stdin closing (the benchmark went away), it prints
one JSON line {"event": "dump", "streams": [...]} with every stream's arrival times
(time.monotonic(): CLOCK_MONOTONIC is system-wide, so the publishers' clock is the same) and
exits. The subscriber stands in for the HLS packager: it is the first consumer downstream of
ingest, so a unit's arrival there is when ingest has delivered it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import signal
import sys
import time
from typing import Any

from golive.config import Config
from golive.hub import LiveStream, StreamEnded, Subscription
from golive.ingest.config import IngestConfig
from golive.media import MediaUnit
from golive.origin.config import HttpConfig
from golive.server import Server, run_event_loop
from golive.transcode.config import TranscodeConfig

# Deep enough that a subscriber never drops at flood speed: a drop would look like a lost unit.
SUBSCRIBER_CAPACITY = 1 << 20


class ArrivalRecorder:
    """Subscribes to every stream that starts and timestamps each unit as it is consumed."""

    def __init__(self, server: Server) -> None:
        self.records: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        server.hub.on_publish(self._on_publish)

    def _on_publish(self, stream: LiveStream) -> None:
        times: list[float] = []
        subscription = stream.subscribe("bench", capacity=SUBSCRIBER_CAPACITY)
        record = {
            "name": stream.name,
            "session": stream.session_id,
            "times": times,
            "subscription": subscription,
        }
        self.records.append(record)
        task = asyncio.get_running_loop().create_task(self._consume(subscription, times))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _consume(subscription: Subscription, times: list[float]) -> None:
        monotonic = time.monotonic
        append = times.append
        try:
            while True:
                item = await subscription.get()
                if type(item) is MediaUnit:
                    append(monotonic())
                # Take whatever else one read of the socket delivered without awaiting again.
                while (item := subscription.get_nowait()) is not None:
                    if type(item) is MediaUnit:
                        append(monotonic())
        except StreamEnded:
            return

    def dump(self) -> dict[str, Any]:
        streams = []
        for record in self.records:
            subscription: Subscription = record["subscription"]
            streams.append(
                {
                    "name": record["name"],
                    "session": record["session"],
                    "times": record["times"],
                    "dropped": subscription.dropped,
                    "pending": subscription.pending,
                }
            )
        return {"event": "dump", "streams": streams}


async def run(rtmp_port: int, http_port: int, subscribe: bool = True) -> None:
    config = Config(
        ingest=IngestConfig(
            host="127.0.0.1",
            port=rtmp_port,
            open=True,
            # 800 publishers connecting at once must not be refused
            max_connections=4000,
            handshake_timeout=30.0,
        ),
        http=HttpConfig(host="127.0.0.1", port=http_port),
        # Ingest and packaging measured in this process: no transcode workers beside it
        # taking the cores (they would only add noise; `bench.density` measures them).
        transcode=TranscodeConfig(enabled=False),
    )
    server = Server(config)
    recorder = ArrivalRecorder(server) if subscribe else None
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def on_stdin() -> None:
        line = sys.stdin.readline()
        if not line or line.strip() == "dump":  # EOF: whoever started us is gone
            stop.set()

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    _emit(
        {
            "event": "ready",
            "pid": os.getpid(),
            "rtmp_port": server.ingest.rtmp_port,
            "http_port": server.http_port,
        }
    )
    try:
        await stop.wait()
    finally:
        loop.remove_reader(sys.stdin.fileno())
        _emit(recorder.dump() if recorder else {"event": "dump", "streams": []})
        await server.close()


def _emit(message: dict[str, Any]) -> None:
    try:
        sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Nobody is reading any more (the benchmark is being torn down): just exit.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives until exit)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest_server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rtmp-port", type=int, default=0, help="0: any free port")
    parser.add_argument("--http-port", type=int, default=0, help="0: any free port")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument(
        "--no-subscriber",
        action="store_true",
        help="no recording subscriber: ingest alone (no latency figures)",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="run under cProfile (event-loop thread CPU time) and write the stats to FILE on exit",
    )
    args = parser.parse_args(argv)
    # Logs go to stderr; stdout carries only the JSON lines.
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    coro = run(args.rtmp_port, args.http_port, subscribe=not args.no_subscriber)
    if args.profile:
        # The event-loop thread's CPU clock, not wall time: with wall time, waiting in epoll
        # and waiting for the GIL (held by probe threads) after each recv/send would be
        # charged to those calls. The price: a system call per event, which inflates the
        # smallest functions. Worker threads (codec probes) are not seen; py-spy
        # (python -m bench.ingest flood --py-spy FILE) samples every thread at low cost.
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        try:
            run_event_loop(coro)
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
    else:
        run_event_loop(coro)


if __name__ == "__main__":
    main()
