"""Fixtures and helpers for tests that run a real golive server in the test's event loop."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from golive.config import Config
from golive.hub import Hub, LiveStream, StreamEnded, Subscription
from golive.ingest.config import IngestConfig
from golive.media import MediaUnit, Track, TrackKind
from golive.origin.config import HttpConfig
from golive.packager.config import HlsConfig
from golive.server import Server
from golive.transcode.config import TranscodeConfig

MakeServer = Callable[..., Awaitable[Server]]


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Async tests run on the loop `golive serve` runs on: uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:
        return {"asyncio": asyncio.new_event_loop}
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
async def make_server() -> AsyncIterator[MakeServer]:
    """`await make_server(**ingest_settings)`: a started Server on free loopback ports,
    closed after the test."""
    servers: list[Server] = []

    async def make(hls: HlsConfig | None = None, transcode: TranscodeConfig | None = None,
                   **ingest: Any) -> Server:
        config = Config(ingest=IngestConfig(host="127.0.0.1", port=0, **ingest),
                        http=HttpConfig(host="127.0.0.1", port=0), hls=hls or HlsConfig(),
                        transcode=transcode or TranscodeConfig())
        server = Server(config)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await asyncio.wait_for(server.close(), 10)


class StreamWatcher:
    """Subscribes to every stream the moment it starts (hub.on_publish), so a test sees a
    publication from its first unit on."""

    def __init__(self, hub: Hub, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._started: defaultdict[str, asyncio.Queue[tuple[LiveStream, Subscription]]] = (
            defaultdict(asyncio.Queue))
        hub.on_publish(self._on_publish)

    def _on_publish(self, stream: LiveStream) -> None:
        self._started[stream.name].put_nowait(
            (stream, stream.subscribe("test", capacity=self.capacity)))

    async def next(self, name: str, timeout: float = 10.0) -> tuple[LiveStream, Subscription]:
        """The next publication of `name` (already started ones first)."""
        return await asyncio.wait_for(self._started[name].get(), timeout)


@dataclass
class Received:
    tracks: list[Track] = field(default_factory=list)
    units: list[MediaUnit] = field(default_factory=list)
    ended: bool = False

    def track(self, kind: TrackKind) -> Track:
        [track] = [t for t in self.tracks if t.kind is kind]
        return track

    def of(self, kind: TrackKind) -> list[MediaUnit]:
        return [u for u in self.units if u.kind is kind]


async def collect(subscription: Subscription, *, units: int | None = None,
                  timeout: float = 10.0, into: Received | None = None) -> Received:
    """Read a subscription until the stream ends, or until `units` more media units came."""
    received = into or Received()
    wanted = None if units is None else len(received.units) + units

    async def read() -> None:
        while wanted is None or len(received.units) < wanted:
            try:
                item = await subscription.get()
            except StreamEnded:
                received.ended = True
                return
            if isinstance(item, Track):
                received.tracks.append(item)
            else:
                received.units.append(item)

    await asyncio.wait_for(read(), timeout)
    return received


class Metrics:
    """One /metrics scrape, parsed with prometheus_client's own parser."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def get(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels; None when the series does not exist."""
        return self.samples.get((name, frozenset(labels.items())))

    def count(self, name: str, **labels: str) -> float:
        """A counter that may not have been touched yet (labelled series appear on first use)."""
        return self.get(name, **labels) or 0.0

    def series(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for (n, labels) in self.samples if n == name]


async def http_get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}{path}",
            timeout=aiohttp.ClientTimeout(total=5)) as response:
        return response.status, await response.text()


async def scrape(server: Server) -> Metrics:
    status, text = await http_get(server.http_port, "/metrics")
    assert status == 200
    return Metrics(text)


async def eventually(condition: Callable[[], bool], timeout: float = 5.0,
                     what: str = "condition") -> None:
    """For state that changes without an event to await (e.g. the server noticing a closed
    socket): poll briefly, fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
