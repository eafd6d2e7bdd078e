"""One broadcast's transcoded renditions: the transcode sessions, a lane per rung, and what
keeps every rung aligned with the source rendition.

The broadcast (`broadcast.py`) packages the source and hands each unit on here: source video
goes to the transcode sessions (with "a segment starts here" as the IDR flag), audio straight
into every rung's lane. The rungs' encoded units come back through `_LadderFeed` into their
lanes, which cut at every keyframe (the transcoder put IDRs where the source's segments
start). Each rung segment then takes the number and PROGRAM-DATE-TIME of the source segment
that starts at the same PTS; segments a rung lost (shed for load, a worker restart) are listed
as EXT-X-GAP, so segment N is the same media in every rendition.

What this needs of the broadcast it gets as narrow pieces: the rendition set (to add the
rungs' renditions and write playlists), the timeline, the metrics and the live-edge reading;
what it needs to hear of the source rendition, it hears as a listener on the source lane.
"""

from __future__ import annotations

import functools
import logging
from collections import deque

import av

from golive.media import MediaUnit, Track, TrackKind
from golive.packager.lane import Lane, first_video_pts
from golive.packager.live_edge import LiveEdge
from golive.packager.metrics import PackagerMetrics
from golive.packager.rendition import Rendition, SegmentRecord
from golive.packager.renditions import RenditionSet
from golive.packager.timeline import Part, TimelineConfig
from golive.transcode.ladder import Rung
from golive.transcode.pool import SessionCallbacks, TranscodeSession
from golive.transcode.service import Transcoder

log = logging.getLogger("golive.packager")

MAX_SOURCE_STARTS = 64  # source segment starts remembered for the rungs to align to
RECENT_AUDIO = 250  # audio units (~5 s of AAC) kept for a rung whose encoder is starting


class TranscodedRenditions:
    def __init__(self, name: str, transcoder: Transcoder, renditions: RenditionSet,
                 timeline: TimelineConfig, metrics: PackagerMetrics,
                 live_edge: LiveEdge) -> None:
        self.name = name
        self.transcoder = transcoder
        self.renditions = renditions
        self.timeline = timeline
        self.metrics = metrics
        self.live_edge = live_edge
        self.lanes: dict[str, Lane] = {}  # by rendition name, e.g. "360p"
        self._ladders: list[_LadderFeed] = []  # this publication's transcode sessions
        self._draining: list[_LadderFeed] = []  # earlier publications' still draining
        # The session re-encoding the source's size, standing in for it (long GOPs).
        self.reencoded: _LadderFeed | None = None
        self._recent_audio: deque[MediaUnit] = deque(maxlen=RECENT_AUDIO)
        self._source_starts: dict[int, int] = {}  # PTS a source segment starts at -> number
        self.shed: set[str] = set()  # rungs the transcoder does not encode now (load)
        self.ended = False  # the broadcast ended: nothing more is listed
        self._offer_source()

    def _offer_source(self) -> None:
        """The master playlist offers the source unless a re-encode of its size stands in."""
        self.renditions.offer_source = self.transcoder.passthrough and self.reencoded is None

    # -- what the source rendition does ------------------------------------------------------

    def start(self, video: Track | None, audio: Track | None,
              metadata: dict[str, object]) -> None:
        """(Re)start transcoding for this publication's video, if there is a ladder for it."""
        self.stop(drain=False)
        self._recent_audio.clear()
        self.shed.clear()
        self.reencoded = None
        self._offer_source()
        if video is None:
            return
        rungs = self.transcoder.rungs_for(video, metadata)
        if not rungs:
            log.info("stream %s: %dx%d is too small for any rung of the ladder", self.name,
                     video.width, video.height)
            return
        self._open(video, audio, rungs, from_idr=False)

    def source_unit(self, unit: MediaUnit, cut: bool) -> None:
        """A unit the source lane took; `cut`: a source segment starts at it."""
        if not self._ladders:
            return
        if unit.kind is TrackKind.VIDEO:
            for ladder in self._ladders:
                ladder.session.push(unit, cut)
        else:
            self._recent_audio.append(unit)
            for lane in self.lanes.values():
                if lane.started:
                    self._push(lane, unit)

    def source_part_listed(self, part: Part, source: Rendition) -> None:
        """A listener on the source lane: remember where its segments start (for the rungs
        to align to), and let shed rungs list a gap for each of its segments, so players
        switch away."""
        if part.first_in_segment and self.lanes:
            pts = first_video_pts(part)
            if pts is not None:
                self._source_starts[pts] = source.last_msn
                while len(self._source_starts) > MAX_SOURCE_STARTS:
                    del self._source_starts[next(iter(self._source_starts))]
        if part.last_in_segment and source.segments:
            sequence = source.segments[-1].sequence
            for rung in self.shed:
                self._fill_gaps(self.lanes[rung].rendition, sequence + 1)

    def reencode_source(self, video: Track | None, audio: Track | None,
                        metadata: dict[str, object]) -> None:
        """The source's keyframes are too far apart for its segments to start with one:
        from its next keyframe on, its size is re-encoded with IDRs at every cut, and the
        master playlist offers that instead of the source."""
        if self.reencoded is not None or video is None or not self.transcoder.transcodable(
                video):
            return
        top = self.transcoder.top_rung(video, metadata)
        log.warning("stream %s: re-encoding the source's %dx%d as rung %s (long_gop = "
                    "reencode), offered instead of the source", self.name, video.width,
                    video.height, top.name)
        self.reencoded = self._open(video, audio, (top,), from_idr=True)
        self._offer_source()

    def stop(self, *, drain: bool) -> None:
        """No more source units for the ladders. Draining: the rungs' last frames still come
        (then `done`); otherwise the rungs end here."""
        ladders, self._ladders = self._ladders, []
        for ladder in ladders:
            ladder.session.close()
            if drain:
                ladder.draining = True
                self._draining.append(ladder)
            else:
                ladder.active = False
                self.done(ladder.rungs)

    def done(self, names: tuple[str, ...] | None = None) -> None:
        """These rungs (None: all) list what they have: their encoders are done."""
        for name, lane in self.lanes.items():
            if names is None or name in names:
                lane.flush()
                lane.close()
        self.renditions.write_changed()

    def end(self) -> None:
        """The broadcast ended: every rung ends here, also one still draining."""
        self.ended = True
        self.stop(drain=False)
        for ladder in self._draining:
            ladder.active = False
        self._draining.clear()
        self.done()

    def close(self) -> None:
        """Shutting down or expired: stop the encoders, drop the lanes."""
        self.stop(drain=False)
        for lane in self.lanes.values():
            lane.close()

    # -- for the API -------------------------------------------------------------------------

    def status(self, name: str) -> dict[str, object] | None:
        """For the API: a transcoded rendition's state (None if `name` is none)."""
        if name not in self.lanes:
            return None
        ladder = next((ladder for ladder in self._ladders if name in ladder.rungs), None)
        stats = ladder.session.stats if ladder is not None else None
        rung = stats.rungs.get(name) if stats is not None else None
        speed = (round(rung.media_seconds / rung.busy_seconds, 2)
                 if rung is not None and rung.busy_seconds else None)
        return {"shed": name in self.shed, "encode_speed": speed,
                "frames_out": rung.frames_out if rung is not None else 0}

    # -- sessions and lanes ------------------------------------------------------------------

    def _open(self, video: Track, audio: Track | None, rungs: tuple[Rung, ...], *,
              from_idr: bool) -> _LadderFeed:
        """A transcode session for these rungs, with a lane (and a playlist) for each."""
        for rung in rungs:
            if rung.name not in self.lanes:
                rendition = self.renditions.add_rung(rung.name, rung.short_side)
                lane = Lane(self.name, rendition, self.timeline, self.metrics,
                            keyframes_are_cuts=True)
                lane.before_segment = functools.partial(self._align, rendition)
                self.lanes[rung.name] = lane
        ladder = _LadderFeed(self, audio, tuple(r.name for r in rungs))
        ladder.session = self.transcoder.open(self.name, video, rungs, ladder.callbacks(),
                                              from_idr=from_idr)
        self._ladders.append(ladder)
        log.info("stream %s: transcoding to %s", self.name, ", ".join(
            f"{r.name} ({'x'.join(map(str, r.size_for(video.width, video.height)))} "
            f"{r.bitrate // 1000} kb/s)" for r in rungs))
        return ladder

    def _fill_gaps(self, rendition: Rendition, sequence: int) -> dict[int, SegmentRecord]:
        """List the source's segments before `sequence` that the rung lacks as gaps; the
        source's segments (and its open one) by number."""
        source = self.renditions.source
        twins = {s.sequence: s for s in source.segments}
        if source.open is not None:
            twins[source.open.sequence] = source.open
        for missing in range(rendition.next_sequence, sequence):
            twin = twins.get(missing)
            if twin is not None:  # else older than the source's window: nothing to align
                rendition.add_gap(missing, twin.duration_ms, twin.program_date_time)
                self.metrics.gap_segments.labels(self.name, rendition.name).inc()
        return twins

    def _align(self, rendition: Rendition, part: Part) -> float | None:
        """A rung starts a segment: give it the number and the date of the source's segment
        starting at the same PTS (players align renditions by PROGRAM-DATE-TIME, and the
        rung lists its segment later, by the encoders' delay). Segments the rung lost (its
        transcoder shed or restarted) are listed as gaps, so every rendition's segment N
        covers the same media."""
        pts = first_video_pts(part)
        sequence = self._source_starts.get(pts) if pts is not None else None
        if sequence is None or sequence < rendition.next_sequence:
            return None
        twins = self._fill_gaps(rendition, sequence)
        rendition.next_sequence = sequence
        # Frames lost before this segment leave a hole: the dates must jump to the source's.
        last = rendition.open or (rendition.segments[-1] if rendition.segments else None)
        twin = twins.get(sequence)
        if twin is None:
            return None
        if last is not None and abs(last.program_date_time + last.duration_ms / 1000
                                    - twin.program_date_time) > 0.002:
            rendition.mark_discontinuity()
        return twin.program_date_time

    def _push(self, lane: Lane, unit: MediaUnit) -> None:
        version = lane.rendition.version
        lane.push(unit)
        if lane.rendition.version != version:
            self.renditions.write_changed()

    # -- what the transcoder reports (through _LadderFeed) -----------------------------------

    def _rung_track(self, rung: str, video: Track, audio: Track | None) -> None:
        lane = self.lanes.get(rung)
        if lane is None or self.ended:
            return
        self.shed.discard(rung)
        lane.flush()
        tracks = {TrackKind.VIDEO: video}
        if audio is not None:
            tracks[TrackKind.AUDIO] = audio
        try:
            lane.start(tracks, discontinuity=lane.rendition.has_media)
        except (ValueError, av.FFmpegError) as exc:
            log.error("stream %s: cannot package rung %s: %s", self.name, rung, exc)
            return
        for unit in self._recent_audio:  # the audio that came while the encoder started
            lane.push(unit)

    def _rung_shed(self, rung: str, encoding: bool) -> None:
        """The transcoder stopped encoding a rung (load) or took it back. While shed, the
        rung lists a gap for each of the source's segments, so players switch away."""
        lane = self.lanes.get(rung)
        if lane is None:
            return
        if encoding:
            return  # its new encoder's track starts the lane again (`_rung_track`)
        self.shed.add(rung)
        lane.flush()
        lane.close()  # what the encoder drains now belongs to segments given up
        self.renditions.write_changed()

    def _rung_unit(self, rung: str, unit: MediaUnit) -> None:
        lane = self.lanes.get(rung)
        if lane is None or not lane.started or self.ended or rung in self.shed:
            return
        self._push(lane, unit)
        self.live_edge.measure(lane.rendition)

    def _rungs_restarted(self, names: tuple[str, ...]) -> None:
        """Their transcode worker died: each of these rungs goes on after a discontinuity."""
        for name in names:
            lane = self.lanes[name]
            lane.flush()
            if lane.rendition.has_media:
                lane.rendition.mark_discontinuity()
                self.metrics.discontinuities.labels(
                    self.name, f"transcoder restart {name}").inc()

    def _drained(self, ladder: _LadderFeed) -> None:
        if ladder in self._draining:
            self._draining.remove(ladder)
        self.done(ladder.rungs)

    def _failed(self, ladder: _LadderFeed, reason: str) -> None:
        """A ladder cannot run for this source: the source rendition carries on."""
        for ladders in (self._ladders, self._draining):
            if ladder in ladders:
                ladders.remove(ladder)
        self.transcoder.metrics.failures.labels(self.name).inc()
        log.error("stream %s: no %s for this publication: %s", self.name,
                  ", ".join(ladder.rungs), reason)
        if ladder is self.reencoded:  # the source is offered again
            self.reencoded = None
            self._offer_source()
        self.done(ladder.rungs)


class _LadderFeed:
    """What one transcode session's output goes to: the rung lanes, while this session is
    the current one (or draining after its publisher left)."""

    def __init__(self, renditions: TranscodedRenditions, audio: Track | None,
                 rungs: tuple[str, ...]) -> None:
        self.renditions = renditions
        self.audio = audio  # the audio every rendition carries, muxed into every rung
        self.rungs = rungs
        self.session: TranscodeSession
        self.active = True
        self.draining = False

    def callbacks(self) -> SessionCallbacks:
        return SessionCallbacks(on_item=self._item, on_restart=self._restart,
                                on_stopped=self._stopped, on_failed=self._failed,
                                on_shed=self._shed)

    def _shed(self, rung: str, encoding: bool) -> None:
        if self.active:
            self.renditions._rung_shed(rung, encoding)

    def _item(self, rung: str, item: Track | MediaUnit) -> None:
        if not self.active:
            return
        if isinstance(item, Track):
            self.renditions._rung_track(rung, item, self.audio)
        else:
            self.renditions._rung_unit(rung, item)

    def _restart(self) -> None:
        if self.active:
            self.renditions._rungs_restarted(self.rungs)

    def _stopped(self) -> None:
        if self.active and self.draining:
            self.active = False
            self.renditions._drained(self)

    def _failed(self, reason: str) -> None:
        if self.active:
            self.active = False
            self.renditions._failed(self, reason)
