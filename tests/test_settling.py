"""Track settling: when a publication's track set is known, and what waits until then."""

from __future__ import annotations

from golive.media import MediaUnit, Track, TrackKind
from golive.packager.settling import MAX_PENDING_UNITS, SETTLE_MS, TrackSettling

VIDEO = Track(TrackKind.VIDEO, "h264", b"\x01\x64\x00\x1f")
AUDIO = Track(TrackKind.AUDIO, "aac", b"\x11\x90")


def unit(kind: TrackKind, dts: int) -> MediaUnit:
    return MediaUnit(kind, dts, dts, kind is TrackKind.VIDEO, b"x")


def test_nothing_is_settled_before_a_track() -> None:
    settling = TrackSettling()
    settling.hold(unit(TrackKind.VIDEO, 0))
    settling.hold(unit(TrackKind.VIDEO, 5000))
    assert not settling.settled({"videocodecid": 7})


def test_announced_tracks_settle_once_each_has_its_configuration() -> None:
    settling = TrackSettling()
    metadata = {"videocodecid": 7, "audiocodecid": 10}
    settling.track(VIDEO)
    settling.hold(unit(TrackKind.VIDEO, 0))
    assert not settling.settled(metadata)  # audio was announced: wait for it
    settling.track(AUDIO)
    assert settling.settled(metadata)


def test_video_only_announcement_settles_with_video() -> None:
    settling = TrackSettling()
    settling.track(VIDEO)
    settling.hold(unit(TrackKind.VIDEO, 0))
    assert settling.settled({"videocodecid": 7})


def test_without_metadata_both_kinds_or_settle_ms_of_media() -> None:
    settling = TrackSettling()
    settling.track(VIDEO)
    settling.hold(unit(TrackKind.VIDEO, 0))
    settling.hold(unit(TrackKind.VIDEO, SETTLE_MS - 1))
    assert not settling.settled({})
    settling.hold(unit(TrackKind.VIDEO, SETTLE_MS))
    assert settling.settled({})
    other = TrackSettling()
    other.track(VIDEO)
    other.track(AUDIO)
    other.hold(unit(TrackKind.AUDIO, 0))
    assert other.settled({})


def test_held_units_are_bounded_oldest_dropped_counted() -> None:
    settling = TrackSettling()
    for dts in range(MAX_PENDING_UNITS + 7):
        settling.hold(unit(TrackKind.AUDIO, dts))
    assert settling.dropped == 7
    taken = settling.take()
    assert len(taken) == MAX_PENDING_UNITS and taken[0].dts == 7
    assert settling.pending == [] and settling.take() == []
