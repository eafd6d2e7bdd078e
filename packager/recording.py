"""Recording a whole broadcast as a VOD playlist: every segment, from the first to the last.

The live playlist is a sliding window; a recording keeps every segment file (named like the
live ones: `seg-<sequence>.m4s` or `.ts`, `init-<n>.mp4`) and lists them all in
`<prefix>index.m3u8`.

While the broadcast runs, the playlist is rewritten after every segment as an EVENT playlist
without ENDLIST. EVENT rather than VOD because a VOD playlist must never change (RFC 8216
4.3.3.5) while an EVENT playlist may only grow at its end, which is exactly what happens; so
a crash leaves a valid playlist of everything recorded so far (players can also watch the
recording from the start while it grows). `end()` then writes the final VOD playlist with
ENDLIST; `seal_recording` does the same for a recording whose process died before `end()`.
With a `DiskStore` every file is replaced atomically, so a reader never sees half a
playlist and never a playlist listing a segment that is not on disk yet (the segment is
written first).

TARGETDURATION may not change within a playlist, so the EVENT playlists use the live
playlists' target (which the segmenter keeps every EXTINF within) unless a real segment
rounds above it; the final VOD playlist uses the longest real segment, rounded.

Every date range added while recording (gifts, pins, markers: EXT-X-DATERANGE) is kept and
listed from the next playlist written, so the recording's timeline carries them all. They are
not written at once: the playlist is rewritten per segment, never per chat event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import Counter

from golive.packager.playlist import (
    DateRange,
    MediaPlaylist,
    SegmentEntry,
    render_media_playlist,
)
from golive.packager.rendition import Rendition
from golive.packager.store import Store
from golive.packager.timeline import Part

log = logging.getLogger("golive.packager")

PLAYLIST = "index.m3u8"
ENDLIST = "#EXT-X-ENDLIST"


class Recorder:
    """Stores one rendition's segments under `prefix` and keeps a playlist of all of them."""

    def __init__(self, store: Store, prefix: str, *, fmp4: bool = True,
                 target_duration: int | None = None) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.store = store
        self.prefix = prefix
        self.fmp4 = fmp4  # False: MPEG-TS segments, no EXT-X-MAP, VERSION 3
        self.target_duration = target_duration  # the live playlists' TARGETDURATION
        self.segments: list[SegmentEntry] = []
        self.date_ranges: list[DateRange] = []
        self.init_uri = ""
        self.ended = False

    @property
    def playlist_key(self) -> str:
        return self.prefix + PLAYLIST

    def set_init(self, index: int, data: bytes) -> None:
        """A new init segment (fMP4): the following segments are listed under its EXT-X-MAP."""
        if not self.fmp4:
            raise ValueError("MPEG-TS recordings have no init segment")
        self.init_uri = f"init-{index}.mp4"
        self.store.put(self.prefix + self.init_uri, data)

    def add_segment(self, sequence: int, data: bytes, duration_ms: int, independent: bool,
                    discontinuity: bool, program_date_time: float) -> None:
        if self.ended:
            raise ValueError("the recording has ended")
        if self.fmp4 and not self.init_uri:
            raise ValueError("an fMP4 segment needs an init segment first")
        if self.segments and sequence <= self.segments[-1].sequence:
            raise ValueError(f"segment {sequence} after {self.segments[-1].sequence}")
        uri = f"seg-{sequence}.{'m4s' if self.fmp4 else 'ts'}"
        # The file first, then the playlist that lists it.
        self.store.put(self.prefix + uri, data)
        # The first segment needs no DISCONTINUITY tag: nothing precedes it in this playlist.
        self.segments.append(SegmentEntry(
            sequence=sequence, uri=uri, duration=duration_ms / 1000,
            program_date_time=program_date_time, init_uri=self.init_uri if self.fmp4 else "",
            independent=independent, discontinuity=discontinuity and bool(self.segments)))
        self._write(ended=False)

    def add_date_range(self, date_range: DateRange) -> None:
        """Listed from the next playlist written (the next segment's, or the final one);
        none once ended (a VOD playlist must never change)."""
        if not self.ended:
            self.date_ranges.append(date_range)

    def end(self) -> None:
        """The broadcast is over: the final VOD playlist, with ENDLIST."""
        if self.ended:
            return
        self.ended = True
        if self.segments:
            self._write(ended=True)

    def render(self, ended: bool) -> str:
        longest = max((round(s.duration) for s in self.segments), default=1)
        # Live target while growing (it must not change); the real longest once final.
        target = max(1, longest) if ended else max(1, self.target_duration or 0, longest)
        return render_media_playlist(MediaPlaylist(
            target_duration=target,
            media_sequence=self.segments[0].sequence if self.segments else 0,
            discontinuity_sequence=0, segments=self.segments, ended=ended,
            playlist_type="VOD" if ended else "EVENT", date_ranges=tuple(self.date_ranges)))

    def _write(self, ended: bool) -> None:
        self.store.put(self.playlist_key, self.render(ended).encode())


def seal_recording(store: Store, prefix: str) -> bool:
    """Turn the EVENT playlist a crashed recording left behind into its VOD playlist.

    Returns False when there is nothing to do (no playlist, or it has ENDLIST already).
    """
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    data = store.get(prefix + PLAYLIST)
    if data is None:
        return False
    lines = data.decode().splitlines()
    if ENDLIST in lines:
        return False
    lines = ["#EXT-X-PLAYLIST-TYPE:VOD" if line == "#EXT-X-PLAYLIST-TYPE:EVENT" else line
             for line in lines]
    lines.append(ENDLIST)
    store.put(prefix + PLAYLIST, ("\n".join(lines) + "\n").encode())
    return True


class BroadcastRecording:
    """Records a broadcast's source rendition as it is listed: a listener on the source lane.

    Recording must never stop the live stream: a failure (disk full) ends the recording,
    logged and counted, and the broadcast goes on.
    """

    def __init__(self, stream: str, recorder: Recorder, live: Store,
                 errors: Counter) -> None:
        self.stream = stream
        self.recorder: Recorder | None = recorder  # None once a failure stopped it
        self._live = live  # where the listed segments' bytes are
        self._errors = errors  # golive_hls_recording_errors_total{stream}

    def set_init(self, index: int, data: bytes) -> None:
        self._do(lambda recorder: recorder.set_init(index, data))

    def part_listed(self, part: Part, rendition: Rendition) -> None:
        if not (part.last_in_segment and rendition.segments):
            return
        s = rendition.segments[-1]
        self._do(lambda recorder: recorder.add_segment(
            s.sequence, self._live.get(rendition.prefix + s.uri) or b"", s.duration_ms,
            s.independent, s.discontinuity, s.program_date_time))

    def add_date_range(self, date_range: DateRange) -> None:
        self._do(lambda recorder: recorder.add_date_range(date_range))

    def end(self) -> None:
        self._do(lambda recorder: recorder.end())

    def _do(self, action: Callable[[Recorder], None]) -> None:
        if self.recorder is None:
            return
        try:
            action(self.recorder)
        except (OSError, ValueError) as exc:
            log.error("stream %s: recording stopped: %s", self.stream, exc)
            self._errors.labels(self.stream).inc()
            self.recorder = None
