"""RTMP message types and the fixed-layout protocol control messages (RTMP 1.0 5.4, 6.2, 7.1)."""

from __future__ import annotations

import struct
from enum import IntEnum


class MessageType(IntEnum):
    SET_CHUNK_SIZE = 1
    ABORT = 2
    ACK = 3
    USER_CONTROL = 4
    WINDOW_ACK_SIZE = 5
    SET_PEER_BANDWIDTH = 6
    AUDIO = 8
    VIDEO = 9
    DATA_AMF3 = 15
    SHARED_OBJECT_AMF3 = 16
    COMMAND_AMF3 = 17
    DATA_AMF0 = 18
    SHARED_OBJECT_AMF0 = 19
    COMMAND_AMF0 = 20
    AGGREGATE = 22


class UserControl(IntEnum):
    STREAM_BEGIN = 0
    STREAM_EOF = 1
    STREAM_DRY = 2
    SET_BUFFER_LENGTH = 3
    STREAM_IS_RECORDED = 4
    PING_REQUEST = 6
    PING_RESPONSE = 7


class PeerBandwidthLimit(IntEnum):
    HARD = 0
    SOFT = 1
    DYNAMIC = 2


# Chunk stream ids the server writes on; nginx-rtmp uses the same split.
CSID_CONTROL = 2
CSID_COMMAND = 3
CSID_STATUS = 5

_U32 = struct.Struct(">I")
_U16_U32 = struct.Struct(">HI")


def u32(value: int) -> bytes:
    """Payload of Set Chunk Size, Ack and Window Ack Size."""
    return _U32.pack(value & 0xFFFFFFFF)


def set_peer_bandwidth(window: int, limit: PeerBandwidthLimit) -> bytes:
    return _U32.pack(window) + bytes((limit,))


def user_control(event: UserControl, value: int) -> bytes:
    return _U16_U32.pack(event, value & 0xFFFFFFFF)


def parse_u32(payload: bytes) -> int | None:
    return _U32.unpack_from(payload)[0] if len(payload) >= 4 else None


def parse_user_control(payload: bytes) -> tuple[int, int] | None:
    """(event type, first 32-bit argument); None when too short to carry both."""
    return _U16_U32.unpack_from(payload) if len(payload) >= 6 else None
