"""The HTTP origin's connection limits over real sockets: a client trickling its request head
(slowloris) is closed after header_timeout, idle keep-alive connections after
keepalive_timeout, connections past the per-address cap at once; viewers meanwhile are served
without delay, and a blocking playlist reload that waits longer than header_timeout is
answered."""

from __future__ import annotations

import asyncio
import secrets
import time

import aiohttp
import pytest
from helpers import MakeServer, eventually, scrape
from publishers import RawPublisher, encode_clip

from golive.origin.config import HttpConfig
from golive.packager.config import HlsConfig
from golive.server import Server

pytestmark = pytest.mark.e2e

KEY = "k-" + secrets.token_hex(8)
NAME = "cam"
HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"


async def trickle(server: Server, every: float = 0.25) -> float:
    """Send a request head one header byte every `every` seconds, never ending it; return how
    long the server kept the connection open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
    writer.write(HEAD)
    started = time.monotonic()
    try:
        while True:
            try:
                data = await asyncio.wait_for(reader.read(1024), every)
            except TimeoutError:
                writer.write(b"X")
                continue
            assert data == b"", data  # no response, just the close
            return time.monotonic() - started
    except ConnectionError:
        return time.monotonic() - started
    finally:
        writer.close()


class Viewer:
    """A healthy client: fetches `path` every 100 ms on one keep-alive session, recording the
    slowest answer and any error."""

    def __init__(self, server: Server, path: str = "/healthz") -> None:
        self.url = f"http://127.0.0.1:{server.http_port}{path}"
        self.slowest = 0.0
        self.requests = 0
        self.errors: list[BaseException] = []
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                started = time.monotonic()
                try:
                    async with session.get(self.url) as response:
                        assert response.status == 200
                        await response.read()
                except Exception as exc:
                    self.errors.append(exc)
                self.requests += 1
                self.slowest = max(self.slowest, time.monotonic() - started)
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_a_trickling_client_is_closed_and_a_viewer_is_unaffected(
        make_server: MakeServer) -> None:
    server = await make_server(http=HttpConfig(header_timeout=1.0))
    viewer = Viewer(server)
    held = await asyncio.wait_for(trickle(server), 5)
    await asyncio.sleep(0.3)
    await viewer.stop()
    assert 0.9 <= held <= 2.0
    assert viewer.errors == [] and viewer.requests >= 10
    assert viewer.slowest < 0.2
    metrics = await scrape(server)
    assert metrics.count("golive_http_connections_closed_total", reason="header_timeout") == 1


async def test_a_blocking_reload_outlasts_the_header_timeout(make_server: MakeServer) -> None:
    """Only the request head is timed: a handler waiting 3 s (three 1 s target durations) for a
    segment that never comes answers, while a trickler beside it is cut after 1 s."""
    server = await make_server(hls=HlsConfig(segment_target=1.0, part_target=0.2),
                               http=HttpConfig(header_timeout=1.0), keys={KEY: NAME})
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(encode_clip(3.0, 320, 240).tags)
    await eventually(lambda: server.packager.get(NAME) is not None
                     and len(server.packager.get(NAME).source.segments) >= 2,
                     what="two segments")
    url = (f"http://127.0.0.1:{server.http_port}/live/{NAME}/source/index.m3u8"
           f"?_HLS_msn={server.packager.get(NAME).source.last_msn + 2}")
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        blocking = asyncio.create_task(session.get(url))
        held = await asyncio.wait_for(trickle(server), 5)
        async with await blocking as response:
            assert response.status == 503  # the playlist's own answer, after the wait
            await response.read()
        assert time.monotonic() - started >= 2.9
        # The same keep-alive connection serves the next request.
        async with session.get(url.split("?")[0]) as response:
            assert response.status == 200
    assert held <= 2.0
    metrics = await scrape(server)
    assert metrics.count("golive_http_connections_closed_total", reason="header_timeout") == 1
    await publisher.close()


async def test_an_idle_keep_alive_connection_is_closed(make_server: MakeServer) -> None:
    server = await make_server(http=HttpConfig(keepalive_timeout=1.0))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
    writer.write(HEAD + b"\r\n")
    await reader.readuntil(b"\r\n\r\n")
    started = time.monotonic()
    while await asyncio.wait_for(reader.read(1024), 5):  # the body, then the close
        pass
    assert 0.9 <= time.monotonic() - started <= 2.0
    writer.close()


async def test_connections_past_the_per_address_cap_are_refused(make_server: MakeServer) -> None:
    server = await make_server(http=HttpConfig(max_connections_per_address=4))
    first = [await asyncio.open_connection("127.0.0.1", server.http_port) for _ in range(4)]
    guard = server._runner.guard
    await eventually(lambda: guard.open("127.0.0.1") == 4, what="four connections")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
    assert await asyncio.wait_for(reader.read(1024), 2) == b""  # closed unread
    writer.close()
    for r, w in first:  # the first four still work
        w.write(HEAD + b"\r\n")
        assert (await asyncio.wait_for(r.readline(), 2)).startswith(b"HTTP/1.1 200")
    first[0][1].close()
    await eventually(lambda: guard.open("127.0.0.1") == 3, what="one closed")
    # A slot is free again once one closes (the scrape needs it).
    metrics = await asyncio.wait_for(scrape(server), 5)
    assert metrics.count("golive_http_connections_closed_total", reason="per_address_limit") == 1
    assert metrics.get("golive_http_connections") == 4  # three held and the scrape's own
    for _, w in first[1:]:
        w.close()
