"""The video encoders a rung can use, and how each is told to make IDRs only where asked.

libx264 (H.264, the default: every player decodes it) and libx265 (HEVC: about half the
bitrate for the same picture, played by Safari/iOS and most TVs, but several times the CPU).
Both get the same treatment: keyframes only when the pipeline forces one (unbounded keyint,
no scene-cut detection, forced frames made IDRs), no B-frames unless asked, and a
rate-control lookahead of `lookahead` frames. Their parameter sets come out as Annex B with a
global header; `decoder_config` turns them into the MP4 record (avcC, hvcC) the packager needs.
"""

from __future__ import annotations

import re

from golive.codecs import avc_codec_string, hevc_codec_string
from golive.media import Track, TrackKind
from golive.transcode.annexb import avcc_from_annexb

ENCODERS = ("libx264", "libx265")
PROFILES = {"libx264": ("baseline", "main", "high"), "libx265": ("main",)}
DEFAULT_PROFILE = {"libx264": "high", "libx265": "main"}
# Both encoders have these presets, fastest first.
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
           "slower", "veryslow", "placebo")


def encoder_params(encoder: str, *, bframes: int, lookahead: int, threads: int,
                   sliced_threads: bool, extra: str) -> tuple[str, list[str]]:
    """The encoder's private parameter option (x264-params / x265-params) and its value."""
    if encoder == "libx265":
        params = ["keyint=-1", "scenecut=0", "open-gop=0", f"bframes={bframes}",
                  f"rc-lookahead={lookahead}", "log-level=warning"]
        if threads:
            params.append(f"frame-threads={threads}")
        option = "x265-params"
    else:
        params = ["scenecut=0", f"bframes={bframes}", f"sliced-threads={int(sliced_threads)}",
                  f"rc-lookahead={lookahead}", "sync-lookahead=0"]
        option = "x264-params"
    if extra:
        params.append(extra)
    return option, params


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
    """The hvcC record of VPS/SPS/PPS in Annex B, as libavformat's mp4 muxer writes it
    (ff_isom_write_hvcc parses the parameter sets; no need to do that again here)."""
    from golive.packager.fmp4 import FragmentMuxer  # PyAV: not for config's import of this
    track = Track(TrackKind.VIDEO, "hevc", annexb, width=width, height=height)
    muxer = FragmentMuxer([track])
    try:
        init = muxer.init_segment
    finally:
        muxer.close()
    match = re.search(rb"hvcC", init)
    if match is None:
        raise ValueError("libavformat wrote no hvcC for these parameter sets")
    size = int.from_bytes(init[match.start() - 4 : match.start()], "big")
    return init[match.end() : match.start() - 4 + size]
