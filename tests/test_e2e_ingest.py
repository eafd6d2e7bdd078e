"""End to end: a real golive Server (RTMP + HTTP on loopback) in the test's event loop, fed by
real publishers (PyAV's libavformat RTMP client, the ffmpeg CLI, golive's own sans-IO client
over a socket) and observed through hub subscriptions, /metrics and /api/streams.

Expected media always comes from what the encoders produced (packets, extradata), so the
comparison is independent of golive's FLV and RTMP parsers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner
from helpers import (
    MakeServer,
    Received,
    StreamWatcher,
    collect,
    eventually,
    free_port,
    golive_command,
    http_get,
    scrape,
)
from publishers import (
    Encoded,
    PublishFailed,
    PyAvPublisher,
    RawPublisher,
    annexb_nal_units,
    avcc_parameter_sets,
    encode_clip,
    parse_flv,
    pyav_speaks_rtmps,
)

from golive.cli import main as cli_main
from golive.cli import serve as serve_command
from golive.ingest.chunk import ChunkEncoder
from golive.ingest.client import PublishStatus
from golive.ingest.handshake import client_c0c1, client_c2
from golive.media import TrackKind
from golive.server import Server

pytestmark = pytest.mark.e2e

VIDEO, AUDIO = TrackKind.VIDEO, TrackKind.AUDIO
KEY = "k-" + secrets.token_hex(8)  # a fresh secret per run: a leak cannot match by accident


def rtmp_url(server: Server, key: str = KEY) -> str:
    return f"rtmp://127.0.0.1:{server.ingest.rtmp_port}/live/{key}"


def assert_media_matches(received: Received, encoded: Encoded) -> None:
    """Every unit the encoders made arrived once, in order, byte for byte, well timed."""
    video, audio = received.of(VIDEO), received.of(AUDIO)
    assert len(video) == len(encoded.video)
    assert len(audio) == len(encoded.audio)  # the first AAC packet (priming) included
    assert [u.data for u in video] == encoded.video_units
    assert [u.data for u in audio] == encoded.audio_units
    assert [u.keyframe for u in video] == [p.keyframe for p in encoded.video]
    assert video[0].keyframe
    for units in (video, audio):
        dts = [u.dts for u in units]
        assert all(a < b for a, b in itertools.pairwise(dts)), "DTS must increase"
        assert all(u.pts >= u.dts for u in units)


def assert_tracks_match(received: Received, encoded: Encoded) -> None:
    video, audio = received.track(VIDEO), received.track(AUDIO)
    assert (video.codec, video.width, video.height) == ("h264", encoded.width, encoded.height)
    # libx264 hands out Annex B parameter sets; FLV carries them as an avcC record.
    assert avcc_parameter_sets(video.extradata) == annexb_nal_units(encoded.video_extradata)
    assert video.codec_string == "avc1." + video.extradata[1:4].hex().upper()
    assert (audio.codec, audio.sample_rate, audio.channels) == ("aac", 48000, 2)
    assert audio.extradata == encoded.audio_extradata
    assert audio.codec_string == "mp4a.40.2"


# --- 1. PyAV: H.264 + AAC -----------------------------------------------------------------


async def test_pyav_publish_h264_aac(make_server: MakeServer, tmp_path: Path) -> None:
    server = await make_server(keys={KEY: "cam"})
    watcher = StreamWatcher(server.hub)

    publisher = await PyAvPublisher.start(rtmp_url(server), tmp_path / "cam.pickle",
                                          seconds=4, width=640, height=360, hold=True)
    try:
        await publisher.held()
        stream, subscription = await watcher.next("cam")
        # The child has muxed everything; its bytes may still be on their way to us.
        received = await collect(subscription, units=50)
        # Live (the publisher holds the connection open): the series exist and count. Units
        # are counted as they are pushed to the hub, so never fewer than we have seen.
        live = await scrape(server)
        assert live.count("golive_ingest_bytes_total", stream="cam") > 0
        assert live.count("golive_ingest_units_total", stream="cam", kind="video") >= len(
            received.of(VIDEO)) > 0
        assert live.get("golive_rtmp_publishers") == 1
        status, body = await http_get(server.http_port, "/api/streams")
        [listed] = json.loads(body)["streams"]
        assert status == 200 and listed["name"] == "cam"
        [video_info] = [t for t in listed["tracks"] if t["kind"] == "video"]
        assert (video_info["width"], video_info["height"]) == (640, 360)
    finally:
        encoded = await publisher.finish()
    await collect(subscription, into=received, timeout=10)

    assert received.ended
    assert_tracks_match(received, encoded)
    assert received.track(VIDEO).frame_rate == 25  # from onMetaData
    assert_media_matches(received, encoded)
    assert len(encoded.video) == 100

    # The publication is over; its broadcast is not (grace period): the series stay, with
    # the final, complete counts (`test_metrics_lifecycle.py` follows them to the end).
    await eventually(lambda: server.hub.get("cam") is None, what="the publication's end")
    after = await scrape(server)
    assert after.get("golive_ingest_units_total", stream="cam", kind="video") == len(
        encoded.video)
    assert after.get("golive_ingest_units_total", stream="cam", kind="audio") == len(
        encoded.audio)
    assert after.get("golive_ingest_bytes_total", stream="cam") == stream.bytes_in > 0
    assert after.count("golive_rtmp_connections_closed_total", result="ok") == 1
    assert after.get("golive_rtmp_publishers") == 0
    assert after.count("golive_rtmp_handshakes_total", type="digest") == 1
    assert server.hub.get("cam") is None


# --- 2. wrong key -------------------------------------------------------------------------


async def test_wrong_key_is_refused_and_never_leaks(make_server: MakeServer,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = await make_server(keys={KEY: "cam"})
    wrong = "wrong-" + secrets.token_hex(8)

    publisher = await RawPublisher.open(server.ingest.rtmp_port, wrong)
    status = await publisher.publish()
    assert isinstance(status, PublishStatus)
    assert (status.level, status.code) == ("error", "NetStream.Publish.BadName")
    assert wrong not in status.description
    await publisher.wait_closed(timeout=5)  # the server hangs up (librtmp would wait ~30 s)
    await publisher.close()

    await eventually(lambda: not server.ingest.connections, what="connection cleanup")
    metrics = await scrape(server)
    assert metrics.count("golive_rtmp_publish_refused_total", reason="bad_key") == 1
    assert metrics.count("golive_rtmp_connections_closed_total", result="refused") == 1
    _, streams = await http_get(server.http_port, "/api/streams")
    assert json.loads(streams) == {"streams": []}
    assert server.hub.streams() == []
    for text in (metrics.text, streams):
        assert wrong not in text
    assert caplog.records, "the refusal should be logged"
    for record in caplog.records:
        assert wrong not in record.getMessage()
        assert wrong not in repr(record.args)


async def test_pyav_with_a_wrong_key_fails_fast(make_server: MakeServer, tmp_path: Path) -> None:
    server = await make_server(keys={KEY: "cam"})
    publisher = await PyAvPublisher.start(rtmp_url(server, "not-the-key"),
                                          tmp_path / "x.pickle", seconds=1)
    # libavformat turns the error onStatus into EPERM ("Operation not permitted"); what
    # matters is that it fails within the timeout instead of waiting on an open socket.
    with pytest.raises(PublishFailed):
        await publisher.finish(timeout=15)
    metrics = await scrape(server)
    assert metrics.count("golive_rtmp_publish_refused_total", reason="bad_key") == 1


# --- 3. takeover --------------------------------------------------------------------------


async def test_second_publisher_with_the_same_key_takes_over(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: "cam"})
    watcher = StreamWatcher(server.hub)
    clip = encode_clip(2.0, 320, 240)
    first_part = clip.tags[:40]
    sent = [t for t in first_part if t.is_coded_video or t.is_coded_audio]
    sent_video = sum(t.type == 9 for t in sent)

    a = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await a.publish()).code == "NetStream.Publish.Start"
    stream_a, sub_a = await watcher.next("cam")
    await a.send_tags(first_part)
    got_a = await collect(sub_a, units=len(sent))
    # Live and idle: the counters are exact.
    metrics = await scrape(server)
    assert metrics.get("golive_ingest_units_total", stream="cam", kind="video") == sent_video
    assert metrics.get("golive_ingest_units_total", stream="cam", kind="audio") == (
        len(sent) - sent_video)
    assert metrics.get("golive_ingest_bytes_total", stream="cam") == stream_a.bytes_in

    b = await RawPublisher.open(server.ingest.rtmp_port, KEY, digest=False)
    status_b = await b.publish()
    assert (status_b.level, status_b.code) == ("status", "NetStream.Publish.Start")
    await a.wait_closed(timeout=5)  # the server dropped the old connection
    assert a.eof

    await collect(sub_a, into=got_a, timeout=5)
    assert got_a.ended and len(got_a.units) == len(sent)  # A's stream ended, nothing more
    stream_b, sub_b = await watcher.next("cam")
    assert stream_b is not stream_a and stream_a.ended and not stream_b.ended
    assert server.hub.get("cam") is stream_b
    assert stream_b.session_id > stream_a.session_id

    await b.send_tags(clip.tags)
    got_b = await collect(sub_b, units=len(clip.encoded.video) + len(clip.encoded.audio))
    assert [u.data for u in got_b.of(VIDEO)] == clip.encoded.video_units
    metrics = await scrape(server)
    assert metrics.get("golive_rtmp_publisher_takeovers_total") == 1
    assert metrics.get("golive_rtmp_publishers") == 1
    await a.close()
    await b.close()


# --- 4. two publishers at once ------------------------------------------------------------


async def test_two_publishers_stay_independent(make_server: MakeServer, tmp_path: Path) -> None:
    server = await make_server(keys={KEY: "left", KEY + "-2": "right"})
    watcher = StreamWatcher(server.hub)
    left = await PyAvPublisher.start(rtmp_url(server), tmp_path / "l.pickle", seconds=3,
                                     width=320, height=240)
    right = await PyAvPublisher.start(rtmp_url(server, KEY + "-2"), tmp_path / "r.pickle",
                                      seconds=3, width=640, height=360)
    (_, sub_left), (_, sub_right) = await asyncio.gather(watcher.next("left", 20),
                                                         watcher.next("right", 20))
    got_left, got_right, encoded_left, encoded_right = await asyncio.gather(
        collect(sub_left, timeout=30), collect(sub_right, timeout=30),
        left.finish(), right.finish())

    for got, encoded in ((got_left, encoded_left), (got_right, encoded_right)):
        assert got.ended
        assert_tracks_match(got, encoded)
        assert_media_matches(got, encoded)  # byte-exact: nothing of the other stream
    assert got_left.track(VIDEO).width == 320 and got_right.track(VIDEO).width == 640


# --- 5. the ffmpeg CLI ----------------------------------------------------------------------


async def test_ffmpeg_cli_publish(make_server: MakeServer, tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg CLI not installed; `make ffmpeg` installs it")
    server = await make_server(keys={KEY: "cli"})
    watcher = StreamWatcher(server.hub)
    copy = tmp_path / "copy.flv"
    # One encode, two outputs (tee): the local FLV says exactly what went over RTMP.
    command = [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", "3", "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-g", "25", "-c:a", "aac", "-ac", "2",
        "-flags", "+global_header",
        "-f", "tee", f"[f=flv]{rtmp_url(server)}|[f=flv]{copy}",
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        _, subscription = await watcher.next("cli", 20)
        received = await collect(subscription, timeout=20)
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()

    tags = parse_flv(copy.read_bytes())
    video_tags = [t for t in tags if t.is_coded_video]
    audio_tags = [t for t in tags if t.is_coded_audio]
    assert len(received.of(VIDEO)) == len(video_tags) == 75  # 3 s at 25 fps
    assert len(received.of(AUDIO)) == len(audio_tags)
    assert [u.data for u in received.of(VIDEO)] == [t.body[5:] for t in video_tags]
    assert [u.data for u in received.of(AUDIO)] == [t.body[2:] for t in audio_tags]
    assert [u.dts for u in received.of(VIDEO)] == [t.timestamp for t in video_tags]
    assert received.of(VIDEO)[0].keyframe
    video, audio = received.track(VIDEO), received.track(AUDIO)
    assert (video.codec, video.width, video.height) == ("h264", 320, 240)
    assert video.extradata == next(t.body[5:] for t in tags if t.type == 9)
    assert (audio.codec, audio.sample_rate, audio.channels) == ("aac", 48000, 2)


# --- 6. webhook -----------------------------------------------------------------------------


async def test_webhook_decides_and_names(make_server: MakeServer) -> None:
    calls: list[dict[str, str]] = []
    unpublished = asyncio.Event()
    never = asyncio.Event()

    async def hook(request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        calls.append(form)
        if form["call"] == "publish_done":
            unpublished.set()
            return web.Response()
        if form["name"] == "let-me-in":
            return web.json_response({"name": "fromhook"})
        if form["name"] == "bad-name":
            return web.json_response({"name": "../../etc"})
        if form["name"] == "too-slow":
            await never.wait()  # past ingest.webhook_timeout
        return web.Response(status=403)

    app = web.Application()
    app.router.add_post("/auth", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        server = await make_server(webhook_url=f"http://127.0.0.1:{port}/auth",
                                   webhook_timeout=0.3)
        watcher = StreamWatcher(server.hub)
        clip = encode_clip(2.0, 320, 240)

        allowed = await RawPublisher.open(server.ingest.rtmp_port, "let-me-in")
        assert (await allowed.publish()).code == "NetStream.Publish.Start"
        stream, subscription = await watcher.next("fromhook")
        assert server.hub.get("fromhook") is stream
        await allowed.send_tags(clip.tags[:30])
        assert (await collect(subscription, units=5)).units

        publish_call = calls[0]
        assert publish_call["call"] == "publish" and publish_call["name"] == "let-me-in"
        assert publish_call["app"] == "live" and publish_call["type"] == "live"
        assert publish_call["tcurl"] == allowed.client.tc_url
        assert publish_call["flashver"] == allowed.client.flash_ver
        assert publish_call["addr"].startswith("127.0.0.1:")

        denied = await RawPublisher.open(server.ingest.rtmp_port, "keep-out")
        status = await denied.publish()
        assert (status.level, status.code) == ("error", "NetStream.Publish.Denied")
        await denied.wait_closed(timeout=5)
        assert calls[1]["name"] == "keep-out"

        # A name that is not a valid public name, and a webhook that never answers in time,
        # refuse too: a broken auth service must not open the door.
        for key in ("bad-name", "too-slow"):
            refused = await RawPublisher.open(server.ingest.rtmp_port, key)
            status = await refused.publish()
            assert (status.level, status.code) == ("error", "NetStream.Publish.Denied")
            await refused.wait_closed(timeout=5)
            await refused.close()
        assert server.hub.streams() == [stream]

        allowed.client.unpublish()
        await allowed.flush()
        await asyncio.wait_for(unpublished.wait(), 5)
        unpublish_call = calls[-1]
        assert unpublish_call["call"] == "publish_done" and unpublish_call["stream"] == "fromhook"
        assert unpublish_call["name"] == "let-me-in"
        metrics = await scrape(server)
        assert metrics.count("golive_rtmp_publish_refused_total", reason="webhook") == 3
        await allowed.close()
        await denied.close()
    finally:
        never.set()  # or cleanup would wait out aiohttp's shutdown timeout for that handler
        await runner.cleanup()


# --- 7. RTMPS -------------------------------------------------------------------------------


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", "/CN=localhost", "-days", "1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


async def test_rtmps_publish(make_server: MakeServer, self_signed: tuple[Path, Path],
                             tmp_path: Path) -> None:
    cert, key = self_signed
    server = await make_server(keys={KEY: "secure"}, tls_cert=str(cert), tls_key=str(key),
                               rtmps_port=0)
    assert server.ingest.rtmps_port not in (None, 0, server.ingest.rtmp_port)
    watcher = StreamWatcher(server.hub)
    clip = encode_clip(2.0, 320, 240)
    if pyav_speaks_rtmps():
        # FFmpeg does not verify the server's certificate unless told to.
        url = f"rtmps://127.0.0.1:{server.ingest.rtmps_port}/live/{KEY}"
        publisher = await PyAvPublisher.start(url, tmp_path / "tls.pickle", seconds=2)
        _, subscription = await watcher.next("secure", 20)
        received = await collect(subscription, timeout=20)
        encoded = await publisher.finish()
        assert_media_matches(received, encoded)
        assert_tracks_match(received, encoded)

    # The raw client over asyncio's TLS (the only RTMPS publisher when PyAV has no TLS).
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    raw = await RawPublisher.open(server.ingest.rtmps_port, KEY, tls=tls)
    assert (await raw.publish()).code == "NetStream.Publish.Start"
    _, subscription = await watcher.next("secure")
    await raw.send_tags(clip.tags)
    received = await collect(subscription, units=len(clip.encoded.video) + len(
        clip.encoded.audio))
    assert [u.data for u in received.of(VIDEO)] == clip.encoded.video_units
    assert [u.data for u in received.of(AUDIO)] == clip.encoded.audio_units
    await raw.close()


# --- 8. robustness --------------------------------------------------------------------------


async def _handshaken(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A socket that completed a plain handshake and sent nothing else."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(client_c0c1(digest=False))
    s0s1s2 = await asyncio.wait_for(reader.readexactly(1 + 2 * 1536), 5)
    writer.write(client_c2(s0s1s2[1:1537]))
    await writer.drain()
    return reader, writer


async def _closed_by_server(reader: asyncio.StreamReader, timeout: float = 5.0) -> None:
    """Return once the server closes (FIN or RST); TimeoutError if it does not within
    `timeout`. Whatever it sent before is skipped."""
    async def drain() -> None:
        while await reader.read(65536):
            pass

    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        await asyncio.wait_for(drain(), timeout)


async def test_silent_and_never_publishing_connections_time_out(
        make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: "cam"}, handshake_timeout=0.5)
    started = time.monotonic()
    silent_reader, silent_writer = await asyncio.open_connection(
        "127.0.0.1", server.ingest.rtmp_port)
    idle_reader, idle_writer = await _handshaken(server.ingest.rtmp_port)
    # Each connection's timer fires at the core's deadline: closed after handshake_timeout,
    # never before it.
    await asyncio.gather(_closed_by_server(silent_reader, 5), _closed_by_server(idle_reader, 5))
    assert time.monotonic() - started >= 0.5
    await eventually(lambda: not server.ingest.connections, what="connection cleanup")
    metrics = await scrape(server)
    assert metrics.count("golive_rtmp_protocol_errors_total", kind="timeout") == 2
    assert metrics.count("golive_rtmp_connections_closed_total", result="timeout") == 2
    assert metrics.get("golive_rtmp_connections") == 0
    silent_writer.close()
    idle_writer.close()


async def test_garbage_drops_only_the_sender(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: "cam"})
    port = server.ingest.rtmp_port
    watcher = StreamWatcher(server.hub)
    clip = encode_clip(2.0, 320, 240)
    half = len(clip.tags) // 2
    units_total = sum(t.is_coded_video or t.is_coded_audio for t in clip.tags)
    units_first_half = sum(t.is_coded_video or t.is_coded_audio for t in clip.tags[:half])

    good = await RawPublisher.open(port, KEY)
    assert (await good.publish()).code == "NetStream.Publish.Start"
    _, subscription = await watcher.next("cam")
    await good.send_tags(clip.tags[:half])
    received = await collect(subscription, units=units_first_half)

    async def attack(payload: bytes, handshake: bool) -> None:
        if handshake:
            reader, writer = await _handshaken(port)
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        await writer.drain()
        await _closed_by_server(reader)
        writer.close()

    writer = ChunkEncoder()
    await attack(b"\x07" + bytes(1536), handshake=False)  # not RTMP version 3
    await attack(b"\xc4" + bytes(64), handshake=True)  # type 3 header on a fresh chunk stream
    await attack(writer.encode(3, 0, 20, 0, b"\x02\x00\x10ab"), handshake=True)  # cut AMF

    # The publisher never noticed: the rest of its media arrives, then a clean unpublish.
    await good.send_tags(clip.tags[half:])
    await collect(subscription, units=units_total - units_first_half, into=received)
    assert [u.data for u in received.of(VIDEO)] == clip.encoded.video_units
    assert [u.data for u in received.of(AUDIO)] == clip.encoded.audio_units
    good.client.unpublish()
    await good.flush()
    await good.until(lambda e: isinstance(e, PublishStatus)
                     and e.code == "NetStream.Unpublish.Success")
    await good.close()

    metrics = await scrape(server)
    assert metrics.count("golive_rtmp_protocol_errors_total", kind="handshake") == 1
    assert metrics.count("golive_rtmp_protocol_errors_total", kind="chunk") == 1
    assert metrics.count("golive_rtmp_protocol_errors_total", kind="amf") == 1
    assert metrics.count("golive_rtmp_connections_closed_total", result="protocol_error") == 3


async def test_oversized_message_drops_the_publisher(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: "cam"}, max_message_size=64 * 1024)
    watcher = StreamWatcher(server.hub)
    clip = encode_clip(2.0, 320, 240)
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    _, subscription = await watcher.next("cam")
    await publisher.send_tags(clip.tags[:12])
    received = await collect(subscription, units=3)

    frame = next(t for t in clip.tags if t.is_coded_video).body
    publisher.client.send_video(5000, frame[:5] + bytes(100 * 1024))  # 100 KiB > 64 KiB
    await publisher.flush()
    await publisher.wait_closed(timeout=5)
    await collect(subscription, into=received, timeout=5)
    assert received.ended
    metrics = await scrape(server)
    assert metrics.count("golive_rtmp_protocol_errors_total", kind="message_size") == 1
    await publisher.close()


async def test_max_connections(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: "cam"}, max_connections=2)
    port = server.ingest.rtmp_port
    first = await _handshaken(port)  # S0 S1 S2 came back: the server counts these two
    second = await RawPublisher.open(port, KEY)
    assert (await second.publish()).code == "NetStream.Publish.Start"

    third_reader, third_writer = await asyncio.open_connection("127.0.0.1", port)
    third_writer.write(client_c0c1(digest=False))
    await _closed_by_server(third_reader)
    third_writer.close()
    metrics = await scrape(server)
    assert metrics.count("golive_rtmp_connections_closed_total", result="over_limit") == 1
    assert metrics.get("golive_rtmp_connections") == 2
    assert server.hub.get("cam") is not None  # the publisher inside the limit is unaffected

    # A freed slot is usable again.
    first[1].close()
    await eventually(lambda: len(server.ingest.connections) == 1, what="slot release")
    fourth = await _handshaken(port)
    fourth[1].close()
    await second.close()


async def test_silent_publisher_hits_the_idle_timeout(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: "cam"}, idle_timeout=0.5)
    watcher = StreamWatcher(server.hub)
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    _, subscription = await watcher.next("cam")
    await publisher.send_tags(encode_clip(2.0, 320, 240).tags[:12])
    received = await collect(subscription, units=3)
    await publisher.wait_closed(timeout=5)  # then nothing more: the server gives up on it
    await collect(subscription, into=received, timeout=5)
    assert received.ended
    metrics = await scrape(server)
    assert metrics.count("golive_rtmp_protocol_errors_total", kind="idle") == 1
    assert metrics.count("golive_rtmp_connections_closed_total", result="timeout") == 1
    await publisher.close()


async def test_republish_on_the_same_connection_gets_tracks(make_server: MakeServer) -> None:
    """Flash Media Live Encoder's Stop/Start keeps the connection: FCUnpublish, deleteStream,
    then createStream and publish again, with the same sequence headers. The new publication
    is a new LiveStream and needs its own tracks: units without a Track cannot be muxed."""
    server = await make_server(keys={KEY: "cam"})
    watcher = StreamWatcher(server.hub)
    clip = encode_clip(2.0, 320, 240)
    units = len(clip.encoded.video) + len(clip.encoded.audio)
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    _, first_subscription = await watcher.next("cam")
    await publisher.send_tags(clip.tags)
    first = await collect(first_subscription, units=units)
    assert {t.kind for t in first.tracks} == {VIDEO, AUDIO}

    publisher.client.unpublish()
    publisher.client.republish()
    await publisher.flush()
    status = await publisher.until(lambda e: isinstance(e, PublishStatus)
                                   and e.code != "NetStream.Unpublish.Success")
    assert status == PublishStatus("status", "NetStream.Publish.Start", "Start publishing")
    second_stream, second_subscription = await watcher.next("cam")
    await publisher.send_tags(clip.tags)
    second = await collect(second_subscription, units=units)
    assert [u.data for u in second.of(VIDEO)] == clip.encoded.video_units
    assert {t.kind for t in second.tracks} == {VIDEO, AUDIO}, (
        f"republished stream has tracks {second_stream.tracks}")
    assert second.track(VIDEO).width == 320
    await publisher.close()


async def test_shutdown_ends_live_streams(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: "cam"})
    watcher = StreamWatcher(server.hub)
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    stream, subscription = await watcher.next("cam")
    await publisher.send_tags(encode_clip(2.0, 320, 240).tags[:12])
    received = await collect(subscription, units=3)
    await asyncio.wait_for(server.close(), 5)
    await publisher.wait_closed(timeout=5)
    await collect(subscription, into=received, timeout=5)
    assert received.ended and stream.ended
    assert server.hub.streams() == [] and not server.ingest.connections
    await publisher.close()


# --- 9. the CLI -----------------------------------------------------------------------------


def test_serve_help_mentions_every_option() -> None:
    result = CliRunner().invoke(cli_main, ["serve", "--help"])
    assert result.exit_code == 0, result.output
    options = [opt for param in serve_command.params for opt in param.opts
               if opt.startswith("--")]
    assert len(options) >= 11
    for option in options:
        assert option in result.output, option


async def test_golive_serve_process(tmp_path: Path) -> None:
    command = golive_command()
    rtmp_port, http_port, admin_port = free_port(), free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        *command, "serve", "--host", "127.0.0.1", "--rtmp-port", str(rtmp_port),
        "--http-port", str(http_port), "--admin-port", str(admin_port),
        "--state-dir", str(tmp_path),  # not the user's
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # Block-buffered stdout, as under systemd or `| tee`: the banner must still show.
        env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"})
    assert process.stdout is not None and process.stderr is not None
    banner: list[str] = []
    try:
        async def read_banner() -> str:
            while True:
                line = (await process.stdout.readline()).decode()
                assert line, f"golive exited early: {await process.stderr.read()!r}"
                banner.append(line)
                if "Stream Key:" in line:
                    return line.split("Stream Key:", 1)[1].strip()

        key = await asyncio.wait_for(read_banner(), 20)
        while not banner[-1].startswith("Transcoding:"):
            banner.append((await asyncio.wait_for(process.stdout.readline(), 5)).decode())
        text = "".join(banner)
        assert "Transcoding:   from each source, after Apple's ladder" in text
        assert f"Server:      rtmp://127.0.0.1:{rtmp_port}/live" in text
        assert key and " " not in key
        assert f"Watch:         http://127.0.0.1:{http_port}/watch/main" in text
        assert f"HLS playlist:  http://127.0.0.1:{http_port}/live/main/index.m3u8" in text

        assert f"Metrics:       http://127.0.0.1:{admin_port}/metrics" in text
        assert (await http_get(http_port, "/metrics"))[0] == 404  # not on the public port
        status, metrics = await http_get(admin_port, "/metrics")
        assert status == 200 and "golive_rtmp_connections" in metrics
        # The printed key really publishes.
        publisher = await RawPublisher.open(rtmp_port, key)
        assert (await publisher.publish()).code == "NetStream.Publish.Start"
        await publisher.close()
        assert key not in metrics

        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 10)
        assert process.returncode == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()



async def test_golive_serve_reports_a_taken_port(tmp_path: Path) -> None:
    command = golive_command()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        process = await asyncio.create_subprocess_exec(
            *command, "serve", "--host", "127.0.0.1", "--rtmp-port",
            str(taken.getsockname()[1]), "--http-port", str(free_port()),
            "--state-dir", str(tmp_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), 20)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 1
    assert b"golive: cannot start" in stderr


async def test_a_stream_of_bad_frames_is_counted_not_logged_each_time(
        make_server: MakeServer, caplog: pytest.LogCaptureFixture) -> None:
    """Every malformed tag is skipped and counted; the log gets a few lines, not one per frame,
    so a broken encoder cannot flood the operator's logs."""
    caplog.set_level(logging.WARNING, logger="golive.ingest")
    server = await make_server(keys={KEY: "cam"})
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    for i in range(20):
        publisher.client.send_video(i * 40, b"\x17\x01")  # AVC NALU packet cut before its CT
    await publisher.flush()

    async def counted() -> float:
        while (value := (await scrape(server)).count(
                "golive_rtmp_protocol_errors_total", kind="flv")) < 20:
            await asyncio.sleep(0.02)
        return value

    assert await asyncio.wait_for(counted(), 5) == 20
    skipped = [r for r in caplog.records if "skipped a message" in r.getMessage()]
    assert len(skipped) == 5
    assert "only counted" in skipped[-1].getMessage()
    assert "stream=cam" in skipped[0].getMessage()
    await publisher.close()
