"""The `[transcode]` settings: the adaptive bitrate ladder, the rungs' encoder and its rate
control, the worker processes and the audio transcoding. Built by `golive.config` from TOML or
the command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from golive.errors import raise_problems, shown
from golive.transcode.encoders import ENCODERS, PRESETS, PROFILES
from golive.transcode.ladder import BUFSIZE_SECONDS, MAXRATE_FACTOR, LadderError, parse_rung


@dataclass(frozen=True)
class TranscodeConfig:
    enabled: bool = True  # transcode every stream into an adaptive bitrate ladder
    # rungs as HEIGHTp@RATE ("480p@1200k") or WxH@RATE; empty: derived from each source
    # (Apple's H.264 ladder below the source's size and bitrate, see transcode/ladder.py)
    ladder: tuple[str, ...] = ()
    passthrough: bool = True  # offer the source as it came; False: re-encode it too
    # When the source's keyframes are further apart than segments may be long: "source"
    # offers it anyway, its segments cut between keyframes (the rungs get IDRs there);
    # "reencode" re-encodes its size as a rung and offers that instead, from then on.
    long_gop: str = "source"
    workers: int = 0  # transcode worker processes; 0: one per CPU core
    codec: str = "libx264"  # the rungs' encoder: libx264 (H.264) or libx265 (HEVC)
    preset: str = "veryfast"  # the encoder's preset, for every rung
    profile: str = ""  # "": high for libx264, main for libx265
    bframes: int = 0  # 0 keeps rung timestamps identical to the source's and adds no delay
    threads: int = 0  # encoder threads per rung (x265: frame threads); 0: it decides
    sliced_threads: bool = False  # True: x264 splits frames between threads (less delay)
    lookahead: int = 0  # libx264 rc-lookahead frames: each one is a frame of rung delay
    x264_params: str = ""  # extra encoder settings (x264-params / x265-params), k=v:k=v
    maxrate: float = MAXRATE_FACTOR  # each rung's VBV peak rate, times its bitrate
    bufsize: float = BUFSIZE_SECONDS  # each rung's VBV buffer, in seconds of its bitrate
    # "aac": audio other than AAC (Opus, MP3, Speex, G.711, ...) is transcoded to AAC once,
    # for every rendition, even with the ladder off; "source": passed through where fMP4
    # can carry it (Opus), else left out.
    audio: str = "aac"
    audio_bitrate: int = 0  # b/s of that AAC; 0: 64 kb/s per channel (128 kb/s stereo)

    # Plain words for the settings whose type alone does not say what is expected.
    EXPECTED: ClassVar[dict[str, str]] = {
        "ladder": 'a list of rungs such as ["480p@1200k", "240p@300k"]',
        "long_gop": '"source" or "reencode"', "workers": "a whole number, 0 for one per core",
        "codec": f"one of {', '.join(ENCODERS)}", "preset": f"one of {', '.join(PRESETS)}",
        "bframes": "a whole number 0-16", "threads": "a whole number, 0 to let it decide",
        "lookahead": "a whole number of frames 0-250", "maxrate": "a number 1-4",
        "bufsize": "a number of seconds 0.1-10", "audio": '"aac" or "source"',
        "audio_bitrate": "a whole number of b/s, 0 for automatic",
    }

    def __post_init__(self) -> None:
        object.__setattr__(self, "ladder", tuple(self.ladder))
        raise_problems(self._problems())

    def _problems(self) -> Iterator[str]:
        names = []
        for text in self.ladder:
            if not isinstance(text, str):
                yield (f'transcode.ladder: each rung is a string such as "480p@1200k", '
                       f"got {shown(text)}")
                continue
            try:
                names.append(parse_rung(text).name)
            except LadderError as exc:
                yield f"transcode.ladder: {exc}"
        if len(set(names)) != len(names):  # a rendition is named by its short side
            yield f"transcode.ladder: two rungs of the same size ({', '.join(names)})"
        if self.long_gop not in ("source", "reencode"):
            yield f"transcode.long_gop must be source or reencode, got {shown(self.long_gop)}"
        if self.audio not in ("aac", "source"):
            yield f"transcode.audio must be aac or source, got {shown(self.audio)}"
        if not (self.audio_bitrate == 0 or 16_000 <= self.audio_bitrate <= 512_000):
            yield (f"transcode.audio_bitrate must be 0 (automatic) or 16000-512000 b/s, "
                   f"got {self.audio_bitrate}")
        if self.codec not in ENCODERS:
            yield (f"transcode.codec must be one of {', '.join(ENCODERS)}, "
                   f"got {shown(self.codec)}")
        if self.preset not in PRESETS:
            yield (f"transcode.preset must be one of {', '.join(PRESETS)}, "
                   f"got {shown(self.preset)}")
        # (A profile is only checked against a known codec: an unknown one is reported above.)
        if self.profile and self.codec in PROFILES and self.profile not in PROFILES[self.codec]:
            yield (f"transcode.profile of {self.codec} must be one of "
                   f"{', '.join(PROFILES[self.codec])}, got {shown(self.profile)}")
        if not 1.0 <= self.maxrate <= 4.0:
            yield f"transcode.maxrate must be 1-4 (times each rung's bitrate), got {self.maxrate}"
        if not 0.1 <= self.bufsize <= 10.0:
            yield (f"transcode.bufsize must be 0.1-10 (seconds of each rung's bitrate), "
                   f"got {self.bufsize}")
        if self.workers < 0:
            yield f"transcode.workers must be 0 (one per CPU core) or more, got {self.workers}"
        if self.threads < 0:
            yield f"transcode.threads must be 0 (the encoder decides) or more, got {self.threads}"
        if not 0 <= self.bframes <= 16:
            yield f"transcode.bframes must be 0-16, got {self.bframes}"
        if not 0 <= self.lookahead <= 250:
            yield f"transcode.lookahead must be 0-250 frames, got {self.lookahead}"
