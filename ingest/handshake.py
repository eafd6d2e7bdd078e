"""Sans-IO server side of the RTMP handshake (C0 C1 C2 in, S0 S1 S2 out).

Two answers exist in the wild. The plain one from the RTMP spec echoes C1 as S2. The "digest"
(a.k.a. complex) one, from Flash Media Server, signs S1 and S2 with HMAC-SHA256 keys taken from
the Flash player and server binaries; a Flash-style *player* (FFmpeg reading rtmp://) refuses a
server whose S1 carries a version yet no valid digest. We answer digest-style exactly when C1
proves it speaks it (non-zero version field and a digest that validates), otherwise plainly.
C2 is never checked: publishers echo S1 even after a digest C1, and checking buys no security.

The module also carries a minimal *client* side (`client_c0c1`, `client_c2`,
`validate_server_digest`) so tests and benchmarks can drive the server as FFmpeg or OBS would.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import struct
from collections.abc import Callable

from golive.ingest.errors import HandshakeError, LocalProtocolError

__all__ = [
    "HANDSHAKE_SIZE",
    "RTMP_VERSION",
    "ServerHandshake",
    "client_c0c1",
    "client_c2",
    "validate_server_digest",
]

RTMP_VERSION = 3
HANDSHAKE_SIZE = 1536
DIGEST_SIZE = 32

# C0 values of RTMPE (encrypted RTMP: 6 = Diffie-Hellman + RC4, 8 and 9 = the XTEA/Blowfish
# variants). Named separately so the peer gets an actionable message, not "bad version".
_RTMPE_VERSIONS = frozenset({6, 8, 9})
# First bytes of protocols people commonly point at an RTMP port by mistake.
_TLS_HANDSHAKE_RECORD = 0x16
_HTTP_FIRST_BYTES = frozenset(b"GPHOCD")

# The 32 bytes both Adobe keys share after their readable prefix.
_KEY_TAIL = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
_CLIENT_KEY_PREFIX = b"Genuine Adobe Flash Player 001"  # 30 bytes: signs C1
_SERVER_KEY_PREFIX = b"Genuine Adobe Flash Media Server 001"  # 36 bytes: signs S1
# The full 68-byte server key only derives the key that signs S2.
_SERVER_KEY_FULL = _SERVER_KEY_PREFIX + _KEY_TAIL

# Digest "schemas": the 4 bytes at `base` choose where in the packet the digest sits. FMS and
# nginx-rtmp try schema 1 before schema 0, so we do too; clients pick either.
_SCHEMA_BASES = (772, 8)
_DIGEST_RANGE = 728

# What we claim to be in a digest S1: nginx-rtmp's FMS-like value. FFmpeg (as a player) only
# validates our digest when the first version byte is >= 3, which this satisfies.
_SERVER_VERSION = bytes((0x0D, 0x0E, 0x0A, 0x0D))
# FFmpeg's emulated Flash client version, 9.0.124.2.
_FFMPEG_CLIENT_VERSION = bytes((9, 0, 124, 2))

_RandomBytes = Callable[[int], bytes]
_Buffer = bytes | bytearray | memoryview


class _State(enum.Enum):
    AWAIT_C0 = enum.auto()
    AWAIT_C1 = enum.auto()
    AWAIT_C2 = enum.auto()
    COMPLETE = enum.auto()
    FAILED = enum.auto()


def _hmac_sha256(key: bytes, msg: bytes | bytearray) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _digest_offset(packet: bytes | bytearray, base: int) -> int:
    return sum(packet[base : base + 4]) % _DIGEST_RANGE + base + 4


def _packet_digest(packet: bytes | bytearray, offset: int, key: bytes) -> bytes:
    # The HMAC covers the whole packet except the 32 bytes that will hold it.
    return _hmac_sha256(key, packet[:offset] + packet[offset + DIGEST_SIZE :])


def _find_digest(packet: bytes | bytearray, key: bytes) -> tuple[int, int] | None:
    """Return (schema base, digest offset) of the first schema whose digest validates."""
    for base in _SCHEMA_BASES:
        offset = _digest_offset(packet, base)
        expected = _packet_digest(packet, offset, key)
        if hmac.compare_digest(expected, bytes(packet[offset : offset + DIGEST_SIZE])):
            return base, offset
    return None


def _imprint_digest(packet: bytearray, base: int, key: bytes) -> int:
    offset = _digest_offset(packet, base)
    packet[offset : offset + DIGEST_SIZE] = _packet_digest(packet, offset, key)
    return offset


def _signed_response(peer_digest: bytes, full_key: bytes, random_bytes: _RandomBytes) -> bytes:
    """Random bytes whose last 32 sign the rest with a key bound to the peer's digest."""
    body = _random(random_bytes, HANDSHAKE_SIZE - DIGEST_SIZE)
    return body + _hmac_sha256(_hmac_sha256(full_key, peer_digest), body)


def _random(random_bytes: _RandomBytes, n: int) -> bytes:
    data = bytes(random_bytes(n))
    if len(data) != n:
        # An injected source that returns the wrong size would silently shift every field.
        raise LocalProtocolError(f"random_bytes({n}) returned {len(data)} bytes")
    return data


def _version_error(version: int) -> HandshakeError:
    if version in _RTMPE_VERSIONS:
        return HandshakeError(
            f"encrypted RTMP (RTMPE) is not supported (C0 version byte {version}); "
            "publish with plain rtmp://"
        )
    if version == _TLS_HANDSHAKE_RECORD:
        return HandshakeError(
            "received a TLS handshake on the plain RTMP port (rtmps:// to an rtmp:// listener?)"
        )
    hint = " (looks like HTTP)" if version in _HTTP_FIRST_BYTES else ""
    return HandshakeError(
        f"unsupported RTMP version byte 0x{version:02x}, expected {RTMP_VERSION}{hint}"
    )


class ServerHandshake:
    """Server end of one connection's handshake; feed it bytes, send what it produces.

    `receive_data` stops consuming at the end of C2, so whatever follows in the same read is
    left for the chunk-stream parser. S0+S1+S2 are produced together as soon as C1 is
    complete, because FFmpeg and GStreamer wait for all three before sending C2.
    """

    def __init__(self, *, random_bytes: _RandomBytes = os.urandom, uptime_ms: int = 0) -> None:
        self._random_bytes = random_bytes
        # The time field is 32-bit ms and wraps, so any uptime maps onto it.
        self._uptime = uptime_ms & 0xFFFFFFFF
        self._state = _State.AWAIT_C0
        self._c1 = bytearray()
        # C2 is never inspected, so it is counted rather than buffered.
        self._c2_received = 0
        self._outgoing = bytearray()
        self._digest = False

    @property
    def complete(self) -> bool:
        return self._state is _State.COMPLETE

    @property
    def digest(self) -> bool:
        return self._digest

    def data_to_send(self) -> bytes:
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    def receive_data(self, data: _Buffer) -> int:
        """Consume handshake bytes from `data` and return how many were consumed.

        Anything past the end of C2 is not consumed. Raises HandshakeError on a C0 other
        than 3; the connection must then be dropped.
        """
        if self._state is _State.FAILED:
            raise LocalProtocolError("receive_data() called after the handshake failed")
        # Release the views even on error: a live export would stop the caller from resizing
        # its bytearray receive buffer.
        with memoryview(data) as raw, raw.cast("B") as view:
            return self._consume(view)

    def _consume(self, view: memoryview) -> int:
        pos = 0
        end = len(view)
        if self._state is _State.AWAIT_C0 and pos < end:
            version = view[pos]
            if version != RTMP_VERSION:
                self._state = _State.FAILED
                raise _version_error(version)
            pos += 1
            self._state = _State.AWAIT_C1
        if self._state is _State.AWAIT_C1 and pos < end:
            take = min(HANDSHAKE_SIZE - len(self._c1), end - pos)
            self._c1 += view[pos : pos + take]
            pos += take
            if len(self._c1) == HANDSHAKE_SIZE:
                # Stay FAILED if building the answer raises: C1 is gone by then.
                self._state = _State.FAILED
                self._answer_c1()
                self._state = _State.AWAIT_C2
        if self._state is _State.AWAIT_C2 and pos < end:
            take = min(HANDSHAKE_SIZE - self._c2_received, end - pos)
            self._c2_received += take
            pos += take
            if self._c2_received == HANDSHAKE_SIZE:
                self._state = _State.COMPLETE
        return pos

    def _answer_c1(self) -> None:
        c1 = bytes(self._c1)
        # C1 is only needed to build S2; drop it so a finished handshake holds no buffers.
        self._c1 = bytearray()
        found = None
        # A zero version field means a spec-style client; never guess a digest there.
        if c1[4:8] != b"\0\0\0\0":
            found = _find_digest(c1, _CLIENT_KEY_PREFIX)
        time_field = struct.pack(">I", self._uptime)
        if found is None:
            s1 = time_field + b"\0\0\0\0" + _random(self._random_bytes, HANDSHAKE_SIZE - 8)
            s2 = c1
        else:
            base, offset = found
            packet = bytearray(
                time_field + _SERVER_VERSION + _random(self._random_bytes, HANDSHAKE_SIZE - 8)
            )
            # Same schema as the client used, like FMS; FFmpeg accepts either anyway.
            _imprint_digest(packet, base, _SERVER_KEY_PREFIX)
            s1 = bytes(packet)
            s2 = _signed_response(
                c1[offset : offset + DIGEST_SIZE], _SERVER_KEY_FULL, self._random_bytes
            )
            self._digest = True
        self._outgoing += bytes((RTMP_VERSION,)) + s1 + s2


def client_c0c1(*, digest: bool, random_bytes: _RandomBytes = os.urandom) -> bytes:
    """C0+C1 as a publisher sends them: FFmpeg-style digest (schema 0) or OBS-style plain."""
    rest = _random(random_bytes, HANDSHAKE_SIZE - 8)
    if not digest:
        return bytes((RTMP_VERSION,)) + b"\0\0\0\0" + b"\0\0\0\0" + rest
    c1 = bytearray(b"\0\0\0\0" + _FFMPEG_CLIENT_VERSION + rest)
    # FFmpeg signs plain-RTMP C1s at schema 0 with the 30-byte open part of the player key.
    _imprint_digest(c1, 8, _CLIENT_KEY_PREFIX)
    return bytes((RTMP_VERSION,)) + bytes(c1)


def client_c2(s1: _Buffer) -> bytes:
    """C2 as FFmpeg and OBS publishers send it: an exact echo of S1."""
    s1 = bytes(s1)
    if len(s1) != HANDSHAKE_SIZE:
        raise ValueError(f"S1 must be {HANDSHAKE_SIZE} bytes, got {len(s1)}")
    return s1


def validate_server_digest(c1: _Buffer, s1: _Buffer, s2: _Buffer) -> bool:
    """Check S1 and S2 the way FFmpeg does when it plays from a server.

    S1 must carry a digest (schema 1 or 0) made with the 36-byte server key, and S2's last
    32 bytes must sign the rest of S2 with a key derived from C1's digest. Returns False for
    a plain (non-digest) answer or a C1 without a valid client digest.
    """
    c1, s1, s2 = bytes(c1), bytes(s1), bytes(s2)
    for name, packet in (("C1", c1), ("S1", s1), ("S2", s2)):
        if len(packet) != HANDSHAKE_SIZE:
            raise ValueError(f"{name} must be {HANDSHAKE_SIZE} bytes, got {len(packet)}")
    client = _find_digest(c1, _CLIENT_KEY_PREFIX)
    if client is None or _find_digest(s1, _SERVER_KEY_PREFIX) is None:
        return False
    _, offset = client
    key = _hmac_sha256(_SERVER_KEY_FULL, c1[offset : offset + DIGEST_SIZE])
    expected = _hmac_sha256(key, s2[: HANDSHAKE_SIZE - DIGEST_SIZE])
    return hmac.compare_digest(expected, s2[HANDSHAKE_SIZE - DIGEST_SIZE :])
