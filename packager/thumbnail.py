"""A recent picture of each live broadcast, for the stream list and link previews.

Made from a keyframe of the source as it is listed (a segment's first part starts with one):
the keyframe alone decodes, so a thumbnail costs one decode of one frame, a scale and a JPEG
encode (a few milliseconds for 720p) every INTERVAL_MS of media, on a thread so the event
loop never waits for it. Only those keyframes are decoded. A listener on the source lane.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from fractions import Fraction

import av

from golive.media import Track, TrackKind
from golive.packager.rendition import Rendition
from golive.packager.timeline import Part

log = logging.getLogger("golive.packager")

INTERVAL_MS = 5000  # media time between thumbnails
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
    def __init__(self, stream: str, video: Callable[[], Track | None]) -> None:
        self.stream = stream
        self._video = video  # the source's video track being packaged now
        self.jpeg: bytes | None = None
        self._last_ms: int | None = None
        self._busy = False

    def part_listed(self, part: Part, rendition: Rendition) -> None:
        if self._busy or not (part.first_in_segment and part.independent):
            return
        if self._last_ms is not None and part.start_ms - self._last_ms < INTERVAL_MS:
            return
        track = self._video()
        keyframe = next((unit for unit, _ in part.units
                         if unit.kind is TrackKind.VIDEO and unit.keyframe), None)
        if track is None or keyframe is None:
            return
        self._last_ms = part.start_ms
        self._busy = True
        task = asyncio.get_running_loop().run_in_executor(None, make_jpeg, track,
                                                          keyframe.data)
        task.add_done_callback(self._made)

    def _made(self, task: asyncio.Future[bytes]) -> None:
        self._busy = False
        if task.cancelled():
            return
        try:
            self.jpeg = task.result()
        except (ValueError, av.FFmpegError) as exc:
            log.debug("stream %s: no thumbnail from this keyframe: %s", self.stream, exc)
