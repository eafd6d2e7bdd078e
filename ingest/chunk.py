"""RTMP chunk stream: bytes <-> whole messages (RTMP 1.0 section 5.3), sans-IO.

The decoder is the ingest hot path: every byte a publisher sends goes through `feed`, so it
works on offsets into the received buffer, copies each payload byte once where it can, and
only keeps a partial chunk (never more than one chunk plus its header) between calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .errors import ChunkError

DEFAULT_CHUNK_SIZE = 128
# The wire allows 31 bits, but a message length field has 24 bits: any chunk size at or above
# MAX_CHUNK_SIZE carries every message in one chunk, so larger values are clamped to it and
# behave exactly as the peer intends.
MAX_CHUNK_SIZE = 1 << 24
MAX_MESSAGE_SIZE = 8 << 20  # largest message accepted; a 4K IDR frame is well under this
MAX_CHUNK_STREAMS = 64  # chunk stream ids one connection may use (real clients use < 10)
MAX_PENDING_BYTES = 16 << 20  # bytes held in incomplete messages across all chunk streams

MSG_SET_CHUNK_SIZE = 1
MSG_ABORT = 2

# Runs of continuation chunks at least this long are copied out with numpy: its fixed cost
# of a few microseconds beats slicing chunk by chunk from about this many on.
_NUMPY_MIN_CHUNKS = 24
_MAX_HEADER = 18  # 3-byte basic header + 11-byte message header + 4-byte extended timestamp
_U32 = 0xFFFFFFFF
_EXTENDED = 0xFFFFFF


class RawMessage(NamedTuple):
    """A reassembled RTMP message. `timestamp` is the 32-bit wire value (wraps)."""

    csid: int
    timestamp: int
    type_id: int
    stream_id: int
    payload: bytes


# Building a NamedTuple through tuple.__new__ skips its generated Python-level __new__:
# a measurable share of the per-message cost once the rest is compiled.
_new_message = tuple.__new__


@dataclass(frozen=True, slots=True)
class ChunkLimits:
    max_message_size: int = MAX_MESSAGE_SIZE
    max_chunk_streams: int = MAX_CHUNK_STREAMS
    max_pending_bytes: int = MAX_PENDING_BYTES


class _ChunkStream:
    """Header state of one chunk stream id, kept between messages for header compression."""

    __slots__ = ("delta", "extended", "length", "parts", "received", "stream_id", "timestamp",
                 "type_id")

    def __init__(self) -> None:
        self.timestamp = 0  # absolute 32-bit timestamp of the current/last message
        self.delta = 0  # last timestamp field (delta, or absolute after fmt 0): fmt 3 reuses it
        self.extended = False  # last header used the extended timestamp field
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.received = 0  # bytes of the current message received so far
        self.parts: list[bytes] = []


class ChunkDecoder:
    """Reassembles messages from a peer's chunk stream.

    Set Chunk Size and Abort are applied here, as soon as they complete, because they change
    how the very next bytes must be parsed; they are not returned.
    """

    def __init__(self, limits: ChunkLimits | None = None) -> None:
        self.limits = limits or ChunkLimits()
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self._held: list[bytes] = []  # an incomplete chunk left over from earlier reads
        self._held_len = 0
        self._need = 0  # bytes the held chunk needs in all, when its header said
        self._streams: dict[int, _ChunkStream] = {}
        self._pending = 0

    @property
    def buffered_bytes(self) -> int:
        """Bytes held by the decoder: a partial chunk plus incomplete messages."""
        return self._held_len + self._pending

    def feed(self, data: bytes | bytearray | memoryview) -> list[RawMessage]:
        """Parse `data`; return every message it completes, in arrival order."""
        if not isinstance(data, bytes):
            data = bytes(data)
        out: list[RawMessage] = []
        if not self._held:
            self._keep(data, self._parse(data, out, 0))
            return out
        # A chunk straddles the previous read. Join only what completes it, not the whole
        # new read, and do not rescan at all while a large chunk is still arriving.
        self._held.append(data)
        self._held_len += len(data)
        if self._held_len < self._need:
            self._check_buffered()
            return out
        head = b"".join(self._held[:-1])
        take = self._need - len(head) if self._need else self.chunk_size + _MAX_HEADER
        joined = head + data[:take]
        pos = self._parse(joined, out, 0)
        if pos >= len(head):
            self._keep(data, self._parse(data, out, pos - len(head)))
        else:
            self._held = [joined[pos:], data[len(joined) - len(head) :]]
            self._held_len = len(self._held[0]) + len(self._held[1])
            self._check_buffered()
        return out

    def _keep(self, data: bytes, pos: int) -> None:
        rest = data[pos:]
        self._held = [rest] if rest else []
        self._held_len = len(rest)
        self._check_buffered()

    def _check_buffered(self) -> None:
        # A partial chunk counts too: with a huge chunk size, one chunk is a whole message.
        if self._held_len + self._pending > self.limits.max_pending_bytes:
            raise ChunkError("too many bytes held in unfinished messages", kind="pending_bytes")

    def _parse(self, buf: bytes, out: list[RawMessage], pos: int) -> int:
        """Parse whole chunks from `pos`; return where the first incomplete one starts.

        Sets `_need` to the bytes (from that position) the incomplete chunk needs, when its
        header says, else 0.
        """
        self._need = 0
        n = len(buf)
        streams = self._streams
        limits = self.limits
        from_bytes = int.from_bytes
        while pos < n:
            b0 = buf[pos]
            fmt = b0 >> 6
            csid = b0 & 0x3F
            h = pos + 1
            if csid == 0:
                if h >= n:
                    break
                csid = buf[h] + 64
                h += 1
            elif csid == 1:
                if h + 1 >= n:
                    break
                csid = buf[h] + (buf[h + 1] << 8) + 64
                h += 2

            cs = streams.get(csid)
            if cs is None:
                if fmt != 0:
                    raise ChunkError(f"chunk stream {csid} starts without a type 0 header")
                if len(streams) >= limits.max_chunk_streams:
                    raise ChunkError(
                        f"more than {limits.max_chunk_streams} chunk streams in use",
                        kind="chunk_streams",
                    )
                cs = _ChunkStream()
                streams[csid] = cs

            new_message = cs.received == 0
            if fmt == 3:
                if cs.extended:
                    # Extended timestamp on a type 3 chunk: FFmpeg repeats it, OBS does not.
                    # Consume the 4 bytes only when they equal the field (SRS's heuristic);
                    # wait for more only while what is here could still be that field.
                    field_bytes = cs.delta.to_bytes(4, "big")
                    if h + 4 <= n:
                        if buf[h : h + 4] == field_bytes:
                            h += 4
                    elif buf[h:n] == field_bytes[: n - h]:
                        break
                if new_message:
                    timestamp = (cs.timestamp + cs.delta) & _U32
                    length = cs.length
            else:
                if not new_message:
                    raise ChunkError(
                        f"type {fmt} header on chunk stream {csid} inside an unfinished message"
                    )
                if fmt == 0:
                    if h + 11 > n:
                        break
                    word = from_bytes(buf[h : h + 7], "big")
                    field = word >> 32
                    length = (word >> 8) & 0xFFFFFF
                    cs.type_id = word & 0xFF
                    cs.stream_id = from_bytes(buf[h + 7 : h + 11], "little")
                    h += 11
                elif fmt == 1:
                    if h + 7 > n:
                        break
                    word = from_bytes(buf[h : h + 7], "big")
                    field = word >> 32
                    length = (word >> 8) & 0xFFFFFF
                    cs.type_id = word & 0xFF
                    h += 7
                else:
                    if h + 3 > n:
                        break
                    field = from_bytes(buf[h : h + 3], "big")
                    length = cs.length
                    h += 3
                if field == _EXTENDED:
                    if h + 4 > n:
                        break
                    field = from_bytes(buf[h : h + 4], "big")
                    h += 4
                    cs.extended = True
                else:
                    cs.extended = False
                cs.delta = field
                timestamp = field if fmt == 0 else (cs.timestamp + field) & _U32

            if new_message:
                if length > limits.max_message_size:
                    raise ChunkError(
                        f"message of {length} bytes exceeds the {limits.max_message_size} cap",
                        kind="message_size",
                    )
                remaining = length
            else:
                remaining = cs.length - cs.received
            size = remaining if remaining < self.chunk_size else self.chunk_size
            end = h + size
            if end > n:
                self._need = end - pos
                break
            # The whole chunk is here: commit the header state and take the payload.
            pos = end
            if new_message:
                cs.timestamp = timestamp
                cs.length = length
                if size == length:
                    out.append(_new_message(
                        RawMessage, (csid, timestamp, cs.type_id, cs.stream_id, buf[h:end])))
                    if cs.type_id <= MSG_ABORT:
                        self._control(out.pop())
                    continue
                if self._pending + size > limits.max_pending_bytes:
                    raise ChunkError("too many bytes held in unfinished messages",
                                     kind="pending_bytes")
                cs.parts = [buf[h:end]]
                cs.received = size
                self._pending += size
                if csid < 64 and not cs.extended and length - size > self.chunk_size:
                    pos = self._take_continuations(buf, pos, csid, cs)
                    if cs.received == length:
                        self._complete(cs, csid, out)
                continue
            cs.parts.append(buf[h:end])
            cs.received += size
            self._pending += size
            if csid < 64 and not cs.extended and cs.length - cs.received > self.chunk_size:
                pos = self._take_continuations(buf, pos, csid, cs)
            if cs.received == cs.length:
                self._complete(cs, csid, out)
            elif self._pending > limits.max_pending_bytes:
                raise ChunkError("too many bytes held in unfinished messages",
                                 kind="pending_bytes")
        return pos

    def _take_continuations(self, buf: bytes, pos: int, csid: int, cs: _ChunkStream) -> int:
        """Take a run of type 3 continuation chunks of `csid` in one step.

        A frame larger than the chunk size is, unless another chunk stream interleaves, a
        regular grid of 1-byte headers and payloads. One strided slice checks all headers
        and the payloads come out as slices (or, for long runs as GStreamer's 128-byte
        chunks make, one numpy reshape): far cheaper than a loop iteration per chunk.
        Anything irregular (interleaving, extended timestamps) is left to the general loop.
        """
        size = self.chunk_size
        stride = size + 1
        remaining = cs.length - cs.received
        chunks = -(-remaining // size)
        last = remaining - (chunks - 1) * size
        if len(buf) - pos >= (chunks - 1) * stride + 1 + last:
            count = chunks  # the rest of the message is here
        else:
            count = min(chunks - 1, (len(buf) - pos) // stride)
        if count < 2:
            return pos
        marker = 0xC0 | csid
        heads = buf[pos : pos + (count - 1) * stride + 1 : stride]
        if heads.count(marker) != count:
            count -= len(heads.lstrip(bytes((marker,))))
            if count < 2:
                return pos
        full = count - 1 if count == chunks else count
        if full >= _NUMPY_MIN_CHUNKS:
            grid = np.frombuffer(buf, np.uint8, full * stride, pos).reshape(full, stride)
            cs.parts.append(grid[:, 1:].tobytes())
        else:
            cs.parts.extend([buf[p + 1 : p + stride] for p in range(pos, pos + full * stride,
                                                                     stride)])
        end = pos + full * stride
        taken = full * size
        if count == chunks:
            cs.parts.append(buf[end + 1 : end + 1 + last])
            end += 1 + last
            taken += last
        cs.received += taken
        self._pending += taken
        if self._pending > self.limits.max_pending_bytes:
            raise ChunkError("too many bytes held in unfinished messages", kind="pending_bytes")
        return end

    def _complete(self, cs: _ChunkStream, csid: int, out: list[RawMessage]) -> None:
        payload = b"".join(cs.parts)
        self._pending -= cs.length
        cs.parts = []
        cs.received = 0
        message = _new_message(RawMessage, (csid, cs.timestamp, cs.type_id, cs.stream_id, payload))
        if cs.type_id <= MSG_ABORT:
            self._control(message)
        else:
            out.append(message)

    def _control(self, message: RawMessage) -> None:
        if message.type_id == MSG_SET_CHUNK_SIZE:
            if len(message.payload) < 4:
                raise ChunkError("Set Chunk Size shorter than 4 bytes")
            size = int.from_bytes(message.payload[:4], "big")
            if size & 0x80000000 or size == 0:
                raise ChunkError(f"invalid chunk size {size}", kind="chunk_size")
            self.chunk_size = min(size, MAX_CHUNK_SIZE)
        elif message.type_id == MSG_ABORT:
            if len(message.payload) < 4:
                raise ChunkError("Abort message shorter than 4 bytes")
            cs = self._streams.get(int.from_bytes(message.payload[:4], "big"))
            if cs is not None and cs.received:
                self._pending -= cs.received
                cs.parts = []
                cs.received = 0
        # Type 0 is undefined; ignoring it is what FFmpeg and nginx-rtmp do.


def _basic_header(fmt: int, csid: int) -> bytes:
    if csid < 2:
        raise ValueError("chunk stream ids 0 and 1 are reserved for the header encoding")
    if csid < 64:
        return bytes((fmt << 6 | csid,))
    if csid < 320:
        return bytes((fmt << 6, csid - 64))
    if csid < 65600:
        rest = csid - 64
        return bytes((fmt << 6 | 1, rest & 0xFF, rest >> 8))
    raise ValueError(f"chunk stream id {csid} out of range")


class ChunkEncoder:
    """Splits messages into chunks.

    With `compress=True` it uses type 1/2/3 headers the way librtmp and FFmpeg do when the
    previous message on the chunk stream allows it; `repeat_extended` writes the extended
    timestamp on type 3 chunks as FFmpeg does (OBS does not). The server uses the plain form;
    the compressed forms exist so tests and benchmarks can speak like each real client.
    """

    def __init__(self, *, compress: bool = False, repeat_extended: bool = True) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.compress = compress
        self.repeat_extended = repeat_extended
        self._last: dict[int, tuple[int, int, int, int, int]] = {}  # ts, delta, len, type, sid

    def encode(
        self, csid: int, timestamp: int, type_id: int, stream_id: int, payload: bytes
    ) -> bytes:
        timestamp &= _U32
        length = len(payload)
        if length > 0xFFFFFF:
            raise ValueError("message longer than 2^24 - 1 bytes")
        last = self._last.get(csid)
        fmt = 0
        field = timestamp
        if self.compress and last is not None and last[4] == stream_id:
            delta = (timestamp - last[0]) & _U32
            field = delta
            fmt = (3 if delta == last[1] else 2) if last[2] == length and last[3] == type_id else 1
        self._last[csid] = (timestamp, field, length, type_id, stream_id)
        extended = field >= _EXTENDED
        wire_field = _EXTENDED if extended else field
        parts = [_basic_header(fmt, csid)]
        if fmt == 0:
            parts.append(wire_field.to_bytes(3, "big") + length.to_bytes(3, "big")
                         + bytes((type_id,)) + stream_id.to_bytes(4, "little"))
        elif fmt == 1:
            parts.append(wire_field.to_bytes(3, "big") + length.to_bytes(3, "big")
                         + bytes((type_id,)))
        elif fmt == 2:
            parts.append(wire_field.to_bytes(3, "big"))
        ext = field.to_bytes(4, "big") if extended else b""
        if fmt != 3 or self.repeat_extended:
            parts.append(ext)
        continuation = _basic_header(3, csid) + (ext if self.repeat_extended else b"")
        size = self.chunk_size
        parts.append(payload[:size])
        for offset in range(size, length, size):
            parts.append(continuation)
            parts.append(payload[offset : offset + size])
        return b"".join(parts)
