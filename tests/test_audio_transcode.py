"""Audio other than AAC becomes AAC: the core (`AacTranscoder`) and its thread.

Sources are made by real encoders (libopus, libmp3lame, FFmpeg's G.711 and AC-3) from a
known tone; the AAC that comes out is decoded by FFmpeg's AAC decoder and checked for the
tone, its length and its timing.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from golive.media import MediaUnit, Track, TrackKind
from golive.transcode.audio import (
    MAX_DRIFT_MS,
    AacTranscoder,
    AudioToAac,
    AudioTranscodeError,
    aac_rate,
)

TONE_HZ = 440


def encode_tone(codec: str, rate: int, layout: str, seconds: float,
                start_ms: int = 1000) -> tuple[Track, list[MediaUnit]]:
    """A tone encoded by `codec`, as ingest would deliver it: a Track and ms-timed units."""
    encoder = av.CodecContext.create(codec, "w")
    assert isinstance(encoder, av.AudioCodecContext)
    encoder.sample_rate, encoder.layout = rate, layout
    encoder.format = encoder.codec.audio_formats[0].name
    encoder.time_base = Fraction(1, rate)
    encoder.open()
    size = encoder.frame_size or 160
    channels = encoder.layout.nb_channels
    convert = av.AudioResampler(format=encoder.format.name, layout=layout, rate=rate)
    units = []
    total = round(seconds * rate)
    for start in [*range(0, total, size), None]:
        frame = None
        if start is not None:
            t = (np.arange(size) + start) / rate
            tone = (0.3 * np.sin(2 * math.pi * TONE_HZ * t)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.stack([tone] * channels), format="fltp",
                                               layout=layout)
            frame.sample_rate = rate
            if encoder.format.name != "fltp":
                [frame] = convert.resample(frame)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        for packet in encoder.encode(frame):
            ms = start_ms + packet.pts * 1000 // rate
            units.append(MediaUnit(TrackKind.AUDIO, ms, ms, True, bytes(packet)))
    name = {"libopus": "opus", "libmp3lame": "mp3"}.get(codec, codec)
    track = Track(TrackKind.AUDIO, name, bytes(encoder.extradata or b""), sample_rate=rate,
                  channels=channels)
    return track, units


def decode_aac(track: Track, units: list[MediaUnit]) -> np.ndarray:
    decoder = av.CodecContext.create("aac", "r")
    decoder.extradata = track.extradata
    pcm = [frame.to_ndarray() for unit in units for frame in decoder.decode(av.Packet(unit.data))]
    return np.concatenate(pcm, axis=1)


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    mono = samples[0][rate // 10:]  # past the decoder's start-up
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    return float(np.argmax(spectrum) * rate / len(mono))


def transcode(track: Track, units: list[MediaUnit]) -> tuple[AacTranscoder, list[MediaUnit]]:
    core = AacTranscoder(track)
    out = [aac for unit in units for aac in core.push(unit)]
    return core, out + core.flush()


@pytest.mark.parametrize(("codec", "rate", "layout", "out_rate", "out_channels"), [
    ("libopus", 48000, "stereo", 48000, 2),
    ("libmp3lame", 44100, "stereo", 44100, 2),
    ("libmp3lame", 22050, "mono", 22050, 1),
    ("pcm_alaw", 8000, "mono", 8000, 1),  # G.711 from IP cameras
    ("pcm_s16le", 5512, "mono", 7350, 1),  # FLV's 5.5 kHz: no AAC sample rate index
    ("ac3", 48000, "5.1", 48000, 2),  # more than two channels: downmixed
])
def test_each_source_codec_becomes_aac_of_the_same_tone_and_length(
        codec: str, rate: int, layout: str, out_rate: int, out_channels: int) -> None:
    track, units = encode_tone(codec, rate, layout, seconds=2.0)
    core, out = transcode(track, units)
    assert core.track.codec == "aac" and core.track.codec_string == "mp4a.40.2"
    assert (core.track.sample_rate, core.track.channels) == (out_rate, out_channels)
    assert core.errors == 0 and core.restarts == 0
    pcm = decode_aac(core.track, out)
    assert pcm.shape[0] == out_channels
    # The whole tone, give or take the codecs' delays (LAME's is 1105 samples plus padding;
    # the AAC encoder's priming frame is dropped).
    assert abs(pcm.shape[1] / out_rate - 2.0) < 0.1
    assert abs(dominant_hz(pcm, out_rate) - TONE_HZ) < 5
    # Timed by sample count from the source's first unit: 1024 samples apart, exactly.
    step = 1024 * 1000 / out_rate
    assert abs(out[0].pts - units[0].pts) <= 1
    for i, unit in enumerate(out):
        assert unit.dts == unit.pts and unit.keyframe
        assert abs(unit.pts - (out[0].pts + i * step)) <= 1


def test_lost_source_audio_leaves_a_gap_at_the_same_time() -> None:
    track, units = encode_tone("libopus", 48000, "stereo", seconds=4.0)
    kept = [u for u in units if not 2000 <= u.pts < 3000]  # a second lost upstream
    core, out = transcode(track, kept)
    assert core.restarts == 1
    jumps = [(a.pts, b.pts) for a, b in itertools.pairwise(out) if b.pts - a.pts > 30]
    assert len(jumps) == 1
    before, after = jumps[0]
    assert 1950 <= before < 2000 and abs(after - 3000) <= 25
    assert all(b.pts > a.pts for a, b in itertools.pairwise(out))


def test_a_corrupt_frame_is_skipped_and_the_rest_transcoded() -> None:
    track, units = encode_tone("libmp3lame", 44100, "stereo", seconds=2.0)
    units[20] = units[20]._replace(data=b"\xff\xfb" + bytes(30))  # a truncated MP3 frame
    units[30] = units[30]._replace(data=b"\x00" * 5)
    units[40] = units[40]._replace(data=b"")  # to libavcodec, the end of the stream
    core, out = transcode(track, units)
    assert core.errors <= 3
    pcm = decode_aac(core.track, out)
    assert abs(pcm.shape[1] / 44100 - 2.0) < 0.1
    assert abs(dominant_hz(pcm, 44100) - TONE_HZ) < 5


def test_undecodable_sources_are_refused_clearly() -> None:
    with pytest.raises(AudioTranscodeError, match="unknown sample rate"):
        AacTranscoder(Track(TrackKind.AUDIO, "mp3", b""))
    with pytest.raises(AudioTranscodeError, match="no decoder"):
        AacTranscoder(Track(TrackKind.AUDIO, "nosuchcodec", b"", sample_rate=8000,
                            channels=1))


def test_aac_rates() -> None:
    assert aac_rate(44100) == 44100 and aac_rate(5512) == 7350 and aac_rate(16000) == 16000
    assert aac_rate(192000) == 96000 and aac_rate(50000) == 64000


@settings(max_examples=40, deadline=None)
@given(jitter=st.lists(st.integers(-15, 15), min_size=150, max_size=150),
       holes=st.lists(st.tuples(st.integers(0, 149), st.integers(1, 60)), max_size=4))
def test_timing_follows_the_source_through_jitter_and_holes(
        jitter: list[int], holes: list[tuple[int, int]]) -> None:
    """Whatever the timestamps' jitter and losses: AAC frames rise strictly, never run
    ahead of or behind the source's own clock by more than the drift a run may have."""
    track, units = _opus_units()
    lost = {i for start, length in holes for i in range(start, start + length)}
    fed = [u._replace(pts=u.pts + j, dts=u.pts + j)
           for i, (u, j) in enumerate(zip(units, jitter, strict=False)) if i not in lost]
    _, out = transcode(track, fed)
    assert all(b.pts > a.pts for a, b in itertools.pairwise(out))
    if not fed:
        assert out == []
        return
    for unit in out:  # each AAC frame lies within the media the source delivered
        near = min(abs(unit.pts - f.pts) for f in fed)
        assert near <= MAX_DRIFT_MS + 25


_OPUS: tuple[Track, list[MediaUnit]] | None = None


def _opus_units() -> tuple[Track, list[MediaUnit]]:
    global _OPUS
    if _OPUS is None:
        _OPUS = encode_tone("libopus", 48000, "stereo", seconds=3.0)
    return _OPUS


async def test_the_thread_delivers_everything_in_order_then_stops() -> None:
    track, units = encode_tone("libopus", 48000, "stereo", seconds=2.0)
    registry = CollectorRegistry()
    service = AudioToAac(0, registry)
    got: list[MediaUnit] = []
    transcoder = service.open("show", track, got.append)
    for unit in units:
        transcoder.push(unit)
    await transcoder.drain()
    _, expected = transcode(track, units)
    assert got == expected  # the same frames as the core makes, in the same order
    assert registry.get_sample_value("golive_transcode_audio_frames_total",
                                     {"stream": "show", "direction": "in"}) == len(units)
    assert registry.get_sample_value("golive_transcode_audio_frames_total",
                                     {"stream": "show", "direction": "out"}) == len(got)
    assert registry.get_sample_value("golive_transcode_audio_lost_units_total",
                                     {"stream": "show", "reason": "decode"}) == 0  # from start


async def test_a_starved_thread_loses_units_counted_not_memory() -> None:
    track, units = encode_tone("libopus", 48000, "stereo", seconds=12.0)
    registry = CollectorRegistry()
    got: list[MediaUnit] = []
    transcoder = AudioToAac(0, registry).open("show", track, got.append)
    gate = threading.Event()
    push = transcoder.core.push
    transcoder.core.push = lambda unit: (gate.wait(), push(unit))[1]  # type: ignore[method-assign]
    for unit in units:  # 600 units: more than the queue holds while the thread is stuck
        transcoder.push(unit)
    lost = registry.get_sample_value("golive_transcode_audio_lost_units_total",
                                     {"stream": "show", "reason": "queue"})
    assert lost is not None and lost >= len(units) - 501
    gate.set()
    await transcoder.drain()
    assert got and all(b.pts > a.pts for a, b in itertools.pairwise(got))


async def test_closing_stops_delivery_at_once() -> None:
    track, units = encode_tone("libopus", 48000, "stereo", seconds=2.0)
    got: list[MediaUnit] = []
    transcoder = AudioToAac(0, CollectorRegistry()).open("show", track, got.append)
    for unit in units:
        transcoder.push(unit)
    transcoder.close()
    count = len(got)
    await asyncio.sleep(0.2)
    assert len(got) == count  # nothing is delivered after close


@settings(max_examples=60, deadline=None)
@given(codec=st.sampled_from(["opus", "mp3", "pcm_alaw", "adpcm_swf", "nellymoser"]),
       payloads=st.lists(st.binary(max_size=600), max_size=40))
# Found by this property: Opus packets holding 120 ms each, 20 ms apart, start a new run
# behind the old run's last frame (its AAC went back in time) unless runs never overlap.
@example(codec="opus", payloads=[b"\x18", b"\x19\x00\x00", b"\x19\x00\x00", b"\x00"])
def test_any_bytes_are_skipped_or_transcoded_never_an_exception(
        codec: str, payloads: list[bytes]) -> None:
    """A publisher's garbage audio costs that audio, nothing else: the core never raises."""
    opus_head = b"OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00"
    track = Track(TrackKind.AUDIO, codec, opus_head if codec == "opus" else b"",
                  sample_rate=48000 if codec == "opus" else 22050, channels=2)
    core = AacTranscoder(track)
    out = [aac for i, data in enumerate(payloads)
           for aac in core.push(MediaUnit(TrackKind.AUDIO, i * 20, i * 20, True, data))]
    out += core.flush()
    assert all(b.pts > a.pts for a, b in itertools.pairwise(out))
    assert core.errors <= len(payloads)
