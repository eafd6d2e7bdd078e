"""A codec configuration handed to libavformat without decoding: FLV holding sequence headers.

PyAV builds output streams from a template stream and cannot set an output stream's codec
data itself. A `Track`'s configuration record (avcC, hvcC, av1C, AudioSpecificConfig,
OpusHead; or Annex B parameter sets, which the FLV demuxer also takes as they are) becomes a
stream's codec parameters when a few bytes of FLV carry it as the sequence header an RTMP
publisher would have sent: libavformat's FLV demuxer reads it into the stream. The packager's
fMP4 muxer and the transcoder's hvcC writer both open their templates from these bytes. Pure:
bytes out, no PyAV here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from golive.media import Track, TrackKind

# Sequence-header FourCCs (Enhanced RTMP); H.264 and AAC have classic FLV headers.
VIDEO_FOURCC = {"hevc": b"hvc1", "av1": b"av01", "vp9": b"vp09"}
AUDIO_FOURCC = {"opus": b"Opus"}


class UnsupportedCodec(ValueError):
    """The track's codec has no FLV sequence header libavformat reads."""


def flv_with_sequence_headers(tracks: Iterable[Track]) -> bytes:
    """An FLV file: its header (flags for the kinds present) and one sequence-header tag
    per track, in the order given."""
    tracks = tuple(tracks)
    flags = sum(4 if t.kind is TrackKind.AUDIO else 1 for t in tracks)
    header = b"FLV\x01" + bytes([flags]) + b"\x00\x00\x00\x09\x00\x00\x00\x00"
    return header + b"".join(_sequence_header(track) for track in tracks)


def _flv_tag(tag_type: int, body: bytes) -> bytes:
    header = bytes([tag_type]) + len(body).to_bytes(3, "big") + bytes(7)
    return header + body + struct.pack(">I", 11 + len(body))  # PreviousTagSize after it


# Per kind: the FLV tag type, the classic codec and its header (AVC keyframe
# AVCPacketType 0; AAC 44 kHz stereo AACPacketType 0), the Enhanced RTMP FourCCs.
_KINDS = {
    TrackKind.VIDEO: (9, "h264", b"\x17\x00\x00\x00\x00", VIDEO_FOURCC),
    TrackKind.AUDIO: (8, "aac", b"\xaf\x00", AUDIO_FOURCC),
}


def _sequence_header(track: Track) -> bytes:
    tag_type, classic, classic_header, fourccs = _KINDS[track.kind]
    if track.codec == classic:
        return _flv_tag(tag_type, classic_header + track.extradata)
    fourcc = fourccs.get(track.codec)
    if fourcc is None:
        raise UnsupportedCodec(
            f"{track.kind.value} codec {track.codec} has no FLV sequence header")
    # Video: keyframe + SequenceStart; audio: ExHeader + SequenceStart. Both are 0x90.
    return _flv_tag(tag_type, b"\x90" + fourcc + track.extradata)
