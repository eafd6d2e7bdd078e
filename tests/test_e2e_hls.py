"""End to end through HLS: real publishers in, real players out.

PyAV publishes to golive over RTMP; libavformat's own HLS demuxer (through PyAV, in a child
process so the server's event loop keeps running) plays the master playlist from the origin.
Blocking reload is timed against the packager's own "part listed" event.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import av
import pytest
from helpers import MakeServer, eventually, http_get, scrape
from publishers import FPS, FlvTag, PyAvPublisher, RawPublisher, encode_clip

from golive.packager.config import HlsConfig
from golive.packager.rendition import Rendition
from golive.server import Server

pytestmark = pytest.mark.e2e

KEY = "k-" + secrets.token_hex(8)
NAME = "show"

# Plays an HLS URL with libavformat and reports every packet's timing as JSON on stdout.
PLAYER = r"""
import json, sys, av
url, seconds = sys.argv[1], float(sys.argv[2])
container = av.open(url, options={"live_start_index": "0", "http_persistent": "0"}, timeout=20)
video = container.streams.video[0]
packets = {"video": [], "audio": []}
decoded = 0
for packet in container.demux():
    if packet.dts is None:
        continue
    kind = packet.stream.type
    packets[kind].append([float(packet.dts * packet.time_base),
                          float(packet.pts * packet.time_base), bool(packet.is_keyframe)])
    if kind == "video":
        decoded += len(packet.decode())
        first = packets["video"][0][0]
        if packets["video"][-1][0] - first >= seconds:
            break
print(json.dumps({"packets": packets, "decoded": decoded,
                  "size": [video.codec_context.width, video.codec_context.height]}))
"""


def rtmp_url(server: Server, key: str = KEY) -> str:
    return f"rtmp://127.0.0.1:{server.ingest.rtmp_port}/live/{key}"


def source(server: Server, name: str = NAME) -> Rendition:
    broadcast = server.packager.get(name)
    assert broadcast is not None
    return broadcast.source


async def test_libavformat_plays_the_live_stream(make_server: MakeServer, tmp_path: Path) -> None:
    server = await make_server(keys={KEY: NAME})
    publisher = await PyAvPublisher.start(rtmp_url(server), tmp_path / "out.pickle",
                                          seconds=16, realtime=True, width=320, height=240)
    try:
        # libavformat's HLS demuxer reads whole segments only (it ignores LL-HLS parts).
        await eventually(lambda: server.packager.get(NAME) is not None
                         and bool(source(server).segments), timeout=15, what="first segment")
        url = f"http://127.0.0.1:{server.http_port}/live/{NAME}/index.m3u8"
        player = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PLAYER, url, "10", stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(player.communicate(), 60)
        assert player.returncode == 0, err.decode(errors="replace")[-2000:]
    finally:
        publisher.kill()
    played = json.loads(out)
    video, audio = played["packets"]["video"], played["packets"]["audio"]
    assert played["size"] == [320, 240]
    assert video[0][2], "playback starts on a keyframe"
    assert video[-1][0] - video[0][0] >= 10.0, "at least 10 s of media played"
    assert played["decoded"] >= len(video) - 4  # every frame decodes (decoder delay aside)
    frame = 1 / FPS
    for kind, units, limit in (("video", video, frame * 1.5), ("audio", audio, 0.03)):
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(units)]
        assert all(0 < gap <= limit for gap in gaps), (
            f"{kind} timestamps jump: {[g for g in gaps if not 0 < g <= limit][:5]}")
    assert abs(audio[-1][0] - video[-1][0]) < 0.5  # audio and video stay together


async def test_blocking_reload_answers_within_a_part_of_the_part_appearing(
        make_server: MakeServer, tmp_path: Path) -> None:
    server = await make_server(keys={KEY: NAME})
    publisher = await PyAvPublisher.start(rtmp_url(server), tmp_path / "out.pickle",
                                          seconds=12, realtime=True)
    try:
        await eventually(lambda: server.packager.get(NAME) is not None
                         and source(server).has_media, timeout=15, what="first part")
        rendition = source(server)
        base = f"/live/{NAME}/source/index.m3u8"
        lags = []
        for _ in range(6):
            msn, part = rendition.last_msn, rendition.last_part + 1
            listed = asyncio.get_running_loop().create_future()

            async def watch(msn: int = msn, part: int = part,
                            listed: asyncio.Future[float] = listed) -> None:
                await rendition.wait_for(msn, part, 10)
                listed.set_result(time.monotonic())

            watcher = asyncio.create_task(watch())
            query = f"?_HLS_msn={msn}&_HLS_part={part}"
            status, text = await http_get(server.http_port, base + query)
            answered = time.monotonic()
            await watcher
            assert status == 200
            assert rendition.has(msn, part)
            wanted = f"part-{msn}.{part}.m4s" if part <= len(re.findall(
                rf'URI="part-{msn}\.', text)) - 1 else f"part-{msn + 1}.0.m4s"
            assert wanted in text or f"seg-{msn}.m4s" in text
            lags.append(answered - listed.result())
        part_target = rendition.part_target_ms / 1000
        assert max(lags) < part_target, f"answers lagged the part by {lags}"
    finally:
        publisher.kill()


async def test_reconnect_within_grace_continues_then_ends(make_server: MakeServer) -> None:
    server = await make_server(hls=HlsConfig(grace_period=1.5), keys={KEY: NAME})
    clip = encode_clip(6.0, 320, 240)
    units = sum(t.is_coded_video or t.is_coded_audio for t in clip.tags)

    async def publish_once() -> None:
        publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
        assert (await publisher.publish()).code == "NetStream.Publish.Start"
        await publisher.send_tags(clip.tags)
        await eventually(lambda: server.hub.get(NAME) is not None
                         and server.hub.get(NAME).units_in == units,
                         what="all units ingested")
        await publisher.close()
        await eventually(lambda: server.hub.get(NAME) is None, what="publisher gone")

    await publish_once()
    rendition = source(server)
    await eventually(lambda: not server.packager.get(NAME).live, what="publication ended")
    first = rendition.text()
    first_sequences = [int(n) for n in re.findall(r"^seg-(\d+)\.m4s$", first, re.M)]
    assert "#EXT-X-ENDLIST" not in first  # still within the grace period
    assert first_sequences == list(range(len(first_sequences)))

    await publish_once()  # back within the grace period
    assert server.packager.get(NAME).source is rendition
    second = rendition.text()
    sequences = [int(n) for n in re.findall(r"^seg-(\d+)\.m4s$", second, re.M)]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    assert sequences[-1] > first_sequences[-1]
    assert second.count("#EXT-X-DISCONTINUITY\n") == 1, second
    assert "init-2.mp4" in second
    metrics = await scrape(server)
    assert metrics.get("golive_hls_discontinuities_total", stream=NAME, cause="reconnect") == 1

    await rendition.wait_changed(5)  # the grace period runs out: ENDLIST
    await eventually(lambda: rendition.ended, timeout=5, what="ENDLIST")
    status, ended = await http_get(server.http_port, f"/live/{NAME}/source/index.m3u8")
    assert status == 200
    assert ended.rstrip().endswith("#EXT-X-ENDLIST")
    assert "PRELOAD-HINT" not in ended and "SERVER-CONTROL" not in ended


async def test_master_playlist_describes_the_real_stream(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME})
    clip = encode_clip(6.0, 320, 240)
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(clip.tags)
    await eventually(lambda: server.packager.get(NAME) is not None
                     and len(source(server).segments) >= 2, what="two segments")
    status, master = await http_get(server.http_port, f"/live/{NAME}/index.m3u8")
    await publisher.close()
    assert status == 200
    [inf] = [line for line in master.splitlines() if line.startswith("#EXT-X-STREAM-INF:")]
    assert "RESOLUTION=320x240" in inf
    assert "FRAME-RATE=25.000" in inf
    track = server.hub.get(NAME).tracks if server.hub.get(NAME) else None
    codecs = re.search(r'CODECS="([^"]+)"', inf).group(1).split(",")
    assert codecs[0].startswith("avc1.") and codecs[1] == "mp4a.40.2"
    if track is not None:
        assert codecs[0] == next(t.codec_string for t in track.values() if t.kind == "video")
    # Bandwidth from the real segment sizes: the peak segment rate, the window average.
    rendition = source(server)
    rates = [s.size * 8000 / s.duration_ms for s in rendition.segments]
    peak = int(re.search(r"BANDWIDTH=(\d+)", inf).group(1))
    average = int(re.search(r"AVERAGE-BANDWIDTH=(\d+)", inf).group(1))
    total = sum(s.size for s in rendition.segments) * 8000 / sum(
        s.duration_ms for s in rendition.segments)
    assert peak >= max(rates) * 0.999 and peak >= average
    assert abs(average - total) <= 1


async def test_recording_becomes_a_vod_playlist(make_server: MakeServer, tmp_path: Path) -> None:
    records = tmp_path / "records"
    left_open = records / "old" / "20260101T000000Z"
    left_open.mkdir(parents=True)
    (left_open / "index.m3u8").write_text("#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n")
    server = await make_server(hls=HlsConfig(grace_period=0.2, record_dir=str(records)),
                               keys={KEY: NAME})
    assert (left_open / "index.m3u8").read_text().rstrip().endswith("#EXT-X-ENDLIST")
    clip = encode_clip(6.0, 320, 240)
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(clip.tags)
    await eventually(lambda: server.hub.get(NAME) is not None and server.hub.get(NAME).units_in
                     == len(clip.encoded.video) + len(clip.encoded.audio), what="ingested")
    [playlist] = (records / NAME).glob("*/index.m3u8")
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist.read_text()  # playable while it grows
    await publisher.close()
    await eventually(lambda: server.packager.get(NAME).ended, what="broadcast ended")
    text = playlist.read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    listed = sum(float(d) for d in re.findall(r"#EXTINF:([\d.]+),", text))
    assert abs(listed - len(clip.encoded.video) / FPS) <= 1 / FPS
    played = await asyncio.to_thread(_count_frames, playlist)
    assert played == len(clip.encoded.video)


def _count_frames(playlist: Path) -> int:
    with av.open(str(playlist)) as container:
        return sum(1 for _ in container.decode(video=0))


async def test_mpegts_playlist_for_legacy_players(make_server: MakeServer) -> None:
    server = await make_server(hls=HlsConfig(mpegts=True), keys={KEY: NAME})
    clip = encode_clip(6.0, 320, 240)
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(clip.tags)
    await publisher.close()
    await eventually(lambda: server.packager.get(NAME) is not None
                     and not server.packager.get(NAME).live, what="publication over")
    status, ts_text = await http_get(server.http_port, f"/live/{NAME}/ts/index.m3u8")
    assert status == 200
    _, fmp4_text = await http_get(server.http_port, f"/live/{NAME}/source/index.m3u8")
    _, master = await http_get(server.http_port, f"/live/{NAME}/index.m3u8")
    assert "ts/" not in master  # legacy players are given the TS playlist directly
    assert "#EXT-X-VERSION:3" in ts_text and "EXT-X-MAP" not in ts_text
    assert "EXT-X-PART" not in ts_text and "PRELOAD-HINT" not in ts_text
    ts_segments = re.findall(r"^seg-(\d+)\.ts$", ts_text, re.M)
    assert ts_segments == re.findall(r"^seg-(\d+)\.m4s$", fmp4_text, re.M)  # same cuts
    assert re.findall(r"#EXTINF:([\d.]+)", ts_text) == re.findall(r"#EXTINF:([\d.]+)", fmp4_text)
    body = b""
    async with aiohttp.ClientSession() as session:
        for number in ts_segments:
            url = f"http://127.0.0.1:{server.http_port}/live/{NAME}/ts/seg-{number}.ts"
            async with session.get(url) as response:
                assert response.headers["Content-Type"] == "video/mp2t"
                data = await response.read()
            pids = [int.from_bytes(data[i + 1:i + 3], "big") & 0x1FFF
                    for i in range(0, 4 * 188, 188)]
            # PAT first (the stream's very first segment opens with its one SDT, PID 0x11).
            assert pids[0] == 0 or pids[:2] == [0x11, 0], pids
            body += data
    with av.open(io.BytesIO(body), format="mpegts") as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == len(clip.encoded.video)


async def test_empty_frames_from_a_publisher_are_dropped_alone(make_server: MakeServer) -> None:
    """An AAC tag with no frame in it and a video tag with no NAL unit carry nothing to
    play (and libavformat's mp4 muxer refuses a part holding an empty video sample): they
    are dropped and counted, and the stream around them is whole."""
    server = await make_server(keys={KEY: NAME})
    clip = encode_clip(6.0, 320, 240)
    tags = list(clip.tags)
    middle = next(i for i, t in enumerate(tags) if t.is_coded_audio and t.timestamp > 3000)
    at = tags[middle].timestamp
    tags[middle:middle] = [FlvTag(8, at, tags[middle].body[:2]),  # AAC raw, nothing in it
                           FlvTag(9, at, b"\x27\x01\x00\x00\x00")]  # AVC NALU, no NAL unit
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(tags)
    await publisher.close()
    await eventually(lambda: server.packager.get(NAME) is not None
                     and not server.packager.get(NAME).live, what="the end of the stream")
    metrics = await scrape(server)
    assert metrics.count("golive_hls_mux_errors_total", stream=NAME) == 0
    assert metrics.count("golive_hls_dropped_units_total", stream=NAME) >= 2
    # Everything else is in the segments: 6 s of 25 fps video.
    assert sum(s.duration_ms for s in source(server).segments) >= 5900
