"""The video encoders a rung can use, and how each is told to make IDRs only where asked.

libx264 (H.264, the default: every player decodes it) and libx265 (HEVC: about half the
bitrate for the same picture, played by Safari/iOS and most TVs, but several times the CPU).
Both get the same treatment: keyframes only when the pipeline forces one (unbounded keyint,
no scene-cut detection, forced frames made IDRs), no B-frames unless asked, and a
rate-control lookahead of `lookahead` frames. Their parameter sets come out as Annex B with a
global header; `records.py` turns them into the MP4 record (avcC, hvcC) the packager needs.
Pure (no PyAV): the configuration validates its settings against these tables.
"""

from __future__ import annotations

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
