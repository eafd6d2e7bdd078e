"""The client side of an RTMP publish, sans-IO: the mirror image of `ServerConnection`.

`receive_data(bytes)` returns events; `data_to_send()` returns the bytes to write. The client
runs the command sequence FFmpeg's publisher runs (connect; on its _result Set Chunk Size,
releaseStream, FCPublish, createStream; on that _result publish), answers pings and sends
acknowledgements by itself, and hands every server reply that matters to the application as
an event, so a caller sees exactly what a server said (e.g. NetStream.Publish.BadName).

It exists so tests and benchmarks can speak RTMP byte for byte without FFmpeg, and so a
restream/relay feature can publish to another server later. No clock, socket or asyncio here:
timeouts and the transport belong to whoever drives it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from . import amf0
from .chunk import ChunkDecoder, ChunkEncoder, RawMessage
from .errors import HandshakeError, LocalProtocolError, ProtocolError
from .handshake import HANDSHAKE_SIZE, RTMP_VERSION, client_c0c1, client_c2, validate_server_digest
from .messages import (
    MessageType,
    UserControl,
    parse_u32,
    parse_user_control,
    u32,
    user_control,
)

__all__ = [
    "DEFAULT_FLASH_VER",
    "CallFailed",
    "ClientEvent",
    "ConnectResult",
    "PublishClient",
    "PublishStatus",
    "StreamCreated",
]

# Servers tell FMLE-style publishers apart by this prefix (nginx-rtmp, Wowza); FFmpeg and OBS
# both send it.
DEFAULT_FLASH_VER = "FMLE/3.0 (compatible; golive)"

# Chunk stream ids as FFmpeg's publisher uses them (CONFORMANCE.md): a server that only works
# with one client's choice of ids is caught by tests that speak like that client.
_CSID_CONTROL = 2
_CSID_COMMAND = 3
_CSID_AUDIO_DATA = 4
_CSID_VIDEO = 6
_CSID_PUBLISH = 8

_S0S1S2 = 1 + 2 * HANDSHAKE_SIZE
_MAX_CHUNK_SIZE = 0x7FFFFFFF  # 31 bits on the wire


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """The server's answer to connect (`_result` or `_error`)."""

    code: str
    level: str
    description: str = ""

    @property
    def ok(self) -> bool:
        return self.level == "status" and self.code == "NetConnection.Connect.Success"


@dataclass(frozen=True, slots=True)
class StreamCreated:
    """createStream succeeded; publish has been sent on `stream_id`."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class PublishStatus:
    """An onStatus on the publishing stream: Publish.Start, BadName, Denied, Unpublish..."""

    level: str
    code: str
    description: str


@dataclass(frozen=True, slots=True)
class CallFailed:
    """An `_error` answer to a call other than connect (createStream, or an unknown one)."""

    command: str
    code: str
    description: str


ClientEvent = ConnectResult | StreamCreated | PublishStatus | CallFailed


class _State:
    HANDSHAKE = "handshake"
    CONNECTING = "connecting"  # connect sent
    CREATING_STREAM = "creating-stream"  # createStream sent
    PUBLISHING = "publishing"  # publish sent, no answer yet
    PUBLISHED = "published"  # NetStream.Publish.Start received: media may flow
    UNPUBLISHED = "unpublished"
    FAILED = "failed"  # connect or publish refused, or the server broke the protocol


class PublishClient:
    """One RTMP publishing session, from C0 to FCUnpublish.

    `key` is the stream key: a secret, so it is never put in an exception or a repr.
    `digest=True` signs C1 like FFmpeg (a server must then answer digest-style);
    False sends a plain C1 like OBS.
    """

    def __init__(
        self,
        app: str,
        key: str,
        tc_url: str,
        *,
        flash_ver: str = DEFAULT_FLASH_VER,
        chunk_size: int = 4096,
        publish_type: str = "live",
        digest: bool = True,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not 1 <= chunk_size <= _MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be 1..2^31-1, got {chunk_size}")
        self.app = app
        self._key = key
        self.tc_url = tc_url
        self.flash_ver = flash_ver
        self.chunk_size = chunk_size
        self.publish_type = publish_type
        self.state = _State.HANDSHAKE
        self.stream_id: int | None = None
        self.server_digest = False  # S1/S2 carried a valid FMS digest (only with digest=True)
        self.bytes_received = 0
        c0c1 = client_c0c1(digest=digest, random_bytes=random_bytes)
        self._c1 = c0c1[1:]
        self._handshake_buffer = bytearray()
        self._chunks = ChunkDecoder()
        # Header compression like FFmpeg's rtmppkt.c, so the server's type 1/2/3 paths run.
        self._writer = ChunkEncoder(compress=True)
        self._out: list[bytes] = [c0c1]
        self._events: list[ClientEvent] = []
        self._next_txn = 1
        self._calls: dict[int, str] = {}  # transaction id -> command awaiting its answer
        self._ack_window = 0  # 0: the server asked for no acknowledgements (yet)
        self._acked = 0
        self._broken = False

    def __repr__(self) -> str:
        return f"<PublishClient app={self.app!r} state={self.state} stream_id={self.stream_id}>"

    @property
    def published(self) -> bool:
        """True between NetStream.Publish.Start and unpublish(): media may be sent."""
        return self.state == _State.PUBLISHED

    # ---- input -------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[ClientEvent]:
        """Feed bytes from the server; returns the events they complete, in order.

        Raises a ProtocolError subclass when the server broke the protocol.
        """
        if self._broken:
            # A refused session may still read what the server sends before it closes; only
            # a protocol failure leaves the decoder in an unknown state.
            raise LocalProtocolError("receive_data after the server broke the protocol")
        self.bytes_received += len(data)
        try:
            if self.state == _State.HANDSHAKE:
                data = self._receive_handshake(data)
                if not data:
                    return self._take_events()
            for message in self._chunks.feed(data):
                self._dispatch(message)
        except ProtocolError:
            self.state = _State.FAILED
            self._broken = True
            raise
        if self._ack_window and self.bytes_received - self._acked >= self._ack_window:
            self._acked = self.bytes_received
            self._send(_CSID_CONTROL, MessageType.ACK, 0, u32(self.bytes_received))
        return self._take_events()

    def _take_events(self) -> list[ClientEvent]:
        events, self._events = self._events, []
        return events

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> bytes:
        buffer = self._handshake_buffer
        need = _S0S1S2 - len(buffer)
        buffer += data[:need]
        rest = bytes(data[need:])
        if buffer and buffer[0] != RTMP_VERSION:
            raise HandshakeError(f"server answered with version byte 0x{buffer[0]:02x}")
        if len(buffer) < _S0S1S2:
            return b""
        s1 = bytes(buffer[1 : 1 + HANDSHAKE_SIZE])
        s2 = bytes(buffer[1 + HANDSHAKE_SIZE :])
        # Publishers (FFmpeg, OBS) never reject a server's handshake; record, don't enforce.
        self.server_digest = validate_server_digest(self._c1, s1, s2)
        self._handshake_buffer = bytearray()
        self._out.append(client_c2(s1))
        self.state = _State.CONNECTING
        self._call("connect", {
            "app": self.app, "type": "nonprivate", "flashVer": self.flash_ver,
            "tcUrl": self.tc_url,
        })
        return rest

    def _dispatch(self, message: RawMessage) -> None:
        type_id = message.type_id
        if type_id == MessageType.COMMAND_AMF0:
            self._command(amf0.decode_all(message.payload))
        elif type_id == MessageType.USER_CONTROL:
            parsed = parse_user_control(message.payload)
            if parsed is not None and parsed[0] == UserControl.PING_REQUEST:
                self._send(_CSID_CONTROL, MessageType.USER_CONTROL, 0,
                           user_control(UserControl.PING_RESPONSE, parsed[1]))
        elif type_id == MessageType.WINDOW_ACK_SIZE:
            window = parse_u32(message.payload)
            if window:
                self._ack_window = window
        # Set Chunk Size is applied inside the decoder; Set Peer Bandwidth, acks, StreamBegin
        # and data messages need no answer from a publisher.

    def _command(self, values: list[amf0.AmfValue]) -> None:
        if not values or not isinstance(values[0], str):
            raise ProtocolError("command message without a command name", kind="amf")
        name = values[0]
        txn = values[1] if len(values) > 1 and isinstance(values[1], float) else 0.0
        if name in ("_result", "_error"):
            command = self._calls.pop(int(txn), None)
            if command is not None:
                self._answer(command, name == "_result", values[2:])
        elif name == "onStatus":
            info = _info(values[3] if len(values) > 3 else None)
            self._on_status(PublishStatus(info.get("level", ""), info.get("code", ""),
                                          info.get("description", "")))
        # onBWDone, onFCPublish and the like carry nothing a publisher must act on.

    def _answer(self, command: str, ok: bool, args: list[amf0.AmfValue]) -> None:
        if command == "connect":
            info = _info(args[1] if len(args) > 1 else None)
            result = ConnectResult(info.get("code", ""), info.get("level", ""),
                                   info.get("description", ""))
            self._events.append(result)
            if ok and self.state == _State.CONNECTING:
                self._start_publish()
            else:
                self.state = _State.FAILED
        elif command == "createStream" and ok:
            stream_id = args[1] if len(args) > 1 else None
            if not isinstance(stream_id, float) or not 0 < stream_id < 1 << 32:
                raise ProtocolError("createStream _result without a stream id", kind="sequence")
            self.stream_id = int(stream_id)
            self._events.append(StreamCreated(self.stream_id))
            self.state = _State.PUBLISHING
            self._call("publish", None, self._key, self.publish_type,
                       csid=_CSID_PUBLISH, stream_id=self.stream_id)
        elif not ok:
            info = _info(args[1] if len(args) > 1 else None)
            self._events.append(CallFailed(command, info.get("code", ""),
                                           info.get("description", "")))
            if command == "createStream":
                self.state = _State.FAILED

    def _start_publish(self) -> None:
        # After connect, like FFmpeg: bigger chunks cut per-chunk header overhead for media.
        self._send(_CSID_CONTROL, MessageType.SET_CHUNK_SIZE, 0, u32(self.chunk_size))
        self._writer.chunk_size = self.chunk_size
        self._notify("releaseStream", None, self._key)
        self._notify("FCPublish", None, self._key)
        self.state = _State.CREATING_STREAM
        self._call("createStream", None)

    def _on_status(self, status: PublishStatus) -> None:
        self._events.append(status)
        if status.level == "error":
            self.state = _State.FAILED
        elif status.code == "NetStream.Publish.Start" and self.state == _State.PUBLISHING:
            self.state = _State.PUBLISHED

    # ---- application calls -------------------------------------------------------------

    def send_video(self, timestamp_ms: int, flv_tag_body: bytes) -> None:
        """One video message: an FLV video tag body (header byte(s) + payload)."""
        self._media(_CSID_VIDEO, MessageType.VIDEO, timestamp_ms, flv_tag_body)

    def send_audio(self, timestamp_ms: int, flv_tag_body: bytes) -> None:
        """One audio message: an FLV audio tag body (header byte(s) + payload)."""
        self._media(_CSID_AUDIO_DATA, MessageType.AUDIO, timestamp_ms, flv_tag_body)

    def send_metadata(self, values: Mapping[str, object], timestamp_ms: int = 0) -> None:
        """onMetaData the way FFmpeg sends it: @setDataFrame and an ECMA array."""
        payload = amf0.encode("@setDataFrame", "onMetaData", amf0.EcmaArray(values))
        self._media(_CSID_AUDIO_DATA, MessageType.DATA_AMF0, timestamp_ms, payload)

    def send_flv_tag(self, tag_type: int, timestamp_ms: int, body: bytes) -> None:
        """One tag of an FLV file, sent as FFmpeg's RTMP output sends it: audio and video
        as they are, the onMetaData script tag behind @setDataFrame, anything else not."""
        if tag_type == MessageType.VIDEO:
            self.send_video(timestamp_ms, body)
        elif tag_type == MessageType.AUDIO:
            self.send_audio(timestamp_ms, body)
        elif tag_type == MessageType.DATA_AMF0:
            values = amf0.decode_all(body)
            if len(values) >= 2 and values[0] == "onMetaData" and isinstance(values[1], dict):
                self.send_metadata(values[1], timestamp_ms)

    def unpublish(self) -> None:
        """Stop publishing like FFmpeg: FCUnpublish, then deleteStream."""
        if self.state != _State.PUBLISHED:
            raise LocalProtocolError(f"unpublish while {self.state}")
        self.state = _State.UNPUBLISHED
        self._notify("FCUnpublish", None, self._key)
        self._notify("deleteStream", None, float(self.stream_id or 0))

    def republish(self) -> None:
        """Publish again on this connection after unpublish(), as Flash Media Live Encoder
        does on Stop/Start: a new stream (createStream), then publish on it."""
        if self.state != _State.UNPUBLISHED:
            raise LocalProtocolError(f"republish while {self.state}")
        self.stream_id = None
        self.state = _State.CREATING_STREAM
        self._call("createStream", None)

    def _media(self, csid: int, type_id: int, timestamp_ms: int, payload: bytes) -> None:
        if self.state != _State.PUBLISHED or self.stream_id is None:
            raise LocalProtocolError(f"media sent while {self.state}, not published")
        self._send(csid, type_id, self.stream_id, payload, timestamp_ms)

    # ---- output ------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        out, self._out = self._out, []
        return b"".join(out)

    def _send(self, csid: int, type_id: int, stream_id: int, payload: bytes,
              timestamp: int = 0) -> None:
        # The encoder keeps the low 32 bits: RTMP timestamps wrap, the server unwraps them.
        self._out.append(self._writer.encode(csid, timestamp, type_id, stream_id, payload))

    def _call(self, name: str, *args: object, csid: int = _CSID_COMMAND,
              stream_id: int = 0) -> None:
        """A command whose answer we wait for: remember its transaction id."""
        txn = self._next_txn
        self._next_txn += 1
        self._calls[txn] = name
        self._send(csid, MessageType.COMMAND_AMF0, stream_id, amf0.encode(name, float(txn), *args))

    def _notify(self, name: str, *args: object) -> None:
        """A command nobody answers (nginx-rtmp and golive stay silent): a fresh transaction
        id all the same, as FFmpeg numbers them."""
        txn = self._next_txn
        self._next_txn += 1
        self._send(_CSID_COMMAND, MessageType.COMMAND_AMF0, 0, amf0.encode(name, float(txn), *args))


def _info(value: object) -> dict[str, str]:
    """The string fields of an info object; servers put numbers and nested objects there too."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, str)}
