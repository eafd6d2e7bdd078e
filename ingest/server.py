"""The asyncio edge of ingest: sockets in, protocol core in the middle, hub out.

Each connection is an `asyncio.Protocol` that pumps bytes into a `ServerConnection` and acts
on its events. Work that must wait (asking a webhook whether a key may publish, probing a
codec's picture size with PyAV in a thread) pauses reading the socket until it is done, so
nothing is buffered beyond one read; everything else runs synchronously in `data_received`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any, cast
from urllib.parse import urlsplit

from golive.codecs import aac_rate_and_channels
from golive.hub import Hub, LiveStream
from golive.media import MediaUnit, Track, TrackKind

from .chunk import ChunkLimits
from .config import MIN_KEY_LENGTH, IngestConfig
from .connection import ConnectionConfig, ServerConnection
from .demux import probe_audio, probe_video, video_geometry
from .errors import ProtocolError
from .events import (
    CodecConfigured,
    Connected,
    ConnectRejected,
    HandshakeComplete,
    MessageDropped,
    MetadataReceived,
    PlayRequested,
    PublishRequested,
    PublishStopped,
    TimedOut,
)
from .key_store import KeyStore
from .keys import KeyTable
from .metrics import IngestMetrics
from .webhook import PublishWebhook

log = logging.getLogger("golive.ingest")

_VIDEO = TrackKind.VIDEO
# asyncio's default of 100 made hundreds of encoders reconnecting at once (after a network
# blip) wait for SYN retransmits; the kernel caps it at net.core.somaxconn anyway.
LISTEN_BACKLOG = 1024
_DROPS_LOGGED_PER_CONNECTION = 5


def refused_connect_hint(app: str, tc_url: str, served: str,
                         is_key: Callable[[str], bool]) -> str:
    """What to change when a connect named an application other than `served`, in the words
    of an encoder's settings (OBS: Server and Stream Key; FFmpeg: one URL). It never quotes
    what may be a stream key: a key pasted into the server URL arrives in `app`."""
    base = _server_url(tc_url, served)
    first, _, rest = app.partition("/")
    if first == served and rest:  # OBS given rtmp://host/live/KEY as its Server
        return (f"the stream key was put in the server URL: use Server {base} and put the key "
                "in Stream Key only")
    ffmpeg = f"(FFmpeg: {base}/<stream key>)"
    if not app:
        return (f"the server URL has no application: use Server {base}, the key in Stream "
                f"Key {ffmpeg}")
    if is_key(first) or is_key(app):  # rtmp://host/KEY
        return (f"the stream key was put where the application goes: use Server {base} and "
                f"put the key in Stream Key {ffmpeg}")
    # An application name is a short word; a longer one may be a key nobody configured (open
    # mode, the webhook's, a wrong one), so it is not shown.
    what = repr(first) if len(first) < MIN_KEY_LENGTH else "(not shown: it may be a stream key)"
    return f"unknown application {what}: use Server {base}, the key in Stream Key {ffmpeg}"


def _server_url(tc_url: str, served: str) -> str:
    """The encoder's own scheme://host:port (from its tcUrl) with the application we serve;
    the tcUrl's path and query, where a key may be, are left out."""
    unknown = f"rtmp://<this server>/{served}"
    try:
        parts = urlsplit(tc_url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        return unknown
    if parts.scheme not in ("rtmp", "rtmps") or not host:
        return unknown
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}/{served}"


class IngestService:
    """Owns the RTMP listeners, the live connections and the publish policy."""

    def __init__(self, config: IngestConfig, hub: Hub, metrics: IngestMetrics,
                 key_store: KeyStore | None = None) -> None:
        self.config = config
        self.hub = hub
        self.metrics = metrics
        self.keys = KeyTable(config.keys, open_mode=config.open, store=key_store)
        self.webhook = (PublishWebhook(config.webhook_url, config.webhook_timeout)
                        if config.webhook_url else None)
        self.connection_config = ConnectionConfig(
            apps=frozenset({config.app}),
            chunk_limits=ChunkLimits(max_message_size=config.max_message_size),
            handshake_timeout=config.handshake_timeout,
            idle_timeout=config.idle_timeout,
        )
        self.connections: set[RtmpProtocol] = set()
        self.publishers: dict[str, RtmpProtocol] = {}
        self._servers: list[asyncio.Server] = []
        self.rtmp_port = config.port
        self.rtmps_port: int | None = None

    async def start(self) -> None:
        for name in self.config.short_key_streams():  # the stream's name only: never its key
            log.warning("stream %r has a stream key shorter than %d characters: easy to guess; "
                        "use a long random one", name, MIN_KEY_LENGTH)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: RtmpProtocol(self), self.config.host,
                                          self.config.port, reuse_address=True,
                                          backlog=LISTEN_BACKLOG)
        self._servers.append(server)
        self.rtmp_port = server.sockets[0].getsockname()[1]
        if self.config.tls_cert and self.config.tls_key:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
            tls = await loop.create_server(
                lambda: RtmpProtocol(self, secure=True), self.config.host,
                self.config.rtmps_port, ssl=context, reuse_address=True, backlog=LISTEN_BACKLOG,
                ssl_handshake_timeout=self.config.handshake_timeout)
            self._servers.append(tls)
            self.rtmps_port = tls.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.abort("server shutting down")
        for server in self._servers:
            await server.wait_closed()
        if self.webhook is not None:
            await self.webhook.close()

    def kick(self, name: str) -> bool:
        """Close the connection publishing `name`, as a network drop would (the broadcast
        keeps its playlists for the grace period). False when nobody publishes it. An
        encoder that reconnects with the same key comes back: rotate the key to keep it out."""
        publisher = self.publishers.get(name)
        if publisher is None:
            return False
        publisher.abort("kicked by an operator")
        return True

    async def authorize(self, request: PublishRequested, client: str,
                        connected: Connected | None) -> tuple[str | None, str]:
        """(public name, "") when the key may publish, else (None, refusal reason)."""
        if self.webhook is not None:
            form = {
                "call": "publish", "app": self.config.app, "name": request.key,
                "type": request.publish_type, "addr": client,
                "flashver": connected.flash_ver if connected else "",
                "tcurl": connected.tc_url if connected else "",
            }
            known = self.keys.name_for(request.key)
            if known:
                form["stream"] = known
            decision = await self.webhook.on_publish(form)
            if not decision.allowed:
                return None, decision.reason or "webhook_denied"
            name = self.keys.name_for(request.key, chosen=decision.name, authorized=True)
            return (name, "") if name else (None, "webhook returned an invalid stream name")
        name = self.keys.name_for(request.key)
        return (name, "") if name else (None, "unknown stream key")

    def notify_unpublished(self, stream: LiveStream, key: str, client: str) -> None:
        if self.webhook is not None:
            # nginx-rtmp's on_publish_done form: the operator's service knows streams by key.
            form = {"call": "publish_done", "app": self.config.app, "name": key,
                    "stream": stream.name, "addr": client}
            task = asyncio.get_running_loop().create_task(self.webhook.on_unpublish(form))
            _background.add(task)
            task.add_done_callback(_background.discard)


_background: set[asyncio.Task[Any]] = set()


class RtmpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, service: IngestService, *, secure: bool = False) -> None:
        self.service = service
        self.secure = secure
        # The core's clock is the loop's, so that its deadlines can be armed with call_at.
        self._loop = asyncio.get_running_loop()
        self.core = ServerConnection(service.connection_config, now=self._loop.time())
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self.transport: asyncio.Transport | None = None
        self.client = "?"
        self.stream: LiveStream | None = None
        self.connected: Connected | None = None
        self._key = ""
        # Reads (and when they arrived) waiting behind an async step.
        self._backlog: list[tuple[bytes, float]] = []
        self._waiting = False
        self._pending_tracks: dict[TrackKind, CodecConfigured] = {}
        self._metadata: dict[str, Any] = {}
        self._units = {TrackKind.VIDEO: 0, TrackKind.AUDIO: 0}
        self._closed = False
        self._result = "ok"
        self._drops_logged = 0

    # ---- asyncio callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        service = self.service
        if len(service.connections) >= service.config.max_connections:
            log.warning("rtmp %s: refused, %d connections open (ingest.max_connections)",
                        self.client, len(service.connections))
            service.metrics.connections_closed.labels("over_limit").inc()
            self._closed = True
            transport.abort()
            return
        service.connections.add(self)
        service.metrics.connections.inc()
        log.debug("rtmp %s: connected%s", self.client, " (rtmps)" if self.secure else "")
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        now = self._loop.time()
        if self._waiting:
            # Reading is paused, but a transport may still hand over what it had read.
            self._backlog.append((data, now))
            return
        self._feed(data, now)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish("client closed" if exc is None else f"connection lost: {exc}")

    # ---- core --------------------------------------------------------------------------

    def _feed(self, data: bytes, now: float) -> None:
        try:
            events = self.core.receive_data(data, now)
        except ProtocolError as exc:
            self._protocol_error(exc)
            return
        stream = self.stream
        if stream is not None:
            stream.bytes_in += len(data)
            self._m_bytes.inc(len(data))
        if events:
            self._process(events, 0)
        else:
            self._flush()

    def _process(self, events: list[Any], start: int) -> None:
        """Act on events in order; stops (and pauses reading) at one that must wait.

        A read's units go to the hub together (`LiveStream.push_all`), in order, before
        anything else the read brought is acted on."""
        units = self._units
        stream = self.stream
        batch: list[MediaUnit] = []
        for index in range(start, len(events)):
            event = events[index]
            if type(event) is MediaUnit:
                if stream is None:
                    continue
                if event.kind in self._pending_tracks:
                    if event.kind is _VIDEO and not event.keyframe:
                        continue  # a track starts at a keyframe: nothing before it decodes
                    if batch:
                        stream.push_all(batch)
                        batch = []
                    track = self._track_from_headers(event)
                    if track is None:
                        self._wait(self._probe(event), events, index + 1)
                        break
                    self._start_track(track, event)
                    continue
                batch.append(event)
                units[event.kind] += 1
                continue
            if batch:
                assert stream is not None
                stream.push_all(batch)
                batch = []
            if self._handle(event):
                self._wait(self._authorize(event), events, index + 1)
                break
            stream = self.stream
        if batch:
            assert stream is not None
            stream.push_all(batch)
        self._flush_unit_counts()
        self._flush()

    def _handle(self, event: Any) -> bool:
        """Non-media events; True when the event needs an asynchronous decision."""
        if isinstance(event, CodecConfigured):
            self._pending_tracks[event.kind] = event
        elif isinstance(event, MetadataReceived):
            # (The core already skips GStreamer's identical re-sends, ~8 a second.)
            self._metadata = event.values
            if self.stream is not None:
                self.stream.metadata = dict(event.values)
        elif isinstance(event, PublishRequested):
            return True
        elif isinstance(event, PublishStopped):
            self._end_publication(f"publisher sent {event.reason}")
        elif isinstance(event, MessageDropped):
            self.service.metrics.protocol_errors.labels(event.kind).inc()
            # A broken encoder can do this on every frame: log a few, count them all.
            self._drops_logged += 1
            if self._drops_logged <= _DROPS_LOGGED_PER_CONNECTION:
                log.warning("rtmp %s stream=%s: skipped a message (%s): %s%s", self.client,
                            self._stream_name(), event.kind, event.reason,
                            "; further ones are only counted in "
                            "golive_rtmp_protocol_errors_total"
                            if self._drops_logged == _DROPS_LOGGED_PER_CONNECTION else "")
        elif isinstance(event, Connected):
            self.connected = event
            log.info("rtmp %s: connect app=%s flashVer=%r%s", self.client, event.app,
                     event.flash_ver, f" fourCcList={list(event.fourcc_list)}"
                     if event.fourcc_list else "")
        elif isinstance(event, HandshakeComplete):
            self.service.metrics.handshakes.labels("digest" if event.digest else "simple").inc()
        elif isinstance(event, ConnectRejected):
            self.service.metrics.publish_refused.labels("unknown_app").inc()
            log.warning("rtmp %s: refused connect: %s", self.client, refused_connect_hint(
                event.app, event.tc_url, self.service.config.app, self.service.keys.is_key))
            self._result = "refused"
        elif isinstance(event, PlayRequested):
            log.warning("rtmp %s: refused RTMP play (playback is HLS)", self.client)
            self._result = "refused"
        return False

    def _wait(self, step: Any, events: list[Any], resume_at: int) -> None:
        """Run an async step with reading paused, then continue with the events after it."""
        assert self.transport is not None
        self._waiting = True
        self.transport.pause_reading()
        self._flush_unit_counts()
        self._flush()
        task = asyncio.get_running_loop().create_task(step)
        _background.add(task)

        def resume(done: asyncio.Task[Any]) -> None:
            _background.discard(done)
            if self._closed:
                return
            if not done.cancelled() and done.exception() is not None:
                log.error("rtmp %s stream=%s: internal error", self.client, self._stream_name(),
                          exc_info=done.exception())
                self.abort("internal error")
                return
            self._waiting = False
            backlog, self._backlog = self._backlog, []
            self._process(events, resume_at)
            for data, arrived in backlog:
                if self._waiting or self._closed:
                    self._backlog.append((data, arrived))
                else:
                    self._feed(data, arrived)
            if not self._waiting and not self._closed and self.transport is not None:
                self.transport.resume_reading()

        task.add_done_callback(resume)

    async def _authorize(self, request: PublishRequested) -> None:
        service = self.service
        name, reason = await service.authorize(request, self.client, self.connected)
        if self._closed:
            return
        if name is None:
            service.metrics.publish_refused.labels(
                "webhook" if service.webhook else "bad_key").inc()
            log.warning("rtmp %s: publish refused: %s", self.client, reason)
            code = "NetStream.Publish.BadName" if service.webhook is None \
                else "NetStream.Publish.Denied"
            self.core.reject_publish(request.stream_id, code, "publish refused: " + reason)
            self._result = "refused"
            self._flush()
            return
        previous = service.publishers.get(name)
        if previous is not None and previous is not self:
            # An encoder reconnecting after a network drop: the new connection wins.
            service.metrics.takeovers.inc()
            log.info("rtmp %s stream=%s: takes over from %s", self.client, name, previous.client)
            previous.abort("replaced by a new publisher with the same key")
        self.core.accept_publish(request.stream_id)
        self._key = request.key  # only for the webhook's publish_done call; never logged
        self.stream = service.hub.start(name, self.client)
        self.stream.metadata = dict(self._metadata)
        service.publishers[name] = self
        service.metrics.publishers.inc()
        self._m_bytes = service.metrics.ingest_bytes.labels(name)
        self._m_units = {kind: service.metrics.ingest_units.labels(name, kind.value)
                         for kind in TrackKind}
        log.info("rtmp %s stream=%s: publishing (%s)", self.client, name,
                 "rtmps" if self.secure else "rtmp")

    def _track_from_headers(self, unit: MediaUnit) -> Track | None:
        """Complete a track without decoding, when the headers tell enough (the common
        case: libavcodec's parsers for video, the AudioSpecificConfig for AAC)."""
        config = self._pending_tracks[unit.kind]
        if unit.kind is _VIDEO:
            video = video_geometry(config.codec, config.extradata, unit.data)
            if video is None:
                return None
            return Track(unit.kind, config.codec, config.extradata,
                         codec_string=config.codec_string, width=video.width,
                         height=video.height, pix_fmt=video.pix_fmt,
                         frame_rate=_frame_rate(self._metadata))
        audio = aac_rate_and_channels(config.extradata) if config.codec == "aac" else None
        if audio is None:
            return None
        return Track(unit.kind, config.codec, config.extradata,
                     codec_string=config.codec_string, sample_rate=audio[0], channels=audio[1])

    async def _probe(self, unit: MediaUnit) -> None:
        """Complete a track by decoding its first unit with PyAV in a worker thread."""
        config = self._pending_tracks[unit.kind]
        track = Track(unit.kind, config.codec, config.extradata, codec_string=config.codec_string)
        try:
            if unit.kind is _VIDEO:
                video = await asyncio.to_thread(probe_video, config.codec, config.extradata,
                                                unit.data)
                track = Track(unit.kind, config.codec, config.extradata,
                              codec_string=config.codec_string, width=video.width,
                              height=video.height, pix_fmt=video.pix_fmt,
                              frame_rate=_frame_rate(self._metadata))
            else:
                audio = await asyncio.to_thread(probe_audio, config.codec, config.extradata,
                                                unit.data)
                track = Track(unit.kind, config.codec, config.extradata,
                              codec_string=config.codec_string,
                              sample_rate=audio.sample_rate, channels=audio.channels)
        except ValueError as exc:
            self.service.metrics.protocol_errors.labels("probe").inc()
            log.warning("rtmp %s stream=%s: could not probe %s (%s); using what the "
                        "publisher declared", self.client, self._stream_name(), config.codec, exc)
            track = _declared_track(track, self._metadata)
        if self.stream is not None and not self._closed:
            self._start_track(track, unit)

    def _start_track(self, track: Track, unit: MediaUnit) -> None:
        stream = self.stream
        assert stream is not None
        del self._pending_tracks[unit.kind]
        stream.set_track(track)
        log.info("rtmp %s stream=%s: %s track %s", self.client, stream.name, unit.kind.value,
                 _describe(track))
        stream.push(unit)
        self._units[unit.kind] += 1

    # ---- output and teardown -----------------------------------------------------------

    def _flush(self) -> None:
        out = self.core.data_to_send()
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            transport.write(out)
        if self.core.close_requested and not self._closed:
            self._close_after_write()
        if not self._closed:
            self._arm_timer()

    def _flush_unit_counts(self) -> None:
        units = self._units
        if self.stream is not None and (units[TrackKind.VIDEO] or units[TrackKind.AUDIO]):
            for kind, count in units.items():
                if count:
                    self._m_units[kind].inc(count)
                    units[kind] = 0

    def _close_after_write(self) -> None:
        if self.transport is not None:
            self.transport.close()  # flushes what is buffered, then closes
        self._finish("closed by server")

    def abort(self, reason: str) -> None:
        if self.transport is not None and not self._closed:
            log.info("rtmp %s stream=%s: closing: %s", self.client, self._stream_name(), reason)
            self.transport.abort()
        self._finish(reason)

    # ---- deadlines: one timer per connection, at the core's next deadline ---------------

    def _arm_timer(self) -> None:
        """Arm (or bring forward) the timer; called after every read, it is a comparison. A
        deadline that moved later (bytes came in) is left alone: the timer fires early, the
        core says so and the timer is re-armed then, once per deadline instead of per read."""
        deadline = self.core.next_deadline()
        if deadline is None or deadline >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline, self._on_timer)
        self._timer_at = deadline

    def _on_timer(self) -> None:
        armed_for, self._timer, self._timer_at = self._timer_at, None, math.inf
        if self._closed:
            return
        # A timer may run a hair before its time (uvloop's clock counts whole milliseconds):
        # it is the deadline's time, or the core would not see it passed and the timer
        # would spin until the clock ticks.
        for event in self.core.handle_timer(max(self._loop.time(), armed_for)):
            if isinstance(event, TimedOut):
                self.service.metrics.protocol_errors.labels(event.kind).inc()
                self._result = "timeout"
                self.abort(event.reason)
                return
        self._arm_timer()

    def _protocol_error(self, exc: ProtocolError) -> None:
        self.service.metrics.protocol_errors.labels(exc.kind).inc()
        log.warning("rtmp %s stream=%s: protocol error (%s): %s; dropping the connection",
                    self.client, self._stream_name(), exc.kind, exc)
        self._result = "protocol_error"
        self._flush_unit_counts()
        self.abort("protocol error")

    def _end_publication(self, reason: str) -> None:
        stream = self.stream
        if stream is None:
            return
        self._flush_unit_counts()
        self.stream = None
        service = self.service
        if service.publishers.get(stream.name) is self:
            del service.publishers[stream.name]
        service.hub.end(stream)
        service.metrics.publishers.dec()
        service.notify_unpublished(stream, self._key, self.client)
        log.info("rtmp %s stream=%s: publishing ended (%s) after %.1f s, %d bytes", self.client,
                 stream.name, reason, time.time() - stream.started_at, stream.bytes_in)

    def _finish(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._end_publication(reason)
        service = self.service
        if self in service.connections:
            service.connections.discard(self)
            service.metrics.connections.dec()
            service.metrics.connections_closed.labels(self._result).inc()
        log.debug("rtmp %s: disconnected (%s)", self.client, reason)

    def _stream_name(self) -> str:
        return self.stream.name if self.stream is not None else "-"


def _frame_rate(metadata: dict[str, Any]) -> Fraction | None:
    value = metadata.get("framerate") or metadata.get("videoframerate")
    if isinstance(value, int | float) and 0 < value < 1000:
        return Fraction(value).limit_denominator(1001)
    return None


def _declared_track(track: Track, metadata: dict[str, Any]) -> Track:
    def number(key: str) -> int:
        value = metadata.get(key)
        return int(value) if isinstance(value, int | float) and 0 <= value < 1 << 20 else 0

    if track.kind is _VIDEO:
        return Track(track.kind, track.codec, track.extradata, codec_string=track.codec_string,
                     width=number("width"), height=number("height"),
                     frame_rate=_frame_rate(metadata))
    return Track(track.kind, track.codec, track.extradata, codec_string=track.codec_string,
                 sample_rate=number("audiosamplerate"),
                 channels=2 if metadata.get("stereo") else 1)


def _describe(track: Track) -> str:
    if track.kind is _VIDEO:
        rate = f" @{float(track.frame_rate):g} fps" if track.frame_rate else ""
        return f"{track.codec} {track.width}x{track.height}{rate} ({track.codec_string})"
    return f"{track.codec} {track.sample_rate} Hz {track.channels} ch ({track.codec_string})"
