"""RTMP server handshake against real publisher captures, hand-built C1s and fuzzed input.

The digest checks here recompute every HMAC straight from the published algorithm (FFmpeg's
rtmpproto.c, nginx-rtmp's ngx_rtmp_handshake.c) instead of calling the module's helpers, so a
shared mistake in the module cannot make its own tests pass.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from golive.ingest.errors import HandshakeError, LocalProtocolError, ProtocolError
from golive.ingest.handshake import (
    ServerHandshake,
    client_c0c1,
    client_c2,
    validate_server_digest,
)

CAPTURES = Path(__file__).parent / "data" / "captures"
SIZE = 1536
C0C1C2 = 1 + 2 * SIZE
TRAILING = 100  # chunk-stream bytes that must be left unconsumed

TAIL = bytes.fromhex("F0EEC24A8068BEE82E00D0D1029E7E576EEC5D2D29806FAB93B8E636CFEB31AE")
PLAYER_KEY_OPEN = b"Genuine Adobe Flash Player 001"
SERVER_KEY_OPEN = b"Genuine Adobe Flash Media Server 001"
SERVER_KEY_FULL = SERVER_KEY_OPEN + TAIL

DIGEST_CAPTURES = ["ffmpeg5.1-h264", "ffmpeg7.0-av1-ertmp", "ffmpeg7.0-h264"]
DIGEST_CAPTURES += ["ffmpeg7.0-hevc-ertmp", "pyav18.1-h264"]
SIMPLE_CAPTURES = ["gst1.22-librtmp-h264", "gst1.22-rtmp2sink-h264", "obs29.0-h264"]
ALL_CAPTURES = DIGEST_CAPTURES + SIMPLE_CAPTURES


# --- independent reference implementation of the digest formulas -------------------------


def ref_offset(packet: bytes, base: int) -> int:
    return sum(packet[base : base + 4]) % 728 + base + 4


def ref_digest_at(packet: bytes, base: int, key: bytes) -> bytes | None:
    """The 32-byte digest at schema `base` if it validates with `key`, else None."""
    off = ref_offset(packet, base)
    mac = hmac.new(key, packet[:off] + packet[off + 32 :], hashlib.sha256).digest()
    return mac if mac == packet[off : off + 32] else None


def ref_s2_valid(c1_digest: bytes, s2: bytes) -> bool:
    key = hmac.new(SERVER_KEY_FULL, c1_digest, hashlib.sha256).digest()
    return hmac.new(key, s2[:1504], hashlib.sha256).digest() == s2[1504:]


def ref_sign(packet: bytearray, base: int, key: bytes) -> None:
    off = ref_offset(packet, base)
    packet[off : off + 32] = hmac.new(
        key, bytes(packet[:off] + packet[off + 32 :]), hashlib.sha256
    ).digest()


# --- helpers --------------------------------------------------------------------------------


def load(name: str) -> bytes:
    with open(CAPTURES / f"{name}.c2s.bin", "rb") as f:
        return f.read(C0C1C2 + TRAILING)


def trace_says_digest(name: str) -> bool:
    """What the independent parser recorded for the client's side of the handshake."""
    for line in (CAPTURES / f"{name}.trace.txt").read_text().splitlines():
        if "C>S handshake done" in line:
            return "complex(digest)" in line
    raise AssertionError(f"no client handshake line in {name}.trace.txt")


def split_random(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    pieces, pos = [], 0
    while pos < len(data):
        n = rng.randint(1, 700)
        pieces.append(data[pos : pos + n])
        pos += n
    return pieces


def feed(hs: ServerHandshake, pieces: list[bytes]) -> tuple[int, bytes]:
    """Feed like a connection loop would; return (bytes consumed, everything sent)."""
    consumed, sent = 0, bytearray()
    for piece in pieces:
        n = hs.receive_data(piece)
        assert 0 <= n <= len(piece)
        if n < len(piece):
            assert hs.complete  # only the bytes after C2 may be refused
        consumed += n
        sent += hs.data_to_send()
    return consumed, bytes(sent)


def splits(data: bytes) -> dict[str, list[bytes]]:
    return {
        "whole": [data],
        "random": split_random(data, seed=1935),
        "random2": split_random(data, seed=443),
        "bytewise": [data[i : i + 1] for i in range(len(data))],
    }


# --- real captures --------------------------------------------------------------------------


def test_capture_classification_matches_traces() -> None:
    for name in DIGEST_CAPTURES:
        assert trace_says_digest(name), name
    for name in SIMPLE_CAPTURES:
        assert not trace_says_digest(name), name


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_real_capture_handshake(name: str) -> None:
    data = load(name)
    c1 = data[1 : 1 + SIZE]
    expect_digest = trace_says_digest(name)
    for how, pieces in splits(data).items():
        hs = ServerHandshake()
        consumed, sent = feed(hs, pieces)
        assert consumed == C0C1C2, how
        assert hs.complete, how
        assert hs.digest is expect_digest, how
        assert len(sent) == C0C1C2, how
        s0, s1, s2 = sent[0], sent[1 : 1 + SIZE], sent[1 + SIZE :]
        assert s0 == 3
        assert len(s1) == SIZE and len(s2) == SIZE
        if expect_digest:
            assert s1[4:8] != b"\0\0\0\0"
            assert s1[4] >= 3  # FFmpeg as a player only checks digests from version >= 3
            assert validate_server_digest(c1, s1, s2), how
        else:
            assert s1[4:8] == b"\0\0\0\0"
            assert s2 == c1, how
            assert not validate_server_digest(c1, s1, s2)


@pytest.mark.parametrize("name", DIGEST_CAPTURES)
def test_real_digest_answer_independently(name: str) -> None:
    data = load(name)
    c1 = data[1 : 1 + SIZE]
    # FFmpeg signs a plain-RTMP C1 at schema 0 with the 30-byte open part of the player key.
    c1_digest = ref_digest_at(c1, 8, PLAYER_KEY_OPEN)
    assert c1_digest is not None
    assert c1[4:8] == bytes((9, 0, 124, 2))

    hs = ServerHandshake()
    hs.receive_data(data)
    sent = hs.data_to_send()
    s1, s2 = sent[1 : 1 + SIZE], sent[1 + SIZE :]
    # We answer with the schema the client used.
    assert ref_digest_at(s1, 8, SERVER_KEY_OPEN) is not None
    assert ref_s2_valid(c1_digest, s2)
    # A wrong key must not validate: guards against a reference that accepts anything.
    assert ref_digest_at(s1, 8, PLAYER_KEY_OPEN) is None


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_answer_sent_once_c1_complete_before_c2(name: str) -> None:
    data = load(name)
    hs = ServerHandshake()
    assert hs.receive_data(data[:SIZE]) == SIZE  # C0 + all but the last C1 byte
    assert hs.data_to_send() == b""
    assert hs.receive_data(data[SIZE : SIZE + 1]) == 1
    sent = hs.data_to_send()
    assert len(sent) == C0C1C2 and not hs.complete
    assert hs.data_to_send() == b""  # output is handed out once
    assert hs.receive_data(data[1 + SIZE : C0C1C2 - 1]) == SIZE - 1
    assert not hs.complete
    assert hs.receive_data(data[C0C1C2 - 1 :]) == 1  # last C2 byte, chunk stream refused
    assert hs.complete
    assert hs.receive_data(data[C0C1C2:]) == 0
    assert hs.data_to_send() == b""


def test_c2_is_not_validated() -> None:
    # FFmpeg publishers echo S1 even after a digest C1; garbage must be accepted just the same.
    for digest in (True, False):
        hs = ServerHandshake()
        hs.receive_data(client_c0c1(digest=digest))
        assert len(hs.data_to_send()) == C0C1C2
        assert hs.receive_data(b"\xa5" * SIZE) == SIZE
        assert hs.complete


def test_buffer_types() -> None:
    data = load("ffmpeg7.0-h264")
    for wrap in (bytes, bytearray, memoryview):
        hs = ServerHandshake()
        assert hs.receive_data(wrap(data)) == C0C1C2
        assert hs.complete and hs.digest
    # A non-byte memoryview is counted in bytes, not items.
    hs = ServerHandshake()
    assert hs.receive_data(memoryview(data[:C0C1C2]).cast("B", (C0C1C2,))) == C0C1C2
    assert hs.complete


def test_caller_buffer_not_pinned_after_error() -> None:
    buf = bytearray(b"\x06" + bytes(SIZE))
    with pytest.raises(HandshakeError):
        ServerHandshake().receive_data(buf)
    del buf[:1]  # would raise BufferError if a memoryview export leaked


# --- client helpers and hand-built C1s ------------------------------------------------------


def counting_random(n: int) -> bytes:
    return bytes(i & 0xFF for i in range(n))


def test_client_helpers() -> None:
    c0c1 = client_c0c1(digest=True)
    assert len(c0c1) == 1 + SIZE and c0c1[0] == 3
    assert c0c1[5:9] == bytes((9, 0, 124, 2))
    assert ref_digest_at(c0c1[1:], 8, PLAYER_KEY_OPEN) is not None

    plain = client_c0c1(digest=False)
    assert len(plain) == 1 + SIZE and plain[0] == 3 and plain[5:9] == b"\0\0\0\0"

    s1 = bytes(range(256)) * 6
    assert client_c2(s1) == s1
    with pytest.raises(ValueError):
        client_c2(s1[:-1])
    with pytest.raises(ValueError):
        validate_server_digest(c0c1[1:], s1, s1[:-1])


@pytest.mark.parametrize("digest", [True, False])
def test_round_trip_with_client_helpers(digest: bool) -> None:
    c0c1 = client_c0c1(digest=digest)
    hs = ServerHandshake(uptime_ms=0x1_2345_6789)
    assert hs.receive_data(c0c1) == 1 + SIZE
    sent = hs.data_to_send()
    s1, s2 = sent[1 : 1 + SIZE], sent[1 + SIZE :]
    assert s1[:4] == bytes.fromhex("23456789")  # uptime wraps into the 32-bit time field
    assert hs.digest is digest
    assert validate_server_digest(c0c1[1:], s1, s2) is digest
    assert hs.receive_data(client_c2(s1) + b"\x02rest") == SIZE
    assert hs.complete


def test_schema1_client_gets_schema1_answer() -> None:
    c1 = bytearray(b"\0\0\0\0" + bytes((10, 0, 32, 18)) + random.Random(7).randbytes(SIZE - 8))
    ref_sign(c1, 772, PLAYER_KEY_OPEN)
    hs = ServerHandshake()
    hs.receive_data(b"\x03" + bytes(c1))
    assert hs.digest
    sent = hs.data_to_send()
    s1, s2 = sent[1 : 1 + SIZE], sent[1 + SIZE :]
    assert ref_digest_at(s1, 772, SERVER_KEY_OPEN) is not None
    c1_digest = ref_digest_at(bytes(c1), 772, PLAYER_KEY_OPEN)
    assert c1_digest is not None and ref_s2_valid(c1_digest, s2)
    assert validate_server_digest(bytes(c1), s1, s2)


def test_broken_digest_falls_back_to_echo() -> None:
    c0c1 = bytearray(client_c0c1(digest=True))
    off = 1 + ref_offset(bytes(c0c1[1:]), 8)
    c0c1[off] ^= 0xFF
    hs = ServerHandshake()
    hs.receive_data(bytes(c0c1))
    assert not hs.digest
    sent = hs.data_to_send()
    assert sent[1 + SIZE :] == bytes(c0c1[1:])
    assert sent[5:9] == b"\0\0\0\0"


def test_zero_version_never_tries_digest() -> None:
    # A valid-looking digest is ignored when the version field says "spec-style client".
    c1 = bytearray(bytes(8) + random.Random(3).randbytes(SIZE - 8))
    ref_sign(c1, 8, PLAYER_KEY_OPEN)
    hs = ServerHandshake()
    hs.receive_data(b"\x03" + bytes(c1))
    assert not hs.digest
    assert hs.data_to_send()[1 + SIZE :] == bytes(c1)


def test_injected_randomness_is_deterministic() -> None:
    c0c1 = client_c0c1(digest=True, random_bytes=counting_random)
    outputs = []
    for _ in range(2):
        hs = ServerHandshake(random_bytes=counting_random, uptime_ms=5)
        hs.receive_data(c0c1)
        outputs.append(hs.data_to_send())
    assert outputs[0] == outputs[1]
    hs = ServerHandshake(random_bytes=lambda n: bytes(n - 1))
    with pytest.raises(LocalProtocolError):
        hs.receive_data(c0c1)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2, 4, 0x16, ord("G"), 0xFF])
def test_bad_version_byte(version: int) -> None:
    hs = ServerHandshake()
    with pytest.raises(HandshakeError) as info:
        hs.receive_data(bytes((version,)) + bytes(SIZE))
    assert info.value.kind == "handshake"
    assert hs.data_to_send() == b""
    assert not hs.complete
    with pytest.raises(LocalProtocolError):
        hs.receive_data(b"\x03")


def test_rtmpe_is_refused_clearly() -> None:
    hs = ServerHandshake()
    with pytest.raises(HandshakeError, match=r"encrypted RTMP \(RTMPE\) is not supported"):
        hs.receive_data(b"\x06")


def test_empty_input() -> None:
    hs = ServerHandshake()
    assert hs.receive_data(b"") == 0
    assert hs.data_to_send() == b""
    assert not hs.complete


_REAL_C0C1 = [load("ffmpeg7.0-h264")[: 1 + SIZE], load("obs29.0-h264")[: 1 + SIZE]]


@st.composite
def fuzz_input(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    head = draw(st.sampled_from([b"", b"\x03", b"\x06", *_REAL_C0C1]))
    data = bytearray(head + draw(st.binary(max_size=2 * SIZE)))
    for _ in range(draw(st.integers(0, 3))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=8))
    return bytes(data), sorted(cuts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fuzz_input())
def test_fuzz_never_crashes(case: tuple[bytes, list[int]]) -> None:
    data, cuts = case
    bounds = [0, *cuts, len(data)]
    hs = ServerHandshake()
    consumed, sent = 0, 0
    try:
        for start, stop in itertools.pairwise(bounds):
            n = hs.receive_data(data[start:stop])
            assert 0 <= n <= stop - start
            consumed += n
            sent += len(hs.data_to_send())
            assert sent <= C0C1C2
    except HandshakeError as exc:
        assert isinstance(exc, ProtocolError)
        assert data[0] != 3
        return
    assert consumed == min(len(data), C0C1C2)
    assert hs.complete is (len(data) >= C0C1C2)
    assert sent == (C0C1C2 if len(data) >= 1 + SIZE else 0)
