"""Prometheus metrics of the ingest stage.

One instance per server, registered in the registry the HTTP app exposes at /metrics, so
tests can run several servers in one process. Labels carry public stream names only.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.connections = Gauge(
            "golive_rtmp_connections", "Open RTMP connections.", registry=registry)
        self.connections_closed = Counter(
            "golive_rtmp_connections_closed",
            "Closed RTMP connections by outcome (ok, refused, protocol_error, timeout, ...).",
            ["result"], registry=registry)
        self.publishers = Gauge(
            "golive_rtmp_publishers", "Connections currently publishing a stream.",
            registry=registry)
        self.handshakes = Counter(
            "golive_rtmp_handshakes_total", "Completed RTMP handshakes by type.",
            ["type"], registry=registry)
        self.protocol_errors = Counter(
            "golive_rtmp_protocol_errors_total",
            "Malformed or refused RTMP input by kind (fatal ones close the connection).",
            ["kind"], registry=registry)
        self.publish_refused = Counter(
            "golive_rtmp_publish_refused_total", "Refused publish attempts by reason.",
            ["reason"], registry=registry)
        self.takeovers = Counter(
            "golive_rtmp_publisher_takeovers_total",
            "Publishers replaced by a new connection with the same key.", registry=registry)
        self.ingest_bytes = Counter(
            "golive_ingest_bytes", "RTMP bytes received from a stream's publisher.",
            ["stream"], registry=registry)
        self.ingest_units = Counter(
            "golive_ingest_units", "Media units received by stream and kind.",
            ["stream", "kind"], registry=registry)
        self.hub_dropped = Counter(
            "golive_hub_dropped_units",
            "Units a slow subscriber lost (it skips to the next keyframe).",
            ["stream", "subscriber"], registry=registry)
