"""The live-edge delay is read when scraped: set once per rendition, it follows every unit."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from golive.packager.live_edge import LiveEdge
from golive.packager.rendition import Rendition
from golive.packager.store import MemoryStore


def test_the_delay_is_computed_at_scrape_time() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("delay_seconds", "", ["stream", "rendition"], registry=registry)
    edge = LiveEdge("cam", gauge)
    rendition = Rendition("cam", "source", MemoryStore(), target_duration=2)

    def reading() -> float | None:
        return registry.get_sample_value("delay_seconds", {"stream": "cam",
                                                           "rendition": "source"})

    edge.ingested(1000)
    edge.measure(rendition)
    assert reading() is None  # nothing listed yet: no series
    rendition.last_media_ms = 800
    edge.measure(rendition)
    assert reading() == 0.2
    edge.ingested(1500)  # later units need no call to move the reading
    assert reading() == 0.7
    rendition.last_media_ms = 1600  # (audio ahead of the newest video, say)
    assert reading() == 0.0
    newer = Rendition("cam", "source", MemoryStore(), target_duration=2)
    newer.last_media_ms = 900
    edge.measure(newer)  # a rendition replaced under the same name is followed
    assert reading() == 0.6
    gauge.remove_by_labels({"stream": "cam"})  # ENDLIST
    assert reading() is None
