"""AMF0 encoding and decoding for RTMP command (type 20) and data (type 18) messages.

Pure functions over bytes: no I/O, no asyncio, stdlib only, so the sans-IO RTMP core and the
tests can call them directly.

Python mapping (encode):
    None -> Null, bool -> Boolean, int/float -> Number, str -> String or Long String,
    dict -> Object, EcmaArray -> ECMA array, list/tuple -> Strict array, AmfDate -> Date,
    UNDEFINED -> Undefined (never sent by the server itself: FFmpeg cannot skip it, so the
    server always sends None).

Decoding is the inverse, with these choices:
    - Every Number decodes to float, even 1.0: AMF0 has no integer type, and guessing would make
      the same wire value come back as different Python types. Callers needing an int convert it.
    - Invalid UTF-8 in strings and keys is replaced (U+FFFD) rather than rejected: real encoders
      put free text (encoder names, titles) in metadata and one bad byte must not drop a stream.
    - Reference (0x07) raises AmfError. No RTMP encoder emits references, and resolving them
      could build cyclic structures that every later consumer (logging, JSON) would trip over.
    - Typed Object (0x10) decodes to a plain dict; its class name is dropped.
    - XML document (0x0F) decodes to str; Unsupported (0x0D) decodes to UNDEFINED.
    - An ECMA array's count is ignored (encoders get it wrong), and a missing end marker is
      accepted when the data ends right after a complete property, as some encoders omit it.
    - An Object property with an empty name that is not the end marker is kept under key "".

Every malformed input raises AmfError (the peer's fault). Encoding values that AMF0 cannot
represent is our own bug, so it raises TypeError or ValueError instead, like json.dumps.
"""

import enum
import struct
from dataclasses import dataclass
from typing import Final, TypeAlias

from golive.ingest.errors import AmfError

__all__ = [
    "MAX_DEPTH",
    "MAX_ELEMENTS",
    "UNDEFINED",
    "AmfDate",
    "AmfValue",
    "EcmaArray",
    "decode_all",
    "decode_one",
    "encode",
]

# Containers may nest this many levels; one more is rejected. Real commands nest two levels at
# most, and the limit keeps hostile input far away from Python's recursion limit.
MAX_DEPTH: Final = 64

# Values (containers and their contents, all levels, including top-level values) one decode call
# may produce. Each value costs at least one input byte but far more memory once decoded, so
# this bounds what a single maximum-size (16 MiB) RTMP message can make us allocate.
MAX_ELEMENTS: Final = 1 << 16

_NUMBER: Final = 0x00
_BOOLEAN: Final = 0x01
_STRING: Final = 0x02
_OBJECT: Final = 0x03
_MOVIECLIP: Final = 0x04
_NULL: Final = 0x05
_UNDEFINED: Final = 0x06
_REFERENCE: Final = 0x07
_ECMA_ARRAY: Final = 0x08
_OBJECT_END: Final = 0x09
_STRICT_ARRAY: Final = 0x0A
_DATE: Final = 0x0B
_LONG_STRING: Final = 0x0C
_UNSUPPORTED: Final = 0x0D
_RECORDSET: Final = 0x0E
_XML_DOCUMENT: Final = 0x0F
_TYPED_OBJECT: Final = 0x10
_AVMPLUS: Final = 0x11

_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_DOUBLE: Final = struct.Struct(">d")
_NUMBER_VALUE: Final = struct.Struct(">Bd")
_DATE_VALUE: Final = struct.Struct(">dh")
_MARKER_U16: Final = struct.Struct(">BH")
_MARKER_U32: Final = struct.Struct(">BI")

_END_MARKER: Final = b"\x00\x00\x09"
_U16_MAX: Final = 0xFFFF
_U32_MAX: Final = 0xFFFFFFFF


class EcmaArray(dict[str, "AmfValue"]):
    """A dict that encodes as an AMF0 ECMA array (0x08); decoded ECMA arrays come back as this.

    Plain dicts encode as Objects (0x03). The distinction matters because onMetaData must be an
    ECMA array for players and muxers that look it up by type.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"EcmaArray({dict.__repr__(self)})"


class _UndefinedType(enum.Enum):
    # An enum member is the cheapest way to get a singleton that survives copy and pickle.
    UNDEFINED = "UNDEFINED"

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = _UndefinedType.UNDEFINED
"""AMF0 Undefined (0x06); also what Unsupported (0x0D) decodes to. Distinct from Null (None)."""


@dataclass(frozen=True, slots=True)
class AmfDate:
    """AMF0 Date (0x0B): milliseconds since the Unix epoch (UTC) and the reserved timezone field.

    The spec says tz should be 0 and ignored; it is kept so a decoded date re-encodes unchanged.
    """

    ms: float
    tz: int = 0


AmfValue: TypeAlias = (
    "float | bool | str | AmfDate | _UndefinedType | dict[str, AmfValue] | list[AmfValue] | None"
)
"""What decoding yields. Peer-controlled, so callers must check types before use."""


# ---------------------------------------------------------------------------------------------
# Encoding


def encode(*values: object) -> bytes:
    """Encode each value in turn and return the concatenation (e.g. a whole command body).

    Raises TypeError for a value AMF0 has no type for (bytes, set, non-str keys, ...) and
    ValueError for one it cannot represent (empty or over-long key, nesting deeper than MAX_DEPTH,
    which includes cyclic containers, an int beyond the double range).
    """
    out = bytearray()
    for value in values:
        _encode_value(out, value, 0)
    return bytes(out)


def _encode_value(out: bytearray, value: object, depth: int) -> None:
    # bool before int/float: bool is an int subclass but must stay a Boolean on the wire.
    if value is None:
        out.append(_NULL)
    elif isinstance(value, bool):
        out += b"\x01\x01" if value else b"\x01\x00"
    elif isinstance(value, int | float):
        try:
            out += _NUMBER_VALUE.pack(_NUMBER, float(value))
        except OverflowError:
            raise ValueError(f"number too large for an AMF0 double: {value!r}") from None
    elif isinstance(value, str):
        _encode_string(out, value)
    elif isinstance(value, dict):
        _check_depth(depth)
        if isinstance(value, EcmaArray):
            if len(value) > _U32_MAX:
                raise ValueError("ECMA array too long for AMF0")
            out += _MARKER_U32.pack(_ECMA_ARRAY, len(value))
        else:
            out.append(_OBJECT)
        for key, item in value.items():
            _encode_key(out, key)
            _encode_value(out, item, depth + 1)
        out += _END_MARKER
    elif isinstance(value, list | tuple):
        _check_depth(depth)
        if len(value) > _U32_MAX:
            raise ValueError("strict array too long for AMF0")
        out += _MARKER_U32.pack(_STRICT_ARRAY, len(value))
        for item in value:
            _encode_value(out, item, depth + 1)
    elif isinstance(value, AmfDate):
        out.append(_DATE)
        try:
            out += _DATE_VALUE.pack(value.ms, value.tz)
        except (struct.error, OverflowError):
            raise ValueError(f"AmfDate not representable in AMF0: {value!r}") from None
    elif value is UNDEFINED:
        out.append(_UNDEFINED)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as AMF0")


def _check_depth(depth: int) -> None:
    if depth >= MAX_DEPTH:
        # Same limit as the decoder so we never emit what we would reject; also stops cycles.
        raise ValueError(f"AMF0 nesting deeper than MAX_DEPTH={MAX_DEPTH} (or a cycle)")


def _encode_string(out: bytearray, value: str) -> None:
    raw = value.encode("utf-8")
    if len(raw) <= _U16_MAX:
        out += _MARKER_U16.pack(_STRING, len(raw))
    elif len(raw) <= _U32_MAX:
        out += _MARKER_U32.pack(_LONG_STRING, len(raw))
    else:
        raise ValueError("string too long for AMF0")
    out += raw


def _encode_key(out: bytearray, key: object) -> None:
    if not isinstance(key, str):
        raise TypeError(f"AMF0 object keys must be str, not {type(key).__name__}")
    raw = key.encode("utf-8")
    if not raw:
        # Legal per spec, but FFmpeg's parser treats an empty name as the end of the object.
        raise ValueError("empty AMF0 object key")
    if len(raw) > _U16_MAX:
        raise ValueError("AMF0 object key longer than 65535 bytes")
    out += _U16.pack(len(raw))
    out += raw


# ---------------------------------------------------------------------------------------------
# Decoding


def decode_one(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[AmfValue, int]:
    """Decode the value starting at `offset`; return it and the offset just past it.

    Raises AmfError if there is no complete, valid value at `offset`.
    """
    if offset < 0:
        raise ValueError("offset must not be negative")
    # Release the view before returning: holding it would stop a caller's bytearray from resizing.
    with memoryview(data) as raw, raw.cast("B") as buf:
        return _Decoder(buf).value(offset, 0)


def decode_all(data: bytes | bytearray | memoryview) -> list[AmfValue]:
    """Decode consecutive values until the end of `data` (a whole command or data message body).

    Empty data yields an empty list. Raises AmfError on any malformed or truncated value.
    """
    values: list[AmfValue] = []
    with memoryview(data) as raw, raw.cast("B") as buf:
        decoder = _Decoder(buf)
        offset = 0
        end = decoder.end
        while offset < end:
            value, offset = decoder.value(offset, 0)
            values.append(value)
    return values


def _truncated(what: str) -> AmfError:
    return AmfError(f"truncated AMF0 data: {what}")


class _Decoder:
    """Decoding state for one call: the buffer and the remaining value budget."""

    __slots__ = ("budget", "buf", "end")

    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.end = len(buf)
        self.budget = MAX_ELEMENTS

    def value(self, off: int, depth: int) -> tuple[AmfValue, int]:
        buf = self.buf
        end = self.end
        if off >= end:
            raise _truncated("missing type marker")
        self.budget -= 1
        if self.budget < 0:
            raise AmfError(f"more than MAX_ELEMENTS={MAX_ELEMENTS} AMF0 values")
        marker = buf[off]
        off += 1
        # Ordered by how often each type occurs in real commands and metadata.
        if marker == _STRING:
            return self.short_string(off)
        if marker == _NUMBER:
            if off + 8 > end:
                raise _truncated("number")
            return _DOUBLE.unpack_from(buf, off)[0], off + 8
        if marker == _OBJECT:
            self.check_depth(depth)
            return self.properties(off, depth, {}, lenient_end=False)
        if marker == _NULL:
            return None, off
        if marker == _BOOLEAN:
            if off >= end:
                raise _truncated("boolean")
            return buf[off] != 0, off + 1
        if marker == _ECMA_ARRAY:
            self.check_depth(depth)
            if off + 4 > end:
                raise _truncated("ECMA array count")
            # The count is advisory only: encoders have been seen writing 0 or a stale count.
            return self.properties(off + 4, depth, EcmaArray(), lenient_end=True)
        if marker == _STRICT_ARRAY:
            self.check_depth(depth)
            return self.strict_array(off, depth)
        if marker in (_UNDEFINED, _UNSUPPORTED):
            return UNDEFINED, off
        if marker == _DATE:
            if off + 10 > end:
                raise _truncated("date")
            ms, tz = _DATE_VALUE.unpack_from(buf, off)
            return AmfDate(ms, tz), off + 10
        if marker in (_LONG_STRING, _XML_DOCUMENT):
            return self.long_string(off)
        if marker == _TYPED_OBJECT:
            self.check_depth(depth)
            _class_name, off = self.short_string(off)
            return self.properties(off, depth, {}, lenient_end=False)
        if marker == _AVMPLUS:
            raise AmfError(
                "AMF3 (avmplus switch marker 0x11) is not supported; "
                "the client must use objectEncoding 0 (AMF0)"
            )
        if marker == _REFERENCE:
            raise AmfError("AMF0 references (marker 0x07) are not supported")
        if marker == _OBJECT_END:
            raise AmfError("AMF0 object-end marker outside an object")
        if marker in (_MOVIECLIP, _RECORDSET):
            raise AmfError(f"reserved AMF0 type marker 0x{marker:02x} is not supported")
        raise AmfError(f"unknown AMF0 type marker 0x{marker:02x}")

    @staticmethod
    def check_depth(depth: int) -> None:
        if depth >= MAX_DEPTH:
            raise AmfError(f"AMF0 nesting deeper than MAX_DEPTH={MAX_DEPTH}")

    def short_string(self, off: int) -> tuple[str, int]:
        buf = self.buf
        if off + 2 > self.end:
            raise _truncated("string length")
        (length,) = _U16.unpack_from(buf, off)
        off += 2
        stop = off + length
        if stop > self.end:
            raise _truncated("string")
        return str(buf[off:stop], "utf-8", "replace"), stop

    def long_string(self, off: int) -> tuple[str, int]:
        buf = self.buf
        if off + 4 > self.end:
            raise _truncated("long string length")
        (length,) = _U32.unpack_from(buf, off)
        off += 4
        stop = off + length
        if stop > self.end:
            raise _truncated("long string")
        return str(buf[off:stop], "utf-8", "replace"), stop

    def strict_array(self, off: int, depth: int) -> tuple[list[AmfValue], int]:
        end = self.end
        if off + 4 > end:
            raise _truncated("strict array count")
        (count,) = _U32.unpack_from(self.buf, off)
        off += 4
        # Every element takes at least one byte, so a count beyond the remaining data is a lie;
        # rejecting it up front avoids looping (or allocating) for a hostile 2**32-1.
        if count > end - off:
            raise _truncated("strict array shorter than its count")
        if count > self.budget:
            raise AmfError(f"more than MAX_ELEMENTS={MAX_ELEMENTS} AMF0 values")
        items: list[AmfValue] = []
        append = items.append
        child_depth = depth + 1
        for _ in range(count):
            item, off = self.value(off, child_depth)
            append(item)
        return items, off

    def properties(
        self, off: int, depth: int, target: dict[str, AmfValue], *, lenient_end: bool
    ) -> tuple[dict[str, AmfValue], int]:
        buf = self.buf
        end = self.end
        child_depth = depth + 1
        while True:
            if off + 2 > end:
                if lenient_end and off == end:
                    return target, off
                raise _truncated("property name length")
            length = (buf[off] << 8) | buf[off + 1]
            off += 2
            if length == 0 and off < end and buf[off] == _OBJECT_END:
                return target, off + 1
            stop = off + length
            if stop > end:
                raise _truncated("property name")
            key = str(buf[off:stop], "utf-8", "replace")
            value, off = self.value(stop, child_depth)
            # Duplicate keys: the last one wins, as in FFmpeg and Flash.
            target[key] = value
