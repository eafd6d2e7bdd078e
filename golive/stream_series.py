"""One lifecycle for every per-stream metric series, whichever stage made it.

A stream's series (ingest bytes, segments, rung speeds, drops...) are kept while its
broadcast exists — live, in its grace period, and ended but still readable — so a dashboard
shows what happened to a stream that dropped, and an alert on a counter sees it from 0. When
the broadcast expires (or an ended one is replaced by a new publication of the name) they are
removed together, so names that come and go do not pile up. The stages declare their metrics;
the composition root hands every one with a `stream` label to a `StreamSeries`, and the
packager, which owns the broadcast's lifecycle, calls `forget`.
"""

from __future__ import annotations

from prometheus_client.metrics import MetricWrapperBase


class StreamSeries:
    def __init__(self) -> None:
        self._metrics: list[MetricWrapperBase] = []

    def add_from(self, *owners: object) -> None:
        """Every metric attribute of these objects (a stage's metrics) with a stream label."""
        for owner in owners:
            for value in vars(owner).values():
                # _labelnames: prometheus_client has no public accessor for a metric's labels.
                if isinstance(value, MetricWrapperBase) and "stream" in value._labelnames:
                    self._metrics.append(value)

    def __len__(self) -> int:
        return len(self._metrics)

    def forget(self, stream: str) -> None:
        for metric in self._metrics:
            metric.remove_by_labels({"stream": stream})
