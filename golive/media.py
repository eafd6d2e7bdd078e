"""The one unit type that flows between stages: a track description and media units.

No `av` objects cross a stage boundary. Timestamps are integer milliseconds (`MILLISECONDS`,
the one declaration of that unit, which muxers and encoders set as their time base), as RTMP
carries them, unwrapped past 32 bits. Unit payloads are in MP4 sample
format, exactly as FLV carries them: length-prefixed NAL units for H.264/HEVC (the
`extradata` is the avcC/hvcC record), low-overhead OBUs for AV1 (av1C), raw frames for audio
(AudioSpecificConfig / OpusHead as extradata). Muxers that need Annex B (MPEG-TS) convert with
libavformat's own bitstream filters, so ingest never rewrites a byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import NamedTuple

MILLISECONDS = Fraction(1, 1000)  # the time base of every MediaUnit's dts and pts


class TrackKind(StrEnum):
    VIDEO = "video"
    AUDIO = "audio"


@dataclass(frozen=True, slots=True)
class Track:
    """What a decoder or muxer needs to know about one elementary stream."""

    kind: TrackKind
    codec: str  # FFmpeg codec name: h264, hevc, av1, vp9, aac, opus, mp3, ...
    extradata: bytes
    codec_string: str = ""  # RFC 6381, for playlists (avc1.64001F, mp4a.40.2)
    width: int = 0
    height: int = 0
    pix_fmt: str | None = None
    frame_rate: Fraction | None = None  # declared by the publisher, when it says
    sample_rate: int = 0
    channels: int = 0


class MediaUnit(NamedTuple):
    """One access unit (a video frame or an audio frame).

    A NamedTuple rather than a dataclass: hundreds of thousands are created per second on the
    ingest hot path and a tuple is both immutable and the cheapest object Python builds.
    """

    kind: TrackKind
    dts: int
    pts: int
    keyframe: bool
    data: bytes
