"""The `[transcode]` settings: the adaptive bitrate ladder, the rungs' encoder and its rate
control, the worker processes and the audio transcoding. Built by `golive.config` from TOML or
the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

from golive.errors import ConfigError
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "ladder", tuple(self.ladder))
        names = []
        for text in self.ladder:
            if not isinstance(text, str):
                raise ConfigError(f"transcode.ladder: each rung is a string, got {text!r}")
            try:
                names.append(parse_rung(text).name)
            except LadderError as exc:
                raise ConfigError(f"transcode.ladder: {exc}") from exc
        if len(set(names)) != len(names):  # a rendition is named by its short side
            raise ConfigError(f"transcode.ladder: two rungs of the same size ({', '.join(names)})")
        if self.long_gop not in ("source", "reencode"):
            raise ConfigError(f"transcode.long_gop must be source or reencode, "
                              f"got {self.long_gop!r}")
        if self.audio not in ("aac", "source"):
            raise ConfigError(f"transcode.audio must be aac or source, got {self.audio!r}")
        if not (self.audio_bitrate == 0 or 16_000 <= self.audio_bitrate <= 512_000):
            raise ConfigError("transcode.audio_bitrate must be 0 (automatic) or "
                              "16000-512000 b/s")
        if self.codec not in ENCODERS:
            raise ConfigError(f"transcode.codec must be one of {', '.join(ENCODERS)}, "
                              f"got {self.codec!r}")
        if self.preset not in PRESETS:
            raise ConfigError(f"transcode.preset must be one of {', '.join(PRESETS)}, "
                              f"got {self.preset!r}")
        if self.profile and self.profile not in PROFILES[self.codec]:
            raise ConfigError(f"transcode.profile of {self.codec} must be one of "
                              f"{', '.join(PROFILES[self.codec])}, got {self.profile!r}")
        if not (1.0 <= self.maxrate <= 4.0 and 0.1 <= self.bufsize <= 10.0):
            raise ConfigError("transcode.maxrate must be 1-4 (times the bitrate), "
                              "bufsize 0.1-10 (seconds of the bitrate)")
        if self.workers < 0 or self.threads < 0 or not 0 <= self.bframes <= 16:
            raise ConfigError("transcode.workers and threads must be >= 0, bframes 0-16")
        if not 0 <= self.lookahead <= 250:
            raise ConfigError("transcode.lookahead must be 0-250 frames")
