"""bench/glass.py: the frame stamp survives x264 and the ladder's downscale, and the whole
measurement (a real-time stamped publisher, golive, the watch page in Chromium) reads back
increasing stamps with plausible glass-to-glass latencies."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest
from helpers import CHROMIUM

from bench import glass
from bench.hls import FPS, VIDEO_BITRATE, _pictures


def _encode_decode(pictures: list[np.ndarray]) -> list[av.VideoFrame]:
    """x264 veryfast at the clip's bitrate, B-frames on, then decoded back."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.height, video.width = pictures[0].shape[0] * 2 // 3, pictures[0].shape[1]
        video.pix_fmt, video.bit_rate = "yuv420p", VIDEO_BITRATE
        video.options = {"preset": "veryfast", "bf": "3"}
        for i, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    buffer.seek(0)
    with av.open(buffer) as container:
        return list(container.decode(video=0))


def test_stamps_read_back_after_x264_and_the_ladders_downscale() -> None:
    pictures, _ = _pictures(1280, 720)  # the clip's own moving picture beneath
    indices = [0, 1, 2, 399, 400, 1234, 4095, *range(5, 30)]
    frames = _encode_decode([glass.stamp(pictures[i % len(pictures)], index)
                             for i, index in enumerate(indices)])
    assert [glass.read_stamp(f.to_ndarray(format="gray")) for f in frames] == indices
    small = [f.reformat(426, 240, "yuv420p").to_ndarray()[:240] for f in frames]
    assert [glass.read_stamp(luma) for luma in small] == indices
    rung = _encode_decode([f.reformat(416, 234, "yuv420p").to_ndarray() for f in frames])
    assert [glass.read_stamp(f.to_ndarray(format="gray")) for f in rung] == indices


def test_a_picture_without_a_stamp_or_with_a_broken_one_reads_as_none() -> None:
    pictures, _ = _pictures(640, 360)
    assert glass.read_stamp(pictures[0][:360]) is None
    stamped = glass.stamp(pictures[0], 77)
    assert glass.read_stamp(stamped[:360]) == 77
    stamped[:30, :40] = 255 - stamped[:30, :40]  # the first bit flipped in both rows
    assert glass.read_stamp(stamped[:360]) is None
    with pytest.raises(ValueError):
        glass.stamp_bits(4096)


def test_the_looped_clip_is_stamped_in_presentation_order() -> None:
    media = glass.stamped_clip()
    order = glass.presentation_indices(media)
    assert sorted(order) == list(range(media.frames_per_loop))
    assert order != sorted(order), "the clip has B-frames: decode order is not display order"


@pytest.mark.e2e
async def test_watch_page_glass_to_glass_in_chromium(browser_tools: None) -> None:
    assert glass.browser_missing() == [], "the bench and the tests look for the same tools"
    assert CHROMIUM == glass.CHROMIUM
    # (No ladder: one rendition keeps the run light; the stamp's downscale is tested above.)
    setup = glass.Setup("test", transcode=False)
    result, load = await glass.run_setup(setup, seconds=12.0, warm_up=4.0)
    context = f"{result.summary()}; {load}; console {result.console[-10:]}"
    assert result.fatal is None, context
    assert len(result.latencies) >= 5 * FPS * 0.6, context  # ~8 s of frames read back
    assert result.unreadable <= result.presented * 0.05, context
    loop = glass.stamped_clip().frames_per_loop
    steps = [(b - a) % loop for a, b in zip(result.indices, result.indices[1:], strict=False)]
    assert all(0 < step < FPS for step in steps), context  # forward, never back
    assert all(0 < value < 10 for value in result.latencies), context
    # hls.js's own estimate leaves out what it cannot see (packaging, the last part's
    # capture, the compositor): near the measured figure, not equal to it.
    assert abs(result.median() - result.hls_median()) < 1.0, context
