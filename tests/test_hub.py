"""Hub fan-out: bounded per-subscriber buffers, drop-to-next-keyframe on overflow, stream end."""

from __future__ import annotations

import asyncio

import pytest

from golive.hub import Hub, LiveStream, StreamEnded, Subscription
from golive.media import MediaUnit, Track, TrackKind

VIDEO_TRACK = Track(TrackKind.VIDEO, "h264", b"avcc", codec_string="avc1.64001F")
AUDIO_TRACK = Track(TrackKind.AUDIO, "aac", b"\x12\x10", codec_string="mp4a.40.2")


def video(ts: int, key: bool = False) -> MediaUnit:
    return MediaUnit(TrackKind.VIDEO, ts, ts, key, b"v%d" % ts)


def audio(ts: int) -> MediaUnit:
    return MediaUnit(TrackKind.AUDIO, ts, ts, True, b"a%d" % ts)


def gop(start: int, frames: int = 10) -> list[MediaUnit]:
    """A keyframe then inter frames, with an audio unit after every video frame."""
    out: list[MediaUnit] = []
    for i in range(frames):
        out.append(video(start + 40 * i, key=i == 0))
        out.append(audio(start + 40 * i + 1))
    return out


def drain(subscription: Subscription) -> list[MediaUnit | Track]:
    items: list[MediaUnit | Track] = []
    while (item := subscription.get_nowait()) is not None:
        items.append(item)
    return items


def live(hub: Hub | None = None, name: str = "cam") -> LiveStream:
    stream = (hub or Hub()).start(name, "127.0.0.1:5000")
    stream.set_track(VIDEO_TRACK)
    stream.set_track(AUDIO_TRACK)
    return stream


async def test_subscriber_gets_tracks_then_units_from_the_next_keyframe() -> None:
    stream = live()
    for unit in gop(0)[:7]:  # mid-GOP when the subscriber arrives
        stream.push(unit)
    sub = stream.subscribe("hls")
    assert await sub.get() == VIDEO_TRACK
    assert await sub.get() == AUDIO_TRACK
    assert sub.get_nowait() is None
    late = gop(0)[7:]
    for unit in late:  # the rest of the GOP: skipped
        stream.push(unit)
    assert sub.get_nowait() is None
    next_gop = gop(400)
    for unit in next_gop:
        stream.push(unit)
    assert drain(sub) == next_gop


async def test_audio_only_stream_starts_at_once() -> None:
    stream = Hub().start("radio", "x")
    stream.set_track(AUDIO_TRACK)
    sub = stream.subscribe("hls")
    stream.push(audio(0))
    stream.push(audio(21))
    assert drain(sub) == [AUDIO_TRACK, audio(0), audio(21)]


async def test_subscriber_before_any_track_gets_everything() -> None:
    stream = Hub().start("cam", "x")
    sub = stream.subscribe("early")
    stream.set_track(VIDEO_TRACK)
    units = gop(0, 3)
    for unit in units:
        stream.push(unit)
    assert drain(sub) == [VIDEO_TRACK, *units]


async def test_slow_subscriber_overflows_and_resumes_at_a_keyframe() -> None:
    drops: list[tuple[str, str, int]] = []
    hub = Hub(on_drop=lambda stream, sub, count: drops.append((stream, sub, count)))
    stream = live(hub)
    slow = stream.subscribe("slow", capacity=8)
    fast = stream.subscribe("fast", capacity=10_000)
    fast_seen: list[MediaUnit | Track] = []

    async def read_fast() -> None:
        async for item in fast:
            fast_seen.append(item)

    reader = asyncio.create_task(read_fast())
    pushed: list[MediaUnit] = []
    for start in (0, 1000, 2000):
        for unit in gop(start):
            stream.push(unit)
            pushed.append(unit)
            await asyncio.sleep(0)  # the fast reader keeps up
    assert slow.dropped > 0
    assert drops and {(s, n) for s, n, _ in drops} == {("cam", "slow")}
    assert sum(count for _, _, count in drops) == slow.dropped
    # Overflow emptied the buffer: only what arrived since (at most capacity items) is left.
    assert slow.pending <= 8
    leftover = drain(slow)
    units_left = [i for i in leftover if isinstance(i, MediaUnit)]
    if units_left:
        assert units_left[0].kind is TrackKind.VIDEO and units_left[0].keyframe
    # Every pushed unit was either delivered or counted as dropped (the tracks are not units).
    delivered = [u for u in leftover if isinstance(u, MediaUnit)]
    assert len(delivered) + slow.dropped == len(pushed)

    # After draining, it resumes at the next video keyframe, not in the middle of a GOP.
    stream.push(video(3000))
    stream.push(audio(3001))
    resume = gop(3040, 3)  # 6 units: fits in the buffer
    for unit in resume:
        stream.push(unit)
    after = [i for i in drain(slow) if isinstance(i, MediaUnit)]
    assert after[0] == resume[0] and after[0].keyframe
    assert after == resume or after == [video(3000), audio(3001), *resume]

    stream.end()
    await asyncio.wait_for(reader, 1)
    assert fast.dropped == 0
    assert fast_seen == [VIDEO_TRACK, AUDIO_TRACK, *pushed, video(3000), audio(3001), *resume]


async def test_overflow_keeps_track_changes() -> None:
    stream = live()
    sub = stream.subscribe("s", capacity=6)
    for unit in gop(0, 10):
        stream.push(unit)  # overflows: now skipping to the next keyframe
    new_video = Track(TrackKind.VIDEO, "h264", b"avcc2", codec_string="avc1.640028")
    stream.set_track(new_video)
    for unit in gop(1000, 1):
        stream.push(unit)
    items = drain(sub)
    assert new_video in items, "a track change was lost on overflow"
    first_unit = next(i for i in items if isinstance(i, MediaUnit))
    assert items.index(new_video) < items.index(first_unit)


async def test_track_change_arriving_on_a_full_buffer_is_kept() -> None:
    """Track changes are never dropped (hub docstring): not even the one that overflows."""
    stream = live()
    sub = stream.subscribe("s", capacity=3)
    stream.push(video(0, key=True))  # tracks x2 + keyframe: the buffer is full
    assert sub.pending == 3
    new_video = Track(TrackKind.VIDEO, "h264", b"avcc2")
    stream.set_track(new_video)
    assert new_video in drain(sub)


async def test_audio_only_overflow_counts_exactly_what_was_lost() -> None:
    counts: list[int] = []
    hub = Hub(on_drop=lambda _stream, _sub, count: counts.append(count))
    stream = hub.start("radio", "x")
    stream.set_track(AUDIO_TRACK)
    sub = stream.subscribe("s", capacity=4)
    pushed = [audio(21 * i) for i in range(10)]
    for unit in pushed:
        stream.push(unit)
    delivered = [i for i in drain(sub) if isinstance(i, MediaUnit)]
    assert delivered, "audio-only streams resume at once"
    assert delivered == pushed[len(pushed) - len(delivered):]
    assert len(delivered) + sub.dropped == len(pushed)
    assert sum(counts) == sub.dropped


async def test_on_drop_may_close_the_slow_subscriber() -> None:
    """A natural policy: disconnect a consumer that cannot keep up, from the drop callback."""
    subs: dict[str, Subscription] = {}

    def on_drop(stream: str, name: str, count: int) -> None:
        subs[name].close()

    hub = Hub(on_drop=on_drop)
    stream = live(hub)
    subs["a"] = stream.subscribe("a", capacity=2)
    subs["b"] = stream.subscribe("b", capacity=2)
    for unit in gop(0, 5):
        stream.push(unit)
    assert stream.subscriber_count == 0


async def test_stream_end_stops_subscribers() -> None:
    hub = Hub()
    stream = live(hub)
    sub = stream.subscribe("s")
    for unit in gop(0, 2):
        stream.push(unit)
    waiting = stream.subscribe("w")
    drain(waiting)
    getter = asyncio.create_task(waiting.get())
    await asyncio.sleep(0)
    hub.end(stream)
    with pytest.raises(StreamEnded):
        await asyncio.wait_for(getter, 1)
    # Buffered items are still delivered before the end.
    items = [item async for item in sub]
    assert items == [VIDEO_TRACK, AUDIO_TRACK, *gop(0, 2)]
    with pytest.raises(StreamEnded):
        sub.get_nowait()
    with pytest.raises(StreamEnded):
        await sub.get()
    assert stream.ended and stream.subscriber_count == 0
    late = stream.subscribe("late")
    assert [item async for item in late] == [VIDEO_TRACK, AUDIO_TRACK]


async def test_close_unsubscribes() -> None:
    stream = live()
    sub = stream.subscribe("s")
    assert stream.subscriber_count == 1
    sub.close()
    assert stream.subscriber_count == 0
    stream.push(video(0, key=True))
    assert [i for i in drain_until_end(sub) if isinstance(i, MediaUnit)] == []


def drain_until_end(sub: Subscription) -> list[MediaUnit | Track]:
    items: list[MediaUnit | Track] = []
    try:
        while (item := sub.get_nowait()) is not None:
            items.append(item)
    except StreamEnded:
        pass
    return items


async def test_hub_names_and_lifecycle() -> None:
    started: list[LiveStream] = []
    hub = Hub()
    hub.on_publish(started.append)
    first = hub.start("cam", "10.0.0.1:1")
    assert hub.get("cam") is first and hub.streams() == [first]
    assert started == [first]
    with pytest.raises(RuntimeError):
        hub.start("cam", "10.0.0.2:2")
    other = hub.start("other", "10.0.0.3:3")
    assert set(hub.streams()) == {first, other}
    hub.end(first)
    assert hub.get("cam") is None and first.ended
    second = hub.start("cam", "10.0.0.2:2")
    assert second is not first and second.session_id != first.session_id
    assert started == [first, other, second]
    # Ending an old publication must not remove its successor.
    hub.end(first)
    assert hub.get("cam") is second


async def test_publish_listener_failure_does_not_stop_the_stream() -> None:
    hub = Hub()
    calls: list[str] = []

    def broken(stream: LiveStream) -> None:
        raise ValueError("boom")

    hub.on_publish(broken)
    hub.on_publish(lambda s: calls.append(s.name))
    stream = hub.start("cam", "x")
    assert hub.get("cam") is stream and calls == ["cam"]


async def test_push_counts_units() -> None:
    stream = live()
    for unit in gop(0, 3):
        stream.push(unit)
    assert stream.units_in == 6


def test_a_notified_subscriber_hears_of_every_push_and_the_end() -> None:
    """`notify` is called when the buffer starts to fill and at the end, so a consumer that
    empties it from a callback instead of awaiting `get` hears of every item."""
    from golive.hub import Hub, StreamEnded
    from golive.media import MediaUnit, TrackKind

    stream = Hub().start("cam", "127.0.0.1:1")
    subscription = stream.subscribe("pkg")
    calls: list[int] = []
    subscription.notify = lambda: calls.append(subscription.pending)
    unit = MediaUnit(TrackKind.AUDIO, 0, 0, True, b"x")
    stream.push(unit)
    stream.push(unit._replace(dts=21, pts=21))
    assert calls == [1]  # (the second came while the first was still buffered)
    assert subscription.get_nowait() == unit
    assert subscription.get_nowait() is not None and subscription.get_nowait() is None
    stream.push(unit._replace(dts=42, pts=42))
    assert calls == [1, 1]  # emptied, then filling again
    stream.end()
    assert calls == [1, 1, 1]  # the end is told too, with what is still buffered
    assert subscription.get_nowait() is not None
    try:
        subscription.get_nowait()
    except StreamEnded:
        pass
    else:
        raise AssertionError("no StreamEnded after the last item")


def test_push_all_is_push_of_each() -> None:
    """A read's units pushed together reach every subscriber as pushed one by one: a
    subscriber waiting for a keyframe skips what comes before it, a full one overflows."""
    from golive.hub import Hub
    from golive.media import MediaUnit, Track, TrackKind

    video = Track(TrackKind.VIDEO, "h264", b"\x01")
    frames = [MediaUnit(TrackKind.VIDEO, i * 40, i * 40, i % 5 == 3, bytes([i]))
              for i in range(12)]

    def received(push_all: bool) -> list[list[int]]:
        stream = Hub().start("cam", "127.0.0.1:1")
        stream.set_track(video)
        subscriptions = [stream.subscribe("a"), stream.subscribe("b", capacity=4)]
        if push_all:
            stream.push_all(frames[:6])
            stream.push_all(frames[6:])
        else:
            for frame in frames:
                stream.push(frame)
        out = []
        for subscription in subscriptions:
            items = []
            while (item := subscription.get_nowait()) is not None:
                if type(item) is MediaUnit:
                    items.append(item.dts)
            out.append(items)
        assert stream.units_in == len(frames)
        return out

    assert received(push_all=True) == received(push_all=False)
    assert received(push_all=True)[0][0] == 120  # from the first keyframe (frame 3)
