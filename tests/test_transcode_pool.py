"""The transcode worker pool with real worker processes: a worker killed mid-stream is
restarted and the stream's rungs go on from the next IDR point; a worker that stops keeping
up makes the server shed units (counted) instead of buffering without bound or blocking."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from dataclasses import dataclass, field

import pytest
from helpers import eventually
from prometheus_client import CollectorRegistry
from publishers import synthetic_source

from golive.media import MediaUnit, Track
from golive.transcode import pool as pool_module
from golive.transcode.ladder import parse_rung
from golive.transcode.metrics import TranscodeMetrics
from golive.transcode.pipeline import EncoderSettings
from golive.transcode.pool import SessionCallbacks, TranscodePool

RUNGS = (parse_rung("180p@150k"),)
IDR_EVERY = 25  # source units: an IDR point every second


@dataclass
class Output:
    items: list[Track | MediaUnit] = field(default_factory=list)
    restarts: int = 0
    stopped: bool = False
    failures: list[str] = field(default_factory=list)
    sheds: list[tuple[str, bool]] = field(default_factory=list)

    def callbacks(self) -> SessionCallbacks:
        return SessionCallbacks(
            on_item=lambda rung, item: self.items.append(item),
            on_restart=self._restart, on_stopped=self._stop, on_failed=self.failures.append,
            on_shed=lambda rung, encoding: self.sheds.append((rung, encoding)))

    def _restart(self) -> None:
        self.restarts += 1

    def _stop(self) -> None:
        self.stopped = True

    @property
    def units(self) -> list[MediaUnit]:
        return [i for i in self.items if isinstance(i, MediaUnit)]

    @property
    def tracks(self) -> list[Track]:
        return [i for i in self.items if isinstance(i, Track)]


@pytest.fixture(scope="module")
def source() -> tuple[Track, list[MediaUnit]]:
    return synthetic_source(200, 320, 180)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def idr_points(units: list[MediaUnit]) -> set[int]:
    """Every IDR_EVERY-th presentation time, as the packager would flag them."""
    return set(sorted(u.pts for u in units)[::IDR_EVERY])


async def test_a_killed_worker_is_restarted_and_the_stream_continues(
        source: tuple[Track, list[MediaUnit]]) -> None:
    track, units = source
    registry = CollectorRegistry()
    pool = TranscodePool(1, EncoderSettings(), TranscodeMetrics(registry))
    output = Output()
    flagged = idr_points(units)
    session = pool.open("crashy", track, RUNGS, output.callbacks())
    try:
        for unit in units[:60]:
            session.push(unit, unit.pts in flagged)
        await eventually(lambda: len(output.units) >= 20, timeout=20, what="first output")
        process = session.worker.process
        assert process is not None
        process.kill()
        await eventually(lambda: output.restarts == 1, timeout=10, what="the restart")
        assert value(registry, "golive_transcode_worker_restarts_total") == 1
        before = len(output.items)
        await eventually(lambda: session.worker.process is not None
                         and session.worker.process.pid != process.pid, timeout=10,
                         what="a new worker process")
        for unit in units[60:]:
            session.push(unit, unit.pts in flagged)
        session.close()
        await eventually(lambda: output.stopped, timeout=30, what="the drain")
    finally:
        await pool.close()
    after = output.items[before:]
    # A fresh encoder: its track first, then units from an IDR point on, each an IDR there.
    assert isinstance(after[0], Track)
    resumed = [u for u in after if isinstance(u, MediaUnit)]
    assert resumed and resumed[0].keyframe and resumed[0].pts in flagged
    assert {u.pts for u in resumed if u.keyframe} <= flagged
    assert resumed[-1].pts == max(u.pts for u in units)  # everything after it was encoded
    assert output.failures == []


async def test_a_worker_that_ends_while_the_server_shuts_down_is_not_restarted(
        source: tuple[Track, list[MediaUnit]]) -> None:
    # SIGTERM to the whole group (systemd's default KillMode) ends the workers before the
    # server has ended its streams, whose last messages must not start a worker again either.
    track, units = source
    registry = CollectorRegistry()
    pool = TranscodePool(1, EncoderSettings(), TranscodeMetrics(registry))
    output = Output()
    flagged = idr_points(units)
    session = pool.open("stopping", track, RUNGS, output.callbacks())
    try:
        for unit in units[:30]:
            session.push(unit, unit.pts in flagged)
        await eventually(lambda: len(output.units) >= 5, timeout=20, what="first output")
        worker = session.worker
        process = worker.process
        assert process is not None
        pool.shutting_down()
        process.terminate()
        await eventually(lambda: worker.process is None, timeout=10, what="the worker's end")
        session.close()  # the stream ends after its worker: its "stop" goes nowhere
        await asyncio.sleep(pool_module.RESTART_DELAY + 0.5)
        assert worker.process is None and worker._starting is None
    finally:
        await pool.close()
    assert value(registry, "golive_transcode_worker_restarts_total") == 0
    assert output.restarts == 0 and output.failures == []


async def test_a_stalled_worker_makes_the_server_shed_not_buffer(
        source: tuple[Track, list[MediaUnit]], monkeypatch: pytest.MonkeyPatch) -> None:
    track, units = source
    monkeypatch.setattr(pool_module, "MAX_BUFFERED", 64 * 1024)
    registry = CollectorRegistry()
    pool = TranscodePool(1, EncoderSettings(), TranscodeMetrics(registry))
    output = Output()
    flagged = idr_points(units)
    session = pool.open("slow", track, RUNGS, output.callbacks())
    try:
        for unit in units[:25]:
            session.push(unit, unit.pts in flagged)
        await eventually(lambda: len(output.units) >= 5, timeout=20, what="first output")
        process = session.worker.process
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)  # a worker that has stopped keeping up
        try:
            # Far more than fits: the socket buffer fills, then the server sheds.
            for round_ in range(6):
                shift = round_ * 10_000
                for unit in units[25:]:
                    session.push(unit._replace(pts=unit.pts + shift, dts=unit.dts + shift),
                                 unit.pts in flagged)
                await asyncio.sleep(0.05)
            writer = session.worker._writer
            assert writer is not None
            # Bounded: what waits is at most the limit plus the one message that crossed it.
            assert writer.transport.get_write_buffer_size() < 64 * 1024 + max(
                len(u.data) for u in units) + 4096
            shed = value(registry, "golive_transcode_dropped_units_total", stream="slow",
                         where="server")
            assert shed > 0 and session.dropped == shed
        finally:
            os.kill(process.pid, signal.SIGCONT)
        await eventually(lambda: writer.transport.get_write_buffer_size() < 64 * 1024,
                         timeout=20, what="the worker catching up")
        count = len(output.units)
        for unit in units[:50]:  # the publisher goes on: from its next IDR point
            session.push(unit._replace(pts=unit.pts + 100_000, dts=unit.dts + 100_000),
                         unit.pts in flagged)
        session.close()
        await eventually(lambda: output.stopped, timeout=30, what="the drain")
    finally:
        await pool.close()
    late = [u for u in output.units[count:] if u.pts >= 100_000]
    assert late and late[0].keyframe  # the shedding resumed at an IDR point


async def test_a_stream_whose_ladder_fails_costs_the_other_streams_nothing(
        source: tuple[Track, list[MediaUnit]]) -> None:
    track, units = source
    pool = TranscodePool(1, EncoderSettings(), TranscodeMetrics(CollectorRegistry()))
    broken, healthy = Output(), Output()
    flagged = idr_points(units)
    try:
        bad = pool.open("broken", dataclasses.replace(track, codec="no-such-codec"), RUNGS,
                        broken.callbacks())
        await eventually(lambda: bool(broken.failures), timeout=20, what="the failure")
        for _ in range(3):  # far more than the worker queues for one stream
            for unit in units:
                bad.push(unit, unit.pts in flagged)
        bad.close()
        good = pool.open("healthy", track, RUNGS, healthy.callbacks())
        for unit in units:
            good.push(unit, unit.pts in flagged)
        good.close()
        await eventually(lambda: healthy.stopped, timeout=30, what="the healthy stream")
    finally:
        await pool.close()
    assert "no-such-codec" in broken.failures[0]
    assert len(healthy.units) == len(units)

