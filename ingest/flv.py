"""Parse FLV tag bodies, i.e. RTMP audio (type 8) and video (type 9) message payloads.

Pure and sans-IO: bytes in, a small frozen record out. Covers the legacy FLV headers
(AVC, plus HEVC under the non-standard codec id 12, and the classic audio formats) and the
veovera Enhanced RTMP v2 extended headers (FourCC-signalled video and audio, ModEx).

The returned `body` is a memoryview slice of the caller's payload, never a copy: do not
mutate or resize the underlying buffer while a tag is alive. What the configuration records
in sequence-start packets mean (CODECS strings, AAC rates) is `golive.codecs`'s business.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from golive.ingest.errors import FlvError

BytesLike = bytes | bytearray | memoryview

FRAME_TYPE_KEY = 1
FRAME_TYPE_INTER = 2
FRAME_TYPE_DISPOSABLE_INTER = 3
FRAME_TYPE_GENERATED_KEY = 4
FRAME_TYPE_COMMAND = 5


class VideoPacketType(enum.IntEnum):
    """Enhanced RTMP VideoPacketType; legacy AVCPacketType 0/1/2 maps onto the first three."""

    SEQUENCE_START = 0
    CODED_FRAMES = 1
    SEQUENCE_END = 2
    CODED_FRAMES_X = 3
    METADATA = 4
    MPEG2TS_SEQUENCE_START = 5
    MULTITRACK = 6


class AudioPacketType(enum.IntEnum):
    """Enhanced RTMP AudioPacketType; legacy AACPacketType 0/1 maps onto the first two."""

    SEQUENCE_START = 0
    CODED_FRAMES = 1
    SEQUENCE_END = 2
    MULTICHANNEL_CONFIG = 4
    MULTITRACK = 5


class VideoTag(NamedTuple):
    """A parsed video tag header. A NamedTuple: one is built per video message and it costs
    a fifth of a frozen dataclass."""

    codec: str  # FFmpeg codec name; "" only for enhanced command frames, which carry no FourCC
    packet_type: VideoPacketType
    keyframe: bool
    frame_type: int
    composition_time: int  # PTS - DTS in ms, signed
    # Quoted twice on purpose: mypyc resolves NamedTuple field annotations in the module's
    # globals at import, where the builtin `memoryview` is missing (KeyError); a string
    # annotation is left alone.
    body: "memoryview"  # noqa: UP037 - config record, coded frames, metadata or command

    @property
    def is_command(self) -> bool:
        """A command/info frame (seek markers): not a picture, callers should drop it."""
        # FFmpeg marks its Metadata packets with FrameType 5 too; those are not commands.
        return self.frame_type == FRAME_TYPE_COMMAND and self.packet_type is not _VPT_METADATA


class AudioTag(NamedTuple):
    codec: str
    packet_type: AudioPacketType
    body: "memoryview"  # noqa: UP037 - quoted for mypyc, see VideoTag
    sample_rate: int  # legacy header hint; 0 when the header does not say (enhanced)
    channels: int  # legacy header hint; 0 when the header does not say (enhanced)


# Index by wire value: a tuple lookup is several times cheaper than calling the enum.
_VPT = tuple(VideoPacketType)
_APT = {int(t): t for t in AudioPacketType}
_APT_LEGACY_AAC = (AudioPacketType.SEQUENCE_START, AudioPacketType.CODED_FRAMES)
_APT_CODED = AudioPacketType.CODED_FRAMES
_VPT_CODED = VideoPacketType.CODED_FRAMES
_VPT_METADATA = VideoPacketType.METADATA
_VPT_MULTITRACK = VideoPacketType.MULTITRACK
_PACKET_TYPE_MOD_EX = 7
_SOUND_FORMAT_EX_HEADER = 9

# Legacy VideoCodecId. 12 is not in Adobe's spec: Chinese CDNs and older OBS forks put HEVC
# there with exactly the AVC layout. The pre-2008 codecs (Sorenson H.263, Screen Video,
# VP6) are refused: no current encoder sends them and some carry extra per-codec header bytes.
_LEGACY_VIDEO = {7: "h264", 12: "hevc"}

_EX_VIDEO = {
    b"avc1": "h264",
    b"hvc1": "hevc",
    b"av01": "av1",
    b"vp09": "vp9",
    b"vp08": "vp8",
    b"vvc1": "vvc",
}
# Only the NAL-unit codecs carry an SI24 composition time, and only in CodedFrames.
_EX_VIDEO_WITH_CT = frozenset({"h264", "hevc", "vvc"})

_EX_AUDIO = {
    b"mp4a": "aac",
    b"Opus": "opus",
    b"fLaC": "flac",
    b"ac-3": "ac3",
    b"ec-3": "eac3",
    b".mp3": "mp3",
}

_LEGACY_RATES = (5512, 11025, 22050, 44100)

# SoundFormat -> (codec for 8-bit samples, codec for 16-bit samples, forced rate, forced
# channels). Formats whose rate/channels are fixed by the format ignore the header bits,
# as FFmpeg's flvdec does. 9 (extended header) and 10 (AAC) are handled in code.
_LEGACY_AUDIO: dict[int, tuple[str, str, int, int]] = {
    0: ("pcm_u8", "pcm_s16le", 0, 0),  # "platform endian": every real sender is x86/ARM LE
    1: ("adpcm_swf", "adpcm_swf", 0, 0),
    2: ("mp3", "mp3", 0, 0),
    3: ("pcm_u8", "pcm_s16le", 0, 0),
    4: ("nellymoser", "nellymoser", 16000, 1),
    5: ("nellymoser", "nellymoser", 8000, 1),
    6: ("nellymoser", "nellymoser", 0, 0),
    7: ("pcm_alaw", "pcm_alaw", 8000, 0),  # G.711, e.g. from IP cameras
    8: ("pcm_mulaw", "pcm_mulaw", 8000, 0),
    11: ("speex", "speex", 16000, 1),
    14: ("mp3", "mp3", 8000, 0),
}


def parse_video(payload: BytesLike) -> VideoTag:
    """Parse a video message body. Raises FlvError for anything truncated or unsupported."""
    mv = memoryview(payload)
    # Fast path: legacy AVC key/inter frames are nearly every video message in practice.
    if len(mv) >= 5:
        b0 = mv[0]
        if b0 == 0x17 or b0 == 0x27:
            pt = mv[1]
            if pt <= 2:
                ct = (mv[2] << 16) | (mv[3] << 8) | mv[4]
                if ct & 0x800000:
                    ct -= 0x1000000
                return VideoTag("h264", _VPT[pt], b0 == 0x17, b0 >> 4, ct, mv[5:])
    return _parse_video_general(mv)


def parse_audio(payload: BytesLike) -> AudioTag:
    """Parse an audio message body. Raises FlvError for anything truncated or unsupported."""
    mv = memoryview(payload)
    # Fast path: legacy AAC (SoundFormat 10) is nearly every audio message in practice.
    if len(mv) >= 2:
        b0 = mv[0]
        if b0 >> 4 == 10:
            pt = mv[1]
            if pt <= 1:
                rate = _LEGACY_RATES[(b0 >> 2) & 3]
                return AudioTag("aac", _APT_LEGACY_AAC[pt], mv[2:], rate, 1 + (b0 & 1))
    return _parse_audio_general(mv)


def _parse_video_general(mv: memoryview) -> VideoTag:
    n = len(mv)
    if n == 0:
        raise FlvError("empty video message")
    b0 = mv[0]
    if b0 & 0x80:
        return _parse_ex_video(mv, b0)
    frame_type = b0 >> 4
    codec_id = b0 & 0x0F
    if not 1 <= frame_type <= FRAME_TYPE_COMMAND:
        raise FlvError(f"invalid video frame type {frame_type}")
    codec = _LEGACY_VIDEO.get(codec_id)
    if codec is None:
        raise FlvError(f"unsupported video codec id {codec_id}")
    if frame_type == FRAME_TYPE_COMMAND:
        # Senders disagree on whether an AVC header precedes the command byte (FFmpeg skips
        # these frames unparsed), so hand back everything after the first byte.
        return VideoTag(codec, _VPT_CODED, False, frame_type, 0, mv[1:])
    if n < 5:
        raise FlvError(f"truncated {codec} video header ({n} bytes)")
    pt = mv[1]
    if pt > 2:
        raise FlvError(f"invalid AVC packet type {pt}")
    ct = (mv[2] << 16) | (mv[3] << 8) | mv[4]
    if ct & 0x800000:
        ct -= 0x1000000
    return VideoTag(codec, _VPT[pt], frame_type == FRAME_TYPE_KEY, frame_type, ct, mv[5:])


def _skip_mod_ex(mv: memoryview, pos: int, kind: str) -> tuple[int, int]:
    """Skip one ModEx block starting at `pos`; return (next position, real packet type).

    The only ModEx type defined so far is TimestampOffsetNano, a sub-millisecond correction
    that millisecond RTMP timestamps cannot use, so the data is skipped rather than returned.
    """
    n = len(mv)
    if pos >= n:
        raise FlvError(f"truncated {kind} ModEx size")
    size = mv[pos] + 1
    pos += 1
    if size == 256:
        if pos + 2 > n:
            raise FlvError(f"truncated {kind} ModEx size")
        size = ((mv[pos] << 8) | mv[pos + 1]) + 1
        pos += 2
    pos += size
    if pos >= n:
        raise FlvError(f"truncated {kind} ModEx data")
    return pos + 1, mv[pos] & 0x0F


def _parse_ex_video(mv: memoryview, b0: int) -> VideoTag:
    n = len(mv)
    frame_type = (b0 >> 4) & 7
    pt = b0 & 0x0F
    pos = 1
    while pt == _PACKET_TYPE_MOD_EX:
        pos, pt = _skip_mod_ex(mv, pos, "video")
    if pt > _VPT_MULTITRACK:
        raise FlvError(f"invalid enhanced video packet type {pt}")
    packet_type = _VPT[pt]
    is_metadata = packet_type is _VPT_METADATA
    # The spec says to ignore FrameType on Metadata packets (FFmpeg sends 5 there).
    if not is_metadata and not 1 <= frame_type <= FRAME_TYPE_COMMAND:
        raise FlvError(f"invalid video frame type {frame_type}")
    if frame_type == FRAME_TYPE_COMMAND and not is_metadata:
        # A command frame has a single UI8 VideoCommand and no FourCC, so no codec either.
        if pos >= n:
            raise FlvError("truncated enhanced video command")
        return VideoTag("", packet_type, False, frame_type, 0, mv[pos:])
    if packet_type is _VPT_MULTITRACK:
        raise FlvError("multitrack video is not supported")
    if pos + 4 > n:
        raise FlvError("truncated enhanced video FourCC")
    fourcc = bytes(mv[pos : pos + 4])
    codec = _EX_VIDEO.get(fourcc)
    if codec is None:
        raise FlvError(f"unsupported video codec FourCC {fourcc!r}")
    pos += 4
    ct = 0
    if packet_type is _VPT_CODED and codec in _EX_VIDEO_WITH_CT:
        if pos + 3 > n:
            raise FlvError(f"truncated {codec} composition time")
        ct = (mv[pos] << 16) | (mv[pos + 1] << 8) | mv[pos + 2]
        if ct & 0x800000:
            ct -= 0x1000000
        pos += 3
    keyframe = frame_type == FRAME_TYPE_KEY and not is_metadata
    return VideoTag(codec, packet_type, keyframe, frame_type, ct, mv[pos:])


def _parse_audio_general(mv: memoryview) -> AudioTag:
    n = len(mv)
    if n == 0:
        raise FlvError("empty audio message")
    b0 = mv[0]
    sound_format = b0 >> 4
    if sound_format == 10:
        if n < 2:
            raise FlvError("truncated AAC audio header")
        # The fast path took 0 and 1; AAC has no other packet types.
        raise FlvError(f"invalid AAC packet type {mv[1]}")
    if sound_format == _SOUND_FORMAT_EX_HEADER:
        return _parse_ex_audio(mv, b0)
    entry = _LEGACY_AUDIO.get(sound_format)
    if entry is None:
        raise FlvError(f"unsupported audio sound format {sound_format}")
    codec8, codec16, rate, channels = entry
    return AudioTag(
        codec16 if b0 & 0x02 else codec8,
        _APT_CODED,
        mv[1:],
        rate or _LEGACY_RATES[(b0 >> 2) & 3],
        channels or 1 + (b0 & 1),
    )


def _parse_ex_audio(mv: memoryview, b0: int) -> AudioTag:
    n = len(mv)
    pt = b0 & 0x0F
    pos = 1
    while pt == _PACKET_TYPE_MOD_EX:
        pos, pt = _skip_mod_ex(mv, pos, "audio")
    packet_type = _APT.get(pt)
    if packet_type is None:
        raise FlvError(f"invalid enhanced audio packet type {pt}")
    if packet_type is AudioPacketType.MULTITRACK:
        raise FlvError("multitrack audio is not supported")
    if pos + 4 > n:
        raise FlvError("truncated enhanced audio FourCC")
    fourcc = bytes(mv[pos : pos + 4])
    codec = _EX_AUDIO.get(fourcc)
    if codec is None:
        raise FlvError(f"unsupported audio codec FourCC {fourcc!r}")
    return AudioTag(codec, packet_type, mv[pos + 4 :], 0, 0)

