"""One rendition's packaging line: segmenter -> fMP4 muxer -> rendition playlist and store.

A broadcast has one lane per fMP4 rendition: the source passed through, and each transcoded
rung. Each lane cuts its own units with its own `Segmenter`; the rungs' lanes are told that
their keyframes are the cut points (`keyframes_are_cuts`), because the transcoder put IDRs
exactly where the source lane started its segments. So all renditions' segments start at the
same presentation times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import av

from golive.media import MediaUnit, Track, TrackKind
from golive.packager.fmp4 import FragmentMuxer
from golive.packager.metrics import PackagerMetrics
from golive.packager.rendition import Rendition
from golive.packager.timeline import Part, Segmenter, TimelineConfig

log = logging.getLogger("golive.packager")

# What reacts to a listed part (the rendition already counts it): the MPEG-TS output, the
# rungs' alignment, the recorder, the long-GOP policy register one each (`Lane.on_listed`).
OnListed = Callable[[Part, Rendition], None]


def first_video_pts(part: Part) -> int | None:
    """The presentation time a part's video starts at (its first unit in decode order)."""
    return next((unit.pts for unit, _ in part.units if unit.kind is TrackKind.VIDEO), None)


class Lane:
    def __init__(self, stream: str, rendition: Rendition, timeline: TimelineConfig,
                 metrics: PackagerMetrics, *, keyframes_are_cuts: bool = False) -> None:
        self.stream = stream
        self.rendition = rendition
        self.timeline = timeline
        self.metrics = metrics
        self.keyframes_are_cuts = keyframes_are_cuts
        metrics.start_rendition(stream, rendition.name)
        self.tracks: dict[TrackKind, Track] = {}
        self.muxer: FragmentMuxer | None = None
        self.segmenter: Segmenter | None = None
        self.inits = 0
        # Called before a part that starts a segment is listed: rungs align their segment
        # numbers to the source's there, and take the date of the source's segment.
        self.before_segment: Callable[[Part], float | None] | None = None
        self._listeners: list[OnListed] = []

    def on_listed(self, listener: OnListed) -> None:
        """Call `listener` after each part this lane lists, in the order registered."""
        self._listeners.append(listener)

    @property
    def started(self) -> bool:
        return self.muxer is not None

    def start(self, tracks: dict[TrackKind, Track], *, discontinuity: bool) -> None:
        """Mux these tracks from now on (new init segment). Raises ValueError or
        av.FFmpegError when libavformat cannot package them."""
        muxer = FragmentMuxer(tracks.values())
        self.close()
        self.muxer = muxer
        self.tracks = dict(tracks)
        self.inits += 1
        video = tracks.get(TrackKind.VIDEO)
        frame_ms = 1000 / float(video.frame_rate) if video and video.frame_rate else None
        rendition = self.rendition
        self.segmenter = Segmenter(
            self.timeline, has_video=video is not None, has_audio=TrackKind.AUDIO in tracks,
            frame_duration_ms=frame_ms, part_target_ms=rendition.part_target_ms,
            keyframes_are_cuts=self.keyframes_are_cuts)
        rendition.set_init(self.inits, muxer.init_segment)
        rendition.codecs = tuple(t.codec_string or t.codec for t in tracks.values())
        rendition.resolution = (video.width, video.height) if video and video.width else None
        rendition.frame_rate = float(video.frame_rate) if video and video.frame_rate else None
        if discontinuity or self.inits > 1:
            rendition.mark_discontinuity()

    def push(self, unit: MediaUnit) -> bool:
        """Cut and list; True when this unit starts a segment (a cut point)."""
        segmenter = self.segmenter
        if segmenter is None or unit.kind not in self.tracks:
            return False
        started = segmenter.segments_started
        jumps = segmenter.jumps
        parts = segmenter.push(unit)
        if parts:  # (one unit in ~25 completes a part)
            self.list(parts)
        if segmenter.jumps != jumps:
            self.metrics.discontinuities.labels(self.stream, "timestamp jump").inc()
        return segmenter.segments_started != started

    def flush(self) -> None:
        """The units are over (publisher gone, codec change): list what is open."""
        segmenter = self.segmenter
        if segmenter is None:
            return
        self.list(segmenter.flush())
        if segmenter.dropped:
            self.metrics.dropped_units.labels(self.stream).inc(segmenter.dropped)
        self.segmenter = None

    def list(self, parts: list[Part]) -> None:
        muxer, segmenter, rendition = self.muxer, self.segmenter, self.rendition
        if not parts or muxer is None or segmenter is None:
            return
        if rendition.part_target_ms is None:
            rendition.part_target_ms = segmenter.part_target_ms
        name = rendition.name
        for part in parts:
            try:
                data = muxer.mux_part_chunks(part.units)  # (joined when first read)
            except av.FFmpegError as exc:
                self.metrics.mux_errors.labels(self.stream).inc()
                log.warning("stream %s: %s part at %d ms not muxed: %s", self.stream, name,
                            part.start_ms, exc)
                continue
            if part.discontinuity:
                rendition.mark_discontinuity()
            if part.forced and part.first_in_segment:
                self.metrics.forced_cuts.labels(self.stream, name).inc()
            date = None
            if part.first_in_segment and self.before_segment is not None:
                date = self.before_segment(part)
            rendition.add_part(data, part.duration_ms, part.independent, part.first_in_segment,
                               part.last_in_segment, part.start_ms + part.duration_ms,
                               program_date_time=date)
            self.metrics.parts.labels(self.stream, name).inc()
            if part.last_in_segment and rendition.segments:
                segment = rendition.segments[-1]
                self.metrics.segments.labels(self.stream, name).inc()
                self.metrics.segment_bytes.labels(self.stream, name).inc(segment.size)
            for listener in self._listeners:
                listener(part, rendition)

    def close(self) -> None:
        if self.muxer is not None:
            self.muxer.close()
            self.muxer = None
        self.segmenter = None
        self.tracks = {}
