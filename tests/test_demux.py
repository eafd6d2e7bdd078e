"""Probing codec parameters by decoding a stream's first unit with PyAV."""

import io
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from golive.ingest.demux import ProbedAudio, ProbedVideo, probe_audio, probe_video
from golive.ingest.flv import parse_video

CAPTURES = Path(__file__).parent / "data" / "captures"


@pytest.fixture(scope="module")
def mp4_samples() -> dict[str, tuple[bytes, bytes]]:
    """(extradata, first packet) per codec, in MP4 sample format, as FLV also carries them.

    Muxing through libavformat's MP4 muxer turns libx264's Annex B output into an avcC and
    length-prefixed NAL units, exactly the shapes an RTMP publisher sends.
    """
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as mux:
        video = mux.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        video.options = {"preset": "ultrafast"}
        audio = mux.add_stream("aac", rate=48000, layout="stereo")
        y, x = np.mgrid[0:240, 0:320]
        for i in range(5):
            plane = ((x + y + 8 * i) % 256).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.dstack([plane] * 3), format="rgb24")
            frame.pts = i
            mux.mux(video.encode(frame.reformat(format="yuv420p")))
        t = np.arange(4 * 1024) / 48000
        tone = (0.3 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
        pcm = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        pcm.sample_rate, pcm.pts, pcm.time_base = 48000, 0, Fraction(1, 48000)
        mux.mux(audio.encode(pcm))
        mux.mux(video.encode(None))
        mux.mux(audio.encode(None))
    out.seek(0)
    samples: dict[str, tuple[bytes, bytes]] = {}
    with av.open(out, "r") as demux:
        for packet in demux.demux():
            name = packet.stream.codec_context.name
            if packet.size and name not in samples:
                samples[name] = (bytes(packet.stream.codec_context.extradata), bytes(packet))
    return samples


def _size(probed: ProbedVideo) -> tuple[int, int]:
    # The parser path knows the size but not always the pixel format; a decode knows both.
    assert probed.pix_fmt in (None, "yuv420p")
    return probed.width, probed.height


def test_probe_video_h264(mp4_samples: dict[str, tuple[bytes, bytes]]) -> None:
    extradata, keyframe = mp4_samples["h264"]
    assert extradata[0] == 1  # an avcC, not Annex B
    assert _size(probe_video("h264", extradata, keyframe)) == (320, 240)


def test_probe_audio_aac(mp4_samples: dict[str, tuple[bytes, bytes]]) -> None:
    asc, frame = mp4_samples["aac"]
    assert probe_audio("aac", asc, frame) == ProbedAudio(48000, 2, "stereo", 1024)


def reassemble(data: bytes, at: int) -> bytes:
    """The whole message whose first chunk's payload starts at `at` in a capture.

    Just enough chunk parsing for these captures' first keyframes: a type 0 or type 1 chunk
    header, 4096-byte chunks, each continued by a one-byte type 3 header on the same chunk
    stream (the encoders write a message's chunks back to back).
    """
    if data[at - 8] >> 6 == 1 and data[at - 1] == 9:
        csid, length = data[at - 8] & 0x3F, int.from_bytes(data[at - 4 : at - 1], "big")
    else:
        assert data[at - 12] >> 6 == 0 and data[at - 5] == 9
        csid, length = data[at - 12] & 0x3F, int.from_bytes(data[at - 8 : at - 5], "big")
    out = bytearray()
    while True:
        out += data[at : at + min(4096, length - len(out))]
        at += 4096
        if len(out) == length:
            return bytes(out)
        assert data[at] == 0xC0 | csid
        at += 1


def test_probe_real_obs_keyframe() -> None:
    data = (CAPTURES / "obs29.0-h264.c2s.bin").read_bytes()
    seq_at = data.index(b"\x17\x00\x00\x00\x00\x01")
    avcc = bytes(parse_video(data[seq_at : seq_at + 48]).body)
    message = reassemble(data, data.index(b"\x17\x01", seq_at))
    assert len(message) == 100392  # trace: Video #2
    tag = parse_video(message)
    assert tag.keyframe
    assert _size(probe_video("h264", avcc, bytes(tag.body))) == (1280, 720)


def test_probe_real_hevc_keyframe() -> None:
    data = (CAPTURES / "ffmpeg7.0-hevc-ertmp.c2s.bin").read_bytes()
    seq_at = data.index(b"\x90hvc1")
    hvcc = bytes(parse_video(data[seq_at : seq_at + 2580]).body)
    message = reassemble(data, data.index(b"\x93hvc1", seq_at))
    assert len(message) == 39688  # trace: Video #3
    tag = parse_video(message)
    assert _size(probe_video("hevc", hvcc, bytes(tag.body))) == (426, 240)


def test_probe_real_av1_keyframe() -> None:
    data = (CAPTURES / "ffmpeg7.0-av1-ertmp.c2s.bin").read_bytes()
    seq_at = data.index(b"\x90av01\x81")
    av1c = bytes(parse_video(data[seq_at : seq_at + 22]).body)
    tag = parse_video(reassemble(data, data.index(b"\x91av01", seq_at)))
    assert tag.keyframe
    assert _size(probe_video("av1", av1c, bytes(tag.body))) == (426, 240)


@pytest.mark.parametrize(
    ("codec", "extradata", "data"),
    [
        pytest.param("h264", b"garbage", b"\x00\x00\x00\x05junk!", id="garbage-avcc"),
        pytest.param("h264", b"", b"\x00\x00\x00\x05junk!", id="no-config"),
        pytest.param("h264", b"", b"", id="empty"),
        pytest.param("no-such-codec", b"", b"x", id="unknown-codec"),
    ],
)
def test_probe_video_rejects_garbage(codec: str, extradata: bytes, data: bytes) -> None:
    with pytest.raises(ValueError, match=codec):
        probe_video(codec, extradata, data)


def test_probe_video_rejects_non_keyframe(mp4_samples: dict[str, tuple[bytes, bytes]]) -> None:
    extradata, keyframe = mp4_samples["h264"]
    with pytest.raises(ValueError):
        probe_video("h264", extradata, keyframe[:40])


@pytest.mark.parametrize(
    ("codec", "extradata", "data"),
    [
        pytest.param("aac", b"\xff\xff", b"garbage" * 10, id="garbage-asc"),
        pytest.param("aac", b"\x11\x90", b"", id="empty"),
        pytest.param("no-such-codec", b"", b"x", id="unknown-codec"),
    ],
)
def test_probe_audio_rejects_garbage(codec: str, extradata: bytes, data: bytes) -> None:
    with pytest.raises(ValueError, match=codec):
        probe_audio(codec, extradata, data)


def test_probe_video_returns_wrong_type_as_error(
    mp4_samples: dict[str, tuple[bytes, bytes]],
) -> None:
    """An audio codec name with video data must not come back as a bogus ProbedVideo."""
    asc, frame = mp4_samples["aac"]
    with pytest.raises(ValueError):
        probe_video("aac", asc, frame)
