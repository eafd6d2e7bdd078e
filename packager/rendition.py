"""One rendition's live playlist state: segments, parts, the sliding window, and its files.

Parts come in already muxed; this module numbers them, stores their bytes, keeps the window
CONFORMANCE.md asks for, and renders the playlist text through `playlist.py`. Waiting for a
segment or part (blocking playlist reload, preload hints) is event-driven: every change
completes one future shared by every waiter (`next_change`), so all wake at once, exactly
when something is listed. The
broadcast's date ranges (`set_date_ranges`) change the text but list no media: they wake
nobody.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field

from golive.packager.playlist import (
    DateRange,
    MediaPlaylist,
    PartEntry,
    RenditionReport,
    SegmentEntry,
    render_media_playlist,
)
from golive.packager.store import Store

MIN_WINDOW_SEGMENTS = 6  # Apple: at least six segments in a live playlist


@dataclass(slots=True)
class SegmentRecord:
    sequence: int
    program_date_time: float
    init_uri: str
    discontinuity: bool
    independent: bool
    parts: list[PartEntry] = field(default_factory=list)
    part_bytes: list[int] = field(default_factory=list)
    duration_ms: int = 0
    size: int = 0
    complete: bool = False
    extension: str = "m4s"
    gap: bool = False  # listed with EXT-X-GAP: this rendition has no media for it

    @property
    def uri(self) -> str:
        return f"seg-{self.sequence}.{self.extension}"


def part_uri(sequence: int, index: int) -> str:
    return f"part-{sequence}.{index}.m4s"


class Rendition:
    """The media playlist of one rendition of one broadcast."""

    def __init__(self, stream: str, name: str, store: Store, *, target_duration: int,
                 window_segments: int = MIN_WINDOW_SEGMENTS, low_latency: bool = True,
                 first_sequence: int = 0, codecs: tuple[str, ...] = (),
                 resolution: tuple[int, int] | None = None,
                 frame_rate: float | None = None, extension: str = "m4s") -> None:
        self.stream = stream
        self.name = name
        self.store = store
        self.prefix = f"{stream}/{name}/"
        self.target_duration = target_duration
        # Never less than three target durations (RFC) nor six segments (Apple).
        self.window_segments = max(window_segments, MIN_WINDOW_SEGMENTS)
        self.low_latency = low_latency
        self.part_target_ms: int | None = None
        self.codecs = codecs
        self.resolution = resolution
        self.frame_rate = frame_rate
        self.segments: deque[SegmentRecord] = deque()  # listed, oldest first
        self.open: SegmentRecord | None = None
        self.next_sequence = first_sequence
        self.media_sequence = first_sequence
        self.discontinuity_sequence = 0
        self.init_uri = ""
        self._init_keys: list[str] = []  # every init segment stored (one per publication)
        self.ended = False
        self.others: list[Rendition] = []  # for EXT-X-RENDITION-REPORT
        self._pending_discontinuity = False
        self._retired: deque[tuple[float, str]] = deque()  # (delete after, key)
        self._parted: deque[SegmentRecord] = deque()  # complete segments still listing parts
        self._text: str | None = None
        self._next_change: asyncio.Future[None] | None = None
        self.version = 0  # bumps on every change; the origin caches renderings by it
        self.last_media_ms: int | None = None  # end of the newest listed part, media time
        self.extension = extension  # of segment files: m4s (fMP4) or ts (MPEG-TS)
        # The broadcast's (`RenditionSet.add_date_range`); the renderer lists those in the window.
        self.date_ranges: tuple[DateRange, ...] = ()

    # -- input from the packager ------------------------------------------------------------

    def set_init(self, index: int, data: bytes) -> None:
        self.init_uri = f"init-{index}.mp4"
        key = self.prefix + self.init_uri
        self.store.put(key, data)
        if key not in self._init_keys:
            self._init_keys.append(key)

    def mark_discontinuity(self) -> None:
        """The next segment follows a discontinuity (reconnect, timestamp jump, new codec)."""
        self._pending_discontinuity = True

    def add_part(self, data: bytes | list[bytes], duration_ms: int, independent: bool,
                 first_in_segment: bool, last_in_segment: bool, end_media_ms: int,
                 now: float | None = None, program_date_time: float | None = None) -> None:
        """`data`: the part's bytes, or the pieces they are the join of (`Store.put_chunks`).
        `program_date_time`: the date of a segment this part starts, when another
        rendition already dated the same media (else it follows this rendition's own)."""
        now = time.time() if now is None else now
        if first_in_segment or self.open is None:
            if self.open is not None:  # the previous segment ended without saying so
                self._close_segment(now)
            if program_date_time is None:
                program_date_time = self._next_date(duration_ms, now)
            self.open = SegmentRecord(
                sequence=self.next_sequence, program_date_time=program_date_time,
                init_uri=self.init_uri, discontinuity=self._pending_discontinuity,
                independent=independent, extension=self.extension)
            self._pending_discontinuity = False
            self.next_sequence += 1
        segment = self.open
        uri = part_uri(segment.sequence, len(segment.parts))
        if isinstance(data, list):
            self.store.put_chunks(self.prefix + uri, data)
            size = sum(len(chunk) for chunk in data)
        else:
            self.store.put(self.prefix + uri, data)
            size = len(data)
        segment.parts.append(PartEntry(uri, duration_ms / 1000, independent))
        segment.part_bytes.append(size)
        segment.duration_ms += duration_ms
        segment.size += size
        self.last_media_ms = end_media_ms
        if last_in_segment:
            self._close_segment(now)
        else:  # the playlist's end moved on: older segments may have to drop their parts
            self._drop_old_parts(now)
            self._expire(now)
        self._changed_now()

    def add_segment(self, sequence: int, data: bytes, duration_ms: int, independent: bool,
                    now: float | None = None, program_date_time: float | None = None) -> None:
        """A whole segment at once, with no parts (MPEG-TS); numbered like its fMP4 twin, and
        dated like it when `program_date_time` says its date (else on this one's clock)."""
        now = time.time() if now is None else now
        if program_date_time is None:
            program_date_time = self._next_date(duration_ms, now)
        segment = SegmentRecord(
            sequence=sequence, program_date_time=program_date_time,
            init_uri=self.init_uri, discontinuity=self._pending_discontinuity,
            independent=independent, duration_ms=duration_ms, size=len(data), complete=True,
            extension=self.extension)
        self._pending_discontinuity = False
        self.next_sequence = sequence + 1
        self.store.put(self.prefix + segment.uri, data)
        self.segments.append(segment)
        self._slide(now)
        self._changed_now()

    def add_gap(self, sequence: int, duration_ms: int, program_date_time: float,
                now: float | None = None) -> None:
        """Segment `sequence` exists in the other renditions but not in this one (its
        transcoder lost those frames): listed as EXT-X-GAP, so segment numbers stay aligned
        across renditions and players skip it (or switch rendition)."""
        now = time.time() if now is None else now
        if self.open is not None:
            self._close_segment(now)
        previous = self.segments[-1] if self.segments else None
        # The segment before a gap is usually cut short (its frames stopped coming): the
        # timeline then has a hole, which the dates may only show after a discontinuity.
        hole = previous is not None and abs(
            previous.program_date_time + previous.duration_ms / 1000 - program_date_time) > 0.002
        segment = SegmentRecord(
            sequence=sequence, program_date_time=program_date_time, init_uri=self.init_uri,
            discontinuity=self._pending_discontinuity or hole, independent=True,
            duration_ms=duration_ms, complete=True, extension=self.extension, gap=True)
        self._pending_discontinuity = False
        self.next_sequence = sequence + 1
        self.segments.append(segment)
        self._slide(now)
        self._changed_now()

    def _next_date(self, duration_ms: int, now: float) -> float:
        """PROGRAM-DATE-TIME of a segment starting now (its first part lasted `duration_ms`)."""
        previous = self.segments[-1] if self.segments else None
        if previous is None:
            return now - duration_ms / 1000
        follows = previous.program_date_time + previous.duration_ms / 1000
        if not self._pending_discontinuity:
            # Continuous media: the date follows the media timeline, not arrival jitter.
            return follows
        return max(now - duration_ms / 1000, follows)  # dates never run backwards

    def set_date_ranges(self, date_ranges: tuple[DateRange, ...]) -> None:
        """The broadcast's date ranges changed: a new text and version (the origin caches
        renderings by it), but no wake-up: blocking-reload and preload-hint waiters wait for
        media, and none was listed."""
        self.date_ranges = date_ranges
        self._text = None
        self.version += 1

    def end(self, now: float | None = None) -> None:
        """The broadcast is over: close the open segment and add ENDLIST."""
        now = time.time() if now is None else now
        if self.open is not None:
            self._close_segment(now)
        self.ended = True
        self._changed_now()

    # -- internals --------------------------------------------------------------------------

    def _close_segment(self, now: float) -> None:
        segment = self.open
        assert segment is not None
        self.open = None
        if not segment.parts:
            return
        self.store.put_joined(self.prefix + segment.uri,
                              [self.prefix + part.uri for part in segment.parts])
        segment.complete = True
        self.segments.append(segment)
        self._parted.append(segment)
        self._slide(now)

    def _slide(self, now: float) -> None:
        window_s = sum(s.duration_ms for s in self.segments) / 1000
        linger = window_s + self.target_duration  # how long a removed file stays downloadable
        # Short segments (cut early by a jump, a reconnect or a forced cut) can make six of
        # them last less than three target durations: the window then keeps more.
        listed_ms = sum(s.duration_ms for s in self.segments)
        while len(self.segments) > self.window_segments and (
                listed_ms - self.segments[0].duration_ms >= 3000 * self.target_duration):
            removed = self.segments.popleft()
            listed_ms -= removed.duration_ms
            self.media_sequence = removed.sequence + 1
            if removed.discontinuity:
                self.discontinuity_sequence += 1
            self._retired.append((now + linger, self.prefix + removed.uri))
        self._drop_old_parts(now)
        self._expire(now)

    def _drop_old_parts(self, now: float) -> None:
        """bis 6.2.2: "EXT-X-PART tags SHOULD be removed from the Playlist after they are
        greater than three Target Durations from the end of the Playlist." The end is the last
        listed part (the open segment's included); a tag is as far from it as the media from
        the tag's start. A segment's parts leave together, so a segment keeps them only while
        its start is within three target durations of the end. Their files stay downloadable
        for three more target durations (the spec's MUST) plus the window, for a player that
        read an older playlist."""
        if not self._parted:
            return
        window_ms = 3000 * self.target_duration
        to_end = self.open.duration_ms if self.open is not None else 0
        starts: dict[int, int] = {}  # id(segment) -> ms from its start to the end
        for segment in reversed(self.segments):  # gap segments count: they are listed media
            to_end += segment.duration_ms
            starts[id(segment)] = to_end
            if segment is self._parted[0]:
                break
        window_s = sum(s.duration_ms for s in self.segments) / 1000
        while self._parted and starts.get(id(self._parted[0]), window_ms + 1) > window_ms:
            old = self._parted.popleft()
            for part in old.parts:
                self._retired.append((now + 3 * self.target_duration + window_s,
                                      self.prefix + part.uri))

    def _expire(self, now: float) -> None:
        while self._retired and self._retired[0][0] <= now:
            self.store.delete(self._retired.popleft()[1])

    def _changed_now(self) -> None:
        self._text = None
        self.version += 1
        changed, self._next_change = self._next_change, None
        if changed is not None and not changed.done():
            changed.set_result(None)

    # -- what the origin asks ---------------------------------------------------------------

    @property
    def last_msn(self) -> int:
        """The newest segment number listed (open or complete); -1 before the first part."""
        if self.open is not None:
            return self.open.sequence
        return self.segments[-1].sequence if self.segments else -1

    @property
    def last_part(self) -> int:
        """Index of the newest listed part of `last_msn` (-1 when it has none)."""
        if self.open is not None:
            return len(self.open.parts) - 1
        return len(self.segments[-1].parts) - 1 if self.segments else -1

    @property
    def window_start(self) -> float | None:
        """PROGRAM-DATE-TIME of the first listed segment (the open one when none is complete)."""
        first = self.segments[0] if self.segments else self.open
        return first.program_date_time if first is not None else None

    @property
    def listed_until(self) -> float | None:
        """PROGRAM-DATE-TIME (epoch seconds) where the newest listed media ends: the open
        segment's date plus its parts so far, else the last segment's end; None before any."""
        last = self.open if self.open is not None else (
            self.segments[-1] if self.segments else None)
        return last.program_date_time + last.duration_ms / 1000 if last is not None else None

    @property
    def has_media(self) -> bool:
        return self.open is not None or bool(self.segments)

    def has(self, msn: int, part: int | None) -> bool:
        """Is segment `msn` (or its part `part`) listed? A part index past the end of a
        complete segment means part 0 of the next one, as blocking reload defines."""
        if part is None:
            return any(s.sequence >= msn for s in self.segments)
        if self.open is not None and self.open.sequence == msn:
            return part < len(self.open.parts)
        if self.open is not None and self.open.sequence > msn:
            return True
        if self.segments and self.segments[-1].sequence >= msn:
            last = self.segments[-1]
            return last.sequence > msn or part < len(last.parts) or (
                self.open is not None and bool(self.open.parts))
        return False

    def next_change(self) -> asyncio.Future[None]:
        """A future done at this rendition's next change (a part, a segment, the end): one
        for every waiter, so a new part wakes them all in one go. Never cancel it: await it
        through a future of your own (see `wait_changed`)."""
        if self._next_change is None:
            self._next_change = asyncio.get_running_loop().create_future()
        return self._next_change

    async def wait_for(self, msn: int, part: int | None, timeout: float) -> bool:
        """Wait until `has(msn, part)` or the broadcast ends; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.has(msn, part):
            if self.ended:
                return False
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self.wait_changed(remaining):
                return False
        return True

    async def wait_changed(self, timeout: float) -> bool:
        """Wait for the next change; False if `timeout` seconds pass first."""
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self.next_change())
        except TimeoutError:
            return False
        return True

    def part_listed_or_hinted(self, msn: int, index: int) -> bool:
        """May a request for this part wait for it? Only for the hinted next part."""
        if self.ended:
            return False
        if self.open is not None and self.open.sequence == msn:
            return index == len(self.open.parts)
        return msn == self.next_sequence and index == 0

    def playlist(self) -> MediaPlaylist:
        parted = {id(s) for s in self._parted}
        segments = tuple(
            SegmentEntry(
                sequence=s.sequence, uri=s.uri, duration=s.duration_ms / 1000,
                program_date_time=s.program_date_time, init_uri=s.init_uri,
                independent=s.independent, discontinuity=s.discontinuity,
                parts=tuple(s.parts) if self.low_latency and id(s) in parted else (),
                gap=s.gap)
            for s in self.segments)
        open_parts: tuple[PartEntry, ...] = ()
        hint = None
        open_pdt = None
        open_init = ""
        open_discontinuity = False
        if self.low_latency and not self.ended:
            if self.open is not None:
                open_parts = tuple(self.open.parts)
                open_pdt = self.open.program_date_time
                open_init = self.open.init_uri
                open_discontinuity = self.open.discontinuity
                hint = part_uri(self.open.sequence, len(self.open.parts))
            else:
                hint = part_uri(self.next_sequence, 0)
        reports = tuple(
            RenditionReport(f"../{other.name}/index.m3u8", max(other.last_msn, 0),
                            other.last_part if other.last_part >= 0 else None)
            for other in self.others if other.has_media)
        part_target = None
        if self.low_latency and self.part_target_ms:
            part_target = self.part_target_ms / 1000
        return MediaPlaylist(
            target_duration=self.target_duration, media_sequence=self.media_sequence,
            discontinuity_sequence=self.discontinuity_sequence, segments=segments,
            ended=self.ended, part_target=part_target, open_parts=open_parts,
            open_program_date_time=open_pdt, open_init_uri=open_init,
            open_discontinuity=open_discontinuity, preload_hint=hint,
            rendition_reports=reports, date_ranges=self.date_ranges)

    def text(self) -> str:
        if self._text is None:
            self._text = render_media_playlist(self.playlist())
        return self._text

    # -- measured bandwidth for the master playlist ----------------------------------------

    def bandwidth(self) -> tuple[int, int]:
        """(peak, average) bits per second. Peak: the highest rate over any run of listed
        segments lasting 0.5-1.5 target durations (RFC 8216 4.3.4.2); average over the
        window. Before the first segment completes, the parts so far stand in."""
        segments = [(s.size, s.duration_ms) for s in self.segments if not s.gap]
        if not segments and self.open is not None and self.open.duration_ms:
            segments = [(self.open.size, self.open.duration_ms)]
        if not segments:
            return 0, 0
        total_bytes = sum(size for size, _ in segments)
        total_ms = sum(ms for _, ms in segments)
        average = math.ceil(total_bytes * 8000 / max(total_ms, 1))
        low, high = 500 * self.target_duration, 1500 * self.target_duration
        peak = 0
        for start in range(len(segments)):
            size = ms = 0
            for end in range(start, len(segments)):
                size += segments[end][0]
                ms += segments[end][1]
                if ms > high:
                    break
                if ms >= low:
                    peak = max(peak, math.ceil(size * 8000 / ms))
        return max(peak, average), average

    def close(self) -> None:
        """Forget every file: the broadcast is replaced or expired."""
        keys = list(self._init_keys)
        for segment in [*self.segments, *([self.open] if self.open else [])]:
            keys.append(self.prefix + segment.uri)
            keys.extend(self.prefix + part.uri for part in segment.parts)
        keys.extend(key for _, key in self._retired)
        for key in keys:
            self.store.delete(key)
        self._retired.clear()
