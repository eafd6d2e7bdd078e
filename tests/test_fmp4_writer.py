"""`FragmentWriter` writes each part's moof+mdat itself: the same bytes libavformat's mp4
muxer writes for it, checked here byte for byte on the real captures (every codec it takes
over), cut as the segmenter cuts them and cut oddly (single samples, one track alone, forced
short durations, 44.1 kHz audio whose milliseconds do not divide evenly)."""

from __future__ import annotations

import functools
import random
from pathlib import Path

import pytest

from golive.codecs import aac_rate_and_channels
from golive.ingest.connection import ServerConnection
from golive.ingest.demux import probe_video, video_geometry
from golive.ingest.events import CodecConfigured, PublishRequested
from golive.media import MediaUnit, Track, TrackKind
from golive.packager.fmp4 import DIRECT_CODECS, FragmentMuxer
from golive.packager.timeline import Segmenter, TimelineConfig

CAPTURES = Path(__file__).parent / "data" / "captures"
NAMES = sorted(p.name.removesuffix(".c2s.bin") for p in CAPTURES.glob("*.c2s.bin"))
Timed = list[tuple[MediaUnit, int]]


@functools.cache
def capture(name: str) -> tuple[tuple[Track, ...], tuple[MediaUnit, ...]]:
    """The capture's tracks (as ingest completes them) and its units from the first keyframe."""
    core = ServerConnection()
    units: list[MediaUnit] = []
    configs: dict[TrackKind, CodecConfigured] = {}
    for event in core.receive_data((CAPTURES / f"{name}.c2s.bin").read_bytes()):
        if type(event) is MediaUnit:
            units.append(event)
        elif isinstance(event, CodecConfigured):
            configs[event.kind] = event
        elif isinstance(event, PublishRequested):
            core.accept_publish(event.stream_id)
    first = next(i for i, u in enumerate(units) if u.kind is TrackKind.VIDEO and u.keyframe)
    video, audio = configs[TrackKind.VIDEO], configs[TrackKind.AUDIO]
    key = units[first]
    size = video_geometry(video.codec, video.extradata, key.data) or probe_video(
        video.codec, video.extradata, key.data)
    rate, channels = aac_rate_and_channels(audio.extradata) or (48_000, 2)
    tracks = (Track(TrackKind.VIDEO, video.codec, video.extradata, video.codec_string,
                    size.width, size.height, size.pix_fmt),
              Track(TrackKind.AUDIO, audio.codec, audio.extradata, audio.codec_string,
                    sample_rate=rate, channels=channels))
    return tracks, tuple(units[first:])


def segmented(units: tuple[MediaUnit, ...]) -> list[Timed]:
    segmenter = Segmenter(TimelineConfig(), has_video=True, has_audio=True)
    parts = [p for unit in units for p in segmenter.push(unit)] + segmenter.flush()
    return [p.units for p in parts]


def odd_cuts(units: tuple[MediaUnit, ...], seed: int) -> list[Timed]:
    """Runs of 1-12 units in DTS order per track, with durations the segmenter could give
    (its own, or cut short by a part's end). A video keyframe starts a run: within a part
    libavformat would begin a second fragment there (movenc's implicit frag_keyframe), which
    the writer does not (`test_a_keyframe_inside_a_part_stays_in_its_one_fragment`)."""
    rng = random.Random(seed)
    ordered = sorted(units, key=lambda u: u.dts)
    out: list[Timed] = []
    at = 0
    while at < len(ordered):
        run = ordered[at:at + rng.randint(1, 12)]
        key = next((i for i, u in enumerate(run)
                    if i and u.kind is TrackKind.VIDEO and u.keyframe), None)
        run = run[:key]
        at += len(run)
        out.append([(u, rng.choice([1, 20, 21, 22, 33, 34, 40])) for u in run])
    return out


def both(muxer: FragmentMuxer, units: Timed) -> tuple[bytes, bytes]:
    assert muxer._writer is not None
    fragment = muxer._fragments + 1
    ours = muxer._writer.fragment(fragment, units)
    theirs = muxer._mux(units, init=False)  # libavformat's, numbered the same
    return ours, theirs


@pytest.mark.parametrize("name", [n for n in NAMES if "av1" not in n])
def test_fragments_are_libavformats_bytes(name: str) -> None:
    tracks, units = capture(name)
    assert all(t.codec in DIRECT_CODECS for t in tracks)
    muxer = FragmentMuxer(tracks)
    parts = segmented(units) + odd_cuts(units, 1)
    parts += [[t for t in p if t[0].kind is kind] for p in parts[:6] for kind in TrackKind]
    parts += [[(u, 33)] for u in units[:8]]
    for units_of_part in parts:
        ours, theirs = both(muxer, units_of_part)
        assert ours == theirs, f"{name}: {len(units_of_part)} units differ from libavformat"
    muxer.close()


def test_audio_at_44100_hz_rounds_as_libavformat_does() -> None:
    tracks, units = capture("obs29.0-h264")
    audio = Track(TrackKind.AUDIO, "aac", bytes([0x12, 0x10]), "mp4a.40.2", sample_rate=44_100,
                  channels=2)  # AAC-LC, 44.1 kHz, stereo
    muxer = FragmentMuxer([tracks[0], audio])
    for seed in range(3):
        for units_of_part in odd_cuts(units, seed)[:40]:
            ours, theirs = both(muxer, units_of_part)
            assert ours == theirs


def test_mux_part_numbers_fragments_on_and_skips_empty_parts() -> None:
    tracks, units = capture("obs29.0-h264")
    muxer = FragmentMuxer(tracks)
    parts = segmented(units)[:3]
    first = muxer.mux_part(parts[0])
    assert muxer.mux_part([]) == b""
    second = muxer.mux_part(parts[1])
    assert first[8 + 12:8 + 16] == (1).to_bytes(4, "big")  # mfhd sequence numbers
    assert second[8 + 12:8 + 16] == (2).to_bytes(4, "big")
    muxer.close()
    with pytest.raises(ValueError, match="closed"):
        muxer.mux_part(parts[2])


def test_av1_keeps_libavformats_muxer() -> None:
    """movenc filters AV1's OBUs (temporal delimiters): those parts stay its own."""
    name = next(n for n in NAMES if "av1" in n)
    tracks, units = capture(name)
    muxer = FragmentMuxer(tracks)
    assert muxer._writer is None
    assert muxer.mux_part(segmented(units)[0])[4:8] == b"moof"
    muxer.close()


def test_a_keyframe_inside_a_part_stays_in_its_one_fragment() -> None:
    """A part is one moof+mdat, whatever it holds (libavformat's per-part muxer cut a second
    fragment at a keyframe inside a part, numbered like the next part's)."""
    tracks, units = capture("obs29.0-h264")
    keys = [i for i, u in enumerate(units) if u.kind is TrackKind.VIDEO and u.keyframe]
    part = [(u, 20) for u in units[keys[1] - 4:keys[1] + 4]]
    muxer = FragmentMuxer(tracks)
    data = muxer.mux_part(part)
    assert data.count(b"moof") == 1 and data.count(b"mdat") == 1
    assert data.endswith(b"".join(u.data for u, _ in part if u.kind is TrackKind.VIDEO)
                         + b"".join(u.data for u, _ in part if u.kind is TrackKind.AUDIO))
    muxer.close()


def test_chunks_are_the_fragment_with_the_samples_own_bytes() -> None:
    tracks, units = capture("obs29.0-h264")
    one, other = FragmentMuxer(tracks), FragmentMuxer(tracks)
    for part in segmented(units)[:4]:
        chunks = one.mux_part_chunks(part)
        assert b"".join(chunks) == other.mux_part(part)
        samples = chunks[1:]  # after the boxes: each sample's data, not a copy
        assert len(samples) == len(part)
        assert all(any(s is u.data for u, _ in part) for s in samples)
    assert one.mux_part_chunks([]) == []
