"""Where segments and parts are cut: a pure function of the units' media timestamps.

No asyncio, no av, no clock. The segmenter receives units in arrival order and returns the
parts that became complete. Every rule of CONFORMANCE.md that depends on *where* cuts fall is
enforced here, so the playlist renderer only has to write down what it is given:

* Segments start at a video keyframe once the open segment has reached the segment target.
  If the publisher's keyframe interval is longer than the playlist's TARGETDURATION allows,
  the segment is cut at a non-keyframe (counted as a forced cut; the segment is then not
  independent) so that no EXTINF ever rounds above TARGETDURATION.
* Parts never exceed the part target and are at least 85% of it, except a segment's last part
  and parts that start with a keyframe (the LL-HLS exceptions). The part target is rounded to
  a whole number of frames, so a constant-rate stream fills every part exactly.
* The video track drives the cuts; audio units follow by DTS. Audio-only streams cut on audio.
* A timestamp jump (backwards, or forwards by more than `max_jump_ms`) ends the segment and the
  next one starts after a discontinuity, at the next keyframe.

Timestamps are integers in milliseconds, as ingest delivers them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from golive.media import MediaUnit, TrackKind

# The duration in milliseconds each unit is muxed with.
TimedUnit = tuple[MediaUnit, int]

MAX_PART_SHORTFALL = 0.15  # parts must reach 85% of the part target
AUDIO_WAIT_MS = 500  # how long video waits for audio to catch up before a part is closed
MAX_PENDING_AUDIO = 500  # audio units held while video is missing (~10 s of AAC)
MAX_AUDIO_REORDER_MS = 250  # an audio frame further back than this is a timestamp jump


@dataclass(frozen=True, slots=True)
class TimelineConfig:
    segment_target_ms: int = 2000
    part_target_ms: int = 333
    max_jump_ms: int = 5000

    def __post_init__(self) -> None:
        if self.part_target_ms <= 0 or self.segment_target_ms < self.part_target_ms:
            raise ValueError("need 0 < part target <= segment target")

    @property
    def target_duration_s(self) -> int:
        """EXT-X-TARGETDURATION: fixed for the playlist's whole life."""
        return max(1, math.ceil(self.segment_target_ms / 1000))

    @property
    def segment_limit_ms(self) -> int:
        """The longest a segment may grow: its EXTINF must round to at most TARGETDURATION."""
        return self.target_duration_s * 1000 + 499


@dataclass(slots=True)
class Part:
    """One complete part: what to mux and how to list it."""

    units: list[TimedUnit]
    start_ms: int  # media time of its first driving unit
    duration_ms: int
    independent: bool  # starts with a video keyframe (or the stream has no video)
    first_in_segment: bool
    last_in_segment: bool = False
    discontinuity: bool = False  # its segment follows a timing discontinuity
    forced: bool = False  # its segment was cut without a keyframe


@dataclass(slots=True)
class _OpenPart:
    start_ms: int
    independent: bool
    first_in_segment: bool
    discontinuity: bool
    forced: bool
    video: list[TimedUnit] = field(default_factory=list)
    duration_ms: int = 0


class Segmenter:
    """Cuts one rendition's unit flow into parts and segments.

    `has_video` says which track drives the cuts; it is fixed for the segmenter's life (a
    track set change means a new segmenter, after a discontinuity).
    """

    def __init__(self, config: TimelineConfig, has_video: bool, has_audio: bool,
                 frame_duration_ms: float | None = None, part_target_ms: int | None = None,
                 discontinuity: bool = False, keyframes_are_cuts: bool = False) -> None:
        self.config = config
        self._limit_ms = config.segment_limit_ms  # (a property: asked twice per frame)
        # Every keyframe starts a segment: upstream (the transcoder) placed IDRs exactly at
        # the cut points of another rendition, so this one cuts at the same times.
        self.keyframes_are_cuts = keyframes_are_cuts
        self.has_video = has_video
        self.has_audio = has_audio
        # A known part target (from an earlier publication of the same broadcast) is kept:
        # PART-TARGET must not change within a playlist.
        self.part_target_ms = part_target_ms
        self._frame_ms = frame_duration_ms  # nominal duration of one driving unit
        self._deltas: list[int] = []
        self._learned: float | None = None  # the frame duration, once the 16 deltas are in
        self._part: _OpenPart | None = None
        self._segment_ms = 0  # duration of the open segment's closed parts
        self._segment_forced = False  # the open segment was cut without a keyframe
        self._last_video: MediaUnit | None = None
        self._audio: deque[MediaUnit] = deque()  # audio not yet placed in a part
        self._audio_tail: MediaUnit | None = None  # newest audio unit, duration unknown yet
        self._audio_ms = 20
        self._closed: list[Part] = []  # closed on the video side, waiting for their audio
        self._discontinuity = discontinuity
        self._waiting_for_key = has_video
        self.forced_cuts = 0
        self.jumps = 0
        self.dropped = 0  # units before the first keyframe or after a jump
        self.segments_started = 0  # how many segments were opened: a cut point each

    # -- input ------------------------------------------------------------------------------

    def push(self, unit: MediaUnit) -> list[Part]:
        if unit.kind is TrackKind.VIDEO:
            if self.has_video:
                self._push_video(unit)
        elif self.has_audio:
            if self.has_video:
                self._push_audio(unit)
            else:
                self._push_driver_audio(unit)
        return self._ready()

    def flush(self) -> list[Part]:
        """The publisher is gone: close what is open (its last units get nominal durations)."""
        if self.has_video:
            if self._last_video is not None and self._part is not None:
                self._add_video(self._last_video, self._fit(round(self._nominal())))
                self._last_video = None
            self._close_part(last_in_segment=True)
        else:
            if self._audio_tail is not None and self._part is not None:
                self._add_audio_driver(self._audio_tail, self._fit(self._audio_ms))
                self._audio_tail = None
            self._close_part(last_in_segment=True)
        if self._audio_tail is not None:
            self._audio.append(self._audio_tail)
            self._audio_tail = None
        ready = self._ready(final=True)
        # Audio with no video part to go into (the video never sent a keyframe).
        self.dropped += len(self._audio)
        self._audio.clear()
        return ready

    # -- video drives -----------------------------------------------------------------------

    def _push_video(self, unit: MediaUnit) -> None:
        previous = self._last_video
        if previous is None:
            if self._waiting_for_key and not unit.keyframe:
                self.dropped += 1
                return
            self._waiting_for_key = False
            self._last_video = unit
            if self._part is None:
                self._open_part(unit.dts, independent=unit.keyframe, first_in_segment=True)
            return
        delta = unit.dts - previous.dts
        if delta <= 0 or delta > self.config.max_jump_ms:
            self._jump(previous)
            self._last_video = None
            self._push_video(unit)
            return
        self._learn(delta)
        part = self._part
        assert part is not None
        target = self._part_target()
        self._add_video(previous, self._fit(delta))  # a late frame must not overfill
        self._last_video = unit
        segment_ms = self._segment_ms + part.duration_ms
        estimate = min(self._nominal(), target * MAX_PART_SHORTFALL)
        # A keyframe ends a segment once it is long enough, or at once when the segment was
        # cut without one: segments start independent again as soon as they can.
        if unit.keyframe and (self._segment_forced or self.keyframes_are_cuts or segment_ms
                              >= self.config.segment_target_ms - self._nominal() / 2):
            self._close_part(last_in_segment=True)
            self._open_part(unit.dts, independent=True, first_in_segment=True)
        elif segment_ms + estimate > self._limit_ms:
            self.forced_cuts += 1
            self._close_part(last_in_segment=True)
            self._open_part(unit.dts, independent=unit.keyframe, first_in_segment=True,
                            forced=not unit.keyframe)
        elif part.duration_ms + estimate > target:
            self._close_part(last_in_segment=False)
            self._open_part(unit.dts, independent=unit.keyframe, first_in_segment=False)

    def _push_audio(self, unit: MediaUnit) -> None:
        tail = self._audio_tail
        if tail is not None:
            delta = unit.dts - tail.dts
            # Muxers need rising DTS: a repeated or slightly older frame is dropped. A frame
            # far behind is the audio's own timestamp jump (which may come before or after
            # the video's): dropping it would drop all audio from there on.
            if -MAX_AUDIO_REORDER_MS <= delta <= 0:
                self.dropped += 1
                return
            if len(self._audio) >= MAX_PENDING_AUDIO:  # video stalled: keep the newest
                self._audio.popleft()
                self.dropped += 1
            if 0 < delta <= 250:
                self._audio_ms = delta
            self._audio.append(tail)
        self._audio_tail = unit

    def _jump(self, previous: MediaUnit) -> None:
        """Timestamps jumped: close the segment; the next starts after a discontinuity."""
        self.jumps += 1
        if self._part is not None:
            self._add_video(previous, self._fit(round(self._nominal())))
            self._close_part(last_in_segment=True)
        self._discontinuity = True
        self._waiting_for_key = True
        # Audio from before the jump belongs to the closed segment or is dropped.
        self._closed_audio_cutoff()

    # -- audio drives (no video) ------------------------------------------------------------

    def _push_driver_audio(self, unit: MediaUnit) -> None:
        previous = self._audio_tail
        self._audio_tail = unit
        if previous is None:
            if self._part is None:
                self._open_part(unit.dts, independent=True, first_in_segment=True)
            return
        delta = unit.dts - previous.dts
        if delta <= 0 or delta > self.config.max_jump_ms:
            self.jumps += 1
            self._add_audio_driver(previous, self._fit(self._audio_ms))
            self._close_part(last_in_segment=True)
            self._discontinuity = True
            self._open_part(unit.dts, independent=True, first_in_segment=True)
            return
        if 0 < delta <= 250:
            self._audio_ms = delta
        self._learn(delta)
        part = self._part
        assert part is not None
        target = self._part_target()
        self._add_audio_driver(previous, self._fit(delta))
        segment_ms = self._segment_ms + part.duration_ms
        estimate = min(self._audio_ms, target * MAX_PART_SHORTFALL)
        if segment_ms + estimate > self.config.segment_target_ms:
            self._close_part(last_in_segment=True)
            self._open_part(unit.dts, independent=True, first_in_segment=True)
        elif part.duration_ms + estimate > target:
            self._close_part(last_in_segment=False)
            self._open_part(unit.dts, independent=True, first_in_segment=False)

    def _add_audio_driver(self, unit: MediaUnit, duration: int) -> None:
        part = self._part
        assert part is not None
        part.video.append((unit, duration))  # the driving track's list, whatever its kind
        part.duration_ms += duration

    # -- parts ------------------------------------------------------------------------------

    def _fit(self, duration: int) -> int:
        """The duration the open part's newest unit may take: its own, cut short where it
        would overfill the part (PART-TARGET) or the segment (EXTINF must round to at most
        TARGETDURATION). The cut leaves a small hole in the media timeline, which players
        step over; an overlong part or segment breaks the playlist instead."""
        part = self._part
        assert part is not None
        room = min(self._part_target() - part.duration_ms,
                   self._limit_ms - self._segment_ms - part.duration_ms)
        return max(1, min(duration, room))

    def _add_video(self, unit: MediaUnit, duration: int) -> None:
        part = self._part
        assert part is not None
        part.video.append((unit, duration))
        part.duration_ms += duration

    def _open_part(self, start_ms: int, *, independent: bool, first_in_segment: bool,
                   forced: bool = False) -> None:
        if first_in_segment:
            self._segment_ms = 0
            self._segment_forced = forced
            self.segments_started += 1
        self._part = _OpenPart(start_ms, independent, first_in_segment,
                               self._discontinuity and first_in_segment, forced)
        if first_in_segment:
            self._discontinuity = False

    def _close_part(self, *, last_in_segment: bool) -> None:
        part = self._part
        self._part = None
        if part is None or not part.video:
            return
        if self.part_target_ms is None:  # the first part is out: PART-TARGET is now fixed
            self.part_target_ms = max(self._part_target(), part.duration_ms)
        self._segment_ms += part.duration_ms
        self._closed.append(Part(
            units=part.video, start_ms=part.start_ms, duration_ms=part.duration_ms,
            independent=part.independent, first_in_segment=part.first_in_segment,
            last_in_segment=last_in_segment, discontinuity=part.discontinuity,
            forced=part.forced,
        ))

    def _closed_audio_cutoff(self) -> None:
        """After a jump, audio older than the closed parts has nowhere to go."""
        if self._audio_tail is not None:
            self._audio.append(self._audio_tail)
            self._audio_tail = None

    def _ready(self, final: bool = False) -> list[Part]:
        """Closed parts whose audio is complete: audio has reached the next part's start."""
        if not self._closed:
            return []
        if not (self.has_video and self.has_audio):
            ready, self._closed = self._closed, []
            return ready
        ready: list[Part] = []
        while self._closed:
            part = self._closed[0]
            end = part.start_ms + part.duration_ms
            next_start = self._closed[1].start_ms if len(self._closed) > 1 else (
                self._part.start_ms if self._part is not None else None)
            boundary = next_start if next_start is not None else end
            newest_audio = self._audio_tail.dts if self._audio_tail is not None else None
            video_ahead = (self._last_video.dts if self._last_video is not None else end)
            complete = final or (newest_audio is not None and newest_audio >= boundary) or (
                video_ahead - boundary > AUDIO_WAIT_MS)
            if not complete:
                break
            self._closed.pop(0)
            audio: list[TimedUnit] = []
            # Audio from before a backwards jump sits at the queue's head with timestamps
            # ahead of the new parts: it belongs to no part left, and would hold back all
            # the audio queued behind it.
            while self._audio and self._audio[0].dts - part.start_ms > self.config.max_jump_ms:
                self._audio.popleft()
                self.dropped += 1
            while self._audio and ((final and len(self._closed) == 0) or
                                   self._audio[0].dts < boundary):
                unit = self._audio.popleft()
                if unit.dts < part.start_ms - AUDIO_WAIT_MS:  # from before a jump or a gap
                    self.dropped += 1
                    continue
                following = self._audio[0].dts if self._audio else (
                    self._audio_tail.dts if self._audio_tail is not None else None)
                duration = following - unit.dts if following is not None else self._audio_ms
                if not 0 < duration <= 250:
                    duration = self._audio_ms
                audio.append((unit, duration))
            if audio:
                part.units = sorted(part.units + audio, key=lambda timed: timed[0].dts)
            ready.append(part)
        return ready

    # -- timing -----------------------------------------------------------------------------

    def _learn(self, delta: int) -> None:
        if len(self._deltas) < 16:
            self._deltas.append(delta)

    def frame_rate(self) -> float | None:
        """Frames per second of the driving track, as measured (for FRAME-RATE)."""
        if not self._frame_ms and not self._deltas:
            return None
        return 1000 / self._nominal()

    def _nominal(self) -> float:
        if self._frame_ms:
            return self._frame_ms
        if self._learned is None:
            if len(self._deltas) < 16:
                return self._measured()
            self._learned = self._measured()  # no longer learning: once, not every frame
        return self._learned

    def _measured(self) -> float:
        if self._deltas:
            # Millisecond timestamps make 30 fps deltas 33 or 34: the mean of the deltas near
            # the median is the frame duration, the median alone is a millisecond off.
            ordered = sorted(self._deltas)
            median = ordered[len(ordered) // 2]
            near = [d for d in ordered if abs(d - median) <= median / 4]
            return max(1.0, sum(near) / len(near))
        return 40.0

    def _part_target(self) -> int:
        """The part target: a whole number of frames near the configured value, so
        constant-rate streams fill every part to the same duration. It follows the measured
        frame duration until the first part closes, then never changes."""
        if self.part_target_ms is not None:
            return self.part_target_ms
        frame = self._nominal()
        frames = max(1, round(self.config.part_target_ms / frame))
        # A whole number of frames only helps if one frame is small next to the part.
        if frame <= self.config.part_target_ms * MAX_PART_SHORTFALL:
            if abs(frame - round(frame)) < 0.05:
                return round(frames * frame)
            # Millisecond timestamps of a fractional frame duration: n frames span
            # floor(n x frame) or one more; the part must hold the longer span too.
            return math.floor(frames * frame) + 1
        return self.config.part_target_ms
