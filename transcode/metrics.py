"""Prometheus metrics of the transcoder: frames through each rendition, speed, losses."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class TranscodeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.frames_in = Counter(
            "golive_transcode_frames_in_total", "Source video frames decoded.",
            ["stream", "rendition"], registry=registry)
        self.frames_out = Counter(
            "golive_transcode_frames_out_total", "Frames encoded, per transcoded rendition.",
            ["stream", "rendition"], registry=registry)
        self.frames_dropped = Counter(
            "golive_transcode_frames_dropped_total",
            "Frames a rendition lost: for a rung, source frames not encoded while it was shed "
            "(load); for the source, units that did not decode.",
            ["stream", "rendition"], registry=registry)
        self.shed_units = Counter(
            "golive_transcode_dropped_units_total",
            "Source units not transcoded because the ladder was behind real time, up to the "
            "next segment start, by where they were dropped (server, worker).",
            ["stream", "where"], registry=registry)
        self.encode_speed = Gauge(
            "golive_transcode_encode_speed_ratio",
            "Media seconds a rendition's thread scales and encodes per second it is busy, "
            "over the last report (below 1: it cannot keep up with real time).",
            ["stream", "rendition"], registry=registry)
        self.queue_depth = Gauge(
            "golive_transcode_queue_depth", "Source units waiting in the worker.",
            ["stream"], registry=registry)
        self.rung_sheds = Counter(
            "golive_transcode_rung_sheds_total",
            "Times a rung stopped being encoded because the stream's ladder fell behind "
            "real time.", ["stream", "rendition"], registry=registry)
        self.shed_rungs = Gauge(
            "golive_transcode_shed_rungs", "Rungs of a stream not encoded now (load).",
            ["stream"], registry=registry)
        self.renditions = Gauge(
            "golive_transcode_renditions", "Transcoded renditions of a live stream.",
            ["stream"], registry=registry)
        self.worker_restarts = Counter(
            "golive_transcode_worker_restarts_total", "Transcode workers restarted after dying.",
            registry=registry)
        self.failures = Counter(
            "golive_transcode_failures_total",
            "Streams whose ladder could not run (undecodable source, encoder error).",
            ["stream"], registry=registry)

    def start_stream(self, stream: str, rungs: list[str]) -> None:
        """A stream's counters exist at 0 from its start, so an alert on them can fire on
        the first loss (a series that appears only then cannot be alerted on)."""
        self.failures.labels(stream)
        self.shed_rungs.labels(stream).set(0)
        for where in ("server", "worker"):
            self.shed_units.labels(stream, where)
        self.frames_in.labels(stream, "source")
        for rendition in ("source", *rungs):
            self.frames_dropped.labels(stream, rendition)
        for rung in rungs:
            self.frames_out.labels(stream, rung)
            self.rung_sheds.labels(stream, rung)
