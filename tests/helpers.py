"""Helpers for tests that run a real golive server in the test's event loop: watching the
hub, reading subscriptions, HTTP and /metrics, polling. Imported as `helpers` (pytest puts
tests/ on sys.path, as for conftest.py); the fixtures stay in conftest.py."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from golive.hub import Hub, LiveStream, StreamEnded, Subscription
from golive.media import MediaUnit, Track, TrackKind
from golive.server import Server

MakeServer = Callable[..., Awaitable[Server]]  # the make_server fixture's type


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


async def http_get(port: int, path: str, headers: dict[str, str] | None = None
                   ) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}{path}", headers=headers,
            timeout=aiohttp.ClientTimeout(total=5)) as response:
        return response.status, await response.text()


async def scrape(server: Server) -> Metrics:
    """/metrics, from the admin listener (the public port does not serve it)."""
    assert server.admin_port is not None, "this server has no admin listener"
    status, text = await http_get(server.admin_port, "/metrics")
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


def free_port() -> int:
    """A TCP port free on loopback now (for a server started in a child process)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def golive_command() -> list[str]:
    """The installed console script, as users run it; the module when it is missing."""
    executable = Path(sys.executable).with_name("golive")
    if executable.exists():
        return [str(executable)]
    return [sys.executable, "-c", "from golive.cli import main; main()"]


ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("GOLIVE_CHROMIUM", "/usr/bin/chromium"))


def browser_missing() -> list[str]:
    """What the browser tests need and this machine lacks: Node, hls.js and playwright-core
    (`make player`), Debian's Chromium (`make browser-deps`)."""
    missing = []
    if shutil.which("node") is None:
        missing.append("node (Node.js)")
    for package in ("hls.js", "playwright-core"):
        if not (ROOT / "node_modules" / package / "package.json").is_file():
            missing.append(f"node_modules/{package} (`make player`)")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (`make browser-deps`)")
    return missing


async def run_node(*args: str, timeout: float, env: dict[str, str] | None = None) -> Any:
    """A Node script of tests/browser (with playwright-core driving Chromium): what it
    printed as JSON. Its exit status must be 0; its stderr says why not."""
    node = await asyncio.create_subprocess_exec(
        "node", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(node.communicate(), timeout)
    except TimeoutError:
        node.kill()
        await node.wait()
        raise
    assert node.returncode == 0, err.decode(errors="replace")[-3000:]
    return json.loads(out)
