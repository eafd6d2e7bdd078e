"""The `[ingest]` settings: the RTMP/RTMPS listeners, stream keys, publish webhook and the
limits on each connection. Built by `golive.config` from TOML or the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from golive.errors import ConfigError
from golive.hub import DEFAULT_SUBSCRIBER_CAPACITY
from golive.names import is_valid_stream_name

from .chunk import MAX_MESSAGE_SIZE


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
    # seconds from accept (or from the end of a publication) until a publish is answered
    handshake_timeout: float = 10.0
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
