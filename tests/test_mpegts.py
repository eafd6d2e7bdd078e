"""MPEG-TS segments from real x264/AAC units, checked byte by byte and by decoding them.

The units come straight from the FLV tags FFmpeg's FLV muxer wrote (as an RTMP publisher
sends them), are cut by the real segmenter, and the TS packets are parsed here, independently
of libavformat, for the PAT/PMT and continuity-counter rules of CONFORMANCE.md.
"""

from __future__ import annotations

import functools
import io
import itertools
from collections import defaultdict
from dataclasses import dataclass

import av
import pytest
from publishers import annexb_nal_units, encode_clip

from golive.media import MediaUnit, Track, TrackKind
from golive.packager.fmp4 import UnsupportedCodec
from golive.packager.mpegts import TsMuxer
from golive.packager.timeline import Part, Segmenter, TimedUnit, TimelineConfig

SECONDS = 8.0  # four 2 s segments at the default segment target, GOP 25 at 25 fps


# --- real units, cut by the real segmenter -------------------------------------------------


@dataclass
class Segment:
    parts: list[Part]

    @property
    def units(self) -> list[TimedUnit]:
        return [timed for part in self.parts for timed in part.units]

    @property
    def duration_ms(self) -> int:
        return sum(part.duration_ms for part in self.parts)

    def of(self, kind: TrackKind) -> list[MediaUnit]:
        return [unit for unit, _ in self.units if unit.kind is kind]


@functools.cache
def clip_media(seconds: float = SECONDS) -> tuple[tuple[Track, ...], tuple[MediaUnit, ...]]:
    """Tracks and units exactly as the FLV tags carry them (avcC, AVCC NAL units, raw AAC)."""
    tags = encode_clip(seconds, 320, 240).tags
    avcc = next(t.body[5:] for t in tags if t.type == 9 and t.body[1] == 0)
    asc = next(t.body[2:] for t in tags if t.type == 8 and t.body[1] == 0)
    tracks = (Track(TrackKind.VIDEO, "h264", avcc, width=320, height=240),
              Track(TrackKind.AUDIO, "aac", asc, sample_rate=48000, channels=2))
    units = []
    for tag in tags:
        if tag.is_coded_video:
            composition = int.from_bytes(tag.body[2:5], "big", signed=True)
            units.append(MediaUnit(TrackKind.VIDEO, tag.timestamp, tag.timestamp + composition,
                                   tag.body[0] >> 4 == 1, tag.body[5:]))
        elif tag.is_coded_audio:
            units.append(MediaUnit(TrackKind.AUDIO, tag.timestamp, tag.timestamp, True,
                                   tag.body[2:]))
    return tracks, tuple(units)


def cut(units: tuple[MediaUnit, ...] | list[MediaUnit], *, audio: bool = True) -> list[Segment]:
    segmenter = Segmenter(TimelineConfig(), has_video=True, has_audio=audio)
    parts: list[Part] = []
    for unit in units:
        parts += segmenter.push(unit)
    parts += segmenter.flush()
    segments: list[Segment] = []
    for part in parts:
        if part.first_in_segment:
            segments.append(Segment([]))
        segments[-1].parts.append(part)
    return segments


def mux_all(muxer: TsMuxer, segments: list[Segment]) -> list[bytes]:
    """As the live packager will: each segment once the next one's first unit exists."""
    out = []
    for index, segment in enumerate(segments):
        following = segments[index + 1].units[0][0] if index + 1 < len(segments) else None
        out.append(muxer.mux_segment(segment.units, following))
    return out


@pytest.fixture(scope="module")
def media() -> tuple[tuple[Track, ...], list[Segment], list[bytes]]:
    tracks, units = clip_media()
    segments = cut(units)
    muxer = TsMuxer(tracks)
    return tracks, segments, mux_all(muxer, segments)


# --- TS packets, parsed here --------------------------------------------------------------


@dataclass(frozen=True)
class TsPacket:
    pid: int
    start: bool  # payload_unit_start_indicator
    cc: int
    has_payload: bool
    discontinuity: bool
    random_access: bool
    payload: bytes


def ts_packets(data: bytes) -> list[TsPacket]:
    assert len(data) % 188 == 0
    packets = []
    for offset in range(0, len(data), 188):
        packet = data[offset:offset + 188]
        assert packet[0] == 0x47, f"lost sync at byte {offset}"
        control = packet[3] >> 4 & 3
        body = 4
        discontinuity = random_access = False
        if control & 2:  # adaptation field
            length = packet[4]
            if length:
                discontinuity = bool(packet[5] & 0x80)
                random_access = bool(packet[5] & 0x40)
            body = 5 + length
        packets.append(TsPacket(
            pid=(packet[1] & 0x1F) << 8 | packet[2], start=bool(packet[1] & 0x40),
            cc=packet[3] & 0x0F, has_payload=bool(control & 1), discontinuity=discontinuity,
            random_access=random_access, payload=packet[body:] if control & 1 else b""))
    return packets


def pmt_pid(pat: TsPacket) -> int:
    section = pat.payload[1 + pat.payload[0]:]  # after the pointer field
    assert section[0] == 0x00  # table_id: program_association_section
    program = section[8:12]  # the first (only) program after the 8-byte header
    assert int.from_bytes(program[:2], "big") != 0  # not the network PID
    return (program[2] & 0x1F) << 8 | program[3]


def pes_payload(packets: list[TsPacket], first: int) -> bytes:
    """The PES packet starting at packets[first], header stripped."""
    pid = packets[first].pid
    data = packets[first].payload
    for packet in packets[first + 1:]:
        if packet.pid != pid:
            continue
        if packet.start:
            break
        data += packet.payload
    assert data[:3] == b"\x00\x00\x01"
    return data[9 + data[8]:]


def nal_types(annexb: bytes) -> list[int]:
    return [unit[0] & 0x1F for unit in annexb_nal_units(annexb)]


def avcc_nal_units(data: bytes) -> list[bytes]:
    units, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        units.append(data[pos + 4:pos + 4 + size])
        pos += 4 + size
    return units


@dataclass(frozen=True)
class Demuxed:
    kind: str
    dts: int  # 1/90000 s
    pts: int
    data: bytes


def demux(data: bytes) -> list[Demuxed]:
    """What libavformat's mpegts demuxer reads back (copied out before the container closes:
    a packet's stream is freed with it)."""
    with av.open(io.BytesIO(data), "r", format="mpegts") as container:
        return [Demuxed(p.stream.type, p.dts, p.pts, bytes(p))
                for p in container.demux() if p.size]


# --- tests ---------------------------------------------------------------------------------


def test_clip_is_cut_into_whole_gops(media: tuple[tuple[Track, ...], list[Segment],
                                                  list[bytes]]) -> None:
    _, segments, data = media
    assert len(segments) == 4
    assert all(s.units[0][0].keyframe and s.units[0][0].kind is TrackKind.VIDEO
               for s in segments)
    assert len(data) == len(segments)


def test_each_segment_starts_with_pat_pmt_then_the_idr(media: tuple[tuple[Track, ...],
                                                                   list[Segment],
                                                                   list[bytes]]) -> None:
    _, _, data = media
    for index, segment in enumerate(data):
        packets = ts_packets(segment)
        if index == 0 and packets[0].pid == 0x11:
            # The muxer's one DVB SDT leads the stream (FFmpeg's HLS segments too); never again.
            packets = packets[1:]
        assert packets[0].pid == 0 and packets[0].start, f"segment {index}: no PAT first"
        pmt = pmt_pid(packets[0])
        assert packets[1].pid == pmt and packets[1].start, f"segment {index}: no PMT second"
        first_pes = next(i for i, p in enumerate(packets) if p.start and p.pid not in (0, pmt))
        assert packets[first_pes].random_access  # the IDR, flagged for random access
        annexb = pes_payload(packets, first_pes)
        # Annex B from avcC units: the muxer's h264_mp4toannexb put SPS and PPS before the IDR
        # (the muxer adds an access unit delimiter, type 9, in front).
        types = nal_types(annexb)
        assert types[:1] == [9] and {7, 8, 5} <= set(types), types
        assert types.index(7) < types.index(5) and types.index(8) < types.index(5)
    assert not any(p.pid == 0x11 for segment in data[1:] for p in ts_packets(segment))


def test_each_segment_holds_exactly_its_own_units(media: tuple[tuple[Track, ...],
                                                               list[Segment],
                                                               list[bytes]]) -> None:
    """No byte of a segment is left in the muxer for the next one (or taken from it)."""
    _, segments, data = media
    for segment, ts in zip(segments, data, strict=True):
        packets = demux(ts)
        video = [p for p in packets if p.kind == "video"]
        audio = [p for p in packets if p.kind == "audio"]
        expected_video = segment.of(TrackKind.VIDEO)
        expected_audio = segment.of(TrackKind.AUDIO)
        assert [(p.dts, p.pts) for p in video] == [
            (u.dts * 90, u.pts * 90) for u in expected_video]
        assert [p.pts for p in audio] == [u.pts * 90 for u in expected_audio]
        for packet, unit in zip(video, expected_video, strict=True):
            payload = [n for n in annexb_nal_units(packet.data) if n[0] & 0x1F not in (7, 8, 9)]
            assert payload == avcc_nal_units(unit.data)
        for packet, unit in zip(audio, expected_audio, strict=True):
            # ADTS header (7 bytes, no CRC) + the raw frame
            assert packet.data[:2] == b"\xff\xf1" and packet.data[7:] == unit.data


def test_each_segment_decodes_on_its_own(media: tuple[tuple[Track, ...], list[Segment],
                                                      list[bytes]]) -> None:
    _, segments, data = media
    for segment, ts in zip(segments, data, strict=True):
        with av.open(io.BytesIO(ts), "r", format="mpegts") as container:
            frames = list(container.decode(video=0))
            assert frames[0].key_frame
            assert len(frames) == len(segment.of(TrackKind.VIDEO))
        with av.open(io.BytesIO(ts), "r", format="mpegts") as container:
            samples = sum(f.samples for f in container.decode(audio=0))
            assert samples == 1024 * len(segment.of(TrackKind.AUDIO))


def test_segments_concatenate_into_one_timeline(media: tuple[tuple[Track, ...],
                                                             list[Segment],
                                                             list[bytes]]) -> None:
    _, segments, data = media
    packets = demux(b"".join(data))
    dts: dict[str, list[int]] = defaultdict(list)
    for packet in packets:
        dts[packet.kind].append(packet.dts)
    video = [u for s in segments for u in s.of(TrackKind.VIDEO)]
    audio = [u for s in segments for u in s.of(TrackKind.AUDIO)]
    assert dts["video"] == [u.dts * 90 for u in video]
    assert dts["audio"] == [u.dts * 90 for u in audio]
    # Continuous: one frame (40 ms) between all video DTS, across every segment boundary;
    # audio follows the publisher's millisecond timestamps (1024 / 48000 s = 21.33 ms).
    assert {b - a for a, b in itertools.pairwise(dts["video"])} == {3600}
    assert {b - a for a, b in itertools.pairwise(dts["audio"])} <= {21 * 90, 22 * 90}
    with av.open(io.BytesIO(b"".join(data)), "r", format="mpegts") as container:
        assert sum(1 for _ in container.decode(video=0)) == len(video)


def test_continuity_counters_continue_across_segments(media: tuple[tuple[Track, ...],
                                                                   list[Segment],
                                                                   list[bytes]]) -> None:
    _, _, data = media
    counters: list[dict[int, list[int]]] = []  # per segment: PID -> CCs of payload packets
    for segment in data:
        by_pid: dict[int, list[int]] = defaultdict(list)
        for packet in ts_packets(segment):
            assert not packet.discontinuity  # nothing excuses a counter jump
            if packet.has_payload:  # only packets with payload advance the counter
                by_pid[packet.pid].append(packet.cc)
        counters.append(by_pid)
    for index, by_pid in enumerate(counters):
        for pid, ccs in by_pid.items():
            assert all(b == (a + 1) % 16 for a, b in itertools.pairwise(ccs)), (index, hex(pid))
    for index, (before, after) in enumerate(itertools.pairwise(counters)):
        # PAT, PMT, video and audio all appear on both sides of every boundary
        assert {0, 0x1000, 0x100, 0x101} <= set(before) & set(after)
        for pid in set(before) & set(after):
            assert after[pid][0] == (before[pid][-1] + 1) % 16, (index, hex(pid))


def test_without_following_each_segment_is_flushed_by_closing() -> None:
    """`following=None` (end of broadcast, discontinuity) flushes everything; the next
    segment starts a new timeline, whose counters restart, as a new muxer's must."""
    tracks, units = clip_media()
    segments = cut(units)
    muxer = TsMuxer(tracks)
    data = [muxer.mux_segment(segment.units) for segment in segments]
    assert muxer.timelines == len(segments)
    for segment, ts in zip(segments, data, strict=True):
        video = [p for p in demux(ts) if p.kind == "video"]
        assert [p.dts for p in video] == [u.dts * 90 for u in segment.of(TrackKind.VIDEO)]
        assert ts_packets(ts)[1].pid == 0  # SDT, PAT: a new muxer each time
    muxer.close()


def test_timestamps_going_back_need_a_new_timeline() -> None:
    tracks, units = clip_media()
    segments = cut(units)
    muxer = TsMuxer(tracks)
    muxer.mux_segment(segments[0].units, segments[1].units[0][0])
    muxer.mux_segment(segments[1].units)  # a discontinuity follows: close this timeline
    again = muxer.mux_segment(segments[0].units, segments[1].units[0][0])  # replayed from 0
    assert next(p.dts for p in demux(again) if p.kind == "video") == 0
    muxer.close()
    with pytest.raises(ValueError, match="closed"):
        muxer.mux_segment(segments[1].units)


def test_following_must_open_the_next_segment() -> None:
    tracks, units = clip_media()
    segments = cut(units)
    muxer = TsMuxer(tracks)
    muxer.mux_segment(segments[0].units, segments[1].units[0][0])
    with pytest.raises(ValueError, match="following"):
        muxer.mux_segment(segments[2].units)
    with pytest.raises(ValueError, match="after every unit"):
        TsMuxer(tracks).mux_segment(segments[1].units, segments[0].units[0][0])


def test_video_only() -> None:
    tracks, units = clip_media()
    video = [u for u in units if u.kind is TrackKind.VIDEO]
    segments = cut(video, audio=False)
    data = mux_all(TsMuxer(tracks[:1]), segments)
    cc: dict[int, int] = {}
    for segment, ts in zip(segments, data, strict=True):
        packets = ts_packets(ts)
        assert packets[0].pid in (0, 0x11)
        assert [p.dts for p in demux(ts)] == [u.dts * 90 for u in segment.of(TrackKind.VIDEO)]
        for packet in packets:
            if packet.has_payload:
                assert packet.pid not in cc or packet.cc == (cc[packet.pid] + 1) % 16
                cc[packet.pid] = packet.cc


@pytest.mark.parametrize("tracks", [
    [Track(TrackKind.VIDEO, "hevc", b"\x01")],
    [Track(TrackKind.VIDEO, "h264", b"\x01"), Track(TrackKind.AUDIO, "opus", b"OpusHead")],
    [Track(TrackKind.AUDIO, "aac", b"\x11\x90")],  # audio-only: no keyframes to carry PAT
])
def test_unsupported_track_sets(tracks: list[Track]) -> None:
    with pytest.raises(UnsupportedCodec):
        TsMuxer(tracks)
