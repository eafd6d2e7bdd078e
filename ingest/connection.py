"""The server side of one RTMP connection, sans-IO (h11/aioquic style).

`receive_data(bytes, now)` returns events; `data_to_send()` returns the bytes to write back.
Everything the protocol answers by itself (handshake, acknowledgements, pings, connect,
createStream) is answered here; the one decision left to the application is whether a
publish is allowed (`accept_publish` / `reject_publish`), because it needs the key table and
perhaps a webhook. The session is one `State`; every way from one state to another is listed
in `TRANSITIONS` (h11's `_state.py` is the model) and taken through
`ServerConnection._transition`.

The core owns its deadlines but never reads a clock: it learns the time from the `now` values
passed in (as aioquic does). The application calls `handle_timer(now)` once `next_deadline()`
has passed; a deadline that moved on meanwhile (bytes came in) is simply reported again. No
socket, no asyncio.
"""

from __future__ import annotations

import enum
import math
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final

from golive.codecs import CODEC_STRINGS
from golive.media import MediaUnit, TrackKind

from . import amf0
from .chunk import ChunkDecoder, ChunkEncoder, ChunkLimits, RawMessage
from .errors import AmfError, FlvError, LocalProtocolError, ProtocolError
from .events import (
    CodecConfigured,
    Connected,
    ConnectRejected,
    Event,
    HandshakeComplete,
    MessageDropped,
    MetadataReceived,
    PlayRequested,
    PublishRequested,
    PublishStopped,
    TimedOut,
)
from .flv import AudioPacketType, VideoPacketType, parse_audio, parse_video
from .handshake import ServerHandshake
from .messages import (
    CSID_COMMAND,
    CSID_CONTROL,
    CSID_STATUS,
    MessageType,
    PeerBandwidthLimit,
    UserControl,
    parse_u32,
    parse_user_control,
    set_peer_bandwidth,
    u32,
    user_control,
)
from .timestamps import TimestampUnwrapper

DEFAULT_WINDOW_ACK_SIZE = 5_000_000  # what nginx-rtmp and FMS announce
SERVER_CHUNK_SIZE = 4096
MAX_STREAMS_PER_CONNECTION = 8  # createStream answers before refusing more
# Bytes a connection may buffer before it asks to publish: commands are small, and even a
# client that sends its first frames without waiting for the answer fits.
PRE_PUBLISH_PENDING_BYTES = 512 << 10

_VIDEO = TrackKind.VIDEO
# tuple.__new__ builds a MediaUnit without its generated Python-level __new__ (hot path).
_new_unit = tuple.__new__
_AUDIO = TrackKind.AUDIO
_CODED_VIDEO = (VideoPacketType.CODED_FRAMES, VideoPacketType.CODED_FRAMES_X)
_VIDEO_CONFIG = VideoPacketType.SEQUENCE_START
_AUDIO_CODED = AudioPacketType.CODED_FRAMES
_AUDIO_CONFIG = AudioPacketType.SEQUENCE_START
# Audio codecs whose FLV stream carries no sequence header: their track is known from the
# first frame.
_AUDIO_WITHOUT_CONFIG = frozenset({"mp3", "pcm_s16le", "pcm_s16be", "pcm_u8", "pcm_alaw",
                                   "pcm_mulaw", "nellymoser", "adpcm_swf", "speex", "ac3",
                                   "eac3"})


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    apps: frozenset[str] = frozenset({"live"})
    window_ack_size: int = DEFAULT_WINDOW_ACK_SIZE
    chunk_limits: ChunkLimits = field(default_factory=ChunkLimits)
    # Deadlines in seconds, on the clock of the `now` values given to the core; None: no such
    # deadline (a bare core replaying a capture). The server passes IngestConfig's.
    # handshake_timeout: from accept, or from the end of a publication, until a publish is
    # accepted. idle_timeout: without receiving a byte.
    handshake_timeout: float | None = None
    idle_timeout: float | None = None


class State(enum.Enum):
    """Where one session stands. `TRANSITIONS` lists every way from one state to another."""

    HANDSHAKE = "handshake"  # C0 C1 C2 not all received
    AWAIT_CONNECT = "await-connect"
    CONNECTED = "connected"  # connect answered; nothing published
    PUBLISH_REQUESTED = "publish-requested"  # PublishRequested is out; no answer yet
    PUBLISHING = "publishing"  # accepted: media on `publishing_stream` become units
    MUST_CLOSE = "must-close"  # a refusal was sent: flush data_to_send(), then close
    CLOSED = "closed"  # protocol error or timeout: the core is unusable


class Trigger(enum.Enum):
    """What moves a session from one state to another; see PEER_TRIGGERS for who causes it."""

    HANDSHAKE_DONE = "handshake done"
    CONNECT = "connect"  # to an application we serve
    CONNECT_REFUSED = "connect to an unknown application"
    PUBLISH = "publish"
    PUBLISH_REFUSED = "publish without a stream key"  # refused by the core itself
    UNPUBLISH = "unpublish"  # FCUnpublish, closeStream or deleteStream
    PLAY = "play"  # always refused: playback is HLS
    PROTOCOL_ERROR = "protocol error"
    ACCEPT = "accept_publish"  # of the current publication's request
    REJECT = "reject_publish"
    TIMEOUT = "timeout"  # handle_timer past a deadline


_S, _T = State, Trigger
# (state, trigger) -> new state: every legal transition, and nothing else. Answering a request
# whose publication already ended (a pipelining client) is no transition: see accept_publish.
TRANSITIONS: Final[dict[tuple[State, Trigger], State]] = {
    (_S.HANDSHAKE, _T.HANDSHAKE_DONE): _S.AWAIT_CONNECT,
    (_S.HANDSHAKE, _T.PROTOCOL_ERROR): _S.CLOSED,
    (_S.HANDSHAKE, _T.TIMEOUT): _S.CLOSED,
    (_S.AWAIT_CONNECT, _T.CONNECT): _S.CONNECTED,
    (_S.AWAIT_CONNECT, _T.CONNECT_REFUSED): _S.MUST_CLOSE,
    (_S.AWAIT_CONNECT, _T.PROTOCOL_ERROR): _S.CLOSED,
    (_S.AWAIT_CONNECT, _T.TIMEOUT): _S.CLOSED,
    (_S.CONNECTED, _T.PUBLISH): _S.PUBLISH_REQUESTED,
    (_S.CONNECTED, _T.PUBLISH_REFUSED): _S.MUST_CLOSE,
    (_S.CONNECTED, _T.PLAY): _S.MUST_CLOSE,
    (_S.CONNECTED, _T.REJECT): _S.MUST_CLOSE,  # the request of a publication already ended
    (_S.CONNECTED, _T.PROTOCOL_ERROR): _S.CLOSED,
    (_S.CONNECTED, _T.TIMEOUT): _S.CLOSED,
    (_S.PUBLISH_REQUESTED, _T.ACCEPT): _S.PUBLISHING,
    (_S.PUBLISH_REQUESTED, _T.REJECT): _S.MUST_CLOSE,
    (_S.PUBLISH_REQUESTED, _T.UNPUBLISH): _S.CONNECTED,
    (_S.PUBLISH_REQUESTED, _T.PLAY): _S.MUST_CLOSE,
    (_S.PUBLISH_REQUESTED, _T.PROTOCOL_ERROR): _S.CLOSED,
    (_S.PUBLISH_REQUESTED, _T.TIMEOUT): _S.CLOSED,
    (_S.PUBLISHING, _T.UNPUBLISH): _S.CONNECTED,
    (_S.PUBLISHING, _T.PLAY): _S.MUST_CLOSE,
    (_S.PUBLISHING, _T.PROTOCOL_ERROR): _S.CLOSED,
    (_S.PUBLISHING, _T.TIMEOUT): _S.CLOSED,
    # Requests still unanswered when the core refused something else (publish then play in
    # one read) may be answered; the answer closes nothing more.
    (_S.MUST_CLOSE, _T.REJECT): _S.MUST_CLOSE,
}
# Triggers caused by the peer: an illegal one is its ProtocolError ("sequence"). The others
# (the application's answers, the timer) are LocalProtocolError: our own bug.
PEER_TRIGGERS: Final = frozenset({
    _T.HANDSHAKE_DONE, _T.CONNECT, _T.CONNECT_REFUSED, _T.PUBLISH, _T.PUBLISH_REFUSED,
    _T.UNPUBLISH, _T.PLAY, _T.PROTOCOL_ERROR})

# Module-level finals: mypyc reads them as C globals, not as class attributes (hot path).
_HANDSHAKE: Final = State.HANDSHAKE
_AWAIT_CONNECT: Final = State.AWAIT_CONNECT
_PUBLISH_REQUESTED: Final = State.PUBLISH_REQUESTED
_PUBLISHING: Final = State.PUBLISHING
_MUST_CLOSE: Final = State.MUST_CLOSE
_CLOSED: Final = State.CLOSED


class ServerConnection:
    def __init__(
        self,
        config: ConnectionConfig | None = None,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        now: float = 0.0,
    ) -> None:
        """`now`: the time of accept, on the clock of every later `now` (for the deadlines)."""
        self.config = config or ConnectionConfig()
        self.state = State.HANDSHAKE  # changed only by _transition
        self._handshake: ServerHandshake | None = ServerHandshake(random_bytes=random_bytes)
        # Until a publish is asked for, a connection has proven nothing (the key is checked
        # only then), so it may hold far less: many idle or hostile connections stay cheap.
        limits = self.config.chunk_limits
        self._chunks = ChunkDecoder(replace(
            limits, max_pending_bytes=min(limits.max_pending_bytes, PRE_PUBLISH_PENDING_BYTES)))
        self._writer = ChunkEncoder()
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self.app = ""
        self.bytes_received = 0
        self._ack_window = self.config.window_ack_size
        self._acked = 0
        self._next_stream_id = 1
        self._streams: set[int] = set()
        # The current publication's stream (PUBLISH_REQUESTED or PUBLISHING), else None.
        self.publishing_stream: int | None = None
        # Stream ids of the publish requests the application has not answered, oldest first.
        # A pipelining client can send publish, FCUnpublish and publish again in one read,
        # so answers may be owed for publications that already ended; the newest request is
        # the current publication's exactly when the state is PUBLISH_REQUESTED.
        self._unanswered: deque[int] = deque()
        # The clock: the latest receive_data (or accept), and when waiting for a publish began
        # (accept, or the end of the last publication).
        self._last_rx = now
        self._awaiting_publish_since = now
        self.video_codec: str | None = None
        self.audio_codec: str | None = None
        self._video_config = b""
        self._audio_config = b""
        self._last_data = b""
        self._video_clock = TimestampUnwrapper()
        self._audio_clock = TimestampUnwrapper()

    @property
    def publish_accepted(self) -> bool:
        """The current publication was accepted: its media become units."""
        return self.state is _PUBLISHING

    @property
    def close_requested(self) -> bool:
        """A refusal was sent: the application should flush data_to_send() and close."""
        return self.state is _MUST_CLOSE

    def _transition(self, trigger: Trigger) -> None:
        new = TRANSITIONS.get((self.state, trigger))
        if new is None:
            message = f"{trigger.value} in state {self.state.value}"
            if trigger in PEER_TRIGGERS:
                raise ProtocolError(message, kind="sequence")
            raise LocalProtocolError(message)
        self.state = new
        if new is not _PUBLISH_REQUESTED and new is not _PUBLISHING:
            self.publishing_stream = None

    # ---- input -----------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview,
                     now: float | None = None) -> list[Event]:
        """Feed bytes from the peer, received at `now` (None: at the latest time given);
        returns the events they complete, in order.

        Raises a ProtocolError subclass when the peer broke the protocol; the connection is
        unusable afterwards. Once a refusal is sent (close_requested), input is ignored.
        """
        if now is not None:
            self._last_rx = now
        state = self.state
        if state is _CLOSED:
            raise LocalProtocolError("receive_data after the connection closed")
        self.bytes_received += len(data)
        if state is _MUST_CLOSE:
            return []
        try:
            if state is _HANDSHAKE:
                data = self._receive_handshake(data)
                if not data:
                    return self._take_events()
            self._receive_messages(self._chunks.feed(data))
        except ProtocolError:
            self._transition(Trigger.PROTOCOL_ERROR)
            raise
        if self.bytes_received - self._acked >= self._ack_window:
            self._acked = self.bytes_received
            self._send(CSID_CONTROL, MessageType.ACK, 0, u32(self.bytes_received))
        return self._take_events() if self._events else []

    def _take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> bytes:
        handshake = self._handshake
        assert handshake is not None
        used = handshake.receive_data(data)
        out = handshake.data_to_send()
        if out:
            self._out.append(out)
        if not handshake.complete:
            return b""
        self._handshake = None
        self._transition(Trigger.HANDSHAKE_DONE)
        self._events.append(HandshakeComplete(digest=handshake.digest))
        return bytes(data[used:])

    def _receive_messages(self, messages: list[RawMessage]) -> None:
        # The common frames (legacy H.264 and AAC, ~all of a typical stream) are turned into
        # units inline: this loop runs for every frame, and skipping the general tag parser
        # and its views and objects halves the per-frame cost.
        events = self._events
        publishing = self.publishing_stream
        h264 = self.video_codec == "h264"
        aac = self.audio_codec == "aac"
        for message in messages:
            payload = message.payload
            if message.stream_id == publishing and len(payload) > 2:
                type_id = message.type_id
                if type_id == 9:
                    b0 = payload[0]
                    if h264 and (b0 == 0x17 or b0 == 0x27) and payload[1] == 1 \
                            and len(payload) > 5:
                        dts = self._video_clock.unwrap(message.timestamp)
                        pts = dts + int.from_bytes(payload[2:5], "big", signed=True)
                        events.append(_new_unit(
                            MediaUnit, (_VIDEO, dts, pts, b0 == 0x17, payload[5:])))
                        continue
                elif type_id == 8 and aac and payload[0] >> 4 == 10 and payload[1] == 1:
                    dts = self._audio_clock.unwrap(message.timestamp)
                    events.append(_new_unit(MediaUnit, (_AUDIO, dts, dts, True, payload[2:])))
                    continue
            self._dispatch(message)
            if self.state is _MUST_CLOSE:
                break  # what the peer sent after its refusal is not read
            publishing = self.publishing_stream
            h264 = self.video_codec == "h264"
            aac = self.audio_codec == "aac"

    def _dispatch(self, message: RawMessage) -> None:
        type_id = message.type_id
        # Media first: it is almost every message.
        if type_id == 9:
            if message.stream_id == self.publishing_stream:
                self._video(message)
            else:
                self._drop("media_without_publish", f"video on stream {message.stream_id}")
        elif type_id == 8:
            if message.stream_id == self.publishing_stream:
                self._audio(message)
            else:
                self._drop("media_without_publish", f"audio on stream {message.stream_id}")
        elif type_id == MessageType.COMMAND_AMF0:
            self._command(message)
        elif type_id == MessageType.DATA_AMF0:
            self._data(message)
        elif type_id in (MessageType.COMMAND_AMF3, MessageType.DATA_AMF3,
                         MessageType.SHARED_OBJECT_AMF3):
            raise ProtocolError(
                "AMF3 messages are not supported; publish with AMF0 (objectEncoding 0)",
                kind="amf3",
            )
        elif type_id == MessageType.USER_CONTROL:
            self._user_control(message.payload)
        elif type_id == MessageType.WINDOW_ACK_SIZE:
            window = parse_u32(message.payload)
            if window:
                self._ack_window = window
        elif type_id in (MessageType.ACK, MessageType.SET_PEER_BANDWIDTH):
            pass  # clients' acks and bandwidth hints need no answer
        elif type_id == MessageType.AGGREGATE:
            self._drop("aggregate", "aggregate messages are not supported")
        else:
            self._drop("unknown_message", f"message type {type_id}")

    # ---- media -----------------------------------------------------------------------

    def _video(self, message: RawMessage) -> None:
        try:
            tag = parse_video(message.payload)
        except FlvError as exc:
            self._drop("flv", str(exc))
            return
        packet_type = tag.packet_type
        if packet_type in _CODED_VIDEO and not tag.is_command:
            if tag.codec != self.video_codec:
                self._drop("no_sequence_header", f"{tag.codec} frame before its sequence header")
                return
            dts = self._video_clock.unwrap(message.timestamp)
            self._events.append(MediaUnit(_VIDEO, dts, dts + tag.composition_time,
                                          tag.keyframe, tag.body.tobytes()))
        elif packet_type == _VIDEO_CONFIG:
            config = tag.body.tobytes()
            # FFmpeg's AV1 muxer first sends an empty SequenceStart, then the real av1C.
            if config and (config != self._video_config or tag.codec != self.video_codec):
                self.video_codec = tag.codec
                self._video_config = config
                self._events.append(self._codec_configured(_VIDEO, tag.codec, config))
        # SequenceEnd, Metadata (colour info) and command frames carry no picture.

    def _audio(self, message: RawMessage) -> None:
        try:
            tag = parse_audio(message.payload)
        except FlvError as exc:
            self._drop("flv", str(exc))
            return
        codec = tag.codec
        if tag.packet_type == _AUDIO_CODED:
            if codec != self.audio_codec:
                if codec not in _AUDIO_WITHOUT_CONFIG:
                    self._drop("no_sequence_header", f"{codec} frame before its sequence header")
                    return
                self.audio_codec = codec
                self._audio_config = b""
                self._events.append(CodecConfigured(_AUDIO, codec, b""))
            dts = self._audio_clock.unwrap(message.timestamp)
            self._events.append(MediaUnit(_AUDIO, dts, dts, True, tag.body.tobytes()))
        elif tag.packet_type == _AUDIO_CONFIG:
            config = tag.body.tobytes()
            if config and (config != self._audio_config or codec != self.audio_codec):
                self.audio_codec = codec
                self._audio_config = config
                self._events.append(self._codec_configured(_AUDIO, codec, config))

    def _codec_configured(self, kind: TrackKind, codec: str, config: bytes) -> CodecConfigured:
        describe = CODEC_STRINGS.get(codec)
        codec_string = ""
        if describe is not None:
            try:
                codec_string = describe(config)
            except (ValueError, IndexError):  # CodecConfigError is a ValueError
                self._drop("codec_config", f"unreadable {codec} configuration record")
        return CodecConfigured(kind, codec, config, codec_string)

    # ---- commands --------------------------------------------------------------------

    def _command(self, message: RawMessage) -> None:
        values = amf0.decode_all(message.payload)
        if not values or not isinstance(values[0], str):
            raise AmfError("command message without a command name")
        name = values[0]
        txn = values[1] if len(values) > 1 and isinstance(values[1], float | int) else 0
        args = values[2:]
        if name == "connect":
            self._connect(txn, args)
            return
        if self.state is _AWAIT_CONNECT:
            raise ProtocolError(f"{name[:64]!r} before connect", kind="sequence")
        if name == "createStream":
            self._create_stream(txn)
        elif name == "publish":
            self._publish(message.stream_id, args)
        elif name in ("FCUnpublish", "closeStream"):
            self._stop_publish(name)
        elif name == "deleteStream":
            # GStreamer's rtmp2sink puts the stream *name* here instead of the id.
            target = args[1] if len(args) > 1 else None
            stream_id = int(target) if isinstance(target, float | int) and math.isfinite(
                target) else None
            if stream_id is None or stream_id == self.publishing_stream:
                self._stop_publish(name)
            self._streams.discard(stream_id if stream_id is not None else -1)
        elif name in ("play", "play2"):
            self._transition(Trigger.PLAY)
            self._status(message.stream_id, "error", "NetStream.Play.Failed",
                         "golive serves playback over HLS, not RTMP")
            self._events.append(PlayRequested(message.stream_id))
        elif name in ("releaseStream", "FCPublish", "getStreamLength", "_checkbw"):
            pass  # nginx-rtmp leaves these unanswered and every encoder copes
        elif txn:
            self._send_command(0, "_error", txn, None, {
                "level": "error", "code": "NetConnection.Call.Failed",
                "description": f"unknown command {name!r}"})

    def _connect(self, txn: float | int, args: list[amf0.AmfValue]) -> None:
        props = args[0] if args and isinstance(args[0], dict) else {}
        app = str(props.get("app", "")).split("?", 1)[0].strip("/")
        served = app in self.config.apps
        # A second connect is the peer's ProtocolError, from the table.
        self._transition(Trigger.CONNECT if served else Trigger.CONNECT_REFUSED)
        tc_url = str(props.get("tcUrl", ""))
        flash_ver = str(props.get("flashVer", ""))
        fourccs = props.get("fourCcList")
        fourcc_list = tuple(str(x) for x in fourccs) if isinstance(fourccs, list) else ()
        self.app = app
        if not served:
            self._send_command(0, "_error", txn, None, {
                "level": "error", "code": "NetConnection.Connect.Rejected",
                "description": f"unknown application {app[:64]!r}"})
            self._events.append(ConnectRejected(app, tc_url))
            return
        self._send(CSID_CONTROL, MessageType.WINDOW_ACK_SIZE, 0, u32(self.config.window_ack_size))
        self._send(CSID_CONTROL, MessageType.SET_PEER_BANDWIDTH, 0,
                   set_peer_bandwidth(self.config.window_ack_size, PeerBandwidthLimit.DYNAMIC))
        self._send(CSID_CONTROL, MessageType.SET_CHUNK_SIZE, 0, u32(SERVER_CHUNK_SIZE))
        self._writer.chunk_size = SERVER_CHUNK_SIZE
        self._send_command(0, "_result", txn,
                           {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
                           {"level": "status", "code": "NetConnection.Connect.Success",
                            "description": "Connection succeeded.", "objectEncoding": 0.0})
        self._events.append(Connected(app, tc_url, flash_ver, fourcc_list))

    def _create_stream(self, txn: float | int) -> None:
        if len(self._streams) >= MAX_STREAMS_PER_CONNECTION:
            raise ProtocolError("too many createStream calls", kind="streams")
        stream_id = self._next_stream_id
        self._next_stream_id += 1
        self._streams.add(stream_id)
        # FFmpeg requires exactly this shape: _result, txn, Null, Number.
        self._send_command(0, "_result", txn, None, float(stream_id))

    def _publish(self, stream_id: int, args: list[amf0.AmfValue]) -> None:
        name = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
        publish_type = args[2] if len(args) > 2 and isinstance(args[2], str) else "live"
        key, _, query = name.partition("?")
        # A publish while one is requested or live is the peer's ProtocolError, from the table.
        if not key:
            # Refused here, never shown to the application: no answer is owed for it.
            self._transition(Trigger.PUBLISH_REFUSED)
            self._status(stream_id, "error", "NetStream.Publish.BadName", "empty stream key")
            return
        self._transition(Trigger.PUBLISH)
        self.publishing_stream = stream_id
        self._unanswered.append(stream_id)
        self._chunks.limits = self.config.chunk_limits
        # Each publication starts from its own sequence headers and clock: an encoder that
        # republishes on the same connection resends identical headers that must count.
        self.video_codec = self.audio_codec = None
        self._video_config = self._audio_config = b""
        self._video_clock = TimestampUnwrapper()
        self._audio_clock = TimestampUnwrapper()
        self._events.append(PublishRequested(stream_id, key, publish_type, query))

    def _stop_publish(self, reason: str) -> None:
        state = self.state
        stream_id = self.publishing_stream
        if stream_id is None:  # nothing requested or live: nothing to stop
            return
        self._transition(Trigger.UNPUBLISH)
        # The handshake deadline starts again: a republish gets the same time as the first.
        self._awaiting_publish_since = self._last_rx
        if state is _PUBLISHING:  # only an accepted publication was ever started
            self._status(stream_id, "status", "NetStream.Unpublish.Success", "Stop publishing")
        self._events.append(PublishStopped(stream_id, reason))

    def _data(self, message: RawMessage) -> None:
        # GStreamer's flvmux re-sends identical metadata ~8 times a second: skip the decode.
        if message.payload == self._last_data:
            return
        self._last_data = message.payload
        try:
            values = amf0.decode_all(message.payload)
        except AmfError as exc:
            self._drop("metadata", str(exc))
            return
        if values and values[0] == "@setDataFrame":
            values = values[1:]
        if len(values) >= 2 and values[0] == "onMetaData" and isinstance(values[1], dict):
            self._events.append(MetadataReceived(message.stream_id, dict(values[1])))

    def _user_control(self, payload: bytes) -> None:
        parsed = parse_user_control(payload)
        if parsed is None:
            self._drop("user_control", "user control message too short")
        elif parsed[0] == UserControl.PING_REQUEST:
            self._send(CSID_CONTROL, MessageType.USER_CONTROL, 0,
                       user_control(UserControl.PING_RESPONSE, parsed[1]))

    def _drop(self, kind: str, reason: str) -> None:
        self._events.append(MessageDropped(kind, reason))

    # ---- application decisions ---------------------------------------------------------

    def _answer(self, stream_id: int) -> bool:
        """Take the oldest unanswered request, which must be on `stream_id`; True if it is
        the current publication's (else that publication already ended, or a newer one
        followed it in the same read, and the answer changes no state)."""
        if self.state is _CLOSED:
            raise LocalProtocolError("publish answered after the connection closed")
        unanswered = self._unanswered
        if not unanswered or unanswered[0] != stream_id:
            raise LocalProtocolError(f"no publish pending on stream {stream_id}")
        unanswered.popleft()
        return not unanswered and self.state is _PUBLISH_REQUESTED

    def accept_publish(self, stream_id: int, description: str = "Start publishing") -> None:
        """Answer the oldest PublishRequested not yet answered (the application answers them
        in order). The decision may come after events that followed the request in the same
        read (a pipelining client's whole session can arrive at once): the request is still
        answered even if its publication already stopped (its PublishStopped is queued)."""
        if self._answer(stream_id):
            self._transition(Trigger.ACCEPT)
        self._send(CSID_CONTROL, MessageType.USER_CONTROL, 0,
                   user_control(UserControl.STREAM_BEGIN, stream_id))
        self._status(stream_id, "status", "NetStream.Publish.Start", description)

    def reject_publish(self, stream_id: int, code: str, description: str) -> None:
        """Refuse with level "error" (OBS aborts on it) and ask to close: librtmp ignores
        the status and would otherwise wait ~30 s on an open socket."""
        self._answer(stream_id)
        self._transition(Trigger.REJECT)
        self._status(stream_id, "error", code, description)

    def send_ping(self, timestamp: int) -> None:
        """Keepalive probe; a live client answers with a ping response."""
        self._send(CSID_CONTROL, MessageType.USER_CONTROL, 0,
                   user_control(UserControl.PING_REQUEST, timestamp))

    # ---- deadlines ---------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When handle_timer must next be called, on the clock of `now`; None: never."""
        state = self.state
        if state is _MUST_CLOSE or state is _CLOSED:
            return None  # the application closes the connection anyway
        config = self.config
        deadline: float | None = None
        if config.idle_timeout is not None:
            deadline = self._last_rx + config.idle_timeout
        if config.handshake_timeout is not None and state is not _PUBLISHING:
            handshake = self._awaiting_publish_since + config.handshake_timeout
            if deadline is None or handshake < deadline:
                deadline = handshake
        return deadline

    def handle_timer(self, now: float) -> list[Event]:
        """Check the deadlines at `now`. When one has passed the core closes and returns a
        TimedOut; otherwise nothing happens (a deadline may have moved on since the timer
        was armed: ask next_deadline() again)."""
        state = self.state
        if state is _MUST_CLOSE or state is _CLOSED:
            return []
        config = self.config
        handshake, idle = config.handshake_timeout, config.idle_timeout
        if handshake is not None and state is not _PUBLISHING \
                and now >= self._awaiting_publish_since + handshake:
            event = TimedOut("timeout", f"no publish within {handshake:g} s")
        elif idle is not None and now >= self._last_rx + idle:
            event = TimedOut("idle", f"nothing received for {idle:g} s")
        else:
            return []
        self._transition(Trigger.TIMEOUT)
        return [event]

    # ---- output ------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        out, self._out = self._out, []
        return b"".join(out)

    def _send(self, csid: int, type_id: int, stream_id: int, payload: bytes) -> None:
        self._out.append(self._writer.encode(csid, 0, type_id, stream_id, payload))

    def _send_command(self, stream_id: int, *values: object) -> None:
        self._send(CSID_COMMAND, MessageType.COMMAND_AMF0, stream_id, amf0.encode(*values))

    def _status(self, stream_id: int, level: str, code: str, description: str) -> None:
        # Null, never Undefined, for the command object: FFmpeg cannot skip Undefined.
        payload = amf0.encode("onStatus", 0.0, None,
                              {"level": level, "code": code, "description": description})
        self._send(CSID_STATUS, MessageType.COMMAND_AMF0, stream_id, payload)

