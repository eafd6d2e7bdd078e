"""A transcode worker process: runs the ladders of the streams the server assigns to it.

Started by the pool (`pool.py`) as `python -m golive.transcode.worker --fd N`, with one end of
a socket pair as its only channel (`wire.py`). One thread reads the channel and hands each
stream's units to that stream's own thread, which runs its `LadderPipeline`; rung threads send
the encoded units back. The reader never waits for a stream: a stream whose input queue is
full (its ladder is slower than real time) loses units up to its next IDR point, counted and
reported, so one overloaded stream does not hold up the others in the same worker.

Shutting down is the server's decision: a terminal's Ctrl-C reaches the whole process group,
so a worker ignores SIGINT and ends, with status 0, when the server closes its channel (the
server closes it once its streams are ended). SIGTERM keeps its default, an immediate quiet
end: aimed at a worker, it is a crash the pool restarts the worker after.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from typing import Any

if __name__ == "__main__":  # the worker process (never when merely imported)
    # Before the imports below, which take a while (asyncio, PyAV): a Ctrl-C while the worker
    # starts would print a KeyboardInterrupt traceback too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

from golive.media import MediaUnit, Track
from golive.transcode import wire
from golive.transcode.ladder import Rung
from golive.transcode.pipeline import EncoderSettings, LadderPipeline
from golive.transcode.shedding import Shedder

log = logging.getLogger("golive.transcode.worker")

# Source units waiting per stream: 12 s of 25 fps video, for bursts (a phone catching up
# after a network stall); a ladder behind real time sheds rungs long before (shedding.py).
INPUT_QUEUE = 300
STATS_INTERVAL = 1.0  # seconds between reports to the server


class _Channel:
    """The write side, shared by every thread that reports."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        data = wire.frame(message)
        with self._lock:
            try:
                self._stream.write(data)
                self._stream.flush()
            except (BrokenPipeError, ConnectionError, ValueError):
                pass  # the server is gone: the reader sees the end and stops us


class _StreamJob:
    """One stream's ladder, on a thread of its own."""

    def __init__(self, session: int, source: Track, rungs: tuple[Rung, ...],
                 settings: EncoderSettings, channel: _Channel) -> None:
        self.session = session
        self.channel = channel
        self.queue: queue.Queue[tuple[MediaUnit, bool] | None] = queue.Queue(INPUT_QUEUE)
        self.dropped = 0
        self._skipping = False
        self._thread = threading.Thread(target=self._run, args=(source, rungs, settings),
                                        name=f"stream {session}", daemon=True)
        self._thread.start()

    def offer(self, unit: MediaUnit, idr: bool) -> None:
        # After a loss, resume where the decoder and every rung can start over: a source
        # keyframe at which the packager starts a segment.
        if self._skipping:
            if not (idr and unit.keyframe):
                self.dropped += 1
                return
            self._skipping = False
        try:
            self.queue.put_nowait((unit, idr))
        except queue.Full:
            self.dropped += 1
            self._skipping = True

    def stop(self) -> None:
        # A full queue empties as the ladder works; one whose ladder failed never does.
        while self._thread.is_alive():
            try:
                self.queue.put(None, timeout=0.5)
                return
            except queue.Full:
                continue

    def _run(self, source: Track, rungs: tuple[Rung, ...], settings: EncoderSettings) -> None:
        session, channel = self.session, self.channel
        try:
            pipeline = LadderPipeline(
                source, rungs, settings,
                lambda rung, item: channel.send(("item", session, rung, item)))
        except Exception as exc:  # a codec libavcodec cannot decode, an encoder refusing
            log.exception("session %d: cannot start the ladder", session)
            channel.send(("failed", session, f"{type(exc).__name__}: {exc}"))
            return
        reported = time.monotonic()
        shedder = Shedder(tuple(e.rung.name for e in pipeline.encoders))
        frame_seconds = 1 / float(source.frame_rate or 30)
        media = 0.0
        try:
            while True:
                try:
                    item = self.queue.get(timeout=STATS_INTERVAL)
                except queue.Empty:  # idle: still judge the load and report
                    pass
                else:
                    if item is None:
                        break
                    pipeline.push(*item)
                    media = item[0].pts / 1000
                now = time.monotonic()
                backlog = self.queue.qsize() * frame_seconds
                change = shedder.update(backlog, media, now)
                if change is not None:
                    pipeline.set_encoding(*change)
                    channel.send(("shed", session, change[0], change[1], backlog))
                if now - reported >= STATS_INTERVAL:
                    reported = now
                    channel.send(("stats", session, pipeline.stats, self.dropped,
                                  self.queue.qsize()))
            pipeline.close()
        except Exception as exc:
            log.exception("session %d: the ladder failed", session)
            channel.send(("failed", session, f"{type(exc).__name__}: {exc}"))
            return
        channel.send(("stats", session, pipeline.stats, self.dropped, 0))
        channel.send(("stopped", session))


def serve(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    reader = sock.makefile("rb")
    channel = _Channel(sock.makefile("wb"))
    jobs: dict[int, _StreamJob] = {}
    while (message := wire.read(reader)) is not None:
        kind, session = message[0], message[1]
        if kind == "unit":
            job = jobs.get(session)
            if job is not None:
                job.offer(message[2], message[3])
        elif kind == "start":
            jobs[session] = _StreamJob(session, message[2], message[3], message[4], channel)
        elif kind == "stop":
            job = jobs.pop(session, None)
            if job is not None:
                job.stop()
    # The server closed the channel (or died): nobody wants the output any more.
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="golive transcode worker (started by golive)")
    parser.add_argument("--fd", type=int, required=True, help="the socket to the server")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s transcode-worker[{os.getpid()}] "
                               "%(message)s")
    serve(args.fd)


if __name__ == "__main__":
    main()
