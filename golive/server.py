"""Composition root: builds every stage from a `Config` and runs them in one event loop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry

from golive.config import Config
from golive.hub import Hub
from golive.ingest.key_store import KeyStore
from golive.ingest.metrics import IngestMetrics
from golive.ingest.server import IngestService
from golive.origin.app import build_app
from golive.origin.connections import GuardedAppRunner
from golive.packager.metrics import PackagerMetrics
from golive.packager.service import PackagerService
from golive.packager.store import DiskStore, MemoryStore, Store
from golive.transcode.audio import AudioToAac
from golive.transcode.service import Transcoder

log = logging.getLogger("golive")
T = TypeVar("T")


class Server:
    """Everything golive runs, started and stopped together."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.registry = CollectorRegistry()
        self.metrics = IngestMetrics(self.registry)
        self.hub = Hub(on_drop=self._count_drop)
        self.key_store = KeyStore(config.state_dir) if config.state_dir else None
        self.ingest = IngestService(config.ingest, self.hub, self.metrics, self.key_store)
        self.store: Store = (DiskStore(config.hls.store_dir) if config.hls.store_dir
                             else MemoryStore())
        self.transcoder = (Transcoder(config.transcode, self.registry)
                           if config.transcode.enabled else None)
        audio = (AudioToAac(config.transcode.audio_bitrate, self.registry)
                 if config.transcode.audio == "aac" else None)
        self.packager = PackagerService(config.hls, self.hub, self.store,
                                        PackagerMetrics(self.registry), self.transcoder, audio)
        self.app = build_app(self.registry, self.hub, self.packager, config.hls.player_dir)
        self._runner: web.AppRunner | None = None
        self.http_port = config.http.port

    def _count_drop(self, stream: str, subscriber: str, count: int) -> None:
        self.metrics.hub_dropped.labels(stream, subscriber).inc(count)

    async def start(self) -> None:
        await self.ingest.start()
        self._runner = GuardedAppRunner(self.app, self.config.http, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.http.host, self.config.http.port,
                           reuse_address=True)
        await site.start()
        if self._runner.addresses:  # port 0 means "any free port": learn which
            self.http_port = self._runner.addresses[0][1]

    async def close(self) -> None:
        await self.ingest.close()
        await self.packager.close()
        if self.transcoder is not None:
            await self.transcoder.close()
        if self._runner is not None:
            await self._runner.cleanup()
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
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await server.close()
