"""The viewer load generator (bench/viewer_load.py): which blocking reload an hls.js player asks
for next, from golive's own playlist text (captured from a live golive with the 3-rung ladder:
an open segment, the moment a segment completes, a rung whose older segments list no parts),
and a few seconds of 20 viewers on a real server with a real-time publisher, checked from the
generator's raw records: every viewer fetched every listed part, in order, exactly once."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from helpers import MakeServer

from bench.hls import SECRET, STREAM, Publication, clip, publish
from bench.viewer_load import (
    PART_KEY,
    Directives,
    join_position,
    next_request,
    parse_master,
    parse_media,
)
from bench.viewers import wait_live

REPO = Path(__file__).resolve().parent.parent

MASTER = """\
#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=2580060,AVERAGE-BANDWIDTH=2381934,CODECS="avc1.64001F,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=25.000,NAME="source"
source/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1324748,AVERAGE-BANDWIDTH=1293900,CODECS="avc1.64001E,mp4a.40.2",RESOLUTION=854x480,FRAME-RATE=25.000,NAME="480p"
480p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=833172,AVERAGE-BANDWIDTH=814502,CODECS="avc1.64001E,mp4a.40.2",RESOLUTION=640x360,FRAME-RATE=25.000,NAME="360p"
360p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=436308,AVERAGE-BANDWIDTH=424830,CODECS="avc1.640015,mp4a.40.2",RESOLUTION=426x240,FRAME-RATE=25.000,NAME="240p"
240p/index.m3u8
"""

OPEN_SEGMENT = """\
#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.960,HOLD-BACK=6.000
#EXT-X-PART-INF:PART-TARGET=0.320
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init-1.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-12-04T03:30:18.448Z
#EXT-X-PART:DURATION=0.320,URI="part-0.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.320,URI="part-0.1.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-0.2.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-0.3.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-0.4.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-0.5.m4s"
#EXT-X-PART:DURATION=0.080,URI="part-0.6.m4s"
#EXTINF:2.000,
seg-0.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-04T03:30:20.448Z
#EXT-X-PART:DURATION=0.320,URI="part-1.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.320,URI="part-1.1.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-1.2.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-1.3.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-1.4.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-1.5.m4s"
#EXT-X-PART:DURATION=0.080,URI="part-1.6.m4s"
#EXTINF:2.000,
seg-1.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-04T03:30:22.448Z
#EXT-X-PART:DURATION=0.320,URI="part-2.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.320,URI="part-2.1.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-2.2.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-2.3.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-2.4.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-2.5.m4s"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-2.6.m4s"
#EXT-X-RENDITION-REPORT:URI="../480p/index.m3u8",LAST-MSN=2,LAST-PART=4
#EXT-X-RENDITION-REPORT:URI="../360p/index.m3u8",LAST-MSN=2,LAST-PART=4
#EXT-X-RENDITION-REPORT:URI="../240p/index.m3u8",LAST-MSN=2,LAST-PART=4
"""

SEGMENT_COMPLETE = """\
#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.960,HOLD-BACK=6.000
#EXT-X-PART-INF:PART-TARGET=0.320
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init-1.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-12-04T03:30:18.448Z
#EXT-X-PART:DURATION=0.320,URI="part-0.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.320,URI="part-0.1.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-0.2.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-0.3.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-0.4.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-0.5.m4s"
#EXT-X-PART:DURATION=0.080,URI="part-0.6.m4s"
#EXTINF:2.000,
seg-0.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-04T03:30:20.448Z
#EXT-X-PART:DURATION=0.320,URI="part-1.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.320,URI="part-1.1.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-1.2.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-1.3.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-1.4.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-1.5.m4s"
#EXT-X-PART:DURATION=0.080,URI="part-1.6.m4s"
#EXTINF:2.000,
seg-1.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-04T03:30:22.448Z
#EXT-X-PART:DURATION=0.320,URI="part-2.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.320,URI="part-2.1.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-2.2.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-2.3.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-2.4.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-2.5.m4s"
#EXT-X-PART:DURATION=0.080,URI="part-2.6.m4s"
#EXTINF:2.000,
seg-2.m4s
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-3.0.m4s"
#EXT-X-RENDITION-REPORT:URI="../480p/index.m3u8",LAST-MSN=2,LAST-PART=4
#EXT-X-RENDITION-REPORT:URI="../360p/index.m3u8",LAST-MSN=2,LAST-PART=4
#EXT-X-RENDITION-REPORT:URI="../240p/index.m3u8",LAST-MSN=2,LAST-PART=4
"""

RUNG_480P = """\
#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.960,HOLD-BACK=6.000
#EXT-X-PART-INF:PART-TARGET=0.320
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init-1.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-12-04T03:30:18.448Z
#EXTINF:2.000,
seg-0.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-04T03:30:20.448Z
#EXTINF:2.000,
seg-1.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-04T03:30:22.448Z
#EXT-X-PART:DURATION=0.320,URI="part-2.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.320,URI="part-2.1.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-2.2.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-2.3.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-2.4.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-2.5.m4s"
#EXT-X-PART:DURATION=0.080,URI="part-2.6.m4s"
#EXTINF:2.000,
seg-2.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-04T03:30:24.448Z
#EXT-X-PART:DURATION=0.320,URI="part-3.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.320,URI="part-3.1.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-3.2.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-3.3.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-3.4.m4s"
#EXT-X-PART:DURATION=0.320,URI="part-3.5.m4s"
#EXT-X-PART:DURATION=0.080,URI="part-3.6.m4s"
#EXTINF:2.000,
seg-3.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-04T03:30:26.448Z
#EXT-X-PART:DURATION=0.320,URI="part-4.0.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-4.1.m4s"
#EXT-X-RENDITION-REPORT:URI="../source/index.m3u8",LAST-MSN=4,LAST-PART=0
#EXT-X-RENDITION-REPORT:URI="../360p/index.m3u8",LAST-MSN=4,LAST-PART=0
#EXT-X-RENDITION-REPORT:URI="../240p/index.m3u8",LAST-MSN=3,LAST-PART=6
"""


def key(msn: int, index: int) -> int:
    return msn * PART_KEY + index


def test_an_open_segment_asks_for_its_next_part() -> None:
    playlist = parse_media(OPEN_SEGMENT)
    assert playlist.end_sn == 1 and playlist.last_part == (2, 5)
    assert playlist.part_target == 0.32 and playlist.target_duration == 2
    assert playlist.init == "init-1.mp4"
    assert len(playlist.keys) == 7 + 7 + 6 and playlist.keys[:2] == (key(0, 0), key(0, 1))
    assert next_request(playlist).query() == "?_HLS_msn=2&_HLS_part=6"


def test_a_complete_segment_rolls_over_to_the_next_segments_first_part() -> None:
    # hls.js: lastPartSn === endSN, so msn = endSN + 1, part = 0 (not part 7 of segment 2)
    playlist = parse_media(SEGMENT_COMPLETE)
    assert playlist.end_sn == 2 and playlist.last_part == (2, 6)
    assert next_request(playlist) == Directives(3, 0)
    assert next_request(playlist).query() == "?_HLS_msn=3&_HLS_part=0"


def test_parts_are_numbered_by_segment_when_older_segments_list_none() -> None:
    playlist = parse_media(RUNG_480P)
    assert playlist.end_sn == 3 and playlist.last_part == (4, 0)
    assert playlist.keys[0] == key(2, 0) and playlist.uris[0] == "part-2.0.m4s"
    # every part's URI agrees with the (msn, index) counted from the media sequence
    assert all(uri == f"part-{k // PART_KEY}.{k % PART_KEY}.m4s"
               for k, uri in zip(playlist.keys, playlist.uris, strict=True))
    assert playlist.starts[0] == pytest.approx(4.0)  # after two 2 s segments
    assert next_request(playlist).query() == "?_HLS_msn=4&_HLS_part=1"


def test_an_old_response_asks_further_ahead_like_hls_js_cdn_tune_in() -> None:
    playlist = parse_media(OPEN_SEGMENT)
    # age 1 s: goal 0.68 s = 2 parts more (Math.round(2.125))
    assert next_request(playlist, age=1.0) == Directives(2, 8, pytest.approx(0.68))
    # age 2.5 s: goal 2.18 s = one segment and round(0.5625) = 1 part more
    assert next_request(playlist, age=2.5)[:2] == (3, 7)
    # older than three target durations: no directives at all
    assert next_request(playlist, age=6.5).query() == ""
    # the goal grew since the last response: hls.js stops trusting the age
    assert next_request(playlist, age=1.0, previous_goal=0.5) == Directives(2, 6, 0.0)
    assert next_request(playlist, age=0.3) == Directives(2, 6)  # within a part target


def test_a_joining_viewer_starts_at_the_independent_part_before_part_hold_back() -> None:
    # live edge minus PART-HOLD-BACK (0.96 s) falls in part 2.3; back to 2.0, the INDEPENDENT
    playlist = parse_media(OPEN_SEGMENT)
    assert playlist.part_hold_back == 0.96
    assert playlist.keys[join_position(playlist)] == key(2, 0)
    # 8.32 - 0.96 = 7.36 s is in part 3.4: from 3.0, a segment before the edge's
    rung = parse_media(RUNG_480P)
    assert rung.keys[join_position(rung)] == key(3, 0)


def test_the_master_playlists_variants_highest_bandwidth_first() -> None:
    variants = parse_master(MASTER, "http://127.0.0.1:8080/live/bench/index.m3u8")
    assert [v.name for v in variants] == ["source", "480p", "360p", "240p"]
    assert variants[0].path == "/live/bench/source/index.m3u8"
    assert variants[0].bandwidth == 2580060


VIEWERS = 20


@pytest.mark.e2e
@pytest.mark.timeout(30)
async def test_viewers_fetch_every_listed_part_in_order_exactly_once(
        make_server: MakeServer, tmp_path: Path) -> None:
    server = await make_server(keys={SECRET: STREAM})
    stop, publication = asyncio.Event(), Publication()
    publisher = asyncio.create_task(publish(server.ingest.rtmp_port, stop, publication,
                                            clip(320, 180)))
    url = f"http://127.0.0.1:{server.http_port}/live/{STREAM}/index.m3u8"
    dump = tmp_path / "viewers.json"
    try:
        await wait_live(url, 1, timeout=10)
        # the generator in its own processes, as the benchmark runs it, the server in ours;
        # 5 viewers per source address (10 connections, within the per-address cap)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.viewer_load", "--url", url, "--viewers",
            str(VIEWERS), "--rate", "100", "--per-address", "5", "--warmup", "1",
            "--seconds", "3", "--drain", "1", "--dump", str(dump), cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    finally:
        stop.set()
        await publisher
    assert proc.returncode == 0, err.decode()
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["started", "joined", "window", "window_end",
                                            "report"]
    report = events[-1]
    assert report["joined"] == VIEWERS and not report["failed"] and not report["errors"]
    assert report["held"] and report["missed"] == report["skipped"] == 0
    assert report["parts"]["source"] >= 6  # 3 s of 0.32 s parts
    lag = report["lag_ms"]
    assert 0 < report["lag_min_ms"] <= lag["p50"] <= lag["p95"] <= lag["max"] < 820
    assert report["requests_per_s"] > VIEWERS * 4  # a reload and a part per 0.32 s each

    # From the raw records, not the generator's own analysis:
    records = json.loads(dump.read_text())
    start, end = (int(t * 1e9) for t in records["window"])
    reference = records["references"]["source"]
    listed = reference["keys"]
    first_listed = dict(zip(listed, reference["listed"], strict=True))
    sizes: dict[int, int] = {}
    for viewer in records["viewers"]:
        for k, t in zip(viewer["keys"], viewer["listed"], strict=True):
            first_listed[k] = min(first_listed.get(k, t), t)
    for viewer in records["viewers"]:
        fetched = viewer["done"]
        assert fetched, viewer["index"]
        at = listed.index(fetched[0])
        # in order, exactly once, nothing skipped: a run of the reference's own listing ...
        assert fetched == listed[at : at + len(fetched)], viewer["index"]
        # ... that covers every part listed from the viewer's join to the window's end
        due = [k for k in listed[at:] if first_listed[k] <= end]
        assert fetched[: len(due)] == due
        assert viewer["keys"][: len(fetched)] == fetched  # fetched as listed
        for k, got, size in zip(fetched, viewer["fetched"], viewer["sizes"], strict=True):
            assert size > 0 and sizes.setdefault(k, size) == size  # the same bytes for all
            if start <= first_listed[k] <= end:
                assert 0 < got - first_listed[k] < 820e6, (viewer["index"], k)
