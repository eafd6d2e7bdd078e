"""Hypothesis fuzzing of the session core (`ServerConnection.receive_data`).

Whatever a peer sends, only a golive.ingest.errors.ProtocolError subclass may escape (never
IndexError, KeyError, struct.error, UnicodeError, ValueError, RecursionError, ...), the bytes the
core holds stay within its configured limits, and what it writes back stays proportionate.
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Iterable

from capture_expectations import CAPTURES, HANDSHAKE_BYTES, Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from golive.ingest import amf0
from golive.ingest.chunk import ChunkDecoder, ChunkEncoder, ChunkLimits
from golive.ingest.connection import ConnectionConfig, ServerConnection
from golive.ingest.errors import LocalProtocolError, ProtocolError
from golive.ingest.events import PublishRequested
from golive.ingest.handshake import client_c0c1, client_c2

LIMITS = ChunkLimits(max_message_size=64 * 1024, max_chunk_streams=16,
                     max_pending_bytes=128 * 1024)
CONFIG = ConnectionConfig(window_ack_size=50_000, chunk_limits=LIMITS)
HEADER_SLACK = 18 + 64  # largest chunk header, plus a little
HELD_BOUND = LIMITS.max_pending_bytes + LIMITS.max_message_size + HEADER_SLACK
# Replies: the handshake and connect answers, then at most a bounded reply per input message
# (an _error echoing an unknown command's name, a ping response, an ack per window).
OUTPUT_BASE = HANDSHAKE_BYTES + 4096
OUTPUT_PER_INPUT_BYTE = 16

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def fresh_handshaken() -> tuple[ServerConnection, int]:
    conn = ServerConnection(CONFIG)
    c0c1 = client_c0c1(digest=False)
    conn.receive_data(c0c1)
    s0s1s2 = conn.data_to_send()
    c2 = client_c2(s0s1s2[1 : 1 + 1536])
    conn.receive_data(c2)
    return conn, len(c0c1) + len(c2)


def primed() -> tuple[ServerConnection, ChunkEncoder, int]:
    """Handshake, connect, createStream, publish (accepted), both sequence headers."""
    client = Client(CONFIG)
    sid = client.publish("key")
    client.send(6, 0, 9, sid, b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff\xe1\x00\x00\x00")
    client.send(4, 0, 8, sid, b"\xaf\x00\x12\x10")
    client.conn.data_to_send()
    return client.conn, client.encoder, client.conn.bytes_received


def split(data: bytes, cuts: list[int]) -> Iterable[bytes]:
    pos = 0
    for cut in cuts:
        if pos >= len(data):
            return
        yield data[pos : pos + cut]
        pos += cut
    if pos < len(data):
        yield data[pos:]


def drive(conn: ServerConnection, pieces: Iterable[bytes], already_in: int = 0) -> None:
    """Feed pieces until the core refuses; check the invariants after every step."""
    fed = already_in
    written = 0
    for piece in pieces:
        try:
            events = conn.receive_data(piece)
        except ProtocolError:
            return
        fed += len(piece)
        for event in events:
            if isinstance(event, PublishRequested):
                # Whether every request can be answered is test_connection's business (it
                # cannot always, see test_each_pipelined_publish_request_can_be_answered);
                # here only what receive_data lets escape matters.
                with contextlib.suppress(LocalProtocolError):
                    conn.accept_publish(event.stream_id)
        held = conn._chunks.buffered_bytes
        assert held <= HELD_BOUND, f"decoder holds {held} bytes"
        written += len(conn.data_to_send())
        assert written <= OUTPUT_BASE + OUTPUT_PER_INPUT_BYTE * fed, (written, fed)


CUTS = st.lists(st.integers(1, 700), max_size=40)


@FUZZ
@given(data=st.binary(max_size=4096), cuts=CUTS)
def test_arbitrary_bytes_after_the_handshake(data: bytes, cuts: list[int]) -> None:
    conn, fed = fresh_handshaken()
    drive(conn, split(data, cuts), fed)


@FUZZ
@given(data=st.binary(max_size=4096), cuts=CUTS)
def test_arbitrary_bytes_in_a_publishing_session(data: bytes, cuts: list[int]) -> None:
    conn, _, fed = primed()
    drive(conn, split(data, cuts), fed)


@FUZZ
@given(data=st.binary(min_size=1, max_size=5000), cuts=CUTS)
def test_arbitrary_bytes_from_the_first_byte(data: bytes, cuts: list[int]) -> None:
    drive(ServerConnection(CONFIG), split(b"\x03" + data, cuts))


# --- structured garbage: well-formed chunks, hostile message bodies -----------------------

AMF_SCALARS = st.one_of(
    st.none(), st.booleans(), st.floats(), st.integers(-(2**53), 2**53), st.text(max_size=40),
    st.sampled_from([amf0.UNDEFINED, "live", "key", "@setDataFrame", "onMetaData"]),
)
AMF_VALUES = st.recursive(
    AMF_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4),
        st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4).map(amf0.EcmaArray),
    ),
    max_leaves=12,
)
COMMAND_NAMES = st.sampled_from([
    "connect", "createStream", "publish", "releaseStream", "FCPublish", "FCUnpublish",
    "deleteStream", "closeStream", "play", "play2", "getStreamLength", "_checkbw", "call",
    "onStatus", "_result", "",
]) | st.text(max_size=12)
COMMAND = st.tuples(COMMAND_NAMES, st.lists(AMF_VALUES, max_size=5)).map(
    lambda c: amf0.encode(c[0], *c[1]))
DATA_MESSAGE = st.lists(AMF_VALUES, min_size=1, max_size=4).map(lambda v: amf0.encode(*v))
FLV_PREFIXES = st.sampled_from([
    b"\x17\x00", b"\x17\x01", b"\x27\x01", b"\x17\x02", b"\x57", b"\x90hvc1", b"\x91hvc1",
    b"\x93hvc1", b"\x90av01", b"\x91av01", b"\x94av01", b"\x97", b"\xd1", b"\x9c", b"\x80",
    b"\xaf\x00", b"\xaf\x01", b"\x2f", b"\x9d", b"\x90mp4a", b"\x91Opus", b"\x97\x00",
])
MEDIA = st.tuples(FLV_PREFIXES, st.binary(max_size=64)).map(lambda p: p[0] + p[1])
MESSAGE = st.one_of(
    st.tuples(st.just(20), COMMAND),
    st.tuples(st.just(18), DATA_MESSAGE),
    st.tuples(st.sampled_from([8, 9]), MEDIA),
    st.tuples(st.integers(1, 30), st.binary(max_size=24)),
)
ENVELOPE = st.tuples(st.sampled_from([2, 3, 4, 5, 6, 8, 70]), st.integers(0, 2**32 - 1),
                     st.sampled_from([0, 1, 2]), MESSAGE)


@FUZZ
@given(messages=st.lists(ENVELOPE, min_size=1, max_size=25), compress=st.booleans(),
       fresh=st.booleans(), cuts=CUTS)
def test_hostile_messages(messages: list, compress: bool, fresh: bool, cuts: list[int]) -> None:
    if fresh:
        conn, fed = fresh_handshaken()
        encoder = ChunkEncoder(compress=compress)
    else:
        conn, encoder, fed = primed()
        encoder.compress = compress
    stream = b"".join(encoder.encode(csid, ts, type_id, sid, payload)
                      for csid, ts, sid, (type_id, payload) in messages)
    drive(conn, split(stream, cuts), fed)


# --- mutated real captures ------------------------------------------------------------------

CAPTURE_NAMES = sorted(p.name.removesuffix(".c2s.bin") for p in CAPTURES.glob("*.c2s.bin"))
PREFIX = 64 * 1024


@functools.cache
def capture_prefix(name: str) -> bytes:
    return (CAPTURES / f"{name}.c2s.bin").read_bytes()[:PREFIX]


MUTATION = st.tuples(st.sampled_from(["flip", "insert", "delete", "set"]),
                     st.integers(0, PREFIX - HANDSHAKE_BYTES - 1), st.integers(0, 255))


def mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, offset, value in mutations:
        pos = HANDSHAKE_BYTES + offset % max(1, len(buf) - HANDSHAKE_BYTES)
        if op == "flip":
            buf[pos] ^= 1 << (value % 8)
        elif op == "set":
            buf[pos] = value
        elif op == "insert":
            buf[pos:pos] = bytes((value,)) * (1 + value % 5)
        else:
            del buf[pos : pos + 1 + value % 5]
    return bytes(buf)


@FUZZ
@given(name=st.sampled_from(CAPTURE_NAMES),
       mutations=st.lists(MUTATION, min_size=1, max_size=8),
       seed=st.integers(0, 2**32))
def test_mutated_captures(name: str, mutations: list[tuple[str, int, int]], seed: int) -> None:
    data = mutate(capture_prefix(name), mutations)
    rng = random.Random(seed)
    cuts = [rng.choice((1, 7, 100, 1500, 4096, 20000)) for _ in range(200)]
    drive(ServerConnection(CONFIG), split(data, cuts))


@FUZZ
@given(name=st.sampled_from(CAPTURE_NAMES), start=st.integers(0, 2000),
       window=st.integers(1, 400), seed=st.integers(0, 255))
def test_capture_with_a_garbage_window(name: str, start: int, window: int, seed: int) -> None:
    """A run of random bytes somewhere in the first messages after the handshake."""
    data = bytearray(capture_prefix(name))
    rng = random.Random(seed)
    pos = HANDSHAKE_BYTES + start
    data[pos : pos + window] = rng.randbytes(window)
    drive(ServerConnection(CONFIG), split(bytes(data), [997] * 100))


# --- the chunk decoder alone, with tight limits ---------------------------------------------

TIGHT = ChunkLimits(max_message_size=300, max_chunk_streams=4, max_pending_bytes=500)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=3000), cuts=CUTS)
def test_chunk_decoder_only_raises_chunk_errors_and_stays_bounded(data: bytes,
                                                                  cuts: list[int]) -> None:
    decoder = ChunkDecoder(TIGHT)
    for piece in split(data, cuts):
        try:
            for message in decoder.feed(piece):
                assert len(message.payload) <= TIGHT.max_message_size
        except ProtocolError:
            return
        assert decoder.buffered_bytes <= TIGHT.max_pending_bytes + TIGHT.max_message_size + 18
