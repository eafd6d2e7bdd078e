"""Prometheus metrics of the packager: what it produced, and how far behind live it lists."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

# The causes a discontinuity is counted under (a worker restart adds "transcoder restart
# <rung>" as it happens).
DISCONTINUITY_CAUSES = ("reconnect", "codec change", "timestamp jump")


class PackagerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.segments = Counter(
            "golive_hls_segments_total", "HLS segments completed.",
            ["stream", "rendition"], registry=registry)
        self.parts = Counter(
            "golive_hls_parts_total", "LL-HLS partial segments completed.",
            ["stream", "rendition"], registry=registry)
        self.segment_bytes = Counter(
            "golive_hls_segment_bytes_total", "Bytes of completed HLS segments.",
            ["stream", "rendition"], registry=registry)
        self.forced_cuts = Counter(
            "golive_hls_forced_cuts_total",
            "Segments cut without a keyframe because the publisher's keyframe interval is "
            "longer than the segment target allows.", ["stream", "rendition"], registry=registry)
        self.gap_segments = Counter(
            "golive_hls_gap_segments_total",
            "Segments listed as EXT-X-GAP in a transcoded rendition that lost their frames "
            "(the transcoder shed load or restarted).", ["stream", "rendition"],
            registry=registry)
        self.discontinuities = Counter(
            "golive_hls_discontinuities_total",
            "Discontinuities written, by cause (reconnect, timestamp jump, codec change).",
            ["stream", "cause"], registry=registry)
        self.dropped_units = Counter(
            "golive_hls_dropped_units_total",
            "Units the packager could not place (before the first keyframe, after a jump, "
            "out-of-order audio, unsupported codec, empty).", ["stream"], registry=registry)
        self.live_edge_delay = Gauge(
            "golive_live_edge_delay_seconds",
            "How far the newest listed part lags the newest ingested frame (media time).",
            ["stream", "rendition"], registry=registry)
        self.broadcasts = Gauge(
            "golive_hls_broadcasts", "Broadcasts with playlists (live or in their grace period).",
            registry=registry)
        self.recording_errors = Counter(
            "golive_hls_recording_errors_total", "Recordings stopped by an error (disk full).",
            ["stream"], registry=registry)
        self.store_write_errors = Counter(
            "golive_store_write_errors_total",
            "Files --store-dir could not take (disk full, directory gone), by operation "
            "(write: the file is served from memory instead; delete: it stays on disk).",
            ["stream", "operation"], registry=registry)
        self.mux_errors = Counter(
            "golive_hls_mux_errors_total", "Parts libavformat refused to mux (units dropped).",
            ["stream"], registry=registry)

    def start_stream(self, stream: str) -> None:
        """A broadcast's counters exist at 0 from its start: an alert on a counter needs the
        series before the first event (removed with every other series of the stream when
        the broadcast expires: `golive.stream_series`)."""
        for counter in (self.dropped_units, self.mux_errors, self.recording_errors):
            counter.labels(stream)
        for cause in DISCONTINUITY_CAUSES:
            self.discontinuities.labels(stream, cause)
        for operation in ("write", "delete"):
            self.store_write_errors.labels(stream, operation)

    def start_rendition(self, stream: str, rendition: str) -> None:
        for counter in (self.segments, self.parts, self.segment_bytes, self.forced_cuts,
                        self.gap_segments):
            counter.labels(stream, rendition)

    def ended(self, stream: str) -> None:
        """ENDLIST: nothing is live any more, so no live edge to measure."""
        self.live_edge_delay.remove_by_labels({"stream": stream})
