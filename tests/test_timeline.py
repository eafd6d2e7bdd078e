"""The segmenter: where parts and segments are cut, for well-behaved and unruly publishers.

Every case checks the same invariants (`check_parts`): each unit pushed is in exactly one
part or counted in `dropped`; DTS rise per track between timestamp jumps; durations are
positive; parts stay within PART-TARGET and reach 85% of it unless INDEPENDENT or last in
their segment; EXTINF rounds to at most TARGETDURATION; segments start at a keyframe unless
the cut was forced. Each case then checks what is particular to it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import pytest

from golive.media import MediaUnit, TrackKind
from golive.packager.timeline import Part, Segmenter, TimelineConfig

VIDEO, AUDIO = TrackKind.VIDEO, TrackKind.AUDIO
AAC_MS = 1024 / 44.1  # one AAC frame at 44.1 kHz
CONFIG = TimelineConfig(segment_target_ms=2000, part_target_ms=333)


def video(fps: float, seconds: float, gop_s: float | None = 2.0, start: int = 0,
          tag: str = "v") -> list[MediaUnit]:
    frames = round(seconds * fps)
    gop = round(gop_s * fps) if gop_s else frames + 1
    return [MediaUnit(VIDEO, start + round(i * 1000 / fps), start + round(i * 1000 / fps),
                      i % gop == 0, f"{tag}{i}".encode()) for i in range(frames)]


def audio(seconds: float, start: int = 0, frame_ms: float = AAC_MS,
          tag: str = "a") -> list[MediaUnit]:
    frames = math.ceil(seconds * 1000 / frame_ms)
    return [MediaUnit(AUDIO, start + round(i * frame_ms), start + round(i * frame_ms), True,
                      f"{tag}{i}".encode()) for i in range(frames)]


def interleave(*tracks: list[MediaUnit], audio_shift_ms: int = 0) -> list[MediaUnit]:
    """In send order: by DTS, audio sent `audio_shift_ms` late (+) or early (-)."""
    return sorted((u for track in tracks for u in track),
                  key=lambda u: u.dts + (audio_shift_ms if u.kind is AUDIO else 0))


def run(segmenter: Segmenter, units: list[MediaUnit]) -> list[Part]:
    parts = []
    for unit in units:
        parts.extend(segmenter.push(unit))
    parts.extend(segmenter.flush())
    return parts


def segments(parts: list[Part]) -> list[list[Part]]:
    found: list[list[Part]] = []
    for part in parts:
        if part.first_in_segment or not found:
            found.append([])
        found[-1].append(part)
    return found


def check_parts(parts: list[Part], units: list[MediaUnit], segmenter: Segmenter,
                config: TimelineConfig = CONFIG) -> None:
    placed = Counter(unit.data for part in parts for unit, _ in part.units)
    assert all(count == 1 for count in placed.values()), "a unit is in two parts"
    assert set(placed) <= {u.data for u in units}
    assert sum(placed.values()) + segmenter.dropped == len(units)
    target = segmenter.part_target_ms
    assert target is not None or not parts
    last_dts: dict[TrackKind, int] = {}
    for index, part in enumerate(parts):
        assert part.units, "an empty part"
        assert all(duration > 0 for _, duration in part.units)
        assert isinstance(part.duration_ms, int) and part.duration_ms > 0
        assert part.duration_ms <= target, f"part {index}: {part.duration_ms} > {target}"
        if not (part.independent or part.last_in_segment):
            assert part.duration_ms >= 0.85 * target, f"part {index} too short"
        if part.discontinuity:
            last_dts.clear()
        for unit, _ in part.units:
            if unit.kind in last_dts:
                assert unit.dts > last_dts[unit.kind], f"part {index}: {unit.kind} DTS fell"
            last_dts[unit.kind] = unit.dts
        if index + 1 < len(parts):
            assert parts[index + 1].first_in_segment == part.last_in_segment
    if parts:
        assert parts[0].first_in_segment and parts[-1].last_in_segment
    for segment in segments(parts):
        duration = sum(p.duration_ms for p in segment)
        assert math.floor(duration / 1000 + 0.5) <= config.target_duration_s, duration
        assert duration <= config.target_duration_s * 1000 + 500
        driving = [u for u, _ in segment[0].units if u.kind is VIDEO] if segmenter.has_video \
            else [u for u, _ in segment[0].units]
        assert driving[0].keyframe or segment[0].forced
        assert segment[0].independent == driving[0].keyframe


@dataclass(frozen=True)
class Case:
    name: str
    units: list[MediaUnit]
    has_video: bool = True
    has_audio: bool = True
    frame_ms: float | None = None


CASES = [
    Case("25 fps + AAC", interleave(video(25, 10), audio(10))),
    Case("30 fps + AAC", interleave(video(30, 10), audio(10))),
    Case("30 fps declared", interleave(video(30, 10), audio(10)), frame_ms=1000 / 30),
    Case("60 fps + AAC, 1 s GOP", interleave(video(60, 10, gop_s=1), audio(10))),
    Case("10 fps + AAC", interleave(video(10, 10), audio(10))),
    Case("long GOP", interleave(video(30, 20, gop_s=10), audio(20))),
    Case("one keyframe only", interleave(video(30, 12, gop_s=None), audio(12))),
    Case("audio only", audio(10), has_video=False),
    Case("video only", video(30, 10), has_audio=False),
    Case("audio 300 ms late", interleave(video(30, 10), audio(10), audio_shift_ms=300)),
    Case("audio 300 ms early", interleave(video(30, 10), audio(10), audio_shift_ms=-300)),
    Case("audio 900 ms late", interleave(video(30, 10), audio(10), audio_shift_ms=900)),
    Case("jump backwards", interleave(video(30, 5, start=50_000), audio(5, start=50_000))
         + interleave(video(30, 5, tag="w"), audio(5, tag="b"))),
    Case("jump forwards", interleave(video(30, 5), audio(5))
         + interleave(video(30, 5, start=40_000, tag="w"), audio(5, start=40_000, tag="b"))),
    Case("jump mid-GOP", interleave(video(30, 5), audio(5))
         + interleave(video(30, 5, start=90_000, tag="w")[15:],
                      audio(5, start=90_000, tag="b"))),
    Case("audio-only jump", audio(5, start=50_000) + audio(5, tag="b"), has_video=False),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_invariants(case: Case) -> None:
    segmenter = Segmenter(CONFIG, case.has_video, case.has_audio, frame_duration_ms=case.frame_ms)
    parts = run(segmenter, case.units)
    check_parts(parts, case.units, segmenter)


@pytest.mark.parametrize(("fps", "frames_per_part"), [(25, 8), (30, 10), (60, 20)])
def test_constant_rate_fills_every_part_alike(fps: int, frames_per_part: int) -> None:
    units = interleave(video(fps, 10), audio(10))
    segmenter = Segmenter(CONFIG, True, True)
    parts = run(segmenter, units)
    check_parts(parts, units, segmenter)
    frame = 1000 / fps
    # Whole frames: the longest span of that many frames at millisecond timestamps.
    assert segmenter.part_target_ms in (math.ceil(frames_per_part * frame),
                                        math.ceil(frames_per_part * frame) + 1)
    for segment in segments(parts):
        # Cut at every keyframe (2 s), each segment exactly its GOP, parts of equal frames.
        assert sum(p.duration_ms for p in segment) == 2000
        video_counts = [sum(u.kind is VIDEO for u, _ in p.units) for p in segment]
        assert video_counts[:-1] == [frames_per_part] * (len(segment) - 1)
        assert all(abs(p.duration_ms - frames_per_part * frame) <= 1 for p in segment[:-1])
        assert segment[0].independent and not segment[0].forced
    assert len(segments(parts)) == 5
    assert segmenter.frame_rate() == pytest.approx(fps, rel=0.05)


def test_audio_goes_with_the_video_it_plays_with() -> None:
    units = interleave(video(25, 6), audio(6))
    parts = run(Segmenter(CONFIG, True, True), units)
    for part in parts[:-1]:
        end = part.start_ms + part.duration_ms
        for unit, _ in part.units:
            if unit.kind is AUDIO:
                assert part.start_ms - AAC_MS <= unit.dts < end, (part.start_ms, unit.dts)


@pytest.mark.parametrize("shift", [-300, 0, 120, 300])
def test_parts_are_published_promptly(shift: int) -> None:
    """A part is handed out once the audio reaching its end has arrived: within one part
    target plus the audio's lateness."""
    units = interleave(video(30, 6), audio(6), audio_shift_ms=shift)
    segmenter = Segmenter(CONFIG, True, True)
    for unit in units:
        for part in segmenter.push(unit):
            late = unit.dts - (part.start_ms + part.duration_ms)
            assert late <= 40 + max(shift, 0) + AAC_MS, late


def test_long_gop_is_cut_without_keyframes_within_target_duration() -> None:
    units = interleave(video(30, 30, gop_s=10), audio(30))
    segmenter = Segmenter(CONFIG, True, True)
    parts = run(segmenter, units)
    check_parts(parts, units, segmenter)
    durations = [sum(p.duration_ms for p in s) for s in segments(parts)]
    assert max(durations) < 2500
    assert segmenter.forced_cuts > 0
    forced = [s[0] for s in segments(parts) if s[0].forced]
    assert forced and not any(p.independent for p in forced)
    # Each real keyframe still starts a segment.
    keyed = [s[0].start_ms for s in segments(parts) if s[0].independent]
    assert keyed == [0, 10_000, 20_000]


@pytest.mark.parametrize("gap_at", range(60, 80))
def test_late_frame_near_the_segment_limit_does_not_overfill_it(gap_at: int) -> None:
    """A frame 300 ms late while a keyframe-less segment is near its limit: before the fix
    its whole delay went into the segment and EXTINF rounded to 3 with TARGETDURATION 2."""
    units = video(30, 8, gop_s=None)
    units = [u if i < gap_at else u._replace(dts=u.dts + 300, pts=u.pts + 300)
             for i, u in enumerate(units)]
    segmenter = Segmenter(CONFIG, True, False)
    parts = run(segmenter, units)
    check_parts(parts, units, segmenter)


@pytest.mark.parametrize("ending", [(180,), (150, 30), (100, 180), (180, 90)])
def test_flush_and_jumps_keep_parts_within_the_target(ending: tuple[int, ...]) -> None:
    """The last frame gets a nominal duration; at 10 fps (100 ms frames, a part target not
    rounded to frames) an irregular ending used to push the last part past PART-TARGET."""
    dts = [i * 100 for i in range(30)]
    for delta in ending:
        dts.append(dts[-1] + delta)
    units = [MediaUnit(VIDEO, t, t, i == 0, b"v%d" % i) for i, t in enumerate(dts)]
    for tail in ([], [MediaUnit(VIDEO, 0, 0, True, b"after jump")]):
        segmenter = Segmenter(CONFIG, True, False)
        parts = run(segmenter, units + tail)
        check_parts(parts, units + tail, segmenter)


def test_declared_frame_rate_keeps_durations_whole_milliseconds() -> None:
    units = video(30, 3)
    segmenter = Segmenter(CONFIG, True, False, frame_duration_ms=1000 / 30)
    parts = run(segmenter, units)
    check_parts(parts, units, segmenter)
    assert all(isinstance(d, int) for p in parts for _, d in p.units)


@pytest.mark.parametrize("start", [50_000, 3_000])
def test_backwards_jump_starts_a_discontinuity_at_the_next_keyframe(start: int) -> None:
    before = interleave(video(30, 5, start=start), audio(5, start=start))
    after_video = video(30, 6, tag="w")[20:]  # lands mid-GOP: first keyframe at 2 s
    after = interleave(after_video, audio(6, tag="b"))
    segmenter = Segmenter(CONFIG, True, True)
    parts = run(segmenter, before + after)
    check_parts(parts, before + after, segmenter)
    assert segmenter.jumps == 1
    new = [p for p in parts if p.start_ms < start]
    assert new[0].discontinuity and new[0].first_in_segment and new[0].start_ms == 2000
    assert sum(p.discontinuity for p in parts) == 1
    assert segmenter.dropped >= 40  # the 40 frames before the keyframe
    # Audio is back in the parts soon after the jump, not stuck behind the old timeline.
    for part in new[1:-1]:
        assert any(u.kind is AUDIO for u, _ in part.units), part.start_ms


def test_forward_jump_and_gap() -> None:
    first = interleave(video(30, 4), audio(4))
    gap = interleave(video(30, 4, start=5000, tag="g"), audio(4, start=5000, tag="h"))
    jump = interleave(video(30, 4, start=60_000, tag="j"), audio(4, start=60_000, tag="k"))
    segmenter = Segmenter(CONFIG, True, True)
    parts = run(segmenter, first + gap + jump)
    check_parts(parts, first + gap + jump, segmenter)
    assert segmenter.jumps == 1  # a 1 s gap is no jump; 52 s is
    assert [p.start_ms for p in parts if p.discontinuity] == [60_000]


def test_flush_closes_everything() -> None:
    units = interleave(video(30, 2.5), audio(2.7))
    segmenter = Segmenter(CONFIG, True, True)
    pushed = [p for u in units for p in segmenter.push(u)]
    flushed = segmenter.flush()
    assert flushed and flushed[-1].last_in_segment
    check_parts(pushed + flushed, units, segmenter)
    assert segmenter.dropped == 0
    assert segmenter.flush() == []


def test_audio_without_a_video_keyframe_is_counted_as_dropped() -> None:
    units = interleave([u._replace(keyframe=False) for u in video(30, 2)], audio(2))
    segmenter = Segmenter(CONFIG, True, True)
    assert run(segmenter, units) == []
    assert segmenter.dropped == len(units)


def test_part_target_is_kept_across_publications() -> None:
    first = Segmenter(CONFIG, True, True)
    run(first, interleave(video(30, 3), audio(3)))
    units = interleave(video(25, 6), audio(6))
    second = Segmenter(CONFIG, True, True, part_target_ms=first.part_target_ms,
                       discontinuity=True)
    parts = run(second, units)
    check_parts(parts, units, second)
    assert second.part_target_ms == first.part_target_ms == 334
    assert parts[0].discontinuity
