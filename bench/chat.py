"""Chat at scale: N chatters in one room, M messages/s into it, and what that costs the node
(`python -m bench.chat [--quick] [--clients N] [--rate M] [--seconds S] [--steps 1000,2000]`).

golive is the real server (`golive serve --no-transcode`, a state directory and an admin
listener of its own, a TOML [chat] table raising the per-address limits, since every chatter
comes from loopback); the load is bench/chat_load.py in a process of its own, so each
process's CPU is its own: N chatters join the stream's room (500/s, from loopback addresses
127.0.x.y, 16 per address), then M messages/s are sent by a rotating set of senders, each
within half the per-user limit (5 per 10 s), each message's text carrying its send time
(CLOCK_MONOTONIC ns, the same host's clock). Measured over the sending window:

- delivery latency p50/p95/p99 from send to every receiver, over every message and every
  receiver (not a sample; the sender receives its own message too, as its acknowledgement);
- lost: messages the server accepted that a chatter who stayed joined throughout did not
  receive (must be 0); chatters the server dropped (1013 too slow, or any other close) are
  counted apart, as are refusals (rate_limited and such: the bench's own mistake if any);
- golive's CPU (user+sys of the server process, % of one core) and RSS, the generator's CPU,
  this process's, and what else the machine did (kernel network work included).

The goal: 5,000 chatters with 50 messages/s, p99 <= 250 ms, 0 lost. Then the largest N the
node holds: N steps up (1000, 2000, 5000, 8000, then 3000 more each time) until p99 > 250 ms,
a loss, a drop or a refused join, stopping at the first failure; then the gap between the last
N held and the first failed is halved down to 1000 chatters. Each N runs on a fresh server,
after waiting (up to 90 s) for other work on the machine to end.

Video under chat: one real-time publisher (bench/hls.py's clip) and bench/hls_latency.py's
blocking-reload observer measure the ingest-to-listed latency of the LL-HLS parts, once with
the room empty, once with the goal's chat load running beside it, and, when the node did not
hold the goal, once with the most chatters it held (each on a fresh server): chat must not
move the video's latency.

`--quick`: 500 chatters for 10 s, and 8 s of video each way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import Options, Row, benchmark, exit_on_sigterm, format_table
from .hls import STREAM, Clip, GoliveHls, clip, log
from .hls_latency import DEFAULT_PART, LatencyRun, describe, match_frames, watch_publication
from .hls_latency import rows as latency_rows
from .servers import (
    REPO,
    CpuSampler,
    die_with_parent,
    end_child,
    machine_load,
)

GOAL_CLIENTS = 5000
GOAL_RATE = 50.0
P99_LIMIT_MS = 250.0
SECONDS = 20.0  # of sending, per run
VIDEO_SECONDS = 20.0
CONNECT_RATE = 500.0  # chatters connecting per second
# The room's defaults, raised: every chatter is on loopback. The per-user limit stays.
CHAT_SETTINGS: dict[str, object] = {"connections_per_address": 1000, "address_messages": 100_000}
IDLE = 0.25  # cores busy before a run above which the machine is someone else's too
# Cores busy beyond golive, the generator and this process during a run: the kernel's own
# share stays under a tenth of a core at these loads, so more is other work on the machine.
BUSY = 0.25
IDLE_WAIT = 90.0  # seconds to wait for other work to end before a run anyway
REFINE = 1000  # chatters: how closely the steps locate the limit once one fails
FD_HEADROOM = 200  # descriptors golive needs besides its chatters (listeners, store, logs)


def steps(limit: int) -> list[int]:
    """1000, 2000, 5000, 8000, then 3000 more each time, up to what the descriptors allow."""
    out = [1000, 2000, 5000, 8000]
    while out[-1] + 3000 <= limit:
        out.append(out[-1] + 3000)
    return [n for n in out if n <= limit]


def fd_limit() -> int:
    """Chatters one process can hold: each is a descriptor in the generator and in golive."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1] - FD_HEADROOM


class ChatGolive(GoliveHls):
    """`golive serve` with chat: a [chat] table in its config file, a stream key for the room
    (and the publisher), no transcoding, a state directory and an admin listener."""

    def __init__(self, chat: dict[str, object] | None = None, startup_timeout: float = 30.0
                 ) -> None:
        super().__init__({}, disk=False, startup_timeout=startup_timeout,
                         chat=CHAT_SETTINGS if chat is None else chat, state=True)

    def memory(self) -> tuple[float, float]:
        """(RSS, peak RSS) in MB, from /proc."""
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            fields[name] = value
        return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


class Generator:
    """bench/chat_load.py as a child process, its JSON events read as they come."""

    def __init__(self, port: int, clients: int, rate: float, seconds: float) -> None:
        self.args = [
            "--port", str(port), "--room", STREAM, "--clients", str(clients),
            "--rate", f"{rate:g}", "--seconds", f"{seconds:g}",
            "--connect-rate", f"{CONNECT_RATE:g}",
        ]  # fmt: skip
        self.clients = clients
        self.proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    async def __aenter__(self) -> Generator:
        # closed in __aexit__, like the servers' logs
        self._log = tempfile.TemporaryFile(prefix="golive-bench-chat-load-")  # noqa: SIM115
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.chat_load", *self.args, cwd=REPO,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=self._log,
            preexec_fn=die_with_parent,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await end_child(self.proc, self._log)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self, limit: int = 3000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-limit:]

    async def event(self, name: str, timeout: float) -> dict[str, Any]:
        """The next event called `name` (warnings on the way are logged)."""
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = await asyncio.wait_for(
                    self.proc.stdout.readline(), max(0.0, deadline - time.monotonic())
                )
            except TimeoutError:
                raise TimeoutError(f"no {name!r} from the load generator in {timeout:g} s; "
                                   f"its log:\n{self.log()}") from None
            if not line:
                raise RuntimeError(f"the load generator exited before {name!r}; its log:\n"
                                   f"{self.log()}")
            event = json.loads(line)
            if event.get("event") == "warning":
                log(f"load generator: {event.get('message')}")
            elif event.get("event") == name:
                return dict(event)

    async def stop(self) -> None:
        """End an open-ended run (--seconds 0)."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"stop\n")
        await self.proc.stdin.drain()

    def join_timeout(self) -> float:
        return self.clients / CONNECT_RATE + 60.0


@dataclass(frozen=True)
class Cpu:
    """Cores each process kept busy over a window (None: too short to tell)."""

    golive: float | None = None
    generator: float | None = None
    bench: float | None = None  # this process: the video publisher and observer, if any
    other: float | None = None  # the machine's busy time beyond those three

    @staticmethod
    def over(sampler: CpuSampler, start: float, end: float) -> Cpu:
        golive = sampler.utilisation("golive", start, end)
        generator = (sampler.utilisation("generator", start, end)
                     if "generator" in sampler.pids else 0.0)
        own = sampler.utilisation("self", start, end)
        machine = sampler.utilisation("machine", start, end)
        if golive is None or generator is None or own is None or machine is None:
            return Cpu(golive, generator, own)
        # /proc/stat and the processes' own counts tick apart: a few % below zero is none
        return Cpu(golive, generator, own, max(0.0, machine - golive - generator - own))


@dataclass
class ChatRun:
    clients: int
    rate: float
    report: dict[str, Any]
    cpu: Cpu = Cpu()  # over the sending window
    rss_mb: float = math.nan
    peak_rss_mb: float = math.nan
    golive_alive: bool = True
    busy_before: float = 0.0  # cores busy on the machine just before the run (other work)

    @property
    def latency(self) -> dict[str, float]:
        return dict(self.report.get("latency_ms") or {})

    @property
    def p99(self) -> float | None:
        return self.latency.get("p99")

    def failures(self) -> list[str]:
        r = self.report
        out = []
        if not self.golive_alive:
            out.append("golive died")
        if r["joined"] < self.clients:
            out.append(f"{self.clients - r['joined']} could not join ({r['join_failed']})")
        if r["lost"]:
            out.append(f"{r['lost']} messages lost by {r['lost_clients']} chatters")
        if r["dropped"]:
            out.append(f"chatters closed by the server, by close code: {r['dropped']}")
        if r["refused"]:
            out.append(f"messages refused: {r['refused']}")
        if r["unsent"]:
            out.append(f"{r['unsent']} sends skipped (the sender was gone)")
        if r["duplicates"]:
            out.append(f"{r['duplicates']} duplicate receptions")
        if self.p99 is None:
            out.append("no message delivered")
        elif self.p99 > P99_LIMIT_MS:
            out.append(f"p99 {self.p99:.0f} ms > {P99_LIMIT_MS:.0f} ms")
        return out

    @property
    def held(self) -> bool:
        return not self.failures()

    @property
    def busy(self) -> bool:
        """Other work shared the machine: a failure then says little about golive."""
        return self.busy_before > IDLE or (self.cpu.other or 0.0) > BUSY

    @property
    def label(self) -> str:
        return f"chat.{self.clients}x{self.rate:g}"

    def latency_text(self) -> str:
        points = self.latency
        if not points:
            return "-"
        return "/".join(f"{points[p]:.0f}" for p in ("p50", "p95", "p99"))

    def cpu_text(self) -> str:
        r = self.report

        def pct(value: float | None) -> str:
            return "-" if value is None else f"{value * 100:.0f}%"

        return (
            f"CPU (% of one core): golive {pct(self.cpu.golive)}, load generator "
            f"{pct(self.cpu.generator)} (its own count {r['cpu'] * 100:.0f}%: user "
            f"{r['cpu_user'] * 100:.0f}%, sys {r['cpu_system'] * 100:.0f}%), this process "
            f"{pct(self.cpu.bench)}, everything else incl. the kernel {pct(self.cpu.other)} "
            f"(before the run: {self.busy_before * 100:.0f}%); "
            f"golive RSS {self.rss_mb:.0f} MB (peak {self.peak_rss_mb:.0f})"
        )

    def summary(self) -> str:
        r = self.report
        window = r["window"][1] - r["window"][0]
        verdict = "held" if self.held else "FAILED: " + "; ".join(self.failures())
        if self.busy:
            verdict += " (on a busy machine)"
        lag = r.get("loop_lag_ms") or {}
        return (
            f"{self.label}: delivery p50/p95/p99/max {self.latency_text()}/"
            f"{self.latency.get('max', math.nan):.0f} ms; {r['receptions']} receptions of "
            f"{r['accepted']} messages by {r['kept_up']} chatters (expected {r['expected']}), "
            f"lost {r['lost']}, dropped {sum(r['dropped'].values())}; {r['frames'] / window:.0f} "
            f"frames/s to the chatters, {r['distinct_payloads']} distinct payloads; joins p50/p99 "
            f"{_pair(r['join_ms'], 'p50', 'p99')} ms over {r['ramp_seconds']} s; "
            f"{self.cpu_text()}; generator loop lag p99/max {_pair(lag, 'p99', 'max')} ms; "
            f"{verdict}"
        )


def _pair(points: dict[str, float] | None, a: str, b: str) -> str:
    if not points:
        return "-"
    return f"{points[a]:.0f}/{points[b]:.0f}"


def settle() -> float:
    """Wait (up to IDLE_WAIT s) for other work on this shared machine to end: the cores it
    still uses when the run starts (every figure here is CPU time or latency on 2 cores)."""
    deadline = time.monotonic() + IDLE_WAIT
    while (busy := machine_load(1.0)) > IDLE and time.monotonic() < deadline:
        pass
    if busy > IDLE:
        log(f"the machine is still {busy * 100:.0f}% of a core busy with other work")
    return busy


async def chat_run(clients: int, rate: float, seconds: float) -> ChatRun:
    """One N on a fresh server: join, send for `seconds`, report."""
    busy = settle()
    with ChatGolive() as golive:
        async with Generator(golive.http_port, clients, rate, seconds) as gen:
            with CpuSampler({"golive": golive.pid, "generator": gen.pid}) as sampler:
                await gen.event("joined", gen.join_timeout())
                await gen.event("sending", 10)
                await gen.event("sent", seconds + 30)
                rss = golive.memory()  # at the end of the window: everyone still joined
                report = await gen.event("report", 120)
            run = ChatRun(clients, rate, report, Cpu.over(sampler, *report["window"]),
                          rss_mb=rss[0], peak_rss_mb=rss[1], golive_alive=golive.alive(),
                          busy_before=busy)
    log(run.summary())
    return run


async def video_run(label: str, seconds: float, media: Clip, chat: tuple[int, float] | None
                    ) -> tuple[LatencyRun, ChatRun | None]:
    """The publisher and observer for `seconds` on a fresh server, with `chat` = (chatters,
    messages/s) in the room meanwhile (sending from before the publisher starts until after
    it stops), or with the room empty."""
    chat_figures = None
    busy = settle()
    async with contextlib.AsyncExitStack() as stack:
        golive = stack.enter_context(ChatGolive())
        pids = {"golive": golive.pid}
        gen = None
        if chat is not None:
            gen = await stack.enter_async_context(
                Generator(golive.http_port, chat[0], chat[1], 0))
            pids["generator"] = gen.pid
        sampler = stack.enter_context(CpuSampler(pids))
        if gen is not None:
            await gen.event("joined", gen.join_timeout())
            await gen.event("sending", 10)
        seen, publication, start, end = await watch_publication(
            golive, seconds, media, True, time.monotonic)
        if gen is not None and chat is not None:
            rss = golive.memory()
            await gen.stop()
            report = await gen.event("report", 120)
            chat_figures = ChatRun(*chat, report, Cpu.over(sampler, *report["window"]),
                                   rss_mb=rss[0], peak_rss_mb=rss[1],
                                   golive_alive=golive.alive(), busy_before=busy)
        if not golive.alive():
            raise RuntimeError(f"golive died; log:\n{golive.log()}")
    run = LatencyRun(label, DEFAULT_PART, seen, publication)
    # over the video's own window (the chat's is longer): what hls_latency's rows show
    during = Cpu.over(sampler, start, end)
    run.golive_cpu = math.nan if during.golive is None else during.golive
    run.other_cpu = math.nan if during.other is None else during.other
    match_frames(run)
    if chat_figures is not None:
        log(chat_figures.summary())
    return run, chat_figures


# ---- the table ----------------------------------------------------------------------------


def goal_rows(run: ChatRun) -> list[Row]:
    r = run.report
    note = run.summary()
    return [
        Row(run.label, "delivery p50/p95/p99 ms", run.latency_text(), golive_value=run.p99,
            note=note),
        Row(run.label, "lost / dropped chatters", f"{r['lost']}/{sum(r['dropped'].values())}"),
        Row(run.label, "golive CPU % of a core", _percent(run.cpu.golive),
            golive_value=run.cpu.golive),
        Row(run.label, "golive RSS MB", f"{run.rss_mb:.0f}", golive_value=run.rss_mb),
        Row(run.label, "load generator CPU % of a core", _percent(run.cpu.generator),
            note="the load generator's own process, not golive"),
    ]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}"


def largest_held(runs: dict[int, ChatRun]) -> tuple[int, ChatRun | None]:
    """The largest N held with every N below it held too, and the first N that failed."""
    held = 0
    for clients in sorted(runs):
        if not runs[clients].held:
            return held, runs[clients]
        held = clients
    return held, None


def step_rows(runs: dict[int, ChatRun], limit: int) -> list[Row]:
    held, failed = largest_held(runs)
    out = []
    for clients in sorted(runs):
        run = runs[clients]
        text = f"{run.latency_text()}, {run.report['lost']} lost"
        out.append(Row(f"chat.step.{clients}", "p50/p95/p99 ms, lost", text,
                       golive_value=run.p99,
                       note=("held; " if run.held else "FAILED; ") + run.cpu_text()))
    if failed is not None:
        why = f"first failure at {failed.clients}: {'; '.join(failed.failures())}"
    else:
        why = f"no failure in the steps tried, up to {held} (the descriptors allow {limit})"
    out.append(Row("chat.max", f"chatters held (p99 <= {P99_LIMIT_MS:.0f} ms, 0 lost)",
                   str(held) if failed is not None else f">={held}", golive_value=float(held),
                   note=why))
    return out


async def counted_run(clients: int, rate: float, seconds: float,
                      reruns: list[ChatRun]) -> ChatRun:
    """A run, and once more if it failed while other work shared the machine (the second
    counts; the first is kept in `reruns` for the notes)."""
    run = await chat_run(clients, rate, seconds)
    if not run.held and run.busy:
        log(f"{run.label} failed on a busy machine: running it again")
        reruns.append(run)
        run = await chat_run(clients, rate, seconds)
    return run


async def refine(runs: dict[int, ChatRun], rate: float, seconds: float,
                 reruns: list[ChatRun]) -> None:
    """Between the last N held and the first that failed, halve the gap down to REFINE
    chatters: the steps alone only bracket the limit."""
    while True:
        ordered = sorted(runs)
        failed = next((n for n in ordered if not runs[n].held), None)
        if failed is None:
            return
        held = max((n for n in ordered if n < failed), default=0)
        if failed - held <= REFINE:
            return
        middle = (held + failed) // 2 // 250 * 250 or failed // 2
        if middle in runs or middle <= held:
            return
        runs[middle] = await counted_run(middle, rate, seconds, reruns)


async def run_all(options: Options, clients: int, rate: float, seconds: float,
                  counts: list[int] | None, video: bool = True) -> list[Row]:
    out: list[Row] = []
    reruns: list[ChatRun] = []
    goal = await counted_run(clients, rate, seconds, reruns)
    out += goal_rows(goal)
    held = clients if goal.held else 0
    if counts:
        runs: dict[int, ChatRun] = {clients: goal} if clients in counts else {}
        for count in counts:
            run = runs.get(count) or await counted_run(count, rate, seconds, reruns)
            runs[count] = run
            if not run.held:
                break
        await refine(runs, rate, seconds, reruns)
        out += step_rows(runs, fd_limit())
        held = largest_held(runs)[0]
    if reruns:
        out.append(Row("chat.reruns", "runs repeated (busy machine)", str(len(reruns)),
                       note="; ".join(r.summary() for r in reruns)))
    if not video:
        return out
    media = clip()
    video_seconds = 8.0 if options.quick else VIDEO_SECONDS
    loads: list[tuple[int, float] | None] = [None, (clients, rate)]
    if 0 < held < clients:
        loads.append((held, rate))  # and the most chatters the node held: within its means
    for load in loads:
        label = "chat.video.alone" if load is None else f"chat.video.with-{load[0]}x{load[1]:g}"
        video_latency, figures = await video_run(label, video_seconds, media, load)
        log(describe(video_latency))
        out += latency_rows(video_latency)
        if figures is not None:
            out.append(Row(label, "chat delivery p50/p95/p99 ms", figures.latency_text(),
                           golive_value=figures.p99, note=figures.summary()))
    return out


@benchmark(
    "chat",
    "chat: N chatters in one room, M messages/s, delivery latency, and video latency beside",
    reference="none (golive figures only)",
)
def run_chat(options: Options) -> list[Row]:
    if options.quick:
        return asyncio.run(run_all(options, 500, GOAL_RATE, 10.0, None))
    return asyncio.run(run_all(options, GOAL_CLIENTS, GOAL_RATE, SECONDS, steps(fd_limit())))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chat",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="500 chatters for 10 s")
    parser.add_argument("--clients", type=int, help=f"chatters (default {GOAL_CLIENTS})")
    parser.add_argument("--rate", type=float, default=GOAL_RATE, help="messages/s")
    parser.add_argument("--seconds", type=float,
                        help=f"of sending, per run (default {SECONDS:g}, with --quick 10)")
    parser.add_argument("--steps", help="chatter counts to step through, e.g. 1000,2000; "
                        "'none' to skip (default: 1000,2000,5000,8000,... to the first failure)")
    parser.add_argument("--no-video", action="store_true", help="skip the video latency runs")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    options = Options(quick=args.quick)
    if args.quick and args.clients is None and args.steps is None and not args.no_video:
        print(format_table(run_chat(options)))
        return
    counts = steps(fd_limit()) if args.steps is None else (
        [] if args.steps == "none" else [int(n) for n in args.steps.split(",")])
    clients = args.clients or (500 if args.quick else GOAL_CLIENTS)
    seconds = args.seconds or (10.0 if args.quick else SECONDS)
    rows = asyncio.run(run_all(options, clients, args.rate, seconds, counts,
                               not args.no_video))
    print(format_table(rows))


if __name__ == "__main__":
    main()
