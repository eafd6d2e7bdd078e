"""The HLS origin over real HTTP: status codes, headers, ranges, gzip, blocking rules, and
that nothing outside the store is reachable. Media comes from a real RTMP publication of a
PyAV-encoded clip; segments are read back with PyAV."""

from __future__ import annotations

import asyncio
import gzip
import io
import itertools
import re
import secrets
import time
from pathlib import Path

import aiohttp
import av
import pytest
from helpers import MakeServer, eventually, scrape
from publishers import RawPublisher, encode_clip

from golive.packager.config import HlsConfig
from golive.server import Server

pytestmark = pytest.mark.e2e

KEY = "k-" + secrets.token_hex(8)
NAME = "cam"


async def get(server: Server, path: str, headers: dict[str, str] | None = None,
              timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession(auto_decompress=False) as session, session.get(
            f"http://127.0.0.1:{server.http_port}{path}",
            headers={"Accept-Encoding": "identity", **(headers or {})},
            timeout=aiohttp.ClientTimeout(total=timeout)) as response:
        return response.status, dict(response.headers), await response.read()


@pytest.fixture(params=["disk", "memory"])
async def live(make_server: MakeServer, tmp_path: Path,
               request: pytest.FixtureRequest) -> tuple[Server, RawPublisher]:
    """A server (1 s segments, so blocking limits are short) with 6 s of media published and
    the publisher still connected; its store on disk (files sent by sendfile) or in memory."""
    store_dir = str(tmp_path / "store") if request.param == "disk" else None
    server = await make_server(hls=HlsConfig(segment_target=1.0, part_target=0.2,
                                             store_dir=store_dir),
                               keys={KEY: NAME})
    clip = encode_clip(6.0, 320, 240)
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(clip.tags)
    await eventually(lambda: server.packager.get(NAME) is not None
                     and len(server.packager.get(NAME).source.segments) >= 5,
                     what="five segments")
    yield server, publisher
    await publisher.close()


async def test_segments_play_back_and_join_up(live: tuple[Server, RawPublisher]) -> None:
    server, _ = live
    status, headers, body = await get(server, f"/live/{NAME}/source/index.m3u8")
    assert status == 200
    assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert headers["Access-Control-Allow-Origin"] == "*"
    text = body.decode()
    [init_uri] = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', text)
    segments = re.findall(r"^(seg-\d+\.m4s)$", text, re.M)
    assert len(segments) >= 5
    status, headers, init = await get(server, f"/live/{NAME}/source/{init_uri}")
    assert status == 200 and headers["Content-Type"] == "video/mp4"
    assert "immutable" in headers["Cache-Control"]
    bodies = []
    for uri in segments:
        status, headers, data = await get(server, f"/live/{NAME}/source/{uri}")
        assert status == 200
        bodies.append(data)
        with av.open(io.BytesIO(init + data)) as alone:  # each segment decodes on its own
            first = next(p for p in alone.demux(video=0) if p.dts is not None)
            assert first.is_keyframe
            assert alone.streams.video[0].codec_context.width == 320
    with av.open(io.BytesIO(init + b"".join(bodies))) as joined:
        for kind in ("video", "audio"):
            stream = getattr(joined.streams, kind)[0]
            dts = [float(p.dts * p.time_base) for p in joined.demux(stream) if p.dts is not None]
            gaps = [b - a for a, b in itertools.pairwise(dts)]
            assert all(0 < gap < 0.05 for gap in gaps), f"{kind} timestamps jump: {gaps}"
            joined.seek(0)


async def test_parts_add_up_to_their_segment(live: tuple[Server, RawPublisher]) -> None:
    server, _ = live
    _, _, body = await get(server, f"/live/{NAME}/source/index.m3u8")
    text = body.decode()
    blocks = re.findall(r"((?:#EXT-X-PART:[^\n]+\n)+)#EXTINF:[^\n]+\n(seg-\d+\.m4s)", text)
    assert blocks
    for parts, segment in blocks:
        uris = re.findall(r'URI="([^"]+)"', parts)
        datas = [(await get(server, f"/live/{NAME}/source/{uri}"))[2] for uri in uris]
        whole = (await get(server, f"/live/{NAME}/source/{segment}"))[2]
        assert b"".join(datas) == whole


async def test_not_found_and_no_way_out_of_the_store(live: tuple[Server, RawPublisher],
                                                     tmp_path: Path) -> None:
    server, _ = live
    (tmp_path / "store").mkdir(exist_ok=True)
    secret = tmp_path / "store" / "secret.txt"
    secret.write_text("do not serve")
    (tmp_path / "outside.txt").write_text("do not serve")
    for path in ("/live/nobody/index.m3u8", f"/live/{NAME}/other/index.m3u8",
                 f"/live/{NAME}/source/seg-999999.m4s", f"/live/{NAME}/source/secret.txt",
                 f"/live/{NAME}/source/..%2F..%2Fsecret.txt", "/live/..%2Fsecret.txt/index.m3u8",
                 f"/live/{NAME}/..%2F..%2Fsecret.txt/index.m3u8", "/live/%2E%2E/secret.txt",
                 f"/live/{NAME}/source/%2e%2e%2f%2e%2e%2foutside.txt",
                 f"/live/{NAME}/source/init-1.mp4%00.txt"):
        status, headers, body = await get(server, path)
        assert status in (400, 404), path
        assert b"do not serve" not in body
        if status == 404:
            assert headers.get("Cache-Control") == "no-cache" or path.startswith("/live/%")


async def test_range_requests(live: tuple[Server, RawPublisher]) -> None:
    server, _ = live
    path = f"/live/{NAME}/source/seg-1.m4s"
    _, headers, whole = await get(server, path)
    assert headers["Accept-Ranges"] == "bytes"
    status, headers, part = await get(server, path, {"Range": "bytes=100-199"})
    assert status == 206 and part == whole[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(whole)}"
    status, headers, tail = await get(server, path, {"Range": "bytes=-50"})
    assert status == 206 and tail == whole[-50:]
    status, headers, _ = await get(server, path, {"Range": f"bytes={len(whole) + 10}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(whole)}"


async def test_playlists_are_gzipped_when_asked(live: tuple[Server, RawPublisher]) -> None:
    server, _ = live
    path = f"/live/{NAME}/source/index.m3u8"
    _, plain_headers, plain = await get(server, path)
    status, headers, packed = await get(server, path, {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in headers["Vary"]
    assert gzip.decompress(packed) == plain and len(packed) < len(plain)
    assert "Content-Encoding" not in plain_headers
    assert re.fullmatch(r"public, max-age=\d+", plain_headers["Cache-Control"])


async def test_a_playlist_revalidates_with_its_etag(live: tuple[Server, RawPublisher]) -> None:
    server, _ = live
    path = f"/live/{NAME}/source/index.m3u8"
    _, headers, body = await get(server, path)
    etag = headers["Etag"]  # (as aiohttp's client spells it)
    status, again, empty = await get(server, path, {"If-None-Match": etag})
    assert status == 304 and empty == b"" and again["Etag"] == etag
    _, gzipped, _ = await get(server, path, {"Accept-Encoding": "gzip"})
    assert gzipped["Etag"] != etag  # another representation, another tag
    status, _, _ = await get(server, path, {"If-None-Match": '"something-else"'})
    assert status == 200
    # A new version of the playlist (here its end) is a new tag: never a 304 for old bytes.
    server.packager.get(NAME).source.end()
    status, changed, new_body = await get(server, path, {"If-None-Match": etag})
    assert status == 200 and changed["Etag"] != etag and new_body != body


async def test_blocking_reload_rules(live: tuple[Server, RawPublisher]) -> None:
    server, _ = live
    rendition = server.packager.get(NAME).source
    base = f"/live/{NAME}/source/index.m3u8"
    last = rendition.last_msn
    for query in ("_HLS_part=1", f"_HLS_msn={last + 3}", "_HLS_msn=x",
                  f"_HLS_msn={last}&_HLS_part=99", "_HLS_msn=-1"):
        status, _, _ = await get(server, f"{base}?{query}")
        assert status == 400, query
    # Already listed: answered at once, with the full playlist.
    started = time.monotonic()
    status, _, body = await get(server, f"{base}?_HLS_msn={last - 1}&_HLS_part=0")
    assert status == 200 and time.monotonic() - started < 0.5
    assert body.decode().startswith("#EXTM3U") and f"seg-{last - 1}.m4s" in body.decode()
    # Never coming (the publisher is idle): 503 after three target durations (3 s here).
    started = time.monotonic()
    status, _, _ = await get(server, f"{base}?_HLS_msn={last + 2}")
    waited = time.monotonic() - started
    assert status == 503 and 2.9 <= waited < 4.5
    metrics = await scrape(server)
    assert metrics.get("golive_http_playlist_requests_total", kind="media", blocking="yes") >= 2
    assert metrics.get("golive_http_blocking_reload_wait_seconds_count", kind="playlist") >= 2
    assert metrics.get("golive_http_responses_total", code="503") == 1
    assert metrics.get("golive_http_responses_total", code="400") == 5


async def test_preload_hinted_part_waits_for_its_bytes(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME})
    clip = encode_clip(4.0, 320, 240)
    media = [t for t in clip.tags if t.type in (8, 9)]
    header = [t for t in clip.tags if t not in media or not (t.is_coded_video or t.is_coded_audio)]
    coded = [t for t in media if t.is_coded_video or t.is_coded_audio]
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(header + coded[: len(coded) // 2])
    await eventually(lambda: server.packager.get(NAME) is not None
                     and server.packager.get(NAME).source.has_media, what="first part")
    rendition = server.packager.get(NAME).source
    await asyncio.sleep(0.2)
    text = rendition.text()
    [hint] = re.findall(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', text)
    request = asyncio.create_task(get(server, f"/live/{NAME}/source/{hint}"))
    await asyncio.sleep(0.3)
    assert not request.done()  # the part does not exist yet: the request waits
    await publisher.send_tags(coded[len(coded) // 2:])
    status, _, body = await asyncio.wait_for(request, 5)
    assert status == 200 and body[4:8] == b"moof"
    assert body == server.store.get(rendition.prefix + hint)
    # A part further ahead than the hint is not waited for.
    status, _, _ = await get(server, f"/live/{NAME}/source/part-{rendition.last_msn + 5}.0.m4s")
    assert status == 404
    await publisher.close()


async def test_metrics_api_and_pages(live: tuple[Server, RawPublisher]) -> None:
    server, _ = live
    await get(server, f"/live/{NAME}/index.m3u8", {"User-Agent": "viewer-1"})
    await get(server, f"/live/{NAME}/source/index.m3u8", {"User-Agent": "viewer-2"})
    metrics = await scrape(server)
    rendition = server.packager.get(NAME).source
    assert metrics.get("golive_hls_segments_total", stream=NAME, rendition="source") == (
        rendition.next_sequence - (1 if rendition.open else 0))
    assert metrics.get("golive_hls_parts_total", stream=NAME, rendition="source") >= 5 * 4
    assert metrics.get("golive_live_edge_delay_seconds", stream=NAME, rendition="source") < 1
    assert metrics.get("golive_hls_viewers", stream=NAME) == 2
    assert metrics.get("golive_http_sent_bytes_total", kind="playlist") > 0
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.http_port}/api/streams") as response:
            streams = (await response.json())["streams"]
        [stream] = streams
        assert stream["name"] == NAME and stream["viewers"] == 2
        [source] = stream["renditions"]
        assert source["playlist"] == f"/live/{NAME}/source/index.m3u8"
        assert source["resolution"] == [320, 240] and source["bandwidth"] > 0
        async with session.get(f"http://127.0.0.1:{server.http_port}/") as response:
            page = await response.text()
        assert f'href="/watch/{NAME}"' in page
        assert KEY not in page and KEY not in str(streams) and KEY not in metrics.text


@pytest.mark.parametrize("live", ["disk"], indirect=True)
async def test_a_disk_store_holds_what_another_server_needs(
        live: tuple[Server, RawPublisher], tmp_path: Path) -> None:
    server, _ = live
    root = tmp_path / "store" / NAME
    served = (await get(server, f"/live/{NAME}/source/index.m3u8"))[2].decode()
    on_disk = (root / "source" / "index.m3u8").read_text()
    # The same playlist (modulo a part listed in between), and every file it lists is there.
    assert on_disk.splitlines()[:6] == served.splitlines()[:6]
    listed = re.findall(r'^(?:#EXT-X-(?:PART|MAP):.*URI="([^"]+)"|(seg-\d+\.m4s))$', on_disk, re.M)
    assert len(listed) > 10
    for uri in listed:
        assert (root / "source" / (uri[0] or uri[1])).is_file(), uri
    [hint] = re.findall(r'PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', on_disk)
    assert not (root / "source" / hint).exists()
    assert (root / "index.m3u8").read_text().startswith("#EXTM3U")
    assert not list(root.rglob(".tmp-*"))  # atomic writes leave no temporaries
    server.packager.get(NAME).close()
    assert not [p for p in root.rglob("*") if p.is_file()]
