"""The MP4 decoder configuration records (avcC, hvcC) of the encoders' Annex B global headers:
what a rung's `Track` carries for the packager, and its RFC 6381 codec string.

avcC is assembled here (`annexb.py`); hvcC is written by libavformat's mp4 muxer, whose
ff_isom_write_hvcc parses the VPS/SPS/PPS (and keeps the encoder's SEI) so golive need not.
This module imports PyAV: `encoders.py`, which the configuration reads, does not.
"""

from __future__ import annotations

import io
import re

import av

from golive.codecs import avc_codec_string, hevc_codec_string
from golive.flv_template import flv_with_sequence_headers
from golive.media import Track, TrackKind
from golive.transcode.annexb import avcc_from_annexb


def decoder_config(encoder: str, annexb: bytes, width: int,
                   height: int) -> tuple[str, bytes, str]:
    """(codec, MP4 decoder configuration record, RFC 6381 codec string) of an encoder's
    Annex B global header."""
    if encoder == "libx265":
        hvcc = _hvcc_from_annexb(annexb, width, height)
        return "hevc", hvcc, hevc_codec_string(hvcc)
    avcc = avcc_from_annexb(annexb)
    return "h264", avcc, avc_codec_string(avcc)


def _hvcc_from_annexb(annexb: bytes, width: int, height: int) -> bytes:
    """The hvcC record of VPS/SPS/PPS in Annex B, as libavformat's mp4 muxer writes it."""
    # The parameter sets become the template stream's extradata as they are (see
    # golive.flv_template), as for the packager's muxer.
    track = Track(TrackKind.VIDEO, "hevc", annexb, width=width, height=height)
    flv = flv_with_sequence_headers([track])
    buffer = io.BytesIO()
    with av.open(io.BytesIO(flv), "r", format="flv") as source:
        if not source.streams.video:
            raise ValueError("libavformat read no HEVC configuration from these parameter sets")
        with av.open(buffer, "w", format="mp4", options={"movflags": "empty_moov"}) as output:
            stream = output.add_stream_from_template(source.streams.video[0], opaque=True)
            stream.codec_context.width = width
            stream.codec_context.height = height
            output.start_encoding()
    init = buffer.getvalue()
    match = re.search(rb"hvcC", init)
    if match is None:
        raise ValueError("libavformat wrote no hvcC for these parameter sets")
    size = int.from_bytes(init[match.start() - 4 : match.start()], "big")
    return init[match.end() : match.start() - 4 + size]
