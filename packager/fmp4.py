"""fMP4/CMAF muxing with libavformat's mp4 muxer, through PyAV.

Each part is muxed by a fresh muxer that writes exactly that part's samples as one
moof+mdat: the segmenter, not the muxer, decides where fragments end. What keeps the
fragments one continuous track is libavformat itself: `frag_discont` makes each fragment's
tfdt the real decode time, `fragment_index` continues the mfhd sequence numbers, and
timestamps are not shifted (`avoid_negative_ts=disabled`). A segment is its parts, concatenated.
Muxing one part takes about a quarter of a millisecond.

PyAV builds output streams from a template stream. To get one that carries a `Track`'s codec
configuration without decoding anything, `_template` opens a few bytes of FLV holding just the
sequence headers, exactly as an RTMP publisher sent them: libavformat's FLV demuxer turns
them into codec parameters (avcC, hvcC, av1C, AudioSpecificConfig, OpusHead).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable

import av
from av.container import InputContainer

from golive.media import MILLISECONDS, MediaUnit, Track, TrackKind

FRAGMENT_FLAGS = "empty_moov+default_base_moof+frag_discont+skip_trailer"

# FLV sequence-header payloads (FLV spec; Enhanced RTMP for HEVC, AV1, VP9 and Opus).
_VIDEO_FOURCC = {"hevc": b"hvc1", "av1": b"av01", "vp9": b"vp09"}
_AUDIO_FOURCC = {"opus": b"Opus"}
PACKAGEABLE_VIDEO = frozenset({"h264", *_VIDEO_FOURCC})
PACKAGEABLE_AUDIO = frozenset({"aac", *_AUDIO_FOURCC})


class UnsupportedCodec(ValueError):
    """The track's codec cannot go into fMP4 HLS here (e.g. MP3 before transcoding)."""


def _flv_tag(tag_type: int, body: bytes) -> bytes:
    header = bytes([tag_type]) + len(body).to_bytes(3, "big") + bytes(7)
    return header + body + struct.pack(">I", 11 + len(body))


def _sequence_header(track: Track) -> bytes:
    if track.kind is TrackKind.VIDEO:
        if track.codec == "h264":
            return _flv_tag(9, b"\x17\x00\x00\x00\x00" + track.extradata)
        fourcc = _VIDEO_FOURCC.get(track.codec)
        if fourcc is None:
            raise UnsupportedCodec(f"video codec {track.codec} cannot be packaged as fMP4")
        return _flv_tag(9, b"\x90" + fourcc + track.extradata)  # keyframe, SequenceStart
    if track.codec == "aac":
        return _flv_tag(8, b"\xaf\x00" + track.extradata)
    fourcc = _AUDIO_FOURCC.get(track.codec)
    if fourcc is None:
        raise UnsupportedCodec(f"audio codec {track.codec} cannot be packaged as fMP4")
    return _flv_tag(8, b"\x90" + fourcc + track.extradata)  # ExHeader, SequenceStart


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
        flv = b"FLV\x01" + bytes([_flv_flags(self.tracks)]) + b"\x00\x00\x00\x09\x00\x00\x00\x00"
        flv += b"".join(_sequence_header(track) for track in self.tracks)
        self._template: InputContainer = av.open(io.BytesIO(flv), "r", format="flv")
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


def _flv_flags(tracks: tuple[Track, ...]) -> int:
    return sum(4 if t.kind is TrackKind.AUDIO else 1 for t in tracks)


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
