"""Metrics an operator can alert on: a stream's series exist at 0 from its start, stay
through a publisher's drop and the grace period, the live edge goes at ENDLIST, and every
series of the stream goes together when its broadcast expires. No `_created` twins; the
server's and the workers' process figures; the build."""

from __future__ import annotations

import asyncio

import pytest
from helpers import MakeServer, eventually, scrape
from publishers import RawPublisher, encode_clip

import golive.packager.broadcast
from golive.packager.config import HlsConfig
from golive.transcode.config import TranscodeConfig

KEY = "lifecycle-key-123"


def stream_series(text: str, stream: str) -> set[str]:
    return {line.split("{")[0] for line in text.splitlines()
            if f'stream="{stream}"' in line and not line.startswith("#")}


async def test_one_lifecycle_for_every_series_of_a_stream(
        make_server: MakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(golive.packager.broadcast, "ENDED_RETENTION", 0.5)
    server = await make_server(keys={KEY: "cam"}, hls=HlsConfig(grace_period=0.5),
                               transcode=TranscodeConfig(ladder=("180p@200k",)))
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    clip = encode_clip(5.0, 320, 240)
    await publisher.send_tags(clip.tags)
    await eventually(lambda: server.packager.get("cam") is not None
                     and len(server.packager.get("cam").renditions.get("180p").segments
                             if server.packager.get("cam").renditions.get("180p") else []) >= 1,
                     timeout=20, what="a transcoded segment")
    live = await scrape(server)
    # Counters with known labels are there at 0 before anything went wrong.
    for name, labels in [
            ("golive_hls_dropped_units_total", {}),
            ("golive_hls_mux_errors_total", {}),
            ("golive_hls_discontinuities_total", {"cause": "reconnect"}),
            ("golive_hls_discontinuities_total", {"cause": "timestamp jump"}),
            ("golive_hls_forced_cuts_total", {"rendition": "source"}),
            ("golive_hls_gap_segments_total", {"rendition": "180p"}),
            ("golive_hub_dropped_units_total", {"subscriber": "hls"}),
            ("golive_transcode_frames_dropped_total", {"rendition": "180p"}),
            ("golive_transcode_rung_sheds_total", {"rendition": "180p"}),
            ("golive_transcode_dropped_units_total", {"where": "server"}),
            ("golive_transcode_failures_total", {})]:
        assert live.get(name, stream="cam", **labels) == 0, (name, labels)  # None: absent
    assert live.get("golive_live_edge_delay_seconds", stream="cam", rendition="source") >= 0
    await publisher.close()
    await eventually(lambda: server.hub.get("cam") is None, what="the publication's end")
    dropped = await scrape(server)  # in the grace period: every series still there
    assert dropped.count("golive_ingest_bytes_total", stream="cam") > 0
    assert dropped.count("golive_hls_segments_total", stream="cam", rendition="source") > 0
    await eventually(lambda: server.packager.get("cam").ended, what="ENDLIST")
    ended = await scrape(server)
    assert "golive_live_edge_delay_seconds" not in stream_series(ended.text, "cam")
    assert ended.get("golive_ingest_bytes_total", stream="cam") > 0
    await eventually(lambda: server.packager.get("cam") is None, what="expiry")
    gone = await scrape(server)
    assert stream_series(gone.text, "cam") == set()


async def test_no_created_series_and_the_process_figures(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: "cam"}, transcode=TranscodeConfig(
        ladder=("180p@200k",)))
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(encode_clip(1.0, 320, 240).tags)
    await eventually(lambda: bool(server.transcoder and server.transcoder.pool.worker_pids()),
                     timeout=20, what="a transcode worker")
    await asyncio.sleep(0.2)
    metrics = await scrape(server)
    assert "_created" not in metrics.text
    assert metrics.get("process_resident_memory_bytes") > 10e6
    assert metrics.get("process_open_fds") > 0
    assert metrics.get("process_cpu_seconds_total") > 0
    (worker,) = [labels["worker"] for labels in
                 metrics.series("golive_transcode_worker_resident_memory_bytes")]
    assert metrics.get("golive_transcode_worker_resident_memory_bytes", worker=worker) > 10e6
    assert metrics.get("golive_transcode_worker_open_fds", worker=worker) > 0
    assert metrics.get("golive_transcode_worker_cpu_seconds_total", worker=worker) > 0
    (build,) = metrics.series("golive_build_info")
    assert build["version"] and build["pyav"] and build["ffmpeg"] and build["python"]
    await publisher.close()
