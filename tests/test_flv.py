"""FLV tag body parsing: every header form by hand, real encoder payloads, hostile input."""

import json
import re
from pathlib import Path

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golive.codecs import (
    CodecConfigError,
    aac_codec_string,
    av1_codec_string,
    avc_codec_string,
    hevc_codec_string,
)
from golive.ingest.errors import FlvError
from golive.ingest.flv import (
    AudioPacketType,
    AudioTag,
    VideoPacketType,
    VideoTag,
    parse_audio,
    parse_video,
)

CAPTURES = Path(__file__).parent / "data" / "captures"

V = VideoPacketType
A = AudioPacketType


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


SEQ, CF, END, CFX, META, TSSEQ, MULTI = VideoPacketType

# (id, payload, codec, packet type, keyframe, frame type, composition time, header length)
VIDEO_CASES = [
    ("avc-seq", h("17 00 000000 01640028ffe1"), "h264", SEQ, True, 1, 0, 5),
    ("avc-key-ct", h("17 01 000042 00000002 6588"), "h264", CF, True, 1, 66, 5),
    ("avc-inter-neg-ct", h("27 01 fffffe 00000002 4188"), "h264", CF, False, 2, -2, 5),
    ("avc-ct-min", h("27 01 800000"), "h264", CF, False, 2, -(1 << 23), 5),
    ("avc-disposable", h("37 01 000000 00"), "h264", CF, False, 3, 0, 5),
    ("avc-end", h("17 02 000000"), "h264", END, True, 1, 0, 5),
    ("legacy-hevc-12", h("1c 01 000021 0000000126"), "hevc", CF, True, 1, 33, 5),
    ("legacy-command", h("57 01"), "h264", CF, False, 5, 0, 1),
    # Enhanced: 0x80 | FrameType << 4 | PacketType, then FourCC.
    ("hvc1-seq", h("90") + b"hvc1" + h("0101"), "hevc", SEQ, True, 1, 0, 5),
    ("hvc1-coded-ct", h("91") + b"hvc1" + h("000021 00000001"), "hevc", CF, True, 1, 33, 8),
    ("hvc1-coded-neg", h("a1") + b"hvc1" + h("ffffef 00"), "hevc", CF, False, 2, -17, 8),
    ("hvc1-coded-x", h("a3") + b"hvc1" + h("00000001 02"), "hevc", CFX, False, 2, 0, 5),
    ("hvc1-end", h("92") + b"hvc1", "hevc", END, True, 1, 0, 5),
    ("avc1-coded-ct", h("91") + b"avc1" + h("000010 00000001"), "h264", CF, True, 1, 16, 8),
    ("av01-seq", h("90") + b"av01" + h("81000c00"), "av1", SEQ, True, 1, 0, 5),
    # AV1 and VP9 never carry a composition time: the OBUs start right after the FourCC.
    ("av01-coded", h("91") + b"av01" + h("0a0b00"), "av1", CF, True, 1, 0, 5),
    ("av01-ts-seq", h("95") + b"av01" + h("8004"), "av1", TSSEQ, True, 1, 0, 5),
    ("vp09-seq", h("90") + b"vp09" + h("01000000"), "vp9", SEQ, True, 1, 0, 5),
    ("vp09-coded", h("a1") + b"vp09" + h("8249"), "vp9", CF, False, 2, 0, 5),
    # FFmpeg marks Metadata with FrameType 5; the spec says FrameType is ignored there.
    ("metadata", h("d4") + b"hvc1" + h("020009") + b"colorInfo", "hevc", META, False, 5, 0, 5),
    ("metadata-ft1", h("94") + b"av01" + h("02"), "av1", META, False, 1, 0, 5),
    # Command frames carry one UI8 and no FourCC.
    ("ex-command", h("d0 01"), "", SEQ, False, 5, 0, 1),
    # The command test comes before the multitrack one in the spec's pseudocode.
    ("ex-command-nibble-6", h("d6 00"), "", MULTI, False, 5, 0, 1),
    # ModEx (TimestampOffsetNano, 3 bytes) wrapping a CodedFrames packet.
    ("modex", h("97 02 0f4240 01") + b"hvc1" + h("000021 aa"), "hevc", CF, True, 1, 33, 13),
    # ModEx with the 16-bit size escape (0xff): 0x0100 + 1 = 257 bytes of data.
    ("modex-16", h("a7 ff 0100") + bytes(257) + h("03") + b"hvc1" + h("bb"), "hevc",
     CFX, False, 2, 0, 4 + 257 + 1 + 4),
]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "codec", "packet_type", "keyframe", "frame_type", "ct", "header"),
    [pytest.param(*case[1:], id=case[0]) for case in VIDEO_CASES],
)
def test_video_header_forms(
    payload: bytes,
    codec: str,
    packet_type: VideoPacketType,
    keyframe: bool,
    frame_type: int,
    ct: int,
    header: int,
) -> None:
    tag = parse_video(payload)
    assert isinstance(tag, VideoTag)
    assert tag.codec == codec
    assert tag.packet_type is packet_type
    assert tag.keyframe is keyframe
    assert tag.frame_type == frame_type
    assert tag.composition_time == ct
    assert isinstance(tag.body, memoryview)
    assert tag.body == payload[header:]
    assert tag.is_command is (frame_type == 5 and packet_type is not V.METADATA)


# (id, payload, codec, packet type, sample rate, channels, header length)
AUDIO_CASES = [
    ("aac-seq", h("af 00 1190"), "aac", A.SEQUENCE_START, 44100, 2, 2),
    ("aac-raw", h("af 01 21100503"), "aac", A.CODED_FRAMES, 44100, 2, 2),
    ("aac-22k-mono", h("aa 01 00"), "aac", A.CODED_FRAMES, 22050, 1, 2),
    ("mp3", h("2f fffb9064"), "mp3", A.CODED_FRAMES, 44100, 2, 1),
    ("mp3-8k", h("e2 fff3"), "mp3", A.CODED_FRAMES, 8000, 1, 1),
    ("pcm-le-16", h("3e 0100"), "pcm_s16le", A.CODED_FRAMES, 44100, 1, 1),
    ("pcm-u8", h("0c 80"), "pcm_u8", A.CODED_FRAMES, 44100, 1, 1),
    ("pcm-5512", h("33 0000"), "pcm_s16le", A.CODED_FRAMES, 5512, 2, 1),
    ("alaw", h("72 d5"), "pcm_alaw", A.CODED_FRAMES, 8000, 1, 1),
    ("mulaw", h("82 ff"), "pcm_mulaw", A.CODED_FRAMES, 8000, 1, 1),
    ("nellymoser-8k", h("52 00"), "nellymoser", A.CODED_FRAMES, 8000, 1, 1),
    ("speex", h("b2 00"), "speex", A.CODED_FRAMES, 16000, 1, 1),
    # Enhanced: 0x90 | AudioPacketType, then FourCC; rate and channels are not signalled.
    ("opus-seq", h("90") + b"Opus" + b"OpusHead\x01\x02", "opus", A.SEQUENCE_START, 0, 0, 5),
    ("opus-coded", h("91") + b"Opus" + h("fc"), "opus", A.CODED_FRAMES, 0, 0, 5),
    ("mp4a-seq", h("90") + b"mp4a" + h("1190"), "aac", A.SEQUENCE_START, 0, 0, 5),
    ("flac-seq", h("90") + b"fLaC" + h("00"), "flac", A.SEQUENCE_START, 0, 0, 5),
    ("ac3", h("91") + b"ac-3" + h("0b77"), "ac3", A.CODED_FRAMES, 0, 0, 5),
    ("eac3", h("91") + b"ec-3" + h("0b77"), "eac3", A.CODED_FRAMES, 0, 0, 5),
    ("ex-mp3", h("91") + b".mp3" + h("fffb"), "mp3", A.CODED_FRAMES, 0, 0, 5),
    ("opus-end", h("92") + b"Opus", "opus", A.SEQUENCE_END, 0, 0, 5),
    ("multichannel", h("94") + b"Opus" + h("01 02"), "opus", A.MULTICHANNEL_CONFIG, 0, 0, 5),
    ("modex", h("97 02 000001 01") + b"Opus" + h("fc"), "opus", A.CODED_FRAMES, 0, 0, 10),
]


@pytest.mark.parametrize(
    ("payload", "codec", "packet_type", "rate", "channels", "header"),
    [pytest.param(*case[1:], id=case[0]) for case in AUDIO_CASES],
)
def test_audio_header_forms(
    payload: bytes,
    codec: str,
    packet_type: AudioPacketType,
    rate: int,
    channels: int,
    header: int,
) -> None:
    tag = parse_audio(payload)
    assert isinstance(tag, AudioTag)
    assert tag.codec == codec
    assert tag.packet_type is packet_type
    assert (tag.sample_rate, tag.channels) == (rate, channels)
    assert isinstance(tag.body, memoryview)
    assert tag.body == payload[header:]


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_accepts_any_buffer_without_copying(kind: type) -> None:
    raw = bytearray(h("27 01 000000 00000001 41"))
    buf = {bytes: bytes(raw), bytearray: raw, memoryview: memoryview(raw)}[kind]
    tag = parse_video(buf)
    raw[-1] = 0x65
    # The body is a view of the caller's buffer, not a copy.
    assert tag.body[-1] == (0x41 if kind is bytes else 0x65)
    assert parse_audio(kind(h("af 01 21"))).body == b"\x21"


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(h("96 01") + b"hvc1" + h("00 000000"), "multitrack", id="multitrack"),
        pytest.param(h("98") + b"hvc1", "packet type 8", id="reserved-packet-type"),
        pytest.param(h("91") + b"xxxx", "FourCC", id="unknown-fourcc"),
        pytest.param(h("e1") + b"hvc1" + h("000000"), "frame type 6", id="ex-frame-type-6"),
        pytest.param(h("81") + b"hvc1" + h("000000"), "frame type 0", id="ex-frame-type-0"),
        pytest.param(h("07 01 000000"), "frame type 0", id="legacy-frame-type-0"),
        pytest.param(h("17 03 000000"), "packet type 3", id="avc-packet-type-3"),
        pytest.param(h("22 00"), "codec id 2", id="sorenson"),
        pytest.param(h("14 00 00"), "codec id 4", id="vp6"),
        pytest.param(h("97 05 0000"), "ModEx", id="modex-truncated"),
        pytest.param(h("97 ff 00"), "ModEx", id="modex16-truncated"),
    ],
)
def test_bad_video(payload: bytes, match: str) -> None:
    with pytest.raises(FlvError, match=match):
        parse_video(payload)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(h("95 01") + b"Opus" + h("00"), "multitrack", id="multitrack"),
        pytest.param(h("93") + b"Opus", "packet type 3", id="reserved-packet-type"),
        pytest.param(h("91") + b"vorb", "FourCC", id="unknown-fourcc"),
        pytest.param(h("af 02"), "AAC packet type 2", id="aac-packet-type-2"),
        pytest.param(h("af"), "truncated", id="aac-no-packet-type"),
        pytest.param(h("c2 00"), "sound format 12", id="reserved-12"),
        pytest.param(h("f2 00"), "sound format 15", id="device-specific"),
    ],
)
def test_bad_audio(payload: bytes, match: str) -> None:
    with pytest.raises(FlvError, match=match):
        parse_audio(payload)


def test_flv_error_is_a_protocol_error_with_stable_kind() -> None:
    with pytest.raises(FlvError) as info:
        parse_video(h("91") + b"\x00evil")
    assert info.value.kind == "flv"


@pytest.mark.parametrize("case", VIDEO_CASES, ids=[c[0] for c in VIDEO_CASES])
def test_video_every_prefix(case: tuple) -> None:
    """Short of the header: FlvError. From the header on: the same tag with a shorter body."""
    _, payload, codec, packet_type, _, frame_type, ct, header = case
    # A command frame's body is its mandatory command byte.
    needed = header + 1 if codec == "" else header
    for n in range(len(payload)):
        if n < needed:
            with pytest.raises(FlvError):
                parse_video(payload[:n])
        else:
            tag = parse_video(payload[:n])
            assert (tag.codec, tag.packet_type, tag.frame_type) == (codec, packet_type, frame_type)
            assert tag.composition_time == ct
            assert tag.body == payload[header:n]


@pytest.mark.parametrize("case", AUDIO_CASES, ids=[c[0] for c in AUDIO_CASES])
def test_audio_every_prefix(case: tuple) -> None:
    _, payload, codec, packet_type, _, _, header = case
    for n in range(len(payload)):
        if n < header:
            with pytest.raises(FlvError):
                parse_audio(payload[:n])
        else:
            tag = parse_audio(payload[:n])
            assert (tag.codec, tag.packet_type) == (codec, packet_type)
            assert tag.body == payload[header:n]


# --- real encoder payloads ------------------------------------------------------------------


def first_message(capture: str, kind: str) -> bytes:
    """The first audio or video message of a capture, found via its trace line.

    Sequence headers are far smaller than every client's chunk size, so the payload sits
    contiguously right after its chunk message header (type 0: ...len, type, stream id LE;
    type 1: ...len, type): find that header and check the payload's first bytes.
    """
    trace = (CAPTURES / f"{capture}.trace.txt").read_text()
    info = json.loads(re.search(rf"C>S {kind} #1 (\{{.*\}})", trace).group(1))
    data = (CAPTURES / f"{capture}.c2s.bin").read_bytes()
    type_id = 9 if kind == "Video" else 8
    if kind == "Audio":
        prefix = b"\xaf\x00"
    elif info["enhanced"]:
        prefix = b"\x90" + info["fourcc"].encode()
    else:
        prefix = b"\x17\x00"
    length = info["len"]
    header = length.to_bytes(3, "big") + bytes([type_id])
    sid = info["sid"].to_bytes(4, "little")
    for m in re.finditer(re.escape(header), data):
        start = m.end() + 4 if data[m.end() : m.end() + 4] == sid else m.end()
        if data[start : start + len(prefix)] == prefix:
            return data[start : start + length]
    raise AssertionError(f"{kind} #1 not found in {capture}")


H264_CAPTURES = [
    "obs29.0-h264",
    "ffmpeg5.1-h264",
    "ffmpeg7.0-h264",
    "pyav18.1-h264",
    "gst1.22-rtmp2sink-h264",
    "gst1.22-librtmp-h264",
]
ALL_CAPTURES = [*H264_CAPTURES, "ffmpeg7.0-hevc-ertmp", "ffmpeg7.0-av1-ertmp"]


@pytest.mark.parametrize("capture", H264_CAPTURES)
def test_real_avc_sequence_headers(capture: str) -> None:
    tag = parse_video(first_message(capture, "Video"))
    assert (tag.codec, tag.packet_type, tag.keyframe) == ("h264", V.SEQUENCE_START, True)
    avcc = bytes(tag.body)
    # Cross-check the record's copy of profile/compat/level against the SPS it carries:
    # avcC = version, 3 bytes, 0xff, 0xe1, SPS length (2), then the SPS NAL (header 0x67).
    assert avcc[8] & 0x1F == 7
    assert avc_codec_string(avcc) == "avc1." + avcc[9:12].hex().upper()


def test_real_obs_avc_codec_string() -> None:
    avcc = bytes(parse_video(first_message("obs29.0-h264", "Video")).body)
    # 01 4d 40 1f: Main profile (77), constraint_set1, level 3.1, as OBS's x264 was set up.
    assert avc_codec_string(avcc) == "avc1.4D401F"
    # FFmpeg's own h264 parser, fed the record's SPS and PPS as Annex B, agrees.
    sps_len = int.from_bytes(avcc[6:8], "big")
    sps = avcc[8 : 8 + sps_len]
    pps_at = 8 + sps_len + 1
    pps = avcc[pps_at + 2 : pps_at + 2 + int.from_bytes(avcc[pps_at : pps_at + 2], "big")]
    ctx = av.CodecContext.create("h264", "r")
    start = b"\x00\x00\x00\x01"
    ctx.parse(start + sps + start + pps + (start + h("65888040")) * 2)
    assert (ctx.profile, ctx.level) == ("Main", 0x1F)


@pytest.mark.parametrize("capture", ALL_CAPTURES)
def test_real_aac_sequence_headers(capture: str) -> None:
    tag = parse_audio(first_message(capture, "Audio"))
    assert (tag.codec, tag.packet_type) == ("aac", A.SEQUENCE_START)
    # Every client flags 44.1 kHz stereo, as the FLV spec demands for AAC whatever the real
    # rate (48 kHz here): the header is only a hint, the ASC is the truth.
    assert (tag.sample_rate, tag.channels) == (44100, 2)
    asc = bytes(tag.body)
    assert asc[:2] == h("1190")  # AAC-LC (2), 48 kHz (index 3), 2 channels
    assert aac_codec_string(asc) == "mp4a.40.2"


def test_real_hevc_sequence_start() -> None:
    tag = parse_video(first_message("ffmpeg7.0-hevc-ertmp", "Video"))
    assert (tag.codec, tag.packet_type, tag.keyframe) == ("hevc", V.SEQUENCE_START, True)
    hvcc = bytes(tag.body)
    # hvcC: 01 | 01 (space 0, Main tier, profile_idc 1) | 60000000 (compat flags 1 and 2,
    # reversed 0x6) | 90 00 00 00 00 00 (progressive + frame-only) | 3f (level 63 = 2.1).
    assert hvcc[:13] == h("01 01 60000000 900000000000 3f")
    assert hevc_codec_string(hvcc) == "hvc1.1.6.L63.90"
    ctx = av.CodecContext.create("hevc", "r")
    ctx.extradata = hvcc
    ctx.open()
    assert (ctx.profile, ctx.level) == ("Main", 63)
    assert (ctx.width, ctx.height) == (426, 240)


def test_real_hevc_metadata_and_coded_frames_x() -> None:
    data = (CAPTURES / "ffmpeg7.0-hevc-ertmp.c2s.bin").read_bytes()
    # Metadata: 38 bytes (trace Video #2), AMF0 "colorInfo" then an object.
    meta_at = data.index(b"\xd4hvc1\x02\x00\x09colorInfo")
    tag = parse_video(data[meta_at : meta_at + 38])
    assert (tag.codec, tag.packet_type, tag.keyframe, tag.is_command) == (
        "hevc",
        V.METADATA,
        False,
        False,
    )
    assert bytes(tag.body[:12]) == b"\x02\x00\x09colorInfo"
    # The first picture (trace Video #3, 39688 bytes) is a keyframe sent as CodedFramesX: no
    # CT bytes, the body starts with a 4-byte NAL length. It spans chunks, so parse only the
    # start of its first chunk.
    key_at = data.index(b"\x93hvc1", meta_at)
    tag = parse_video(data[key_at : key_at + 200])
    assert (tag.packet_type, tag.keyframe, tag.composition_time) == (V.CODED_FRAMES_X, True, 0)
    # One NAL filling the message (39688 - 5 header - 4 length), of type 20 = IDR_N_LP.
    assert int.from_bytes(tag.body[:4], "big") == 39688 - 9
    assert (tag.body[4] >> 1) & 0x3F == 20


def test_real_av1_sequence_starts() -> None:
    data = (CAPTURES / "ffmpeg7.0-av1-ertmp.c2s.bin").read_bytes()
    # FFmpeg 7 first sends an empty SequenceStart (5 bytes: header + FourCC only) ...
    first = parse_video(first_message("ffmpeg7.0-av1-ertmp", "Video"))
    assert (first.codec, first.packet_type, len(first.body)) == ("av1", V.SEQUENCE_START, 0)
    with pytest.raises(CodecConfigError):
        av1_codec_string(first.body)
    # ... then the real one (22 bytes, trace Video #2): av1C + sequence header OBU.
    at = data.index(b"\x90av01\x81")
    tag = parse_video(data[at : at + 22])
    av1c = bytes(tag.body)
    # 81 | 00 (seq_profile 0, seq_level_idx 0 = level 2.0) | 0c (Main tier, 8-bit, 4:2:0)
    assert av1c[:3] == h("81 00 0c")
    assert av1_codec_string(av1c) == "av01.0.00M.08"
    ctx = av.CodecContext.create("libdav1d", "r")
    ctx.extradata = av1c
    ctx.open()
    assert (ctx.profile, ctx.level, ctx.pix_fmt) == ("Main", 0, "yuv420p")
    # Its colour-info metadata and first keyframe, both av01.
    meta_at = data.index(b"\xd4av01", at)
    assert parse_video(data[meta_at : meta_at + 38]).packet_type is V.METADATA
    key_at = data.index(b"\x91av01", at)
    key = parse_video(data[key_at : key_at + 100])
    assert (key.packet_type, key.keyframe, key.composition_time) == (V.CODED_FRAMES, True, 0)
    assert key.body[0] == 0x12  # OBU_TEMPORAL_DELIMITER with has_size_field


# --- hostile input ---------------------------------------------------------------------------

_INTERESTING_FIRST = st.sampled_from([0x17, 0x27, 0x1C, 0x57, 0x90, 0x91, 0x93, 0x94, 0x97, 0xD4])


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.binary(max_size=40), st.tuples(_INTERESTING_FIRST, st.binary(max_size=40))))
def test_fuzz_video_raises_only_flv_error(data: bytes | tuple[int, bytes]) -> None:
    if isinstance(data, tuple):
        data = bytes([data[0]]) + data[1]
    try:
        tag = parse_video(data)
    except FlvError:
        return
    assert len(tag.body) <= len(data)


@settings(max_examples=1500, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=40),
        st.tuples(st.sampled_from([0xAF, 0x90, 0x97]), st.binary(max_size=40)),
    )
)
def test_fuzz_audio_raises_only_flv_error(data: bytes | tuple[int, bytes]) -> None:
    if isinstance(data, tuple):
        data = bytes([data[0]]) + data[1]
    try:
        tag = parse_audio(data)
    except FlvError:
        return
    assert len(tag.body) <= len(data)
