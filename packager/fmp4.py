"""fMP4/CMAF muxing: the init segment by libavformat's mp4 muxer (through PyAV), each part's
moof+mdat by `FragmentWriter`, here, the same bytes libavformat writes.

The segmenter, not a muxer, decides where fragments end: each part is exactly one
moof+mdat. libavformat wrote them too, with a fresh muxer per part: `frag_discont` makes
each fragment's tfdt the real decode time, `fragment_index` continues the mfhd sequence
numbers, and timestamps are not shifted (`avoid_negative_ts=disabled`). A segment is its
parts, concatenated.

Why the fragments are written here: with 200 real-time publishers (bench/packaging.py) the
per-part muxer was the largest cost on the event loop, 29% of its samples (py-spy): opening
a muxer, two streams from templates and the whole init segment again for each part, every
packet a PyAV object, every write a Python call, ~110 us a part on an idle core.
`FragmentWriter` packs the same boxes with `struct` in ~15 us, and writes them as
libavformat 8's movenc does (`mov_write_tfhd_tag`, `mov_write_trun_tag`: defaults in tfhd
from the first samples, per-sample fields only where they differ), which
tests/test_fmp4_writer.py checks byte for byte against libavformat on the real captures.
Only for the codecs whose samples movenc stores as they come (`DIRECT_CODECS`): it filters
AV1's OBUs, and VP9 was not compared, so those keep the per-part libavformat muxer.

PyAV builds output streams from a template stream: the muxer opens one carrying each
`Track`'s codec configuration from a few bytes of FLV (`golive.flv_template`), without
decoding anything.
"""

from __future__ import annotations

import io
import itertools
import struct
from collections.abc import Iterable

import av
from av.container import InputContainer

from golive.flv_template import (
    AUDIO_FOURCC,
    VIDEO_FOURCC,
    UnsupportedCodec,
    flv_with_sequence_headers,
)
from golive.media import MILLISECONDS, MediaUnit, Track, TrackKind

FRAGMENT_FLAGS = "empty_moov+default_base_moof+frag_discont+skip_trailer"

PACKAGEABLE_VIDEO = frozenset({"h264", *VIDEO_FOURCC})
PACKAGEABLE_AUDIO = frozenset({"aac", *AUDIO_FOURCC})
# Codecs whose fragments `FragmentWriter` writes (movenc stores their samples unchanged).
DIRECT_CODECS = frozenset({"h264", "hevc", "aac", "opus"})

# ISO/IEC 14496-12 track fragment flags, as movenc sets them with default_base_moof.
_TFHD_FLAGS = 0x020000 | 0x08 | 0x10 | 0x20  # base is moof, default duration/size/flags
_TRUN_DATA_OFFSET = 0x001
_TRUN_FIRST_SAMPLE_FLAGS = 0x004
_TRUN_DURATION = 0x100
_TRUN_SIZE = 0x200
_TRUN_FLAGS = 0x400
_TRUN_CTS = 0x800
_SYNC = 0x02000000  # sample_depends_on = 2 (an I-frame / any audio frame)
_NON_SYNC = 0x01000000 | 0x00010000  # depends on others, sample_is_non_sync_sample


class FragmentMuxer:
    """Muxes one rendition's tracks (at most one video and one audio) into fMP4."""

    def __init__(self, tracks: Iterable[Track]) -> None:
        ordered = sorted(tracks, key=lambda t: t.kind is not TrackKind.VIDEO)
        if not ordered:
            raise ValueError("nothing to mux")
        for track in ordered:
            if track.codec not in (PACKAGEABLE_VIDEO if track.kind is TrackKind.VIDEO
                                   else PACKAGEABLE_AUDIO):
                raise UnsupportedCodec(
                    f"{track.kind} codec {track.codec} cannot be packaged as fMP4")
        self.tracks = tuple(ordered)
        self._template: InputContainer = av.open(
            io.BytesIO(flv_with_sequence_headers(self.tracks)), "r", format="flv")
        self._template_streams = {s.type: s for s in self._template.streams}
        missing = [t.kind.value for t in self.tracks
                   if t.kind.value not in self._template_streams]
        if missing:
            raise UnsupportedCodec(f"libavformat read no {', '.join(missing)} configuration")
        self._fragments = 0
        self.init_segment = self._mux([], init=True)
        self._writer = (FragmentWriter(self.tracks, self.init_segment)
                        if all(t.codec in DIRECT_CODECS for t in self.tracks) else None)

    def close(self) -> None:
        # Streams made from a closed template would read freed codec parameters: refuse.
        self._template_streams = {}
        self._template.close()

    def mux_part(self, units: Iterable[tuple[MediaUnit, int]]) -> bytes:
        """moof+mdat for these units (DTS order; each with its duration in milliseconds)."""
        return b"".join(self.mux_part_chunks(units))

    def mux_part_chunks(self, units: Iterable[tuple[MediaUnit, int]]) -> list[bytes]:
        """`mux_part` as pieces to join (the samples' own bytes among them: `Store.put_chunks`
        joins them only when the part is read); [] when no unit belongs to a track."""
        if not self._template_streams:
            raise ValueError("the muxer is closed")
        if self._writer is None:
            data = self._mux(units, init=False)
            return [data] if data else []
        chunks = self._writer.chunks(self._fragments + 1, units)
        if chunks:
            self._fragments += 1
        return chunks

    def _mux(self, units: Iterable[tuple[MediaUnit, int]], init: bool) -> bytes:
        if not self._template_streams:
            raise ValueError("the muxer is closed")
        buffer = io.BytesIO()
        options = {"movflags": FRAGMENT_FLAGS, "avoid_negative_ts": "disabled",
                   # Without an edit list, frag_discont makes tfdt the first sample's DTS
                   # (with one it is the PTS, which B-frames put a frame or two later).
                   "use_editlist": "0", "fragment_index": str(self._fragments + 1)}
        with av.open(buffer, "w", format="mp4", options=options) as output:
            streams = {}
            for track in self.tracks:
                stream = output.add_stream_from_template(
                    self._template_streams[track.kind.value], opaque=True)
                stream.time_base = MILLISECONDS
                if track.kind is TrackKind.VIDEO:
                    stream.codec_context.width = track.width
                    stream.codec_context.height = track.height
                else:
                    if track.sample_rate:
                        stream.codec_context.sample_rate = track.sample_rate
                streams[track.kind] = stream
            output.start_encoding()
            written = False
            for unit, duration in units:
                stream = streams.get(unit.kind)
                if stream is None:
                    continue
                packet = av.Packet(unit.data)
                packet.stream = stream
                packet.time_base = MILLISECONDS
                packet.dts = unit.dts
                packet.pts = unit.pts
                packet.duration = duration
                packet.is_keyframe = unit.keyframe
                output.mux(packet)
                written = True
        data = buffer.getvalue()
        if init:
            return _boxes(data, (b"ftyp", b"moov"))
        if written:
            self._fragments += 1
        return _boxes(data, (b"moof", b"mdat"))


def _boxes(data: bytes, wanted: tuple[bytes, ...]) -> bytes:
    """The top-level ISO BMFF boxes of the given types, in order."""
    out = []
    offset = 0
    while offset + 8 <= len(data):
        size, box = struct.unpack_from(">I4s", data, offset)
        if size < 8:
            break
        if box in wanted:
            out.append(data[offset:offset + size])
        offset += size
    return b"".join(out)


def _track_timescales(init: bytes) -> list[tuple[int, int]]:
    """(track_ID, media timescale) of each trak in an init segment's moov, in order."""
    tracks = []
    for moov_start, moov_end in _children(init, 0, len(init), b"moov"):
        for trak_start, trak_end in _children(init, moov_start, moov_end, b"trak"):
            track_id = timescale = 0
            for start, _ in _children(init, trak_start, trak_end, b"tkhd"):
                offset = start + (20 if init[start] == 1 else 12)  # after the times
                track_id = int.from_bytes(init[offset:offset + 4], "big")
            for mdia_start, mdia_end in _children(init, trak_start, trak_end, b"mdia"):
                for start, _ in _children(init, mdia_start, mdia_end, b"mdhd"):
                    offset = start + (20 if init[start] == 1 else 12)
                    timescale = int.from_bytes(init[offset:offset + 4], "big")
            tracks.append((track_id, timescale))
    return tracks


def _children(data: bytes, start: int, end: int, wanted: bytes) -> list[tuple[int, int]]:
    """(payload start, end) of the boxes of type `wanted` directly inside data[start:end]."""
    found = []
    while start + 8 <= end:
        size, box = struct.unpack_from(">I4s", data, start)
        if size < 8:
            break
        if box == wanted:
            found.append((start + 8, start + size))
        start += size
    return found


class FragmentWriter:
    """One moof+mdat per call, as libavformat's movenc writes them for a fresh muxer holding
    exactly those samples (see the module docstring). Pure: bytes in, bytes out."""

    def __init__(self, tracks: tuple[Track, ...], init_segment: bytes) -> None:
        boxes = _track_timescales(init_segment)
        if len(boxes) != len(tracks):
            raise ValueError("the init segment does not describe these tracks")
        # (kind, track_ID, timescale, is video), in the init segment's (and mdat's) order.
        self._tracks = [(track.kind, track_id, timescale, track.kind is TrackKind.VIDEO)
                        for track, (track_id, timescale) in zip(tracks, boxes, strict=True)]
        self._slot = {track.kind: i for i, track in enumerate(tracks)}

    def fragment(self, sequence: int, units: Iterable[tuple[MediaUnit, int]]) -> bytes:
        """moof (mfhd `sequence`) + mdat of `units` (DTS order within a track); b"" when
        none belongs to a track."""
        return b"".join(self.chunks(sequence, units))

    def chunks(self, sequence: int, units: Iterable[tuple[MediaUnit, int]]) -> list[bytes]:
        """`fragment` as the pieces it is the join of: the boxes up to the mdat's payload,
        then each sample's data, the units' own bytes (nothing copied); [] for none."""
        units = units if isinstance(units, list) else list(units)
        runs = []
        for kind, track_id, timescale, video in self._tracks:
            samples = [timed for timed in units if timed[0].kind is kind]
            if samples:
                runs.append(_run(track_id, timescale, video, samples))
        if not runs:
            return []
        # Sizes first: every trun's data offset counts from the moof's first byte.
        moof_size = 8 + 16 + sum(run[0] for run in runs)
        out = [_MOOF_HEAD.pack(moof_size, b"moof", 16, b"mfhd", 0, sequence)]
        offset = moof_size + 8
        for traf_size, head, first, table, _, mdat_size in runs:
            track_id, tfdt, flags, count, defaults = head
            out.append(_TRAF_HEAD.pack(
                traf_size, b"traf", 28, b"tfhd", _TFHD_FLAGS, track_id, *defaults,
                20, b"tfdt", 1 << 24, tfdt, traf_size - 56, b"trun", flags, count, offset))
            if first is not None:
                out.append(first)
            out.append(table)
            offset += mdat_size
        out.append(struct.pack(">I4s", offset - moof_size, b"mdat"))
        pieces = [b"".join(out)]
        for run in runs:
            pieces += run[4]
        return pieces


_MOOF_HEAD = struct.Struct(">I4sI4sII")
# traf, tfhd (flags, track_ID, default duration, size, flags), tfdt v1, trun up to its
# data offset
_TRAF_HEAD = struct.Struct(">I4sI4sIIIII" "I4sIQ" "I4sIIi")


def _rescale(value: int, timescale: int) -> int:
    """Milliseconds to `timescale` units, rounded half away from zero (av_rescale_q)."""
    if timescale % 1000 == 0:
        return value * (timescale // 1000)
    scaled = abs(value) * timescale * 2 + 1000
    return (scaled // 2000) if value >= 0 else -(scaled // 2000)


def _run(track_id: int, timescale: int, video: bool, samples: list[tuple[MediaUnit, int]]
         ) -> tuple[int, tuple[int, int, int, int, tuple[int, int, int]], bytes | None, bytes,
                    list[bytes], int]:
    """One track's run: (traf size, (track_ID, tfdt, trun flags, sample count, tfhd
    defaults), the first sample's flags packed or None, the per-sample table packed, the
    samples' data, its size)."""
    if timescale % 1000 == 0:
        scale = timescale // 1000
        dts = [unit.dts * scale for unit, _ in samples]
        cts = [unit.pts * scale - d for (unit, _), d in zip(samples, dts, strict=True)]
        last = samples[-1][1] * scale
    else:
        dts = [_rescale(unit.dts, timescale) for unit, _ in samples]
        cts = [_rescale(unit.pts, timescale) - d
               for (unit, _), d in zip(samples, dts, strict=True)]
        last = _rescale(samples[-1][1], timescale)
    # movenc: a sample lasts until the next one's DTS; the last until the track's end.
    durations = [b - a for a, b in itertools.pairwise(dts)]
    durations.append(last)
    data = [unit.data for unit, _ in samples]
    sizes = [len(d) for d in data]
    flags = [_SYNC if unit.keyframe else _NON_SYNC for unit, _ in samples]
    count = len(samples)
    default_duration, default_size = durations[0], sizes[0]
    # Set from the second sample; a first one that differs says so in the trun.
    default_flags = flags[1] if count > 1 else (_NON_SYNC if video else _SYNC)
    trun = _TRUN_DATA_OFFSET
    columns = []
    kinds = ""
    if durations.count(default_duration) != count:
        trun |= _TRUN_DURATION
        columns.append(durations)
        kinds += "I"
    if sizes.count(default_size) != count:
        trun |= _TRUN_SIZE
        columns.append(sizes)
        kinds += "I"
    if flags.count(default_flags) != count - (flags[0] != default_flags):
        trun |= _TRUN_FLAGS  # (a sample after the first differs)
        columns.append(flags)
        kinds += "I"
    first = None
    if not trun & _TRUN_FLAGS and flags[0] != default_flags:
        trun |= _TRUN_FIRST_SAMPLE_FLAGS
        first = struct.pack(">I", flags[0])
    if any(cts):  # movenc marks a track with composition offsets once a packet has one
        trun |= _TRUN_CTS
        columns.append(cts)
        kinds += "i"  # (a negative offset, written as movenc does: two's complement)
    if len(columns) == 1:
        table = struct.pack(f">{count}{kinds}", *columns[0])
    else:
        table = struct.pack(">" + kinds * count, *[v for row in zip(*columns, strict=True)
                                                       for v in row])
    traf_size = 8 + 28 + 20 + 20 + (4 if first is not None else 0) + len(table)
    return (traf_size, (track_id, dts[0], trun, count, (default_duration, default_size,
                                                       default_flags)),
            first, table, data, sum(sizes))
