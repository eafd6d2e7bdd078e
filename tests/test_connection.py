"""The sans-IO session core against hand-built publishers (handshake helpers + ChunkEncoder +
amf0), one protocol situation per test. Expected replies follow CONFORMANCE.md (RTMP part),
which cites the RTMP 1.0 spec, FFmpeg, OBS, nginx-rtmp and GStreamer.
"""

from __future__ import annotations

import contextlib
import math

import pytest
from capture_expectations import SET_CHUNK_SIZE, Client, Reply

from golive.ingest import amf0
from golive.ingest.connection import ConnectionConfig, ServerConnection
from golive.ingest.errors import LocalProtocolError, ProtocolError
from golive.ingest.events import (
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
)
from golive.media import MediaUnit, TrackKind

AUDIO, VIDEO, DATA, COMMAND = 8, 9, 18, 20
USER_CONTROL, ACK, WINDOW_ACK_SIZE, SET_PEER_BANDWIDTH = 4, 3, 5, 6

# An AVCDecoderConfigurationRecord by hand: version 1, High profile (0x64), constraints 0,
# level 3.1 (0x1F), 4-byte NAL lengths, one SPS, one PPS.
SPS = bytes.fromhex("6764001facd9405005bb016a02020280")
PPS = bytes.fromhex("68efbcb0")
AVCC = (bytes((1, 0x64, 0x00, 0x1F, 0xFF, 0xE1)) + len(SPS).to_bytes(2, "big") + SPS
        + b"\x01" + len(PPS).to_bytes(2, "big") + PPS)
AVC_SEQUENCE_HEADER = b"\x17\x00\x00\x00\x00" + AVCC
NALU = b"\x00\x00\x00\x05\x65\x88\x84\x00\x10"
ASC = bytes((0x12, 0x10))  # AAC-LC, 44.1 kHz, stereo
AAC_SEQUENCE_HEADER = b"\xaf\x00" + ASC


def ct24(value: int) -> bytes:
    return (value & 0xFFFFFF).to_bytes(3, "big")


def avc_frame(keyframe: bool, ct: int = 0, body: bytes = NALU) -> bytes:
    return bytes((0x17 if keyframe else 0x27, 1)) + ct24(ct) + body


def units(events: list[Event], kind: TrackKind | None = None) -> list[MediaUnit]:
    return [e for e in events if isinstance(e, MediaUnit) and (kind is None or e.kind is kind)]


def of_type(events: list[Event], cls: type) -> list:
    return [e for e in events if isinstance(e, cls)]


def commands(replies: list[Reply]) -> list[tuple[Reply, list[object]]]:
    return [(r, r.values()) for r in replies if r.type_id == COMMAND]


def statuses(replies: list[Reply]) -> list[tuple[int, dict]]:
    """(message stream id, info object) of every onStatus."""
    out = []
    for reply, values in commands(replies):
        if values[0] == "onStatus":
            assert values[1] == 0.0 and values[2] is None  # txn 0, Null command object
            assert isinstance(values[3], dict)
            out.append((reply.stream_id, values[3]))
    return out


# --- handshake and connect -----------------------------------------------------------------


@pytest.mark.parametrize("digest", [False, True])
def test_handshake_completes(digest: bool) -> None:
    client = Client(digest=digest)
    assert of_type(client.events, HandshakeComplete) == [HandshakeComplete(digest=digest)]


@pytest.mark.parametrize("txn", [1.0, 7.0])
def test_connect_success(txn: float) -> None:
    client = Client()
    events = client.connect(txn=txn, fourCcList=["hvc1", "av01"])
    assert of_type(events, Connected) == [
        Connected("live", "rtmp://127.0.0.1/live", "FMLE/3.0 (compatible; test)",
                  ("hvc1", "av01"))]
    replies = client.replies()
    kinds = [r.type_id for r in replies]
    assert kinds[:3] == [WINDOW_ACK_SIZE, SET_PEER_BANDWIDTH, SET_CHUNK_SIZE] or kinds[:4] == [
        WINDOW_ACK_SIZE, SET_PEER_BANDWIDTH, USER_CONTROL, SET_CHUNK_SIZE]
    assert replies[0].u32() == 5_000_000  # the default window, as nginx-rtmp and FMS announce
    assert replies[1].u32() == 5_000_000
    (reply, values), = commands(replies)
    assert reply is replies[-1]
    assert values[0] == "_result" and values[1] == txn  # the SAME transaction id
    assert isinstance(values[2], dict) and values[2]["capabilities"] == 31.0
    assert isinstance(values[3], dict)
    assert values[3]["code"] == "NetConnection.Connect.Success"
    assert values[3]["level"] == "status"
    assert values[3]["objectEncoding"] == 0.0
    assert not client.conn.close_requested


def test_connect_without_flashver() -> None:
    client = Client()
    events = client.command("connect", 1.0, {"app": "live", "tcUrl": "rtmp://h/live"})
    assert of_type(events, Connected) == [Connected("live", "rtmp://h/live", "")]


def test_connect_to_unknown_app_is_rejected_and_closed() -> None:
    client = Client()
    events = client.connect(app="vod", txn=1.0)
    assert of_type(events, ConnectRejected) == [ConnectRejected("vod")]
    assert of_type(events, Connected) == []
    (_, values), = commands(client.replies())
    assert values[0] == "_error" and values[1] == 1.0
    assert isinstance(values[3], dict)
    assert values[3]["code"] == "NetConnection.Connect.Rejected"
    assert values[3]["level"] == "error"
    assert client.conn.close_requested


def test_configured_apps() -> None:
    client = Client(ConnectionConfig(apps=frozenset({"ingest"})))
    assert of_type(client.connect(app="ingest"), Connected)
    client = Client(ConnectionConfig(apps=frozenset({"ingest"})))
    assert of_type(client.connect(app="live"), ConnectRejected)


def test_second_connect_is_a_protocol_error() -> None:
    client = Client()
    client.connect()
    with pytest.raises(ProtocolError):
        client.connect()
    # The core is unusable afterwards; feeding it more is the application's bug.
    with pytest.raises(LocalProtocolError):
        client.conn.receive_data(b"\x03")


@pytest.mark.parametrize("name", ["createStream", "publish", "releaseStream", "FCPublish",
                                  "deleteStream", "play"])
def test_commands_before_connect_are_protocol_errors(name: str) -> None:
    client = Client()
    with pytest.raises(ProtocolError):
        client.command(name, 2.0, None, "key")


@pytest.mark.parametrize("connected", [False, True])
@pytest.mark.parametrize("type_id", [15, 17])
def test_amf3_messages_are_refused(type_id: int, connected: bool) -> None:
    client = Client()
    if connected:
        client.connect()
    # An AMF3 command starts with a 0x00 format byte, then AMF0 values.
    payload = b"\x00" + amf0.encode("connect", 1.0, {"app": "live"})
    with pytest.raises(ProtocolError) as info:
        client.send(3, 0, type_id, 0, payload)
    assert info.value.kind == "amf3"


def test_command_without_a_name_is_a_protocol_error() -> None:
    client = Client()
    client.connect()
    with pytest.raises(ProtocolError):
        client.send(3, 0, COMMAND, 0, amf0.encode(1.0, None))


def test_truncated_amf_command_is_a_protocol_error() -> None:
    client = Client()
    client.connect()
    with pytest.raises(ProtocolError):
        client.send(3, 0, COMMAND, 0, amf0.encode("createStream", 2.0)[:-3])


# --- control messages -----------------------------------------------------------------------


def test_ping_request_is_answered_with_the_same_value() -> None:
    client = Client()
    client.connect()
    client.replies()
    client.send(2, 0, USER_CONTROL, 0, bytes.fromhex("0006 deadbeef"))
    (reply,) = client.replies()
    assert reply.type_id == USER_CONTROL and reply.stream_id == 0
    assert reply.payload == bytes.fromhex("0007 deadbeef")


def test_short_user_control_is_dropped_not_fatal() -> None:
    client = Client()
    client.connect()
    events = client.send(2, 0, USER_CONTROL, 0, b"\x00\x06")
    assert [e.kind for e in of_type(events, MessageDropped)] == ["user_control"]


def test_send_ping() -> None:
    client = Client()
    client.connect()
    client.replies()
    client.conn.send_ping(1234)
    (reply,) = client.replies()
    assert reply.type_id == USER_CONTROL and reply.payload == bytes.fromhex("0006 000004d2")


def test_acknowledgement_after_each_window() -> None:
    window = 10_000
    client = Client(ConnectionConfig(window_ack_size=window))
    client.connect()
    client.replies()
    acks: list[int] = []
    sent = 0
    while sent < 5 * window:
        data = client.encoder.encode(3, 0, DATA, 0, amf0.encode("onTextData", "x" * 900))
        client.send_raw(data)
        sent += len(data)
        acks += [r.u32() for r in client.replies() if r.type_id == ACK]
        if acks:
            assert client.conn.bytes_received - acks[-1] < window
    assert len(acks) >= 4
    previous = 0
    for seq in acks:
        assert seq - previous >= window  # one per window, not more often
        assert seq <= client.conn.bytes_received
        previous = seq


def test_client_window_ack_size_is_honoured() -> None:
    client = Client(ConnectionConfig(window_ack_size=10_000))
    client.connect()
    client.send(2, 0, WINDOW_ACK_SIZE, 0, (50_000).to_bytes(4, "big"))
    client.replies()
    for _ in range(30):  # ~30 KB: over our window, under the client's
        client.send(3, 0, DATA, 0, amf0.encode("onTextData", "x" * 1000))
    assert [r for r in client.replies() if r.type_id == ACK] == []


# --- publish ----------------------------------------------------------------------------------


def test_create_stream_result_shape_and_ids() -> None:
    client = Client()
    client.connect()
    client.replies()
    client.command("createStream", 2.0, None)
    client.command("createStream", 3.0, None)
    results = [v for _, v in commands(client.replies())]
    assert results == [["_result", 2.0, None, 1.0], ["_result", 3.0, None, 2.0]]


def test_too_many_create_streams() -> None:
    client = Client()
    client.connect()
    with pytest.raises(ProtocolError):
        for txn in range(2, 1000):
            client.command("createStream", float(txn), None)


def test_publish_accept_sends_stream_begin_then_publish_start() -> None:
    client = Client()
    stream_id = client.publish("secret")
    requested = of_type(client.events, PublishRequested)
    assert requested == [PublishRequested(stream_id, "secret", "live")]
    replies = client.replies()
    begin = [i for i, r in enumerate(replies) if r.type_id == USER_CONTROL]
    assert begin
    assert replies[begin[0]].payload == b"\x00\x00" + stream_id.to_bytes(4, "big")
    status = [(i, r) for i, r in enumerate(replies) if r.type_id == COMMAND]
    (i, reply), = status
    assert i > begin[0]
    assert reply.stream_id == stream_id
    (_, info), = statuses([reply])
    assert info["code"] == "NetStream.Publish.Start" and info["level"] == "status"
    assert client.conn.publish_accepted


def test_publish_key_and_query_are_split() -> None:
    client = Client()
    client.publish("abc?token=xyz&x=1", accept=False)
    (request,) = of_type(client.events, PublishRequested)
    assert request.key == "abc"
    assert request.query == "token=xyz&x=1"
    assert "abc" not in repr(request) and "xyz" not in repr(request)  # secrets stay out of logs


def test_publish_with_an_empty_key_is_refused() -> None:
    client = Client()
    client.connect()
    client.command("createStream", 2.0, None)
    client.replies()
    events = client.command("publish", 3.0, None, "", "live", stream_id=1)
    assert of_type(events, PublishRequested) == []
    (sid, info), = statuses(client.replies())
    assert sid == 1 and info["level"] == "error" and info["code"] == "NetStream.Publish.BadName"
    assert client.conn.close_requested


def test_reject_publish() -> None:
    client = Client()
    stream_id = client.publish("bad", accept=False)
    client.replies()
    client.conn.reject_publish(stream_id, "NetStream.Publish.Denied", "no such key")
    (sid, info), = statuses(client.replies())
    assert sid == stream_id
    assert info["level"] == "error"
    assert info["code"] == "NetStream.Publish.Denied"
    assert client.conn.close_requested
    events = client.send(6, 0, VIDEO, stream_id, AVC_SEQUENCE_HEADER)
    assert units(events) == [] and of_type(events, CodecConfigured) == []


def test_accept_publish_misuse_is_a_local_error() -> None:
    client = Client()
    stream_id = client.publish("k")
    with pytest.raises(LocalProtocolError):
        client.conn.accept_publish(stream_id)  # twice
    client = Client()
    stream_id = client.publish("k", accept=False)
    with pytest.raises(LocalProtocolError):
        client.conn.accept_publish(stream_id + 1)


def test_second_publish_on_one_connection_is_a_protocol_error() -> None:
    client = Client()
    stream_id = client.publish("k")
    with pytest.raises(ProtocolError):
        client.command("publish", 9.0, None, "other", "live", stream_id=stream_id)


def test_accept_after_the_publish_already_stopped_in_the_same_read() -> None:
    """A pipelining client's whole session may arrive in one read: the application sees
    PublishRequested and PublishStopped together and still answers the request."""
    client = Client()
    client.connect()
    client.command("createStream", 2.0, None)
    data = client.encoder.encode(8, 0, COMMAND, 1, amf0.encode("publish", 3.0, None, "k", "live"))
    data += client.encoder.encode(3, 0, COMMAND, 0, amf0.encode("FCUnpublish", 4.0, None, "k"))
    events = client.send_raw(data)
    assert [type(e) for e in events] == [PublishRequested, PublishStopped]
    client.conn.accept_publish(1)  # must not raise
    codes = [info["code"] for _, info in statuses(client.replies())]
    assert "NetStream.Publish.Start" in codes


def _stop_and_start_in_one_read(client: Client, second_stream: int) -> list[object]:
    """publish on stream 1, FCUnpublish, publish on `second_stream`, in one read."""
    client.connect()
    client.command("createStream", 2.0, None)
    client.command("createStream", 3.0, None)
    encode = client.encoder.encode
    data = encode(8, 0, COMMAND, 1, amf0.encode("publish", 4.0, None, "k", "live"))
    data += encode(3, 0, COMMAND, 0, amf0.encode("FCUnpublish", 5.0, None, "k"))
    data += encode(8, 0, COMMAND, second_stream, amf0.encode("publish", 6.0, None, "k", "live"))
    return client.send_raw(data)


@pytest.mark.parametrize("second_stream", [1, 2])
def test_each_pipelined_publish_request_can_be_answered(second_stream: int) -> None:
    """publish, FCUnpublish, publish again in one read (a quick stop/start): the application
    answers each PublishRequested in order, as ingest/server.py does."""
    client = Client()
    events = _stop_and_start_in_one_read(client, second_stream)
    assert [type(e) for e in events] == [PublishRequested, PublishStopped, PublishRequested]
    for event in events:
        if isinstance(event, PublishRequested):
            client.conn.accept_publish(event.stream_id)  # must not raise
    starts = [sid for sid, info in statuses(client.replies())
              if info["code"] == "NetStream.Publish.Start"]
    assert starts == [1, second_stream]


@pytest.mark.parametrize("second_stream", [1, 2])
def test_answering_an_older_request_does_not_accept_the_newer_one(second_stream: int) -> None:
    """publish, FCUnpublish, publish again in one read: the first answer is for a publication
    that already ended, so the second stays unanswered, and stopping it before its answer is
    no Unpublish.Success (that would precede its Publish.Start)."""
    client = Client()
    _stop_and_start_in_one_read(client, second_stream)
    client.replies()
    client.conn.accept_publish(1)
    assert not client.conn.publish_accepted  # the newer request is not answered yet
    assert client.conn.publishing_stream == second_stream
    client.command("FCUnpublish", 7.0, None, "k")
    client.conn.accept_publish(second_stream)
    assert not client.conn.publish_accepted  # its publication ended before the answer
    assert [(sid, info["code"]) for sid, info in statuses(client.replies())] == [
        (1, "NetStream.Publish.Start"), (second_stream, "NetStream.Publish.Start")]


def test_an_empty_key_refusal_leaves_earlier_requests_answerable() -> None:
    """The core refuses a publish without a key by itself; the application never saw that
    request, so it must not use up the answer owed for an earlier one on the same stream."""
    client = Client()
    client.connect()
    client.command("createStream", 2.0, None)
    encode = client.encoder.encode
    data = encode(8, 0, COMMAND, 1, amf0.encode("publish", 3.0, None, "k", "live"))
    data += encode(3, 0, COMMAND, 0, amf0.encode("FCUnpublish", 4.0, None, "k"))
    data += encode(8, 0, COMMAND, 1, amf0.encode("publish", 5.0, None, "", "live"))
    events = client.send_raw(data)
    assert [type(e) for e in events] == [PublishRequested, PublishStopped]
    client.conn.accept_publish(1)  # must not raise
    assert [info["code"] for _, info in statuses(client.replies())] == [
        "NetStream.Publish.BadName", "NetStream.Publish.Start"]
    assert client.conn.close_requested


@pytest.mark.parametrize("command", [
    ["FCUnpublish", 6.0, None, "k"],
    ["deleteStream", 7.0, None, 1.0],
    ["deleteStream", 0.0, None, "k"],  # GStreamer rtmp2sink: the stream *name*
    ["closeStream", 0.0, None],
])
def test_unpublish_commands_end_the_publish(command: list[object]) -> None:
    client = Client()
    stream_id = client.publish("k")
    assert stream_id == 1
    client.replies()
    stream = stream_id if command[0] == "closeStream" else 0
    events = client.command(*command, stream_id=stream)
    assert of_type(events, PublishStopped) == [PublishStopped(stream_id, str(command[0]))]
    assert [info["code"] for _, info in statuses(client.replies())] == [
        "NetStream.Unpublish.Success"]
    # Then deleteStream after FCUnpublish does not stop it twice.
    assert of_type(client.command("deleteStream", 8.0, None, 1.0), PublishStopped) == []


def test_delete_stream_of_another_stream_does_not_stop_the_publish() -> None:
    client = Client()
    client.publish("k")
    assert of_type(client.command("deleteStream", 7.0, None, 5.0), PublishStopped) == []
    assert client.conn.publishing_stream == 1


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e300])
def test_delete_stream_with_a_strange_number_is_not_a_crash(value: float) -> None:
    """AMF0 numbers are doubles: NaN and infinities are valid wire values. Whatever the
    server does with them, only a ProtocolError may escape."""
    client = Client()
    client.publish("k")
    with contextlib.suppress(ProtocolError):
        client.command("deleteStream", 7.0, None, value)


def test_play_is_refused_and_closed() -> None:
    client = Client()
    client.connect()
    client.command("createStream", 2.0, None)
    client.replies()
    events = client.command("play", 3.0, None, "stream", -1000.0, csid=8, stream_id=1)
    assert of_type(events, PlayRequested) == [PlayRequested(1)]
    (sid, info), = statuses(client.replies())
    assert sid == 1
    assert info["level"] == "error" and info["code"] == "NetStream.Play.Failed"
    assert client.conn.close_requested


def test_unknown_command_with_a_transaction_gets_an_error() -> None:
    client = Client()
    client.connect()
    client.replies()
    client.command("getSomething", 5.0, None)
    (_, values), = commands(client.replies())
    assert values[0] == "_error" and values[1] == 5.0
    assert isinstance(values[3], dict) and values[3]["level"] == "error"
    client.command("notifySomething", 0.0, None)
    assert commands(client.replies()) == []


def test_metadata_prefix_is_stripped() -> None:
    client = Client()
    stream_id = client.publish("k")
    meta = amf0.EcmaArray(width=1280.0, height=720.0, encoder="test")
    events = client.send(4, 0, DATA, stream_id, amf0.encode("@setDataFrame", "onMetaData", meta))
    assert of_type(events, MetadataReceived) == [MetadataReceived(stream_id, dict(meta))]
    events = client.send(4, 0, DATA, stream_id, amf0.encode("onMetaData", meta))
    assert of_type(events, MetadataReceived) == [MetadataReceived(stream_id, dict(meta))]


def test_malformed_metadata_is_dropped() -> None:
    client = Client()
    stream_id = client.publish("k")
    events = client.send(4, 0, DATA, stream_id, b"\x02\x00\x10abc")
    assert [e.kind for e in of_type(events, MessageDropped)] == ["metadata"]


# --- media ----------------------------------------------------------------------------------


def test_media_before_its_sequence_header_is_dropped() -> None:
    client = Client()
    sid = client.publish("k")
    events = client.send(6, 0, VIDEO, sid, avc_frame(True))
    events += client.send(4, 0, AUDIO, sid, b"\xaf\x01" + b"\x21\x10")
    assert units(events) == []
    assert [e.kind for e in of_type(events, MessageDropped)] == [
        "no_sequence_header", "no_sequence_header"]
    events = client.send(6, 0, VIDEO, sid, AVC_SEQUENCE_HEADER)
    events += client.send(4, 0, AUDIO, sid, AAC_SEQUENCE_HEADER)
    assert [(c.kind, c.codec, c.extradata, c.codec_string)
            for c in of_type(events, CodecConfigured)] == [
        (TrackKind.VIDEO, "h264", AVCC, "avc1.64001F"),
        (TrackKind.AUDIO, "aac", ASC, "mp4a.40.2")]
    events = client.send(6, 40, VIDEO, sid, avc_frame(True))
    events += client.send(4, 40, AUDIO, sid, b"\xaf\x01\x21\x10")
    assert units(events) == [MediaUnit(TrackKind.VIDEO, 40, 40, True, NALU),
                             MediaUnit(TrackKind.AUDIO, 40, 40, True, b"\x21\x10")]


def test_repeated_identical_sequence_header_is_not_a_new_configuration() -> None:
    client = Client()
    sid = client.publish("k")
    assert len(of_type(client.send(6, 0, VIDEO, sid, AVC_SEQUENCE_HEADER), CodecConfigured)) == 1
    assert of_type(client.send(6, 0, VIDEO, sid, AVC_SEQUENCE_HEADER), CodecConfigured) == []
    changed = AVC_SEQUENCE_HEADER[:-1] + b"\xb1"
    assert len(of_type(client.send(6, 0, VIDEO, sid, changed), CodecConfigured)) == 1


@pytest.mark.parametrize("payload", [
    b"",  # empty
    b"\x17",  # truncated AVC header
    b"\x17\x01\x00",  # truncated composition time
    b"\x22" + b"\x00" * 8,  # Sorenson H.263: not supported
    b"\x17\x09\x00\x00\x00\x00",  # AVC packet type 9
    b"\x07\x01\x00\x00\x00\x00",  # frame type 0
    b"\x91" + b"xxxx" + b"\x00" * 4,  # enhanced, unknown FourCC
])
def test_malformed_video_tag_is_dropped(payload: bytes) -> None:
    client = Client()
    sid = client.publish("k")
    client.send(6, 0, VIDEO, sid, AVC_SEQUENCE_HEADER)
    events = client.send(6, 0, VIDEO, sid, payload)
    assert [e.kind for e in of_type(events, MessageDropped)] == ["flv"]
    assert units(events) == []
    # The connection goes on.
    assert units(client.send(6, 40, VIDEO, sid, avc_frame(True)))


@pytest.mark.parametrize("payload", [b"", b"\xaf", b"\xaf\x07\x00", b"\xf0\x00"])
def test_malformed_audio_tag_is_dropped(payload: bytes) -> None:
    client = Client()
    sid = client.publish("k")
    events = client.send(4, 0, AUDIO, sid, payload)
    assert [e.kind for e in of_type(events, MessageDropped)] == ["flv"]


def test_media_on_another_stream_is_dropped() -> None:
    client = Client()
    sid = client.publish("k")
    events = client.send(6, 0, VIDEO, sid + 1, AVC_SEQUENCE_HEADER)
    assert [e.kind for e in of_type(events, MessageDropped)] == ["media_without_publish"]
    assert of_type(events, CodecConfigured) == []


def test_video_command_frame_is_not_a_picture() -> None:
    """FLV frame type 5 is a video info/command frame (e.g. seek start/end markers): it
    carries no picture, FFmpeg skips it, and flv.VideoTag.is_command says to drop it."""
    client = Client()
    sid = client.publish("k")
    client.send(6, 0, VIDEO, sid, AVC_SEQUENCE_HEADER)
    events = client.send(6, 40, VIDEO, sid, b"\x57\x01")  # legacy AVC, frame type 5
    events += client.send(6, 40, VIDEO, sid, b"\xd1\x00")  # enhanced command frame
    assert units(events) == []


@pytest.mark.parametrize("compress", [False, True])
def test_timestamps_unwrap_past_32_bits(compress: bool) -> None:
    client = Client(compress=compress)
    sid = client.publish("k")
    start = 0xFFFFFF00
    client.send(6, start, VIDEO, sid, AVC_SEQUENCE_HEADER)
    client.send(4, start, AUDIO, sid, AAC_SEQUENCE_HEADER)
    wire = [start, start + 0x80, 0x00000010, 0x00000090, 0x00010000]
    expected = [start, start + 0x80, (1 << 32) + 0x10, (1 << 32) + 0x90, (1 << 32) + 0x10000]
    video_events: list[Event] = []
    audio_events: list[Event] = []
    for i, ts in enumerate(wire):
        video_events += client.send(6, ts, VIDEO, sid, avc_frame(i == 0))
        audio_events += client.send(4, ts, AUDIO, sid, b"\xaf\x01\x21\x10")
    assert [u.dts for u in units(video_events)] == expected
    assert [u.pts for u in units(video_events)] == expected
    assert [u.dts for u in units(audio_events)] == expected


def test_small_backwards_step_is_not_a_wrap() -> None:
    client = Client()
    sid = client.publish("k")
    client.send(4, 0, AUDIO, sid, AAC_SEQUENCE_HEADER)
    events: list[Event] = []
    for ts in (1000, 1023, 1020, 1046):
        events += client.send(4, ts, AUDIO, sid, b"\xaf\x01\x21\x10")
    assert [u.dts for u in units(events)] == [1000, 1023, 1020, 1046]


@pytest.mark.parametrize("ct", [0, 40, 80, -40, -1, 0x7FFFFF, -0x800000])
def test_composition_time_gives_pts(ct: int) -> None:
    client = Client()
    sid = client.publish("k")
    client.send(6, 0, VIDEO, sid, AVC_SEQUENCE_HEADER)
    (unit,) = units(client.send(6, 1_000_000, VIDEO, sid, avc_frame(True, ct)))
    assert unit.dts == 1_000_000
    assert unit.pts == 1_000_000 + ct


def test_enhanced_hevc_composition_time() -> None:
    hvcc = bytes((1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 0x5D)) + bytes(10)
    client = Client()
    sid = client.publish("k")
    (config,) = of_type(client.send(6, 0, VIDEO, sid, b"\x90hvc1" + hvcc), CodecConfigured)
    assert (config.codec, config.extradata) == ("hevc", hvcc)
    assert config.codec_string.startswith("hvc1.1.6.L93")
    events = client.send(6, 100, VIDEO, sid, b"\x91hvc1" + ct24(-20) + NALU)  # CodedFrames
    events += client.send(6, 140, VIDEO, sid, b"\xa3hvc1" + NALU)  # CodedFramesX, inter
    assert units(events) == [MediaUnit(TrackKind.VIDEO, 100, 80, True, NALU),
                             MediaUnit(TrackKind.VIDEO, 140, 140, False, NALU)]


def test_connection_without_handshake_bytes_is_refused() -> None:
    conn = ServerConnection()
    with pytest.raises(ProtocolError):
        conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(3000))


@pytest.mark.parametrize("chunk_size", [128, 4096, 1 << 20])
def test_before_publish_a_connection_may_buffer_only_a_little(chunk_size: int) -> None:
    """Keys are checked at publish: until then a connection may hold PRE_PUBLISH_PENDING_BYTES
    (in unfinished messages or one huge partial chunk), so thousands of idle or hostile
    connections cannot pin the 16 MiB each that a publisher may use."""
    from golive.ingest.connection import PRE_PUBLISH_PENDING_BYTES

    client = Client()
    client.connect()
    client.send(2, 0, 1, 0, chunk_size.to_bytes(4, "big"))  # Set Chunk Size
    client.encoder.chunk_size = chunk_size
    data = client.encoder.encode(6, 0, 9, 1, b"\x17\x01" + bytes(2 << 20))
    sent = 0
    with pytest.raises(ProtocolError) as refused:
        while sent < len(data):
            client.send_raw(data[sent : sent + 65536])
            sent += 65536
    assert refused.value.kind == "pending_bytes"
    assert sent <= PRE_PUBLISH_PENDING_BYTES + 2 * 65536


def test_after_publish_large_frames_are_fine() -> None:
    client = Client()
    stream_id = client.publish()
    client.send(6, 0, 9, stream_id, b"\x17\x00\x00\x00\x00" + bytes.fromhex(
        "0164001fffe1000467640028ee3c80"))  # minimal avcC: the track needs a config first
    frame = avc_frame(True, body=bytes(3 << 20))
    events = client.send(6, 40, 9, stream_id, frame)
    assert [len(u.data) for u in units(events)] == [len(frame) - 5]


def test_enhanced_rtmp_vp9_and_opus_become_tracks_and_units() -> None:
    """Enhanced RTMP without any fourCcList negotiation (as OBS 29.1+ sends): VP9 video with
    a vpcC record and Opus audio through the extended audio header (SoundFormat 9)."""
    client = Client()
    stream_id = client.publish()
    vpcc = bytes.fromhex("01000000" "0a1f8001020201")  # version/flags + profile, level, ...
    opus_head = b"OpusHead" + bytes.fromhex("01 02 3801 80bb0000 0000 00".replace(" ", ""))
    events = client.send(6, 0, 9, stream_id, b"\x90vp09" + vpcc)  # key frame, SequenceStart
    events += client.send(4, 0, 8, stream_id, b"\x90Opus" + opus_head)  # SequenceStart
    events += client.send(6, 0, 9, stream_id, b"\x91vp09" + b"\x82\x49\x83")  # key, frames
    events += client.send(4, 20, 8, stream_id, b"\x91Opus" + b"\xfc\xff\xfe")  # coded frame
    events += client.send(6, 40, 9, stream_id, b"\xa1vp09" + b"\x86\x00")  # inter frame
    configs = of_type(events, CodecConfigured)
    assert [(c.kind, c.codec, c.extradata) for c in configs] == [
        (TrackKind.VIDEO, "vp9", vpcc), (TrackKind.AUDIO, "opus", opus_head)]
    video = units(events, TrackKind.VIDEO)
    assert [(u.dts, u.pts, u.keyframe, u.data) for u in video] == [
        (0, 0, True, b"\x82\x49\x83"), (40, 40, False, b"\x86\x00")]
    assert [(u.dts, u.data) for u in units(events, TrackKind.AUDIO)] == [(20, b"\xfc\xff\xfe")]
