"""End to end through the transcoding ladder: a real H.264 publisher in, aligned renditions out.

A synthetic 640x360 H.264 + AAC clip (tests/publishers.py) is published over RTMP at full
speed; the transcoder's worker process encodes two rungs. What is checked is what players rely
on: every rung decodes at its own size, IDRs sit at the same presentation times in every
rendition, and the playlists list the same segment boundaries everywhere.
"""

from __future__ import annotations

import io
import re
import secrets

import av
import pytest
from conftest import MakeServer, eventually, http_get, scrape
from publishers import RawPublisher, encode_clip

from golive.config import TranscodeConfig
from golive.packager.service import Broadcast
from golive.server import Server

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
    count = len(broadcast(server).renditions[name].segments)
    starts = []
    for index in range(count):
        frames, _ = _decode(server, name, slice(index, index + 1))
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
    for name in ("240p", "180p"):
        rung = _segments(server, name)
        assert rung == source_segments[:len(rung)], name
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
    await publisher.close()

    metrics = await scrape(server)
    assert metrics.get("golive_transcode_renditions", stream=NAME) == 2
    for name in ("240p", "180p"):
        encoded = metrics.get("golive_transcode_frames_out_total", stream=NAME, rendition=name)
        assert encoded is not None and encoded >= 3 * 50  # three 2 s segments at 25 fps
