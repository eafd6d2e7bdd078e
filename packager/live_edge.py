"""How far behind live each rendition lists: the `golive_live_edge_delay_seconds` reading.

Measured in media time against the newest unit ingested (not the newest packaged: transcoded
audio and the rungs come later by their encoders' delay, and that delay is what is measured).

The reading is computed when Prometheus scrapes it (`Gauge.set_function`), not set on every
unit: looking up the labelled gauge and setting it for each of 15,000 units a second (200
publishers) was 5.6% of the event loop's samples, for a value read every 15 s.
"""

from __future__ import annotations

from prometheus_client import Gauge

from golive.packager.rendition import Rendition


class LiveEdge:
    def __init__(self, stream: str, gauge: Gauge) -> None:
        self.stream = stream
        self._gauge = gauge
        self.newest_ms: int | None = None  # dts of the newest unit the publisher sent
        self._renditions: dict[str, Rendition] = {}  # measured, by name

    def ingested(self, dts: int) -> None:
        self.newest_ms = dts

    def measure(self, rendition: Rendition) -> None:
        """Export the rendition's delay from its first listed part on (cheap after that:
        called for every unit packaged)."""
        known = self._renditions.get(rendition.name)
        if known is rendition:
            return
        if known is None and (rendition.last_media_ms is None or self.newest_ms is None):
            return
        self._renditions[rendition.name] = rendition  # (a rendition replaced under its name)
        if known is None:
            name = rendition.name
            self._gauge.labels(self.stream, name).set_function(lambda: self.delay(name))

    def delay(self, name: str) -> float:
        """Seconds of media the rendition `name` lists behind the newest unit ingested."""
        rendition = self._renditions.get(name)
        last = rendition.last_media_ms if rendition is not None else None
        if last is None or self.newest_ms is None:
            return 0.0
        return max(0, self.newest_ms - last) / 1000
