"""Property test: random publisher behaviour through Segmenter -> Rendition -> playlist text,
with every playlist and every reload checked against the HLS rules (`hls_rules.py`).

The feeding mirrors `packager/broadcast.py`: a publication is one `Segmenter`; a reconnect is
a new one, with `Rendition.mark_discontinuity()`, and each part is listed with
`Rendition.add_part` exactly as `Lane.list` does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hls_rules import check_media_playlist, check_successive, parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from golive.media import MediaUnit, TrackKind
from golive.packager.rendition import Rendition
from golive.packager.store import MemoryStore
from golive.packager.timeline import Part, Segmenter, TimelineConfig

VIDEO, AUDIO = TrackKind.VIDEO, TrackKind.AUDIO


@dataclass(frozen=True)
class Stretch:
    """A run of media with one behaviour."""

    seconds: float
    gop_frames: int  # keyframe interval in frames (very long ones force cuts)
    jitter_ms: int
    audio_missing: bool
    jump_ms: int  # timestamp change at the stretch's start: 0, a gap, or a jump either way


@dataclass(frozen=True)
class Publication:
    has_video: bool
    has_audio: bool
    fps: int
    audio_frame_ms: int
    audio_lead_ms: int  # audio sent this far ahead (+) of or behind (-) video
    declared_rate: bool  # the publisher's metadata says the frame rate
    start_ms: int
    stretches: tuple[Stretch, ...]


stretches = st.builds(
    Stretch,
    seconds=st.floats(0.2, 8.0) | st.floats(8.0, 20.0),
    gop_frames=st.one_of(st.integers(1, 90), st.integers(90, 700)),
    jitter_ms=st.sampled_from([0, 0, 2, 5, 15]),
    audio_missing=st.booleans(),
    jump_ms=st.one_of(st.just(0), st.just(0), st.integers(50, 1500),
                      st.integers(6000, 60000), st.integers(-60000, -1)),
)
publications = st.builds(
    Publication,
    has_video=st.booleans(),
    has_audio=st.booleans(),
    fps=st.integers(10, 60),
    audio_frame_ms=st.sampled_from([21, 23, 20]),
    audio_lead_ms=st.sampled_from([0, 0, 40, -40, 300, -300, -700]),
    declared_rate=st.booleans(),
    start_ms=st.integers(0, 10**9),
    stretches=st.lists(stretches, min_size=2, max_size=4).map(tuple),
).filter(lambda p: p.has_video or p.has_audio)


def units_of(publication: Publication, rng: random.Random) -> list[MediaUnit]:
    """The publication's units in the order a publisher sends them: by wall-clock time, which
    does not jump when the timestamps do, with audio skewed ahead of or behind video."""
    sent: list[tuple[float, int, MediaUnit]] = []  # (wall-clock ms, serial, unit)
    clock = float(publication.start_ms)  # media time
    jumped = 0  # media time minus wall-clock time
    frame_ms = 1000 / publication.fps
    serial = 0
    for stretch in publication.stretches:
        clock += stretch.jump_ms
        jumped += stretch.jump_ms
        end = clock + stretch.seconds * 1000
        if publication.has_video:
            video = clock
            frame = 0
            while video < end:
                dts = round(video) + rng.randint(-stretch.jitter_ms, stretch.jitter_ms)
                serial += 1
                sent.append((dts - jumped, serial, MediaUnit(
                    VIDEO, dts, dts, frame % stretch.gop_frames == 0, b"v%d" % serial)))
                video += frame_ms
                frame += 1
        if publication.has_audio and not stretch.audio_missing:
            audio = clock
            while audio < end:
                dts = round(audio)
                serial += 1
                sent.append((dts - jumped - publication.audio_lead_ms, serial,
                             MediaUnit(AUDIO, dts, dts, True, b"a%d" % serial)))
                audio += publication.audio_frame_ms
        clock = end
    return [unit for _, _, unit in sorted(sent, key=lambda s: (s[0], s[1]))]


class Harness:
    """Segmenter -> Rendition, rendering and checking the playlist after every change."""

    def __init__(self, config: TimelineConfig, low_latency: bool = True) -> None:
        self.config = config
        self.store = MemoryStore()
        self.rendition = Rendition("live", "source", self.store,
                                   target_duration=config.target_duration_s,
                                   low_latency=low_latency)
        self.now = 1_700_000_000.0
        self.inits = 0
        self.texts: list[str] = []
        self.segmenter: Segmenter | None = None
        self.pushed = 0
        self.placed = 0
        self.dropped = 0
        self.parts: list[Part] = []

    def start(self, publication: Publication) -> None:
        self.inits += 1
        frame_ms = 1000 / publication.fps if publication.declared_rate else None
        self.segmenter = Segmenter(
            self.config, has_video=publication.has_video, has_audio=publication.has_audio,
            frame_duration_ms=frame_ms if publication.has_video else None,
            part_target_ms=self.rendition.part_target_ms)
        self.rendition.set_init(self.inits, b"init%d" % self.inits)
        if self.inits > 1:  # a reconnect continues the playlist after a discontinuity
            self.rendition.mark_discontinuity()

    def push(self, unit: MediaUnit) -> None:
        assert self.segmenter is not None
        self.pushed += 1
        self.now += 0.005
        self.list(self.segmenter.push(unit))

    def stop(self) -> None:
        assert self.segmenter is not None
        self.list(self.segmenter.flush())
        self.dropped += self.segmenter.dropped
        self.segmenter = None

    def list(self, parts: list[Part]) -> None:
        segmenter = self.segmenter
        assert segmenter is not None
        rendition = self.rendition
        if parts and rendition.part_target_ms is None:
            rendition.part_target_ms = segmenter.part_target_ms
        for part in parts:
            self.parts.append(part)
            self.placed += len(part.units)
            if part.discontinuity:
                rendition.mark_discontinuity()
            rendition.add_part(b"p" * len(part.units), part.duration_ms, part.independent,
                               part.first_in_segment, part.last_in_segment,
                               part.start_ms + part.duration_ms, now=self.now)
            self.check()
            self.check_blocking_reload()

    def end(self) -> None:
        self.rendition.end(now=self.now)
        self.check()

    def check(self) -> None:
        text = self.rendition.text()
        independent = all(s.independent for s in self.rendition.segments) and (
            self.rendition.open is None or self.rendition.open.independent)
        check_media_playlist(text, first_sequence=0, independent=independent)
        if self.texts:
            check_successive(self.texts[-1], text)
        self.texts.append(text)

    def check_blocking_reload(self) -> None:
        """What the playlist lists is what `has` reports, and the hint is the next part."""
        rendition = self.rendition
        playlist = parse(rendition.text())
        msn, part = rendition.last_msn, rendition.last_part
        assert rendition.has(msn, part)
        assert not rendition.has(msn + 1, 0) or rendition.open is None
        if rendition.open is not None:
            assert playlist.open is not None and len(playlist.open.parts) == part + 1
            assert not rendition.has(msn, part + 1)
            assert rendition.part_listed_or_hinted(msn, part + 1)
        hint = playlist.preload_hints[0]["URI"] if playlist.preload_hints else None
        if hint is not None:
            assert rendition.store.get(rendition.prefix + hint) is None
        for segment in playlist.all_segments:  # everything listed can be downloaded
            for listed in segment.parts:
                assert rendition.store.get(rendition.prefix + listed.uri) is not None
            if segment.uri is not None:
                assert rendition.store.get(rendition.prefix + segment.uri) is not None


def run(config: TimelineConfig, plan: list[Publication], seed: int) -> Harness:
    rng = random.Random(seed)
    harness = Harness(config)
    for publication in plan:
        harness.start(publication)
        for unit in units_of(publication, rng):
            harness.push(unit)
        harness.stop()
    harness.end()
    return harness


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(publications, min_size=1, max_size=3), seed=st.integers(0, 2**32),
       segment_target=st.sampled_from([1000, 2000, 2000, 4000]),
       part_target=st.sampled_from([200, 333, 333, 500]))
def test_every_playlist_and_reload_keeps_the_rules(plan: list[Publication], seed: int,
                                                   segment_target: int,
                                                   part_target: int) -> None:
    config = TimelineConfig(segment_target_ms=segment_target,
                            part_target_ms=min(part_target, segment_target // 2))
    harness = run(config, plan, seed)
    # Every unit pushed is in exactly one part, or counted as dropped.
    assert harness.placed + harness.dropped == harness.pushed
    assert (harness.texts and parse(harness.texts[-1]).ended) or not harness.parts
