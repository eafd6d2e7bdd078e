"""Fixtures and hooks for tests that run a real golive server in the test's event loop (the
helpers they share are in helpers.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from helpers import MakeServer

from golive.chat.config import ChatConfig
from golive.config import Config
from golive.ingest.config import IngestConfig
from golive.origin.config import AdminConfig, HttpConfig
from golive.packager.config import HlsConfig
from golive.server import Server
from golive.transcode.config import TranscodeConfig


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
    """`await make_server(**ingest_settings)`: a started Server on free loopback ports (the
    admin listener's too, unless `admin` says otherwise), closed after the test."""
    servers: list[Server] = []

    async def make(hls: HlsConfig | None = None, transcode: TranscodeConfig | None = None,
                   http: HttpConfig | None = None, admin: AdminConfig | None = None,
                   state_dir: str | None = None, chat: ChatConfig | None = None,
                   **ingest: Any) -> Server:
        config = Config(ingest=IngestConfig(host="127.0.0.1", port=0, **ingest),
                        http=replace(http or HttpConfig(), host="127.0.0.1", port=0),
                        hls=hls or HlsConfig(),
                        transcode=transcode or TranscodeConfig(),
                        admin=admin or AdminConfig(port=0), state_dir=state_dir,
                        chat=chat or ChatConfig())
        server = Server(config)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await asyncio.wait_for(server.close(), 10)
