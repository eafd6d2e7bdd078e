"""Replay the real publisher captures into the chunk decoder and into the whole session core.

Every expected figure comes from tests/data/captures/README.md (its Markdown table is parsed
here) or from the independently decoded *.trace.txt files; media units are cross-checked against
an FLV reading written in this file, not against the module's own parser.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field

import pytest
from capture_expectations import (
    HANDSHAKE_BYTES,
    SET_CHUNK_SIZE,
    CaptureRow,
    Reply,
    ReplyReader,
    Trace,
    bytewise_then_pieces,
    random_pieces,
    read_trace,
    readme_table,
)

from golive.ingest import amf0
from golive.ingest.chunk import ChunkDecoder, RawMessage
from golive.ingest.connection import ConnectionConfig, ServerConnection
from golive.ingest.events import (
    CodecConfigured,
    Connected,
    Event,
    HandshakeComplete,
    MessageDropped,
    PublishRequested,
    PublishStopped,
)
from golive.ingest.flv import VideoPacketType, parse_video
from golive.media import MediaUnit, TrackKind

ROWS = readme_table()
NAMES = sorted(ROWS)
SMALL_WINDOW = 100_000  # captures are ~1.3 MB: a 5 MB window would never be crossed
BYTEWISE = 20_000
SEEDS = (1, 2, 3)
PATTERNS = ("whole", *(f"random-{seed}" for seed in SEEDS), "bytewise")

MSG_ACK = 3
MSG_USER_CONTROL = 4
MSG_WINDOW_ACK_SIZE = 5
MSG_SET_PEER_BANDWIDTH = 6
MSG_COMMAND_AMF0 = 20


@functools.cache
def capture(name: str) -> bytes:
    return ROWS[name].c2s.read_bytes()


@functools.cache
def trace(name: str) -> Trace:
    return read_trace(ROWS[name].trace)


@functools.cache
def chunk_replay(name: str) -> tuple[list[RawMessage], int]:
    """(messages, final chunk size) from the chunk decoder fed everything after the handshake."""
    decoder = ChunkDecoder()
    messages = decoder.feed(capture(name)[HANDSHAKE_BYTES:])
    return messages, decoder.chunk_size


def row(name: str) -> CaptureRow:
    return ROWS[name]


def test_readme_table_lists_every_capture() -> None:
    on_disk = {p.name.removesuffix(".c2s.bin") for p in ROWS[NAMES[0]].c2s.parent.glob("*.c2s.bin")}
    assert on_disk == set(ROWS)
    assert len(ROWS) == 8


# --- (a) chunk decoder -------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_chunk_decoder_message_counts(name: str) -> None:
    messages, chunk_size = chunk_replay(name)
    expected = row(name)
    video = [m for m in messages if m.type_id == 9]
    audio = [m for m in messages if m.type_id == 8]
    assert len(video) == expected.video_msgs
    assert len(audio) == expected.audio_msgs
    assert chunk_size == expected.client_chunk_size
    assert video[-1].timestamp - video[0].timestamp == expected.video_ts_span_ms
    assert video[0].csid == expected.first_video_csid
    assert expect_video(video[0]).config is not None, "README: the first video tag is a header"
    # Media flows on the stream the client published on (trace: publish's message stream id).
    t = trace(name)
    publish_sid = t.command_stream_ids[t.command_names.index("publish")]
    assert {m.stream_id for m in video + audio} == {publish_sid}


@pytest.mark.parametrize("name", NAMES)
def test_chunk_decoder_commands_match_trace(name: str) -> None:
    messages, _ = chunk_replay(name)
    commands = [amf0.decode_all(m.payload) for m in messages if m.type_id == MSG_COMMAND_AMF0]
    t = trace(name)
    # The trace prints numbers as JSON ints; AMF0 numbers are doubles: compare after json-ish
    # normalisation of the top-level values.
    assert [c[0] for c in commands] == t.command_names
    assert [c[1] for c in commands] == [float(c[1]) for c in t.commands]


@pytest.mark.parametrize("name", NAMES)
def test_chunk_decoder_is_split_invariant_on_real_data(name: str) -> None:
    whole, chunk_size = chunk_replay(name)
    body = capture(name)[HANDSHAKE_BYTES:]
    decoder = ChunkDecoder()
    pieces: list[RawMessage] = []
    for piece in random_pieces(body, seed=7, max_piece=3000):
        pieces.extend(decoder.feed(piece))
    assert pieces == whole
    assert decoder.chunk_size == chunk_size
    assert decoder.buffered_bytes == 0  # the capture ends on a message boundary


# --- (b) the whole session ---------------------------------------------------------------


@dataclass
class Session:
    events: list[Event] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    handshake_reply: bytes = b""
    # (bytes fed so far, ack sequence numbers sent in that step)
    acks: list[tuple[int, list[int]]] = field(default_factory=list)
    received_per_step: list[int] = field(default_factory=list)
    accepted: bool = False


def pieces_for(name: str, pattern: str) -> Iterable[bytes]:
    data = capture(name)
    if pattern == "whole":
        return [data]
    if pattern == "bytewise":
        return bytewise_then_pieces(data, BYTEWISE, seed=11)
    return random_pieces(data, seed=int(pattern.split("-")[1]))


@functools.cache
def replay(name: str, pattern: str, window: int = SMALL_WINDOW) -> Session:
    conn = ServerConnection(ConnectionConfig(window_ack_size=window))
    session = Session()
    reader = ReplyReader()
    out = b""
    fed = 0
    for piece in pieces_for(name, pattern):
        events = conn.receive_data(piece)
        fed += len(piece)
        session.events.extend(events)
        for event in events:
            # With everything in one call the publish is already over when the application
            # decides; answering it must still work (the events are processed in order).
            if isinstance(event, PublishRequested):
                conn.accept_publish(event.stream_id)
                session.accepted = True
        out += conn.data_to_send()
        if len(session.handshake_reply) < HANDSHAKE_BYTES:
            take = HANDSHAKE_BYTES - len(session.handshake_reply)
            session.handshake_reply += out[:take]
            out = out[take:]
        new = reader.feed(out)
        out = b""
        session.acks.append((fed, [r.u32() for r in new if r.type_id == MSG_ACK]))
        session.received_per_step.append(fed)
    session.replies = reader.replies
    return session


def media(events: list[Event], kind: TrackKind) -> list[MediaUnit]:
    return [e for e in events if isinstance(e, MediaUnit) and e.kind is kind]


@pytest.mark.parametrize("name", NAMES)
def test_event_sequence_does_not_depend_on_how_bytes_arrive(name: str) -> None:
    reference = replay(name, "whole").events
    assert reference, "no events at all"
    for pattern in PATTERNS[1:]:
        assert replay(name, pattern).events == reference, pattern


@pytest.mark.parametrize("name", NAMES)
def test_session_events_match_readme_and_trace(name: str) -> None:
    expected = row(name)
    t = trace(name)
    events = replay(name, "random-1").events
    assert isinstance(events[0], HandshakeComplete)
    assert events[0].digest == t.digest_handshake

    connected = [e for e in events if isinstance(e, Connected)]
    assert len(connected) == 1
    connect_props = t.command("connect")[2]
    assert isinstance(connect_props, dict)
    assert connected[0].flash_ver == expected.flash_ver
    assert connected[0].app == connect_props["app"]
    assert connected[0].tc_url == connect_props["tcUrl"]
    assert connected[0].fourcc_list == tuple(connect_props.get("fourCcList", ()))

    requested = [e for e in events if isinstance(e, PublishRequested)]
    assert len(requested) == 1
    publish = t.command("publish")
    assert requested[0].key == expected.stream_key == publish[3]
    assert requested[0].publish_type == publish[4]
    assert requested[0].stream_id == t.command_stream_ids[t.command_names.index("publish")]

    # The whole publish flow is in every trace, and it ends in exactly one PublishStopped.
    for command in ("releaseStream", "FCPublish", "createStream", "publish", "FCUnpublish",
                    "deleteStream"):
        assert command in t.command_names
    stopped = [e for e in events if isinstance(e, PublishStopped)]
    assert len(stopped) == 1
    assert stopped[0].stream_id == requested[0].stream_id
    assert stopped[0].reason == "FCUnpublish"  # FCUnpublish comes first in every trace
    assert events.index(stopped[0]) > max(
        i for i, e in enumerate(events) if isinstance(e, MediaUnit))


@pytest.mark.parametrize("name", NAMES)
def test_real_captures_drop_nothing(name: str) -> None:
    """Clean sessions from real encoders must not be reported as dropped/bad messages (each
    MessageDropped is counted in golive_rtmp_protocol_errors_total and logged as a warning)."""
    dropped = [e for e in replay(name, "whole").events if isinstance(e, MessageDropped)]
    assert dropped == []


# --- media units against an FLV reading written here ---------------------------------------


def _s24(b: bytes) -> int:
    value = int.from_bytes(b, "big")
    return value - (1 << 24) if value & 0x800000 else value


@dataclass(frozen=True)
class VideoExpectation:
    config: bytes | None  # a sequence header body
    unit: MediaUnit | None  # a coded frame


def expect_video(message: RawMessage) -> VideoExpectation:
    """Legacy FLV (E.4.3.1) and Enhanced RTMP v2 video, the subset these captures use."""
    p = message.payload
    ts = message.timestamp
    if p[0] & 0x80:  # enhanced: 1 byte (IsExHeader|FrameType|PacketType) + FourCC
        frame_type = (p[0] >> 4) & 7
        packet_type = p[0] & 0x0F
        fourcc = p[1:5]
        if packet_type == 0:
            return VideoExpectation(p[5:], None)
        if packet_type == 1:  # CodedFrames: SI24 composition time for avc1/hvc1 only
            ct, body = (_s24(p[5:8]), p[8:]) if fourcc in (b"avc1", b"hvc1") else (0, p[5:])
        elif packet_type == 3:  # CodedFramesX: no composition time
            ct, body = 0, p[5:]
        else:  # SequenceEnd, Metadata, ...
            return VideoExpectation(None, None)
        return VideoExpectation(
            None, MediaUnit(TrackKind.VIDEO, ts, ts + ct, frame_type == 1, bytes(body)))
    frame_type = p[0] >> 4
    assert p[0] & 0x0F == 7, "every legacy video tag in the captures is AVC"
    if p[1] == 0:
        return VideoExpectation(p[5:], None)
    if p[1] == 1 and frame_type != 5:
        return VideoExpectation(
            None, MediaUnit(TrackKind.VIDEO, ts, ts + _s24(p[2:5]), frame_type == 1, p[5:]))
    return VideoExpectation(None, None)


def expect_audio(message: RawMessage) -> tuple[bytes | None, MediaUnit | None]:
    p = message.payload
    assert p[0] >> 4 == 10, "every audio tag in the captures is AAC"
    if p[1] == 0:
        return p[2:], None
    ts = message.timestamp
    return None, MediaUnit(TrackKind.AUDIO, ts, ts, True, p[2:])


def non_frame_video_messages(messages: list[RawMessage]) -> int:
    count = 0
    for message in messages:
        tag = parse_video(message.payload)
        coded = tag.packet_type in (VideoPacketType.CODED_FRAMES, VideoPacketType.CODED_FRAMES_X)
        if not coded or tag.is_command:
            count += 1
    return count


@pytest.mark.parametrize("name", NAMES)
def test_media_unit_counts(name: str) -> None:
    expected = row(name)
    raw, _ = chunk_replay(name)
    events = replay(name, "whole").events
    non_frames = non_frame_video_messages([m for m in raw if m.type_id == 9])
    assert non_frames >= 1  # at least the sequence header
    assert len(media(events, TrackKind.VIDEO)) == expected.video_msgs - non_frames
    assert len(media(events, TrackKind.AUDIO)) == expected.audio_msgs - 1


@pytest.mark.parametrize("name", NAMES)
def test_media_units_match_flv_payloads(name: str) -> None:
    raw, _ = chunk_replay(name)
    events = replay(name, "whole").events
    video = [expect_video(m) for m in raw if m.type_id == 9]
    audio = [expect_audio(m) for m in raw if m.type_id == 8]
    assert media(events, TrackKind.VIDEO) == [v.unit for v in video if v.unit is not None]
    assert media(events, TrackKind.AUDIO) == [a[1] for a in audio if a[1] is not None]


@pytest.mark.parametrize("name", NAMES)
def test_timestamps_are_sane(name: str) -> None:
    events = replay(name, "whole").events
    for kind in TrackKind:
        dts = [u.dts for u in media(events, kind)]
        assert dts == sorted(dts), f"{kind} DTS goes backwards"
    video = media(events, TrackKind.VIDEO)
    assert all(u.pts >= u.dts for u in video)
    assert video[0].keyframe, "a stream starts at a keyframe"
    assert any(u.keyframe for u in video[1:]), "2 s GOP over ~4 s: a second keyframe"


# --- codec configuration ------------------------------------------------------------------


def avc_string_from_sps(avcc: bytes) -> str:
    """RFC 6381 avc1.PPCCLL from the SPS NAL inside the avcC (ISO 14496-15 5.3.3.1)."""
    assert avcc[0] == 1 and avcc[5] & 0x1F >= 1
    sps_len = int.from_bytes(avcc[6:8], "big")
    sps = avcc[8 : 8 + sps_len]
    assert sps[0] & 0x1F == 7, "first parameter set is an SPS"
    return "avc1." + sps[1:4].hex().upper()


def hevc_string(hvcc: bytes) -> str:
    """ISO/IEC 14496-15 E.3: hvc1.[space]profile.compat(reversed, hex).tier level[.constraints]."""
    space = "" if hvcc[1] >> 6 == 0 else "ABC"[(hvcc[1] >> 6) - 1]
    compat = int.from_bytes(hvcc[2:6], "big")
    reversed_compat = 0
    for bit in range(32):
        if compat & (1 << bit):
            reversed_compat |= 1 << (31 - bit)
    constraints = list(hvcc[6:12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    tier = "H" if hvcc[1] & 0x20 else "L"
    parts = [f"hvc1.{space}{hvcc[1] & 0x1F}", format(reversed_compat, "X"), f"{tier}{hvcc[12]}"]
    return ".".join(parts + [format(b, "X") for b in constraints])


def av1_string(av1c: bytes) -> str:
    """AV1-ISOBMFF 'Codecs Parameter String': av01.P.LLT.DD."""
    assert av1c[0] == 0x81  # marker + version 1
    profile, level = av1c[1] >> 5, av1c[1] & 0x1F
    tier = "H" if av1c[2] & 0x80 else "M"
    high, twelve = av1c[2] & 0x40, av1c[2] & 0x20
    depth = 8 if not high else (12 if profile == 2 and twelve else 10)
    return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"


@pytest.mark.parametrize("name", NAMES)
def test_codec_configured(name: str) -> None:
    expected = row(name)
    raw, _ = chunk_replay(name)
    events = replay(name, "whole").events
    configs = [e for e in events if isinstance(e, CodecConfigured)]
    video_cfg = [c for c in configs if c.kind is TrackKind.VIDEO]
    audio_cfg = [c for c in configs if c.kind is TrackKind.AUDIO]
    assert video_cfg and audio_cfg

    video_headers = [v.config for v in map(expect_video, (m for m in raw if m.type_id == 9))
                     if v.config is not None]
    last_video = video_cfg[-1]
    assert last_video.codec == expected.video_codec
    assert last_video.extradata == video_headers[-1]
    if last_video.codec == "h264":
        assert last_video.codec_string == avc_string_from_sps(last_video.extradata)
    elif last_video.codec == "hevc":
        assert last_video.codec_string == hevc_string(last_video.extradata)
    else:
        assert last_video.codec_string == av1_string(last_video.extradata)

    assert len(audio_cfg) == 1
    assert trace(name).audio_formats == {"AAC"}
    assert audio_cfg[0].codec == "aac"
    asc = next(a[0] for a in map(expect_audio, (m for m in raw if m.type_id == 8)) if a[0])
    assert audio_cfg[0].extradata == asc
    assert audio_cfg[0].codec_string == f"mp4a.40.{asc[0] >> 3}"
    # Every configuration arrives before the first unit of its track.
    first_unit = {k: next(i for i, e in enumerate(events)
                          if isinstance(e, MediaUnit) and e.kind is k) for k in TrackKind}
    assert events.index(video_cfg[0]) < first_unit[TrackKind.VIDEO]
    assert events.index(audio_cfg[0]) < first_unit[TrackKind.AUDIO]


def test_obs_codec_string_is_main_profile_level_31() -> None:
    events = replay("obs29.0-h264", "whole").events
    video = [e for e in events if isinstance(e, CodecConfigured) and e.kind is TrackKind.VIDEO]
    assert [c.codec_string for c in video] == ["avc1.4D401F"]


# --- what the server answered ------------------------------------------------------------


def find_undefined(value: object) -> bool:
    if value is amf0.UNDEFINED:
        return True
    if isinstance(value, dict):
        return any(find_undefined(v) for v in value.values())
    if isinstance(value, list):
        return any(find_undefined(v) for v in value)
    return False


@pytest.mark.parametrize("name", NAMES)
def test_server_replies(name: str) -> None:
    t = trace(name)
    session = replay(name, "random-2")
    assert session.accepted and replay(name, "whole").accepted
    assert session.handshake_reply[0] == 3
    replies = [r for r in session.replies if r.type_id != MSG_ACK]
    kinds = [r.type_id for r in replies]

    connect_txn = t.command("connect")[1]
    assert connect_txn == 1
    commands = [(i, r.values()) for i, r in enumerate(replies) if r.type_id == MSG_COMMAND_AMF0]
    connect_result = [(i, v) for i, v in commands if v[0] == "_result" and v[1] == connect_txn]
    assert connect_result, "no _result for connect"
    at, values = connect_result[0]
    assert isinstance(values[2], dict) and isinstance(values[3], dict)
    assert values[3]["code"] == "NetConnection.Connect.Success"
    assert values[3]["level"] == "status"
    assert values[3].get("objectEncoding") == 0.0
    assert "fmsVer" in values[2] and "capabilities" in values[2]

    # Window Ack Size, Set Peer Bandwidth and Set Chunk Size, all before the connect _result.
    before = replies[:at]
    was = [r for r in before if r.type_id == MSG_WINDOW_ACK_SIZE]
    spb = [r for r in before if r.type_id == MSG_SET_PEER_BANDWIDTH]
    scs = [r for r in before if r.type_id == SET_CHUNK_SIZE]
    assert len(was) == 1 and was[0].u32() == SMALL_WINDOW
    assert len(spb) == 1 and spb[0].u32() == SMALL_WINDOW and spb[0].payload[4] in (0, 1, 2)
    assert len(scs) == 1 and 128 <= scs[0].u32() <= 0x7FFFFFFF
    assert kinds.index(MSG_WINDOW_ACK_SIZE) < kinds.index(SET_CHUNK_SIZE)

    create = t.command("createStream")
    create_results = [v for _, v in commands if v[0] == "_result" and v[1] == create[1]]
    publish_sid = t.command_stream_ids[t.command_names.index("publish")]
    if create[1] == connect_txn:
        create_results = create_results[1:]
    assert create_results == [["_result", float(create[1]), None, float(publish_sid)]]

    # accept_publish: StreamBegin(stream id) then onStatus NetStream.Publish.Start on that stream.
    status = [(i, r) for i, r in enumerate(replies) if r.type_id == MSG_COMMAND_AMF0
              and r.values()[0] == "onStatus"]
    start = [(i, r) for i, r in status if r.values()[3]["code"] == "NetStream.Publish.Start"]
    assert len(start) == 1
    i, reply = start[0]
    assert reply.stream_id == publish_sid
    onstatus = reply.values()
    assert onstatus[1] == 0.0 and onstatus[2] is None and onstatus[3]["level"] == "status"
    begin = [j for j, r in enumerate(replies) if r.type_id == MSG_USER_CONTROL
             and r.payload[:2] == b"\x00\x00" and int.from_bytes(r.payload[2:6], "big")
             == publish_sid]
    assert begin and begin[0] < i
    assert not any(find_undefined(v) for _, v in commands), "AMF Undefined sent to the client"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("pattern", ["random-1", "bytewise"])
def test_acknowledgements(name: str, pattern: str) -> None:
    """An Acknowledgement each time a window of received bytes is crossed; the window is ours
    until the client announces its own Window Ack Size (RTMP 5.4.4), as rtmp2sink does."""
    t = trace(name)
    window = t.client_window_ack_sizes[-1] if t.client_window_ack_sizes else SMALL_WINDOW
    session = replay(name, pattern)
    total = len(capture(name))
    sent = [seq for _, seqs in session.acks for seq in seqs]
    if window == SMALL_WINDOW:
        # Each ack comes at most one read (<= 8 KiB here) after its window was crossed.
        assert len(sent) >= (total - HANDSHAKE_BYTES) // (window + 8192)
        assert len(sent) >= 7
    else:
        assert sent == [] and total < window
    last = 0
    for fed, seqs in session.acks:
        for seq in seqs:
            assert window <= seq - last < window + 8192, "ack too early or too late"
            # The sequence number is the byte count received so far (with or without the
            # handshake, which implementations disagree on).
            assert seq in (fed, fed - HANDSHAKE_BYTES)
            last = seq
        # Never a whole window unacknowledged after a step.
        assert fed - HANDSHAKE_BYTES - last < window


def test_default_window_is_five_megabytes_and_never_crossed_by_a_capture() -> None:
    name = "obs29.0-h264"
    assert len(capture(name)) < 5_000_000
    session = replay(name, "random-3", window=5_000_000)
    replies = session.replies
    assert [r.u32() for r in replies if r.type_id == MSG_WINDOW_ACK_SIZE] == [5_000_000]
    assert [r for r in replies if r.type_id == MSG_ACK] == []
