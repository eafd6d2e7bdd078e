"""Fixtures and hooks for tests that run a real golive server in the test's event loop (the
helpers they share are in helpers.py)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from helpers import ROOT, MakeServer, browser_missing

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


@pytest.fixture(scope="session")
def browser_tools() -> None:
    """Node, hls.js, playwright-core and Chromium: installed by make when missing, else the
    browser test is skipped saying what is missing and why make could not install it."""
    if not browser_missing():
        return
    if shutil.which("make") is None:
        pytest.skip("browser test needs " + ", ".join(browser_missing()) + "; `make` is not "
                    "there to install them")
    try:
        result = subprocess.run(["make", "--no-print-directory", "player", "browser-deps"],
                                cwd=ROOT, capture_output=True, text=True, timeout=900)
        detail = (f"it exited {result.returncode}: "
                  + (result.stderr or result.stdout).strip()[-500:]) if result.returncode else (
            "it ran without error but did not provide them")
    except subprocess.TimeoutExpired:
        detail = "timed out"
    missing = browser_missing()
    if missing:
        pytest.skip("browser test needs " + ", ".join(missing) + " and `make player "
                    f"browser-deps` could not install it: {detail}")
