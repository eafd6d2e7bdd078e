"""Test publishers: synthetic A/V encoded with PyAV, FLV parsing, and a raw RTMP publisher.

Everything the tests compare against is computed here from what the *encoders* produced
(packets, extradata), independently of golive's own FLV/RTMP parsers, so a bug shared by the
server and a helper cannot make a test pass.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import io
import math
import pickle
import re
import ssl
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from golive.ingest import amf0
from golive.ingest.client import (
    ClientEvent,
    ConnectResult,
    PublishClient,
    PublishStatus,
)
from golive.media import MILLISECONDS, MediaUnit, Track, TrackKind
from golive.transcode.annexb import avcc_from_annexb, to_length_prefixed

FPS = 25
SAMPLE_RATE = 48000
AAC_FRAME = 1024  # samples per channel in one AAC-LC frame

# --- H.264 byte formats --------------------------------------------------------------------


def annexb_nal_units(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream (3- or 4-byte start codes)."""
    starts = [m.end() for m in re.finditer(b"\x00\x00\x01", data)]
    ends = [start - 3 for start in starts[1:]] + [len(data)]
    # A NAL unit never ends in a zero byte (H.264 7.4.1): trailing zeros belong to the next
    # start code (the 4-byte form) or are stream padding.
    return [data[start:end].rstrip(b"\x00") for start, end in zip(starts, ends, strict=True)]


def annexb_to_avcc(data: bytes) -> bytes:
    """Annex B -> 4-byte length-prefixed NAL units: what FLV (and golive's units) carry."""
    return b"".join(len(u).to_bytes(4, "big") + u for u in annexb_nal_units(data))


def avcc_parameter_sets(record: bytes) -> list[bytes]:
    """SPS and PPS NAL units of an AVCDecoderConfigurationRecord, in order."""
    if record[0] != 1:
        raise ValueError("not an avcC record")
    units = []
    pos = 5
    for _ in range(2):  # SPS list, then PPS list
        count = record[pos] & (0x1F if not units else 0xFF)
        pos += 1
        for _ in range(count):
            size = int.from_bytes(record[pos : pos + 2], "big")
            units.append(record[pos + 2 : pos + 2 + size])
            pos += 2 + size
    return units


# --- FLV -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlvTag:
    type: int  # 8 audio, 9 video, 18 script data
    timestamp: int  # ms
    body: bytes

    @property
    def is_coded_video(self) -> bool:  # legacy AVC NALU packet (not a sequence header/end)
        return self.type == 9 and self.body[1] == 1

    @property
    def is_coded_audio(self) -> bool:  # AAC raw frame (not the AudioSpecificConfig)
        return self.type == 8 and self.body[1] == 1


def parse_flv(data: bytes) -> list[FlvTag]:
    """Tags of an FLV file (header, then tag + PreviousTagSize pairs)."""
    if data[:3] != b"FLV":
        raise ValueError("not an FLV file")
    pos = int.from_bytes(data[5:9], "big") + 4
    tags = []
    while pos + 11 <= len(data):
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        timestamp = int.from_bytes(data[pos + 4 : pos + 7], "big") | data[pos + 7] << 24
        tags.append(FlvTag(data[pos] & 0x1F, timestamp, data[pos + 11 : pos + 11 + size]))
        pos += 11 + size + 4
    return tags


# --- synthetic media through PyAV's encoders -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Packet:
    dts: int | None
    pts: int | None
    keyframe: bool
    data: bytes


@dataclass
class Encoded:
    """What the encoders produced and what was muxed, per stream."""

    width: int
    height: int
    video: list[Packet] = field(default_factory=list)
    audio: list[Packet] = field(default_factory=list)
    video_extradata: bytes = b""
    audio_extradata: bytes = b""

    @property
    def video_units(self) -> list[bytes]:
        """Video packets as FLV carries them: length-prefixed NAL units."""
        return [annexb_to_avcc(p.data) for p in self.video]

    @property
    def audio_units(self) -> list[bytes]:
        return [p.data for p in self.audio]


def encode_av(container: Any, *, seconds: float, width: int, height: int,
              on_packet: Callable[[], None] | None = None, realtime: bool = False,
              gop: int = FPS, audio_codec: str = "aac", sample_rate: int = SAMPLE_RATE,
              layout: str = "stereo") -> Encoded:
    """Encode `seconds` of a moving picture (libx264, 25 fps, GOP 25, B-frames so that PTS and
    DTS differ) and a 440 Hz tone (AAC 48 kHz stereo unless told otherwise) into `container`,
    muxing as we go. `realtime` paces the frames at 25 per second of wall-clock time, like a
    live encoder."""
    video = container.add_stream("libx264", rate=FPS)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    # superfast keeps B-frames (ultrafast drops them): composition times get exercised.
    video.options = {"preset": "superfast", "g": str(gop), "keyint_min": str(gop)}
    if realtime:  # a live encoder hands each frame over at once (no lookahead delay)
        video.options["tune"] = "zerolatency"
    started = time.monotonic()
    audio = container.add_stream(audio_codec, rate=sample_rate, layout=layout)
    audio_frame = audio.codec_context.frame_size or AAC_FRAME
    audio_format = audio.codec_context.format.name
    channels = audio.codec_context.layout.nb_channels
    convert = av.AudioResampler(format=audio_format, layout=layout, rate=sample_rate)
    encoded = Encoded(width, height)
    y, x = np.mgrid[0:height, 0:width]
    frames = round(seconds * FPS)
    samples = 0

    def mux(packets: Iterable[av.Packet], into: list[Packet]) -> None:
        for packet in packets:
            into.append(Packet(packet.dts, packet.pts, packet.is_keyframe, bytes(packet)))
            container.mux(packet)
            if on_packet is not None:
                on_packet()

    for i in range(frames):
        if realtime:
            time.sleep(max(0.0, started + i / FPS - time.monotonic()))
        picture = np.dstack([(x + y + 8 * i) % 256, (2 * x + i) % 256, (y + 3 * i) % 256])
        frame = av.VideoFrame.from_ndarray(picture.astype(np.uint8), format="rgb24")
        frame.pts, frame.time_base = i, Fraction(1, FPS)
        mux(video.encode(frame), encoded.video)
        while samples < (i + 1) * sample_rate // FPS:
            t = (np.arange(audio_frame) + samples) / sample_rate
            tone = (0.3 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
            pcm = av.AudioFrame.from_ndarray(np.stack([tone] * channels), format="fltp",
                                             layout=layout)
            pcm.sample_rate = sample_rate
            if audio_format != "fltp":
                [pcm] = convert.resample(pcm)
            pcm.sample_rate, pcm.pts, pcm.time_base = sample_rate, samples, Fraction(
                1, sample_rate)
            samples += audio_frame
            mux(audio.encode(pcm), encoded.audio)
    mux(video.encode(None), encoded.video)
    mux(audio.encode(None), encoded.audio)
    encoded.video_extradata = bytes(video.codec_context.extradata or b"")
    encoded.audio_extradata = bytes(audio.codec_context.extradata or b"")
    return encoded


@dataclass(frozen=True)
class Clip:
    """An in-memory FLV recording and the encoder output it came from."""

    tags: tuple[FlvTag, ...]
    encoded: Encoded

    @property
    def metadata(self) -> dict[str, Any]:
        values = amf0.decode_all(next(t.body for t in self.tags if t.type == 18))
        assert values[0] == "onMetaData" and isinstance(values[1], dict)
        return dict(values[1])

    @property
    def media_tags(self) -> list[FlvTag]:
        return [t for t in self.tags if t.type in (8, 9)]


@functools.lru_cache(maxsize=4)
def encode_clip(seconds: float = 2.0, width: int = 320, height: int = 240) -> Clip:
    """The FLV tags FFmpeg's FLV muxer (the same code its RTMP output uses) makes of
    `encode_av`'s media; cached because several tests replay the same clip."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flv") as container:
        encoded = encode_av(container, seconds=seconds, width=width, height=height)
    return Clip(tuple(parse_flv(buffer.getvalue())), encoded)


def publish_pyav(url: str, *, seconds: float = 4.0, width: int = 320, height: int = 240,
                 before_close: Callable[[], None] | None = None, realtime: bool = False,
                 gop: int = FPS, **audio: Any) -> Encoded:
    """Publish with PyAV (libavformat's RTMP client) at full speed; blocking.

    `before_close` runs once everything is encoded and muxed, with the connection still up.
    The tail of the muxer's interleaving queue only goes out on close, as does FCUnpublish.
    """
    container = av.open(url, "w", format="flv")
    try:
        encoded = encode_av(container, seconds=seconds, width=width, height=height,
                            realtime=realtime, gop=gop, **audio)
        if before_close is not None:
            before_close()
    finally:
        container.close()
    return encoded


@functools.cache
def pyav_speaks_rtmps() -> bool:
    """Whether PyAV's bundled FFmpeg has a TLS protocol (rtmps:// needs one). Nothing listens
    on port 1, so with TLS the attempt ends in a refused connection, without it sooner."""
    container = av.open("rtmps://127.0.0.1:1/live/probe", "w", format="flv")
    container.add_stream("aac", rate=SAMPLE_RATE)
    try:
        container.start_encoding()
    except av.error.ProtocolNotFoundError:
        return False
    except (av.error.FFmpegError, OSError):
        return True
    finally:
        container.close()
    return True


class PublishFailed(Exception):
    """The PyAV publisher process exited with an error."""


class PyAvPublisher:
    """`publish_pyav` in a child process.

    Not in a thread: PyAV 18.1 opens an output (`avio_open`: TCP connect, RTMP handshake,
    connect, createStream, publish) while holding the GIL, so a server running in the test's
    event loop could never answer and the whole process would freeze. A process also makes a
    stuck publisher killable, which a thread is not.

    Protocol on the pipes: with `hold`, the child prints HOLD once everything is muxed and
    waits for a line on stdin before closing; it writes the `Encoded` result (pickled) to
    `out` and exits 0, or prints the error to stderr and exits 1.
    """

    def __init__(self, process: asyncio.subprocess.Process, out: Path) -> None:
        self.process = process
        self.out = out

    @classmethod
    async def start(cls, url: str, out: Path, *, seconds: float = 4.0, width: int = 320,
                    height: int = 240, hold: bool = False, realtime: bool = False,
                    gop: int = FPS, audio_codec: str = "aac",
                    sample_rate: int = SAMPLE_RATE) -> PyAvPublisher:
        args = [sys.executable, __file__, url, "--out", str(out), "--seconds", str(seconds),
                "--size", f"{width}x{height}", "--gop", str(gop), "--audio-codec", audio_codec,
                "--sample-rate", str(sample_rate)]
        if realtime:
            args.append("--realtime")
        process = await asyncio.create_subprocess_exec(
            *args, *(["--hold"] if hold else []), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return cls(process, out)

    async def held(self, timeout: float = 30.0) -> None:
        """Wait until the child has muxed everything and holds the connection open."""
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            self.kill()
            raise
        if line.strip() != b"HOLD":
            await self.finish()  # raises PublishFailed with the child's error
            raise PublishFailed(f"publisher exited without holding: {line!r}")

    async def finish(self, timeout: float = 30.0) -> Encoded:
        """Release a held child, wait for it to exit; its encoder output."""
        try:
            _, stderr = await asyncio.wait_for(self.process.communicate(b"close\n"), timeout)
        except TimeoutError:
            self.kill()
            raise
        if self.process.returncode != 0:
            raise PublishFailed(stderr.decode(errors="replace").strip())
        result = pickle.loads(self.out.read_bytes())
        assert isinstance(result, Encoded)
        return result

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=PyAvPublisher.__doc__)
    parser.add_argument("url")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--realtime", action="store_true")
    parser.add_argument("--gop", type=int, default=FPS)
    parser.add_argument("--audio-codec", default="aac")
    parser.add_argument("--sample-rate", type=int, default=SAMPLE_RATE)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))

    def hold() -> None:
        print("HOLD", flush=True)
        sys.stdin.readline()

    try:
        encoded = publish_pyav(args.url, seconds=args.seconds, width=width, height=height,
                               before_close=hold if args.hold else None,
                               realtime=args.realtime, gop=args.gop,
                               audio_codec=args.audio_codec, sample_rate=args.sample_rate)
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    args.out.write_bytes(pickle.dumps(encoded))
    return 0


# --- a raw RTMP publisher over asyncio streams ----------------------------------------------


class ServerClosed(Exception):
    """The server closed the connection while we waited for something else."""


class RawPublisher:
    """golive's `PublishClient` on a real socket: sees the server's exact replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 client: PublishClient) -> None:
        self.reader = reader
        self.writer = writer
        self.client = client
        self.events: list[ClientEvent] = []
        self.eof = False

    @classmethod
    async def open(cls, port: int, key: str, *, app: str = "live", host: str = "127.0.0.1",
                   tls: ssl.SSLContext | None = None, **client_options: Any) -> RawPublisher:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=tls, server_hostname="localhost" if tls else None)
        scheme = "rtmps" if tls else "rtmp"
        client = PublishClient(app, key, f"{scheme}://{host}:{port}/{app}", **client_options)
        publisher = cls(reader, writer, client)
        await publisher.flush()
        return publisher

    async def flush(self) -> None:
        out = self.client.data_to_send()
        if out:
            self.writer.write(out)
            await self.writer.drain()

    async def _read(self) -> bool:
        """One read from the server into the client; False at EOF or reset."""
        try:
            data = await self.reader.read(65536)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.events.extend(self.client.receive_data(data))
        await self.flush()
        return True

    async def until(self, predicate: Callable[[ClientEvent], bool],
                    timeout: float = 5.0) -> ClientEvent:
        """Read until an event from now on matches `predicate`."""
        seen = len(self.events)

        async def wait() -> ClientEvent:
            nonlocal seen
            while True:
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self.events)
                if not await self._read():
                    raise ServerClosed(f"closed by the server; events so far: {self.events}")

        return await asyncio.wait_for(wait(), timeout)

    async def publish(self, timeout: float = 5.0) -> PublishStatus | ConnectResult:
        """Run connect .. publish; the server's first onStatus (or a refused connect)."""
        event = await self.until(
            lambda e: isinstance(e, PublishStatus)
            or (isinstance(e, ConnectResult) and not e.ok), timeout)
        assert isinstance(event, PublishStatus | ConnectResult)
        return event

    async def send_tags(self, tags: Iterable[FlvTag]) -> None:
        for tag in tags:
            self.client.send_flv_tag(tag.type, tag.timestamp, tag.body)
        await self.flush()

    async def wait_closed(self, timeout: float = 5.0) -> None:
        """Read (and answer) until the server closes; TimeoutError if it never does."""
        async def drain() -> None:
            while await self._read():
                pass

        await asyncio.wait_for(drain(), timeout)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionResetError, BrokenPipeError, ssl.SSLError):
            await self.writer.wait_closed()


if __name__ == "__main__":
    # Import ourselves by name so pickled results refer to `publishers.Encoded`, which the
    # test process can load, rather than to `__main__.Encoded`.
    sys.path.insert(0, str(Path(__file__).parent))
    import publishers

    sys.exit(publishers._main(sys.argv[1:]))


def synthetic_source(frames: int, width: int = 640, height: int = 360,
                     gop: int = 25) -> tuple[Track, list[MediaUnit]]:
    """A moving picture through libx264 with B-frames (PTS != DTS), as ingest delivers
    H.264: avcC extradata, length-prefixed NAL units, millisecond timestamps."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base, encoder.framerate = MILLISECONDS, Fraction(FPS)
    encoder.flags |= av.codec.context.Flags.global_header
    encoder.options = {"preset": "superfast", "g": str(gop), "bframes": "2"}
    encoder.open()
    y, x = np.mgrid[0:height, 0:width]
    packets: list[av.Packet] = []
    for i in range(frames):
        picture = np.dstack([(x + y + 8 * i) % 256, (2 * x + i) % 256, (y + 3 * i) % 256])
        frame = av.VideoFrame.from_ndarray(picture.astype(np.uint8), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts, frame.time_base = 80 + i * (1000 // FPS), MILLISECONDS
        packets.extend(encoder.encode(frame))
    packets.extend(encoder.encode(None))
    avcc = avcc_from_annexb(bytes(encoder.extradata))
    track = Track(TrackKind.VIDEO, "h264", avcc, width=width, height=height,
                  frame_rate=Fraction(FPS))
    units = [MediaUnit(TrackKind.VIDEO, p.dts, p.pts, p.is_keyframe,
                       to_length_prefixed(bytes(p))) for p in packets]
    return track, units
