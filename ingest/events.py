"""What the RTMP core tells its application. Media itself arrives as `golive.media.MediaUnit`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from golive.media import MediaUnit, TrackKind


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    digest: bool


@dataclass(frozen=True, slots=True)
class Connected:
    """connect was answered with NetConnection.Connect.Success."""

    app: str
    tc_url: str
    flash_ver: str
    fourcc_list: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectRejected:
    """connect named an application we do not serve; the core asks to close.

    `app` and `tc_url` may hold a stream key pasted into the server URL: never log them.
    """

    app: str = field(repr=False)
    tc_url: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class PublishRequested:
    """The peer wants to publish; answer with accept_publish or reject_publish.

    `key` is the stream key (a secret: never log it). `query` is whatever followed a '?'
    in the publish name (tokens some encoders append), also secret.
    """

    stream_id: int
    key: str = field(repr=False)
    publish_type: str
    query: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class MetadataReceived:
    stream_id: int
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CodecConfigured:
    """A sequence header: the codec configuration that the following units need."""

    kind: TrackKind
    codec: str
    extradata: bytes
    codec_string: str = ""


@dataclass(frozen=True, slots=True)
class PublishStopped:
    """FCUnpublish, deleteStream or closeStream ended the publication."""

    stream_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class PlayRequested:
    """Someone tried to play over RTMP; playback is HLS only, so the core refused it."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class MessageDropped:
    """A message that was skipped without ending the connection (counted and logged).

    `kind` is a fixed label for metrics; `reason` is for the log.
    """

    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class TimedOut:
    """A deadline passed (ServerConnection.handle_timer): the core is closed; drop the
    connection.

    `kind` is a fixed label for metrics, as a ProtocolError's: "timeout" (no publish accepted
    within handshake_timeout) or "idle" (nothing received for idle_timeout); `reason` is for
    the log.
    """

    kind: str
    reason: str


Event = (
    HandshakeComplete
    | Connected
    | ConnectRejected
    | PublishRequested
    | MetadataReceived
    | CodecConfigured
    | PublishStopped
    | PlayRequested
    | MessageDropped
    | TimedOut
    | MediaUnit
)
