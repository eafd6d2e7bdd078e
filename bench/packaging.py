"""The cost of packaging real-time publishers: golive's LL-HLS against nginx-rtmp's `hls on`.

    python -m bench.packaging [--quick] [--publishers 200] [--seconds S] [--py-spy FILE]

N publishers replay the real OBS capture (tests/data/captures/obs29.0-h264, 2.76 Mb/s; its
media repeated by `rtmp_sessions.extend` so each publishes for the whole run) paced at the
capture's own bit rate, connecting at 100 a second, into

* golive: `golive serve --open --no-transcode`, LL-HLS at its defaults (fMP4 parts and
  segments in memory, as `make run` does), nothing else in the process;
* nginx-rtmp 1.2.2 as one process with `hls on` (`servers.NGINX_HLS`: MPEG-TS fragments of
  2 s and 12 s playlists written to disk, the module's cleaner on).

Reported over the steady window (every publisher sending, the connection ramp left out):
the server's CPU (% of one core), its busiest thread (golive runs everything on one event
loop, so that thread's share is its headroom), peak and steady RSS, RSS per stream (steady
RSS less the idle server's, over N) beside the bytes of media the playlists must keep
available (the window plus what RFC 8216 6.2.2 asks of removed segments: their duration plus
the playlist's), and whether every stream is being packaged: the segments each playlist
lists (golive: every stream's source playlist over HTTP after the load; nginx-rtmp: its
.m3u8 files near the end of the window, before its cleaner removes them).

`run_packaging` is the entry point for other benchmarks (the lead's `capacity`).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from golive.ingest.keys import open_mode_name

from . import Options, Row, benchmark, exit_on_sigterm, format_table
from .hls import GoliveHls, log
from .ingest import REALTIME_BLOCK, Run, run_load_against, window_cpu
from .profiling import PySpy, top_functions
from .publishers import raised_fd_limit
from .rtmp_sessions import SessionTemplate, extend, templates
from .servers import NginxRtmp, ServerProcess, machine_load, nginx_rtmp_available, process_cpu_path

CAPTURE = "obs29.0-h264"  # the publisher: OBS 29, 720p H.264 + AAC, 2.76 Mb/s
CONNECT_RATE = 100.0  # publishers connecting per second (encoders back after a restart)
GOLIVE_ARGS = ("--open", "--no-transcode")  # (GoliveHls gives the admin a port of its own)
# What the playlists must keep available, in seconds of media: golive's defaults (six
# segments of ~2 s listed) and RFC 8216 6.2.2's retention of a removed segment (its duration
# plus the longest playlist that listed it), like `Rendition._slide`.
SEGMENT_S = 2.0
WINDOW_S = 6 * SEGMENT_S
KEPT_S = WINDOW_S + (SEGMENT_S + WINDOW_S)
MB = 1e6
BUSY_BEFORE = 0.2  # cores busy before the load: someone else's work


# ---- sampling threads and memory ----------------------------------------------------------


def _threads(pid: int) -> dict[str, float]:
    """CPU seconds of each live thread of `pid`, by "tid name"."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            name = (task / "comm").read_text().strip()
            out[f"{task.name} {name}"] = process_cpu_path(task / "stat")
    return out


def _memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in bytes: resident now, and its peak so far."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


class ThreadSampler:
    """Samples a process's threads' CPU and its RSS in a thread of ours, and calls
    `at_time(when)` once at the monotonic time `when` (the packaging count after the window)."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float], int]] = []  # (time, threads, rss)
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="thread-sampler", daemon=True)
        self._calls: list[tuple[float, object]] = []

    def call_at(self, when: float, fn: object) -> None:
        self._calls.append((when, fn))

    def __enter__(self) -> ThreadSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        with contextlib.suppress(OSError):
            threads = _threads(self.pid)
            rss, peak = _memory(self.pid)
            self.peak_rss = max(self.peak_rss, peak)
            self.samples.append((time.monotonic(), threads, rss))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()
            now = time.monotonic()
            due = [c for c in self._calls if c[0] <= now]
            for call in due:
                self._calls.remove(call)
                try:
                    call[1]()  # type: ignore[operator]
                except Exception as exc:  # a failed count must not kill the sampling
                    log(f"packaging count failed: {type(exc).__name__}: {exc}")

    def _inside(self, start: float, end: float) -> list[tuple[float, dict[str, float], int]]:
        return [s for s in self.samples if start <= s[0] <= end]

    def busiest(self, start: float, end: float) -> tuple[str, float] | None:
        """(thread, cores) of the thread that used the most CPU between `start` and `end`."""
        inside = self._inside(start, end)
        if len(inside) < 2:
            return None
        (t0, first, _), (t1, last, _) = inside[0], inside[-1]
        used = {name: cpu - first.get(name, 0.0) for name, cpu in last.items()}
        if not used:
            return None
        name = max(used, key=used.__getitem__)
        return name, used[name] / (t1 - t0)

    def rss_at(self, when: float) -> int:
        """RSS at the sample nearest before `when`."""
        before = [s for s in self.samples if s[0] <= when]
        return (before[-1] if before else self.samples[0])[2]


# ---- counting what was packaged -----------------------------------------------------------


@dataclass
class Packaged:
    """Streams with playlists listing at least one complete segment, just after the window."""

    streams: int = 0  # playlists (golive: streams in /api/streams)
    with_segments: int = 0
    segments: int = 0  # listed, in all playlists
    counted: bool = False


def count_golive(server: GoliveHls, names: list[str], into: Packaged) -> None:
    """Each stream's source playlist, read after the load (a broadcast keeps its playlists
    through the grace period and 60 s after ENDLIST), so no stream is missed for timing."""
    for name in names:
        url = f"http://127.0.0.1:{server.http_port}/live/{name}/source/index.m3u8"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                listed = response.read().decode().count("#EXTINF")
        except OSError:
            continue
        into.streams += 1
        into.segments += listed
        into.with_segments += listed > 0
    into.counted = True


def count_nginx(server: NginxRtmp, into: Packaged) -> None:
    for playlist in Path(server.hls_path).glob("*.m3u8"):
        with contextlib.suppress(OSError):
            listed = playlist.read_text().count("#EXTINF")
            into.streams += 1
            into.segments += listed
            into.with_segments += listed > 0
    into.counted = True


# ---- one run ------------------------------------------------------------------------------


@dataclass
class PackagingRun:
    """One server under the load: what `packaging_rows` reports, and `capacity` reads."""

    server: str
    publishers: int
    run: Run
    cpu: float | None  # cores, steady window
    full_cpu: float | None  # cores, the part of the window once the retention is full
    busiest_thread: str
    busiest_cpu: float | None  # cores, steady window
    idle_rss: int  # bytes, before the first publisher
    steady_rss: int  # bytes, at the end of the window
    peak_rss: int  # bytes (VmHWM)
    packaged: Packaged
    media_rate: float  # bytes per second per publisher
    notes: list[str] = field(default_factory=list)

    @property
    def rss_per_stream(self) -> float:
        return (self.steady_rss - self.idle_rss) / max(1, self.publishers)

    @property
    def kept_per_stream(self) -> float:
        """Bytes of media one stream's playlists must keep available (window + retention)."""
        return self.media_rate * KEPT_S

    @property
    def window(self) -> tuple[float, float]:
        return self.run.window or (0.0, 0.0)


def _capture() -> SessionTemplate:
    every = templates()
    return next((t for t in every if t.name == CAPTURE), every[0])


def _one(server: ServerProcess, long: SessionTemplate, publishers: int, rate: float,
         ramp: float, session_seconds: float, py_spy: str | None) -> PackagingRun:
    packaged = Packaged()
    golive = isinstance(server, GoliveHls)
    time.sleep(1.0)  # let the server settle before its idle RSS is read
    idle_rss, _ = _memory(server.pid)
    spy = PySpy(server.pid, py_spy) if py_spy and golive else contextlib.nullcontext()
    with ThreadSampler(server.pid) as threads, spy:
        begin = time.monotonic()
        # nginx-rtmp's playlists near the end of the steady window.
        count_at = begin + 0.2 + session_seconds - 1.5
        if isinstance(server, NginxRtmp):  # (its cleaner removes playlists after the load)
            threads.call_at(count_at, lambda: count_nginx(server, packaged))
        run = run_load_against(
            server, [long], publishers=publishers, block_size=REALTIME_BLOCK, rate=rate,
            duration=session_seconds, ramp=ramp, timeout=session_seconds * 2 + ramp + 60,
            sample=True)
    if isinstance(server, GoliveHls):
        count_golive(server, sorted({open_mode_name(r.key) for r in run.records}), packaged)
    last_start = max((r.started for r in run.records), default=0.0)
    first_end = min((r.finished for r in run.records), default=0.0)
    run.window = (last_start + 0.5, max(last_start + 0.5, first_end - 0.5))
    busiest = threads.busiest(*run.window)
    # Until every stream's playlists hold their window and retention (KEPT_S of media),
    # memory grows, and fresh pages cost the kernel zeroing them: also measured without.
    full = (max(run.window[0], last_start + KEPT_S + 1.0), run.window[1])
    full_cpu = (run.sampler.utilisation("server", *full)
                if run.sampler is not None and full[1] - full[0] >= 5.0 else None)
    result = PackagingRun(
        server.name, publishers, run, window_cpu(run), full_cpu, busiest[0] if busiest else "-",
        busiest[1] if busiest else None, idle_rss, threads.rss_at(run.window[1]),
        threads.peak_rss, packaged, rate, list(run.notes))
    if run.errors:
        result.notes.append(f"{len(run.errors)} publisher errors, e.g. {run.errors[0]}")
    if not packaged.counted:
        result.notes.append("packaging not counted (the count failed or came too late)")
    log(f"packaging {publishers}: {_describe(result)}")
    return result


def run_packaging(publishers: int, *, seconds: float, quick: bool = False,
                  py_spy: str | None = None, with_nginx: bool = True) -> list[PackagingRun]:
    """`publishers` real-time OBS publishers for `seconds` with all of them publishing, into
    golive then nginx-rtmp (when installed; `with_nginx`). `quick` only shortens the idle
    settling; counts are the caller's."""
    del quick  # (the same run, whatever its size: the caller picks publishers and seconds)
    capture = _capture()
    rate = capture.size * 1000 / max(1, capture.media_ms)  # the capture's own bit rate
    ramp = max(1.0, publishers / CONNECT_RATE)
    session_seconds = ramp + seconds + 1.0
    long = extend(capture, int(rate * session_seconds))
    long.completions(REALTIME_BLOCK)  # (replayed now, not while timing)
    factories: list[tuple[str, object]] = [("golive", lambda: GoliveHls({}, disk=False,
                                                                        serve_args=GOLIVE_ARGS))]
    binary = nginx_rtmp_available() if with_nginx else None
    if binary:
        factories.append(("nginx-rtmp", lambda: NginxRtmp(binary, hls=True)))
    runs = []
    with raised_fd_limit():
        for _, make in factories:
            with make() as server:  # type: ignore[operator]
                runs.append(_one(server, long, publishers, rate, ramp, session_seconds, py_spy))
    return runs


def _describe(run: PackagingRun) -> str:
    w0, w1 = run.window
    return (
        f"{run.server}: CPU {_pct(run.cpu)}% over {w1 - w0:.1f} s ({_pct(run.full_cpu)}% "
        f"once the retention is full), busiest thread "
        f"{run.busiest_thread} {_pct(run.busiest_cpu)}%, RSS idle {run.idle_rss / MB:.0f} MB, "
        f"steady {run.steady_rss / MB:.0f} MB, peak {run.peak_rss / MB:.0f} MB, "
        f"{run.rss_per_stream / MB:.2f} MB/stream; packaged {run.packaged.with_segments}/"
        f"{run.publishers} streams ({run.packaged.segments} segments listed); "
        f"publishers' CPU {run.run.load.client_cpu:.1f} s, max lag {run.run.max_lag:.2f} s"
    )


def _pct(cores: float | None) -> str:
    return "-" if cores is None or math.isnan(cores) else f"{cores * 100:.1f}"


# ---- table rows ---------------------------------------------------------------------------


def packaging_rows(runs: list[PackagingRun]) -> list[Row]:
    golive = next(r for r in runs if r.server == "golive")
    ref = next((r for r in runs if r.server != "golive"), None)
    name = f"packaging{golive.publishers}"
    w0, w1 = golive.window

    def row(unit: str, g: float | None, r: float | None, digits: int = 1, note: str = "",
            scale: float = 1.0) -> Row:
        def text(v: float | None) -> str:
            return "-" if v is None or math.isnan(v) else f"{v / scale:,.{digits}f}"
        return Row(name, unit, text(g), text(r) if ref else "-", g, r if ref else None, note)

    notes = [f"{golive.publishers} x {CAPTURE} at {golive.media_rate * 8 / 1e6:.2f} Mb/s; "
             f"steady window {w1 - w0:.1f} s; golive LL-HLS defaults (fMP4, memory), "
             "nginx-rtmp hls on (TS to disk, 2 s fragments, 12 s playlists)"]
    for run in runs:
        notes += [f"{run.server}: {n}" for n in run.notes]
    rows = [
        row("server CPU % (1 core), all publishing",
            golive.cpu and golive.cpu * 100, ref.cpu * 100 if ref and ref.cpu else None,
            note="; ".join(notes)),
        row("server CPU %, retention full", golive.full_cpu and golive.full_cpu * 100,
            ref.full_cpu * 100 if ref and ref.full_cpu else None,
            note=f"the window from {KEPT_S + 1:.0f} s after the last publisher started "
                 "(golive's memory no longer growing); '-' when that leaves under 5 s "
                 "(--seconds 45 gives ~18 s)"),
        row("busiest thread % (1 core)", golive.busiest_cpu and golive.busiest_cpu * 100,
            ref.busiest_cpu * 100 if ref and ref.busiest_cpu else None,
            note=f"golive: thread {golive.busiest_thread}"),
        row("peak RSS MB", golive.peak_rss, ref.peak_rss if ref else None, 0, scale=MB),
        row("RSS per stream MB", golive.rss_per_stream, ref.rss_per_stream if ref else None, 2,
            scale=MB,
            note=(f"(steady RSS - idle RSS) / streams; the playlists must keep "
                  f"{golive.kept_per_stream / MB:.1f} MB of media per stream available "
                  f"({KEPT_S:.0f} s: window + RFC 8216 retention): golive holds "
                  f"{golive.rss_per_stream / golive.kept_per_stream:.2f}x that")),
    ]
    for run in runs:
        p = run.packaged
        rows.append(Row(name, f"streams packaged ({run.server})",
                        f"{p.with_segments}/{run.publishers}" if p.counted else "not counted",
                        note=f"{p.streams} playlists, {p.segments} segments listed"))
    return rows


# ---- entry points -------------------------------------------------------------------------


@benchmark(
    "packaging",
    "200 real-time OBS publishers packaged: golive LL-HLS vs nginx-rtmp hls on",
    reference="nginx-rtmp (one process) with hls on: MPEG-TS to disk",
)
def run_packaging_benchmark(options: Options) -> list[Row]:
    publishers, seconds = (20, 10.0) if options.quick else (200, 30.0)
    return packaging_rows(run_packaging(publishers, seconds=seconds, quick=options.quick))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.packaging",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="20 publishers, 10 s")
    parser.add_argument("--publishers", type=int, help="real-time publishers (200)")
    parser.add_argument("--seconds", type=float,
                        help="seconds with every publisher publishing (30; RSS needs ~28 s "
                             "of media to reach its steady value)")
    parser.add_argument("--py-spy", metavar="FILE",
                        help="sample golive with py-spy (all threads), raw stacks to FILE")
    parser.add_argument("--no-nginx", action="store_true", help="golive only")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    busy = machine_load()
    if busy > BUSY_BEFORE:
        print(f"warning: the machine is already {busy * 100:.0f}% busy (of "
              f"{os.cpu_count()} cores x 100%) before any load; figures will be skewed",
              file=sys.stderr, flush=True)
    publishers = args.publishers or (20 if args.quick else 200)
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    runs = run_packaging(publishers, seconds=seconds, quick=args.quick, py_spy=args.py_spy,
                         with_nginx=not args.no_nginx)
    print(format_table(packaging_rows(runs), "nginx-rtmp"))
    if busy > BUSY_BEFORE:
        print(f"\nwarning: the machine was {busy * 100:.0f}% busy before the load")
    if args.py_spy:
        print(f"\ngolive server, py-spy samples ({args.py_spy}), top 25 by self time:")
        print(top_functions(args.py_spy, 25))


if __name__ == "__main__":
    main()
