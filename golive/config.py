"""All configuration, typed, with documented defaults, in one place.

The CLI and the optional TOML file only build a `Config`; nothing else reads the
environment or the command line.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from golive.hub import DEFAULT_SUBSCRIBER_CAPACITY
from golive.ingest.chunk import MAX_MESSAGE_SIZE
from golive.names import is_valid_stream_name
from golive.transcode.encoders import ENCODERS, PRESETS, PROFILES
from golive.transcode.ladder import BUFSIZE_SECONDS, MAXRATE_FACTOR, LadderError, parse_rung


class ConfigError(ValueError):
    """The configuration is invalid; the message says which setting and why."""


@dataclass(frozen=True)
class IngestConfig:
    host: str = "0.0.0.0"
    port: int = 1935
    app: str = "live"  # the RTMP application publishers connect to: rtmp://host/live
    # stream key (secret) -> public stream name; playback URLs only ever show the name
    keys: dict[str, str] = field(default_factory=dict)
    open: bool = False  # any key publishes; the public name is derived from the key
    webhook_url: str | None = None  # nginx-rtmp style on_publish / on_unpublish
    webhook_timeout: float = 5.0
    rtmps_port: int = 1936
    tls_cert: str | None = None  # RTMPS listener only when both cert and key are given
    tls_key: str | None = None
    handshake_timeout: float = 10.0  # seconds from accept until the publish is answered
    idle_timeout: float = 30.0  # seconds without a byte from a connected client
    max_connections: int = 2000
    max_message_size: int = MAX_MESSAGE_SIZE
    subscriber_capacity: int = DEFAULT_SUBSCRIBER_CAPACITY

    def __post_init__(self) -> None:
        for name in ("port", "rtmps_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ConfigError(f"ingest.{name} must be a TCP port (0-65535), got {value}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("RTMPS needs both ingest.tls_cert and ingest.tls_key")
        if not self.app or "/" in self.app:
            raise ConfigError(f"ingest.app must be one path segment, got {self.app!r}")
        if self.max_connections < 1:
            raise ConfigError("ingest.max_connections must be at least 1")
        names = list(self.keys.values())
        if len(set(names)) != len(names):
            raise ConfigError("two stream keys map to the same stream name")
        for key, name in self.keys.items():
            if not key:
                raise ConfigError(f"stream {name!r} has an empty key")
            if not is_valid_stream_name(name):
                raise ConfigError(
                    f"stream name {name!r} may only use letters, digits, '-', '_' and '.'"
                )


@dataclass(frozen=True)
class HttpConfig:
    host: str = "0.0.0.0"
    port: int = 8080

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"http.port must be a TCP port (0-65535), got {self.port}")


@dataclass(frozen=True)
class HlsConfig:
    segment_target: float = 2.0  # seconds; segments cut at the first keyframe past it
    # seconds, rounded to whole frames. hls.js (LL mode, loopback) plays 1.29 s behind live at
    # 0.333, 0.93-1.08 s at 0.2 (but ~10 requests/s per viewer), 1.50 s at 0.5; no stalls.
    part_target: float = 0.333
    low_latency: bool = True  # list LL-HLS parts, preload hints and blocking reload
    window_segments: int = 6  # segments listed in a live playlist (never fewer than six)
    grace_period: float = 10.0  # seconds a dropped publisher may reconnect into the playlist
    store_dir: str | None = None  # None: segments live in memory; else this directory
    record_dir: str | None = None  # also record every broadcast here as a VOD playlist
    mpegts: bool = False  # also package H.264/AAC as classic MPEG-TS (ts/index.m3u8)
    player_dir: str | None = None  # where hls.js is; None: the project's node_modules

    def __post_init__(self) -> None:
        if not 1.0 <= self.segment_target <= 30.0:
            raise ConfigError(f"hls.segment_target must be 1-30 seconds, got {self.segment_target}")
        if not 0.1 <= self.part_target <= 2.0 or self.part_target > self.segment_target / 2:
            raise ConfigError(
                "hls.part_target must be 0.1-2 seconds and at most half the segment target, "
                f"got {self.part_target}")
        if self.window_segments < 1:
            raise ConfigError("hls.window_segments must be at least 1")
        if self.grace_period < 0:
            raise ConfigError("hls.grace_period must not be negative")




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


@dataclass(frozen=True)
class Config:
    ingest: IngestConfig = field(default_factory=IngestConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    hls: HlsConfig = field(default_factory=HlsConfig)
    transcode: TranscodeConfig = field(default_factory=TranscodeConfig)
    log_level: str = "INFO"


def load_config(path: str | Path) -> Config:
    """Read a TOML file with optional [ingest], [http] tables and [ingest.keys]
    (name = "secret" pairs, the same direction as `--key NAME=SECRET`)."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    ingest = raw.pop("ingest", {})
    http = raw.pop("http", {})
    hls = raw.pop("hls", {})
    transcode = raw.pop("transcode", {})
    for section, table in (("ingest", ingest), ("http", http), ("hls", hls),
                           ("transcode", transcode)):
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] must be a table of settings")
    log_level = raw.pop("log_level", "INFO")
    if raw:
        raise ConfigError(f"unknown config sections: {', '.join(sorted(raw))}")
    names_to_keys = ingest.pop("keys", {})
    if not isinstance(names_to_keys, dict):
        raise ConfigError("[ingest.keys] must map stream names to secret keys")
    secrets = [str(secret) for secret in names_to_keys.values()]
    if len(set(secrets)) != len(secrets):
        raise ConfigError("[ingest.keys]: one secret key is given to two streams")
    ingest["keys"] = {str(secret): str(name) for name, secret in names_to_keys.items()}
    return Config(
        ingest=_build(IngestConfig, ingest, "ingest"),
        http=_build(HttpConfig, http, "http"),
        hls=_build(HlsConfig, hls, "hls"),
        transcode=_build(TranscodeConfig, transcode, "transcode"),
        log_level=str(log_level),
    )


# TOML value types accepted per annotation (bool is an int in Python: keep them apart).
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "str | None": (str,),
    "dict[str, str]": (dict,),
    "tuple[str, ...]": (list,),
}


def _build(cls: type, values: dict[str, Any], section: str) -> Any:
    types = {f.name: f.type for f in fields(cls)}
    unknown = set(values) - set(types)
    if unknown:
        raise ConfigError(f"unknown setting(s) in [{section}]: {', '.join(sorted(unknown))}")
    for name, value in values.items():
        accepted = _TYPES.get(str(types[name]), (object,))
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
            raise ConfigError(
                f"{section}.{name} must be {str(types[name]).replace(' | None', '')}, "
                f"got {value!r}"
            )
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"[{section}]: {exc}") from exc


def with_overrides(config: Config, *, ingest: dict[str, Any], http: dict[str, Any],
                   hls: dict[str, Any] | None = None,
                   transcode: dict[str, Any] | None = None) -> Config:
    """Apply command-line values (None means 'not given') over a loaded config."""
    ingest = {k: v for k, v in ingest.items() if v is not None}
    http = {k: v for k, v in http.items() if v is not None}
    hls = {k: v for k, v in (hls or {}).items() if v is not None}
    transcode = {k: v for k, v in (transcode or {}).items() if v is not None}
    return replace(config, ingest=replace(config.ingest, **ingest),
                   http=replace(config.http, **http), hls=replace(config.hls, **hls),
                   transcode=replace(config.transcode, **transcode))
