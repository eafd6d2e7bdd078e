"""AMF0 codec: exact wire bytes per type, real encoder payloads, and hostile input."""

import contextlib
import math
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from golive.ingest.amf0 import (
    MAX_DEPTH,
    MAX_ELEMENTS,
    UNDEFINED,
    AmfDate,
    EcmaArray,
    decode_all,
    decode_one,
    encode,
)
from golive.ingest.errors import AmfError

CAPTURES = Path(__file__).parent / "data" / "captures"


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def assert_identical(actual: object, expected: object) -> None:
    """Equality that also checks types, since True == 1.0 and EcmaArray() == {} in Python."""
    assert type(actual) is type(expected), (actual, expected)
    if isinstance(expected, float):
        assert isinstance(actual, float)
        # Compare bit patterns so that -0.0 and 0.0 are told apart.
        assert struct.pack(">d", actual) == struct.pack(">d", expected)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict)
        assert list(actual) == list(expected)
        for key, value in expected.items():
            assert_identical(actual[key], value)
    elif isinstance(expected, list):
        assert isinstance(actual, list)
        assert len(actual) == len(expected)
        for got, want in zip(actual, expected, strict=True):
            assert_identical(got, want)
    else:
        assert actual == expected


# (value, exact encoding written by hand from the AMF0 spec). Each decodes back to `value`.
ROUND_TRIP_CASES = [
    pytest.param(0.0, h("00 0000000000000000"), id="number-zero"),
    pytest.param(-0.0, h("00 8000000000000000"), id="number-negative-zero"),
    pytest.param(1.0, h("00 3ff0000000000000"), id="number-one"),
    pytest.param(2.5, h("00 4004000000000000"), id="number-2.5"),
    pytest.param(-2.0, h("00 c000000000000000"), id="number-minus-two"),
    pytest.param(math.inf, h("00 7ff0000000000000"), id="number-inf"),
    pytest.param(True, h("01 01"), id="true"),
    pytest.param(False, h("01 00"), id="false"),
    pytest.param("", h("02 0000"), id="string-empty"),
    pytest.param("connect", h("02 0007 636f6e6e656374"), id="string-connect"),
    pytest.param("é€", h("02 0005 c3a9 e282ac"), id="string-utf8"),
    pytest.param("a" * 65535, h("02 ffff") + b"a" * 65535, id="string-max-short"),
    pytest.param("a" * 65536, h("0c 00010000") + b"a" * 65536, id="long-string"),
    pytest.param({}, h("03 000009"), id="object-empty"),
    pytest.param(
        {"app": "live", "n": 1.0},
        h("03 0003 617070 02 0004 6c697665 0001 6e 00 3ff0000000000000 000009"),
        id="object",
    ),
    pytest.param({"o": {}}, h("03 0001 6f 03 000009 000009"), id="object-nested"),
    pytest.param(None, h("05"), id="null"),
    pytest.param(UNDEFINED, h("06"), id="undefined"),
    pytest.param(EcmaArray(), h("08 00000000 000009"), id="ecma-empty"),
    pytest.param(
        EcmaArray({"a": True, "b": None}),
        h("08 00000002 0001 61 0101 0001 62 05 000009"),
        id="ecma",
    ),
    pytest.param([], h("0a 00000000"), id="strict-array-empty"),
    pytest.param(
        [1.0, "a", None, [False]],
        h("0a 00000004 00 3ff0000000000000 02 0001 61 05 0a 00000001 0100"),
        id="strict-array",
    ),
    pytest.param(AmfDate(0.0), h("0b 0000000000000000 0000"), id="date-epoch"),
    pytest.param(AmfDate(1.5, -60), h("0b 3ff8000000000000 ffc4"), id="date-tz"),
]


@pytest.mark.parametrize(("value", "wire"), ROUND_TRIP_CASES)
def test_encode_exact_bytes(value: object, wire: bytes) -> None:
    assert encode(value) == wire


@pytest.mark.parametrize(("value", "wire"), ROUND_TRIP_CASES)
def test_decode_exact_bytes(value: object, wire: bytes) -> None:
    decoded, end = decode_one(wire)
    assert end == len(wire)
    assert_identical(decoded, value)
    assert_identical(decode_all(wire), [value])


@pytest.mark.parametrize(
    ("value", "wire", "decoded"),
    [
        pytest.param(1, h("00 3ff0000000000000"), 1.0, id="int-is-number"),
        pytest.param(-3, h("00 c008000000000000"), -3.0, id="negative-int"),
        pytest.param((None, True), h("0a 00000002 05 0101"), [None, True], id="tuple"),
        pytest.param(
            {"t": (1,)},
            h("03 0001 74 0a00000001 003ff0000000000000 000009"),
            {"t": [1.0]},
            id="tuple-in-object",
        ),
    ],
)
def test_encode_only_types(value: object, wire: bytes, decoded: object) -> None:
    assert encode(value) == wire
    assert_identical(decode_all(wire), [decoded])


def test_encode_concatenates_values() -> None:
    assert encode() == b""
    assert encode("a", 1, None) == h("02 0001 61 00 3ff0000000000000 05")


# Wire forms we never produce but must read, with the value each decodes to.
@pytest.mark.parametrize(
    ("wire", "decoded"),
    [
        pytest.param(h("01 02"), True, id="boolean-nonzero"),
        pytest.param(h("0d"), UNDEFINED, id="unsupported"),
        pytest.param(h("0c 00000002 6869"), "hi", id="long-string-short-content"),
        pytest.param(h("0f 00000004 3c612f3e"), "<a/>", id="xml-document"),
        pytest.param(h("10 0003 466f6f 0001 78 05 000009"), {"x": None}, id="typed-object"),
        pytest.param(h("02 0001 ff"), "\ufffd", id="bad-utf8-replaced"),
        pytest.param(h("03 0001 ff 05 000009"), {"\ufffd": None}, id="bad-utf8-key"),
        pytest.param(h("03 0000 05 000009"), {"": None}, id="object-empty-key"),
        pytest.param(h("03 0001 61 05 0001 61 0101 000009"), {"a": True}, id="duplicate-key"),
        pytest.param(
            h("08 00000000 0001 61 05 0001 62 05 000009"),
            EcmaArray({"a": None, "b": None}),
            id="ecma-count-too-small",
        ),
        pytest.param(
            h("08 00000063 0001 61 05 000009"), EcmaArray({"a": None}), id="ecma-count-too-big"
        ),
        pytest.param(
            h("08 00000001 0001 61 05"), EcmaArray({"a": None}), id="ecma-no-end-marker-at-eof"
        ),
        pytest.param(h("08 00000000"), EcmaArray(), id="ecma-empty-no-end-marker-at-eof"),
    ],
)
def test_decode_lenient_and_decode_only_forms(wire: bytes, decoded: object) -> None:
    assert_identical(decode_all(wire), [decoded])


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        pytest.param(h("11 0a0b01"), "AMF3", id="amf3-switch"),
        pytest.param(h("07 0001"), "reference", id="reference"),
        pytest.param(h("04"), "0x04", id="movieclip"),
        pytest.param(h("0e"), "0x0e", id="recordset"),
        pytest.param(h("09"), "object-end", id="bare-object-end"),
        pytest.param(h("12"), "unknown", id="unknown-marker"),
        pytest.param(h("ff"), "unknown", id="unknown-marker-ff"),
        pytest.param(h("03 0001 61 09"), "object-end", id="object-end-as-value"),
        pytest.param(h("0a ffffffff 050505"), "truncated", id="huge-strict-array-count"),
        pytest.param(h("0c ffffffff 6161"), "truncated", id="huge-long-string-length"),
        pytest.param(h("08 00000001 0001 61 05 0000"), "truncated", id="ecma-half-end-marker"),
        pytest.param(h("03 0001 61 05"), "truncated", id="object-without-end-marker"),
        pytest.param(h("05 11"), "AMF3", id="amf3-after-valid-value"),
    ],
)
def test_decode_rejects(wire: bytes, message: str) -> None:
    with pytest.raises(AmfError, match=message) as info:
        decode_all(wire)
    assert info.value.kind == "amf"


def test_amf3_message_is_clear() -> None:
    with pytest.raises(AmfError, match=r"AMF3 .*not supported"):
        decode_one(h("11 06 0161"))


def test_decode_one_offsets() -> None:
    data = encode("onStatus", 0, None, {"code": "x"})
    values = []
    offset = 0
    while offset < len(data):
        value, offset = decode_one(data, offset)
        values.append(value)
    assert values == ["onStatus", 0.0, None, {"code": "x"}]
    assert offset == len(data)
    with pytest.raises(AmfError):
        decode_one(data, len(data))
    with pytest.raises(AmfError):
        decode_one(b"")


def test_decode_all_empty_and_buffer_types() -> None:
    assert decode_all(b"") == []
    data = encode("a", [1.0])
    for buf in (data, bytearray(data), memoryview(data), memoryview(b"xx" + data)[2:]):
        assert decode_all(buf) == ["a", [1.0]]


def test_decode_releases_caller_bytearray() -> None:
    # The chunk layer reassembles messages in a bytearray it later resizes; a view left
    # exported would make that raise BufferError.
    buf = bytearray(encode("x"))
    decode_all(buf)
    decode_one(buf)
    buf += b"more"
    del buf[:3]


def nested(open_one: bytes, levels: int, close_one: bytes = b"") -> bytes:
    return open_one * levels + b"\x05" + close_one * levels


@pytest.mark.parametrize(
    ("open_one", "close_one"),
    [
        pytest.param(h("0a 00000001"), b"", id="strict-array"),
        pytest.param(h("03 0001 61"), h("000009"), id="object"),
        pytest.param(h("08 00000001 0001 61"), h("000009"), id="ecma"),
        pytest.param(h("10 0000 0001 61"), h("000009"), id="typed-object"),
    ],
)
def test_depth_limit(open_one: bytes, close_one: bytes) -> None:
    assert len(decode_all(nested(open_one, MAX_DEPTH, close_one))) == 1
    with pytest.raises(AmfError, match="MAX_DEPTH"):
        decode_all(nested(open_one, MAX_DEPTH + 1, close_one))
    # Far beyond the recursion limit: still an AmfError, not a RecursionError.
    with pytest.raises(AmfError):
        decode_all(nested(open_one, 100_000, close_one))


def test_encode_depth_limit_and_cycles() -> None:
    deep: list[object] = []
    for _ in range(MAX_DEPTH - 1):
        deep = [deep]
    assert decode_all(encode(deep)) == [deep]
    with pytest.raises(ValueError, match="MAX_DEPTH"):
        encode([deep])
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    with pytest.raises(ValueError, match="MAX_DEPTH"):
        encode(cyclic)


def test_element_limit() -> None:
    assert len(decode_all(b"\x05" * MAX_ELEMENTS)) == MAX_ELEMENTS
    with pytest.raises(AmfError, match="MAX_ELEMENTS"):
        decode_all(b"\x05" * (MAX_ELEMENTS + 1))
    # The array itself counts as one value.
    full = h("0a") + struct.pack(">I", MAX_ELEMENTS - 1) + b"\x05" * (MAX_ELEMENTS - 1)
    value, _ = decode_one(full)
    assert isinstance(value, list)
    assert len(value) == MAX_ELEMENTS - 1
    over = h("0a") + struct.pack(">I", MAX_ELEMENTS) + b"\x05" * MAX_ELEMENTS
    with pytest.raises(AmfError, match="MAX_ELEMENTS"):
        decode_one(over)
    # Many small properties hit the same budget.
    props = b"".join(struct.pack(">H", 4) + b"%04x" % (i % 0x10000) + b"\x05" for i in range(70000))
    with pytest.raises(AmfError, match="MAX_ELEMENTS"):
        decode_one(b"\x03" + props + h("000009"))


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(b"bytes", TypeError, id="bytes"),
        pytest.param({1, 2}, TypeError, id="set"),
        pytest.param(object(), TypeError, id="object"),
        pytest.param({1: None}, TypeError, id="non-str-key"),
        pytest.param({"": None}, ValueError, id="empty-key"),
        pytest.param(EcmaArray({"": None}), ValueError, id="ecma-empty-key"),
        pytest.param({"k" * 65536: None}, ValueError, id="key-too-long"),
        pytest.param(10**400, ValueError, id="int-overflow"),
        pytest.param(AmfDate(0.0, 40000), ValueError, id="date-tz-range"),
        pytest.param("\ud800", UnicodeEncodeError, id="lone-surrogate"),
    ],
)
def test_encode_rejects(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        encode(value)


def test_key_of_max_length() -> None:
    key = "k" * 65535
    wire = encode({key: None})
    assert wire == h("03 ffff") + key.encode() + h("05 000009")
    assert decode_all(wire) == [{key: None}]


# --- truncation ---------------------------------------------------------------------------------

# Values whose every proper prefix is incomplete. ECMA arrays are covered separately: a prefix
# ending on a property boundary is a legitimately decodable array missing its end marker.
TRUNCATION_CASES = [
    pytest.param(value, id=str(param.id))
    for param in ROUND_TRIP_CASES
    for value in param.values[:1]
    if not isinstance(value, EcmaArray) and len(param.values[1]) < 1000
] + [
    pytest.param(h("10 0003 466f6f 0001 78 05 000009"), id="typed-object-wire"),
    pytest.param(h("0f 00000004 3c612f3e"), id="xml-wire"),
    pytest.param(h("0c 00000002 6869"), id="long-string-wire"),
    pytest.param([EcmaArray({"a": 1.0}), {"b": EcmaArray()}], id="ecma-inside-containers"),
]


@pytest.mark.parametrize("value", TRUNCATION_CASES)
def test_every_proper_prefix_raises(value: object) -> None:
    wire = value if isinstance(value, bytes) else encode(value)
    decode_one(wire)
    for cut in range(len(wire)):
        with pytest.raises(AmfError):
            decode_one(wire[:cut])
        if cut:
            with pytest.raises(AmfError):
                decode_all(wire[:cut])


def test_ecma_prefixes_decode_only_on_property_boundaries() -> None:
    wire = encode(EcmaArray({"a": 1.0, "bb": "x"}))
    # marker + count = 5; "a" pair = 2 + 1 + 9 = 12; "bb" pair = 2 + 2 + 4 = 8; end marker = 3.
    boundaries = {5: EcmaArray(), 17: EcmaArray({"a": 1.0}), 25: EcmaArray({"a": 1.0, "bb": "x"})}
    assert len(wire) == 28
    for cut in range(len(wire)):
        if cut in boundaries:
            assert_identical(decode_all(wire[:cut]), [boundaries[cut]])
        else:
            with pytest.raises(AmfError):
                decode_one(wire[:cut])


# --- real encoder payloads ----------------------------------------------------------------------

OBS_CONNECT = {
    "app": "live",
    "type": "nonprivate",
    "supportsGoAway": True,
    "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
    "swfUrl": "rtmp://127.0.0.1:19390/live",
    "tcUrl": "rtmp://127.0.0.1:19390/live",
}

# From obs29.0-h264.trace.txt; all numbers are doubles on the wire.
OBS_METADATA = EcmaArray(
    {
        "duration": 0.0,
        "fileSize": 0.0,
        "width": 1280.0,
        "height": 720.0,
        "videocodecid": 7.0,
        "videodatarate": 2500.0,
        "framerate": 30.0,
        "audiocodecid": 10.0,
        "audiodatarate": 160.0,
        "audiosamplerate": 48000.0,
        "audiosamplesize": 16.0,
        "audiochannels": 2.0,
        "stereo": True,
        "2.1": False,
        "3.1": False,
        "4.0": False,
        "4.1": False,
        "5.1": False,
        "7.1": False,
        "encoder": "obs-output module (libobs version 29.0.2.1-1+b1)",
    }
)

# From ffmpeg7.0-h264.trace.txt.
FFMPEG7_METADATA = EcmaArray(
    {
        "duration": 4.0,
        "width": 426.0,
        "height": 240.0,
        "videodatarate": 2441.40625,
        "framerate": 25.0,
        "videocodecid": 7.0,
        "audiodatarate": 125.0,
        "audiosamplerate": 48000.0,
        "audiosamplesize": 16.0,
        "stereo": True,
        "audiocodecid": 10.0,
        "major_brand": "isom",
        "minor_version": "512",
        "compatible_brands": "isomiso2avc1mp41",
        "encoder": "Lavf61.1.100",
        "filesize": 0.0,
    }
)


def message_body(capture: str, first_value: bytes, msg_type: int) -> bytes:
    """Cut one whole message body out of a capture, using its fmt-0 chunk header for the length.

    Only valid when the body fits in one chunk (client chunk size 4096), which is asserted.
    """
    data = (CAPTURES / capture).read_bytes()
    start = data.find(first_value)
    assert start > 12
    header = data[start - 12 : start]
    assert header[0] >> 6 == 0, "expected a type-0 chunk header"
    length = int.from_bytes(header[4:7], "big")
    assert header[7] == msg_type
    assert length <= 4096, "body would span chunks"
    return data[start : start + length]


def test_obs_connect_from_capture() -> None:
    body = message_body("obs29.0-h264.c2s.bin", b"\x02\x00\x07connect", 0x14)
    assert_identical(decode_all(body), ["connect", 1.0, OBS_CONNECT])
    # Our encoder writes exactly what OBS wrote: same key order, same string forms.
    assert encode("connect", 1, OBS_CONNECT) == body


def test_obs_connect_round_trip() -> None:
    wire = encode("connect", 1, OBS_CONNECT)
    assert wire.startswith(h("02 0007 636f6e6e656374 00 3ff0000000000000 03 0003 617070"))
    assert wire.endswith(h("000009"))
    assert_identical(decode_all(wire), ["connect", 1.0, OBS_CONNECT])


@pytest.mark.parametrize(
    ("capture", "expected"),
    [
        pytest.param("ffmpeg7.0-h264.c2s.bin", FFMPEG7_METADATA, id="ffmpeg7"),
        pytest.param("obs29.0-h264.c2s.bin", OBS_METADATA, id="obs29"),
    ],
)
def test_on_metadata_from_capture(capture: str, expected: EcmaArray) -> None:
    body = message_body(capture, b"\x02\x00\x0d@setDataFrame\x02\x00\x0aonMetaData", 0x12)
    assert body.endswith(h("000009"))
    assert_identical(decode_all(body), ["@setDataFrame", "onMetaData", expected])
    # Decoding from the onMetaData string itself, as a data-message handler that already
    # stripped @setDataFrame would.
    offset = body.find(b"\x02\x00\x0aonMetaData")
    assert_identical(decode_all(memoryview(body)[offset:]), ["onMetaData", expected])
    assert encode("@setDataFrame", "onMetaData", expected) == body


# --- properties ---------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.builds(AmfDate, st.floats(allow_nan=False), st.integers(-32768, 32767))
    | st.just(UNDEFINED)
)
keys = st.text(min_size=1, max_size=10)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(keys, children, max_size=5)
        | st.dictionaries(keys, children, max_size=5).map(EcmaArray)
    ),
    max_leaves=25,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.lists(values, max_size=4))
def test_round_trip(items: list[object]) -> None:
    wire = encode(*items)
    assert_identical(decode_all(wire), items)
    assert_identical(decode_all(bytearray(wire)), items)


def decode_or_amf_error(data: bytes) -> None:
    with contextlib.suppress(AmfError):
        decode_all(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    decode_or_amf_error(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60).map(lambda tail: b"\x03" + tail))
def test_fuzz_bytes_inside_object(data: bytes) -> None:
    decode_or_amf_error(data)


@FAST
@given(st.lists(values, min_size=1, max_size=3), st.data())
def test_fuzz_mutated_encodings(items: list[object], data: st.DataObject) -> None:
    wire = bytearray(encode(*items))
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        pos = data.draw(st.integers(0, max(len(wire) - 1, 0)))
        if kind == "flip" and wire:
            wire[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set" and wire:
            wire[pos] = data.draw(st.sampled_from([0x00, 0x09, 0x11, 0x7F, 0xFF]))
        elif kind == "insert":
            wire[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete" and wire:
            del wire[pos : pos + data.draw(st.integers(1, 4))]
        elif kind == "truncate":
            del wire[pos:]
    decode_or_amf_error(bytes(wire))


def test_fuzz_mutated_real_command() -> None:
    # Exhaustive single-byte corruption of a real command: every position, a few byte values.
    wire = encode("connect", 1, OBS_CONNECT)
    for pos in range(len(wire)):
        for byte in (0x00, 0x09, 0x11, 0xFF):
            mutated = bytearray(wire)
            mutated[pos] = byte
            decode_or_amf_error(bytes(mutated))
