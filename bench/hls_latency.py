"""Ingest-to-listed latency: from a video frame leaving the publisher to the playlist listing
the LL-HLS part, or the segment, that holds it (`python -m bench.hls_latency [--quick]`).

One real-time publisher (bench/hls.py: 720p25, 2 s GOP, ~2.5 Mb/s) sends to golive (default
in-memory store), while an observer in the same process follows the media playlist with
blocking reloads: it always asks for the next part (`_HLS_msn=M&_HLS_part=N+1`; without
parts, for the next segment) and notes when each response arrives. A part's (segment's)
listing time is when the first response that lists it arrived; both clocks are this
process's CLOCK_MONOTONIC. Which frames a part holds comes from the part itself: the video
samples of its fMP4 fragment (trun sample counts), counted from the stream's first part, so
frame i of the publisher is sample i (their tfdt agrees: sample i starts at i x 40 ms).

Every frame gives one latency: listing time of its part (segment) minus the time the publisher
wrote it. So a frame early in a part also waits for the rest of the part to be captured; the
"newest frame" figure in the notes is that part's last frame, which is the packaging delay
alone. The first segment (start-up) and anything listed after the publisher stopped (cut by
the unpublish) are left out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp

from golive.packager.config import HlsConfig

from . import Options, Row, benchmark, exit_on_sigterm, format_table
from .hls import (
    Clip,
    GoliveHls,
    Listing,
    Publication,
    clip,
    log,
    parse_playlist,
    percentiles,
    publish,
    video_samples,
    video_track_id,
)
from .servers import machine_cpu, process_cpu

T = TypeVar("T")

DEFAULT_PART = HlsConfig().part_target
BUSY_MACHINE = 0.15  # cores of other work that make a measurement suspect


@dataclass
class Observation:
    """What one observer saw: when each part / complete segment was first listed."""

    low_latency: bool
    parts: dict[tuple[int, int], float] = field(default_factory=dict)
    segments: dict[int, float] = field(default_factory=dict)
    samples: dict[tuple[int, int] | int, int] = field(default_factory=dict)  # video samples
    requests: int = 0
    early: int = 0  # blocking responses that did not list what was asked for
    statuses: Counter[int] = field(default_factory=Counter)
    fetch_errors: int = 0
    first_listed: float = math.nan


async def _fetch_files(
    session: aiohttp.ClientSession,
    base: str,
    queue: asyncio.Queue[tuple[int, int] | int | str],
    seen: Observation,
) -> None:
    """Fetch each newly listed part (segment) and count its video samples."""
    track_id = None
    while True:
        item = await queue.get()
        try:
            if isinstance(item, str):
                uri = item
            elif isinstance(item, tuple):
                uri = f"part-{item[0]}.{item[1]}.m4s"
            else:
                uri = f"seg-{item}.m4s"
            async with session.get(base + uri) as response:
                data = await response.read()
                if response.status != 200:
                    raise aiohttp.ClientError(f"{uri}: HTTP {response.status}")
            if isinstance(item, str):
                track_id = video_track_id(data)
            elif track_id is not None:
                seen.samples[item] = video_samples(data, track_id)
        except (aiohttp.ClientError, ValueError):
            seen.fetch_errors += 1
        finally:
            queue.task_done()


async def observe(base: str, seen: Observation) -> None:
    """Follow the media playlist with blocking reloads until cancelled."""
    url = base + "index.m3u8"
    queue: asyncio.Queue[tuple[int, int] | int | str] = asyncio.Queue()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        fetcher = asyncio.create_task(_fetch_files(session, base, queue, seen))
        params: dict[str, str] | None = None
        asked: tuple[int, int | None] | None = None
        init = None
        try:
            while True:
                try:
                    async with session.get(url, params=params) as response:
                        body = await response.text()
                        arrived = time.monotonic()
                        status = response.status
                except aiohttp.ClientError:
                    status, body, arrived = 0, "", time.monotonic()
                seen.requests += 1
                seen.statuses[status] += 1
                if status != 200:
                    # 404 before the broadcast exists; anything else is counted and retried
                    await asyncio.sleep(0.01)
                    continue
                listing = parse_playlist(body)
                if listing.init and listing.init != init:
                    init = listing.init
                    queue.put_nowait(init)
                for key in listing.parts:
                    if key not in seen.parts:
                        seen.parts[key] = arrived
                        queue.put_nowait(key)
                for msn in listing.segments:
                    if msn not in seen.segments:
                        seen.segments[msn] = arrived
                        if not seen.low_latency:
                            queue.put_nowait(msn)
                if math.isnan(seen.first_listed) and (listing.parts or listing.segments):
                    seen.first_listed = arrived
                if asked is not None and not _lists(listing, *asked):
                    seen.early += 1
                if seen.low_latency and listing.parts:
                    msn, index = max(listing.parts)
                    asked = (msn, index + 1)
                    params = {"_HLS_msn": str(msn), "_HLS_part": str(index + 1)}
                elif not seen.low_latency and listing.segments:
                    asked = (max(listing.segments) + 1, None)
                    params = {"_HLS_msn": str(asked[0])}
                else:
                    asked, params = None, None
                    await asyncio.sleep(0.01)  # nothing listed yet: poll
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queue.join(), 10.0)
            fetcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetcher


def _lists(listing: Listing, msn: int, part: int | None) -> bool:
    if part is None:
        return any(s >= msn for s in listing.segments)
    # a part index past the end of a complete segment means the next segment's first part
    return any(key >= (msn, part) for key in listing.parts)


@dataclass
class LatencyRun:
    label: str
    part_target: float | None  # None: classic (no parts)
    seen: Observation
    publication: Publication
    frames_per_part: float = math.nan
    part_latency: list[float] = field(default_factory=list)  # per frame, seconds
    part_newest: list[float] = field(default_factory=list)  # per part, its last frame
    segment_latency: list[float] = field(default_factory=list)
    segment_newest: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    golive_cpu: float = 0.0  # cores golive kept busy while publishing
    other_cpu: float = 0.0  # cores busy with anything but golive and this process


async def watch_publication(golive: GoliveHls, seconds: float, media: Clip,
                            low_latency: bool, mark: Callable[[], T]
                            ) -> tuple[Observation, Publication, T, T]:
    """A real-time publisher into `golive` for `seconds`, with the blocking-reload observer
    following it; what both saw, and `mark()` taken as the publishing window began and
    ended (the CPU counters to read over it)."""
    seen, publication, stop = Observation(low_latency), Publication(), asyncio.Event()
    observer = asyncio.create_task(observe(golive.base_url, seen))
    publisher = asyncio.create_task(publish(golive.port, stop, publication, media))
    before = mark()
    await asyncio.sleep(seconds)
    after = mark()
    stop.set()
    await publisher
    await asyncio.sleep(0.5)  # let the observer see (and fetch) what the unpublish cut
    observer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await observer
    return seen, publication, before, after


async def _run(hls: dict[str, object], seconds: float, media: Clip, label: str) -> LatencyRun:
    low_latency = bool(hls.get("low_latency", True))
    part_target = float(hls.get("part_target", DEFAULT_PART)) if low_latency else None  # type: ignore[arg-type]
    with GoliveHls(hls, disk=False) as golive:  # the default, in-memory store
        def mark() -> tuple[float, float, float, float]:
            return golive.cpu(), machine_cpu(), process_cpu(os.getpid()), time.monotonic()

        seen, publication, before, after = await watch_publication(
            golive, seconds, media, low_latency, mark)
        if not golive.alive():
            raise RuntimeError(f"golive died; log:\n{golive.log()}")
    run = LatencyRun(label, part_target, seen, publication)
    elapsed = after[3] - before[3]
    server, machine, own = ((b - a) / elapsed for a, b in zip(before[:3], after[:3], strict=True))
    run.golive_cpu, run.other_cpu = server, machine - server - own
    match_frames(run)
    return run


def match_frames(run: LatencyRun) -> None:
    """Give every frame the listing time of its part and of its segment."""
    seen, times = run.seen, run.publication.frame_times
    stopped = run.publication.stopped
    if run.publication.error:
        run.problems.append(f"publisher: {run.publication.error}")
    if seen.low_latency:
        units: list[tuple[int, int] | int] = sorted(seen.parts)  # type: ignore[arg-type]
    else:
        units = sorted(seen.segments)
    first = 0
    frame_ranges: dict[tuple[int, int] | int, tuple[int, int]] = {}
    expected_msn, expected_index = 0, 0
    for unit in units:
        if isinstance(unit, tuple):
            if unit == (expected_msn + 1, 0) and expected_index > 0:
                expected_msn, expected_index = unit
            if unit != (expected_msn, expected_index):
                run.problems.append(f"observer missed parts before {unit}: frames unmatched")
                break
            expected_index += 1
        elif unit != expected_msn:
            run.problems.append(f"observer missed segments before {unit}: frames unmatched")
            break
        else:
            expected_msn += 1
        count = seen.samples.get(unit)
        if count is None:
            run.problems.append(f"could not read {unit}: later frames unmatched")
            break
        frame_ranges[unit] = (first, first + count)
        first += count
    if first > len(times):
        run.problems.append(f"{first} video samples packaged but {len(times)} frames sent")
    # per segment: its frames are its parts' frames
    segment_ranges: dict[int, tuple[int, int]] = {}
    for unit, (start, end) in frame_ranges.items():
        msn = unit[0] if isinstance(unit, tuple) else unit
        low, high = segment_ranges.get(msn, (start, end))
        segment_ranges[msn] = (min(low, start), max(high, end))
    counted = [end - start for unit, (start, end) in frame_ranges.items() if unit != units[-1]]
    if counted and seen.low_latency:
        run.frames_per_part = sum(counted) / len(counted)

    def collect(listed: float, start: int, end: int, into: list[float], newest: list[float]):  # type: ignore[no-untyped-def]
        if end > len(times) or end <= start or listed > stopped:
            return
        into.extend(listed - times[i] for i in range(start, end))
        newest.append(listed - times[end - 1])

    for unit, (start, end) in frame_ranges.items():
        if isinstance(unit, tuple) and unit[0] > 0:
            collect(seen.parts[unit], start, end, run.part_latency, run.part_newest)
    for msn, (start, end) in segment_ranges.items():
        if msn > 0 and msn in seen.segments:
            collect(seen.segments[msn], start, end, run.segment_latency, run.segment_newest)
    if run.other_cpu > BUSY_MACHINE:
        run.problems.append(
            f"machine busy: {run.other_cpu * 100:.0f}% of a core used by other processes "
            "or the kernel during the run"
        )
    if seen.early:
        run.problems.append(
            f"{seen.early} of {seen.requests} blocking responses did not list what was asked"
        )
    bad = {s: n for s, n in seen.statuses.items() if s not in (200, 404)}
    if bad:
        run.problems.append(f"playlist responses other than 200/404: {bad}")
    if seen.fetch_errors:
        run.problems.append(f"{seen.fetch_errors} part/segment fetches failed")


def _ms(values: list[float]) -> str:
    p50, p95 = percentiles(values)
    return "-" if math.isnan(p50) else f"{p50 * 1e3:.0f}/{p95 * 1e3:.0f}"


def describe(run: LatencyRun) -> str:
    text = (
        f"{run.label}: part listed p50/p95 {_ms(run.part_latency)} ms (newest frame "
        f"{_ms(run.part_newest)}), segment listed {_ms(run.segment_latency)} ms (newest frame "
        f"{_ms(run.segment_newest)}); {len(run.publication.frame_times)} frames sent, "
        f"{len(run.seen.parts)} parts, {len(run.seen.segments)} segments, "
        f"{run.seen.requests} playlist requests, publisher max lag "
        f"{run.publication.max_lag * 1e3:.0f} ms"
    )
    return text + "".join(f"; {p}" for p in run.problems)


def rows(run: LatencyRun) -> list[Row]:
    out = []
    lag = (
        f"publisher max lag {run.publication.max_lag * 1e3:.0f} ms; golive CPU "
        f"{run.golive_cpu * 100:.1f}% of a core"
    )
    problems = "".join(f"; {p}" for p in run.problems)
    if run.part_target is not None:
        out.append(
            Row(
                run.label,
                "part listed p50/p95 ms",
                _ms(run.part_latency),
                note=(
                    f"per frame, {len(run.part_latency)} frames in {len(run.part_newest)} parts"
                    f" of {run.frames_per_part:.1f} frames ({run.frames_per_part * 40:.0f} ms);"
                    f" a part's newest frame: {_ms(run.part_newest)} ms; {lag}{problems}"
                ),
            )
        )
    out.append(
        Row(
            run.label,
            "segment listed p50/p95 ms",
            _ms(run.segment_latency),
            note=(
                f"per frame, {len(run.segment_latency)} frames in {len(run.segment_newest)} "
                f"segments; a segment's newest frame: {_ms(run.segment_newest)} ms"
                + ("" if run.part_target is not None else f"; {lag}{problems}")
            ),
        )
    )
    return out


def configurations(quick: bool) -> list[tuple[str, dict[str, object], float]]:
    """(label, [hls] settings, seconds of publishing)."""
    if quick:
        return [(f"hls.ll-part{DEFAULT_PART:g}", {}, 8.0)]
    return [
        (f"hls.ll-part{DEFAULT_PART:g}", {}, 24.0),
        ("hls.ll-part0.2", {"part_target": 0.2}, 12.0),
        ("hls.ll-part0.5", {"part_target": 0.5}, 12.0),
        ("hls.classic", {"low_latency": False}, 12.0),
    ]


@benchmark(
    "hls-latency",
    "HLS ingest-to-listed latency: LL-HLS parts and segments, blocking reload observer",
    reference="none (nginx-rtmp has no LL-HLS; golive figures only)",
)
def run_latency(options: Options) -> list[Row]:
    media = clip()
    log(
        f"clip: {media.source}, {media.frames_per_loop} frames and "
        f"{media.bytes_per_loop * 8 / 16e6:.2f} Mb/s per 16 s loop"
    )
    out: list[Row] = []
    for label, hls, seconds in configurations(options.quick):
        run = asyncio.run(_run(hls, seconds, media, label))
        log(describe(run))
        out += rows(run)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hls_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="one short run (default parts)")
    parser.add_argument("--part-target", type=float, help="only this part target, seconds")
    parser.add_argument("--classic", action="store_true", help="only classic (no parts)")
    parser.add_argument("--seconds", type=float, default=20.0, help="with --part-target/--classic")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if args.part_target is None and not args.classic:
        print(format_table(run_latency(Options(quick=args.quick))))
        return
    hls: dict[str, object] = {"low_latency": False} if args.classic else {}
    if args.part_target is not None:
        hls["part_target"] = args.part_target
    label = "hls.classic" if args.classic else f"hls.ll-part{args.part_target:g}"
    run = asyncio.run(_run(hls, args.seconds, clip(), label))
    log(describe(run))
    print(format_table(rows(run)))


if __name__ == "__main__":
    main()
