"""What happens when a publisher's keyframes are further apart than a segment may be long.

The segmenter then cuts between keyframes (a "forced" cut). The operator is told once per
broadcast how to fix the encoder, and with `long_gop = "reencode"` the transcoded renditions
are asked to re-encode the source's size with an IDR at every cut (`TranscodedRenditions.
reencode_source`). A listener on the source lane's parts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from golive.packager.rendition import Rendition
from golive.packager.timeline import Part

log = logging.getLogger("golive.packager")


class LongGopPolicy:
    def __init__(self, stream: str, segment_target: float,
                 reencode: Callable[[], None] | None = None) -> None:
        self.stream = stream
        self.segment_target = segment_target
        self._reencode = reencode  # None: the source is offered with its forced cuts
        self._warned = False

    def part_listed(self, part: Part, rendition: Rendition) -> None:
        if not (part.forced and part.first_in_segment):
            return
        if self._reencode is not None:
            self._reencode()
        if not self._warned:
            self._warned = True
            log.warning(
                "stream %s: the publisher's keyframe interval is longer than the %g s "
                "segment target, so segments are cut between keyframes; set the "
                "encoder's keyframe interval to %g s (OBS: Output > Keyframe Interval)",
                self.stream, self.segment_target, self.segment_target)
