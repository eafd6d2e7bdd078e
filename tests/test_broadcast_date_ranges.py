"""Date ranges and the live date through real broadcasts: real H.264 through a real hub into a
`Broadcast` (its timers on a fake schedule, as in test_broadcast.py), with its MPEG-TS twin,
a recording and, in one test, a transcoded rung from a real transcoder worker; and the
`PackagerService` questions chat asks by stream name."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from helpers import eventually
from hls_rules import check_media_playlist, parse, successive_violations
from prometheus_client import CollectorRegistry
from publishers import synthetic_source
from test_broadcast import GRACE, FakeSchedule, settle

from golive.hub import Hub
from golive.media import MediaUnit, Track
from golive.packager.broadcast import Broadcast
from golive.packager.config import HlsConfig
from golive.packager.metrics import PackagerMetrics
from golive.packager.playlist import DateRange, format_date_time
from golive.packager.rendition import Rendition
from golive.packager.service import PackagerService
from golive.packager.store import MemoryStore
from golive.transcode.config import TranscodeConfig
from golive.transcode.service import Transcoder


@pytest.fixture(scope="module")
def media() -> tuple[Track, list[MediaUnit]]:
    return synthetic_source(150, 320, 180, gop=25)  # 6 s, a keyframe every second


def gift(start: float, n: int = 1) -> DateRange:
    return DateRange(f"golive-g-{n}", "io.golive.gift", start, 5.0,
                     (("X-GOLIVE-USER", 'Ada "the" <b>'), ("X-GOLIVE-COINS", 30)))


def newest_listed_date(rendition: Rendition) -> float | None:
    """Where the newest listed media ends, read from the playlist text as a player reads it:
    the last dated segment's PROGRAM-DATE-TIME plus its duration (or its parts')."""
    playlist = parse(rendition.text())
    if not playlist.all_segments:
        return None
    last = playlist.all_segments[-1]
    assert last.program_date_time is not None
    duration = last.duration if last.duration is not None else sum(
        p.duration for p in last.parts)
    return last.program_date_time.timestamp() + float(duration)


def ids(rendition: Rendition) -> list[str | None]:
    return [tag.text("ID") for tag in parse(rendition.text()).date_ranges]


async def test_a_live_broadcast_lists_date_ranges_everywhere_and_records_them(
        media, tmp_path: Path) -> None:
    track, units = media
    schedule = FakeSchedule()
    hub = Hub()
    broadcast = Broadcast("show", HlsConfig(grace_period=GRACE, mpegts=True,
                                            record_dir=str(tmp_path)),
                          MemoryStore(), PackagerMetrics(CollectorRegistry()), schedule=schedule)
    source, ts = broadcast.renditions.source, broadcast.renditions.ts
    assert ts is not None
    assert broadcast.live_date is None and not broadcast.add_date_range(gift(1.0))
    stream = hub.start("show", "10.0.0.1:5000")
    broadcast.attach(stream)
    stream.set_track(track)
    dates: list[float] = []
    texts = [source.text()]
    for unit in units[:110]:
        stream.push(unit)
        await asyncio.sleep(0)
        if broadcast.live_date is not None:
            # The end of the newest listed part, as the playlist says it.
            assert broadcast.live_date == pytest.approx(newest_listed_date(source), abs=0.0011)
            if not dates or dates[-1] != broadcast.live_date:
                dates.append(broadcast.live_date)
        if source.text() != texts[-1]:
            texts.append(source.text())
    await settle(lambda: len(source.segments) >= 2 and ts.has_media, "two segments")
    # It moved on part by part (a few per segment), never back.
    assert len(dates) > 2 * len(source.segments) and dates == sorted(set(dates))

    recording = broadcast.recording_dir
    assert recording is not None and recording.parent == tmp_path / "show"
    live = broadcast.live_date
    assert live is not None
    versions = (source.version, ts.version)
    waiter = asyncio.create_task(source.wait_for(source.last_msn, source.last_part + 1, 5))
    await asyncio.sleep(0)
    assert broadcast.add_date_range(gift(live))
    assert (source.version, ts.version) == (versions[0] + 1, versions[1] + 1)
    await asyncio.sleep(0)
    assert not waiter.done()  # blocking reloads wait for media, not for chat
    line = (f'#EXT-X-DATERANGE:ID="golive-g-1",CLASS="io.golive.gift",'
            f'START-DATE="{format_date_time(live)}",DURATION=5.000,'
            "X-GOLIVE-USER=\"Ada 'the' <b>\",X-GOLIVE-COINS=30")
    for rendition in (source, ts):
        assert rendition.text().count(line) == 1, rendition.text()
        check_media_playlist(rendition.text())
    assert not broadcast.add_date_range(gift(live + 1))  # the same ID again

    for unit in units[110:]:
        stream.push(unit)
        await asyncio.sleep(0)
        if source.text() != texts[-1]:
            texts.append(source.text())
    assert await waiter
    hub.end(stream)
    await settle(lambda: not broadcast.live, "the publication's end")
    texts.append(source.text())
    for old, new in itertools.pairwise(texts):
        assert successive_violations(old, new) == []
    assert ids(source) == ["golive-g-1"]
    # The MPEG-TS twin is dated like the source, so the range marks the same frame in both.
    dated = {s.sequence: s.program_date_time for s in source.segments}
    assert ts.segments and all(dated[s.sequence] == s.program_date_time for s in ts.segments)
    # In the grace period: nothing is live, nothing is added.
    assert broadcast.live_date is None and not broadcast.add_date_range(gift(live, 2))
    schedule.fire()
    assert broadcast.ended and broadcast.live_date is None
    assert broadcast.recording_dir is None

    # The recording's VOD playlist keeps it.
    vod = (recording / "index.m3u8").read_text()
    assert vod.count(line) == 1 and "#EXT-X-PLAYLIST-TYPE:VOD" in vod
    check_media_playlist(vod)


async def test_the_service_answers_chat_by_stream_name(media, tmp_path: Path) -> None:
    track, units = media
    hub = Hub()
    service = PackagerService(HlsConfig(grace_period=0, record_dir=str(tmp_path)), hub,
                              MemoryStore(), PackagerMetrics(CollectorRegistry()))
    try:
        assert service.live_date("show") is None and service.recording_dir("show") is None
        assert not service.add_date_range("show", gift(1.0))
        stream = hub.start("show", "10.0.0.1:5000")
        stream.set_track(track)
        for unit in units[:80]:
            stream.push(unit)
            await asyncio.sleep(0)
        broadcast = service.get("show")
        assert broadcast is not None
        await settle(lambda: len(broadcast.source.segments) >= 1, "a segment")
        live = service.live_date("show")
        assert live is not None and live == broadcast.live_date
        assert service.add_date_range("show", gift(live))
        assert not service.add_date_range("other", gift(live, 2))
        assert ids(broadcast.source) == ["golive-g-1"]

        directory = service.recording_dir("show")
        assert directory is not None
        started = directory.name
        assert service.recording_file("show", started, "chat.jsonl") is None  # not written
        (directory / "chat.jsonl").write_text('{"type": "message"}\n')
        assert service.recording_file("show", started, "chat.jsonl") == directory / "chat.jsonl"
        assert service.recording_file("show", started, "chat.json") is None

        hub.end(stream)
        await eventually(lambda: broadcast.ended, what="the broadcast's end")
        assert service.live_date("show") is None and service.recording_dir("show") is None
        assert not service.add_date_range("show", gift(live, 3))
    finally:
        await service.close()


async def test_a_transcoded_rung_lists_them_too(tmp_path: Path) -> None:
    """A real transcoder worker encodes the 180p rung; the range goes into its playlist."""
    track, units = synthetic_source(100, 640, 360, gop=25)
    transcoder = Transcoder(TranscodeConfig(ladder=("180p@150k",), workers=1),
                            CollectorRegistry())
    hub = Hub()
    broadcast = Broadcast("show", HlsConfig(grace_period=GRACE), MemoryStore(),
                          PackagerMetrics(CollectorRegistry()), transcoder=transcoder,
                          schedule=FakeSchedule())
    try:
        stream = hub.start("show", "10.0.0.1:5000")
        broadcast.attach(stream)
        stream.set_track(track)
        for unit in units:
            stream.push(unit)
            await asyncio.sleep(0)
        await eventually(lambda: "180p" in broadcast.renditions.names()
                         and len(broadcast.renditions["180p"].segments) >= 1,
                         timeout=60, what="the rung's first segment")
        rung = broadcast.renditions["180p"]
        live = broadcast.live_date
        assert live is not None
        version = rung.version
        assert broadcast.add_date_range(gift(live))
        assert rung.version == version + 1
        assert ids(rung) == ids(broadcast.source) == ["golive-g-1"]
        check_media_playlist(rung.text())
    finally:
        broadcast.close()
        await transcoder.close()
