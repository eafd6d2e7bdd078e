"""What every stage needs to know about codec configuration records, in one place.

The RFC 6381 CODECS strings that playlists carry, computed from the decoder configuration
records (avcC, hvcC, av1C, AudioSpecificConfig) that RTMP sequence-start packets bring and that
encoders hand back, and the AAC sampling-frequency table of ISO/IEC 14496-3. Ingest reads them
from publishers, transcode from its encoders, the packager lists them: none of those stages
owns them, so they live here. Pure functions of bytes; a malformed record raises
`CodecConfigError`.
"""

from __future__ import annotations

from collections.abc import Callable

BytesLike = bytes | bytearray | memoryview

# The sample rates an AAC AudioSpecificConfig can name by index (ISO/IEC 14496-3 1.6.3.4).
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025,
             8000, 7350)
_AAC_CHANNELS = (0, 1, 2, 3, 4, 5, 6, 8)


class CodecConfigError(ValueError):
    """A decoder configuration record is malformed or truncated."""


def avc_codec_string(avcc: BytesLike) -> str:
    """avc1.PPCCLL from an AVCDecoderConfigurationRecord (profile, constraint flags, level)."""
    if len(avcc) < 4 or avcc[0] != 1:
        raise CodecConfigError("invalid AVCDecoderConfigurationRecord")
    return f"avc1.{avcc[1]:02X}{avcc[2]:02X}{avcc[3]:02X}"


def aac_codec_string(asc: BytesLike) -> str:
    """mp4a.40.N from an AudioSpecificConfig, N being the audio object type."""
    if len(asc) < 1:
        raise CodecConfigError("empty AudioSpecificConfig")
    aot = asc[0] >> 3
    if aot == 31:
        # Escape: the real type is 32 + the next 6 bits (e.g. 42 = USAC).
        if len(asc) < 2:
            raise CodecConfigError("truncated AudioSpecificConfig")
        aot = 32 + (((asc[0] & 0x07) << 3) | (asc[1] >> 5))
    if aot == 0:
        raise CodecConfigError("invalid AudioSpecificConfig object type 0")
    return f"mp4a.40.{aot}"


def aac_rate_and_channels(asc: BytesLike) -> tuple[int, int] | None:
    """(sample rate, channels) of a plain AAC AudioSpecificConfig (ISO 14496-3 1.6.2.1).

    None when the header alone does not settle what a decoder outputs: SBR/PS object types
    (HE-AAC doubles the rate), channel layouts given by a program config element, escapes.
    The caller then decodes a frame instead.
    """
    if len(asc) < 2:
        return None
    aot = asc[0] >> 3
    rate_index = ((asc[0] & 0x07) << 1) | (asc[1] >> 7)
    channel_config = (asc[1] >> 3) & 0x0F
    if aot not in (1, 2, 3, 4) or rate_index >= len(AAC_RATES):
        return None
    if not 0 < channel_config < len(_AAC_CHANNELS):
        return None
    return AAC_RATES[rate_index], _AAC_CHANNELS[channel_config]


def hevc_codec_string(hvcc: BytesLike) -> str:
    """hvc1.<space><profile>.<compat>.<tier><level>[.<constraints>] per ISO/IEC 14496-15 E.3."""
    if len(hvcc) < 13 or hvcc[0] != 1:
        raise CodecConfigError("invalid HEVCDecoderConfigurationRecord")
    b1 = hvcc[1]
    space = ("", "A", "B", "C")[b1 >> 6]
    tier = "H" if b1 & 0x20 else "L"
    profile_idc = b1 & 0x1F
    compat = int.from_bytes(hvcc[2:6], "big")
    # The spec prints the 32 compatibility flags in reverse bit order.
    compat_reversed = int(f"{compat:032b}"[::-1], 2)
    constraints = bytes(hvcc[6:12]).rstrip(b"\x00")
    parts = [f"hvc1.{space}{profile_idc}", f"{compat_reversed:X}", f"{tier}{hvcc[12]}"]
    parts.extend(f"{b:X}" for b in constraints)
    return ".".join(parts)


def av1_codec_string(av1c: BytesLike) -> str:
    """av01.P.LLT.DD from an AV1CodecConfigurationRecord (AV1-ISOBMFF "Codecs Parameter")."""
    # FFmpeg 7 sends an empty av1C in its first SequenceStart: that lands here as too short.
    if len(av1c) < 4 or av1c[0] != 0x81:
        raise CodecConfigError("invalid AV1CodecConfigurationRecord")
    profile = av1c[1] >> 5
    level = av1c[1] & 0x1F
    b2 = av1c[2]
    tier = "H" if b2 & 0x80 else "M"
    high_bitdepth = b2 & 0x40
    twelve_bit = b2 & 0x20
    depth = (12 if twelve_bit and profile == 2 else 10) if high_bitdepth else 8
    return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"


# What `Track.codec_string` is computed with, by FFmpeg codec name.
CODEC_STRINGS: dict[str, Callable[[BytesLike], str]] = {
    "h264": avc_codec_string,
    "hevc": hevc_codec_string,
    "av1": av1_codec_string,
    "aac": aac_codec_string,
}
