"""Many RTMP publishers in one asyncio loop (or a few forked processes), replaying prepared
sessions at full speed or at a fixed bit rate, and recording when each block was written.

A publisher does not speak RTMP: it writes the recorded client bytes as they are (the server's
answers never change what a publisher sends, and servers do not validate C2), while reading
and discarding everything the server sends, so the server's writes never block. When all is
written it half-closes and waits for the server to close: then the server has read every byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from .rtmp_sessions import SessionTemplate


@dataclass(frozen=True)
class LoadSpec:
    host: str
    port: int
    publishers: int
    block_size: int
    rate: float | None  # bytes per second per publisher; None: as fast as the server reads
    start_at: float  # time.monotonic() of the first connection
    deadline: float  # time.monotonic() by which everything is aborted
    duration: float = 0.0  # full speed: each publisher starts new sessions until this elapses
    ramp: float = 0.0  # paced: connections are spread evenly over this many seconds
    key_base: int = 0  # first key number; keys must not repeat within one server's life
    close_timeout: float = 30.0  # after the last byte, wait this long for the server to close


@dataclass
class SessionRecord:
    """One connection: what it sent and when each block went into the kernel."""

    slot: int
    template: int
    key: str
    size: int
    block_times: list[float] = field(default_factory=list)
    sent: int = 0
    started: float = 0.0
    finished: float = 0.0
    max_lag: float = 0.0  # paced: the furthest a write fell behind its schedule, seconds
    received: int = 0
    error: str | None = None


@dataclass
class LoadResult:
    records: list[SessionRecord]
    client_cpu: float  # CPU seconds of every client process over the load
    client_processes: int


class _Client(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.received = 0
        self.closed: asyncio.Future[None] = loop.create_future()
        self._resume: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        # Pause as soon as anything is left unsent: "written" then means "in the kernel".
        transport.set_write_buffer_limits(high=0)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)

    def eof_received(self) -> bool:
        return False  # the server closed: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self._resume is not None and not self._resume.done():
            self._resume.set_exception(ConnectionError(str(exc or "closed by the server")))

    def pause_writing(self) -> None:
        self._resume = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._resume is not None and not self._resume.done():
            self._resume.set_result(None)
        self._resume = None

    async def drained(self) -> None:
        if self._resume is not None:
            await self._resume


async def _publish(
    spec: LoadSpec, blocks: list[bytes | memoryview], record: SessionRecord, start: float
) -> None:
    loop = asyncio.get_running_loop()
    monotonic = time.monotonic
    client = _Client(loop)
    transport: asyncio.BaseTransport | None = None
    try:
        if start > monotonic():
            await asyncio.sleep(start - monotonic())
        record.started = monotonic()
        transport, _ = await loop.create_connection(lambda: client, spec.host, spec.port)
        assert isinstance(transport, asyncio.WriteTransport)
        rate = spec.rate
        times = record.block_times
        t0 = monotonic()
        offset = 0
        for block in blocks:
            if rate is not None:
                delay = t0 + offset / rate - monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif -delay > record.max_lag:
                    record.max_lag = -delay
            if client.closed.done():
                raise ConnectionError("closed by the server")
            transport.write(block)
            await client.drained()
            times.append(monotonic())
            offset += len(block)
            record.sent = offset
        transport.write_eof()
        await asyncio.wait_for(asyncio.shield(client.closed), spec.close_timeout)
    except (OSError, ConnectionError, TimeoutError) as exc:
        record.error = f"{type(exc).__name__}: {exc}"
    finally:
        record.finished = monotonic()
        record.received = client.received
        if transport is not None:
            transport.abort()  # a no-op once closed; frees the socket on errors and cancels


async def _run_slots(
    spec: LoadSpec, templates: list[SessionTemplate], slots: list[int]
) -> list[SessionRecord]:
    records: list[SessionRecord] = []

    async def full_speed(slot: int) -> None:
        round_ = 0
        while round_ == 0 or time.monotonic() < spec.start_at + spec.duration:
            index = (slot + round_) % len(templates)
            template = templates[index]
            key = template.key_for(spec.key_base + round_ * spec.publishers + slot)
            record = SessionRecord(slot, index, key, template.size)
            records.append(record)
            await _publish(spec, template.blocks(key, spec.block_size), record, spec.start_at)
            if record.error:
                return  # a failing server gets no further load from this slot
            round_ += 1

    async def paced(slot: int) -> None:
        index = slot % len(templates)
        template = templates[index]
        key = template.key_for(spec.key_base + slot)
        record = SessionRecord(slot, index, key, template.size)
        records.append(record)
        start = spec.start_at + spec.ramp * slot / max(1, spec.publishers)
        await _publish(spec, template.blocks(key, spec.block_size), record, start)

    run = paced if spec.rate is not None else full_speed
    tasks = [asyncio.create_task(run(slot)) for slot in slots]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), max(0.1, spec.deadline - time.monotonic()))
    except TimeoutError:
        for record in records:
            if not record.finished:
                record.error = record.error or "TimeoutError: benchmark deadline"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return records


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_in_process(
    spec: LoadSpec, templates: list[SessionTemplate], slots: list[int]
) -> tuple[list[SessionRecord], float]:
    cpu = _cpu_self()
    records = asyncio.run(_run_slots(spec, templates, slots))
    return records, _cpu_self() - cpu


# Forked workers inherit the templates instead of unpickling megabytes of sessions each.
_FORK_TEMPLATES: list[SessionTemplate] = []


def _worker(spec: LoadSpec, slots: list[int]) -> tuple[list[SessionRecord], float]:
    return _run_in_process(spec, _FORK_TEMPLATES, slots)


def run_load(spec: LoadSpec, templates: list[SessionTemplate], processes: int = 1) -> LoadResult:
    """Run every publisher of `spec`; returns when all are done or the deadline passed."""
    slots = list(range(spec.publishers))
    if processes <= 1:
        records, cpu = _run_in_process(spec, templates, slots)
        return LoadResult(records, cpu, 1)
    global _FORK_TEMPLATES
    _FORK_TEMPLATES = templates
    context = multiprocessing.get_context("fork")
    shares = [slots[i::processes] for i in range(processes)]
    try:
        with context.Pool(processes) as pool:
            pending = pool.starmap_async(_worker, [(spec, share) for share in shares])
            results = pending.get(timeout=max(1.0, spec.deadline - time.monotonic() + 30.0))
    finally:
        _FORK_TEMPLATES = []
    records = [record for part, _ in results for record in part]
    return LoadResult(records, sum(cpu for _, cpu in results), processes)


@contextlib.contextmanager
def raised_fd_limit() -> Iterator[None]:
    """800 publishers need 800 sockets here and 800 in the server (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        if soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
