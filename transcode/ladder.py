"""The bitrate ladder: which renditions a stream is transcoded into. Pure: no av, no I/O.

The default ladder is derived from the source with Apple's H.264 ladder (HLS authoring
specification, CONFORMANCE.md) as the basis: rungs below the source's size only (never an
upscale), each at most 3/4 of the one above it so neighbours differ enough to be worth a
switch, at most three, and never above the source's own bitrate. Sizes follow the source's
shape: "height" means the short side, so a portrait phone stream (720x1280) gets portrait
rungs (360x640, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Apple HLS authoring spec, H.264 16:9 (short side, kb/s): one entry per size, its higher rate.
APPLE_H264 = ((234, 145), (360, 365), (432, 1100), (540, 2000), (720, 4500), (1080, 7800))
DEFAULT_MAX_RUNGS = 3
RUNG_STEP = 0.75  # each default rung's short side is at most this fraction of the one above
MIN_BITRATE = 64_000
# VBV defaults (the computation is EncoderSettings.vbv in pipeline.py; config may override):
MAXRATE_FACTOR = 1.1  # peak rate allowed over the average...
BUFSIZE_SECONDS = 1.5  # ...over a buffer of this many seconds of the average rate


class LadderError(ValueError):
    """A ladder setting is malformed; the message quotes it and says the expected form."""


@dataclass(frozen=True, slots=True)
class Rung:
    """One transcoded rendition. `short_side` is the height of a landscape picture (the
    width of a portrait one); the other side follows the source's aspect ratio unless
    `width` and `height` are both given."""

    short_side: int
    bitrate: int  # bits per second (libx264 ABR with VBV)
    width: int = 0
    height: int = 0

    @property
    def name(self) -> str:
        return f"{self.short_side}p"

    def size_for(self, source_width: int, source_height: int) -> tuple[int, int]:
        """The picture size for this source: even numbers (4:2:0), shape kept."""
        if self.width and self.height:
            return self.width, self.height
        if source_width <= 0 or source_height <= 0:
            raise LadderError("the source has no picture size yet")
        long_side = _even(self.short_side * max(source_width, source_height)
                          / min(source_width, source_height))
        short_side = _even(self.short_side)
        if source_width >= source_height:
            return long_side, short_side
        return short_side, long_side


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def default_ladder(source_width: int, source_height: int, source_bitrate: int = 0,
                   max_rungs: int = DEFAULT_MAX_RUNGS) -> tuple[Rung, ...]:
    """Rungs for a source of this size (and bitrate, when the publisher says it)."""
    short = min(source_width, source_height)
    rungs: list[Rung] = []
    limit = short * RUNG_STEP
    for side, kbps in reversed(APPLE_H264):
        if len(rungs) >= max_rungs:
            break
        if side > limit:
            continue
        bitrate = kbps * 1000
        if source_bitrate:
            bitrate = min(bitrate, source_bitrate)
        rungs.append(Rung(side, max(bitrate, MIN_BITRATE)))
        limit = side * RUNG_STEP
    return tuple(rungs)


_RUNG = re.compile(
    r"^(?:(?P<w>\d+)x(?P<h>\d+)|(?P<p>\d+)p)@(?P<rate>\d+(?:\.\d+)?)(?P<unit>[kKmM]?)$")


def parse_rung(text: str) -> Rung:
    """'480p@1200k' (shape follows the source) or '854x480@1.2M' (exact size)."""
    match = _RUNG.match(text.strip())
    if match is None:
        raise LadderError(
            f"ladder rung {text!r}: expected HEIGHTp@RATE (480p@1200k) or WxH@RATE "
            "(854x480@1.2M)")
    scale = {"": 1, "k": 1000, "m": 1_000_000}[match["unit"].lower()]
    bitrate = round(float(match["rate"]) * scale)
    if bitrate < MIN_BITRATE:
        raise LadderError(f"ladder rung {text!r}: the bitrate must be at least 64k")
    if match["p"]:
        side = int(match["p"])
        if side < 16 or side % 2:
            raise LadderError(f"ladder rung {text!r}: the size must be an even number >= 16")
        return Rung(side, bitrate)
    width, height = int(match["w"]), int(match["h"])
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise LadderError(f"ladder rung {text!r}: width and height must be even and >= 16")
    return Rung(min(width, height), bitrate, width, height)


def ladder_for(configured: tuple[Rung, ...], source_width: int, source_height: int,
               source_bitrate: int = 0) -> tuple[Rung, ...]:
    """The rungs a source gets: the configured ones that are smaller than the source (never
    an upscale), or the default ladder when none is configured."""
    if not configured:
        return default_ladder(source_width, source_height, source_bitrate)
    short = min(source_width, source_height)
    return tuple(r for r in configured if r.short_side < short)
