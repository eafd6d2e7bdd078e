"""How far behind live each rendition lists: the `golive_live_edge_delay_seconds` reading.

Measured in media time against the newest unit ingested (not the newest packaged: transcoded
audio and the rungs come later by their encoders' delay, and that delay is what is measured).
"""

from __future__ import annotations

from prometheus_client import Gauge

from golive.packager.rendition import Rendition


class LiveEdge:
    def __init__(self, stream: str, gauge: Gauge) -> None:
        self.stream = stream
        self._gauge = gauge
        self.newest_ms: int | None = None  # dts of the newest unit the publisher sent

    def ingested(self, dts: int) -> None:
        self.newest_ms = dts

    def measure(self, rendition: Rendition) -> None:
        last = rendition.last_media_ms
        if last is not None and self.newest_ms is not None:
            self._gauge.labels(self.stream, rendition.name).set(
                max(0, self.newest_ms - last) / 1000)
