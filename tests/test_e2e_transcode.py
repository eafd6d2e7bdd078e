"""End to end through the transcoding ladder: a real H.264 publisher in, aligned renditions out.

A synthetic 640x360 H.264 + AAC clip (tests/publishers.py) is published over RTMP at full
speed; the transcoder's worker process encodes two rungs. What is checked is what players rely
on: every rung decodes at its own size, IDRs sit at the same presentation times in every
rendition, and the playlists list the same segment boundaries everywhere.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import secrets
from pathlib import Path

import av
import pytest
from helpers import MakeServer, eventually, http_get, scrape
from hls_rules import check_media_playlist
from publishers import PyAvPublisher, RawPublisher, encode_clip

from golive.packager.broadcast import Broadcast
from golive.server import Server
from golive.transcode.config import TranscodeConfig

pytestmark = pytest.mark.e2e

KEY = "k-" + secrets.token_hex(8)
NAME = "ladder"
LADDER = ("240p@300k", "180p@150k")


def broadcast(server: Server) -> Broadcast:
    found = server.packager.get(NAME)
    assert found is not None
    return found


def _segments(server: Server, name: str) -> list[tuple[int, int, bool]]:
    rendition = broadcast(server).renditions.get(name)
    if rendition is None:  # not before the source's track set is known
        return []
    return [(s.sequence, s.duration_ms, s.discontinuity) for s in rendition.segments]


def _decode(server: Server, name: str, segments: slice = slice(None)
            ) -> tuple[list[av.VideoFrame], list[int]]:
    """Listed segments of a rendition, decoded: their frames and keyframe PTS (ms)."""
    rendition = broadcast(server).renditions[name]
    store = server.store
    data = store.get(rendition.prefix + rendition.init_uri) or b""
    data += b"".join(store.get(rendition.prefix + s.uri) or b""
                     for s in list(rendition.segments)[segments])
    frames, keyframes = [], []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            if packet.is_keyframe:
                keyframes.append(round(packet.pts * packet.time_base * 1000))
            frames.extend(packet.decode())
    return frames, keyframes


def _segment_starts(server: Server, name: str) -> list[int]:
    """The presentation time each listed segment starts at (ms), read from its own bytes."""
    return _listed_starts(server, name)


def _listed_starts(server: Server, name: str) -> list[int]:
    """The start PTS (ms) of each segment with media (gaps have none), decoded from the
    segment alone with the init segment it names."""
    rendition = broadcast(server).renditions[name]
    store = server.store
    starts = []
    for segment in rendition.segments:
        if segment.gap:
            continue
        data = (store.get(rendition.prefix + segment.init_uri) or b"") + (
            store.get(rendition.prefix + segment.uri) or b"")
        with av.open(io.BytesIO(data)) as container:
            frames = [f for p in container.demux(video=0) for f in p.decode()]
        starts.append(min(round(f.pts * f.time_base * 1000) for f in frames))
    return starts


async def test_rungs_decode_at_their_size_with_aligned_idrs_and_segments(
        make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(ladder=LADDER))
    clip = encode_clip(9.0, 640, 360)  # a keyframe every second: segments of 2 s
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(clip.tags)
    await eventually(lambda: server.packager.get(NAME) is not None
                     and all(len(_segments(server, n)) >= 3 for n in ("240p", "180p")),
                     timeout=30, what="three segments in every rung")
    status, master = await http_get(server.http_port, f"/live/{NAME}/index.m3u8")
    assert status == 200
    variants = re.findall(r"#EXT-X-STREAM-INF:(.*)\n(.*)", master)
    assert [uri for _, uri in variants] == [
        "source/index.m3u8", "240p/index.m3u8", "180p/index.m3u8"]
    resolutions = [re.search(r"RESOLUTION=(\d+x\d+)", inf).group(1) for inf, _ in variants]
    assert resolutions == ["640x360", "426x240", "320x180"]
    bandwidths = [int(re.search(r"BANDWIDTH=(\d+)", inf).group(1)) for inf, _ in variants]
    assert bandwidths[0] > bandwidths[1] > bandwidths[2] > 0

    source_segments = _segments(server, "source")
    dates = {s.sequence: s.program_date_time for s in broadcast(server).source.segments}
    for name in ("240p", "180p"):
        rung = _segments(server, name)
        assert rung == source_segments[:len(rung)], name
        # The same dates too: players line renditions up by PROGRAM-DATE-TIME.
        for segment in broadcast(server).renditions[name].segments:
            assert segment.program_date_time == dates[segment.sequence]
    # Every rung starts each segment with an IDR at the PTS the source's segment starts at,
    # and has no other keyframe (the source has one every second, segments are 2 s).
    source_starts = _segment_starts(server, "source")
    _, source_keys = _decode(server, "source")
    assert len(source_keys) > len(source_starts)
    for name, size in (("240p", (426, 240)), ("180p", (320, 180))):
        frames, keys = _decode(server, name)
        assert frames and all((f.width, f.height) == size for f in frames), name
        starts = _segment_starts(server, name)
        assert starts == source_starts[:len(starts)], name
        assert keys == starts, name

    # The workers report once a second: the counters catch up with what was listed.
    for _ in range(50):
        metrics = await scrape(server)
        encoded = [metrics.get("golive_transcode_frames_out_total", stream=NAME, rendition=name)
                   for name in ("240p", "180p")]
        if all(count is not None and count >= 3 * 50 for count in encoded):
            break  # three 2 s segments at 25 fps, each
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"frames out per rung: {encoded}")
    assert metrics.get("golive_transcode_renditions", stream=NAME) == 2
    status, text = await http_get(server.http_port, "/api/streams")
    [stream] = json.loads(text)["streams"]
    states = {r["name"]: r["transcode"] for r in stream["renditions"]}
    assert states["source"] is None
    for name in ("240p", "180p"):
        assert states[name]["shed"] is False and states[name]["frames_out"] >= 150
        assert states[name]["encode_speed"] > 0
    await publisher.close()
    # The publisher left: its session drains, and no longer counts as transcoding.
    await eventually(lambda: server.registry.get_sample_value(
        "golive_transcode_renditions", {"stream": NAME}) == 0, what="renditions gauge at 0")


async def test_a_crashed_worker_costs_the_rungs_a_gap_not_their_alignment(
        make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(ladder=LADDER[:1]))
    clip = encode_clip(16.0, 640, 360)
    media = clip.media_tags
    head = [t for t in clip.tags if t.type not in (8, 9)]
    # The stream's configuration, then the first 6 s of media: whole GOPs.
    half = next(i for i, t in enumerate(media) if t.type == 9 and t.timestamp >= 6000)
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags([*head, *media[:half]])
    await eventually(lambda: server.packager.get(NAME) is not None
                     and len(_segments(server, "240p")) >= 1, timeout=30, what="a rung segment")
    worker = server.transcoder.pool.workers[0]
    dead = worker.process
    assert dead is not None
    dead.kill()
    await eventually(lambda: worker.process not in (None, dead) and worker._writer is not None,
                     timeout=15, what="the new worker")
    await publisher.send_tags(media[half:])
    source_done = clip.media_tags[-1].timestamp // 2000 - 1  # the last whole segment
    await eventually(lambda: broadcast(server).renditions["240p"].next_sequence > source_done,
                     timeout=30, what="the rung catching up")
    await publisher.close()
    # The publisher is gone: the source lists its last segment, the rung once it drained.
    await eventually(lambda: not broadcast(server).live and _segments(server, "240p")[-1][0]
                     == _segments(server, "source")[-1][0], timeout=15,
                     what="the rung's last segment")

    rung = broadcast(server).renditions["240p"]
    source = {s.sequence: s for s in broadcast(server).source.segments}
    assert any(s.discontinuity for s in rung.segments)  # the new encoder's new init segment
    listed = [s for s in rung.segments if not s.gap]
    numbers = [s.sequence for s in rung.segments]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert numbers[-1] == max(source)
    for segment in rung.segments:  # numbers and times agree with the source everywhere
        twin = source.get(segment.sequence)
        if twin is not None:
            assert segment.program_date_time == pytest.approx(twin.program_date_time, abs=0.05)
    starts = dict(zip([s.sequence for s in broadcast(server).source.segments],
                      _segment_starts(server, "source"), strict=True))
    rung_starts = dict(zip([s.sequence for s in listed], _listed_starts(server, "240p"),
                           strict=True))
    assert set(rung_starts) & set(starts)
    for sequence, start in rung_starts.items():
        if sequence in starts:
            assert start == starts[sequence], sequence
    metrics = await scrape(server)
    assert metrics.get("golive_transcode_worker_restarts_total") == 1
    status, playlist = await http_get(server.http_port, f"/live/{NAME}/240p/index.m3u8")
    assert status == 200 and "#EXT-X-DISCONTINUITY" in playlist
    check_media_playlist(playlist)
    gaps = metrics.get("golive_hls_gap_segments_total", stream=NAME, rendition="240p") or 0
    assert playlist.count("#EXT-X-GAP") == gaps == sum(s.gap for s in rung.segments)


async def test_a_ladder_behind_real_time_sheds_a_rung_and_ingest_flows_on(
        make_server: MakeServer, tmp_path: Path) -> None:
    # libx264's slowest preset cannot keep up with even these small rungs in real time.
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(
        ladder=("240p@300k", "180p@150k"), preset="placebo", workers=1))
    publisher = await PyAvPublisher.start(
        f"rtmp://127.0.0.1:{server.ingest.rtmp_port}/live/{KEY}", tmp_path / "encoded",
        seconds=18, realtime=True, width=640, height=360, gop=50)

    async def shed() -> bool:
        metrics = await scrape(server)
        return bool(metrics.get("golive_transcode_rung_sheds_total", stream=NAME,
                                rendition="240p"))

    for _ in range(200):
        if await shed():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the largest rung was never shed")
    await eventually(lambda: any(s.gap for s in broadcast(server).renditions["240p"].segments),
                     timeout=15, what="gaps in the shed rung")
    encoded = await publisher.finish(60)  # the publisher was never held up
    assert len(encoded.video) == 18 * 25

    metrics = await scrape(server)
    assert metrics.get("golive_transcode_shed_rungs", stream=NAME) == 1
    assert not metrics.get("golive_transcode_rung_sheds_total", stream=NAME, rendition="180p")
    # The shed rung's frames are counted as dropped, for that rung alone.
    assert metrics.count("golive_transcode_frames_dropped_total", stream=NAME,
                         rendition="240p") >= 25
    assert not metrics.count("golive_transcode_frames_dropped_total", stream=NAME,
                             rendition="180p")
    assert not metrics.count("golive_hub_dropped_units_total")
    # The source rendition lost nothing: all nine 2 s GOPs are segments (the last listed once
    # the publisher left).
    await eventually(lambda: not broadcast(server).live, timeout=10, what="the end")
    source = broadcast(server).source
    assert source.next_sequence == 9
    assert not any(s.gap for s in source.segments)
    status, playlist = await http_get(server.http_port, f"/live/{NAME}/240p/index.m3u8")
    assert status == 200 and "#EXT-X-GAP" in playlist
    check_media_playlist(playlist)


async def test_long_gops_get_a_reencoded_top_rung_in_place_of_the_source(
        make_server: MakeServer, tmp_path: Path) -> None:
    # Keyframes every 4 s, segments of 2 s: the source's segments must be cut between them.
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(
        ladder=("180p@150k",), long_gop="reencode"))
    publisher = await PyAvPublisher.start(
        f"rtmp://127.0.0.1:{server.ingest.rtmp_port}/live/{KEY}", tmp_path / "encoded",
        seconds=16, realtime=True, width=640, height=360, gop=100)
    await eventually(lambda: server.packager.get(NAME) is not None
                     and len(_segments(server, "360p")) >= 2, timeout=30,
                     what="segments of the re-encoded source")
    status, master = await http_get(server.http_port, f"/live/{NAME}/index.m3u8")
    await publisher.finish(60)
    assert status == 200
    assert [uri for uri in master.splitlines() if uri.endswith(".m3u8")] == [
        "360p/index.m3u8", "180p/index.m3u8"]  # the source is no longer offered
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in master
    source = broadcast(server).source
    assert not all(s.independent for s in source.segments)  # cut between keyframes
    top = broadcast(server).renditions["360p"]
    assert top.segments and all(s.independent for s in top.segments)
    dates = {s.sequence: s.program_date_time for s in source.segments}
    for segment in top.segments:  # aligned with the source it stands in for
        if segment.sequence in dates and not segment.gap:
            assert segment.program_date_time == dates[segment.sequence]
    frames, keys = _decode(server, "360p")
    assert {(f.width, f.height) for f in frames} == {(640, 360)}
    assert keys == _listed_starts(server, "360p")  # an IDR at every segment start
    metrics = await scrape(server)
    assert metrics.get("golive_hls_forced_cuts_total", stream=NAME, rendition="source")


async def test_hevc_rungs_are_offered_beside_the_h264_source(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(
        ladder=("180p@150k",), codec="libx265", preset="ultrafast"))
    clip = encode_clip(7.0, 640, 360)
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(clip.tags)
    await eventually(lambda: server.packager.get(NAME) is not None
                     and len(_segments(server, "180p")) >= 2, timeout=30,
                     what="two HEVC segments")
    await publisher.close()
    status, master = await http_get(server.http_port, f"/live/{NAME}/index.m3u8")
    assert status == 200
    codecs = dict(zip(re.findall(r"\n(\S+)/index.m3u8", master),
                      re.findall(r'CODECS="([^",]+)', master), strict=True))
    assert codecs["source"].startswith("avc1.") and codecs["180p"].startswith("hvc1.1.")
    frames, keys = _decode(server, "180p")
    assert frames and {(f.width, f.height) for f in frames} == {(320, 180)}
    starts = _segment_starts(server, "180p")
    assert keys == starts == _segment_starts(server, "source")[:len(starts)]
