"""Recordings: real segments (fMP4 and MPEG-TS) into a DiskStore, played back by FFmpeg's HLS
demuxer through PyAV, frame by frame."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from test_mpegts import Segment, clip_media, cut, mux_all

from golive.media import TrackKind
from golive.packager.fmp4 import FragmentMuxer
from golive.packager.mpegts import TsMuxer
from golive.packager.recording import Recorder, seal_recording
from golive.packager.store import DiskStore, MemoryStore

PREFIX = "main/20250101T120000Z/"
START = 1_735_732_800.0  # epoch seconds of the first sample
FRAME_MS = 40


def fmp4_segments(segments: list[Segment]) -> tuple[bytes, list[bytes]]:
    """Init segment and segments, each the concatenation of its parts (as the live ones)."""
    tracks, _ = clip_media()
    muxer = FragmentMuxer(tracks)
    data = [b"".join(muxer.mux_part(part.units) for part in segment.parts)
            for segment in segments]
    init = muxer.init_segment
    muxer.close()
    return init, data


def record(recorder: Recorder, segments: list[Segment], data: list[bytes], *,
           first_sequence: int = 0, offset_s: float = 0.0) -> None:
    for index, (segment, payload) in enumerate(zip(segments, data, strict=True)):
        first = segment.parts[0]
        recorder.add_segment(first_sequence + index, payload, segment.duration_ms,
                             first.independent, first.discontinuity or (
                                 index == 0 and first_sequence > 0),
                             START + offset_s + first.start_ms / 1000)


def play(path: Path) -> tuple[int, int]:
    """Video frames and audio samples FFmpeg's HLS demuxer plays from the playlist."""
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(path)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    return frames, samples


def tags(text: str, name: str) -> list[str]:
    return [line.split(":", 1)[1] if ":" in line else "" for line in text.splitlines()
            if line.split(":", 1)[0] == name]


@pytest.mark.parametrize("fmp4", [True, False], ids=["fmp4", "mpegts"])
def test_recording_plays_through_as_vod(tmp_path: Path, fmp4: bool) -> None:
    tracks, units = clip_media()
    segments = cut(units)
    store = DiskStore(tmp_path)
    recorder = Recorder(store, PREFIX, fmp4=fmp4, target_duration=2)
    if fmp4:
        init, data = fmp4_segments(segments)
        recorder.set_init(1, init)
    else:
        data = mux_all(TsMuxer(tracks), segments)
    record(recorder, segments, data)
    recorder.end()

    text = (tmp_path / PREFIX / "index.m3u8").read_text()
    assert tags(text, "#EXT-X-PLAYLIST-TYPE") == ["VOD"]
    assert text.endswith("#EXT-X-ENDLIST\n")
    assert tags(text, "#EXT-X-VERSION") == (["6"] if fmp4 else ["3"])
    assert tags(text, "#EXT-X-MAP") == (['URI="init-1.mp4"'] if fmp4 else [])
    extension = "m4s" if fmp4 else "ts"
    listed = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert listed == [f"seg-{i}.{extension}" for i in range(len(segments))]
    assert all((tmp_path / PREFIX / uri).read_bytes() == payload
               for uri, payload in zip(listed, data, strict=True))
    durations = [float(value.rstrip(",")) for value in tags(text, "#EXTINF")]
    assert tags(text, "#EXT-X-TARGETDURATION") == [str(max(round(d) for d in durations))]
    video = [u for u in units if u.kind is TrackKind.VIDEO]
    audio = [u for u in units if u.kind is TrackKind.AUDIO]
    media_s = len(video) * FRAME_MS / 1000
    assert abs(sum(durations) - media_s) <= FRAME_MS / 1000  # within a frame
    frames, samples = play(tmp_path / PREFIX / "index.m3u8")
    assert frames == len(video)
    assert samples == 1024 * len(audio)


def test_playlist_is_an_event_playlist_while_recording_and_a_crash_can_be_sealed(
        tmp_path: Path) -> None:
    _, units = clip_media()
    segments = cut(units)
    init, data = fmp4_segments(segments)
    store = DiskStore(tmp_path)
    recorder = Recorder(store, PREFIX, target_duration=2)
    recorder.set_init(1, init)
    record(recorder, segments[:2], data[:2])
    path = tmp_path / PREFIX / "index.m3u8"
    text = path.read_text()
    # Rewritten after every segment: a growing EVENT playlist, no ENDLIST yet.
    assert tags(text, "#EXT-X-PLAYLIST-TYPE") == ["EVENT"]
    assert "#EXT-X-ENDLIST" not in text
    assert [line for line in text.splitlines() if line.startswith("seg-")] == [
        "seg-0.m4s", "seg-1.m4s"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]  # atomic

    # The process dies here (no end()); the leftovers are sealed into a VOD playlist.
    assert seal_recording(store, PREFIX)
    assert not seal_recording(store, PREFIX)  # already sealed
    sealed = path.read_text()
    assert tags(sealed, "#EXT-X-PLAYLIST-TYPE") == ["VOD"]
    assert sealed == text.replace("EVENT", "VOD") + "#EXT-X-ENDLIST\n"
    frames, _ = play(path)
    assert frames == sum(len(s.of(TrackKind.VIDEO)) for s in segments[:2])
    assert not seal_recording(MemoryStore(), PREFIX)  # no recording at all


def test_discontinuity_and_new_init_segment(tmp_path: Path) -> None:
    """A publisher reconnects (timestamps restart at 0) with a new init segment."""
    _, units = clip_media()
    segments = cut(units)
    init, data = fmp4_segments(segments)
    store = DiskStore(tmp_path)
    recorder = Recorder(store, PREFIX, target_duration=2)
    recorder.set_init(1, init)
    record(recorder, segments, data)
    recorder.set_init(2, init)
    record(recorder, segments, data, first_sequence=len(segments), offset_s=60.0)
    recorder.end()
    text = (tmp_path / PREFIX / "index.m3u8").read_text()
    lines = text.splitlines()
    assert tags(text, "#EXT-X-MAP") == ['URI="init-1.mp4"', 'URI="init-2.mp4"']
    assert lines.count("#EXT-X-DISCONTINUITY") == 1
    second = lines.index(f"seg-{len(segments)}.m4s")
    block = lines[lines.index("#EXT-X-DISCONTINUITY"):second]
    assert 'EXT-X-MAP:URI="init-2.mp4"' in block[1] and block[2].startswith(
        "#EXT-X-PROGRAM-DATE-TIME:2025-01-01T12:01:00.000Z")
    assert len([line for line in lines if line.startswith("seg-")]) == 2 * len(segments)
    # FFmpeg's HLS demuxer reads every frame of both publications through the new EXT-X-MAP.
    # (Counted as packets: its decoder drops a few B-frames where the timestamps go back,
    # as FFmpeg does not act on EXT-X-DISCONTINUITY; browsers' players do.)
    with av.open(str(tmp_path / PREFIX / "index.m3u8")) as container:
        video = [(p.pts, bytes(p)) for p in container.demux(video=0) if p.size]
    expected = [u for u in units if u.kind is TrackKind.VIDEO]
    assert len(video) == 2 * len(expected)
    assert [pts for pts, _ in video[len(expected):]] == [pts for pts, _ in video[:len(expected)]]


def test_recorder_refuses_misuse() -> None:
    recorder = Recorder(MemoryStore(), "x")
    with pytest.raises(ValueError, match="init"):
        recorder.add_segment(0, b"", 2000, True, False, START)
    recorder.set_init(1, b"init")
    recorder.add_segment(5, b"seg", 2000, True, False, START)
    with pytest.raises(ValueError, match="after"):
        recorder.add_segment(5, b"seg", 2000, True, False, START)
    recorder.end()
    with pytest.raises(ValueError, match="ended"):
        recorder.add_segment(6, b"seg", 2000, True, False, START)
    with pytest.raises(ValueError, match="no init"):
        Recorder(MemoryStore(), "x", fmp4=False).set_init(1, b"init")
    assert recorder.playlist_key == "x/index.m3u8"
