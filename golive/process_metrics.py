"""What every process of a golive node costs, for the operator: the server's own CPU, memory
and open files (prometheus_client's standard `process_*` series), each transcode worker's the
same under `golive_transcode_worker_*{worker}`, and `golive_build_info`.

The workers are separate processes, so their figures are read from the OS at each scrape
(psutil), not reported by the workers: a worker that hangs still shows what it holds.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator

import av
import psutil
from prometheus_client import CollectorRegistry, Info, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from golive import __version__


class WorkerProcessCollector(Collector):
    def __init__(self, pids: Callable[[], dict[int, int]]) -> None:
        self._pids = pids  # worker index -> pid, of the workers running now

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        cpu = CounterMetricFamily("golive_transcode_worker_cpu_seconds",
                                  "CPU time (user and system) of each transcode worker process.",
                                  labels=["worker"])
        rss = GaugeMetricFamily("golive_transcode_worker_resident_memory_bytes",
                                "Resident memory of each transcode worker process.",
                                labels=["worker"])
        fds = GaugeMetricFamily("golive_transcode_worker_open_fds",
                                "Open file descriptors of each transcode worker process.",
                                labels=["worker"])
        for index, pid in sorted(self._pids().items()):
            try:
                process = psutil.Process(pid)
                with process.oneshot():
                    times, memory, files = (process.cpu_times(), process.memory_info(),
                                            process.num_fds())
            except psutil.Error:  # exited between the listing and now: its restart reports
                continue
            worker = str(index)
            cpu.add_metric([worker], times.user + times.system)
            rss.add_metric([worker], memory.rss)
            fds.add_metric([worker], files)
        yield from (cpu, rss, fds)


def register(registry: CollectorRegistry,
             worker_pids: Callable[[], dict[int, int]] = dict) -> None:
    ProcessCollector(registry=registry)
    registry.register(WorkerProcessCollector(worker_pids))
    Info("golive_build", "The golive that runs, and what it runs on (always 1).",
         registry=registry).info({
             "version": __version__, "python": platform.python_version(),
             "pyav": av.__version__, "ffmpeg": av.ffmpeg_version_info})
