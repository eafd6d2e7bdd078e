"""A broadcast's lifecycle without sockets: attach, grace, reconnect, takeover, end, expire.

Real media (libx264, as ingest delivers H.264) goes through a real hub into a `Broadcast`;
its timers run on a fake schedule the tests step through, so a grace period or the retention
of an ended broadcast takes no wall-clock time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry
from publishers import synthetic_source

from golive.hub import Hub, LiveStream
from golive.media import MediaUnit, Track
from golive.packager.broadcast import ENDED_RETENTION, Broadcast
from golive.packager.config import HlsConfig
from golive.packager.metrics import PackagerMetrics
from golive.packager.store import MemoryStore

GRACE = 10.0


@dataclass
class FakeTimer:
    delay: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeSchedule:
    timers: list[FakeTimer] = field(default_factory=list)

    def __call__(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(delay, callback)
        self.timers.append(timer)
        return timer

    @property
    def armed(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled]

    def fire(self) -> float:
        """Run the one armed timer (as if its delay had passed); its delay."""
        (timer,) = self.armed
        self.timers.remove(timer)
        timer.callback()
        return timer.delay


@pytest.fixture(scope="module")
def media() -> tuple[Track, list[MediaUnit]]:
    return synthetic_source(150, 320, 180, gop=25)  # 6 s, a keyframe every second


@dataclass
class Setup:
    hub: Hub
    broadcast: Broadcast
    schedule: FakeSchedule
    store: MemoryStore
    registry: CollectorRegistry
    expired: list[Broadcast]

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def setup() -> Setup:
    registry = CollectorRegistry()
    schedule = FakeSchedule()
    store = MemoryStore()
    expired: list[Broadcast] = []
    broadcast = Broadcast("show", HlsConfig(grace_period=GRACE), store,
                          PackagerMetrics(registry), on_expired=expired.append,
                          schedule=schedule)
    return Setup(Hub(), broadcast, schedule, store, registry, expired)


async def settle(condition: Callable[[], bool], what: str) -> None:
    """Let the broadcast's task run until `condition` (it only waits on its subscription)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"the broadcast never got to: {what}")


async def publish(setup: Setup, track: Track, units: list[MediaUnit],
                  end: bool = True) -> LiveStream:
    stream = setup.hub.start("show", "10.0.0.1:5000")
    setup.broadcast.attach(stream)
    stream.set_track(track)
    for unit in units:
        stream.push(unit)
        await asyncio.sleep(0)  # the packager's subscription holds at most 2048 units
    if end:
        setup.hub.end(stream)
    return stream


async def test_a_publication_goes_live_then_waits_out_its_grace_period(setup, media) -> None:
    track, units = media
    broadcast = setup.broadcast
    assert broadcast.state == "reconnecting"  # nothing attached yet
    stream = await publish(setup, track, units, end=False)
    await settle(lambda: len(broadcast.source.segments) >= 2, "two segments")
    assert broadcast.state == "live" and broadcast.live
    setup.hub.end(stream)
    await settle(lambda: not broadcast.live, "the publication's end")
    # Everything it sent is listed (the open segment too), but no ENDLIST yet.
    assert broadcast.source.open is None
    assert sum(s.duration_ms for s in broadcast.source.segments) == pytest.approx(6000, abs=80)
    assert not broadcast.source.ended and broadcast.state == "reconnecting"
    assert [t.delay for t in setup.schedule.armed] == [GRACE]
    assert setup.schedule.fire() == GRACE  # nobody came back
    assert broadcast.ended and broadcast.state == "ended"
    assert all(r.ended for r in broadcast.renditions)
    assert broadcast.source.text().rstrip().endswith("#EXT-X-ENDLIST")
    assert [t.delay for t in setup.schedule.armed] == [ENDED_RETENTION]
    assert setup.expired == []
    setup.schedule.fire()
    assert setup.expired == [broadcast]  # the service then closes it


async def test_a_publisher_back_within_the_grace_period_continues_the_playlist(
        setup, media) -> None:
    track, units = media
    broadcast = setup.broadcast
    await publish(setup, track, units[:75])
    await settle(lambda: not broadcast.live, "the first publication's end")
    first = [s.sequence for s in broadcast.source.segments]
    (grace,) = setup.schedule.armed
    await publish(setup, track, units[75:])
    assert grace.cancelled and broadcast.live
    await settle(lambda: not broadcast.live, "the second publication's end")
    segments = list(broadcast.source.segments)
    later = [s for s in segments if s.sequence > first[-1]]
    assert later and later[0].sequence == first[-1] + 1  # numbers go on
    assert later[0].discontinuity and not any(s.discontinuity for s in later[1:])
    assert broadcast.publications == 2 and not broadcast.ended
    assert setup.metric("golive_hls_discontinuities_total", stream="show",
                        cause="reconnect") == 1
    assert "#EXT-X-DISCONTINUITY" in broadcast.source.text()


async def test_a_takeover_lists_the_old_publications_units_first(setup, media) -> None:
    track, units = media
    broadcast = setup.broadcast
    old = setup.hub.start("show", "10.0.0.1:5000")
    broadcast.attach(old)
    old.set_track(track)
    for unit in units[:75]:
        old.push(unit)
    # The new publisher arrives before the packager got to any of the old one's units.
    setup.hub.end(old)
    await publish(setup, track, units[75:])  # from a keyframe: nothing is skipped
    await settle(lambda: not broadcast.live, "the new publication's end")
    listed = sum(s.duration_ms for s in broadcast.source.segments)
    assert listed == pytest.approx(6000, abs=120)  # nothing of either was lost
    assert broadcast.publications == 2
    assert sum(s.discontinuity for s in broadcast.source.segments) == 1


async def test_an_old_publication_ending_late_does_not_end_the_new_one(setup, media) -> None:
    track, units = media
    broadcast = setup.broadcast
    await publish(setup, track, units[:50])
    await settle(lambda: not broadcast.live, "the first publication's end")
    await publish(setup, track, units[50:100], end=False)
    await settle(lambda: broadcast.source.next_sequence >= 2, "the second's media")
    assert broadcast.live and setup.schedule.armed == []


async def test_close_forgets_every_file_and_series(setup, media) -> None:
    track, units = media
    broadcast = setup.broadcast
    await publish(setup, track, units)
    await settle(lambda: not broadcast.live, "the publication's end")
    assert setup.store.get("show/source/init-1.mp4")
    assert setup.metric("golive_hls_segments_total", stream="show", rendition="source") >= 2
    broadcast.close()
    assert setup.store.get("show/source/init-1.mp4") is None
    assert not [k for k in setup.store._files if k.startswith("show/")]
    assert setup.schedule.armed == []  # the grace timer went with it


async def test_no_packageable_track_drops_units_counted(setup, media) -> None:
    _, units = media
    broadcast = setup.broadcast
    odd = Track(media[0].kind, "flv1", b"", width=320, height=180)  # Sorenson Spark
    await publish(setup, odd, units[:30])
    await settle(lambda: not broadcast.live, "the publication's end")
    assert not broadcast.renditions.has_media
    assert setup.metric("golive_hls_dropped_units_total", stream="show") > 0
