"""The ladder pipeline in-process, on a synthetic H.264 source with B-frames: every rung
decodes at its own size, IDRs exactly at the requested presentation times and nowhere else,
timestamps the muxers can take. And the Annex B conversions, on libx264's real output."""

from __future__ import annotations

import io
import struct
from fractions import Fraction

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from publishers import FPS, synthetic_source

from golive.media import MediaUnit, Track, TrackKind
from golive.packager.fmp4 import FragmentMuxer
from golive.transcode.annexb import nal_units, to_length_prefixed
from golive.transcode.config import TranscodeConfig
from golive.transcode.ladder import parse_rung
from golive.transcode.pipeline import EncoderSettings, LadderPipeline, decoder_threads
from golive.transcode.service import Transcoder

FRAME_MS = 1000 // FPS


@pytest.fixture(scope="module")
def source() -> tuple[Track, list[MediaUnit]]:
    return synthetic_source(150)


def transcode(track: Track, units: list[MediaUnit], idr_every: int,
              settings: EncoderSettings | None = None
              ) -> dict[str, tuple[Track, list[MediaUnit]]]:
    out: dict[str, list[Track | MediaUnit]] = {}
    rungs = (parse_rung("240p@300k"), parse_rung("180p@150k"))
    pipeline = LadderPipeline(track, rungs, settings or EncoderSettings(),
                              lambda name, item: out.setdefault(name, []).append(item))
    presented = sorted(u.pts for u in units)
    idr_pts = set(presented[::idr_every])
    for unit in units:
        pipeline.push(unit, idr=unit.pts in idr_pts)
    pipeline.close()
    result = {}
    for name, items in out.items():
        first, *rest = items
        assert isinstance(first, Track)
        assert all(isinstance(u, MediaUnit) for u in rest)
        result[name] = (first, rest)  # type: ignore[assignment]
    return result


def decode(track: Track, units: list[MediaUnit]) -> list[av.VideoFrame]:
    """Through the fMP4 muxer the packager uses, then libavformat/libavcodec."""
    muxer = FragmentMuxer([track])
    data = muxer.init_segment + muxer.mux_part([(u, FRAME_MS) for u in units])
    with av.open(io.BytesIO(data)) as container:
        return [f for p in container.demux(video=0) for f in p.decode()]


def test_vbv_follows_the_bitrate_and_the_configured_factors() -> None:
    """The one VBV computation: the defaults (1.1 x peak over 1.5 s), and the configured
    `transcode.maxrate`/`bufsize` as the Transcoder hands them to the rungs' encoders."""
    rung = parse_rung("480p@1000k")
    assert EncoderSettings().vbv(rung) == (1_100_000, 1_500_000)
    config = TranscodeConfig(maxrate=1.5, bufsize=2.0, workers=1)
    assert Transcoder(config, CollectorRegistry()).settings.vbv(rung) == (1_500_000, 2_000_000)


@pytest.mark.parametrize("cascade", [True, False])
def test_rungs_decode_at_their_size_with_idrs_only_where_asked(
        source: tuple[Track, list[MediaUnit]], cascade: bool) -> None:
    track, units = source
    rungs = transcode(track, units, idr_every=50, settings=EncoderSettings(cascade=cascade))
    assert set(rungs) == {"240p", "180p"}
    wanted = sorted(u.pts for u in units)[::50]
    for name, size in (("240p", (426, 240)), ("180p", (320, 180))):
        rung_track, rung_units = rungs[name]
        assert (rung_track.width, rung_track.height) == size
        assert rung_track.codec_string.startswith("avc1.64")
        assert len(rung_units) == len(units)
        assert sorted(u.pts for u in rung_units if u.keyframe) == wanted
        # No B-frames by default: decode order is presentation order, DTS is the PTS.
        assert all(u.dts == u.pts for u in rung_units)
        assert [u.pts for u in rung_units] == sorted(u.pts for u in units)
        frames = decode(rung_track, rung_units)
        assert len(frames) == len(units)
        assert {(f.width, f.height) for f in frames} == {size}
        assert [f.key_frame for f in frames].count(True) == len(wanted)


def test_b_frames_keep_dts_rising_non_negative_and_below_pts(
        source: tuple[Track, list[MediaUnit]]) -> None:
    track, units = source
    rungs = transcode(track, units, idr_every=25, settings=EncoderSettings(bframes=2))
    for rung_track, rung_units in rungs.values():
        dts = [u.dts for u in rung_units]
        assert dts == sorted(set(dts)) and dts[0] >= 0
        assert all(u.dts <= u.pts for u in rung_units)
        assert any(u.dts != u.pts for u in rung_units)  # B-frames really were made
        assert len(decode(rung_track, rung_units)) == len(units)


def test_bitrates_follow_the_rungs(source: tuple[Track, list[MediaUnit]]) -> None:
    track, units = source
    rungs = transcode(track, units, idr_every=50)
    seconds = len(units) / FPS
    rates = {name: sum(len(u.data) for u in rung_units) * 8 / seconds
             for name, (_, rung_units) in rungs.items()}
    assert 0.5 * 300_000 < rates["240p"] < 1.5 * 300_000
    assert 0.5 * 150_000 < rates["180p"] < 1.5 * 150_000


def test_a_corrupt_unit_is_counted_and_the_stream_goes_on(
        source: tuple[Track, list[MediaUnit]]) -> None:
    track, units = source
    damaged = list(units)
    victim = damaged[10]
    damaged[10] = victim._replace(data=struct.pack(">I", 40) + bytes([0x41]) + b"\xff" * 39)
    damaged[60] = damaged[60]._replace(data=b"")  # to libavcodec, the end of the stream
    out: list[Track | MediaUnit] = []
    pipeline = LadderPipeline(track, (parse_rung("180p@150k"),), EncoderSettings(),
                              lambda name, item: out.append(item))
    for unit in damaged:
        pipeline.push(unit)
    pipeline.close()
    assert len([u for u in out if isinstance(u, MediaUnit)]) >= len(units) - 25
    assert pipeline.stats.decoded >= len(units) - 25
    assert pipeline.stats.decode_errors >= 1  # the empty one, at least


def test_annexb_conversion_on_real_encoder_output(
        source: tuple[Track, list[MediaUnit]]) -> None:
    track, _ = source
    record = track.extradata
    assert record[0] == 1 and record[1] == 100  # version 1, High profile
    assert record[5] & 0x1F == 1  # one SPS
    sps_length = struct.unpack_from(">H", record, 6)[0]
    assert record[8] & 0x1F == 7 and record[8 + sps_length] == 1  # then one PPS
    assert record[-4:] == bytes([0xFD, 0xF8, 0xF8, 0])  # High: 4:2:0 8-bit extension


nal = st.binary(min_size=1, max_size=64).filter(lambda b: b"\x00\x00" not in b and b[-1] != 0)


@given(st.lists(nal, min_size=1, max_size=8), st.lists(st.booleans(), min_size=8, max_size=8))
def test_annexb_round_trip(nals: list[bytes], long_codes: list[bool]) -> None:
    annexb = b"".join((b"\x00\x00\x00\x01" if long else b"\x00\x00\x01") + n
                      for n, long in zip(nals, long_codes, strict=False))
    assert nal_units(annexb) == nals
    prefixed = to_length_prefixed(annexb)
    offset, back = 0, []
    while offset < len(prefixed):
        (size,) = struct.unpack_from(">I", prefixed, offset)
        back.append(prefixed[offset + 4:offset + 4 + size])
        offset += 4 + size
    assert back == nals


def test_a_failing_rung_fails_the_pipeline_instead_of_blocking_it(
        source: tuple[Track, list[MediaUnit]]) -> None:
    track, units = source
    seen = 0

    def output(name: str, item: Track | MediaUnit) -> None:
        nonlocal seen
        seen += 1
        if seen > 5:
            raise OSError("the channel is gone")

    pipeline = LadderPipeline(track, (parse_rung("240p@300k"), parse_rung("180p@150k")),
                              EncoderSettings(), output)
    with pytest.raises(RuntimeError, match=r"rung .*the channel is gone"):
        for unit in units:
            pipeline.push(unit)
    pipeline.close()  # returns: every rung thread has ended
    assert not any(e.thread.is_alive() for e in pipeline.encoders)


@pytest.mark.parametrize(("width", "height", "fps", "threads"), [
    (1280, 720, 25, 1), (1920, 1080, 30, 1), (720, 1280, 30, 1),  # one thread is cheaper
    (1920, 1080, 60, 0), (3840, 2160, 30, 0),  # frame threads: one would fall behind
])
def test_decoder_threads_by_source_pixel_rate(width: int, height: int, fps: int,
                                              threads: int) -> None:
    track = Track(TrackKind.VIDEO, "h264", b"", width=width, height=height,
                  frame_rate=Fraction(fps))
    assert decoder_threads(track) == threads


def test_hevc_rungs_with_libx265(source: tuple[Track, list[MediaUnit]]) -> None:
    """`codec = "libx265"`: HEVC rungs with the same IDR discipline, an hvcC the packager
    muxes, and the VBV settings passed on."""
    track, units = source
    units = units[:100]
    settings = EncoderSettings(codec="libx265", preset="ultrafast", maxrate=1.2, bufsize=1.0)
    rungs = transcode(track, units, idr_every=50, settings=settings)
    wanted = sorted(u.pts for u in units)[::50]
    for name, size in (("240p", (426, 240)), ("180p", (320, 180))):
        rung_track, rung_units = rungs[name]
        assert rung_track.codec == "hevc" and rung_track.codec_string.startswith("hvc1.1.")
        assert rung_track.extradata[0] == 1  # hvcC configurationVersion, not Annex B
        assert sorted(u.pts for u in rung_units if u.keyframe) == wanted
        assert all(u.dts == u.pts for u in rung_units)
        frames = decode(rung_track, rung_units)
        assert len(frames) == len(units)
        assert {(f.width, f.height) for f in frames} == {size}
        assert [f.key_frame for f in frames].count(True) == len(wanted)
    # x265 writes its settings into the stream: 1.2 x 300 kb/s peak over 1 s of buffer.
    rung_track, rung_units = rungs["240p"]
    written = rung_track.extradata + rung_units[0].data
    assert b"vbv-maxrate=360" in written and b"vbv-bufsize=300" in written
