"""Codec configuration records: RFC 6381 CODECS strings and the AAC header, by hand and fuzzed."""

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golive.codecs import (
    AAC_RATES,
    CodecConfigError,
    aac_codec_string,
    aac_rate_and_channels,
    av1_codec_string,
    avc_codec_string,
    hevc_codec_string,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# --- CODECS strings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asc", "expected"),
    [
        (h("1190"), "mp4a.40.2"),  # AAC-LC 48 kHz stereo
        (h("1210"), "mp4a.40.2"),  # AAC-LC 44.1 kHz stereo
        (h("2b92"), "mp4a.40.5"),  # HE-AAC (SBR) explicit
        (h("eb09"), "mp4a.40.29"),  # HE-AACv2 (PS)
        # 31 escapes to 32 + 6 bits: 11111 001010 -> 32 + 10 = 42 (USAC).
        (h("f940"), "mp4a.40.42"),
    ],
)
def test_aac_codec_string(asc: bytes, expected: str) -> None:
    assert aac_codec_string(asc) == expected


@pytest.mark.parametrize(
    ("hvcc", "expected"),
    [
        # Main, compat 0x60000000 -> reversed 0x6, Main tier level 93 (3.1), constraints B0.
        (h("01 01 60000000 b00000000000 5d"), "hvc1.1.6.L93.B0"),
        # Main 10, high tier, profile space 0, level 150 (5.0), two constraint bytes.
        (h("01 22 20000000 900800000000 96"), "hvc1.2.4.H150.90.8"),
        # Profile space 1 ("A"), no constraint flags at all: the field is omitted.
        (h("01 41 40000000 000000000000 3c"), "hvc1.A1.2.L60"),
        # All six constraint bytes present when the last is non-zero.
        (h("01 04 08000000 010203040506 78"), "hvc1.4.10.L120.1.2.3.4.5.6"),
    ],
)
def test_hevc_codec_string(hvcc: bytes, expected: str) -> None:
    assert hevc_codec_string(hvcc + bytes(10)) == expected


@pytest.mark.parametrize(
    ("av1c", "expected"),
    [
        (h("81 00 0c 00"), "av01.0.00M.08"),
        (h("81 08 4c 00"), "av01.0.08M.10"),  # level 4.0, 10-bit
        (h("81 4d 8c 00"), "av01.2.13H.08"),  # profile 2, level 5.1, high tier
        (h("81 4d 6c 00"), "av01.2.13M.12"),  # profile 2 with twelve_bit
        (h("81 2d 6c 00"), "av01.1.13M.10"),  # twelve_bit only counts for profile 2
    ],
)
def test_av1_codec_string(av1c: bytes, expected: str) -> None:
    assert av1_codec_string(av1c) == expected


def test_avc_codec_string() -> None:
    assert avc_codec_string(h("01 640028 ffe1")) == "avc1.640028"
    assert avc_codec_string(h("01 42c01e ffe1")) == "avc1.42C01E"


@pytest.mark.parametrize(
    ("func", "data"),
    [
        (avc_codec_string, b""),
        (avc_codec_string, h("00 640028")),  # configurationVersion must be 1
        (aac_codec_string, b""),
        (aac_codec_string, h("f8")),  # escape without its 6 bits
        (aac_codec_string, h("0000")),  # object type 0 is "null"
        (hevc_codec_string, h("01 01 60000000")),
        (av1_codec_string, b""),  # FFmpeg 7 really sends an empty av1C first
        (av1_codec_string, h("01 00 0c 00")),  # missing marker bit
    ],
)
def test_codec_string_rejects_bad_records(func: Callable[[bytes], str], data: bytes) -> None:
    with pytest.raises(CodecConfigError):
        func(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=20))
def test_fuzz_codec_strings_raise_only_codec_config_error(data: bytes) -> None:
    for func in (avc_codec_string, aac_codec_string, hevc_codec_string, av1_codec_string):
        with contextlib.suppress(CodecConfigError):
            assert func(data).isascii()


@pytest.mark.parametrize(
    ("asc_hex", "expected"),
    [
        ("1190", (48000, 2)),  # AAC-LC, index 3, stereo: the captures' config
        ("1210", (44100, 2)),  # AAC-LC, index 4, stereo
        ("1188", (48000, 1)),  # AAC-LC, index 3, mono
        ("15b0", (8000, 6)),  # AAC-LC, index 11, 5.1 (config 6)
        ("1198", (48000, 3)),  # config 3: front centre + stereo pair
        ("2b92", None),  # HE-AAC (object type 5): the SBR output rate is not in these bits
        ("1180", None),  # channel config 0: layout given by a program config element
        ("17c0", None),  # sampling index 15: explicit 24-bit rate, left to the decoder
        ("11", None),  # truncated
    ],
)
def test_aac_rate_and_channels(asc_hex: str, expected: tuple[int, int] | None) -> None:
    assert aac_rate_and_channels(bytes.fromhex(asc_hex)) == expected


def test_aac_rates_are_the_sampling_frequency_index() -> None:
    """ISO/IEC 14496-3 Table 1.18: index 3 is 48 kHz, 4 is 44.1 kHz, 12 is 7350 Hz."""
    assert (AAC_RATES[3], AAC_RATES[4], AAC_RATES[12], len(AAC_RATES)) == (48000, 44100, 7350, 13)
