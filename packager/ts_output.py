"""Classic MPEG-TS HLS beside the fMP4 rendition, for players that know nothing else.

It follows the fMP4 source rendition part by part: the same segment boundaries, numbers,
discontinuities and PROGRAM-DATE-TIMEs, so `ts/seg-N.ts` holds the same media as
`source/seg-N.m4s` at the same dates (which chat's date ranges are stamped on). A TS segment
is complete once the next segment's first unit is known (see `TsMuxer.mux_segment`), so it is
listed one part after its fMP4 twin: dated on its own clock, it would start a part late.
H.264 (with or without AAC) only: HEVC and AV1 are fMP4-only in HLS, and audio-only TS
segments would not start with PAT/PMT.
"""

from __future__ import annotations

import logging

import av

from golive.media import MediaUnit, Track
from golive.packager.fmp4 import UnsupportedCodec
from golive.packager.mpegts import TsMuxer
from golive.packager.rendition import Rendition
from golive.packager.timeline import Part, TimedUnit

log = logging.getLogger("golive.packager")


class TsOutput:
    def __init__(self, stream: str, rendition: Rendition) -> None:
        self.stream = stream
        self.rendition = rendition
        self._muxer: TsMuxer | None = None
        self._units: list[TimedUnit] = []
        self._sequence = -1
        self._duration_ms = 0
        self._independent = False
        self._date: float | None = None  # the fMP4 twin's PROGRAM-DATE-TIME

    def start(self, tracks: list[Track]) -> None:
        """A new timeline (publication or codec change): the next segment is discontinuous."""
        self.finish()
        try:
            self._muxer = TsMuxer(tracks)
        except UnsupportedCodec as exc:
            log.info("stream %s: no MPEG-TS playlist for this publication: %s", self.stream, exc)
            self._muxer = None
        if self.rendition.has_media:
            self.rendition.mark_discontinuity()

    def part_listed(self, part: Part, source: Rendition) -> None:
        """A part the fMP4 source rendition just listed (in its segment `last_msn`)."""
        if self._muxer is None:
            return
        sequence = source.last_msn
        if part.first_in_segment and self._units:
            # The previous segment can be cut now that this one's first unit is known; a timing
            # discontinuity instead ends the muxer's timeline.
            self._emit(following=None if part.discontinuity else part.units[0][0])
            if part.discontinuity:
                self.rendition.mark_discontinuity()
        if part.first_in_segment or not self._units:
            self._sequence, self._duration_ms = sequence, 0
            self._independent = part.independent
            twin = source.open if source.open is not None else (
                source.segments[-1] if source.segments else None)
            self._date = twin.program_date_time if twin is not None and (
                twin.sequence == sequence) else None
        self._units.extend(part.units)
        self._duration_ms += part.duration_ms

    def finish(self) -> None:
        """The timeline ends (publisher gone, codec change): list what is gathered."""
        self._emit(following=None)
        if self._muxer is not None:
            self._muxer.close()
            self._muxer = None

    def close(self) -> None:
        """Shutting down: drop the muxer, list nothing more."""
        self._units = []
        if self._muxer is not None:
            self._muxer.close()
            self._muxer = None

    def _emit(self, following: MediaUnit | None) -> None:
        units, self._units = self._units, []
        if self._muxer is None or not units:
            return
        try:
            data = self._muxer.mux_segment(units, following)
        except (ValueError, av.FFmpegError) as exc:  # the muxer starts a new timeline
            log.warning("stream %s: TS segment %d not muxed: %s", self.stream, self._sequence, exc)
            self.rendition.mark_discontinuity()
            return
        self.rendition.add_segment(self._sequence, data, self._duration_ms, self._independent,
                                   program_date_time=self._date)
