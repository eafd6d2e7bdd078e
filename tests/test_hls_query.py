"""The origin's one question (`HlsFiles.file`), asked without HTTP: what answers, what is
refused and why, cache lifetimes, blocking reload and preload-hinted parts."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry
from publishers import synthetic_source

from golive.hub import Hub, LiveStream
from golive.media import MediaUnit, Track
from golive.packager.broadcast import Broadcast
from golive.packager.config import HlsConfig
from golive.packager.metrics import PackagerMetrics
from golive.packager.query import BadRequest, HlsFiles, NotFound, NotReady
from golive.packager.store import MemoryStore


@pytest.fixture(scope="module")
def media() -> tuple[Track, list[MediaUnit]]:
    return synthetic_source(150, 320, 180, gop=25)


class Live:
    def __init__(self, track: Track) -> None:
        self.store = MemoryStore()
        self.broadcast = Broadcast("show", HlsConfig(), self.store,
                                   PackagerMetrics(CollectorRegistry()),
                                   schedule=lambda delay, callback: asyncio.get_running_loop()
                                   .call_later(3600, callback))
        self.files = HlsFiles({"show": self.broadcast}.get)
        self.stream: LiveStream = Hub().start("show", "10.0.0.1:1")
        self.broadcast.attach(self.stream)
        self.stream.set_track(track)

    async def push(self, units: list[MediaUnit]) -> None:
        for unit in units:
            self.stream.push(unit)
            await asyncio.sleep(0)
        for _ in range(50):  # let the packager's task take what is queued
            await asyncio.sleep(0)


@pytest.fixture
async def live(media) -> Live:
    track, units = media
    live = Live(track)
    await live.push(units[:100])  # 4 s: two segments and parts of the next
    assert len(live.broadcast.source.segments) >= 1
    yield live
    live.broadcast.close()


async def test_names_that_are_not_there(live: Live) -> None:
    for stream, rendition, filename, message in [
            ("other", None, "index.m3u8", "no such stream"),
            ("../show", None, "index.m3u8", "no such stream"),
            ("show", "720p", "index.m3u8", "no such rendition"),
            ("show", "..", "index.m3u8", "no such rendition"),
            ("show", "source", "../../../etc/passwd", "no such file"),
            ("show", "source", "seg-1.m4s.tmp", "no such file"),
            ("show", "source", "seg-99.m4s", "no such file (it may have left the live window)"),
            ("show", "source", "init-7.mp4", "no such file (it may have left the live window)")]:
        with pytest.raises(NotFound, match=rf"^{message.replace('(', '.').replace(')', '.')}$"):
            await live.files.file(stream, rendition, filename)


async def test_master_media_and_segment_answers(live: Live) -> None:
    master = await live.files.file("show", None)
    assert (master.kind, master.max_age) == ("master", 2)
    assert "source/index.m3u8" in (master.text or "")
    playlist = await live.files.file("show", "source")
    assert playlist.kind == "playlist" and playlist.waited is None
    assert playlist.text is live.broadcast.source.text()  # the same object while unchanged
    assert playlist.max_age == 0  # half a 1/3 s part, rounded down
    first = live.broadcast.source.segments[0]
    segment = await live.files.file("show", "source", first.uri)
    assert (segment.kind, segment.max_age, segment.content_type) == ("segment", None,
                                                                    "video/mp4")
    assert segment.data == live.store.get("show/source/" + first.uri) and segment.data
    init = await live.files.file("show", "source", "init-1.mp4")
    assert init.kind == "init" and init.data and init.max_age is None


async def test_blocking_reload_limits(live: Live) -> None:
    source = live.broadcast.source
    ahead = source.last_msn + 3
    for msn, part, message in [(None, "0", "_HLS_part needs _HLS_msn"),
                               ("x", None, "must be integers"),
                               ("1", "-1", "must not be negative"),
                               (str(ahead), None, "more than two segments ahead"),
                               ("1", "100", "beyond the advance part limit")]:
        with pytest.raises(BadRequest, match=message):
            await live.files.file("show", "source", msn=msn, part=part)


async def test_blocking_reload_answers_when_the_part_is_listed(live: Live, media) -> None:
    source = live.broadcast.source
    listed = await live.files.file("show", "source", msn=str(source.last_msn), part="0")
    assert listed.waited is not None and listed.waited < 0.5
    assert listed.max_age == source.target_duration  # a blocking answer stays correct
    msn, part = source.last_msn, source.last_part + 1
    asking = asyncio.create_task(live.files.file("show", "source", msn=str(msn),
                                                 part=str(part)))
    hinted = asyncio.create_task(live.files.file("show", "source", f"part-{msn}.{part}.m4s"))
    await asyncio.sleep(0.05)
    assert not asking.done() and not hinted.done()  # both wait for that part
    await live.push(media[1][100:110])
    answer, part_file = await asking, await hinted
    assert f"part-{msn}.{part}.m4s" in (answer.text or "")
    assert part_file.kind == "part" and part_file.data and part_file.waited is not None


async def test_a_part_that_is_not_next_is_not_waited_for(live: Live) -> None:
    source = live.broadcast.source
    with pytest.raises(NotFound):
        await live.files.file("show", "source", f"part-{source.last_msn + 1}.3.m4s")


async def test_an_ended_broadcast_caches_a_minute(live: Live) -> None:
    live.broadcast.end()
    playlist = await live.files.file("show", "source")
    assert playlist.max_age == 60 and "#EXT-X-ENDLIST" in (playlist.text or "")


async def test_no_media_is_not_ready_with_a_retry(media) -> None:
    live = Live(media[0])
    live.broadcast.end()  # ended before any media: nothing to wait for
    with pytest.raises(NotReady) as info:
        await live.files.file("show", None)
    assert info.value.retry_after == 1
    live.broadcast.close()
