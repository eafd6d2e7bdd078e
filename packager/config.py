"""The `[hls]` settings: segment and part durations, LL-HLS, the live window, where segments
and recordings are stored, MPEG-TS output and the player's files. Built by `golive.config`
from TOML or the command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from golive.errors import raise_problems


@dataclass(frozen=True)
class HlsConfig:
    segment_target: float = 2.0  # seconds; segments cut at the first keyframe past it
    # seconds, rounded to whole frames (0.32 s at 25 fps); PART-HOLD-BACK is 3 part targets
    # (RFC 8216bis: at least 2, 3 advised), and the watch page holds hls.js there. Glass-to-
    # glass in it (bench/glass.py, loopback, Chromium): 1.03 s at 0.333 (~6 requests/s per
    # viewer), 0.8 s at 0.25 (8/s), 0.65 s at 0.2 (10/s), 1.5 s at 0.5. Over 10 minutes on a
    # busy 2-core machine 0.25 stalled 7 and 18 times, 0.333 six times in its first minute
    # and then never (hls.js holds 0.25 s more per stall): the larger buffer is kept.
    part_target: float = 0.333
    low_latency: bool = True  # list LL-HLS parts, preload hints and blocking reload
    window_segments: int = 6  # segments listed in a live playlist (never fewer than six)
    grace_period: float = 10.0  # seconds a dropped publisher may reconnect into the playlist
    store_dir: str | None = None  # also write every file here (golive serves from memory)
    record_dir: str | None = None  # also record every broadcast here as a VOD playlist
    mpegts: bool = False  # also package H.264/AAC as classic MPEG-TS (ts/index.m3u8)
    player_dir: str | None = None  # where hls.js is; None: the project's node_modules

    # Plain words for the settings whose type alone does not say what is expected.
    EXPECTED: ClassVar[dict[str, str]] = {
        "segment_target": "a number of seconds 1-30", "part_target": "a number of seconds 0.1-2",
        "window_segments": "a whole number, at least 1",
        "grace_period": "a number of seconds, 0 or more", "store_dir": "a directory in quotes",
        "record_dir": "a directory in quotes", "player_dir": "a directory in quotes",
    }

    def __post_init__(self) -> None:
        raise_problems(self._problems())

    def _problems(self) -> Iterator[str]:
        segment_ok = 1.0 <= self.segment_target <= 30.0
        if not segment_ok:
            yield f"hls.segment_target must be 1-30 seconds, got {self.segment_target}"
        # (Against an invalid segment target, reported above, the part target is not judged.)
        if not 0.1 <= self.part_target <= 2.0 or (
                segment_ok and self.part_target > self.segment_target / 2):
            yield ("hls.part_target must be 0.1-2 seconds and at most half of "
                   f"hls.segment_target ({self.segment_target}), got {self.part_target}")
        if self.window_segments < 1:
            yield f"hls.window_segments must be at least 1, got {self.window_segments}"
        if self.grace_period < 0:
            yield f"hls.grace_period must be 0 or more seconds, got {self.grace_period}"
