"""Ladder transcoding throughput: golive's `LadderPipeline` against the ffmpeg CLI doing the
same ladder on the same content with the same libx264 settings, in the same run
(`python -m bench.transcode [--quick] [--ffmpeg PATH] [--second-ffmpeg PATH]`).

Content: 60 s (10 s with --quick) of 1280x720 at 25 fps H.264, ~3 Mb/s, an IDR every 50
frames: the Big Buck Bunny excerpt in /work/shared/media looped when present, else a
synthetic moving picture (gradients and noise, so the encoders have real work). It is encoded
once per run into a temporary directory, before anything is timed, and both sides read it.

Ladder: 480p@1200k, 360p@700k, 240p@300k (854x480, 640x360, 426x240); libx264 preset veryfast,
profile high, no B-frames, no scene-cut keyframes, an IDR every 2 s (where the source has
its keyframes), maxrate 1.1 x and bufsize 1.5 x the bitrate, bicubic scaling.

golive: the source's packets are demuxed into memory (not timed), then constructing the
pipeline, pushing every packet and `close()` are timed, in-process: wall time and the
process's CPU time (every thread). The ffmpeg CLI decodes once, splits to three
scale+libx264 outputs written to mp4; wall time and its CPU from getrusage(RUSAGE_CHILDREN).
Speed is media seconds per wall second (x real time); cost is CPU seconds per media second.

Why it is fair: both use the same x264 settings, the same decoded source, the same scaler and
IDR positions, and both are checked afterwards rather than trusted: output bitrate per rung
(payload bytes x 8 / media seconds) and PSNR against the source scaled straight to the rung's
size, computed the same way for both by the same ffmpeg's psnr filter, and the x264 option
strings both encoders wrote into their streams (SEI) are compared and differences noted.
The x264 builds differ (PyAV's wheel against the ffmpeg binary's static build); the SEI
shows the versions.

Noise: on a 2-core VM one run of either side varies by about 10% from run to run. So golive's
defaults and the main reference are timed in alternating pairs (`--repeats`, 3 by default),
and the rows give the median of each side, with every run's figure in the note.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from golive.media import MediaUnit, Track, TrackKind
from golive.packager.fmp4 import FragmentMuxer
from golive.transcode.ladder import Rung, parse_rung
from golive.transcode.pipeline import EncoderSettings, LadderPipeline, x264_params

from . import Options, Row, benchmark, exit_on_sigterm, format_table
from .servers import machine_cpu

CLIP = Path("/work/shared/media/bbb-720p25-5s.mp4")
WIDTH, HEIGHT, FPS = 1280, 720, 25
GOP = 50  # frames: the source's keyframes, and the IDRs every rung must make (2 s)
SOURCE_BITRATE = 3_000_000
LADDER = ("480p@1200k", "360p@700k", "240p@300k")
FULL_SECONDS, QUICK_SECONDS = 60, 10
FRAME_MS = 1000 // FPS
# x264 options that must agree for the comparison to be like for like (from the SEI).
COMPARED_X264 = (
    "threads", "sliced_threads", "lookahead_threads", "bframes", "keyint", "scenecut", "rc",
    "bitrate", "vbv_maxrate", "vbv_bufsize", "subme", "me", "ref", "rc_lookahead", "mbtree",
    "weightp", "trellis", "8x8dct", "deblock",
)


@dataclass
class Config:
    """What the standalone command line can change (the runner uses the defaults)."""

    ffmpeg: str | None = None  # the reference ffmpeg; None: imageio-ffmpeg's binary
    second_ffmpeg: str | None = None  # a second reference row; None: `ffmpeg` on PATH
    no_second: bool = False
    seconds: float | None = None
    variants: bool = True  # golive variants beyond the default settings
    repeats: int | None = None  # golive/reference pairs timed; None: 3 (quick: 1)


CONFIG = Config()


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


# ---- the source ---------------------------------------------------------------------------


def _clip_pictures() -> Iterator[np.ndarray]:
    """The clip's frames as yuv420p arrays, forever (decoded again on each loop)."""
    while True:
        with av.open(str(CLIP)) as source:
            for frame in source.decode(video=0):
                yield frame.reformat(WIDTH, HEIGHT, "yuv420p").to_ndarray()


def _synthetic_pictures() -> Iterator[np.ndarray]:
    """Moving gradients and noise: motion to search and texture to code."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    noise = [rng.integers(0, 24, (HEIGHT * 3 // 2, WIDTH), dtype=np.uint8) for _ in range(7)]
    i = 0
    while True:
        luma = 128 + 60 * np.sin((x + 6 * i) / 37) * np.cos((y - 3 * i) / 23) + (x - 4 * i) % 64
        chroma = np.full((HEIGHT // 2, WIDTH), 128, np.float32)
        chroma[:, : WIDTH // 2] += 40 * np.sin((x[::2, ::2] + 5 * i) / 29)
        chroma[:, WIDTH // 2 :] += 40 * np.cos((y[::2, ::2] + 2 * i) / 17)
        picture = np.vstack([np.clip(luma, 0, 231), np.clip(chroma, 0, 231)]).astype(np.uint8)
        yield picture + noise[i % len(noise)]
        i += 1


def make_source(path: Path, seconds: float) -> str:
    """Encode the source file; returns what its picture is."""
    if CLIP.exists():
        pictures, what = _clip_pictures(), f"{CLIP.name} looped"
    else:
        pictures, what = _synthetic_pictures(), "synthetic moving gradients + noise"
    frames = round(seconds * FPS)
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.bit_rate = SOURCE_BITRATE
        video.options = {  # B-frames as a live encoder (OBS/x264 defaults) sends them
            "preset": "veryfast", "g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0",
            "maxrate": "3300k", "bufsize": "4500k",
        }
        for i, picture in zip(range(frames), pictures, strict=False):
            frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
    return what


@dataclass(frozen=True)
class Source:
    path: Path
    track: Track
    units: tuple[tuple[MediaUnit, bool], ...]  # (unit, is a keyframe -> IDR in every rung)
    what: str

    @property
    def media_seconds(self) -> float:
        return len(self.units) / FPS


def demux(path: Path, what: str) -> Source:
    """The source's packets as golive units: ms timestamps, MP4 samples, avcC extradata."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        context = stream.codec_context
        track = Track(TrackKind.VIDEO, "h264", bytes(context.extradata or b""),
                      width=context.width, height=context.height, pix_fmt="yuv420p",
                      frame_rate=Fraction(FPS))
        units = []
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None or tb is None:
                continue
            pts = round(packet.pts * tb * 1000)
            dts = pts if packet.dts is None else round(packet.dts * tb * 1000)
            units.append((MediaUnit(TrackKind.VIDEO, dts, pts, packet.is_keyframe,
                                    bytes(packet)), packet.is_keyframe))
    return Source(path, track, tuple(units), what)


# ---- one transcode ------------------------------------------------------------------------


@dataclass
class RungOutput:
    path: Path
    frames: int
    payload_bytes: int
    keyframes: tuple[int, ...]  # frame indexes of the keyframes
    x264: str  # the options SEI libx264 wrote ("x264 - core ... - options: ...")
    psnr: float | None = None  # average over Y, U, V (ffmpeg's "average")
    psnr_y: float | None = None


@dataclass
class Run:
    label: str
    wall: float
    cpu: float
    media_seconds: float
    other_cpu: float  # cores busy with anything else during the run
    rungs: dict[str, RungOutput] = field(default_factory=dict)
    sliced: bool = True  # x264 thread model: sliced threads, or frame threads
    runs: str = ""  # when the figures are a median: each run's speed

    @property
    def speed(self) -> float:
        return self.media_seconds / self.wall

    @property
    def cpu_per_media_second(self) -> float:
        return self.cpu / self.media_seconds


def _x264_sei(data: bytes) -> str:
    match = re.search(rb"x264 - core [^\x00]*", data)
    return match.group().decode("ascii", "replace") if match else ""


def _x264_options(sei: str) -> dict[str, str]:
    _, _, options = sei.partition("options: ")
    return dict(item.split("=", 1) for item in options.split() if "=" in item)


def run_golive(source: Source, rungs: tuple[Rung, ...], settings: EncoderSettings,
               label: str, out_dir: Path) -> Run:
    units: dict[str, list[MediaUnit]] = {r.name: [] for r in rungs}
    tracks: dict[str, Track] = {}

    def output(name: str, item: Track | MediaUnit) -> None:
        if isinstance(item, Track):
            tracks[name] = item
        else:
            units[name].append(item)  # list.append is atomic: rung threads need no lock

    machine_before = machine_cpu()
    cpu_before = time.process_time()
    started = time.perf_counter()
    pipeline = LadderPipeline(source.track, rungs, settings, output)
    for unit, idr in source.units:
        pipeline.push(unit, idr)
    pipeline.close()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    other = max(0.0, (machine_cpu() - machine_before) - cpu) / wall
    run = Run(label, wall, cpu, source.media_seconds, other, sliced=settings.sliced_threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    for rung in rungs:
        rung_units = units[rung.name]
        muxer = FragmentMuxer([tracks[rung.name]])
        path = out_dir / f"{rung.name}.mp4"
        path.write_bytes(muxer.init_segment + muxer.mux_part((u, FRAME_MS) for u in rung_units))
        muxer.close()
        run.rungs[rung.name] = RungOutput(
            path, len(rung_units), sum(len(u.data) for u in rung_units),
            tuple(i for i, u in enumerate(rung_units) if u.keyframe),
            next((s for u in rung_units[:3] if (s := _x264_sei(u.data))), ""))
    return run


def ffmpeg_command(ffmpeg: str, source: Path, rungs: tuple[Rung, ...],
                   outputs: list[Path], sliced: bool) -> list[str]:
    """One decode, a split, and per rung scale + libx264 with golive's settings
    (`x264_params`) on the given thread model."""
    settings = replace(EncoderSettings(), sliced_threads=sliced)
    params = ":".join(x264_params(settings))
    sizes = [r.size_for(WIDTH, HEIGHT) for r in rungs]
    graph = f"[0:v]split={len(rungs)}" + "".join(f"[s{i}]" for i in range(len(rungs))) + ";"
    graph += ";".join(f"[s{i}]scale={w}:{h}:flags=bicubic[o{i}]" for i, (w, h) in enumerate(sizes))
    command = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
               "-i", str(source), "-filter_complex", graph]
    for i, (rung, path) in enumerate(zip(rungs, outputs, strict=True)):
        maxrate, bufsize = settings.vbv(rung)
        command += [
            "-map", f"[o{i}]", "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high",
            "-b:v", str(rung.bitrate), "-maxrate", str(maxrate),
            "-bufsize", str(bufsize), "-x264-params", params,
            "-g", "1000000", "-forced-idr", "1", "-force_key_frames", "expr:gte(t,n_forced*2)",
            "-fps_mode", "passthrough", "-an", "-f", "mp4", str(path),
        ]
    return command


def _read_mp4(path: Path) -> tuple[int, int, tuple[int, ...], str]:
    """(frames, payload bytes, keyframe indexes, x264 SEI) of an encoded rung."""
    frames = size = 0
    keyframes = []
    sei = ""
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            if packet.size == 0:
                continue
            if frames < 3 and not sei:
                sei = _x264_sei(bytes(packet))
            if packet.is_keyframe:
                keyframes.append(frames)
            frames += 1
            size += packet.size
    return frames, size, tuple(keyframes), sei


def run_ffmpeg(ffmpeg: str, source: Source, rungs: tuple[Rung, ...], label: str,
               out_dir: Path, sliced: bool) -> Run:
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = [out_dir / f"{r.name}.mp4" for r in rungs]
    command = ffmpeg_command(ffmpeg, source.path, rungs, outputs, sliced)
    machine_before = machine_cpu()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{label} failed ({result.returncode}): {result.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    other = max(0.0, (machine_cpu() - machine_before) - cpu) / wall
    run = Run(label, wall, cpu, source.media_seconds, other, sliced=sliced)
    for rung, path in zip(rungs, outputs, strict=True):
        run.rungs[rung.name] = RungOutput(path, *_read_mp4(path))
    return run


# ---- quality ------------------------------------------------------------------------------

_PSNR = re.compile(
    r"\[psnr@(?P<name>\w+) @ [^\]]*\] PSNR y:(?P<y>[\d.]+|inf) .*?average:(?P<avg>[\d.]+|inf)")


def measure_psnr(ffmpeg: str, source: Path, run: Run, rungs: tuple[Rung, ...]) -> None:
    """PSNR of each rung against the source scaled straight to the rung's size (bicubic),
    frames paired by timestamp from each file's start; one source decode for all rungs."""
    inputs = ["-i", str(source)]
    graph = [f"[0:v]setpts=PTS-STARTPTS,split={len(rungs)}"
             + "".join(f"[r{i}]" for i in range(len(rungs)))]
    maps = []
    for i, rung in enumerate(rungs):
        w, h = rung.size_for(WIDTH, HEIGHT)
        inputs += ["-i", str(run.rungs[rung.name].path)]
        graph.append(f"[r{i}]scale={w}:{h}:flags=bicubic[ref{i}]")
        graph.append(f"[{i + 1}:v]setpts=PTS-STARTPTS[d{i}]")
        graph.append(f"[d{i}][ref{i}]psnr@{rung.name}[p{i}]")
        maps += ["-map", f"[p{i}]", "-f", "null", "-"]
    command = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", *inputs,
               "-filter_complex", ";".join(graph), *maps]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"psnr of {run.label} failed: {result.stderr[-2000:]}")
    for match in _PSNR.finditer(result.stderr):
        rung_output = run.rungs.get(match["name"])
        if rung_output is not None:
            rung_output.psnr = float(match["avg"])
            rung_output.psnr_y = float(match["y"])


# ---- the benchmark ------------------------------------------------------------------------


def reference_binaries() -> list[tuple[str, str]]:
    """(label, path) of the ffmpeg CLIs to compare with; the first is the main reference."""
    found = []
    main = CONFIG.ffmpeg
    if main is None:
        try:
            import imageio_ffmpeg  # type: ignore[import-untyped]

            main = imageio_ffmpeg.get_ffmpeg_exe()
        except (ImportError, RuntimeError):
            main = None
    second = None if CONFIG.no_second else (CONFIG.second_ffmpeg or shutil.which("ffmpeg"))
    for path in (main, second):
        if path and all(os.path.realpath(path) != os.path.realpath(p) for _, p in found):
            found.append((f"ffmpeg-{_ffmpeg_version(path)}", path))
    return found


def _ffmpeg_version(path: str) -> str:
    text = subprocess.run([path, "-hide_banner", "-version"], capture_output=True, text=True,
                          check=False).stdout
    match = re.search(r"ffmpeg version n?(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else "unknown"


def golive_variants(quick: bool) -> list[tuple[str, EncoderSettings]]:
    """golive's settings, and the variants worth a row. Each is compared with the reference
    run on the same x264 thread model: frame threads (golive's and the ffmpeg CLI's
    default) or sliced threads (less delay per frame)."""
    default = EncoderSettings()
    variants = [("golive", default)]
    if CONFIG.variants:
        variants.append(("golive sliced-threads", replace(default, sliced_threads=True)))
        if not quick:
            variants.append(("golive no-cascade", replace(default, cascade=False)))
    return variants


def _describe(run: Run) -> str:
    rungs = ", ".join(
        f"{name} {r.payload_bytes * 8 / run.media_seconds / 1000:.0f} kb/s "
        f"{r.psnr if r.psnr is not None else float('nan'):.2f} dB"
        for name, r in run.rungs.items())
    return (f"{run.label}: {run.speed:.2f}x real time, {run.cpu_per_media_second:.2f} CPU-s "
            f"per media-s (wall {run.wall:.1f} s, cpu {run.cpu:.1f} s, others "
            f"{run.other_cpu:.2f} cores); {rungs}")


def _x264_differences(ours: RungOutput, theirs: RungOutput) -> str:
    a, b = _x264_options(ours.x264), _x264_options(theirs.x264)
    diffs = [f"{k} {a.get(k, '?')}/{b.get(k, '?')}" for k in COMPARED_X264 if a.get(k) != b.get(k)]
    return ", ".join(diffs)


def _rows(golive_runs: list[Run], references: list[Run], others: list[Run],
          rungs: tuple[Rung, ...]) -> list[Row]:
    """`references`: the main reference CLI on each thread model; `others`: further CLIs."""
    rows: list[Row] = []
    golive = golive_runs[0]

    def reference_for(run: Run) -> Run | None:
        return next((r for r in references if r.sliced == run.sliced), None)

    def ref_cells(run: Run | None, value: float | None, fmt: str) -> tuple[str, float | None]:
        if run is None or value is None:
            return "-", None
        return format(value, fmt), value

    for run in golive_runs:
        main_ref = reference_for(run)
        suffix = "" if run is golive else "." + run.label.removeprefix("golive ").replace(" ", "-")
        text, value = ref_cells(main_ref, main_ref and main_ref.speed, ".2f")
        note = f"wall {run.wall:.1f} s"
        if main_ref:
            note += f" vs {main_ref.label} {main_ref.wall:.1f} s"
        if run.runs and main_ref and main_ref.runs:
            note += f"; golive {run.runs}x, reference {main_ref.runs}x"
        note += f"; {run.media_seconds:.0f} s of media"
        if run.other_cpu > 0.15 or (main_ref and main_ref.other_cpu > 0.15):
            note += (f"; other load {run.other_cpu:.2f}"
                     + (f"/{main_ref.other_cpu:.2f}" if main_ref else "") + " cores (noisy)")
        rows.append(Row(f"transcode.ladder{suffix}", "x real time", f"{run.speed:.2f}", text,
                        run.speed, value, note))
        text, value = ref_cells(main_ref, main_ref and main_ref.cpu_per_media_second, ".2f")
        rows.append(Row(f"transcode.cpu{suffix}", "CPU-s per media-s",
                        f"{run.cpu_per_media_second:.2f}", text, run.cpu_per_media_second, value))
    for ref in others:
        rows.append(Row(f"transcode.ladder.vs-{ref.label}", "x real time", f"{golive.speed:.2f}",
                        f"{ref.speed:.2f}", golive.speed, ref.speed, f"wall {ref.wall:.1f} s"))
        rows.append(Row(f"transcode.cpu.vs-{ref.label}", "CPU-s per media-s",
                        f"{golive.cpu_per_media_second:.2f}", f"{ref.cpu_per_media_second:.2f}",
                        golive.cpu_per_media_second, ref.cpu_per_media_second))
    for rung in rungs:
        for run in golive_runs:
            main_ref = reference_for(run)
            ours = run.rungs[rung.name]
            suffix = "" if run is golive else "." + run.label.removeprefix("golive ").replace(
                " ", "-")
            theirs = main_ref.rungs[rung.name] if main_ref else None
            kbps = ours.payload_bytes * 8 / run.media_seconds / 1000
            ref_kbps = theirs.payload_bytes * 8 / main_ref.media_seconds / 1000 if (
                theirs and main_ref) else None
            notes = []
            if theirs and ours.frames != theirs.frames:
                notes.append(f"frames {ours.frames}/{theirs.frames}")
            if theirs and ours.keyframes != theirs.keyframes:
                notes.append(f"keyframes differ: {ours.keyframes[:6]} / {theirs.keyframes[:6]}")
            rows.append(Row(f"transcode.{rung.name}{suffix}.bitrate", "kb/s", f"{kbps:.0f}",
                            "-" if ref_kbps is None else f"{ref_kbps:.0f}", kbps, ref_kbps,
                            "; ".join(notes)))
            ref_psnr = theirs.psnr if theirs else None
            rows.append(Row(
                f"transcode.{rung.name}{suffix}.psnr", "PSNR dB (YUV avg)",
                "-" if ours.psnr is None else f"{ours.psnr:.2f}",
                "-" if ref_psnr is None else f"{ref_psnr:.2f}", ours.psnr, ref_psnr,
                "" if ours.psnr_y is None or not theirs or theirs.psnr_y is None
                else f"Y {ours.psnr_y:.2f}/{theirs.psnr_y:.2f} dB"))
    for run in golive_runs:
        main_ref = reference_for(run)
        if main_ref is None or (run is not golive and main_ref is reference_for(golive)):
            continue
        first = rungs[0].name
        diffs = _x264_differences(run.rungs[first], main_ref.rungs[first])
        versions = (f"x264 {_core(run.rungs[first].x264)} ({run.label}, PyAV) / "
                    f"{_core(main_ref.rungs[first].x264)} ({main_ref.label})")
        suffix = "" if run is golive else "." + run.label.removeprefix("golive ").replace(" ", "-")
        rows.append(Row(f"transcode.x264-settings{suffix}", "SEI options",
                        "same" if not diffs else "differ",
                        note=versions + ("; golive/ffmpeg: " + diffs if diffs else "")))
    return rows


def _core(sei: str) -> str:
    match = re.search(r"core (\d+(?: r\d+ \w+)?)", sei)
    return match.group(1) if match else "?"


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="golive-bench-transcode-") as name:
        yield Path(name)


@benchmark(
    "transcode",
    "ladder transcoding (480p/360p/240p libx264 veryfast) against the ffmpeg CLI, same settings",
    reference="ffmpeg 9 CLI (imageio-ffmpeg), same ladder and libx264 settings",
)
def run_transcode(options: Options) -> list[Row]:
    seconds = CONFIG.seconds or (QUICK_SECONDS if options.quick else FULL_SECONDS)
    rungs = tuple(parse_rung(text) for text in LADDER)
    binaries = reference_binaries()
    if not binaries:
        log("no ffmpeg CLI found (pip install imageio-ffmpeg==0.8.1): golive figures only")
    psnr_tool = binaries[0][1] if binaries else shutil.which("ffmpeg")
    with _workdir() as work:
        started = time.monotonic()
        what = make_source(work / "source.mp4", seconds)
        source = demux(work / "source.mp4", what)
        log(f"source: {what}, {len(source.units)} frames, "
            f"{source.path.stat().st_size * 8 / source.media_seconds / 1e6:.2f} Mb/s "
            f"({time.monotonic() - started:.0f} s to encode)")
        repeats = CONFIG.repeats or (1 if options.quick else 3)
        golive_runs = []
        for index, (label, settings) in enumerate(golive_variants(options.quick)):
            run = run_golive(source, rungs, settings, label, work / f"golive{index}")
            if psnr_tool:
                measure_psnr(psnr_tool, source.path, run, rungs)
            log(_describe(run))
            golive_runs.append(run)
        references: list[Run] = []
        others: list[Run] = []
        models = sorted({run.sliced for run in golive_runs}, reverse=True)
        jobs = [(label, path, sliced, index == 0)
                for index, (label, path) in enumerate(binaries)
                for sliced in (models if index == 0 else [False])]
        for number, (label, path, sliced, main) in enumerate(jobs):
            name = f"{label} {'sliced' if sliced else 'frame'}-threads"
            run = run_ffmpeg(path, source, rungs, name, work / f"ffmpeg{number}", sliced)
            if psnr_tool:
                measure_psnr(psnr_tool, source.path, run, rungs)
            log(_describe(run))
            (references if main else others).append(run)
        reference = next((r for r in references if not r.sliced), None)
        if reference is not None and binaries and repeats > 1:
            golive_runs[0], index = _median_of_pairs(
                golive_runs[0], reference, repeats, source, rungs, binaries[0][1], work)
            references[references.index(reference)] = index
    return _rows(golive_runs, references, others, rungs)


def _median_of_pairs(golive: Run, reference: Run, repeats: int, source: Source,
                     rungs: tuple[Rung, ...], ffmpeg: str, work: Path) -> tuple[Run, Run]:
    """Time golive's defaults and the reference again, in alternating order, until each has
    `repeats` runs; each side's median wall and CPU time (its outputs are the first run's)."""
    ours, theirs = [golive], [reference]
    settings = golive_variants(True)[0][1]
    for number in range(1, repeats):
        # The first runs went golive, then the reference: the second pair goes the other way.
        for side in ("reference", "golive") if number % 2 else ("golive", "reference"):
            if side == "golive":
                ours.append(run_golive(source, rungs, settings, golive.label,
                                       work / f"golive-repeat{number}"))
            else:
                theirs.append(run_ffmpeg(ffmpeg, source, rungs, reference.label,
                                         work / f"ffmpeg-repeat{number}", False))
        log(f"repeat {number}: golive {ours[-1].speed:.2f}x, "
            f"{theirs[-1].label} {theirs[-1].speed:.2f}x")
    return _median_run(ours), _median_run(theirs)


def _median_run(runs: list[Run]) -> Run:
    walls = sorted(r.wall for r in runs)
    cpus = sorted(r.cpu for r in runs)
    middle = len(runs) // 2
    speeds = ", ".join(f"{r.speed:.2f}" for r in runs)
    return replace(runs[0], wall=walls[middle], cpu=cpus[middle],
                   other_cpu=max(r.other_cpu for r in runs), runs=f"median of {speeds}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.transcode",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="10 s of media, fewer variants")
    parser.add_argument("--seconds", type=float, help="media seconds (default 60, quick 10)")
    parser.add_argument("--ffmpeg", help="the reference ffmpeg (default: imageio-ffmpeg's)")
    parser.add_argument("--second-ffmpeg", help="a second reference (default: ffmpeg on PATH)")
    parser.add_argument("--no-second", action="store_true", help="only the first reference")
    parser.add_argument("--no-variants", action="store_true", help="golive's defaults only")
    parser.add_argument("--repeats", type=int, help="golive/reference pairs (default 3)")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    CONFIG.ffmpeg = args.ffmpeg
    CONFIG.second_ffmpeg = args.second_ffmpeg
    CONFIG.no_second = args.no_second
    CONFIG.seconds = args.seconds
    CONFIG.variants = not args.no_variants
    CONFIG.repeats = args.repeats
    references = reference_binaries()
    print(format_table(run_transcode(Options(quick=args.quick)),
                       references[0][0] if references else "reference"))


if __name__ == "__main__":
    main()
