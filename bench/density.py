"""Live transcoding density: how many concurrent real-time 720p25 publishers, each transcoded
into a 3-rung ladder, one machine holds with no frame dropped, against as many ffmpeg CLI
processes doing the same ladder on the same real-time input (`python -m bench.density
[--quick] [--counts 4,5,6,7] [--seconds 30]`).

golive: the real server (`golive serve --open --ladder 480p@1200k --ladder 360p@700k --ladder
240p@300k`) as a subprocess; its transcode workers are its child processes. N publishers in
this process (asyncio, golive's own sans-IO `PublishClient`) each send the pre-encoded clip of
bench/hls.py (1280x720 25 fps H.264 ~2.5 Mb/s, B-frames, an IDR every 2 s, AAC) in real time,
every FLV tag when its timestamp falls due, looped, under its own stream key, for `--seconds`.
Then the server's /metrics say whether the ladder kept up: no unit shed by the transcoder
(`golive_transcode_dropped_units_total`) or the hub (`golive_hub_dropped_units_total`), no
segment lost by a rung (`golive_hls_gap_segments_total`), every rung encoded about as many
frames as were sent (up to the encoder's delay), and the publishers themselves never fell
behind. The encode speed is `golive_transcode_encode_speed_ratio` (media seconds per busy
second of a rung's thread: the headroom left), min/median over every stream's rungs.

Reference: N ffmpeg 9 CLI processes (imageio-ffmpeg's build), each reading the very same
bitstream (the clip written out as an FLV file, `--seconds` long) with `-re`, so its input
arrives in real time like a publisher's, and doing the ladder of bench/transcode.py
(`ffmpeg_command`: one decode, split=3, bicubic scale, libx264 veryfast, profile high,
scenecut=0:bframes=0, golive's x264 thread model, VBV at 1.1x/1.5x the bitrate, an IDR every
2 s) into mp4 files. An ffmpeg process holds real time if it exits cleanly with every frame encoded
and its final `speed=` (from `-progress`) is at least 0.99x: with `-re` it cannot run ahead,
so any shortfall is time it fell behind.

Why it is fair: the same source bitstream, the same ladder sizes, bitrates and libx264
settings, the same x264 thread model (frame threads), the same start stagger, and the same
machine, one side after the other in the same run. golive does strictly more (RTMP ingest,
LL-HLS packaging of the source and every rung, and the publishers' own CPU is on the same two
cores, while ffmpeg reads a file); ffmpeg's figure is what N independent CLI transcoders get.
CPU is the server and its children (or the ffmpeg processes) as a % of all cores, measured
after a warm-up, while every stream is live; the other load on the machine during each run is
in the notes, and a count that fails on a busy machine is run again once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from golive.ingest.keys import open_mode_name
from golive.transcode.ladder import Rung, parse_rung
from golive.transcode.pipeline import EncoderSettings

from . import Options, Row, benchmark, exit_on_sigterm, format_table
from .hls import (
    FPS,
    LOOP_MS,
    Clip,
    GoliveHls,
    Publication,
    Tag,
    clip,
    publish,
)
from .servers import die_with_parent, machine_load, process_cpu
from .transcode import LADDER, ffmpeg_command, reference_binaries

FULL_COUNTS = (4, 5, 6, 7)
QUICK_COUNTS = (2,)
FULL_SECONDS, QUICK_SECONDS = 30.0, 10.0
STAGGER = 0.2  # seconds between one publisher's (ffmpeg's) start and the next
WARMUP = 5.0  # seconds after the last start before CPU is measured (workers start, x264 fills)
DRAIN = 3.0  # seconds after the publishers stop before the last /metrics read
SCRAPE_EVERY = 2.0
ENCODER_DELAY = 1.5  # seconds of frames a rung may still hold when publishing stops
MAX_PUBLISHER_LAG = 0.5  # seconds: a publisher further behind its clock did not send in real time
REALTIME = 0.99  # ffmpeg's final speed= that counts as holding real time
BUSY = 0.15  # cores of other work during a run that make its outcome suspect
IDLE_WAIT = 10.0  # seconds to wait for a busy machine to calm down before a trial
CORES = os.cpu_count() or 1


@dataclass
class Config:
    """What the standalone command line can change (the runner uses the defaults)."""

    counts: tuple[int, ...] | None = None
    seconds: float | None = None
    ffmpeg: bool = True
    server_args: tuple[str, ...] = ()  # more `golive serve` options, e.g. --config FILE


CONFIG = Config()


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


# ---- CPU of a process tree -----------------------------------------------------------------


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process (/proc/PID/stat field 4)."""
    parents = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
    return parents


def tree_cpu(root: int) -> tuple[float, int]:
    """(CPU seconds of `root` and every descendant alive, how many transcode workers)."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    total, count, pending = 0.0, 0, [root]
    while pending:
        pid = pending.pop()
        with contextlib.suppress(OSError):
            total += process_cpu(pid)
            count += b"golive.transcode.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
        pending += children.get(pid, [])
    return total, count


_TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(CPU seconds all cores spent busy since boot, steal excluded; steal: time the
    hypervisor gave our virtual cores to someone else), from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    # user nice system idle iowait irq softirq steal
    busy = sum(v for i, v in enumerate(fields[:7]) if i not in (3, 4))
    return busy / _TICKS, fields[7] / _TICKS


@dataclass
class CpuWindow:
    """CPU seconds of the measured processes, this process and the machine, at two times:
    (time, measured, this process, machine busy without steal, steal)."""

    start: tuple[float, ...] | None = None
    end: tuple[float, ...] | None = None

    @staticmethod
    def now(measured: float) -> tuple[float, ...]:
        return (time.monotonic(), measured, process_cpu(os.getpid()), *machine_busy())

    @property
    def seconds(self) -> float:
        return self.end[0] - self.start[0] if self.start and self.end else 0.0

    def cores(self, index: int) -> float | None:
        if not self.start or not self.end or self.seconds <= 0:
            return None
        return (self.end[index] - self.start[index]) / self.seconds

    @property
    def measured(self) -> float | None:
        return self.cores(1)

    @property
    def own(self) -> float | None:
        return self.cores(2)

    @property
    def other(self) -> float | None:
        """Cores busy with anything but the measured processes and this one (the kernel's
        network work on loopback included: for golive that is part of its cost)."""
        measured, own, machine = self.cores(1), self.cores(2), self.cores(3)
        if measured is None or own is None or machine is None:
            return None
        return max(0.0, machine - measured - own)

    @property
    def steal(self) -> float | None:
        return self.cores(4)


# ---- one trial -----------------------------------------------------------------------------


@dataclass
class Trial:
    side: str  # "golive" or the ffmpeg label
    count: int
    seconds: float
    busy_before: float  # cores busy in the second before the trial
    held: bool = False
    speeds: list[float] = field(default_factory=list)  # per rung (golive) or process (ffmpeg)
    cpu: CpuWindow = field(default_factory=CpuWindow)
    problems: list[str] = field(default_factory=list)
    details: str = ""
    dropped: int = 0  # golive: units shed by the transcoder and the hub
    gaps: int = 0  # golive: segments a rung lost
    frames_short: int = 0  # frames a rung (ffmpeg output) encoded fewer than sent, worst
    queue_max: float = 0.0  # golive: worst source units waiting in a worker
    publisher_lag: float = 0.0  # golive: worst publisher lag behind its clock, seconds
    log_tail: str = ""

    @property
    def busy(self) -> bool:
        other, steal = self.cpu.other, self.cpu.steal
        return (self.busy_before > BUSY or (other is not None and other > BUSY)
                or (steal is not None and steal > BUSY))

    def speed_text(self) -> str:
        if not self.speeds:
            return "-"
        return f"{min(self.speeds):.2f}/{statistics.median(self.speeds):.2f}"

    def cpu_percent(self) -> float | None:
        measured = self.cpu.measured
        return None if measured is None else measured / CORES * 100

    def load(self) -> str:
        """How busy the machine was besides what is measured."""
        other, steal = self.cpu.other, self.cpu.steal
        return (f"other load {'-' if other is None else f'{other:.2f}'} cores, steal "
                f"{'-' if steal is None else f'{steal:.2f}'}, {self.busy_before:.2f} before")

    def summary(self) -> str:
        cpu = self.cpu_percent()
        text = (
            f"{self.side} x{self.count}: {'held' if self.held else 'FAILED'}; speed min/median "
            f"{self.speed_text()}x; CPU {'-' if cpu is None else f'{cpu:.0f}'}% of {CORES} "
            f"cores (this process {100 * (self.cpu.own or 0) / CORES:.0f}%); {self.load()}"
        )
        if self.details:
            text += f"; {self.details}"
        return text + "".join(f"; {p}" for p in self.problems)


# ---- golive ---------------------------------------------------------------------------------


Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse_metrics(text: str) -> Samples:
    """Sample name -> [(labels, value)] of a Prometheus text exposition."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def _total(samples: Samples, name: str, streams: set[str] | None = None) -> float:
    return sum(
        value
        for labels, value in samples.get(name, [])
        if streams is None or labels.get("stream") in streams
    )


def _by(samples: Samples, name: str, streams: set[str]) -> dict[tuple[str, str], float]:
    """(stream, rendition) -> value of one metric, for the given streams."""
    return {
        (labels["stream"], labels.get("rendition", "")): value
        for labels, value in samples.get(name, [])
        if labels.get("stream") in streams
    }


async def _scrape(session: aiohttp.ClientSession, url: str) -> Samples | None:
    try:
        async with session.get(url) as response:
            if response.status != 200:
                return None
            return parse_metrics(await response.text())
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


async def _golive_trial(count: int, seconds: float, media: Clip, rungs: tuple[Rung, ...],
                        busy_before: float) -> Trial:
    trial = Trial("golive", count, seconds, busy_before)
    keys = [f"density-{count}-{i}" for i in range(count)]
    names = {open_mode_name(key) for key in keys}
    ladder_args = tuple(arg for rung in LADDER for arg in ("--ladder", rung))
    with GoliveHls({}, disk=False,
                   serve_args=("--open", *ladder_args, *CONFIG.server_args)) as server:
        url = f"http://127.0.0.1:{server.http_port}/metrics"
        publications = [Publication() for _ in keys]
        stops = [asyncio.Event() for _ in keys]
        started = time.monotonic()

        async def staggered(i: int) -> None:
            # publisher i: from STAGGER x i to STAGGER x i + seconds, like ffmpeg process i
            asyncio.get_running_loop().call_later(i * STAGGER + seconds, stops[i].set)
            await asyncio.sleep(i * STAGGER)
            await publish(server.port, stops[i], publications[i], media, keys[i])

        tasks = [asyncio.create_task(staggered(i)) for i in range(count)]
        window_start = started + (count - 1) * STAGGER + min(WARMUP, seconds / 3)
        window_end = started + seconds - 0.2  # every publisher is live until the first stops
        last: Samples | None = None
        sent_at_last: list[int] = []
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while (now := time.monotonic()) < window_end and server.alive():
                if trial.cpu.start is None:
                    if now < window_start:
                        await asyncio.sleep(window_start - now)
                        continue
                    trial.cpu.start = CpuWindow.now(tree_cpu(server.pid)[0])
                await asyncio.sleep(min(SCRAPE_EVERY, window_end - now))
                if scraped := await _scrape(session, url):
                    last = scraped
                    sent_at_last = [len(p.frame_times) for p in publications]
                    depth = _by(scraped, "golive_transcode_queue_depth", names).values()
                    trial.queue_max = max([trial.queue_max, *depth])
            measured, workers = tree_cpu(server.pid)
            trial.cpu.end = CpuWindow.now(measured)
            await asyncio.gather(*tasks)  # each stops at its own time
            await asyncio.sleep(DRAIN)
            after = await _scrape(session, url) if server.alive() else None
        if not server.alive():
            trial.problems.append(f"golive exited ({server.proc and server.proc.poll()})")
        trial.log_tail = server.log(2000).strip()
    trial.details = f"{workers} transcode worker process(es)"
    _judge_golive(trial, publications, names, rungs, last, sent_at_last, after)
    return trial


def _judge_golive(trial: Trial, publications: list[Publication], names: set[str],
                  rungs: tuple[Rung, ...], last: Samples | None, sent_at_last: list[int],
                  after: Samples | None) -> None:
    for p in publications:
        if p.error:
            trial.problems.append(f"publisher: {p.error}")
    trial.publisher_lag = max(p.max_lag for p in publications)
    if trial.publisher_lag > MAX_PUBLISHER_LAG:
        trial.problems.append(f"a publisher fell {trial.publisher_lag:.2f} s behind real time")
    if last is None:
        trial.problems.append("no /metrics read while publishing")
        return
    # The last read after the drain, when the streams are still listed (they are, for the
    # grace period): counters are then final and the frames sent complete.
    final = last
    sent = sum(sent_at_last)
    if after is not None and _by(after, "golive_transcode_frames_in_total", names):
        final, sent = after, sum(len(p.frame_times) for p in publications)
    trial.speeds = list(_by(last, "golive_transcode_encode_speed_ratio", names).values())
    shed = _total(final, "golive_transcode_dropped_units_total", names)
    hub = _total(final, "golive_hub_dropped_units_total", names)
    trial.dropped = int(shed + hub)
    trial.gaps = int(_total(final, "golive_hls_gap_segments_total", names))
    failures = _total(final, "golive_transcode_failures_total", names)
    frames_in = _by(final, "golive_transcode_frames_in_total", names)
    frames_out = _by(final, "golive_transcode_frames_out_total", names)
    source_in = sum(v for (_, r), v in frames_in.items() if r == "source")
    allowance = round(ENCODER_DELAY * FPS) * len(publications)
    short = {}
    for rung in rungs:
        out = sum(v for (_, r), v in frames_out.items() if r == rung.name)
        short[rung.name] = int(sent - out)
    trial.frames_short = max(short.values()) if short else 0
    kept_up = (sent - trial.frames_short) / sent if sent else 0.0
    restarts = _total(final, "golive_transcode_worker_restarts_total")
    streams_seen = {s for s, _ in frames_out}
    trial.details += (
        f"; {sent} frames sent, {int(source_in)} decoded, rungs short by "
        + "/".join(f"{v}" for v in short.values())
        + f" frames (allowed {allowance}; the slowest rung encoded {kept_up:.2f} of them); "
        f"shed {int(shed)}, hub drops {int(hub)}, gap segments {trial.gaps}; worker queue "
        f"max {trial.queue_max:.0f} units; publisher max lag "
        f"{trial.publisher_lag * 1e3:.0f} ms"
    )
    if streams_seen != names:
        trial.problems.append(f"{len(streams_seen)} of {len(names)} streams transcoded")
    if trial.dropped:
        trial.problems.append(f"{trial.dropped} units dropped (shed {int(shed)}, hub {int(hub)})")
    if trial.gaps:
        trial.problems.append(f"{trial.gaps} gap segments")
    if failures:
        trial.problems.append(f"{int(failures)} transcode failures")
    if restarts:
        trial.problems.append(f"{int(restarts)} worker restarts")
    if trial.frames_short > allowance:
        trial.problems.append(f"a rung is {trial.frames_short} frames short of those sent")
    if sent - source_in > allowance:
        trial.problems.append(f"{int(sent - source_in)} frames sent but not decoded")
    trial.held = not trial.problems


# ---- ffmpeg ---------------------------------------------------------------------------------


def write_flv(path: Path, media: Clip, seconds: float) -> int:
    """The clip as the publishers send it, `seconds` long, as an FLV file; returns its video
    frame count."""
    frames = 0
    with path.open("wb") as f:
        f.write(b"FLV\x01\x05\x00\x00\x00\x09" + bytes(4))

        def tag(t: Tag, timestamp: int) -> None:
            size = len(t.body)
            f.write(bytes([t.type]) + size.to_bytes(3, "big") + (timestamp & 0xFFFFFF).to_bytes(
                3, "big") + bytes([timestamp >> 24 & 0xFF]) + bytes(3) + t.body
                + (size + 11).to_bytes(4, "big"))

        for t in media.headers:
            tag(t, 0)
        end = round(seconds * 1000)
        for loop in range(int(end // LOOP_MS) + 1):
            for t in media.media:
                timestamp = loop * LOOP_MS + t.timestamp
                if timestamp >= end:
                    break
                tag(t, timestamp)
                frames += t.is_frame
    return frames


def realtime_command(ffmpeg: str, source: Path, rungs: tuple[Rung, ...],
                     outputs: list[Path]) -> list[str]:
    """bench.transcode's ladder command (golive's x264 thread model), reading in real time
    (`-re`) and reporting progress on stdout."""
    sliced = EncoderSettings().sliced_threads
    command = ffmpeg_command(ffmpeg, source, rungs, outputs, sliced)
    at = command.index("-i")
    return [command[0], "-progress", "pipe:1", "-stats_period", "1", *command[1:at], "-re",
            *command[at:]]


@dataclass
class FfmpegProgress:
    speed: float = 0.0  # the last speed= reported
    frames: int = 0
    ended: bool = False
    returncode: int | None = None
    stderr: str = ""


async def _run_ffmpeg(command: list[str], delay: float, progress: FfmpegProgress,
                      pids: list[int]) -> None:
    await asyncio.sleep(delay)
    proc = await asyncio.create_subprocess_exec(
        *command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=die_with_parent)
    pids.append(proc.pid)
    assert proc.stdout is not None and proc.stderr is not None
    errors = asyncio.create_task(proc.stderr.read())
    try:
        async for raw in proc.stdout:
            key, _, value = raw.decode(errors="replace").strip().partition("=")
            if key == "speed" and value.rstrip("x") not in ("", "N/A"):
                progress.speed = float(value.rstrip("x"))
            elif key == "frame" and value.isdigit():
                progress.frames = int(value)
            elif key == "progress" and value == "end":
                progress.ended = True
        progress.returncode = await proc.wait()
        progress.stderr = (await errors).decode(errors="replace")[-1000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _ffmpeg_trial(label: str, ffmpeg: str, count: int, seconds: float, source: Path,
                        frames: int, rungs: tuple[Rung, ...], work: Path,
                        busy_before: float) -> Trial:
    trial = Trial(label, count, seconds, busy_before)
    progress = [FfmpegProgress() for _ in range(count)]
    pids: list[int] = []
    commands = []
    for i in range(count):
        out = work / f"ffmpeg-{count}-{i}"
        out.mkdir(parents=True, exist_ok=True)
        commands.append(realtime_command(ffmpeg, source, rungs,
                                         [out / f"{r.name}.mp4" for r in rungs]))
    started = time.monotonic()
    tasks = [asyncio.create_task(_run_ffmpeg(c, i * STAGGER, p, pids))
             for i, (c, p) in enumerate(zip(commands, progress, strict=True))]

    def measured() -> float:
        total = 0.0
        for pid in pids:
            with contextlib.suppress(OSError):
                total += process_cpu(pid)
        return total

    window_start = started + (count - 1) * STAGGER + min(WARMUP, seconds / 3)
    window_end = started + seconds - 1.0  # every process is running until the first ends
    await asyncio.sleep(max(0.0, window_start - time.monotonic()))
    trial.cpu.start = CpuWindow.now(measured())
    await asyncio.sleep(max(0.0, window_end - time.monotonic()))
    if not any(t.done() for t in tasks):
        trial.cpu.end = CpuWindow.now(measured())
    else:
        trial.cpu.start = None  # a process ended early: no like-for-like window
    await asyncio.gather(*tasks)
    trial.speeds = [p.speed for p in progress]
    trial.frames_short = max(frames - p.frames for p in progress)
    for i, p in enumerate(progress):
        if p.returncode != 0:
            trial.problems.append(f"process {i} exited {p.returncode}: {p.stderr.strip()}")
        elif not p.ended:
            trial.problems.append(f"process {i} reported no progress=end")
    if trial.frames_short > 0:
        trial.problems.append(f"a process encoded {trial.frames_short} frames fewer than sent")
    slow = [s for s in trial.speeds if s < REALTIME]
    if slow:
        trial.problems.append(f"{len(slow)} of {count} below {REALTIME}x real time")
    trial.held = not trial.problems
    trial.details = f"{frames} frames each, speed= " + " ".join(f"{s:.2f}" for s in trial.speeds)
    return trial


# ---- the search -----------------------------------------------------------------------------


@dataclass
class Search:
    side: str
    trials: dict[int, Trial] = field(default_factory=dict)  # the one that counts, per N
    reruns: list[Trial] = field(default_factory=list)  # first attempts on a busy machine

    @property
    def held(self) -> int:
        """The highest N held with every count below it held too; 0 if the first failed."""
        best = 0
        for count in sorted(self.trials):
            if not self.trials[count].held:
                break
            best = count
        return best

    @property
    def failed(self) -> int | None:
        return next((c for c in sorted(self.trials) if not self.trials[c].held), None)


def search(side: str, counts: tuple[int, ...], run: Callable[[int, float], Trial]) -> Search:
    """Try the counts upward until one fails (after one re-run, if the machine was busy);
    if the first count fails, try the counts below it down to 1 until one holds."""
    found = Search(side)

    def settle() -> float:
        """Wait (up to IDLE_WAIT s) for other work to end; returns the cores it still uses."""
        deadline = time.monotonic() + IDLE_WAIT
        while (busy := machine_load(1.0)) > BUSY and time.monotonic() < deadline:
            pass
        if busy > BUSY:
            log(f"the machine is {busy:.2f} cores busy before {side}'s trial")
        return busy

    def once(count: int) -> Trial:
        trial = run(count, settle())
        log(trial.summary())
        if not trial.held and trial.busy:
            log(f"{side} x{count} failed on a busy machine: running it again")
            found.reruns.append(trial)
            trial = run(count, settle())
            log(trial.summary())
        if not trial.held and trial.log_tail:
            log(f"golive log (tail):\n{trial.log_tail}")
        found.trials[count] = trial
        return trial

    for count in counts:
        if not once(count).held:
            break
    else:
        return found
    if found.held == 0 and min(counts) > 1:
        for count in range(min(counts) - 1, 0, -1):
            if once(count).held:
                break
    return found


def _held_text(found: Search, counts: tuple[int, ...]) -> str:
    if found.held == 0 and found.trials:
        return "0"
    if found.failed is None and found.trials:
        return f">={max(found.trials)}"
    return str(found.held)


def _rows(golive: Search, ffmpeg: Search | None, counts: tuple[int, ...]) -> list[Row]:
    ref_label = ffmpeg.side if ffmpeg else "ffmpeg"
    def tried(found: Search) -> str:
        return ", ".join(f"{c}:{'ok' if t.held else 'fail'}{' (busy machine)' if t.busy else ''}"
                         for c, t in sorted(found.trials.items()))

    note = (
        f"held = no unit shed (transcoder, hub), no gap segment, every rung encoded the frames "
        f"sent, publishers on time; {ref_label}: final speed= >= {REALTIME}x with every frame. "
        f"Tried: golive {tried(golive)}"
    )
    if ffmpeg:
        note += f"; {ref_label} {tried(ffmpeg)}"
    reruns = golive.reruns + (ffmpeg.reruns if ffmpeg else [])
    if reruns:
        note += "; re-run on a busy machine: " + ", ".join(f"{t.side} x{t.count}" for t in reruns)
    rows = [Row(
        "transcode.density", "720p publishers held (3-rung ladder)",
        _held_text(golive, counts), _held_text(ffmpeg, counts) if ffmpeg else "-",
        float(golive.held), float(ffmpeg.held) if ffmpeg and ffmpeg.held else None, note)]
    points = {golive.held, golive.failed, *((ffmpeg.held, ffmpeg.failed) if ffmpeg else ())}
    for count in sorted(c for c in points if c):
        ours = golive.trials.get(count)
        theirs = ffmpeg.trials.get(count) if ffmpeg else None
        if ours is None and theirs is None:
            continue
        name = f"transcode.density.x{count}"

        def state(t: Trial | None) -> str:
            return "-" if t is None else ("held" if t.held else "failed")

        notes = [f"golive {state(ours)}, {ref_label} {state(theirs)}"]
        notes += [t.summary() for t in (ours, theirs) if t is not None]
        rows.append(Row(
            name, "encode speed min/median (x)", ours.speed_text() if ours else "-",
            theirs.speed_text() if theirs else "-",
            note=("golive: media-s per busy-s of a rung thread (headroom); ffmpeg: final "
                  "speed= under -re (at most ~1)") + "; " + "; ".join(notes)))
        rows.append(Row(
            name, "dropped units / gap segments / frames short",
            f"{ours.dropped}/{ours.gaps}/{ours.frames_short}" if ours else "-",
            f"-/-/{theirs.frames_short}" if theirs else "-"))
        cpu_ours = ours.cpu_percent() if ours else None
        cpu_theirs = theirs.cpu_percent() if theirs else None
        busy = [f"{t.side}: {t.load()}" for t in (ours, theirs) if t is not None]
        rows.append(Row(
            name, f"CPU % of {CORES} cores",
            "-" if cpu_ours is None else f"{cpu_ours:.0f}",
            "-" if cpu_theirs is None else f"{cpu_theirs:.0f}", cpu_ours, cpu_theirs,
            "golive: server + transcode workers; " + "; ".join(busy)
            + (f"; golive's publishers (this process) "
               f"{100 * (ours.cpu.own or 0) / CORES:.0f}%" if ours else "")))
    return rows


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="golive-bench-density-") as name:
        yield Path(name)


@benchmark(
    "density",
    "concurrent real-time 720p25 publishers one machine transcodes to a 3-rung ladder "
    "with no drops, golive server vs N ffmpeg CLI processes",
    reference="ffmpeg 9 CLI processes (imageio-ffmpeg), -re input, same ladder and x264 settings",
)
def run_density(options: Options) -> list[Row]:
    counts = CONFIG.counts or (QUICK_COUNTS if options.quick else FULL_COUNTS)
    seconds = CONFIG.seconds or (QUICK_SECONDS if options.quick else FULL_SECONDS)
    rungs = tuple(parse_rung(text) for text in LADDER)
    started = time.monotonic()
    media = clip()
    log(f"clip: {media.source}, {media.frames_per_loop} frames per 16 s loop, "
        f"{media.bytes_per_loop * 8 / 16e6:.2f} Mb/s ({time.monotonic() - started:.0f} s); "
        f"{seconds:g} s per trial, counts {','.join(map(str, counts))}")

    def golive_attempt(count: int, busy: float) -> Trial:
        return asyncio.run(_golive_trial(count, seconds, media, rungs, busy))

    golive = search("golive", counts, golive_attempt)
    ffmpeg: Search | None = None
    binaries = reference_binaries()[:1] if CONFIG.ffmpeg else []
    if not binaries:
        log("no ffmpeg CLI (pip install imageio-ffmpeg==0.8.1): golive figures only")
    with _workdir() as work:
        if binaries:
            label, path = binaries[0]
            source = work / "source.flv"
            frames = write_flv(source, media, seconds)

            def ffmpeg_attempt(count: int, busy: float) -> Trial:
                trial = asyncio.run(_ffmpeg_trial(label, path, count, seconds, source, frames,
                                                  rungs, work, busy))
                for out in work.glob("ffmpeg-*"):
                    shutil.rmtree(out, ignore_errors=True)
                return trial

            ffmpeg = search(label, counts, ffmpeg_attempt)
    return _rows(golive, ffmpeg, counts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.density",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true",
                        help=f"N={','.join(map(str, QUICK_COUNTS))} for {QUICK_SECONDS:g} s")
    parser.add_argument("--counts", help="publisher counts to try, upward "
                        f"(default {','.join(map(str, FULL_COUNTS))})")
    parser.add_argument("--seconds", type=float,
                        help=f"seconds each trial publishes (default {FULL_SECONDS:g}, "
                        f"quick {QUICK_SECONDS:g})")
    parser.add_argument("--no-ffmpeg", action="store_true", help="golive only")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="pass ARG to `golive serve` (repeatable): e.g. "
                        "--server-arg=--config --server-arg=golive.toml")
    args = parser.parse_args(argv)
    CONFIG.server_args = tuple(args.server_arg)
    exit_on_sigterm()
    if args.counts:
        CONFIG.counts = tuple(sorted({int(c) for c in args.counts.split(",") if c.strip()}))
    CONFIG.seconds = args.seconds
    CONFIG.ffmpeg = not args.no_ffmpeg
    print(format_table(run_density(Options(quick=args.quick)), "ffmpeg-9 CLI"))


if __name__ == "__main__":
    main()
