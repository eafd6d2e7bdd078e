"""LL-HLS viewers one node holds: N hls.js-like players on one real-time 720p stream, and
whether every one of them stays within one part target + 0.5 s of live (`python -m
bench.viewers [--quick] [--counts 500,1000,1500,2000] [--ladder] [--seconds S]`).

golive is the real server (`golive serve --no-transcode`, or with `--ladder` the 3-rung ladder
bench/density.py transcodes into, 480p/360p/240p), a state directory and an admin listener of
its own; one real-time publisher in this process sends bench/hls.py's 720p25 clip (~2.5 Mb/s,
an IDR every 2 s); the viewers are bench/viewer_load.py in processes of their own (see its
docstring for what each viewer does, what "live" and "lag" are): they join at 200/s, then
are measured for `--seconds` once all have joined and warmed up. Each count runs on a fresh
server, after waiting (up to 20 s) for other work on the machine to end.

A count is held when every viewer joined, none errored out after hls.js's retries, every
viewer fetched every part listed in the window, in order, and each viewer's own p95 lag over
the window is within one part target + 0.5 s (0.82 s with golive's 0.32 s parts). The table
shows per count: held, lag p50/p95/p99 over every (viewer, part), golive's CPU (its process,
% of one core; with the ladder its transcode workers apart), its RSS, the generator's CPU
(all its processes) and the requests/s it made; the notes say the rest (what failed, the
playlist delay and part fetch split of the lag, the generator's event-loop lateness, the
machine's other load).

Other benchmarks use `run_viewers(counts, ladder=..., seconds=...)` and `largest_held(steps)`,
or `start_viewers(url, count)` to load an already running server while they measure
something else (glass-to-glass latency under load).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp

from . import Options, Row, benchmark, exit_on_sigterm, format_table
from .density import tree_cpu
from .hls import HLS_ONLY, SECRET, STREAM, Clip, GoliveHls, Publication, clip, log, publish
from .servers import (
    REPO,
    die_with_parent,
    end_child,
    machine_cpu,
    machine_load,
    process_cpu,
    thread_cpu,
)
from .transcode import LADDER
from .viewer_load import parse_master, parse_media

DEFAULT_COUNTS = (500, 750, 1000, 1500, 2000)
QUICK_COUNTS = (200,)
SECONDS, QUICK_SECONDS = 20.0, 8.0
RATE = 200.0  # viewers joining per second
IDLE = 0.25  # cores busy before a run above which the machine is someone else's too
IDLE_WAIT = 20.0  # seconds to wait for other work to end before a run anyway
BUSY = 0.25  # cores of other work during a run that make its outcome suspect
LIVE_TIMEOUT = 45.0  # seconds for the stream (and with the ladder every rung) to list parts


def serve_args(ladder: bool) -> tuple[str, ...]:
    """`golive serve` options: HLS of the source only, or with bench/density.py's ladder."""
    if not ladder:
        return HLS_ONLY
    return ("--key", f"{STREAM}={SECRET}", *(a for rung in LADDER for a in ("--ladder", rung)))


# ---- the generator as a child process -----------------------------------------------------


class ViewerLoad:
    """bench/viewer_load.py (its coordinator; it starts its workers), JSON events read as
    they come. `report` is set once the report was read."""

    def __init__(self, url: str, count: int, *, seconds: float = 0.0, rate: float = RATE,
                 spread: bool = False, processes: int = 1, warmup: float = 3.0,
                 extra: tuple[str, ...] = ()) -> None:
        self.args = [
            "--url", url, "--viewers", str(count), "--rate", f"{rate:g}",
            "--seconds", f"{seconds:g}", "--processes", str(processes),
            "--warmup", f"{warmup:g}", *(["--spread"] if spread else []), *extra,
        ]  # fmt: skip
        self.count, self.rate, self.seconds = count, rate, seconds
        self.proc: asyncio.subprocess.Process | None = None
        self.pids: list[int] = []  # the coordinator's and its workers'
        self.report: dict[str, Any] | None = None
        self._log: IO[bytes] | None = None

    async def __aenter__(self) -> ViewerLoad:
        # closed in __aexit__, like the servers' logs
        self._log = tempfile.TemporaryFile(prefix="golive-bench-viewer-load-")  # noqa: SIM115
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.viewer_load", *self.args, cwd=REPO,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=self._log,
            preexec_fn=die_with_parent, limit=1 << 24,
        )
        self.pids = list((await self.event("started", 30))["pids"])
        return self

    async def __aexit__(self, *exc: object) -> None:
        await end_child(self.proc, self._log)

    def log(self, limit: int = 3000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-limit:]

    async def event(self, name: str, timeout: float) -> dict[str, Any]:
        """The next event called `name`."""
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(),
                                              max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise TimeoutError(f"no {name!r} from the viewer load in {timeout:g} s; its "
                                   f"log:\n{self.log()}") from None
            if not line:
                raise RuntimeError(f"the viewer load exited before {name!r}; its log:\n"
                                   f"{self.log()}")
            event = json.loads(line)
            if event.get("event") == "report":
                self.report = event
            if event.get("event") == name:
                return dict(event)

    def join_timeout(self) -> float:
        return self.count / self.rate + 90.0

    async def stop(self) -> dict[str, Any]:
        """End an open-ended run (seconds 0) and read its report."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"stop\n")
        await self.proc.stdin.drain()
        return await self.event("report", 120)


@contextlib.asynccontextmanager
async def start_viewers(url: str, count: int, *, rate: float = RATE, spread: bool = False,
                        processes: int = 1, warmup: float = 3.0) -> AsyncIterator[ViewerLoad]:
    """`count` viewers on the master playlist at `url` (an already running server) for the
    length of the block: entered once every viewer joined and the warm-up ended (the
    generator's window starts then); on leaving, the window ends and `load.report` holds the
    generator's report (the block's own exception, if any, wins)."""
    async with ViewerLoad(url, count, rate=rate, spread=spread, processes=processes,
                          warmup=warmup) as load:
        await load.event("joined", load.join_timeout())
        await load.event("window", warmup + 30)
        yield load
        await load.stop()


# ---- one count on a fresh server ---------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """CPU counters at one moment: golive (its process, and with its transcode workers), the
    machine, this process."""

    t: float
    golive: float
    loop: float  # golive's main thread: its event loop, where HTTP is served
    tree: float
    machine: float
    own: float

    @staticmethod
    def take(pid: int) -> Mark:
        return Mark(time.monotonic(), process_cpu(pid), thread_cpu(pid)[0], tree_cpu(pid)[0],
                    machine_cpu(), process_cpu(os.getpid()))


@dataclass
class ViewerStep:
    viewers: int
    ladder: bool
    report: dict[str, Any]
    golive_cpu: float = math.nan  # cores: golive's process over the window
    loop_cpu: float = math.nan  # cores: its event loop's thread
    transcode_cpu: float = math.nan  # cores: its transcode workers (the ladder)
    other_cpu: float = math.nan  # cores: the rest of the machine beyond golive, load, us
    rss_mb: float = math.nan
    peak_rss_mb: float = math.nan
    busy_before: float = 0.0
    golive_alive: bool = True
    publisher: Publication = field(default_factory=Publication)

    @property
    def lag(self) -> dict[str, float]:
        return dict(self.report.get("lag_ms") or {})

    @property
    def generator_cpu(self) -> float:
        return float(self.report.get("cpu", math.nan))

    def failures(self) -> list[str]:
        r = self.report
        out = []
        if not self.golive_alive:
            out.append("golive died")
        if self.publisher.error:
            out.append(f"publisher: {self.publisher.error}")
        if r["joined"] < self.viewers:
            out.append(f"{self.viewers - r['joined']} viewers could not join")
        if r["failed"]:
            out.append(f"viewers errored out: {r['failed']}")
        if r["missed"]:
            out.append(f"{r['missed']} window parts never fetched by {r['missed_viewers']} "
                       "viewers")
        if r["late"]:
            out.append(f"{r['late']} viewers' p95 lag > {r['limit_ms']:.0f} ms (worst "
                       f"{r['viewer_p95_ms']['max_finite']} ms)")
        if r["out_of_order"] or r["skipped"]:
            out.append(f"{r['out_of_order']} parts out of order, {r['skipped']} skipped")
        if not all(r["parts"].values()):
            out.append(f"no part listed in the window: {r['parts']}")
        return out

    @property
    def held(self) -> bool:
        return bool(self.report.get("held")) and not self.failures()

    @property
    def busy(self) -> bool:
        return self.busy_before > IDLE or (self.other_cpu or 0.0) > BUSY

    @property
    def label(self) -> str:
        return f"viewers{'.ladder' if self.ladder else ''}.{self.viewers}"

    def us_per_request(self) -> float:
        """golive's CPU per request served: what a core of its own would make of it (the
        figure that other work on the machine moves least)."""
        rate = float(self.report["requests_per_s"])
        return self.golive_cpu / rate * 1e6 if rate else math.nan

    def lag_text(self) -> str:
        lag = self.lag
        return "/".join(f"{lag[p]:.0f}" for p in ("p50", "p95", "p99")) if lag else "-"

    def cells(self) -> str:
        """The table's figures: held; lag; golive CPU; RSS; generator CPU; requests/s."""
        r = self.report
        return (f"{'yes' if self.held else 'no'}; {self.lag_text()}; {_pct(self.golive_cpu)}; "
                f"{self.rss_mb:.0f}; {_pct(self.generator_cpu)}; {r['requests_per_s']:.0f}")

    def summary(self) -> str:
        r = self.report
        verdict = "held" if self.held else "FAILED: " + "; ".join(self.failures())
        if self.busy:
            verdict += " (on a busy machine)"
        ladder = f", its transcode workers {_pct(self.transcode_cpu)}" if self.ladder else ""
        window = r["window"][1] - r["window"][0]
        return (
            f"{self.label}: lag p50/p95/p99/max {self.lag_text()}/"
            f"{self.lag.get('max', math.nan):.0f} ms (limit {r['limit_ms']:.0f} ms per viewer's "
            f"p95; viewers' p95 median {r['viewer_p95_ms']['p50']} ms), of which playlist "
            f"delay p50/p95 {_pair(r['playlist_delay_ms'])} ms and part fetch "
            f"{_pair(r['fetch_ms'])} ms; {r['parts']} parts in {window:.0f} s; "
            f"{r['joined']}/{r['viewers']} joined, {len(r['failed'])} errored out, errors "
            f"{r['errors'] or 0}, {r['stuck']} stuck; {r['requests_per_s']:.0f} req/s, "
            f"{r['mb_per_s']:.0f} MB/s; CPU (% of one core): golive {_pct(self.golive_cpu)} "
            f"(its event loop's thread {_pct(self.loop_cpu)}; {self.us_per_request():.0f} us per "
            f"request, sends included){ladder}, viewer load "
            f"{_pct(self.generator_cpu)} (per process "
            f"{'/'.join(_pct(c) for c in r['cpu_processes'])}, the workers' loop lag p99/max "
            f"{', '.join(_pair(lag, 'p99', 'max') for lag in r['loop_lag_ms'])} ms), "
            f"everything else incl. the kernel {_pct(self.other_cpu)} (before: "
            f"{_pct(self.busy_before)}); golive RSS {self.rss_mb:.0f} MB (peak "
            f"{self.peak_rss_mb:.0f}); reference listed after its media's end (PDT) p50/p95 "
            f"{_pair(r['reference_listed_late_ms'])} ms; publisher max lag "
            f"{self.publisher.max_lag * 1e3:.0f} ms; {verdict}"
        )


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value * 100:.0f}%"


def _pair(points: dict[str, float] | None, a: str = "p50", b: str = "p95") -> str:
    if not points:
        return "-"
    return f"{points[a]:.0f}/{points[b]:.0f}"


def memory(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) of a process in MB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def settle() -> float:
    """Wait (up to IDLE_WAIT s) for other work on this shared machine to end: the cores it
    still uses when the run starts."""
    deadline = time.monotonic() + IDLE_WAIT
    while (busy := machine_load(1.0)) > IDLE and time.monotonic() < deadline:
        pass
    if busy > IDLE:
        log(f"the machine is still {busy * 100:.0f}% of a core busy with other work")
    return busy


async def wait_live(url: str, variants: int, timeout: float = LIVE_TIMEOUT) -> None:
    """Until the master playlist lists `variants` variants and each lists a part."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    listed = parse_master(await response.text(), url)
                if len(listed) >= variants:
                    ready = 0
                    for variant in listed:
                        async with session.get(url.split("/live/")[0] + variant.path) as r:
                            ready += bool(r.status == 200 and parse_media(await r.text()).keys)
                    if ready == len(listed):
                        return
            await asyncio.sleep(0.25)
    raise TimeoutError(f"{url} did not list {variants} variant(s) with parts in {timeout:g} s")


async def viewer_step(count: int, *, ladder: bool, seconds: float, media: Clip,
                      spread: bool = False, processes: int = 1) -> ViewerStep:
    busy = settle()
    publication, stop = Publication(), asyncio.Event()
    with GoliveHls({}, disk=False, serve_args=serve_args(ladder), state=True) as golive:
        publisher = asyncio.create_task(publish(golive.port, stop, publication, media))
        try:
            url = f"http://127.0.0.1:{golive.http_port}/live/{STREAM}/index.m3u8"
            await wait_live(url, 1 + len(LADDER) if ladder else 1)
            async with ViewerLoad(url, count, seconds=seconds, spread=spread,
                                  processes=processes) as load:
                await load.event("joined", load.join_timeout())
                await load.event("window", 30)
                before = Mark.take(golive.pid)
                await load.event("window_end", seconds + 30)
                after = Mark.take(golive.pid)
                rss = memory(golive.pid)
                report = await load.event("report", 120)
        finally:
            stop.set()
            await publisher
        alive = golive.alive()
    elapsed = after.t - before.t
    cores = {name: (getattr(after, name) - getattr(before, name)) / elapsed
             for name in ("golive", "loop", "tree", "machine", "own")}
    other = cores["machine"] - cores["tree"] - cores["own"] - float(report["cpu"])
    step = ViewerStep(count, ladder, report, golive_cpu=cores["golive"], loop_cpu=cores["loop"],
                      transcode_cpu=cores["tree"] - cores["golive"], other_cpu=max(0.0, other),
                      rss_mb=rss[0], peak_rss_mb=rss[1], busy_before=busy, golive_alive=alive,
                      publisher=publication)
    log(step.summary())
    return step


async def _run(counts: list[int], ladder: bool, seconds: float, spread: bool,
               processes: int, stop_after_failure: bool) -> list[ViewerStep]:
    media = clip()
    steps = []
    for count in counts:
        step = await viewer_step(count, ladder=ladder, seconds=seconds, media=media,
                                 spread=spread, processes=processes)
        steps.append(step)
        if stop_after_failure and not step.held:
            break
    return steps


def run_viewers(counts: list[int] | tuple[int, ...] | None = None, *, ladder: bool = False,
                seconds: float | None = None, quick: bool = False, spread: bool = False,
                processes: int = 1, stop_after_failure: bool = False) -> list[ViewerStep]:
    """Each count of viewers on a fresh server (with the ladder or not), in order."""
    counts = list(counts or (QUICK_COUNTS if quick else DEFAULT_COUNTS))
    seconds = seconds or (QUICK_SECONDS if quick else SECONDS)
    return asyncio.run(_run(counts, ladder, seconds, spread, processes, stop_after_failure))


def largest_held(steps: list[ViewerStep]) -> int:
    """The largest count held with every smaller count tried held too (0: none)."""
    held = 0
    for step in sorted(steps, key=lambda s: s.viewers):
        if not step.held:
            break
        held = step.viewers
    return held


def rows(steps: list[ViewerStep]) -> list[Row]:
    out = [Row(s.label, "held; lag p50/p95/p99 ms; golive CPU; RSS MB; load CPU; req/s",
               s.cells(), golive_value=s.lag.get("p95"), note=s.summary()) for s in steps]
    for ladder in sorted({s.ladder for s in steps}):
        mine = [s for s in steps if s.ladder == ladder]
        held = largest_held(mine)
        failed = next((s for s in sorted(mine, key=lambda s: s.viewers) if not s.held), None)
        why = (f"first failure at {failed.viewers}: {'; '.join(failed.failures())}"
               if failed else f"no failure up to {held}")
        out.append(Row(f"viewers{'.ladder' if ladder else ''}.max",
                       "viewers held (each viewer's p95 lag <= part target + 0.5 s)",
                       str(held) if failed else f">={held}", golive_value=float(held), note=why))
    return out


@benchmark(
    "viewers",
    "LL-HLS viewers one node holds: hls.js-like players on one 720p stream, lag behind live",
    reference="none (golive figures only)",
)
def run_viewers_bench(options: Options) -> list[Row]:
    """The default counts up to the first failure, without transcoding, then with the ladder
    (`--quick`: a smoke run without)."""
    steps = run_viewers(quick=options.quick, stop_after_failure=True)
    if not options.quick:
        steps += run_viewers(ladder=True, stop_after_failure=True)
    return rows(steps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.viewers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_COUNTS[0]} viewers for {QUICK_SECONDS:g} s")
    parser.add_argument("--counts", help="viewer counts, e.g. 500,1000,1500 (default "
                        + ",".join(map(str, DEFAULT_COUNTS)) + ")")
    parser.add_argument("--ladder", action="store_true",
                        help="transcode the 3-rung ladder too (" + ", ".join(LADDER) + ")")
    parser.add_argument("--spread", action="store_true",
                        help="spread the viewers over the variants (default: the highest)")
    parser.add_argument("--seconds", type=float, help=f"measured per count (default "
                        f"{SECONDS:g}, with --quick {QUICK_SECONDS:g})")
    parser.add_argument("--processes", type=int, default=1,
                        help="viewer load processes (when one saturates a core)")
    parser.add_argument("--stop-after-failure", action="store_true",
                        help="skip the larger counts once one fails")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    counts = [int(n) for n in args.counts.split(",")] if args.counts else None
    steps = run_viewers(counts, ladder=args.ladder, seconds=args.seconds, quick=args.quick,
                        spread=args.spread, processes=args.processes,
                        stop_after_failure=args.stop_after_failure)
    print(format_table(rows(steps)))


if __name__ == "__main__":
    main()
