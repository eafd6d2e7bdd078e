"""End to end: a publisher's Opus or MP3 audio reaches every rendition as AAC.

PyAV (libavformat's RTMP client; Opus goes out in Enhanced RTMP's FourCC audio, MP3 in the
classic SoundFormat 2) publishes H.264 with a 440 Hz tone. What players get is read back
from the store and decoded: AAC in the source rendition and in the rung, the tone, in step
with the video.
"""

from __future__ import annotations

import io
import math
import re
import secrets
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import MakeServer, eventually, http_get, scrape
from publishers import PyAvPublisher

from golive.packager.broadcast import Broadcast
from golive.packager.config import HlsConfig
from golive.server import Server
from golive.transcode.config import TranscodeConfig

pytestmark = pytest.mark.e2e

KEY = "k-" + secrets.token_hex(8)
NAME = "voice"


def broadcast(server: Server) -> Broadcast:
    found = server.packager.get(NAME)
    assert found is not None
    return found


async def publish(server: Server, tmp_path: Path, seconds: float, audio_codec: str,
                  sample_rate: int) -> None:
    """PyAV in a child process (it holds the GIL while it waits for the server's replies)."""
    url = f"rtmp://127.0.0.1:{server.ingest.rtmp_port}/live/{KEY}"
    publisher = await PyAvPublisher.start(url, tmp_path / "out.pickle", seconds=seconds,
                                          audio_codec=audio_codec, sample_rate=sample_rate)
    await publisher.finish()


def played(server: Server, rendition_name: str) -> tuple[str | None, list[float], list[float],
                                                          np.ndarray | None]:
    """A rendition's listed segments, demuxed: audio codec, video and audio PTS (s), PCM."""
    rendition = broadcast(server).renditions[rendition_name]
    store = server.store
    data = store.get(rendition.prefix + rendition.init_uri) or b""
    data += b"".join(store.get(rendition.prefix + s.uri) or b"" for s in rendition.segments)
    video_pts, audio_pts, pcm = [], [], []
    codec = None
    with av.open(io.BytesIO(data)) as container:
        if container.streams.audio:
            codec = container.streams.audio[0].codec_context.name
        for packet in container.demux():
            if packet.pts is None:
                continue
            when = float(packet.pts * packet.time_base)
            if packet.stream.type == "video":
                video_pts.append(when)
            else:
                audio_pts.append(when)
                pcm += [frame.to_ndarray()[0] for frame in packet.decode()]
    return codec, video_pts, audio_pts, np.concatenate(pcm) if pcm else None


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * rate / len(pcm))


@pytest.mark.parametrize(("codec", "rate"), [("libopus", 48000), ("libmp3lame", 44100)])
async def test_opus_and_mp3_reach_every_rendition_as_aac(
        make_server: MakeServer, tmp_path: Path, codec: str, rate: int) -> None:
    server = await make_server(keys={KEY: NAME}, hls=HlsConfig(mpegts=True),
                               transcode=TranscodeConfig(ladder=("180p@150k",)))
    await publish(server, tmp_path, 6.0, codec, rate)
    await eventually(lambda: server.packager.get(NAME) is not None
                     and len(broadcast(server).renditions["180p"].segments) >= 2,
                     timeout=30, what="two rung segments")
    status, master = await http_get(server.http_port, f"/live/{NAME}/index.m3u8")
    assert status == 200
    codecs = re.findall(r'CODECS="([^"]+)"', master)
    assert len(codecs) == 2 and all(c.split(",")[1] == "mp4a.40.2" for c in codecs), master
    for name in ("source", "180p"):
        audio_codec, video, audio, pcm = played(server, name)
        assert audio_codec == "aac", name
        assert pcm is not None and len(pcm) / rate > 3.0, name
        assert abs(dominant_hz(pcm, rate) - 440) < 5, name
        # In step with the video: the tone starts with the picture and runs along it.
        assert abs(audio[0] - video[0]) < 0.1 and abs(audio[-1] - video[-1]) < 0.5, name
    metrics = await scrape(server)
    frames_in = metrics.count("golive_transcode_audio_frames_total", stream=NAME, direction="in")
    frames_out = metrics.count("golive_transcode_audio_frames_total", stream=NAME,
                               direction="out")
    per_unit = 960 if codec == "libopus" else 1152  # samples per source frame
    assert frames_in > 100
    assert math.isclose(frames_out * 1024, frames_in * per_unit, rel_tol=0.05)
    assert metrics.count("golive_transcode_audio_lost_units_total", stream=NAME,
                         reason="decode") == 0
    # The MPEG-TS playlist for legacy players carries the same AAC.
    ts = broadcast(server).renditions["ts"]
    segment = server.store.get(ts.prefix + ts.segments[0].uri) or b""
    with av.open(io.BytesIO(segment), format="mpegts") as container:
        assert container.streams.audio[0].codec_context.name == "aac"


async def test_with_the_ladder_off_mp3_still_becomes_aac(make_server: MakeServer,
                                                        tmp_path: Path) -> None:
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(enabled=False))
    await publish(server, tmp_path, 4.0, "libmp3lame", 44100)
    await eventually(lambda: server.packager.get(NAME) is not None
                     and len(broadcast(server).source.segments) >= 1, what="a segment")
    audio_codec, _, _, pcm = played(server, "source")
    assert audio_codec == "aac" and pcm is not None


async def test_audio_source_passes_opus_through(make_server: MakeServer,
                                                tmp_path: Path) -> None:
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(
        enabled=False, audio="source"))
    await publish(server, tmp_path, 4.0, "libopus", 48000)
    await eventually(lambda: server.packager.get(NAME) is not None
                     and len(broadcast(server).source.segments) >= 1, what="a segment")
    assert played(server, "source")[0] == "opus"
