"""What the HLS benchmarks share: a pre-encoded clip, a real-time RTMP publisher, golive with
HLS on disk, nginx serving the same directory over HTTP, and just enough fMP4 and playlist
parsing to say which frames a part or segment holds.

The clip: 16 s of 1280x720 at 25 fps (the Big Buck Bunny excerpt in /work/shared/media looped
when present, a synthetic moving picture otherwise), libx264 at ~2.5 Mb/s with a keyframe
every 50 frames (2 s, so segments are ~2 s), and a 440 Hz AAC tone. 16 s is a whole number of
GOPs, video frames (400) and AAC frames (750), so the publisher can loop it seamlessly by
shifting timestamps. It is encoded once per process (about 5 s), before anything is timed.

The publisher is golive's own sans-IO `PublishClient` on an asyncio socket. It sends each FLV
tag when its timestamp falls due on the wall clock, like a live encoder, and records the
CLOCK_MONOTONIC time each video frame went into the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from golive.ingest.client import PublishClient, PublishStatus

from .servers import REPO, ServerProcess, die_with_parent, free_port

CLIP = Path("/work/shared/media/bbb-720p25-5s.mp4")
FPS = 25
GOP = 50  # frames: a keyframe every 2 s, the default segment target
LOOP_MS = 16_000  # 400 video frames, 750 AAC frames at 48 kHz: loops without a seam
SAMPLE_RATE = 48_000
AAC_FRAME = 1024
VIDEO_BITRATE = 2_500_000
STREAM = "bench"
SECRET = "bench-secret"


# ---- the clip ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tag:
    type: int  # 8 audio, 9 video, 18 script data
    timestamp: int  # ms (DTS)
    body: bytes

    @property
    def is_frame(self) -> bool:
        """A coded video frame (not the AVC sequence header)."""
        return self.type == 9 and len(self.body) > 1 and self.body[1] == 1


@dataclass(frozen=True)
class Clip:
    headers: tuple[Tag, ...]  # onMetaData and the sequence headers, sent once
    media: tuple[Tag, ...]  # one loop of coded audio and video, timestamps in [0, LOOP_MS)
    source: str  # what the picture is
    bytes_per_loop: int

    @property
    def frames_per_loop(self) -> int:
        return sum(1 for t in self.media if t.is_frame)


def _parse_flv(data: bytes) -> list[Tag]:
    pos = int.from_bytes(data[5:9], "big") + 4
    tags = []
    while pos + 11 <= len(data):
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        timestamp = int.from_bytes(data[pos + 4 : pos + 7], "big") | data[pos + 7] << 24
        tags.append(Tag(data[pos] & 0x1F, timestamp, data[pos + 11 : pos + 11 + size]))
        pos += 11 + size + 4
    return tags


def _pictures(width: int, height: int) -> tuple[list[np.ndarray], str]:
    """YUV 4:2:0 pictures to loop: the clip's frames when it is there, else a synthetic one."""
    if CLIP.exists():
        with av.open(str(CLIP)) as source:
            frames = [
                f.reformat(width, height, "yuv420p").to_ndarray() for f in source.decode(video=0)
            ]
        if frames:
            return frames, f"{CLIP.name} looped"
    y, x = np.mgrid[0 : height * 3 // 2, 0:width]
    frames = [((x + y + 8 * i) % 256).astype(np.uint8) for i in range(GOP)]
    return frames, "synthetic moving gradient"


@functools.lru_cache(maxsize=1)
def clip(width: int = 1280, height: int = 720) -> Clip:
    return encode_clip(width, height)


def encode_clip(width: int, height: int,
                picture: Callable[[np.ndarray, int], np.ndarray] | None = None,
                label: str = "") -> Clip:
    """The clip; `picture(yuv, i)` changes frame i first (bench.glass stamps its index)."""
    pictures, source = _pictures(width, height)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flv") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = VIDEO_BITRATE
        # B-frames as OBS/x264 default; a fixed GOP (no scene-cut keyframes) so segments are 2 s
        video.options = {
            "preset": "veryfast",
            "g": str(GOP),
            "keyint_min": str(GOP),
            "sc_threshold": "0",
            "maxrate": "3000k",
            "bufsize": "3000k",
        }
        audio = container.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        samples = 0
        for i in range(LOOP_MS * FPS // 1000):
            yuv = pictures[i % len(pictures)]
            frame = av.VideoFrame.from_ndarray(picture(yuv, i) if picture else yuv,
                                               format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in video.encode(frame):
                container.mux(packet)
            while samples < (i + 1) * SAMPLE_RATE // FPS:
                t = (np.arange(AAC_FRAME) + samples) / SAMPLE_RATE
                tone = (0.3 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
                pcm = av.AudioFrame.from_ndarray(
                    np.stack([tone, tone]), format="fltp", layout="stereo"
                )
                pcm.sample_rate, pcm.pts = SAMPLE_RATE, samples
                pcm.time_base = Fraction(1, SAMPLE_RATE)
                samples += AAC_FRAME
                for packet in audio.encode(pcm):
                    container.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                container.mux(packet)
    tags = _parse_flv(buffer.getvalue())
    headers = tuple(t for t in tags if t.type == 18 or (t.type in (8, 9) and t.body[1] == 0))
    media = tuple(
        t for t in tags if t.type in (8, 9) and t.body[1] == 1 and 0 <= t.timestamp < LOOP_MS
    )
    return Clip(headers, media, source + label, sum(len(t.body) for t in media))


# ---- the real-time publisher -------------------------------------------------------------


@dataclass
class Publication:
    """What the publisher did: `frame_times[i]` is when video frame i (decode order, counting
    across loops) was in the kernel."""

    frame_times: list[float] = field(default_factory=list)
    started: float = 0.0
    stopped: float = 0.0
    max_lag: float = 0.0  # the furthest a write fell behind its due time, seconds
    error: str | None = None


async def publish(port: int, stop: asyncio.Event, record: Publication, media: Clip,
                  key: str = SECRET) -> None:
    """Publish `media` under stream key `key` in real time, looped, until `stop` is set;
    never raises."""
    writer: asyncio.StreamWriter | None = None
    reader_task: asyncio.Task[None] | None = None
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.transport.set_write_buffer_limits(high=0)
        client = PublishClient("live", key, f"rtmp://127.0.0.1:{port}/live")
        published: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def read() -> None:
            while data := await reader.read(65536):
                for event in client.receive_data(data):
                    if isinstance(event, PublishStatus) and not published.done():
                        if event.code == "NetStream.Publish.Start":
                            published.set_result(None)
                        else:
                            published.set_exception(RuntimeError(f"publish refused: {event}"))
                if out := client.data_to_send():
                    writer.write(out)
            if not published.done():
                published.set_exception(ConnectionError("closed by golive before publish"))

        writer.write(client.data_to_send())
        reader_task = asyncio.create_task(read())
        await asyncio.wait_for(published, 10.0)
        for tag in media.headers:
            client.send_flv_tag(tag.type, 0, tag.body)
        writer.write(client.data_to_send())
        record.started = t0 = time.monotonic()
        loop = 0
        while not stop.is_set():
            base = loop * LOOP_MS
            for tag in media.media:
                due = t0 + (base + tag.timestamp) / 1000
                delay = due - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    if stop.is_set():
                        break
                else:
                    record.max_lag = max(record.max_lag, -delay)
                client.send_flv_tag(tag.type, base + tag.timestamp, tag.body)
                writer.write(client.data_to_send())
                await writer.drain()
                if tag.is_frame:
                    record.frame_times.append(time.monotonic())
                if reader_task.done():
                    raise ConnectionError("golive closed the connection")
            loop += 1
    except (OSError, ConnectionError, RuntimeError, TimeoutError) as exc:
        record.error = f"{type(exc).__name__}: {exc}"
    finally:
        record.stopped = time.monotonic()
        if reader_task is not None:
            reader_task.cancel()
        if writer is not None:
            writer.close()


# ---- golive with HLS, nginx serving its store -------------------------------------------


def golive_command() -> list[str]:
    script = Path(sys.executable).parent / "golive"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from golive.cli import main; sys.exit(main())"]


def wait_listening(server: ServerProcess, ports: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    pending = list(ports)
    while pending and time.monotonic() < deadline:
        if not server.alive():
            return False
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", pending[0])) == 0:
                pending.pop(0)
                continue
        time.sleep(0.05)
    return not pending


# The HLS benchmarks measure packaging and serving: no transcoding beside them.
HLS_ONLY = ("--key", f"{STREAM}={SECRET}", "--no-transcode")


class GoliveHls(ServerProcess):
    """`golive serve` with a TOML [hls] table; with `disk`, the store is a directory (else
    golive's default, in memory). `serve_args`: the rest of the command line (which keys
    publish, the ladder). `chat`: a [chat] table too; `state`: a state directory. The admin
    listener is on a port of its own (`admin_port`)."""

    name = "golive"

    def __init__(
        self, hls: dict[str, object], *, disk: bool = True, startup_timeout: float = 30.0,
        serve_args: tuple[str, ...] = HLS_ONLY, chat: dict[str, object] | None = None,
        state: bool = False,
    ) -> None:
        self.hls = hls
        self.disk = disk
        self.serve_args = serve_args
        self.chat = chat
        self.state = state
        self.startup_timeout = startup_timeout
        self.store_dir = ""
        self.http_port = self.admin_port = 0

    def _config(self) -> Path:
        settings = {**self.hls, **({"store_dir": self.store_dir} if self.disk else {})}
        lines = ['log_level = "WARNING"']
        for table, values in (("hls", settings), ("chat", self.chat)):
            if values is not None:  # (JSON's numbers, strings, lists and booleans are TOML's)
                lines += [f"[{table}]", *(f"{key} = {json.dumps(value)}"
                                          for key, value in values.items())]
        config = Path(self.dir) / "golive.toml"
        config.write_text("\n".join(lines) + "\n")
        return config

    def __enter__(self) -> GoliveHls:
        self.dir = tempfile.mkdtemp(prefix="golive-bench-hls-")
        self.store_dir = os.path.join(self.dir, "store")
        self._log = tempfile.TemporaryFile(prefix="golive-bench-hls-log-")
        config = self._config()
        try:
            for _attempt in range(3):  # a free port may be taken between bind and listen
                self.port, self.http_port = free_port(), free_port()
                ports = [self.port, self.http_port]
                # An admin listener of its own always: the default port may be another
                # server's (a second bench, a `make run`).
                self.admin_port = free_port()
                ports.append(self.admin_port)
                state = ["--admin-port", str(self.admin_port)]
                if self.state:
                    state += ["--state-dir", os.path.join(self.dir, "state")]
                cmd = [
                    *golive_command(),
                    "serve", "--config", str(config), *self.serve_args, *state,
                    "--host", "127.0.0.1", "--rtmp-port", str(self.port),
                    "--http-port", str(self.http_port), "--log-level", "WARNING",
                ]  # fmt: skip
                self.proc = subprocess.Popen(
                    cmd,
                    cwd=REPO,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=self._log,
                    preexec_fn=die_with_parent,
                )
                if wait_listening(self, ports, self.startup_timeout):
                    return self
                self._stop()
            raise RuntimeError(f"golive did not start; log:\n{self.log()}")
        except BaseException:
            self.__exit__(None, None, None)
            raise

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/live/{STREAM}/source/"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


NGINX_HTTP_CONF = """\
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 8192; }}
http {{
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp4 mp4 m4s;
    }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    # compressed per request when asked, like golive does (players send Accept-Encoding)
    gzip on;
    gzip_types application/vnd.apple.mpegurl;
    gzip_min_length 256;
    gzip_comp_level 5;
    server {{
        listen 127.0.0.1:{port};
        # playlists: a snapshot golive rendered (golive keeps them in memory only)
        location ~ \\.m3u8$ {{
            root {dir}/www;
            add_header Cache-Control "public, max-age=0";
            add_header Access-Control-Allow-Origin "*";
        }}
        # init, segments and parts: golive's store directory itself
        location /live/ {{
            alias {store}/;
            add_header Cache-Control "public, max-age=86400, immutable";
            add_header Access-Control-Allow-Origin "*";
        }}
    }}
}}
"""


class NginxHttp(ServerProcess):
    """nginx as one process serving golive's store directory as static files."""

    name = "nginx"

    def __init__(self, binary: str, store_dir: str, startup_timeout: float = 10.0) -> None:
        self.binary = binary
        self.store_dir = store_dir
        self.startup_timeout = startup_timeout

    def __enter__(self) -> NginxHttp:
        self.dir = tempfile.mkdtemp(prefix="golive-bench-nginx-http-")
        self._log = tempfile.TemporaryFile(prefix="golive-bench-nginx-http-log-")
        try:
            for _attempt in range(3):
                self.port = free_port()
                conf = Path(self.dir) / "nginx.conf"
                conf.write_text(
                    NGINX_HTTP_CONF.format(dir=self.dir, port=self.port, store=self.store_dir)
                )
                self.proc = subprocess.Popen(
                    [self.binary, "-p", self.dir + "/", "-e", "stderr", "-c", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=self._log,
                    preexec_fn=die_with_parent,
                )
                if wait_listening(self, [self.port], self.startup_timeout):
                    return self
                self._stop()
            raise RuntimeError(f"nginx did not start; log:\n{self.log()}")
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def put_playlist(self, relative: str, text: str) -> None:
        path = Path(self.dir) / "www" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/live/{STREAM}/source/"


# ---- playlists and fMP4 ------------------------------------------------------------------

_PART = re.compile(r'#EXT-X-PART:.*URI="part-(\d+)\.(\d+)\.m4s"')
_SEGMENT = re.compile(r"^seg-(\d+)\.m4s$")
_MAP = re.compile(r'#EXT-X-MAP:URI="([^"]+)"')


@dataclass
class Listing:
    """What one media playlist lists: parts (msn, index), complete segments, the init."""

    parts: list[tuple[int, int]]
    segments: list[int]
    init: str | None
    ended: bool


def parse_playlist(text: str) -> Listing:
    parts: list[tuple[int, int]] = []
    segments: list[int] = []
    init = None
    for line in text.splitlines():
        if m := _PART.match(line):
            parts.append((int(m.group(1)), int(m.group(2))))
        elif m := _SEGMENT.match(line):
            segments.append(int(m.group(1)))
        elif m := _MAP.match(line):
            init = m.group(1)
    return Listing(parts, segments, init, "#EXT-X-ENDLIST" in text)


def _boxes(data: bytes, start: int = 0, end: int | None = None):  # type: ignore[no-untyped-def]
    """(type, payload start, box end) of the ISO BMFF boxes in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8].decode("latin-1")
        header = 8
        if size == 1:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        yield kind, pos + header, pos + size
        pos += size


def video_track_id(init: bytes) -> int:
    """The track ID of the init segment's video track (handler 'vide')."""
    for kind, start, end in _boxes(init):
        if kind != "moov":
            continue
        for trak, t_start, t_end in _boxes(init, start, end):
            if trak != "trak":
                continue
            track_id = handler = None
            for box, b_start, b_end in _boxes(init, t_start, t_end):
                if box == "tkhd":
                    version = init[b_start]
                    offset = b_start + (20 if version == 1 else 12)
                    track_id = int.from_bytes(init[offset : offset + 4], "big")
                elif box == "mdia":
                    for sub, s_start, _s_end in _boxes(init, b_start, b_end):
                        if sub == "hdlr":
                            handler = init[s_start + 8 : s_start + 12]
            if handler == b"vide" and track_id is not None:
                return track_id
    raise ValueError("no video track in the init segment")


def video_samples(fragment: bytes, track_id: int) -> int:
    """How many samples of `track_id` the fragments (moof/mdat pairs) in `fragment` carry."""
    count = 0
    for kind, start, end in _boxes(fragment):
        if kind != "moof":
            continue
        for traf, t_start, t_end in _boxes(fragment, start, end):
            if traf != "traf":
                continue
            boxes = list(_boxes(fragment, t_start, t_end))
            tfhd = next((s for k, s, _ in boxes if k == "tfhd"), None)
            if tfhd is None or int.from_bytes(fragment[tfhd + 4 : tfhd + 8], "big") != track_id:
                continue
            for box, b_start, _ in boxes:
                if box == "trun":
                    count += int.from_bytes(fragment[b_start + 4 : b_start + 8], "big")
    return count


def percentiles(values: list[float], points: tuple[float, ...] = (50, 95)) -> list[float]:
    if not values:
        return [math.nan for _ in points]
    return [float(v) for v in np.percentile(np.asarray(values), points)]


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)
