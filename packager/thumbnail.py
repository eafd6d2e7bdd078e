"""A recent picture of each live broadcast, for the stream list and link previews.

Made from a keyframe of the source as it is listed (a segment's first part starts with one):
the keyframe alone decodes, so a thumbnail costs one decode of one frame, a scale and a JPEG
encode (a few milliseconds for 720p), on a thread so the event loop never waits for it. Only
those keyframes are decoded. A listener on the source lane.

Pictures are made for those who look: the listener keeps the newest keyframe every
INTERVAL_MS of media (a reference to bytes the unit holds anyway), and decodes it only while
someone asked for the stream's picture in the last INTEREST_S seconds. Made for every stream
whether or not anyone looks, they were half of golive's CPU with 200 publishers and nobody
watching (bench/packaging.py: 40 decoders a second, more than all the packaging). The price:
the first request after a quiet spell gets the picture it made last time (or none, for a new
broadcast) while a fresh one is decoded, a few milliseconds later.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from fractions import Fraction

import av

from golive.media import Track, TrackKind
from golive.packager.rendition import Rendition
from golive.packager.timeline import Part

log = logging.getLogger("golive.packager")

INTERVAL_MS = 5000  # media time between thumbnails
INTEREST_S = 60.0  # seconds after a request during which every new keyframe kept is decoded
WIDTH = 320  # pixels; the height keeps the picture's aspect


def make_jpeg(track: Track, keyframe: bytes, width: int = WIDTH) -> bytes:
    """A JPEG of one keyframe (MP4 sample format, as MediaUnits carry it), `width` wide."""
    decoder = av.CodecContext.create(track.codec, "r")
    decoder.extradata = track.extradata
    frames = list(decoder.decode(av.Packet(keyframe)))
    frames += decoder.decode(None)  # a decoder with reorder delay holds it until flushed
    if not frames:
        raise ValueError("the keyframe decoded to no picture")
    frame = frames[0]
    height = max(2, round(frame.height * width / frame.width / 2) * 2)
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"q:v": "5"}  # visually fine at this size, ~10 KB
    picture = frame.reformat(width=width, height=height, format="yuvj420p")
    return b"".join(bytes(p) for p in [*encoder.encode(picture), *encoder.encode(None)])


class Thumbnails:
    def __init__(self, stream: str, video: Callable[[], Track | None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self._video = video  # the source's video track being packaged now
        self._clock = clock
        self._jpeg: bytes | None = None
        self._last_ms: int | None = None
        # The newest keyframe kept: (track, its bytes, its media time), and the media time of
        # the keyframe the current picture was made from.
        self._keyframe: tuple[Track, bytes, int] | None = None
        self._made_ms: int | None = None
        self._asked_at = -math.inf
        self._busy = False

    @property
    def jpeg(self) -> bytes | None:
        """The newest picture made (None before the first). Asking is what keeps pictures
        coming: a keyframe newer than the picture is decoded now, and those kept in the next
        INTEREST_S seconds as they are listed."""
        self._asked_at = self._clock()
        if self._keyframe is not None and self._keyframe[2] != self._made_ms:
            self._make()
        return self._jpeg

    def part_listed(self, part: Part, rendition: Rendition) -> None:
        if not (part.first_in_segment and part.independent):
            return
        if self._last_ms is not None and part.start_ms - self._last_ms < INTERVAL_MS:
            return
        track = self._video()
        keyframe = next((unit for unit, _ in part.units
                         if unit.kind is TrackKind.VIDEO and unit.keyframe), None)
        if track is None or keyframe is None:
            return
        self._last_ms = part.start_ms
        self._keyframe = (track, keyframe.data, part.start_ms)
        if self._clock() - self._asked_at < INTEREST_S:
            self._make()

    def _make(self) -> None:
        if self._busy or self._keyframe is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # asked from outside the event loop: nothing to run it on
            return
        track, data, start_ms = self._keyframe
        self._busy = True
        task = loop.run_in_executor(None, make_jpeg, track, data)
        task.add_done_callback(lambda done: self._made(done, start_ms))

    def _made(self, task: asyncio.Future[bytes], start_ms: int) -> None:
        self._busy = False
        if task.cancelled():
            return
        self._made_ms = start_ms  # (also when it failed: that keyframe is not tried again)
        try:
            self._jpeg = task.result()
        except (ValueError, av.FFmpegError) as exc:
            log.debug("stream %s: no thumbnail from this keyframe: %s", self.stream, exc)
            return
        if self._keyframe is not None and self._keyframe[2] != start_ms and \
                self._clock() - self._asked_at < INTEREST_S:
            self._make()  # a newer keyframe was kept while this one decoded
