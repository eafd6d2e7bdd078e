"""One stream's ladder: decode once, scale once per rung, encode each rung in its own thread.

This runs inside a transcode worker process (`worker.py`), or in-process for benchmarks and
tests; it knows nothing of processes or asyncio. PyAV releases the GIL inside libavcodec
and libswscale calls, so the rung threads run their encoders in parallel.

Where the CPU goes, measured one by one on the benchmark's 720p25 -> 480/360/240p veryfast
ladder (about 22 ms of CPU per source frame in all): the three libx264 encodes 16.1 ms,
decoding 4.1 ms, cascaded scaling 2.8 ms. So the pipeline spends as little as possible
outside the encoders:

* the decoder runs on one thread (`decoder_threads`): the rung threads already keep every
  core busy, and FFmpeg's frame-threaded H.264 decoding costs 15-20% more CPU per frame
  (4.1 -> 4.7-5.0 ms) and holds a frame per thread before the first one comes out;
* frames go from the decoder to the rungs as they are (yuv420p from every H.264 decoder), no
  copy or conversion in between;
* each rung scales with its own `VideoReformatter` (one frame reformatted from two threads at
  once deadlocked), and by default from the rung above it rather than from the source
  (`cascade`): 480p -> 360p reads a third of the pixels 720p -> 360p reads;
* a rung's thread scales, hands its picture to the rung below, then encodes, so the rung below
  scales while this one encodes.

IDRs: a unit pushed with `idr=True` becomes an IDR in every rung, at the same presentation
time, and no rung makes a keyframe anywhere else (keyint unbounded, scene-cut detection off):
the packager cuts every rendition's segments where the source's are cut. B-frames are off by
default: each rung's DTS is then its PTS, the source frame's own timestamp, and the rungs add
no reorder delay to the live edge.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import av
from av.video.frame import PictureType, VideoFrame
from av.video.reformatter import Interpolation, VideoReformatter

from golive.media import MILLISECONDS, MediaUnit, Track, TrackKind
from golive.transcode.annexb import to_length_prefixed
from golive.transcode.encoders import DEFAULT_PROFILE, encoder_params
from golive.transcode.ladder import BUFSIZE_SECONDS, MAXRATE_FACTOR, Rung
from golive.transcode.records import decoder_config

log = logging.getLogger("golive.transcode")

RUNG_QUEUE = 8  # frames waiting per rung: bounded, the decoder waits for the slowest rung
# Source pixels per second one decoder thread is given: 1080p30. A single thread decodes
# 720p25 H.264 at about 9x real time here, 1080p30 (6 Mb/s) at 3.7x; bigger or faster get
# frame-threaded decoding so the decoder never becomes the ladder's bottleneck.
SINGLE_THREAD_DECODE = 1920 * 1080 * 30
DEFAULT_FRAME_RATE = Fraction(30)

Output = Callable[[str, "Track | MediaUnit"], None]


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    """Encoder settings shared by every rung (the bitrates are the rungs' own)."""

    codec: str = "libx264"  # or libx265 (see encoders.py)
    preset: str = "veryfast"
    profile: str = ""  # "": the encoder's usual one (high for libx264, main for libx265)
    bframes: int = 0
    threads: int = 0  # encoder threads per rung (x265: frame threads); 0: it chooses
    # x264 threads: several frames at once (False, as the ffmpeg CLI), or each frame split
    # between the threads (True: no frame of delay per thread, but measured 10% slower here
    # in bench/transcode.py, where the CLI's sliced threads were not)
    sliced_threads: bool = False
    # libx264's rate-control lookahead, in frames. Each frame of it is a frame of delay at
    # the live edge: veryfast's own 10 (with its sync lookahead) put the rungs 0.68 s behind
    # the source, 0 puts them 0.2 s behind, so a low-latency player switching renditions
    # does not run out of buffer. More lookahead buys a little quality per bit.
    lookahead: int = 0
    x264_params: str = ""  # anything else, as the encoder's key=value:key=value
    maxrate: float = MAXRATE_FACTOR  # VBV peak rate, times the rung's bitrate
    bufsize: float = BUFSIZE_SECONDS  # VBV buffer, in seconds of the rung's bitrate
    interpolation: str = "BICUBIC"  # swscale filter, as the ffmpeg CLI's default
    cascade: bool = True  # scale each rung from the one above it

    def vbv(self, rung: Rung) -> tuple[int, int]:
        """The rung's VBV peak rate and buffer size, in bits (per second)."""
        return round(rung.bitrate * self.maxrate), round(rung.bitrate * self.bufsize)


@dataclass(slots=True)
class RungStats:
    """What one rung did, for metrics: frames in and out, and the seconds its thread was
    busy scaling and encoding (speed = media seconds out / busy seconds)."""

    frames_in: int = 0
    frames_out: int = 0
    frames_skipped: int = 0  # source frames not encoded: the rung was shed (load)
    busy_seconds: float = 0.0
    first_pts: int | None = None
    last_pts: int | None = None

    @property
    def media_seconds(self) -> float:
        if self.first_pts is None or self.last_pts is None:
            return 0.0
        return (self.last_pts - self.first_pts) / 1000


@dataclass(slots=True)
class PipelineStats:
    decoded: int = 0
    decode_errors: int = 0
    rungs: dict[str, RungStats] = field(default_factory=dict)


def x264_params(settings: EncoderSettings) -> list[str]:
    """The encoder settings every rung shares (what a reference CLI must be given too)."""
    return _params(settings)[1]


def _params(settings: EncoderSettings) -> tuple[str, list[str]]:
    return encoder_params(settings.codec, bframes=settings.bframes,
                          lookahead=settings.lookahead, threads=settings.threads,
                          sliced_threads=settings.sliced_threads, extra=settings.x264_params)


class _RungEncoder:
    """Scales and encodes one rung in its own thread."""

    def __init__(self, rung: Rung, size: tuple[int, int], settings: EncoderSettings,
                 frame_rate: Fraction, output: Output, stats: RungStats) -> None:
        self.rung = rung
        self.width, self.height = size
        self.output = output
        self.stats = stats
        self.below: _RungEncoder | None = None  # scales from this rung's pictures
        self.queue: queue.Queue[tuple[VideoFrame, bool] | None] = queue.Queue(RUNG_QUEUE)
        self._reformatter = VideoReformatter()
        self._interpolation = Interpolation[settings.interpolation]
        self._frame_rate = frame_rate
        self._settings = settings
        self._encoder: av.VideoCodecContext | None = self._open(settings)
        self.encoding = True  # set from outside: False sheds this rung (see `shedding.py`)
        self._last_dts: int | None = None
        self.error: str | None = None
        self._ended = False  # the end of input came (and went on to the rung below)
        self.track = self._track()
        self.thread = threading.Thread(target=self._run, name=f"rung {rung.name}", daemon=True)

    def _open(self, settings: EncoderSettings) -> av.VideoCodecContext:
        encoder = av.CodecContext.create(settings.codec, "w")
        encoder.width = self.width
        encoder.height = self.height
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = MILLISECONDS
        encoder.framerate = self._frame_rate
        encoder.bit_rate = self.rung.bitrate
        encoder.flags |= av.codec.context.Flags.global_header  # SPS/PPS as extradata
        encoder.thread_count = settings.threads
        option, params = _params(settings)
        maxrate, bufsize = settings.vbv(self.rung)
        encoder.options = {
            "preset": settings.preset,
            "profile": settings.profile or DEFAULT_PROFILE[settings.codec],
            "maxrate": str(maxrate), "bufsize": str(bufsize),
            "g": "1000000", "forced-idr": "1", option: ":".join(params),
        }
        encoder.open()
        return encoder

    def _track(self) -> Track:
        assert self._encoder is not None
        codec, config, codec_string = decoder_config(
            self._settings.codec, bytes(self._encoder.extradata or b""), self.width,
            self.height)
        return Track(TrackKind.VIDEO, codec, config, codec_string=codec_string,
                     width=self.width, height=self.height, pix_fmt="yuv420p",
                     frame_rate=self._frame_rate)

    def start(self) -> None:
        self.output(self.rung.name, self.track)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._encode_all()
        except Exception as exc:  # libx264 or the output refused: the ladder has failed
            log.exception("rung %s failed", self.rung.name)
            self.error = f"rung {self.rung.name}: {type(exc).__name__}: {exc}"
            # Keep taking frames so the decoder never waits on this rung (the pipeline
            # raises at its next push), and let the rung below end too.
            if not self._ended:
                while self.queue.get() is not None:
                    pass
                if self.below is not None:
                    self.below.queue.put(None)

    def _encode_all(self) -> None:
        stats = self.stats
        while True:
            item = self.queue.get()
            if item is None:
                self._ended = True
                if self.below is not None:
                    self.below.queue.put(None)
                started = time.perf_counter()
                if self._encoder is not None:
                    self._emit(self._encoder.encode(None))
                stats.busy_seconds += time.perf_counter() - started
                return
            frame, idr = item
            started = time.perf_counter()
            picture = self._reformatter.reformat(
                frame, self.width, self.height, "yuv420p", interpolation=self._interpolation)
            picture.pts = frame.pts
            picture.time_base = MILLISECONDS
            scaled = time.perf_counter()
            if self.below is not None:  # waiting here for the rung below is not work
                self.below.queue.put((picture, idr))
            resumed = time.perf_counter()
            if self._ready(idr):
                picture.pict_type = PictureType.I if idr else PictureType.NONE
                stats.frames_in += 1
                assert self._encoder is not None
                self._emit(self._encoder.encode(picture))
            else:
                stats.frames_skipped += 1
            stats.busy_seconds += (scaled - started) + (time.perf_counter() - resumed)

    def _ready(self, idr: bool) -> bool:
        """Shedding: a shed rung drains its encoder and stops (scaling goes on while a rung
        below scales from it); taken back, it starts a new encoder at the next IDR point,
        whose `Track` goes out first (a new init segment after a discontinuity)."""
        if not self.encoding:
            if self._encoder is not None:
                self._emit(self._encoder.encode(None))
                self._encoder = None
                self._last_dts = None
            return False
        if self._encoder is None:
            if not idr:
                return False
            self._encoder = self._open(self._settings)
            self.track = self._track()
            self.output(self.rung.name, self.track)
        return True

    def _emit(self, packets: list[av.Packet]) -> None:
        stats = self.stats
        for packet in packets:
            pts = packet.pts
            dts = packet.dts if packet.dts is not None else pts
            if pts is None:
                continue
            # With B-frames libx264 starts DTS before zero; muxers need rising, non-negative
            # DTS, never above the PTS.
            floor = 0 if self._last_dts is None else self._last_dts + 1
            dts = min(max(dts, floor), pts)
            self._last_dts = dts
            stats.frames_out += 1
            if stats.first_pts is None:
                stats.first_pts = pts
            stats.last_pts = pts
            self.output(self.rung.name, MediaUnit(
                TrackKind.VIDEO, dts, pts, packet.is_keyframe,
                to_length_prefixed(bytes(packet))))


def decoder_threads(source: Track) -> int:
    """Decoder threads for a source: 1 up to SINGLE_THREAD_DECODE, else 0 (FFmpeg picks)."""
    rate = float(source.frame_rate or DEFAULT_FRAME_RATE)
    return 1 if source.width * source.height * rate <= SINGLE_THREAD_DECODE else 0


class LadderPipeline:
    """Transcodes one source video track into the given rungs.

    `push` decodes in the caller's thread and blocks while the slowest rung is RUNG_QUEUE
    frames behind; `close` drains every rung. `output(rung_name, item)` is called from the
    rung threads with the rung's `Track` first, then its units in decode order.
    """

    def __init__(self, source: Track, rungs: tuple[Rung, ...], settings: EncoderSettings,
                 output: Output, decode_threads: int | None = None) -> None:
        if source.kind is not TrackKind.VIDEO:
            raise ValueError("only video is transcoded")
        self.source = source
        self.stats = PipelineStats()
        self._decoder = av.CodecContext.create(source.codec, "r")
        if source.extradata:
            self._decoder.extradata = source.extradata
        self._decoder.thread_type = "AUTO"
        self._decoder.thread_count = (decoder_threads(source) if decode_threads is None
                                      else decode_threads)
        self._idr_pts: set[int] = set()
        frame_rate = source.frame_rate or DEFAULT_FRAME_RATE
        ordered = sorted(rungs, key=lambda r: r.short_side, reverse=True)
        self.encoders: list[_RungEncoder] = []
        for rung in ordered:
            stats = self.stats.rungs.setdefault(rung.name, RungStats())
            size = rung.size_for(source.width, source.height)
            self.encoders.append(_RungEncoder(rung, size, settings, frame_rate, output, stats))
        # Cascade: each rung scales from the smallest rung above it that is still larger.
        self._heads = []
        for index, encoder in enumerate(self.encoders):
            above = self.encoders[index - 1] if index and settings.cascade else None
            if above is not None and above.width >= encoder.width:
                above.below = encoder
            else:
                self._heads.append(encoder)
        for encoder in self.encoders:
            encoder.start()
        self._closed = False

    @property
    def tracks(self) -> dict[str, Track]:
        return {e.rung.name: e.track for e in self.encoders}

    def set_encoding(self, rung: str, encoding: bool) -> None:
        """Shed a rung (stop encoding it) or take it back, from its next IDR point."""
        for encoder in self.encoders:
            if encoder.rung.name == rung:
                encoder.encoding = encoding

    def push(self, unit: MediaUnit, idr: bool = False) -> None:
        """One source video unit; `idr`: every rung starts a GOP at this unit's PTS."""
        if self._closed:
            raise ValueError("the pipeline is closed")
        for encoder in self.encoders:
            if encoder.error is not None:
                raise RuntimeError(encoder.error)
        if idr:
            self._idr_pts.add(unit.pts)
        if not unit.data:  # an empty packet is libavcodec's end of stream: it would end ours
            self.stats.decode_errors += 1
            return
        packet = av.Packet(unit.data)
        packet.pts = unit.pts
        packet.dts = unit.dts
        packet.time_base = MILLISECONDS
        self._decode(packet)

    def _decode(self, packet: av.Packet | None) -> None:
        try:
            frames = self._decoder.decode(packet)
        except av.FFmpegError as exc:
            self.stats.decode_errors += 1
            if self.stats.decode_errors <= 5:
                log.warning("decoding failed: %s", exc)
            frames = []
        for frame in frames:
            if frame.pts is None:
                continue
            self.stats.decoded += 1
            idr = frame.pts in self._idr_pts
            if idr:
                self._idr_pts.discard(frame.pts)
            for head in self._heads:
                head.queue.put((frame, idr))
        if len(self._idr_pts) > 64:  # frames the decoder never returned (corrupt input)
            self._idr_pts = {p for p in self._idr_pts if p >= max(self._idr_pts) - 10_000}

    def close(self) -> None:
        """Flush the decoder and every encoder; returns when all rung output is out."""
        if self._closed:
            return
        self._decode(None)
        self._closed = True
        for head in self._heads:
            head.queue.put(None)
        for encoder in self.encoders:
            encoder.thread.join()
