"""fMP4/CMAF muxing with libavformat's mp4 muxer, through PyAV.

Each part is muxed by a fresh muxer that writes exactly that part's samples as one
moof+mdat: the segmenter, not the muxer, decides where fragments end. What keeps the
fragments one continuous track is libavformat itself: `frag_discont` makes each fragment's
tfdt the real decode time, `fragment_index` continues the mfhd sequence numbers, and
timestamps are not shifted (`avoid_negative_ts=disabled`). A segment is its parts, concatenated.
Muxing one part takes about a quarter of a millisecond.

PyAV builds output streams from a template stream: the muxer opens one carrying each
`Track`'s codec configuration from a few bytes of FLV (`golive.flv_template`), without
decoding anything.
"""

from __future__ import annotations

import io
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

    def close(self) -> None:
        # Streams made from a closed template would read freed codec parameters: refuse.
        self._template_streams = {}
        self._template.close()

    def mux_part(self, units: Iterable[tuple[MediaUnit, int]]) -> bytes:
        """moof+mdat for these units (DTS order; each with its duration in milliseconds)."""
        return self._mux(units, init=False)

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
