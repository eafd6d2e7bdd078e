"""libx264 writes Annex B (start codes); golive's units are MP4 samples (length-prefixed NAL
units, avcC extradata: `golive.media`). FFmpeg has a bitstream filter for the other direction
only (h264_mp4toannexb), so the two conversions the encoder output needs are here. Pure.
"""

from __future__ import annotations

import struct

NAL_SPS = 7
NAL_PPS = 8
HIGH_PROFILES = frozenset({100, 110, 122, 144})


def nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte string (3- or 4-byte start codes)."""
    units = []
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        end = data.find(b"\x00\x00\x01", begin)
        stop = len(data) if end < 0 else end
        if end >= 0 and data[end - 1] == 0:  # a 4-byte start code's leading zero
            stop = end - 1
        if stop > begin:
            units.append(data[begin:stop])
        start = end
    return units


def to_length_prefixed(data: bytes) -> bytes:
    """Annex B access unit -> MP4 sample (4-byte big-endian NAL lengths)."""
    return b"".join(struct.pack(">I", len(nal)) + nal for nal in nal_units(data))


def avcc_from_annexb(extradata: bytes) -> bytes:
    """An AVCDecoderConfigurationRecord (ISO/IEC 14496-15) from Annex B SPS and PPS."""
    sps = [n for n in nal_units(extradata) if n[0] & 0x1F == NAL_SPS]
    pps = [n for n in nal_units(extradata) if n[0] & 0x1F == NAL_PPS]
    if not sps or not pps or len(sps[0]) < 4:
        raise ValueError("the encoder's extradata holds no SPS and PPS")
    record = bytes([1, sps[0][1], sps[0][2], sps[0][3], 0xFF, 0xE0 | len(sps)])
    for nal in sps:
        record += struct.pack(">H", len(nal)) + nal
    record += bytes([len(pps)])
    for nal in pps:
        record += struct.pack(">H", len(nal)) + nal
    if sps[0][1] in HIGH_PROFILES:
        # The High-profile extension; golive encodes 8-bit 4:2:0 only (chroma_format_idc 1).
        record += bytes([0xFC | 1, 0xF8, 0xF8, 0])
    return record
