"""The bitrate ladder: the default derived from the source, and configured rungs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from golive.transcode.ladder import (
    APPLE_H264,
    LadderError,
    Rung,
    default_ladder,
    ladder_for,
    parse_rung,
)


@pytest.mark.parametrize(("size", "expected"), [
    ((1920, 1080), [(1280, 720, 4500), (960, 540, 2000), (640, 360, 365)]),
    ((1280, 720), [(960, 540, 2000), (640, 360, 365), (416, 234, 145)]),
    ((854, 480), [(640, 360, 365), (416, 234, 145)]),
    ((640, 360), [(416, 234, 145)]),
    ((320, 240), []),
    ((720, 1280), [(540, 960, 2000), (360, 640, 365), (234, 416, 145)]),  # portrait phone
])
def test_default_ladder_follows_apple_below_the_source(
        size: tuple[int, int], expected: list[tuple[int, int, int]]) -> None:
    rungs = default_ladder(*size)
    assert [(*r.size_for(*size), r.bitrate // 1000) for r in rungs] == expected


def test_default_ladder_never_exceeds_the_source_bitrate() -> None:
    rungs = default_ladder(1280, 720, source_bitrate=1_500_000)
    assert [r.bitrate for r in rungs] == [1_500_000, 365_000, 145_000]


@given(st.integers(16, 4096), st.integers(16, 4096), st.integers(0, 50_000_000))
def test_default_ladder_never_upscales_and_descends(width: int, height: int,
                                                    bitrate: int) -> None:
    rungs = default_ladder(width, height, bitrate)
    assert len(rungs) <= 3
    short = min(width, height)
    sides = [r.short_side for r in rungs]
    assert all(side < short for side in sides)
    assert sides == sorted(sides, reverse=True) and len(set(sides)) == len(sides)
    for rung in rungs:
        w, h = rung.size_for(width, height)
        assert w % 2 == 0 and h % 2 == 0
        assert (w >= h) == (width >= height)
        assert rung.bitrate <= max(bitrate, 64_000) or not bitrate
        assert (rung.short_side, rung.bitrate // 1000) in APPLE_H264 or bitrate


@pytest.mark.parametrize(("text", "rung"), [
    ("480p@1200k", Rung(480, 1_200_000)),
    ("854x480@1.2M", Rung(480, 1_200_000, 854, 480)),
    ("360x640@800000", Rung(360, 800_000, 360, 640)),
    (" 240p@300K ", Rung(240, 300_000)),
])
def test_parse_rung(text: str, rung: Rung) -> None:
    assert parse_rung(text) == rung


@pytest.mark.parametrize("text", [
    "480@1200k", "480p", "480p@", "481p@1200k", "8p@100k", "480p@10k", "854x481@1M",
    "480p@1200kbps", "", "p@1k",
])
def test_malformed_rungs_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(LadderError, match=r"480p@1200k|even|64k"):
        parse_rung(text)


def test_configured_rungs_never_upscale() -> None:
    configured = (parse_rung("720p@3M"), parse_rung("480p@1200k"), parse_rung("240p@300k"))
    assert [r.name for r in ladder_for(configured, 854, 480)] == ["240p"]
    assert [r.name for r in ladder_for((), 854, 480)] == ["360p", "234p"]
