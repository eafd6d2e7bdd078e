"""The session core's one state and its deadlines, without sockets.

Every legal (state, trigger) of `connection.TRANSITIONS` is taken with real protocol bytes
(hand-built publishers, and real publisher captures for the deadlines); every other pair is
refused with the right error type. The clock is only ever passed in.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from capture_expectations import CAPTURES, Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from golive.ingest import amf0
from golive.ingest.connection import (
    PEER_TRIGGERS,
    TRANSITIONS,
    ConnectionConfig,
    ServerConnection,
    State,
    Trigger,
)
from golive.ingest.errors import LocalProtocolError, ProtocolError
from golive.ingest.events import (
    ConnectRejected,
    PlayRequested,
    PublishRequested,
    PublishStopped,
    TimedOut,
)
from golive.ingest.handshake import client_c0c1, client_c2

COMMAND = 20
TIMED = ConnectionConfig(handshake_timeout=10.0, idle_timeout=30.0)
CAPTURE_FILES = sorted(CAPTURES.glob("*.c2s.bin"))
PIECE = 4096


# --- reaching each state with real bytes -----------------------------------------------------


def connected() -> Client:
    client = Client(TIMED)
    client.connect()
    client.command("createStream", 2.0, None)
    return client


def requested() -> Client:
    client = Client(TIMED)
    client.publish("k", accept=False)
    return client


def publishing() -> Client:
    client = Client(TIMED)
    client.publish("k")
    return client


def publish_then(*tail: list[object], stream_id: int = 1) -> Client:
    """connect and createStream, then publish and `tail` (commands on stream 0) in ONE read,
    as a pipelining client sends them: the PublishRequested is still unanswered after it."""
    client = connected()
    data = client.encoder.encode(8, 0, COMMAND, stream_id,
                                 amf0.encode("publish", 3.0, None, "k", "live"))
    for values in tail:
        data += client.encoder.encode(3, 0, COMMAND, 0, amf0.encode(*values))
    events = client.send_raw(data)
    assert of_type(events, PublishRequested)
    return client


def of_type(events: list, cls: type) -> list:
    return [e for e in events if isinstance(e, cls)]


def garbage(client: Client) -> None:
    """An AMF3 command: a ProtocolError in every state after the handshake."""
    client.send(3, 0, 17, 0, b"\x00" + amf0.encode("connect", 1.0, {"app": "live"}))


Step = Callable[[], ServerConnection]


def _handshake_done() -> ServerConnection:
    return Client(TIMED).conn


def _handshake_error() -> ServerConnection:
    conn = ServerConnection(TIMED)
    with pytest.raises(ProtocolError):
        conn.receive_data(b"\x07" + bytes(1536))  # not RTMP version 3
    return conn


def _timeout(setup: Callable[[], ServerConnection]) -> Step:
    def step() -> ServerConnection:
        conn = setup()
        (event,) = conn.handle_timer(1e9)
        assert isinstance(event, TimedOut)
        return conn
    return step


def _error(setup: Callable[[], Client]) -> Step:
    def step() -> ServerConnection:
        client = setup()
        with pytest.raises(ProtocolError):
            garbage(client)
        return client.conn
    return step


def _command(setup: Callable[[], Client], *values: object, stream_id: int = 0,
             expect: type | None = None) -> Step:
    def step() -> ServerConnection:
        client = setup()
        events = client.command(*values, stream_id=stream_id)
        if expect is not None:
            assert of_type(events, expect)
        return client.conn
    return step


def _answer(setup: Callable[[], Client], accept: bool) -> Step:
    def step() -> ServerConnection:
        client = setup()
        if accept:
            client.conn.accept_publish(1)
        else:
            client.conn.reject_publish(1, "NetStream.Publish.Denied", "no")
        return client.conn
    return step


def _connect(app: str) -> Step:
    def step() -> ServerConnection:
        client = Client(TIMED)
        client.connect(app=app)
        return client.conn
    return step


S, T = State, Trigger
PLAY = ("play", 4.0, None, "x")
# How each legal transition is taken: a fresh core, brought into the state, then the trigger.
PATHS: dict[tuple[State, Trigger], Step] = {
    (S.HANDSHAKE, T.HANDSHAKE_DONE): _handshake_done,
    (S.HANDSHAKE, T.PROTOCOL_ERROR): _handshake_error,
    (S.HANDSHAKE, T.TIMEOUT): _timeout(lambda: ServerConnection(TIMED)),
    (S.AWAIT_CONNECT, T.CONNECT): _connect("live"),
    (S.AWAIT_CONNECT, T.CONNECT_REFUSED): _connect("vod"),
    (S.AWAIT_CONNECT, T.PROTOCOL_ERROR): _error(lambda: Client(TIMED)),
    (S.AWAIT_CONNECT, T.TIMEOUT): _timeout(_handshake_done),
    (S.CONNECTED, T.PUBLISH): _command(connected, "publish", 3.0, None, "k", "live",
                                       stream_id=1, expect=PublishRequested),
    (S.CONNECTED, T.PUBLISH_REFUSED): _command(connected, "publish", 3.0, None, "", "live",
                                               stream_id=1),
    (S.CONNECTED, T.PLAY): _command(connected, *PLAY, stream_id=1, expect=PlayRequested),
    # The request of a publication that ended in the same read is still answered.
    (S.CONNECTED, T.REJECT): _answer(lambda: publish_then(["FCUnpublish", 4.0, None, "k"]),
                                     accept=False),
    (S.CONNECTED, T.PROTOCOL_ERROR): _error(connected),
    (S.CONNECTED, T.TIMEOUT): _timeout(lambda: connected().conn),
    (S.PUBLISH_REQUESTED, T.ACCEPT): _answer(requested, accept=True),
    (S.PUBLISH_REQUESTED, T.REJECT): _answer(requested, accept=False),
    (S.PUBLISH_REQUESTED, T.UNPUBLISH): _command(requested, "FCUnpublish", 6.0, None, "k",
                                                 expect=PublishStopped),
    (S.PUBLISH_REQUESTED, T.PLAY): _command(requested, *PLAY, stream_id=1),
    (S.PUBLISH_REQUESTED, T.PROTOCOL_ERROR): _error(requested),
    (S.PUBLISH_REQUESTED, T.TIMEOUT): _timeout(lambda: requested().conn),
    (S.PUBLISHING, T.UNPUBLISH): _command(publishing, "deleteStream", 6.0, None, 1.0,
                                          expect=PublishStopped),
    (S.PUBLISHING, T.PLAY): _command(publishing, *PLAY, stream_id=1),
    (S.PUBLISHING, T.PROTOCOL_ERROR): _error(publishing),
    (S.PUBLISHING, T.TIMEOUT): _timeout(lambda: publishing().conn),
    (S.MUST_CLOSE, T.REJECT): _answer(lambda: publish_then(list(PLAY)), accept=False),
}

def test_every_legal_transition_has_a_path() -> None:
    assert set(PATHS) == set(TRANSITIONS)


@pytest.mark.parametrize(("state", "trigger"), list(TRANSITIONS),
                         ids=lambda x: x.name if isinstance(x, State | Trigger) else "")
def test_legal_transition(state: State, trigger: Trigger) -> None:
    conn = PATHS[state, trigger]()
    assert conn.state is TRANSITIONS[state, trigger]
    assert conn.close_requested == (conn.state is State.MUST_CLOSE)
    assert conn.publish_accepted == (conn.state is State.PUBLISHING)
    if conn.state not in (State.PUBLISH_REQUESTED, State.PUBLISHING):
        assert conn.publishing_stream is None


ILLEGAL = [pair for pair in itertools.product(State, Trigger) if pair not in TRANSITIONS]


@pytest.mark.parametrize(("state", "trigger"), ILLEGAL,
                         ids=lambda x: x.name if isinstance(x, State | Trigger) else "")
def test_illegal_transition_raises_and_changes_nothing(state: State, trigger: Trigger) -> None:
    conn = ServerConnection(TIMED)
    conn.state = state
    expected = ProtocolError if trigger in PEER_TRIGGERS else LocalProtocolError
    with pytest.raises(expected) as info:
        conn._transition(trigger)
    if expected is ProtocolError:
        assert info.value.kind == "sequence"  # the peer's fault, counted under a fixed label
    assert conn.state is state


def test_paths_start_where_the_table_says() -> None:
    """The helpers really reach the states they are named after."""
    assert ServerConnection(TIMED).state is State.HANDSHAKE
    assert Client(TIMED).conn.state is State.AWAIT_CONNECT
    assert connected().conn.state is State.CONNECTED
    assert requested().conn.state is State.PUBLISH_REQUESTED
    assert publishing().conn.state is State.PUBLISHING
    assert publish_then(["FCUnpublish", 4.0, None, "k"]).conn.state is State.CONNECTED
    assert publish_then(list(PLAY)).conn.state is State.MUST_CLOSE


# --- illegal moves with real bytes ----------------------------------------------------------


def test_peer_sequence_errors_come_from_the_table() -> None:
    client = publishing()
    with pytest.raises(ProtocolError) as info:
        client.command("publish", 9.0, None, "other", "live", stream_id=1)
    assert info.value.kind == "sequence"
    assert client.conn.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        client.conn.receive_data(b"\x03")


def test_answers_the_application_owes_none_of() -> None:
    client = connected()
    with pytest.raises(LocalProtocolError):
        client.conn.accept_publish(1)
    with pytest.raises(LocalProtocolError):
        client.conn.reject_publish(1, "NetStream.Publish.Denied", "nobody asked")
    assert client.conn.state is State.CONNECTED
    client = requested()
    client.conn.handle_timer(1e9)
    with pytest.raises(LocalProtocolError):  # the request died with the connection
        client.conn.accept_publish(1)


def test_input_after_a_refusal_is_not_read() -> None:
    """connect to an unknown application, then everything else in the same read: the core
    refused and asked to close, so what follows is ignored instead of half-processed."""
    client = Client(TIMED)
    encode = client.encoder.encode
    data = encode(3, 0, COMMAND, 0, amf0.encode("connect", 1.0, {"app": "vod"}))
    data += encode(3, 0, COMMAND, 0, amf0.encode("connect", 2.0, {"app": "live"}))
    data += encode(3, 0, COMMAND, 0, amf0.encode("createStream", 3.0, None))
    events = client.send_raw(data)
    assert events == [ConnectRejected("vod")]
    assert [r.values()[0] for r in client.replies() if r.type_id == COMMAND] == ["_error"]
    assert client.send_raw(b"\xff" * 100) == []  # not even garbage fails now
    assert client.conn.close_requested


# --- deadlines -------------------------------------------------------------------------------


def capture_until_publish(
        path: str, start: float = 100.0,
        config: ConnectionConfig = TIMED) -> tuple[ServerConnection, int, bytes]:
    """A capture fed in socket-sized reads, 10 ms apart from `start`, up to the read that
    completes its publish request; returns the core, the request's stream id and the rest
    of the capture."""
    data = (CAPTURES / path).read_bytes()
    conn = ServerConnection(config, now=start, random_bytes=bytes)
    for index, offset in enumerate(range(0, len(data), PIECE)):
        events = conn.receive_data(data[offset : offset + PIECE], start + 0.01 * index)
        for request in of_type(events, PublishRequested):
            return conn, request.stream_id, data[offset + PIECE :]
    raise AssertionError("no publish in the capture")


CAPTURE_NAMES = [p.name for p in CAPTURE_FILES]


def test_no_deadlines_unless_configured() -> None:
    conn, _, _ = capture_until_publish(CAPTURE_NAMES[0], config=ConnectionConfig())
    assert conn.next_deadline() is None
    assert conn.handle_timer(1e12) == []


def test_a_silent_connection_has_the_handshake_deadline() -> None:
    conn = ServerConnection(TIMED, now=5.0)
    assert conn.next_deadline() == 15.0
    assert conn.handle_timer(14.999) == []
    assert conn.state is State.HANDSHAKE
    assert conn.handle_timer(15.0) == [TimedOut("timeout", "no publish within 10 s")]
    assert conn.state is State.CLOSED


@pytest.mark.parametrize("capture", CAPTURE_NAMES)
def test_handshake_deadline_hits_before_the_publish_is_answered(capture: str) -> None:
    conn, _, _ = capture_until_publish(capture)
    assert conn.state is State.PUBLISH_REQUESTED
    assert conn.next_deadline() == 110.0  # from accept, however much came in since
    assert conn.handle_timer(109.99) == []
    assert conn.data_to_send()  # the handshake and connect answers; nothing was refused
    assert conn.handle_timer(110.0) == [TimedOut("timeout", "no publish within 10 s")]
    assert conn.state is State.CLOSED
    assert conn.next_deadline() is None
    assert conn.handle_timer(1e9) == []
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"\x00", 111.0)


@pytest.mark.parametrize("capture", CAPTURE_NAMES)
def test_no_handshake_deadline_once_the_publish_is_accepted(capture: str) -> None:
    conn, stream_id, rest = capture_until_publish(capture)
    assert conn.next_deadline() == 110.0
    conn.accept_publish(stream_id)
    deadline = conn.next_deadline()
    assert deadline is not None and deadline >= 130.0  # only idle is left: 30 s after a read
    assert conn.handle_timer(110.0) == []
    assert conn.state is State.PUBLISHING
    # The rest of the capture, late: the idle deadline moves with every read.
    conn.receive_data(rest[:PIECE], deadline - 1.0)
    assert conn.handle_timer(deadline) == []  # where the deadline was: it moved on
    assert conn.next_deadline() == deadline + 29.0
    assert conn.handle_timer(deadline + 28.99) == []
    assert conn.handle_timer(deadline + 29.0) == [TimedOut("idle", "nothing received for 30 s")]


def test_receive_without_a_time_keeps_the_last_one() -> None:
    conn, stream_id, rest = capture_until_publish(CAPTURE_NAMES[0])
    conn.accept_publish(stream_id)
    deadline = conn.next_deadline()
    conn.receive_data(rest[:PIECE])
    assert conn.next_deadline() == deadline


def test_the_handshake_deadline_starts_again_when_a_publication_ends() -> None:
    """An encoder's Stop/Start on one connection (FMLE) gets as long to republish as the
    first publish had; while publishing there is no handshake deadline at all."""
    client = Client(TIMED)
    conn = client.conn
    sid = client.publish("k")
    conn.receive_data(client.encoder.encode(3, 0, COMMAND, 0, amf0.encode(
        "FCUnpublish", 6.0, None, "k")), 500.0)
    assert conn.state is State.CONNECTED
    assert conn.next_deadline() == 510.0
    assert conn.handle_timer(505.0) == []
    events = conn.receive_data(client.encoder.encode(8, 0, COMMAND, sid, amf0.encode(
        "publish", 7.0, None, "k", "live")), 509.0)
    assert of_type(events, PublishRequested)
    conn.accept_publish(sid)
    assert conn.next_deadline() == 539.0
    assert conn.handle_timer(510.0) == []


def test_a_refused_connection_has_no_deadline() -> None:
    client = Client(TIMED)
    client.connect(app="vod")
    assert client.conn.close_requested
    assert client.conn.next_deadline() is None
    assert client.conn.handle_timer(1e9) == []


def test_handshake_before_idle_when_both_passed() -> None:
    conn = ServerConnection(ConnectionConfig(handshake_timeout=10.0, idle_timeout=5.0))
    assert conn.next_deadline() == 5.0
    assert conn.handle_timer(50.0) == [TimedOut("timeout", "no publish within 10 s")]


# --- any interleaving ------------------------------------------------------------------------

Op = tuple[str, int]
OPS = st.lists(st.one_of(
    st.tuples(st.just("data"), st.integers(1, 70_000)),  # this many bytes of the capture
    st.tuples(st.just("garbage"), st.integers(1, 64)),
    st.tuples(st.just("wait"), st.integers(0, 20_000)),  # milliseconds
    st.tuples(st.just("timer"), st.just(0)),
), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(capture=st.sampled_from(CAPTURE_NAMES), ops=OPS, answer=st.booleans())
def test_any_interleaving_of_reads_and_timers(capture: str, ops: list[Op],
                                              answer: bool) -> None:
    """Reads (of a real capture, with garbage mixed in), clock steps and timer calls in any
    order: only ProtocolError escapes, and handle_timer closes the core exactly when a
    deadline reported by next_deadline() has passed."""
    data = (CAPTURES / capture).read_bytes()
    now = 1000.0
    conn = ServerConnection(TIMED, now=now, random_bytes=bytes)
    pos = 0
    for op, value in ops:
        if op == "wait":
            now += value / 1000
            continue
        if op == "timer":
            deadline = conn.next_deadline()
            events = conn.handle_timer(now)
            if deadline is not None and now >= deadline:
                (event,) = events
                assert isinstance(event, TimedOut) and event.kind in ("timeout", "idle")
                assert conn.state is State.CLOSED and conn.next_deadline() is None
                return
            assert events == []
            continue
        piece = data[pos : pos + value] if op == "data" else bytes([0xC4]) * value
        pos += len(piece) if op == "data" else 0
        try:
            events = conn.receive_data(piece, now)
        except ProtocolError:
            assert conn.state is State.CLOSED
            return
        for event in events:
            if isinstance(event, PublishRequested):
                if answer:
                    conn.accept_publish(event.stream_id)
                else:
                    conn.reject_publish(event.stream_id, "NetStream.Publish.Denied", "no")


def test_the_handshake_deadline_counts_from_accept() -> None:
    """Not from the first byte: a client that connects and waits gains nothing."""
    conn = ServerConnection(TIMED)
    conn.receive_data(client_c0c1(digest=False), 1.0)
    conn.receive_data(client_c2(conn.data_to_send()[1 : 1 + 1536]), 2.0)
    assert conn.state is State.AWAIT_CONNECT
    assert conn.next_deadline() == 10.0  # handshake deadline from accept at 0
