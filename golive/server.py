"""Composition root: builds every stage from a `Config` and runs them in one event loop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry, disable_created_metrics

from golive import process_metrics
from golive.allocator import tune_allocator
from golive.chat.metrics import ChatMetrics
from golive.chat.records import TimelineRecord
from golive.chat.service import ChatService
from golive.chat.store import AsyncChatStore
from golive.config import Config
from golive.hub import Hub
from golive.ingest.key_store import KeyStore
from golive.ingest.metrics import IngestMetrics
from golive.ingest.server import IngestService
from golive.origin import hls
from golive.origin.admin import add_routes as add_admin_routes
from golive.origin.admin import build_admin_app
from golive.origin.app import build_app
from golive.origin.connections import GuardedAppRunner
from golive.origin.metrics import AdminMetrics
from golive.packager.broadcast import SUBSCRIBER
from golive.packager.metrics import PackagerMetrics
from golive.packager.playlist import DateRange
from golive.packager.service import PackagerService
from golive.packager.store import DiskStore, FallbackStore, MemoryStore, MirroredStore, Store
from golive.stream_series import StreamSeries
from golive.transcode.audio import AudioToAac
from golive.transcode.service import Transcoder

log = logging.getLogger("golive")
T = TypeVar("T")


class Server:
    """Everything golive runs, started and stopped together."""

    def __init__(self, config: Config) -> None:
        config.admin.check_exposure()
        self.config = config
        # Every counter would otherwise get a `_created` twin series that nobody graphs.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        self.metrics = IngestMetrics(self.registry)
        self.hub = Hub(on_drop=self._count_drop)
        # The packager's drop count exists at 0 from a stream's start (alerts need it then).
        self.hub.on_publish(
            lambda stream: self.metrics.hub_dropped.labels(stream.name, SUBSCRIBER))
        self.key_store = KeyStore(config.state_dir) if config.state_dir else None
        self.ingest = IngestService(config.ingest, self.hub, self.metrics, self.key_store)
        self.packager_metrics = PackagerMetrics(self.registry)
        self.store: Store = MemoryStore()
        if config.hls.store_dir:  # a failing disk: the stream goes on from memory, counted
            # Served from a copy in memory: on uvloop, files go out without sendfile.
            self.store = MirroredStore(FallbackStore(DiskStore(config.hls.store_dir),
                                                     self._count_store_error))
        self.transcoder = (Transcoder(config.transcode, self.registry)
                           if config.transcode.enabled else None)
        audio = (AudioToAac(config.transcode.audio_bitrate, self.registry)
                 if config.transcode.audio == "aac" else None)
        # Every stage's per-stream series, removed together when a broadcast is over.
        self.stream_series = StreamSeries()
        self.stream_series.add_from(self.metrics, self.packager_metrics,
                                    *([self.transcoder.metrics] if self.transcoder else []),
                                    *([audio] if audio else []))
        self.packager = PackagerService(config.hls, self.hub, self.store, self.packager_metrics,
                                        self.transcoder, audio,
                                        forget_stream=self.stream_series.forget)
        process_metrics.register(self.registry, self.transcoder.pool.worker_pids
                                 if self.transcoder else dict)
        self.chat_metrics = ChatMetrics(self.registry)
        self.chat = (ChatService(config.chat, self.chat_metrics, hls_viewers=self._hls_viewers,
                                 live_date=self.packager.live_date,
                                 on_timeline=self._place_on_timeline,
                                 recording_dir=self.packager.recording_dir)
                     if config.chat.enabled else None)
        self.chat_store: AsyncChatStore | None = None
        self.app = build_app(self.registry, self.hub, self.packager, config.hls.player_dir,
                             known_names=self._known_names, chat=self.chat,
                             check_key=self.ingest.keys.is_key_of,
                             admin_token=config.admin.token)
        admin = config.admin
        admin_metrics = AdminMetrics(self.registry)
        if admin.token is not None:  # the operator chose a token: admin on the public port too
            add_admin_routes(self.app, self.ingest, self.key_store, admin_metrics, admin.token)
        self.admin_app = (build_admin_app(self.app, self.ingest, self.key_store, admin_metrics,
                                          admin.token) if admin.listen else None)
        self._runner: web.AppRunner | None = None
        self._admin_runner: web.AppRunner | None = None
        self.http_port = config.http.port
        self.admin_port: int | None = admin.port if admin.listen else None

    def _known_names(self) -> frozenset[str] | None:
        """Names a publisher may come under; None when any may (open mode, a webhook)."""
        ingest = self.config.ingest
        return None if ingest.open or ingest.webhook_url else self.ingest.keys.names()

    def _hls_viewers(self, stream: str) -> int:
        return self.app[hls.VIEWERS].count(stream)

    def _place_on_timeline(self, record: TimelineRecord) -> None:
        """A chat event as an EXT-X-DATERANGE in every rendition (and the recording)."""
        if record.pdt is None:  # not live: there is no frame to mark
            return
        attributes = {"X-GOLIVE-LABEL": record.label, **{
            f"X-GOLIVE-{name}": value for name, value in record.attributes.items()}}
        self.packager.add_date_range(record.stream, DateRange(
            f"golive-{record.id}", f"io.golive.{record.kind}", record.pdt, record.duration,
            tuple(attributes.items())))

    def _count_drop(self, stream: str, subscriber: str, count: int) -> None:
        self.metrics.hub_dropped.labels(stream, subscriber).inc(count)

    def _count_store_error(self, stream: str, operation: str) -> None:
        self.packager_metrics.store_write_errors.labels(stream, operation).inc()

    async def start(self) -> None:
        # Media buffers are reused in place rather than given back and faulted in again
        # (allocator.py): a setting of the whole process, so made by what runs it.
        tune_allocator()
        await self.ingest.start()
        if self.chat is not None:
            if self.config.state_dir:  # chat history, bans, the ledger: kept across restarts
                self.chat_store = await AsyncChatStore.open(
                    self.config.state_dir,
                    on_error=lambda operation: self.chat_metrics.store_errors.labels(
                        operation).inc(),
                    on_drop=lambda operation: self.chat_metrics.store_errors.labels(
                        operation).inc())
                self.chat.store = self.chat_store
            await self.chat.start()
        self._runner = GuardedAppRunner(self.app, self.config.http, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.http.host, self.config.http.port,
                           reuse_address=True)
        await site.start()
        if self._runner.addresses:  # port 0 means "any free port": learn which
            self.http_port = self._runner.addresses[0][1]
        if self.admin_app is not None:
            # The public port's connection limits too: with a token it may face the network.
            self._admin_runner = GuardedAppRunner(self.admin_app, self.config.http,
                                                  access_log=None)
            await self._admin_runner.setup()
            await web.TCPSite(self._admin_runner, self.config.admin.host,
                              self.config.admin.port, reuse_address=True).start()
            if self._admin_runner.addresses:
                self.admin_port = self._admin_runner.addresses[0][1]

    def stopping(self) -> None:
        """The server is told to stop. Called from the signal handler itself: a worker ended
        by the same signal (SIGTERM to the process group) may be noticed dead before the
        main task gets to `close`, and must not be restarted then."""
        if self.transcoder is not None:
            self.transcoder.shutting_down()

    async def close(self) -> None:
        self.stopping()
        await self.ingest.close()
        if self.chat is not None:
            await self.chat.close()
        if self.chat_store is not None:
            await self.chat_store.close()
        await self.packager.close()
        if self.transcoder is not None:
            await self.transcoder.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
        if self.key_store is not None:
            self.key_store.close()


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run the composition's event loop: uvloop where it is installed (Linux, macOS), whose
    socket reads cost a fraction of asyncio's own, else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


async def serve_forever(config: Config, on_started: Callable[[Server], None]) -> None:
    server = Server(config)
    await server.start()
    on_started(server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stopping() -> None:
        server.stopping()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await server.close()
        log.info("shut down: every stream ended, the transcode workers stopped")
