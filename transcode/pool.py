"""The server's side of transcoding: a pool of worker processes and one session per stream.

Workers are plain subprocesses (`python -m golive.transcode.worker`) started when the first
stream needs one, each talking over its own socket pair. A stream is assigned to the worker
with the fewest source pixels per second already. Nothing here blocks the event loop:
writes go into the socket's asyncio buffer, and a session whose worker does not keep up (more
than MAX_BUFFERED bytes waiting) sheds units up to its next IDR point, counted.

A worker that dies is restarted; its sessions start again on the new process from their next
IDR point, and the packager is told so it can mark a discontinuity in the rung playlists.
Stopping is the server's: workers ignore SIGINT (`worker.py`), and once the server is shutting
down a worker that ends is not restarted; closing the channels ends the rest.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

from golive.media import MediaUnit, Track
from golive.transcode import wire
from golive.transcode.ladder import Rung
from golive.transcode.metrics import TranscodeMetrics
from golive.transcode.pipeline import EncoderSettings, PipelineStats

log = logging.getLogger("golive.transcode")

MAX_BUFFERED = 8 * 1024 * 1024  # bytes of units waiting for one worker: seconds of video
RESTART_DELAY = 1.0  # seconds before a crashed worker is started again


@dataclass(frozen=True, slots=True)
class SessionCallbacks:
    on_item: Callable[[str, Track | MediaUnit], None]  # a rung's track, then its units
    on_restart: Callable[[], None]  # the worker died: rung output continues after a gap
    on_stopped: Callable[[], None]  # everything the ladder will produce has arrived
    on_failed: Callable[[str], None]  # the ladder cannot run for this source
    on_shed: Callable[[str, bool], None]  # (rung, encoding): shed for load, or back


class TranscodeSession:
    """One stream's ladder in a worker, as the packager sees it."""

    def __init__(self, pool: TranscodePool, worker: _Worker, stream: str, source: Track,
                 rungs: tuple[Rung, ...], callbacks: SessionCallbacks) -> None:
        self.id = next(pool._ids)
        self.pool = pool
        self.worker = worker
        self.stream = stream
        self.source = source
        self.rungs = rungs
        self.callbacks = callbacks
        self.closed = False
        self.dropped = 0  # units this side dropped because the worker was behind
        self._skipping = False
        self._joining = False
        self.stats: PipelineStats | None = None
        self._reported: dict[str, tuple[int, int, float, float]] = {}
        self._worker_dropped = 0
        self.shed_rungs: set[str] = set()
        pool.metrics.start_stream(stream, [rung.name for rung in rungs])

    @property
    def load(self) -> int:
        rate = float(self.source.frame_rate or 30)
        return int(self.source.width * self.source.height * rate)

    def push(self, unit: MediaUnit, idr: bool) -> None:
        """A source video unit; `idr`: the packager starts a segment at it."""
        if self.closed:
            return
        if self._joining:  # opened mid-stream: nothing is lost before its first IDR point
            if not (idr and unit.keyframe):
                return
            self._joining = False
        if self._skipping:
            if not (idr and unit.keyframe):
                self._lose(1)
                return
            self._skipping = False
        if not self.worker.send(("unit", self.id, unit, idr), len(unit.data)):
            self._skipping = True
            self._lose(1)

    def _lose(self, count: int) -> None:
        if not self.dropped:
            log.warning("stream %s: the transcoder is behind real time; units are dropped "
                        "up to the next segment start", self.stream)
        self.dropped += count
        self.pool.metrics.shed_units.labels(self.stream, "server").inc(count)

    def _restarted(self) -> None:
        """The worker died and a new one took over: start again at an IDR point."""
        self._skipping = True
        self.stats = None  # the new process counts from zero
        self._reported.clear()
        self._worker_dropped = 0
        for rung in list(self.shed_rungs):  # the new process encodes every rung
            self._shed(rung, True, 0.0)
        self.worker.send(("start", self.id, self.source, self.rungs, self.pool.settings), 0)
        self.callbacks.on_restart()

    def close(self) -> None:
        """No more input: the worker drains the encoders, then `on_stopped` is called."""
        if self.closed:
            return
        self.closed = True
        self.worker.send(("stop", self.id), 0)
        self.pool.count_renditions(self.stream)

    def _shed(self, rung: str, encoding: bool, backlog: float) -> None:
        metrics = self.pool.metrics
        if encoding:
            self.shed_rungs.discard(rung)
            log.info("stream %s: the ladder keeps up again; rung %s is encoded again",
                     self.stream, rung)
        else:
            self.shed_rungs.add(rung)
            metrics.rung_sheds.labels(self.stream, rung).inc()
            log.warning("stream %s: the ladder is %.1f s behind real time; rung %s is shed "
                        "(its playlist lists gaps) until the load drops", self.stream,
                        backlog, rung)
        metrics.shed_rungs.labels(self.stream).set(len(self.shed_rungs))
        self.callbacks.on_shed(rung, encoding)

    def _report(self, stats: PipelineStats, dropped: int, depth: int) -> None:
        metrics = self.pool.metrics
        previous = self.stats
        self.stats = stats
        metrics.queue_depth.labels(self.stream).set(depth)
        before = previous.decoded if previous else 0
        metrics.frames_in.labels(self.stream, "source").inc(stats.decoded - before)
        errors = stats.decode_errors - (previous.decode_errors if previous else 0)
        if errors > 0:
            metrics.frames_dropped.labels(self.stream, "source").inc(errors)
        for name, rung in stats.rungs.items():
            frames, skipped, busy, media = self._reported.get(name, (0, 0, 0.0, 0.0))
            metrics.frames_out.labels(self.stream, name).inc(max(0, rung.frames_out - frames))
            if rung.frames_skipped > skipped:
                metrics.frames_dropped.labels(self.stream, name).inc(
                    rung.frames_skipped - skipped)
            if rung.busy_seconds > busy:
                metrics.encode_speed.labels(self.stream, name).set(
                    (rung.media_seconds - media) / (rung.busy_seconds - busy))
            self._reported[name] = (rung.frames_out, rung.frames_skipped, rung.busy_seconds,
                                    rung.media_seconds)
        if dropped > self._worker_dropped:
            metrics.shed_units.labels(self.stream, "worker").inc(dropped - self._worker_dropped)
        self._worker_dropped = dropped


class _Worker:
    """One worker process and its channel."""

    def __init__(self, pool: TranscodePool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.sessions: dict[int, TranscodeSession] = {}
        self.process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._backlog: list[bytes] = []  # messages sent before the process is up
        self._backlog_bytes = 0
        self._starting: asyncio.Task[None] | None = None
        self.closing = False

    @property
    def load(self) -> int:
        return sum(s.load for s in self.sessions.values())

    def ensure_started(self) -> None:
        if self.process is None and self._starting is None and not self.closing:
            self._starting = asyncio.get_running_loop().create_task(self._start(0.0))

    async def _start(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        ours, theirs = socket.socketpair()
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "golive.transcode.worker", "--fd", str(theirs.fileno()),
                "--log-level", logging.getLevelName(log.getEffectiveLevel()),
                pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        log.info("transcode worker %d started (pid %d)", self.index, self.process.pid)
        self._starting = None
        for data in self._backlog:
            self._writer.write(data)
        self._backlog.clear()
        self._backlog_bytes = 0
        self._reader_task = asyncio.get_running_loop().create_task(
            self._read(reader), name=f"transcode worker {self.index}")

    def send(self, message: tuple[object, ...], size: int) -> bool:
        """Queue a message; False when a unit of `size` bytes would overfill the buffer."""
        writer = self._writer
        buffered = (writer.transport.get_write_buffer_size() if writer is not None
                    else self._backlog_bytes)
        if size and buffered > MAX_BUFFERED:
            return False
        data = wire.frame(message)
        if writer is None or writer.is_closing():
            self._backlog.append(data)
            self._backlog_bytes += len(data)
            self.ensure_started()
        else:
            writer.write(data)
        return True

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while (message := await wire.read_async(reader)) is not None:
            kind, session_id = message[0], message[1]
            session = self.sessions.get(session_id)
            if session is None:
                continue
            try:
                if kind == "item":
                    session.callbacks.on_item(message[2], message[3])
                elif kind == "stats":
                    session._report(message[2], message[3], message[4])
                elif kind == "shed":
                    session._shed(message[2], message[3], message[4])
                elif kind == "stopped":
                    del self.sessions[session_id]
                    session.callbacks.on_stopped()
                elif kind == "failed":
                    del self.sessions[session_id]
                    self.pool.count_renditions(session.stream)
                    session.callbacks.on_failed(message[2])
            except Exception:
                log.exception("stream %s: transcoder output not taken", session.stream)
        await self._died()

    async def _died(self) -> None:
        process = self.process
        code = await process.wait() if process is not None else None
        self.process = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.closing:
            return
        self.pool.metrics.worker_restarts.inc()
        log.error("transcode worker %d died (exit status %s); restarting it for %d stream(s)",
                  self.index, code, len(self.sessions))
        self._backlog.clear()
        self._backlog_bytes = 0
        self._starting = asyncio.get_running_loop().create_task(self._start(RESTART_DELAY))
        for session in list(self.sessions.values()):
            if session.closed:  # it was draining: what it had is lost
                del self.sessions[session.id]
                session.callbacks.on_stopped()
            else:
                session._restarted()

    async def close(self) -> None:
        self.closing = True
        if self._starting is not None:
            self._starting.cancel()
        if self._writer is not None:
            self._writer.close()
        if self.process is not None:
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader_task is not None:
            self._reader_task.cancel()


class TranscodePool:
    def __init__(self, workers: int, settings: EncoderSettings,
                 metrics: TranscodeMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._ids = itertools.count(1)
        self.workers = [_Worker(self, index) for index in range(max(1, workers))]

    @staticmethod
    def default_size() -> int:
        """One worker per core: each runs threads for its streams' rungs, so one process
        could use every core, but a crash then takes fewer streams down with it."""
        return max(1, os.cpu_count() or 1)

    def worker_pids(self) -> dict[int, int]:
        """Worker index -> process id, of the workers running now (for their metrics)."""
        return {w.index: w.process.pid for w in self.workers if w.process is not None}

    def open(self, stream: str, source: Track, rungs: tuple[Rung, ...],
             callbacks: SessionCallbacks, *, from_idr: bool = False) -> TranscodeSession:
        """`from_idr`: the stream is under way; the ladder starts at its next IDR point
        (a source keyframe where a segment starts)."""
        worker = min(self.workers, key=lambda w: w.load)
        session = TranscodeSession(self, worker, stream, source, rungs, callbacks)
        session._joining = from_idr
        worker.sessions[session.id] = session
        worker.send(("start", session.id, source, rungs, self.settings), 0)
        self.count_renditions(stream)
        return session

    def count_renditions(self, stream: str) -> None:
        """`golive_transcode_renditions`: the rungs a stream's open sessions encode (one
        still draining after its publisher left, or failed, no longer counts)."""
        self.metrics.renditions.labels(stream).set(
            sum(len(s.rungs) for w in self.workers for s in w.sessions.values()
                if s.stream == stream and not s.closed))

    def shutting_down(self) -> None:
        """The server stops: a worker that ends from now on is not restarted, and none is
        started for the last messages of streams (a signal to the whole process group, such
        as systemd's default KillMode's SIGTERM, ends the workers before the server has ended
        its streams)."""
        for worker in self.workers:
            worker.closing = True

    async def close(self) -> None:
        self.shutting_down()
        await asyncio.gather(*(worker.close() for worker in self.workers))
