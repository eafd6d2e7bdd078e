"""RTMP ingest benchmark: golive against nginx-rtmp under the same publishers.

Modes (all run by `python -m bench`; one at a time with `python -m bench.ingest MODE`):

flood     N publishers (16) replay the real captures as fast as the server reads them, each
          starting a new session with a fresh key when one ends, for a few seconds. Reports MB
          of RTMP per server CPU-second (the issue's figure: connection setup and per-stream
          work included, since each session is ~4 s of media; nothing subscribed, as nginx-rtmp
          has no players), wall MB/s, and, from a second golive run with a subscriber, the
          per-unit ingest latency (mostly queueing in socket buffers at this load).
flood-long  The same with ~20 MB sessions (the captures' media repeated): the steady-state
          cost per byte, without per-connection work.
captures  flood, one capture at a time (full run only): which clients are expensive.
realtime  N publishers (200 and 800 in the full run) each paced at 2.8 Mb/s, connecting at
          100 a second; reports server CPU (% of one core, while all are publishing),
          golive's latency percentiles (the same window; the ramp's in the notes) and whether
          the load was held: no connection failed, every unit arrived, p99 < 500 ms while all
          were publishing, and no publisher fell behind its schedule by more than 500 ms.

Latency: the server-side subscriber timestamps each MediaUnit (bench/ingest_server.py); the
publisher timestamps each block once it is in the kernel; an offline replay of the same bytes
into golive's core says which block completes which unit. Both clocks are CLOCK_MONOTONIC.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from golive.ingest.keys import open_mode_name

from . import Options, Row, benchmark, exit_on_sigterm, format_table
from .profiling import PySpy, top_cprofile, top_functions
from .publishers import LoadResult, LoadSpec, raised_fd_limit, run_load
from .rtmp_sessions import SessionTemplate, extend, templates
from .servers import CpuSampler, GoliveServer, NginxRtmp, ServerProcess, nginx_rtmp_available

OBS_RATE = 2_800_000 / 8  # bytes per second: a typical OBS 720p publish (2.8 Mb/s)
FLOOD_BLOCK = 64 * 1024
REALTIME_BLOCK = 16 * 1024  # about one video frame at 2.8 Mb/s and 30 fps
LONG_SESSION_BYTES = 20_000_000
HELD_P99 = 0.5  # seconds
HELD_LAG = 0.5  # seconds a publisher may fall behind its schedule
MB = 1e6
BUSY_MACHINE = 0.15  # cores of other work that make a measurement suspect


@dataclass
class Latency:
    p50: float = math.nan
    p95: float = math.nan
    p99: float = math.nan
    worst_publisher_p99: float = math.nan
    units: int = 0
    expected: int = 0
    missing: int = 0

    def ms(self) -> str:
        if not self.units:
            return "-"
        return f"{self.p50 * 1e3:.0f}/{self.p95 * 1e3:.0f}/{self.p99 * 1e3:.0f}"


@dataclass
class Run:
    """One load against one server."""

    server: str
    load: LoadResult
    server_cpu: float
    wall: float
    sampler: CpuSampler | None = None
    latency: Latency | None = None
    window: tuple[float, float] | None = None  # realtime: when every publisher was sending
    other_cpu: float = 0.0  # cores busy with something else than server and publishers
    main_thread_cpu: float = 0.0  # the server's main (event-loop) thread's share of server_cpu
    steady_latency: Latency | None = None  # realtime: units that arrived inside `window`
    notes: list[str] = field(default_factory=list)

    @property
    def records(self) -> list[Any]:
        return self.load.records

    @property
    def bytes(self) -> int:
        return sum(r.sent for r in self.records)

    @property
    def errors(self) -> list[str]:
        return [r.error for r in self.records if r.error]

    @property
    def mb_per_cpu(self) -> float:
        return self.bytes / MB / self.server_cpu if self.server_cpu > 0 else math.nan

    @property
    def mb_per_s(self) -> float:
        return self.bytes / MB / self.wall if self.wall > 0 else math.nan

    @property
    def max_lag(self) -> float:
        return max((r.max_lag for r in self.records), default=0.0)


# ---- running a load ----------------------------------------------------------------------


def run_load_against(
    server: ServerProcess,
    session_templates: list[SessionTemplate],
    *,
    publishers: int,
    block_size: int,
    rate: float | None,
    duration: float,
    ramp: float = 0.0,
    timeout: float,
    client_procs: int = 1,
    sample: bool = False,
) -> Run:
    """Start the publishers, measure the server's CPU from just before the first connection
    to the moment every publisher has seen the server close (it has read everything)."""
    start = time.monotonic() + 0.2
    # Keys need only be unique within one server's life, and each load gets a fresh server.
    spec = LoadSpec(
        "127.0.0.1",
        server.port,
        publishers,
        block_size,
        rate,
        start,
        start + timeout,
        duration=duration,
        ramp=ramp,
    )
    cpu0, (main0, _) = server.cpu(), server.threads_cpu()
    with CpuSampler({"server": server.pid}, interval=0.25 if sample else 3600.0) as sampler:
        load = run_load(spec, session_templates, client_procs)
    end = max((r.finished for r in load.records), default=time.monotonic())
    cpu1, (main1, _) = server.cpu(), server.threads_cpu()
    run = Run(server.name, load, cpu1 - cpu0, end - start, sampler)
    run.main_thread_cpu = main1 - main0
    # The machine's other work (other processes, and kernel time not charged to ours):
    # measurements are only comparable on an otherwise idle machine, so say when it was not.
    first, last = sampler.samples[0][1], sampler.samples[-1][1]
    elapsed = sampler.samples[-1][0] - sampler.samples[0][0]
    other = (last["machine"] - first["machine"]) - run.server_cpu - load.client_cpu
    run.other_cpu = other / elapsed if elapsed > 0 else 0.0
    if run.other_cpu > BUSY_MACHINE:
        run.notes.append(
            f"machine busy: {run.other_cpu * 100:.0f}% of a core used by other "
            "processes or the kernel during the load"
        )
    return run


def measure_latency(
    run: Run,
    session_templates: list[SessionTemplate],
    block_size: int,
    dump: dict[str, Any],
    window: tuple[float, float] | None = None,
) -> Latency:
    """Match each unit golive delivered with the write of the block that completed it."""
    streams = {s["name"]: s for s in dump["streams"]}
    pooled: list[np.ndarray] = []
    per_slot: dict[int, list[np.ndarray]] = {}
    expected = missing = 0
    for record in run.records:
        completions = np.asarray(session_templates[record.template].completions(block_size))
        written = len(record.block_times)
        due = int(completions[written - 1]) if written else 0
        stream = streams.get(open_mode_name(record.key))
        arrivals = np.asarray(stream["times"] if stream else [], dtype=float)[:due]
        expected += due
        missing += due - len(arrivals)
        if not len(arrivals):
            continue
        block = np.searchsorted(completions, np.arange(len(arrivals)), side="right")
        latency = arrivals - np.asarray(record.block_times)[block]
        if window is not None:
            latency = latency[(arrivals >= window[0]) & (arrivals <= window[1])]
        pooled.append(latency)
        per_slot.setdefault(record.slot, []).append(latency)
    result = Latency(expected=expected, missing=missing)
    if pooled:
        everything = np.concatenate(pooled)
        if len(everything):
            result.units = len(everything)
            result.p50, result.p95, result.p99 = (
                float(v) for v in np.percentile(everything, [50, 95, 99])
            )
            result.worst_publisher_p99 = max(
                float(np.percentile(np.concatenate(parts), 99))
                for parts in per_slot.values()
                if sum(len(p) for p in parts)
            )
    return result


def _servers(with_nginx: bool) -> list[Callable[[], ServerProcess]]:
    factories: list[Callable[[], ServerProcess]] = [GoliveServer]
    binary = nginx_rtmp_available() if with_nginx else None
    if binary:
        factories.append(lambda: NginxRtmp(binary))
    return factories


def flood(
    session_templates: list[SessionTemplate],
    *,
    publishers: int,
    duration: float,
    with_nginx: bool = True,
    client_procs: int = 1,
    profile: str | None = None,
    py_spy: str | None = None,
    latency: bool = True,
    label: str = "flood",
) -> list[Run]:
    """Full-speed publishers against golive, then nginx-rtmp.

    golive's MB per CPU-second is measured with nothing subscribed to its streams, like
    nginx-rtmp with no players: ingest alone. The recording subscriber that gives latencies
    costs golive ~15% more CPU, so latency comes from a second run with it (`latency`)."""
    runs = []
    for make in _servers(with_nginx):
        server = make()
        golive = isinstance(server, GoliveServer)
        if isinstance(server, GoliveServer):
            server.profile = profile
            server.subscriber = False
        with server:
            spy = PySpy(server.pid, py_spy) if py_spy and golive else contextlib.nullcontext()
            with spy:
                run = run_load_against(
                    server,
                    session_templates,
                    publishers=publishers,
                    block_size=FLOOD_BLOCK,
                    rate=None,
                    duration=duration,
                    timeout=duration + 60,
                    client_procs=client_procs,
                )
        _log(f"{label}: {_describe(run)}")
        if golive and latency:
            with GoliveServer() as server:
                observed = run_load_against(
                    server,
                    session_templates,
                    publishers=publishers,
                    block_size=FLOOD_BLOCK,
                    rate=None,
                    duration=duration,
                    timeout=duration + 60,
                    client_procs=client_procs,
                )
                observed.latency = measure_latency(
                    observed, session_templates, FLOOD_BLOCK, server.dump()
                )
            _log(f"{label} (recording subscriber): {_describe(observed)}")
            run.latency = observed.latency
            run.notes.append(
                f"latency run, with one recording subscriber on every stream: "
                f"{observed.mb_per_cpu:.0f} MB/CPU-s"
            )
            run.notes += observed.notes
        runs.append(run)
    return runs


def realtime(
    session_templates: list[SessionTemplate],
    *,
    publishers: int,
    steady: float,
    with_nginx: bool = True,
    client_procs: int = 1,
    rate: float = OBS_RATE,
    connect_rate: float = 100.0,
) -> list[Run]:
    """Paced publishers; sessions long enough that all are publishing for `steady` seconds.

    Connections open at `connect_rate` a second (encoders reconnecting after a restart), so
    the run has a ramp (connection setup and codec probes) and then a steady state, which is
    what "held" is judged on; the ramp's latency is reported too."""
    ramp = max(1.0, publishers / connect_rate)
    session_seconds = ramp + steady + 1.0
    long = [extend(t, int(rate * session_seconds)) for t in session_templates]
    for template in long:
        template.completions(REALTIME_BLOCK)  # replay now, not while timing
    runs = []
    for make in _servers(with_nginx):
        with make() as server:
            run = run_load_against(
                server,
                long,
                publishers=publishers,
                block_size=REALTIME_BLOCK,
                rate=rate,
                duration=session_seconds,
                ramp=ramp,
                timeout=session_seconds * 2 + ramp + 60,
                client_procs=client_procs,
                sample=True,
            )
            # Every publisher is sending between the last start and the first finish.
            last_start = max((r.started for r in run.records), default=0.0)
            first_end = min((r.finished for r in run.records), default=0.0)
            run.window = (last_start + 0.5, max(last_start + 0.5, first_end - 0.5))
            if isinstance(server, GoliveServer):
                dump = server.dump()
                run.latency = measure_latency(run, long, REALTIME_BLOCK, dump)
                run.steady_latency = measure_latency(run, long, REALTIME_BLOCK, dump, run.window)
        _log(f"realtime {publishers}: {_describe(run)}")
        runs.append(run)
    return runs


def window_cpu(run: Run, name: str = "server") -> float | None:
    """Cores `name` kept busy while every publisher was sending."""
    if run.sampler is None or run.window is None:
        return None
    return run.sampler.utilisation(name, *run.window)


def held(run: Run) -> tuple[bool, str]:
    """Judged on the steady state: the ramp's connection storm is reported, not judged."""
    problems = []
    if run.errors:
        problems.append(f"{len(run.errors)} connection errors")
    if run.latency is not None and run.latency.missing:
        problems.append(f"{run.latency.missing} units missing")
    steady = run.steady_latency
    if steady is not None and steady.units and steady.p99 > HELD_P99:
        problems.append(f"steady p99 {steady.p99 * 1e3:.0f} ms")
    if run.max_lag > HELD_LAG:
        problems.append(f"publishers fell {run.max_lag:.1f} s behind")
    if run.window is not None and run.window[1] - run.window[0] < 1.0:
        problems.append("no steady state")
    return (not problems, ", ".join(problems))


def _describe(run: Run) -> str:
    text = (
        f"{run.server}: {len(run.records)} sessions, {run.bytes / MB:.0f} MB in "
        f"{run.wall:.2f} s ({run.mb_per_s:.0f} MB/s), server CPU {run.server_cpu:.2f} s "
        f"(main thread {run.main_thread_cpu:.2f} s) -> {run.mb_per_cpu:.0f} MB/CPU-s; "
        f"publishers' CPU {run.load.client_cpu:.2f} s in {run.load.client_processes} "
        f"process(es)"
    )
    if run.latency is not None:
        text += (
            f"; latency p50/p95/p99 {run.latency.ms()} ms over {run.latency.units} units"
            f", {run.latency.missing} missing"
        )
    if run.max_lag:
        text += f"; max lag {run.max_lag:.2f} s"
    if run.errors:
        text += f"; {len(run.errors)} errors, e.g. {run.errors[0]}"
    return text


def _log(message: str) -> None:
    """Progress on stderr: a full run takes minutes, and the table comes only at the end."""
    print(f"  {message}", file=sys.stderr, flush=True)


# ---- table rows --------------------------------------------------------------------------


def _pair(runs: list[Run]) -> tuple[Run, Run | None]:
    golive = next(r for r in runs if r.server == "golive")
    return golive, next((r for r in runs if r.server != "golive"), None)


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def flood_rows(name: str, runs: list[Run], *, detail: bool = True) -> list[Row]:
    golive, ref = _pair(runs)
    notes = []
    if detail and golive.main_thread_cpu > 0 and golive.server_cpu > 0:
        notes.append(
            f"{len(golive.records)} sessions, {golive.bytes / MB:.0f} MB; golive's "
            f"event-loop thread {golive.main_thread_cpu / golive.server_cpu * 100:.0f}%"
            f" of its CPU ({golive.bytes / MB / golive.main_thread_cpu:.0f} MB per "
            f"event-loop CPU-s), worker threads (codec probes) the rest; publishers' "
            f"CPU {golive.load.client_cpu / golive.wall * 100:.0f}% of a core"
        )
        if ref is not None:
            notes.append(
                f"nginx-rtmp: {len(ref.records)} sessions, {ref.bytes / MB:.0f} MB, "
                f"publishers' CPU {ref.load.client_cpu / ref.wall * 100:.0f}%"
            )
    if golive.errors or (ref and ref.errors):
        notes.append(
            f"errors: golive {len(golive.errors)}, nginx-rtmp {len(ref.errors) if ref else 0}"
        )
    notes += golive.notes
    if ref is not None:
        notes += [f"nginx-rtmp run: {n}" for n in ref.notes]
    note = "; ".join(notes)
    rows = [
        Row(
            name,
            "MB RTMP / server CPU-s",
            _num(golive.mb_per_cpu),
            _num(ref.mb_per_cpu) if ref else "-",
            golive.mb_per_cpu,
            ref.mb_per_cpu if ref else None,
            note,
        )
    ]
    if detail:
        rows.append(
            Row(
                name,
                "wall MB/s",
                _num(golive.mb_per_s),
                _num(ref.mb_per_s) if ref else "-",
                golive.mb_per_s,
                ref.mb_per_s if ref else None,
            )
        )
        rows.append(
            Row(
                name,
                "server CPU % (of 1 core)",
                _num(golive.server_cpu / golive.wall * 100),
                _num(ref.server_cpu / ref.wall * 100) if ref else "-",
            )
        )
        if golive.latency is not None:
            lat = golive.latency
            rows.append(
                Row(
                    name,
                    "latency p50/p95/p99 ms",
                    lat.ms(),
                    note=(
                        f"worst publisher p99 {lat.worst_publisher_p99 * 1e3:.0f} ms; "
                        f"{lat.units} units, {lat.missing} missing"
                    ),
                )
            )
    return rows


def realtime_rows(name: str, runs: list[Run]) -> list[Row]:
    golive, ref = _pair(runs)
    g_cpu, r_cpu = window_cpu(golive), (window_cpu(ref) if ref else None)
    machine = window_cpu(golive, "machine")
    # "self" is this process: the publishers, unless they ran in forked processes.
    clients = window_cpu(golive, "self") if golive.load.client_processes == 1 else None
    window = golive.window or (0.0, 0.0)
    note = (
        f"{len(golive.records)} publishers x {golive.bytes / len(golive.records) / MB:.1f}"
        f" MB; golive has one recording subscriber per stream; all publishing for "
        f"{window[1] - window[0]:.1f} s, and then: publishers "
        f"{_num(clients and clients * 100)}%, whole machine {_num(machine and machine * 100)}"
        f"% (of 200%)"
    )
    note += "".join(f"; {n}" for n in golive.notes)
    if ref is not None:
        note += "".join(f"; nginx-rtmp run: {n}" for n in ref.notes)
    rows = [
        Row(
            name,
            "server CPU % (1 core), all publishing",
            _num(g_cpu and g_cpu * 100),
            _num(r_cpu and r_cpu * 100) if ref else "-",
            g_cpu * 100 if g_cpu is not None else None,
            r_cpu * 100 if r_cpu is not None else None,
            note=note,
        )
    ]
    if golive.steady_latency is not None and golive.latency is not None:
        steady, whole = golive.steady_latency, golive.latency
        rows.append(
            Row(
                name,
                "latency p50/p95/p99 ms, all publishing",
                steady.ms(),
                note=(
                    f"{steady.units} units; whole run incl. the connection ramp: p50/p95/p99 "
                    f"{whole.ms()} ms, worst publisher p99 "
                    f"{whole.worst_publisher_p99 * 1e3:.0f} ms, "
                    f"{whole.missing} of {whole.expected} units missing"
                ),
            )
        )
    ok, why = held(golive)
    reasons = [f"golive: {why}"] if why else []
    ref_held = "-"
    if ref is not None:
        r_ok, r_why = held(ref)
        ref_held = "yes" if r_ok else "no"
        reasons += [f"nginx-rtmp: {r_why}"] if r_why else []
    rows.append(
        Row(
            name,
            "held (no loss, p99<500ms, on time)",
            "yes" if ok else "no",
            ref_held,
            note="; ".join(reasons),
        )
    )
    return rows


# ---- entry points --------------------------------------------------------------------------


@benchmark(
    "ingest",
    "RTMP ingest: flood MB per CPU-second, latency, real-time publishers",
    reference="nginx-rtmp (nginx + libnginx-mod-rtmp, one process), when installed",
)
def run_ingest(options: Options) -> list[Row]:
    quick = options.quick
    with raised_fd_limit():
        sessions = templates()
        rows: list[Row] = []
        seconds = 1.5 if quick else 5.0
        rows += flood_rows("ingest.flood16", flood(sessions, publishers=16, duration=seconds))
        long = [extend(t, LONG_SESSION_BYTES // (4 if quick else 1)) for t in sessions]
        rows += flood_rows(
            "ingest.flood16-long",
            flood(long, publishers=16, duration=seconds, latency=False, label="flood-long"),
            detail=False,
        )
        if not quick and len(sessions) > 1:
            for template in sessions:
                rows += flood_rows(
                    f"ingest.flood16[{template.name}]",
                    flood(
                        [template],
                        publishers=16,
                        duration=1.5,
                        latency=False,
                        label=f"flood {template.name}",
                    ),
                    detail=False,
                )
        for publishers in (50,) if quick else (200, 800):
            rows += realtime_rows(
                f"ingest.realtime{publishers}",
                realtime(sessions, publishers=publishers, steady=3.0 if quick else 8.0),
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "mode",
        nargs="?",
        default="all",
        choices=["all", "flood", "flood-long", "captures", "realtime"],
    )
    parser.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    parser.add_argument("--publishers", type=int, help="publishers (flood 16, realtime 200)")
    parser.add_argument(
        "--seconds",
        type=float,
        help="flood: seconds of load; realtime: seconds with all publishing",
    )
    parser.add_argument(
        "--capture",
        action="append",
        default=[],
        help="only this capture (name, e.g. obs29.0-h264); repeatable",
    )
    parser.add_argument("--no-nginx", action="store_true", help="golive only")
    parser.add_argument(
        "--client-procs",
        type=int,
        default=1,
        help="publisher processes (the machine has 2 cores; 1 suffices)",
    )
    parser.add_argument("--rate", type=float, default=2.8, help="realtime Mb/s per publisher")
    parser.add_argument(
        "--profile", metavar="FILE", help="flood modes: run golive under cProfile, stats to FILE"
    )
    parser.add_argument(
        "--no-latency",
        action="store_true",
        help="flood modes: skip golive's second run (with a recording "
        "subscriber) that measures latency",
    )
    parser.add_argument(
        "--py-spy",
        metavar="FILE",
        help="flood modes: sample golive with py-spy (all threads), raw stacks to FILE",
    )
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if args.mode == "all":
        if args.capture or args.profile or args.py_spy or args.publishers:
            parser.error("--capture/--profile/--py-spy/--publishers need a mode")
        print(format_table(run_ingest(Options(quick=args.quick)), "nginx-rtmp"))
        return
    with raised_fd_limit():
        sessions = templates()
        if args.capture:
            sessions = [t for t in sessions if t.name in args.capture]
            if not sessions:
                parser.error(f"no capture named {args.capture}")
        nginx = not args.no_nginx
        rows: list[Row] = []
        if args.mode in ("flood", "flood-long"):
            publishers = args.publishers or 16
            seconds = args.seconds or (1.5 if args.quick else 5.0)
            if args.mode == "flood-long":
                sessions = [extend(t, LONG_SESSION_BYTES) for t in sessions]
            rows = flood_rows(
                f"ingest.{args.mode}{publishers}",
                flood(
                    sessions,
                    publishers=publishers,
                    duration=seconds,
                    with_nginx=nginx,
                    client_procs=args.client_procs,
                    profile=args.profile,
                    py_spy=args.py_spy,
                    latency=not args.no_latency,
                    label=args.mode,
                ),
            )
        elif args.mode == "captures":
            for template in sessions:
                rows += flood_rows(
                    f"ingest.flood[{template.name}]",
                    flood(
                        [template],
                        publishers=args.publishers or 16,
                        duration=args.seconds or 1.5,
                        with_nginx=nginx,
                        client_procs=args.client_procs,
                        latency=False,
                        label=f"flood {template.name}",
                    ),
                    detail=False,
                )
        else:
            publishers = args.publishers or (50 if args.quick else 200)
            rows = realtime_rows(
                f"ingest.realtime{publishers}",
                realtime(
                    sessions,
                    publishers=publishers,
                    steady=args.seconds or (3.0 if args.quick else 8.0),
                    with_nginx=nginx,
                    client_procs=args.client_procs,
                    rate=args.rate * 1e6 / 8,
                ),
            )
    print(format_table(rows, "nginx-rtmp"))
    if args.profile:
        _print_profile(args.profile)
    if args.py_spy:
        print(f"\ngolive server, py-spy samples ({args.py_spy}), top 15 by self time:")
        print(top_functions(args.py_spy))


def _print_profile(path: str, top: int = 15) -> None:
    print(f"\ngolive server, cProfile of the event-loop thread ({path}), top {top} by tottime:")
    print(top_cprofile(path, top))


if __name__ == "__main__":
    main()
