"""Audio that HLS players cannot all play (Opus, MP3, Speex, G.711, ...) transcoded to AAC.

A stream's audio is transcoded once and the AAC is shared by every rendition, the source's
included. AAC-LC is the one audio codec every HLS client decodes: Safari and iOS do not take
Opus in every version, and fMP4 HLS carries no MP3 at all.

`AacTranscoder` is the synchronous core (PyAV: decode, resample, FFmpeg's native AAC encoder).
`AudioTranscoder` runs one on a thread of its own: FFmpeg's AAC encoder needs about 2% of a
core per stereo stream (measured on the Big Buck Bunny clip), too much for the event loop once
there are a few such streams, and PyAV releases the GIL inside codec calls.

Timestamps: the output is timed by counting samples from the first input unit, so the
millisecond rounding of RTMP timestamps does not jitter the AAC frames. When the input's own
timestamps move away from that count by more than MAX_DRIFT_MS (units lost upstream, a
publisher's clock jump), the encoder is drained and started again at the input's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av
import av.audio.resampler
import av.error
from prometheus_client import CollectorRegistry, Counter

from golive.codecs import AAC_RATES, aac_codec_string
from golive.media import MediaUnit, Track, TrackKind

log = logging.getLogger("golive.transcode")

MAX_DRIFT_MS = 200  # input timestamps this far from the sample count start a new run
INPUT_QUEUE = 500  # units waiting for the thread: 10 s of 20 ms frames
BITRATE_PER_CHANNEL = 64_000  # the default: 128 kb/s stereo, 64 kb/s mono
DRAIN_TIMEOUT = 5.0  # seconds to wait for the thread's last frames at the end of a stream


class AudioTranscodeError(ValueError):
    """The source audio cannot be transcoded (no decoder, unknown sample rate)."""


def aac_rate(rate: int) -> int:
    """The AAC sample rate to encode a source of `rate` Hz at: the same when AAC can name it,
    else the next one up (5512 Hz FLV audio becomes 7350 Hz)."""
    if rate in AAC_RATES:
        return rate
    higher = [r for r in AAC_RATES if r > rate]
    return min(higher) if higher else max(AAC_RATES)


class AacTranscoder:
    """Decodes one audio track and encodes it as AAC-LC, unit by unit."""

    def __init__(self, source: Track, bitrate: int = 0) -> None:
        if not source.sample_rate or not source.channels:
            raise AudioTranscodeError(f"{source.codec} audio of unknown sample rate or "
                                      "channel count")
        self.source = source
        self.rate = aac_rate(source.sample_rate)
        # More than two channels are downmixed: stereo is what phones and laptops play, and
        # what Apple's HLS authoring spec asks for in the one audio rendition offered.
        self.layout = "mono" if source.channels == 1 else "stereo"
        channels = 1 if self.layout == "mono" else 2
        self.bitrate = bitrate or BITRATE_PER_CHANNEL * channels
        self._decoder = self._open_decoder()
        self._encoder = self._open_encoder()
        asc = bytes(self._encoder.extradata or b"")
        self.track = Track(TrackKind.AUDIO, "aac", asc, codec_string=aac_codec_string(asc),
                           sample_rate=self.rate, channels=channels)
        self._resampler = self._new_resampler()
        self._origin_ms: int | None = None  # media time of sample 0 of this run
        self._samples = 0  # samples (at self.rate) put into the resampler in this run
        # Where the last AAC frame out ended: a new run never starts before it, or its
        # frames would overlap (go back in time) when the source's units held more audio
        # than their timestamps allow for.
        self._end_ms: int | None = None
        self.errors = 0  # units that did not decode
        self.restarts = 0  # new runs after a timestamp gap or jump

    def _open_decoder(self) -> av.AudioCodecContext:
        source = self.source
        try:
            decoder = av.CodecContext.create(source.codec, "r")
        except (ValueError, av.error.FFmpegError) as exc:
            raise AudioTranscodeError(f"no decoder for {source.codec} audio") from exc
        assert isinstance(decoder, av.AudioCodecContext)
        if source.extradata:
            decoder.extradata = source.extradata
        # Raw formats (PCM, G.711, Nellymoser) carry no header: the FLV tag told these.
        decoder.sample_rate = source.sample_rate
        decoder.layout = "mono" if source.channels == 1 else "stereo"
        try:
            decoder.open()
        except av.error.FFmpegError as exc:
            raise AudioTranscodeError(f"cannot decode {source.codec} audio: {exc}") from exc
        return decoder

    def _open_encoder(self) -> av.AudioCodecContext:
        encoder = av.CodecContext.create("aac", "w")
        assert isinstance(encoder, av.AudioCodecContext)
        encoder.sample_rate = self.rate
        encoder.layout = self.layout
        encoder.format = "fltp"
        encoder.bit_rate = self.bitrate
        encoder.time_base = Fraction(1, self.rate)
        encoder.open()
        return encoder

    def _new_resampler(self) -> av.audio.resampler.AudioResampler:
        # It also cuts the decoder's frames (960 samples for Opus, 1152 for MP3) into the
        # encoder's 1024.
        return av.audio.resampler.AudioResampler(format="fltp", layout=self.layout,
                                                 rate=self.rate,
                                                 frame_size=self._encoder.frame_size)

    def push(self, unit: MediaUnit) -> list[MediaUnit]:
        """One source audio unit in; the AAC frames it completed out (in order)."""
        if not unit.data:  # an empty packet is libavcodec's end of stream: it would end ours
            self.errors += 1
            return []
        try:
            frames = self._decoder.decode(av.Packet(unit.data))
        except av.error.FFmpegError:
            self.errors += 1
            return []
        out: list[MediaUnit] = []
        for frame in frames:
            counted = (self._origin_ms + self._samples * 1000 // self.rate
                       if self._origin_ms is not None else None)
            if counted is None or abs(unit.pts - counted) > MAX_DRIFT_MS:
                if counted is not None:
                    self.restarts += 1
                    out += self._finish_run()
                end = self._end_ms
                self._origin_ms = unit.pts if end is None else max(unit.pts, end)
                self._samples = 0
            frame.pts = None  # timed by the sample count, not the decoder's guess
            out += self._resample(frame)
        return out

    def flush(self) -> list[MediaUnit]:
        """The source ended: what the resampler and encoder still hold."""
        return self._finish_run() if self._origin_ms is not None else []

    def _resample(self, frame: av.AudioFrame | None) -> list[MediaUnit]:
        try:
            resampled = self._resampler.resample(frame)
        except ValueError:  # the decoder's output format changed mid-stream
            self._resampler = self._new_resampler()
            resampled = self._resampler.resample(frame)
        out: list[MediaUnit] = []
        for chunk in resampled:
            chunk.pts = self._samples
            chunk.time_base = Fraction(1, self.rate)
            self._samples += chunk.samples
            out += self._encode(chunk)
        return out

    def _encode(self, frame: av.AudioFrame | None) -> list[MediaUnit]:
        assert self._origin_ms is not None
        out = []
        for packet in self._encoder.encode(frame):
            # The encoder's first packet is its priming (negative time): a decoder that
            # starts on the next one loses only an inaudible 21 ms fade-in.
            if packet.pts is None or packet.pts < 0:
                continue
            ms = self._origin_ms + packet.pts * 1000 // self.rate
            out.append(MediaUnit(TrackKind.AUDIO, ms, ms, True, bytes(packet)))
            self._end_ms = ms + (packet.duration or 0) * 1000 // self.rate
        return out

    def _finish_run(self) -> list[MediaUnit]:
        """Drain resampler and encoder; the next unit starts a new run (and encoder)."""
        out = self._resample(None)
        out += self._encode(None)
        self._encoder = self._open_encoder()
        self._resampler = self._new_resampler()
        self._origin_ms = None
        return out


@dataclass(frozen=True, slots=True)
class AudioCounters:
    """One stream's children of AudioToAac's metrics."""

    frames_in: Counter
    frames_out: Counter
    lost: Callable[[str], Counter]  # by reason: "queue", "decode"


class AudioTranscoder:
    """An `AacTranscoder` on its own thread, fed from the event loop.

    `on_unit` is called on the loop, in order. Source units that make no audio are counted
    as lost: "queue" when more than INPUT_QUEUE waited (the thread starved of CPU for
    seconds; the timing then starts a new run, so audio and video stay in sync), "decode"
    when a unit did not decode.
    """

    def __init__(self, stream: str, core: AacTranscoder, on_unit: Callable[[MediaUnit], None],
                 counters: AudioCounters) -> None:
        self.stream = stream
        self.core = core
        self.track = core.track
        self._on_unit = on_unit
        self._counters = counters
        self._loop = asyncio.get_running_loop()
        self._queue: queue.Queue[MediaUnit | None] = queue.Queue(INPUT_QUEUE)
        self._cancelled = False
        self._done = self._loop.create_future()
        self._errors = 0
        self._thread = threading.Thread(target=self._run, name=f"audio {stream}", daemon=True)
        self._thread.start()

    def push(self, unit: MediaUnit) -> None:
        self._counters.frames_in.inc()
        try:
            self._queue.put_nowait(unit)
        except queue.Full:
            self._counters.lost("queue").inc()

    async def drain(self) -> None:
        """No more input: wait (bounded) until every frame it will make was delivered."""
        self._end()
        try:
            await asyncio.wait_for(asyncio.shield(self._done), DRAIN_TIMEOUT)
        except TimeoutError:
            log.warning("stream %s: the audio transcoder did not finish in %g s; its last "
                        "frames are lost", self.stream, DRAIN_TIMEOUT)
            self.close()

    def close(self) -> None:
        """Stop now; nothing more is delivered."""
        self._cancelled = True
        self._end()

    def _end(self) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put_nowait(None)
                return
            except queue.Full:  # the thread is behind: what waits is given up
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()

    def _run(self) -> None:
        core = self.core
        try:
            while (unit := self._queue.get()) is not None:
                if self._cancelled:
                    break
                errors = core.errors
                self._deliver(core.push(unit))
                if core.errors != errors:
                    self._post(self._decode_error)
            if not self._cancelled:
                self._deliver(core.flush())
        except Exception:
            log.exception("stream %s: the audio transcoder failed; no more audio", self.stream)
        finally:
            self._post(self._finished)

    def _post(self, callback: Callable[..., None], *args: object) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: the server is gone
            self._cancelled = True

    def _deliver(self, units: list[MediaUnit]) -> None:
        if units and not self._cancelled:
            self._post(self._take, units)

    def _take(self, units: list[MediaUnit]) -> None:
        for unit in units:
            if self._cancelled:
                return
            self._counters.frames_out.inc()
            self._on_unit(unit)

    def _decode_error(self) -> None:
        self._counters.lost("decode").inc()
        self._errors += 1
        if self._errors <= 5:  # a corrupt stream would otherwise log 50 lines a second
            log.warning("stream %s: a %s audio frame did not decode; skipped", self.stream,
                        self.core.source.codec)

    def _finished(self) -> None:
        if not self._done.done():
            self._done.set_result(None)


class AudioToAac:
    """The server's audio transcoding: which tracks it takes, and their counters."""

    def __init__(self, bitrate: int, registry: CollectorRegistry) -> None:
        self.bitrate = bitrate  # 0: BITRATE_PER_CHANNEL
        self.frames = Counter(
            "golive_transcode_audio_frames_total",
            "Audio frames through the AAC transcoder, by direction (in: source units, "
            "out: AAC frames).", ["stream", "direction"], registry=registry)
        self.lost = Counter(
            "golive_transcode_audio_lost_units_total",
            "Source audio units that made no AAC, by reason (queue: the transcoder thread "
            "was seconds behind; decode: the unit did not decode).", ["stream", "reason"],
            registry=registry)

    @staticmethod
    def wants(track: Track) -> bool:
        return track.kind is TrackKind.AUDIO and track.codec != "aac"

    def open(self, stream: str, source: Track,
             on_unit: Callable[[MediaUnit], None]) -> AudioTranscoder:
        """Raises AudioTranscodeError when the source cannot be decoded."""
        for reason in ("queue", "decode"):  # at 0 from the start: alerts see the first loss
            self.lost.labels(stream, reason)
        counters = AudioCounters(self.frames.labels(stream, "in"),
                                 self.frames.labels(stream, "out"),
                                 lambda reason: self.lost.labels(stream, reason))
        return AudioTranscoder(stream, AacTranscoder(source, self.bitrate), on_unit, counters)

