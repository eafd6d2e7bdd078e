"""Glass-to-glass latency read from the video itself (`python -m bench.glass [--quick]`).

Every frame of the clip carries its presentation index as a visual code: two rows of 16
large blocks across the top of the picture, the first row the 16 bits (a 12-bit index and a
4-bit checksum), the second their inverse. Blocks are 80x60 px at 720p and still 26x20 px
after the ladder's downscale to 426x240; x264 at ~2.5 Mb/s (and the ladder's rungs) keep
them black and white, and a block that is neither (a pair not clearly opposite) makes the
frame unreadable rather than misread.

The real-time publisher (`bench.hls.publish`, golive's own RTMP client) sends the clip
looped and notes when each frame went into the kernel. Headless Chromium (playwright-core,
`tests/browser/glass.mjs`) opens golive's real watch page `/watch/<name>`, whose hls.js
config is the one viewers get (origin/player.py), and reads the stamp of every frame it
presents (requestVideoFrameCallback, drawn into a canvas), with its expected display time on
the wall clock. glass-to-glass = presented - sent, both on this machine's clock. What it does
not include: the camera and the encoder's own capture and encode delay (the clip is
pre-encoded; a live x264 adds its lookahead and B-frame delay before the first byte), and the
display's scan-out after the compositor. With B-frames a frame is sent at its decode time,
up to a few frames before its presentation time, so the figure is a little conservative.

Beside it, what hls.js says of itself (`hls.latency`: its live edge estimate minus
currentTime), `waiting` events (stalls), level switches and dropped frames.

What hls.js (1.7) targets, from its latency-controller: `hls.latency` is its live edge
estimate (the playlist's last part end + the playlist's age) minus currentTime, and its
target is PART-HOLD-BACK in low-latency mode (HOLD-BACK otherwise), replaced by
liveSyncDuration(Count) when the page sets one, plus liveSyncOnStallIncrease per stall (for
the rest of the session). It starts at that target, but lands later by however long start-up
took, and it plays faster (maxLiveSyncPlaybackRate) only with more than 1 s buffered ahead:
at sub-second targets never, so it stayed late, or after a stall sped up to about 1.3 s and
no further. The watch page therefore catches up itself (origin/player.py, followLiveEdge).
liveMaxLatencyDuration near the target (a seek to the edge when behind) made it seek, stall
and seek again: dozens of stalls a minute.

`python -m bench.glass --sweep` measures the trade-off table (part target, hold-back, hls.js
alone). The default run also goes through golive's default ladder (the page picks a level;
on loopback it plays the top one); `rVFC` callbacks can miss a frame when the page's main
thread is busy, so "skipped" counts frames not seen, not necessarily not shown.

Another benchmark can measure against its own golive and publisher: publish
`stamped_clip()` with `bench.hls.publish` into it, then `await measure_glass(http_url,
stream, seconds, publication)`.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import functools
import json
import math
import os
import shutil
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from . import Options, Row, benchmark, exit_on_sigterm, format_table
from .hls import (
    FPS,
    SECRET,
    STREAM,
    Clip,
    GoliveHls,
    Publication,
    encode_clip,
    log,
    percentiles,
    publish,
)
from .servers import REPO, machine_cpu, machine_load

GLASS_SCRIPT = REPO / "tests" / "browser" / "glass.mjs"
CHROMIUM = Path(os.environ.get("GOLIVE_CHROMIUM", "/usr/bin/chromium"))

# ---- the stamp ---------------------------------------------------------------------------

BITS = 16  # blocks across the picture
PAYLOAD_BITS = 12  # the index; the other 4 bits are its checksum
ROWS = 2  # the bits, then their inverse
ROWS_PER_FRAME = 12  # a row is 1/12 of the picture's height
BLACK, WHITE = 16, 235  # video-range luma
STAMP_GEOMETRY = {"bits": BITS, "rows": ROWS, "rowsPerFrame": ROWS_PER_FRAME,
                  "payloadBits": PAYLOAD_BITS}  # what glass.mjs decodes with


def _checksum(index: int) -> int:
    total = 0xA  # not 0: an all-black band is not a valid stamp of index 0
    for shift in range(0, PAYLOAD_BITS, 4):
        total ^= (index >> shift) & 0xF
    return total


def stamp_bits(index: int) -> list[bool]:
    """The 16 bits of a stamp, left to right (least significant first)."""
    if not 0 <= index < 1 << PAYLOAD_BITS:
        raise ValueError(f"a stamp holds 0-{(1 << PAYLOAD_BITS) - 1}, not {index}")
    value = index | _checksum(index) << PAYLOAD_BITS
    return [bool(value >> bit & 1) for bit in range(BITS)]


def stamp(picture: np.ndarray, index: int) -> np.ndarray:
    """A copy of a yuv420p picture (`VideoFrame.to_ndarray()` layout: the Y plane, then U and
    V, as one (h * 3/2, w) array) with `index` stamped over its top rows, in grey (neutral
    chroma) so that no colour conversion shifts it."""
    out = picture.copy()
    height, width = out.shape[0] * 2 // 3, out.shape[1]
    band = height * ROWS // ROWS_PER_FRAME
    luma = out[:height]
    for column, bit in enumerate(stamp_bits(index)):
        left, right = column * width // BITS, (column + 1) * width // BITS
        for row in range(ROWS):
            on = bit != (row == 1)
            top, bottom = row * height // ROWS_PER_FRAME, (row + 1) * height // ROWS_PER_FRAME
            luma[top:bottom, left:right] = WHITE if on else BLACK
    quarter = height * width // 4  # one chroma plane
    for plane in range(2):
        chroma = out[height:].reshape(-1)[plane * quarter:(plane + 1) * quarter]
        chroma.reshape(height // 2, width // 2)[: band // 2 + 1] = 128
    return out


def read_stamp(luma: np.ndarray) -> int | None:
    """The index stamped in a picture's luma (any size: the blocks scale with it), or None
    when the band holds no valid stamp. The same decision as glass.mjs: the middle half of
    each block, each pair of blocks clearly opposite, the checksum right."""
    height, width = luma.shape
    value = 0
    for column in range(BITS):
        means = []
        for row in range(ROWS):
            top = row * height / ROWS_PER_FRAME
            cell_h, cell_w = height / ROWS_PER_FRAME, width / BITS
            left = column * cell_w
            block = luma[int(top + cell_h / 4):int(top + 3 * cell_h / 4),
                         int(left + cell_w / 4):int(left + 3 * cell_w / 4)]
            means.append(float(block.mean()))
        if abs(means[0] - means[1]) < 64:
            return None
        value |= int(means[0] > means[1]) << column
    index = value & ((1 << PAYLOAD_BITS) - 1)
    return index if value >> PAYLOAD_BITS == _checksum(index) else None


# ---- the stamped clip --------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def stamped_clip(width: int = 1280, height: int = 720) -> Clip:
    """`bench.hls.clip()` with every frame stamped with its index in the loop (0-399): the
    same 16 s loop, x264 veryfast with B-frames at ~2.5 Mb/s, a 2 s GOP, AAC."""
    return encode_clip(width, height, stamp, ", stamped")


def presentation_indices(media: Clip) -> list[int]:
    """For each video frame of the loop in the order it is sent (decode order), the index
    stamped in it: its presentation time (FLV timestamp + composition time) in frames."""
    times = []
    for tag in media.media:
        if tag.is_frame:
            composition = int.from_bytes(tag.body[2:5], "big", signed=True)
            times.append(tag.timestamp + composition)
    first = min(times)
    return [round((t - first) * FPS / 1000) for t in times]


def sent_times(publication: Publication, media: Clip) -> dict[int, list[float]]:
    """Stamp index -> when each frame carrying it was sent (every loop), on the wall clock
    (time.time()). The publisher notes CLOCK_MONOTONIC; the offset between the two clocks is
    taken now (NTP slews it by far less than a millisecond over a run)."""
    offset = time.time() - time.monotonic()
    order = presentation_indices(media)
    sent: dict[int, list[float]] = defaultdict(list)
    for k, moment in enumerate(list(publication.frame_times)):
        sent[order[k % len(order)]].append(moment + offset)
    return sent


# ---- one measurement ---------------------------------------------------------------------


@dataclass
class GlassResult:
    """What one watch page showed, after its warm-up."""

    latencies: list[float] = field(default_factory=list)  # glass-to-glass per frame, s
    moments: list[float] = field(default_factory=list)  # when each was presented (s, wall)
    stall_moments: list[float] = field(default_factory=list)  # `waiting` events (s, wall)
    hls_latencies: list[float] = field(default_factory=list)  # hls.latency at those frames
    indices: list[int] = field(default_factory=list)  # the stamps read, in presented order
    presented: int = 0  # frames presented after the warm-up
    unreadable: int = 0  # of those, frames whose stamp could not be read
    unmatched: int = 0  # stamps read that no sent frame explains
    skipped: int = 0  # frames never presented between two that were
    stalls: int = 0  # `waiting` events after the warm-up
    level_switches: int = 0  # changes of hls.currentLevel after the warm-up
    levels: list[int] = field(default_factory=list)  # heights of the levels played
    offered: list[int] = field(default_factory=list)  # heights of the levels in the master
    dropped: int = 0  # getVideoPlaybackQuality's dropped frames (whole page)
    fast: float = 0.0  # share of frames presented at playbackRate > 1 (catching up)
    target_latency: float | None = None  # hls.targetLatency at the end
    errors: list[str] = field(default_factory=list)  # hls.js error details (non-fatal too)
    fatal: str | None = None
    console: list[str] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(self.latencies) if self.latencies else math.nan

    def hls_median(self) -> float:
        return statistics.median(self.hls_latencies) if self.hls_latencies else math.nan

    def by_minute(self) -> str:
        """Median glass-to-glass per minute and the minutes' stalls, for long runs: does the
        latency creep up with each stall (hls.js raises its target per stall)?"""
        if not self.moments or self.moments[-1] - self.moments[0] < 120:
            return ""
        first = self.moments[0]
        minutes: dict[int, list[float]] = defaultdict(list)
        for moment, latency in zip(self.moments, self.latencies, strict=True):
            minutes[int((moment - first) // 60)].append(latency)
        stalls = [int((m - first) // 60) for m in self.stall_moments]
        return "; per minute: " + ", ".join(
            f"{statistics.median(v):.2f}" + (f" ({stalls.count(k)} stalls)" if k in stalls
                                             else "")
            for k, v in sorted(minutes.items()))

    def summary(self) -> str:
        p50, p95 = percentiles(self.latencies)
        lowest = min(self.latencies, default=math.nan)
        highest = max(self.latencies, default=math.nan)
        target = "-" if self.target_latency is None else f"{self.target_latency:.2f}"
        return (
            f"glass-to-glass p50 {p50:.3f} s, p95 {p95:.3f}, min {lowest:.3f}, max "
            f"{highest:.3f}; hls.latency p50 {self.hls_median():.3f} (target {target}); "
            f"{self.presented} frames presented ({self.unreadable} unreadable, "
            f"{self.unmatched} unmatched, {self.skipped} skipped, {self.dropped} dropped), "
            f"{self.stalls} stalls, {self.level_switches} level switches (played "
            f"{sorted(set(self.levels))} of {sorted(self.offered)}), "
            f"{self.fast * 100:.0f}% of frames at rate > 1"
            + (f", fatal {self.fatal}" if self.fatal else "")
            + (f", errors {sorted(set(self.errors))}" if self.errors else "")
            + self.by_minute()
        )


async def _run_glass_page(url: str, seconds: float, hls_config: dict[str, Any] | None
                          ) -> dict[str, Any]:
    """glass.mjs on one page: what it printed."""
    args = [str(GLASS_SCRIPT), "--chromium", str(CHROMIUM), "--seconds", str(seconds),
            "--stamp", json.dumps(STAMP_GEOMETRY)]
    if hls_config:
        args += ["--hls-config", json.dumps(hls_config)]
    node = await asyncio.create_subprocess_exec(
        "node", *args, url, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(node.communicate(), seconds + 60)
    except TimeoutError:
        node.kill()
        await node.wait()
        raise
    if node.returncode != 0:
        raise RuntimeError(f"glass.mjs exited {node.returncode}: "
                           + err.decode(errors="replace")[-3000:])
    return json.loads(out)


def judge(page: dict[str, Any], sent: dict[int, list[float]], warm_up: float, loop: int
          ) -> GlassResult:
    """Match each presented frame to the send of the frame it shows: the latest send of
    that stamp before the presentation (a loop is 16 s: any later send is another loop's)."""
    frames = page["frames"]
    result = GlassResult(dropped=page.get("dropped") or 0, errors=page.get("errors", []),
                         fatal=page.get("fatal"), target_latency=page.get("targetLatency"),
                         console=page.get("console", []), offered=page.get("levels", []))
    if not frames:
        return result
    start_ms = frames[0][1] + warm_up * 1000
    window = [f for f in frames if f[1] >= start_ms]
    result.presented = len(window)
    result.stall_moments = [m / 1000 for m in page.get("waiting", []) if m >= start_ms]
    result.stalls = len(result.stall_moments)
    previous_level, previous_index, fast, unread = None, None, 0, 0
    for index, presented_ms, _media, level, height, hls_latency, rate in window:
        if level is not None and level >= 0:
            if previous_level is not None and level != previous_level:
                result.level_switches += 1
            previous_level = level
        if height:
            result.levels.append(height)
        fast += rate is not None and rate > 1
        if index < 0:
            result.unreadable += 1
            unread += 1
            continue
        presented = presented_ms / 1000
        times = sent.get(index, [])
        at = bisect.bisect_right(times, presented)
        if at == 0:
            result.unmatched += 1
            continue
        if previous_index is not None:
            result.skipped += max(0, (index - previous_index) % loop - 1 - unread)
        previous_index, unread = index, 0
        result.indices.append(index)
        result.latencies.append(presented - times[at - 1])
        result.moments.append(presented)
        if hls_latency:
            result.hls_latencies.append(hls_latency)
    result.fast = fast / len(window) if window else 0.0
    return result


async def measure_glass(http_url: str, stream: str, seconds: float, publication: Publication,
                        *, media: Clip | None = None, query: str = "", warm_up: float = 5.0,
                        hls_config: dict[str, Any] | None = None) -> GlassResult:
    """Play `http_url`/watch/`stream` in Chromium for `seconds` against a running golive
    into which `publication` is being published (`bench.hls.publish` of `stamped_clip()`,
    or of `media`), and measure it; the first `warm_up` seconds of playback are left out.
    `hls_config`: hls.js settings laid over the watch page's own (for measuring others)."""
    page = await _run_glass_page(f"{http_url.rstrip('/')}/watch/{stream}{query}", seconds,
                                 hls_config)
    media = media or stamped_clip()
    return judge(page, sent_times(publication, media), warm_up, media.frames_per_loop)


# ---- the benchmark -----------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """One configuration to measure: golive's [hls] table, the ladder or not, and hls.js
    settings laid over the watch page's."""

    label: str
    hls: dict[str, object] = field(default_factory=dict)
    transcode: bool = True  # golive's default ladder (else the source rendition only)
    player: dict[str, Any] = field(default_factory=dict)


async def _wait_live(http_port: int, timeout: float = 20.0) -> None:
    """Until the master playlist is served: the page then starts at once (it would wait 3 s
    between tries otherwise)."""
    url = f"http://127.0.0.1:{http_port}/live/{STREAM}/index.m3u8"
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} was not served within {timeout:.0f} s")


async def run_setup(setup: Setup, seconds: float, warm_up: float) -> tuple[GlassResult, str]:
    """golive with `setup`, the stamped clip published in real time, the watch page played
    for `seconds`: the result and the machine's load while it ran."""
    media = stamped_clip()
    args = ("--key", f"{STREAM}={SECRET}", *(() if setup.transcode else ("--no-transcode",)))
    with GoliveHls(setup.hls, disk=False, serve_args=args) as golive:
        publication, stop = Publication(), asyncio.Event()
        publisher = asyncio.create_task(publish(golive.port, stop, publication, media))
        try:
            await _wait_live(golive.http_port)
            busy_before, cpu_before = machine_cpu(), golive.cpu()
            began = time.monotonic()
            result = await measure_glass(f"http://127.0.0.1:{golive.http_port}", STREAM,
                                         seconds, publication, media=media, warm_up=warm_up,
                                         hls_config=setup.player)
            elapsed = time.monotonic() - began
            load = (f"golive main process {(golive.cpu() - cpu_before) / elapsed * 100:.0f}% "
                    "of a core (the ladder runs in its workers), "
                    f"machine {(machine_cpu() - busy_before) / elapsed:.2f} of "
                    f"{os.cpu_count()} cores busy (browser, golive, publisher and others), "
                    f"publisher max lag {publication.max_lag * 1e3:.0f} ms")
        finally:
            stop.set()
            await publisher
        if publication.error:
            raise RuntimeError(f"publisher: {publication.error}; golive log:\n{golive.log()}")
    return result, load


def row(setup: Setup, result: GlassResult, load: str) -> Row:
    p50, p95 = percentiles(result.latencies)
    return Row(f"glass.{setup.label}", "glass-to-glass p50/p95 s", f"{p50:.2f}/{p95:.2f}",
               golive_value=p50, note=f"{result.summary()}; {load}")


def default_setups() -> list[Setup]:
    return [Setup("defaults")]


HLS_JS_ALONE = {"maxLiveSyncPlaybackRate": 1.5, "liveSyncOnStallIncrease": 1}
"""The watch page before bench.glass: hls.js's own catch-up (which the page's then leaves
alone) and its default target raise per stall."""


def sweep() -> list[Setup]:
    """The trade-off table: the part target (PART-HOLD-BACK is 3 parts) with the watch page
    as it is; hls.js alone at two of them; a hold-back of 2 parts (hls.js's liveSyncDuration
    takes the place of PART-HOLD-BACK in its target)."""
    setups = [Setup(f"part{p:g}", {"part_target": p}) for p in (0.2, 0.25, 0.333, 0.5)]
    setups += [Setup(f"part{p:g}-hlsjs-alone", {"part_target": p}, player=HLS_JS_ALONE)
               for p in (0.25, 0.333)]
    setups.append(Setup("part0.25-hold2", {"part_target": 0.25},
                        player={"liveSyncDuration": 0.48}))
    return setups


@benchmark(
    "glass",
    "glass-to-glass latency in hls.js (watch page, Chromium), read from stamped frames",
    reference="none (golive figures only)",
)
def run_glass(options: Options) -> list[Row]:
    if missing := browser_missing():
        log(f"glass: skipped, needs {', '.join(missing)}")
        return [Row("glass", "skipped", "needs " + ", ".join(missing))]
    seconds, warm_up = (20.0, 5.0) if options.quick else (60.0, 10.0)
    out = []
    for setup in default_setups():
        result, load = asyncio.run(run_setup(setup, seconds, warm_up))
        log(f"{setup.label}: {result.summary()}; {load}")
        out.append(row(setup, result, load))
    return out


def browser_missing() -> list[str]:
    """What the page needs that this machine lacks (`make player browser-deps`)."""
    missing = []
    if shutil.which("node") is None:
        missing.append("node")
    for package in ("hls.js", "playwright-core"):
        if not (REPO / "node_modules" / package / "package.json").is_file():
            missing.append(f"node_modules/{package} (`make player`)")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (`make browser-deps`)")
    return missing


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.glass", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one 20 s run at the defaults")
    parser.add_argument("--sweep", action="store_true", help="the trade-off table")
    parser.add_argument("--seconds", type=float, help="of playback per run (default 60)")
    parser.add_argument("--warm-up", type=float, default=10.0, help="seconds left out first")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration")
    parser.add_argument("--part-target", type=float, help="golive's [hls] part_target")
    parser.add_argument("--hls", type=json.loads, default={},
                        help="more of golive's [hls] table, JSON")
    parser.add_argument("--player", type=json.loads, default={},
                        help="hls.js settings over the page's, JSON")
    parser.add_argument("--no-transcode", action="store_true", help="the source rendition only")
    parser.add_argument("--label", help="the row's name")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if missing := browser_missing():
        parser.exit(2, f"needs {', '.join(missing)}\n")
    if args.quick and args.seconds is None:
        args.seconds, args.warm_up = 20.0, 5.0
    hls = {**args.hls, **({"part_target": args.part_target} if args.part_target else {})}
    if args.sweep:
        setups = sweep()
    else:
        label = args.label or ("defaults" if not (hls or args.player) else
                               "-".join(f"{k}{v}" for k, v in {**hls, **args.player}.items()))
        setups = [Setup(label, hls, not args.no_transcode, args.player)]
    log(f"machine {machine_load() * 100:.0f}% busy before (of {os.cpu_count()} cores x 100%)")
    out = []
    for setup in setups:
        for _ in range(args.repeat):
            result, load = asyncio.run(run_setup(setup, args.seconds or 60.0, args.warm_up))
            log(f"{setup.label}: {result.summary()}; {load}")
            out.append(row(setup, result, load))
    print(format_table(out), flush=True)


if __name__ == "__main__":
    main()
