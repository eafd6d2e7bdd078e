"""The pages a viewer meets, over HTTP: an unknown name is a 404, a known one not live yet
waits, an ended broadcast says so, the list says how long ago; the per-stream API they use."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from pathlib import Path

import aiohttp
import av
import pytest
from helpers import MakeServer, eventually, http_get
from publishers import RawPublisher, encode_clip

import golive.packager.broadcast
from golive.packager.config import HlsConfig
from golive.transcode.config import TranscodeConfig

KEY = "watch-page-key-1"


async def test_an_unknown_name_is_a_404_and_a_known_one_waits(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: "cam"}, transcode=TranscodeConfig(enabled=False))
    status, text = await http_get(server.http_port, "/watch/nobody")
    assert status == 404 and "Nobody publishes a stream named <code>nobody</code>" in text
    status, text = await http_get(server.http_port, "/watch/cam")  # configured, not live yet
    assert status == 200 and 'id="state">offline<' in text and "waiting for the stream" in text
    status, _ = await http_get(server.http_port, "/api/streams/cam")
    assert status == 404  # no broadcast under that name (yet)


async def test_in_open_mode_every_valid_name_may_still_come(make_server: MakeServer) -> None:
    server = await make_server(open=True, transcode=TranscodeConfig(enabled=False))
    status, _ = await http_get(server.http_port, "/watch/anything")
    assert status == 200
    status, _ = await http_get(server.http_port, "/watch/..%2Fetc")
    assert status == 404


async def test_live_then_ended_as_the_pages_and_the_api_say(
        make_server: MakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(golive.packager.broadcast, "ENDED_RETENTION", 30.0)
    server = await make_server(keys={KEY: "cam"}, hls=HlsConfig(grace_period=0.3),
                               transcode=TranscodeConfig(enabled=False))
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(encode_clip(3.0, 320, 240).tags)
    await eventually(lambda: server.packager.get("cam") is not None
                     and server.packager.get("cam").source.segments, what="a segment")
    status, body = await http_get(server.http_port, "/api/streams/cam")
    info = json.loads(body)
    assert status == 200 and info["state"] == "live" and info["ended_seconds_ago"] is None
    assert info["uptime_seconds"] >= 0 and info["resolution"] == [320, 240]
    status, listing = await http_get(server.http_port, "/")
    assert "<td>live for 0:0" in listing
    await publisher.close()
    await eventually(lambda: server.packager.get("cam").ended, what="ENDLIST")
    status, body = await http_get(server.http_port, "/api/streams/cam")
    info = json.loads(body)
    assert info["state"] == "ended" and 0 <= info["ended_seconds_ago"] < 5
    status, text = await http_get(server.http_port, "/watch/cam")
    assert status == 200 and '<p class="notice" id="ended">This broadcast ended just now.' in text
    assert "<video" not in text
    broadcast = server.packager.get("cam")
    broadcast.ended_at = time.time() - 150  # as if it ended two and a half minutes ago
    status, listing = await http_get(server.http_port, "/")
    assert "<td>ended 2 min ago</td>" in listing and "since" not in listing
    await asyncio.sleep(0)


async def test_a_live_stream_has_a_thumbnail_at_a_stable_url(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: "cam"}, transcode=TranscodeConfig(enabled=False))
    status, _ = await http_get(server.http_port, "/live/cam/thumbnail.jpg")
    assert status == 404  # not live
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(encode_clip(3.0, 320, 240).tags)
    await eventually(lambda: server.packager.thumbnail("cam") is not None, timeout=10,
                     what="a thumbnail")
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{server.http_port}/live/cam/thumbnail.jpg") as response:
        assert response.status == 200 and response.content_type == "image/jpeg"
        assert "max-age=5" in response.headers["Cache-Control"]
        jpeg = await response.read()
    assert jpeg[:2] == b"\xff\xd8" and len(jpeg) < 50_000
    with av.open(io.BytesIO(jpeg)) as container:
        (frame,) = list(container.decode(video=0))
    assert (frame.width, frame.height) == (320, 240)
    _, listing = await http_get(server.http_port, "/")
    assert '<img src="/live/cam/thumbnail.jpg" alt="" width="160">' in listing
    _, page = await http_get(server.http_port, "/watch/cam")
    assert re.search(r'<meta property="og:image" content="http://127\.0\.0\.1:\d+/live/cam/'
                     r'thumbnail\.jpg">', page)
    await publisher.close()


async def test_an_ended_broadcast_links_its_recording(make_server: MakeServer,
                                                     tmp_path: Path) -> None:
    server = await make_server(keys={KEY: "cam"}, transcode=TranscodeConfig(enabled=False),
                               hls=HlsConfig(grace_period=0.2, record_dir=str(tmp_path)))
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(encode_clip(3.0, 320, 240).tags)
    await eventually(lambda: server.packager.get("cam") is not None
                     and server.packager.get("cam").source.segments, what="a segment")
    await publisher.close()
    await eventually(lambda: server.packager.get("cam").ended, what="ENDLIST")
    _, page = await http_get(server.http_port, "/watch/cam")
    link = re.search(r'<a href="(/recordings/cam/\d{8}T\d{6}Z/index\.m3u8)">Its recording</a>',
                     page)
    assert link, page
    status, playlist = await http_get(server.http_port, link.group(1))
    assert status == 200 and "#EXT-X-PLAYLIST-TYPE:VOD" in playlist
    assert playlist.rstrip().endswith("#EXT-X-ENDLIST")
    first = next(line for line in playlist.splitlines() if line.startswith("seg-"))
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{server.http_port}"
            + link.group(1).replace("index.m3u8", first)) as response:
        assert response.status == 200 and len(await response.read()) > 1000
    for bad in ("/recordings/cam/..%2F..%2F/index.m3u8", "/recordings/cam/20260101T000000Z/x.py",
                "/recordings/..%2Fcam/20260101T000000Z/index.m3u8"):
        assert (await http_get(server.http_port, bad))[0] == 404, bad
