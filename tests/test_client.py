"""The sans-IO publishing client against golive's own server core, in memory (no sockets).

A `Link` wires a `PublishClient` to a `ServerConnection`, plays the application's part (accept
or reject a publish), and taps everything the client writes with an independent chunk decoder,
so the tests check the client's wire behaviour (FFmpeg's command sequence, pings, acks) as well
as the server's replies. Expected media units are computed from the raw FLV tag bytes and the
encoder's packets, not with golive's FLV parser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from publishers import Clip, FlvTag, encode_clip

from golive.ingest import amf0
from golive.ingest.chunk import ChunkDecoder, ChunkEncoder, RawMessage
from golive.ingest.client import (
    DEFAULT_FLASH_VER,
    CallFailed,
    ConnectResult,
    PublishClient,
    PublishStatus,
    StreamCreated,
)
from golive.ingest.connection import ConnectionConfig, ServerConnection
from golive.ingest.errors import HandshakeError, LocalProtocolError
from golive.ingest.events import (
    CodecConfigured,
    Connected,
    HandshakeComplete,
    MetadataReceived,
    PublishRequested,
    PublishStopped,
)
from golive.ingest.messages import MessageType, UserControl
from golive.media import MediaUnit, TrackKind

KEY = "s3cr3t-key"
TC_URL = "rtmp://127.0.0.1:1935/live"
HANDSHAKE_BYTES = 1 + 2 * 1536  # C0 C1 C2 precede the client's chunk stream

Decide = Callable[[ServerConnection, PublishRequested], None]


def accept(server: ServerConnection, request: PublishRequested) -> None:
    server.accept_publish(request.stream_id)


def whole(data: bytes) -> Iterator[bytes]:
    yield data


class Link:
    def __init__(self, client: PublishClient | None = None, server: ServerConnection | None = None,
                 decide: Decide = accept,
                 split: Callable[[bytes], Iterable[bytes]] = whole) -> None:
        self.client = client or PublishClient("live", KEY, TC_URL)
        self.server = server or ServerConnection()
        self.decide = decide
        self.split = split
        self.client_events: list[Any] = []
        self.server_events: list[Any] = []
        self.sent: list[RawMessage] = []  # every message the client wrote, decoded by the tap
        self._tap = ChunkDecoder()
        self._tap_skip = HANDSHAKE_BYTES

    def pump(self) -> None:
        """Move bytes both ways until neither side has anything left to say."""
        while True:
            out = self.client.data_to_send()
            back = b""
            if out:
                self._to_server(out)
            back = self.server.data_to_send()
            if back:
                for piece in self.split(back):
                    self.client_events.extend(self.client.receive_data(piece))
            if not out and not back:
                return

    def _to_server(self, data: bytes) -> None:
        skip = min(self._tap_skip, len(data))
        self._tap_skip -= skip
        self.sent.extend(self._tap.feed(data[skip:]))
        for piece in self.split(data):
            for event in self.server.receive_data(piece):
                self.server_events.append(event)
                if isinstance(event, PublishRequested):
                    self.decide(self.server, event)

    def commands(self) -> list[list[Any]]:
        return [amf0.decode_all(m.payload) for m in self.sent
                if m.type_id == MessageType.COMMAND_AMF0]

    def units(self) -> list[MediaUnit]:
        return [e for e in self.server_events if isinstance(e, MediaUnit)]

    def send(self, tags: Iterable[FlvTag]) -> None:
        for tag in tags:
            self.client.send_flv_tag(tag.type, tag.timestamp, tag.body)
        self.pump()


def published_link(**kwargs: Any) -> Link:
    link = Link(**kwargs)
    link.pump()
    assert link.client.published, link.client_events
    return link


def expected_units(tags: Iterable[FlvTag]) -> list[MediaUnit]:
    """The units an ingest must produce from legacy AVC/AAC tags, straight from the bytes."""
    units = []
    for tag in tags:
        if tag.is_coded_video:
            composition = int.from_bytes(tag.body[2:5], "big", signed=True)
            units.append(MediaUnit(TrackKind.VIDEO, tag.timestamp, tag.timestamp + composition,
                                   tag.body[0] >> 4 == 1, tag.body[5:]))
        elif tag.is_coded_audio:
            units.append(MediaUnit(TrackKind.AUDIO, tag.timestamp, tag.timestamp, True,
                                   tag.body[2:]))
    return units


@pytest.fixture(scope="module")
def clip() -> Clip:
    return encode_clip(2.0, 320, 240)


# --- the publish flow ---------------------------------------------------------------------


def test_publish_flow_runs_ffmpegs_command_sequence() -> None:
    link = published_link()

    assert link.client_events == [
        ConnectResult("NetConnection.Connect.Success", "status", "Connection succeeded."),
        StreamCreated(1),
        PublishStatus("status", "NetStream.Publish.Start", "Start publishing"),
    ]
    assert link.server_events == [
        HandshakeComplete(digest=True),
        Connected("live", TC_URL, DEFAULT_FLASH_VER),
        PublishRequested(1, KEY, "live"),
    ]
    assert [c[:2] for c in link.commands()] == [
        ["connect", 1.0], ["releaseStream", 2.0], ["FCPublish", 3.0], ["createStream", 4.0],
        ["publish", 5.0],
    ]
    connect, release, fcpublish, _, publish = link.commands()
    assert connect[2] == {"app": "live", "type": "nonprivate", "flashVer": DEFAULT_FLASH_VER,
                          "tcUrl": TC_URL}
    assert release[2:] == fcpublish[2:] == [None, KEY]
    assert publish[2:] == [None, KEY, "live"]
    publish_message = next(m for m in link.sent if m.type_id == MessageType.COMMAND_AMF0
                           and amf0.decode_all(m.payload)[0] == "publish")
    assert (publish_message.csid, publish_message.stream_id) == (8, 1)
    # Set Chunk Size went out after connect's _result, before the first releaseStream byte.
    assert link._tap.chunk_size == 4096
    assert link.client.stream_id == 1


@pytest.mark.parametrize("digest", [True, False])
def test_handshake_styles(digest: bool) -> None:
    link = published_link(client=PublishClient("live", KEY, TC_URL, digest=digest))
    assert link.server_events[0] == HandshakeComplete(digest=digest)
    # golive answers a digest C1 with a digest S1/S2 that FFmpeg (as a player) would accept.
    assert link.client.server_digest is digest


def test_byte_by_byte_both_ways(clip: Clip) -> None:
    def one_byte(data: bytes) -> Iterator[bytes]:
        return (data[i : i + 1] for i in range(len(data)))

    link = published_link(split=one_byte)
    link.send(clip.tags[:12])
    assert link.units() == expected_units(clip.tags[:12])


@pytest.mark.parametrize(("code", "description"), [
    ("NetStream.Publish.BadName", "publish refused: unknown stream key"),
    ("NetStream.Publish.Denied", "publish refused: webhook answered HTTP 403"),
])
def test_refused_publish_is_reported_exactly(code: str, description: str) -> None:
    def refuse(server: ServerConnection, request: PublishRequested) -> None:
        server.reject_publish(request.stream_id, code, description)

    link = Link(decide=refuse)
    link.pump()

    assert link.client_events[-1] == PublishStatus("error", code, description)
    assert not link.client.published
    assert link.server.close_requested
    with pytest.raises(LocalProtocolError):
        link.client.send_video(0, b"\x17\x01\x00\x00\x00")


def test_empty_key_is_refused_by_the_core() -> None:
    link = Link(client=PublishClient("live", "", TC_URL))
    link.pump()
    assert link.client_events[-1] == PublishStatus("error", "NetStream.Publish.BadName",
                                                   "empty stream key")
    assert not any(isinstance(e, PublishRequested) for e in link.server_events)


def test_unknown_application_stops_before_create_stream() -> None:
    link = Link(client=PublishClient("vod", KEY, "rtmp://127.0.0.1/vod"))
    link.pump()
    [result] = link.client_events
    assert isinstance(result, ConnectResult) and not result.ok
    assert (result.level, result.code) == ("error", "NetConnection.Connect.Rejected")
    assert [c[0] for c in link.commands()] == ["connect"]  # nothing sent after the refusal
    assert link.server.close_requested


def test_unpublish_like_ffmpeg() -> None:
    link = published_link()
    link.client.unpublish()
    link.pump()
    assert [c[0] for c in link.commands()][-2:] == ["FCUnpublish", "deleteStream"]
    assert link.commands()[-1][2:] == [None, 1.0]
    assert PublishStopped(1, "FCUnpublish") in link.server_events
    assert link.client_events[-1] == PublishStatus("status", "NetStream.Unpublish.Success",
                                                   "Stop publishing")
    with pytest.raises(LocalProtocolError):
        link.client.send_audio(0, b"\xaf\x01\x00")


def test_republish_on_the_same_connection(clip: Clip) -> None:
    link = published_link()
    link.client.unpublish()
    link.pump()
    link.client.republish()
    link.pump()
    assert link.client_events[-2:] == [
        StreamCreated(2), PublishStatus("status", "NetStream.Publish.Start", "Start publishing")]
    assert link.server_events[-1] == PublishRequested(2, KEY, "live")
    assert [c[0] for c in link.commands()][-2:] == ["createStream", "publish"]
    link.send(clip.tags[:12])
    assert link.units() == expected_units(clip.tags[:12])
    with pytest.raises(LocalProtocolError):
        link.client.republish()  # only after an unpublish


def test_media_and_unpublish_need_a_publish() -> None:
    client = PublishClient("live", KEY, TC_URL)
    with pytest.raises(LocalProtocolError):
        client.send_video(0, b"\x17\x01\x00\x00\x00")
    with pytest.raises(LocalProtocolError):
        client.send_metadata({"width": 1.0})
    with pytest.raises(LocalProtocolError):
        client.unpublish()


# --- media ----------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [128, 4096, 1 << 20])
def test_media_round_trip(clip: Clip, chunk_size: int) -> None:
    link = published_link(client=PublishClient("live", KEY, TC_URL, chunk_size=chunk_size))
    link.send(clip.tags)

    video_header = next(t for t in clip.tags if t.type == 9)
    audio_header = next(t for t in clip.tags if t.type == 8)
    configs = [e for e in link.server_events if isinstance(e, CodecConfigured)]
    assert [(c.kind, c.codec, c.extradata) for c in configs] == [
        (TrackKind.VIDEO, "h264", video_header.body[5:]),
        (TrackKind.AUDIO, "aac", audio_header.body[2:]),
    ]
    avcc = video_header.body[5:]
    assert configs[0].codec_string == f"avc1.{avcc[1]:02X}{avcc[2]:02X}{avcc[3]:02X}"
    assert configs[1].codec_string == "mp4a.40.2"
    [metadata] = [e for e in link.server_events if isinstance(e, MetadataReceived)]
    assert metadata.values == clip.metadata

    units = link.units()
    assert units == expected_units(clip.tags)
    # ... and they are what the encoders produced, one unit per packet.
    video = [u for u in units if u.kind is TrackKind.VIDEO]
    audio = [u for u in units if u.kind is TrackKind.AUDIO]
    assert [u.data for u in video] == clip.encoded.video_units
    assert [u.data for u in audio] == clip.encoded.audio_units
    assert [u.keyframe for u in video] == [p.keyframe for p in clip.encoded.video]
    assert any(u.pts > u.dts for u in video)  # B-frames: composition times made it through


@pytest.mark.parametrize("chunk_size", [128, 4096])
def test_extended_and_wrapping_timestamps(clip: Clip, chunk_size: int) -> None:
    """Extended timestamps (>= 2^24 ms, repeated on type 3 chunks like FFmpeg) and 32-bit
    wrap-around come out of the server as the unwrapped times the client was given."""
    link = published_link(client=PublishClient("live", KEY, TC_URL, chunk_size=chunk_size))
    header = next(t for t in clip.tags if t.type == 9)
    frame = next(t for t in clip.tags if t.is_coded_video).body  # ~2 KB: several chunks at 128
    link.send([header])
    times = [0, 0xFFFFF0, 0x1000010, 0x80000000, 0xFFFFFF00, (1 << 32) + 40, (1 << 32) + 80]
    for ms in times:
        link.client.send_video(ms, frame)
    link.pump()
    assert [u.dts for u in link.units()] == times


def test_answers_pings() -> None:
    link = published_link()
    link.server.send_ping(123456)
    link.pump()
    pongs = [m for m in link.sent if m.type_id == MessageType.USER_CONTROL]
    assert [m.payload for m in pongs] == [
        UserControl.PING_RESPONSE.to_bytes(2, "big") + (123456).to_bytes(4, "big")]


def test_acknowledges_the_server_window() -> None:
    server = ServerConnection(ConnectionConfig(window_ack_size=1000))
    link = published_link(server=server)
    acks = [int.from_bytes(m.payload, "big") for m in link.sent
            if m.type_id == MessageType.ACK]
    # S0 S1 S2 alone cross a 1000-byte window, so the ack follows the Window Ack Size.
    assert acks and acks[0] > HANDSHAKE_BYTES - 1
    assert acks == sorted(acks) and acks[-1] <= link.client.bytes_received


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 700), min_size=1, max_size=40))
def test_split_anywhere_changes_nothing(sizes: list[int]) -> None:
    clip = encode_clip(2.0, 320, 240)
    tags = clip.tags[:20]

    def pieces(data: bytes) -> Iterator[bytes]:
        pos, index = 0, 0
        while pos < len(data):
            size = sizes[index % len(sizes)]
            yield data[pos : pos + size]
            pos += size
            index += 1

    link = published_link(split=pieces)
    link.send(tags)
    assert link.units() == expected_units(tags)
    assert [type(e) for e in link.client_events] == [ConnectResult, StreamCreated,
                                                      PublishStatus]


# --- misbehaving servers ------------------------------------------------------------------


def test_bad_server_version_byte() -> None:
    client = PublishClient("live", KEY, TC_URL)
    with pytest.raises(HandshakeError):
        client.receive_data(b"\x06" + bytes(100))
    with pytest.raises(LocalProtocolError):
        client.receive_data(b"\x03")


def test_create_stream_error_is_an_event() -> None:
    """A server answering createStream with _error (golive never does; others can)."""
    client = PublishClient("live", KEY, TC_URL)
    client.data_to_send()
    writer = ChunkEncoder()
    reply = bytes([3]) + bytes(2 * 1536)
    reply += writer.encode(3, 0, 20, 0, amf0.encode(
        "_result", 1.0, None, {"level": "status", "code": "NetConnection.Connect.Success"}))
    reply += writer.encode(3, 0, 20, 0, amf0.encode(
        "_error", 4.0, None, {"level": "error", "code": "NetConnection.Call.Failed",
                              "description": "no streams left"}))
    events = client.receive_data(reply)
    assert events[-1] == CallFailed("createStream", "NetConnection.Call.Failed",
                                    "no streams left")
    assert client.stream_id is None and not client.published


def test_key_stays_out_of_repr() -> None:
    link = published_link()
    assert KEY not in repr(link.client)
