"""The `[ingest]` settings: the RTMP/RTMPS listeners, stream keys, publish webhook and the
limits on each connection. Built by `golive.config` from TOML or the command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from golive.errors import raise_problems, shown
from golive.hub import DEFAULT_SUBSCRIBER_CAPACITY
from golive.names import is_valid_stream_name

from .chunk import MAX_MESSAGE_SIZE

# A stream key shorter than this is accepted with a warning. The keys golive makes are 16
# characters (96 random bits); 12 characters of letters and digits are still ~70 bits, out of
# reach of guessing over RTMP, while a shorter key is typically a word a person chose.
MIN_KEY_LENGTH = 12


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

    # Plain words for the settings whose type alone does not say what is expected.
    EXPECTED: ClassVar[dict[str, str]] = {
        "port": "a TCP port 0-65535", "rtmps_port": "a TCP port 0-65535",
        "app": 'one path segment such as "live"', "webhook_url": "a URL in quotes",
        "webhook_timeout": "a number of seconds", "tls_cert": "a file path in quotes",
        "tls_key": "a file path in quotes", "handshake_timeout": "a number of seconds",
        "idle_timeout": "a number of seconds", "max_connections": "a whole number, at least 1",
        "max_message_size": "a whole number of bytes",
    }

    def __post_init__(self) -> None:
        raise_problems(self._problems())

    def _problems(self) -> Iterator[str]:
        for name in ("port", "rtmps_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                yield f"ingest.{name} must be a TCP port 0-65535, got {shown(value)}"
        if bool(self.tls_cert) != bool(self.tls_key):
            given, missing = ("tls_cert", "tls_key") if self.tls_cert else ("tls_key", "tls_cert")
            yield (f"ingest.{given} is set but ingest.{missing} is not: RTMPS needs both the "
                   "certificate and its private key")
        if not self.app or "/" in self.app:
            yield f'ingest.app must be one path segment such as "live", got {shown(self.app)}'
        if self.max_connections < 1:
            yield f"ingest.max_connections must be at least 1, got {self.max_connections}"
        names = list(self.keys.values())
        for name in sorted({name for name in names if names.count(name) > 1}):
            yield (f"ingest.keys: two keys are given for the same stream name {name!r}; "
                   "a stream has one key")
        for key, name in self.keys.items():
            if not key:
                yield f"ingest.keys: stream {name!r} has an empty key"
            if not is_valid_stream_name(name):
                yield (f"ingest.keys: stream name {name!r} may only use letters, digits, '-', "
                       "'_' and '.' (at most 64, not starting with '.')")

    def short_key_streams(self) -> list[str]:
        """The streams whose key is shorter than MIN_KEY_LENGTH: worth a warning at start."""
        return sorted(name for key, name in self.keys.items() if 0 < len(key) < MIN_KEY_LENGTH)
