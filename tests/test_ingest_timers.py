"""The asyncio layer's one timer per connection, with a fake transport (no sockets).

The rules are the core's (tests/test_connection_state.py); here: the layer arms a timer at
the core's next deadline, does not re-arm it for every read, brings it forward when the
deadline comes earlier, and logs and counts a timeout as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry

from golive.hub import Hub
from golive.ingest import amf0
from golive.ingest.chunk import ChunkEncoder
from golive.ingest.config import IngestConfig
from golive.ingest.handshake import client_c0c1, client_c2
from golive.ingest.metrics import IngestMetrics
from golive.ingest.server import IngestService, RtmpProtocol

KEY = "secret-key"


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = self.aborted = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class CountingLoop:
    """The running loop, counting call_at: how often a connection (re)arms its timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.armed: list[float] = []

    def time(self) -> float:
        return self.loop.time()

    def call_at(self, when: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        self.armed.append(when)
        return self.loop.call_at(when, callback, *args)


class Peer:
    """One connection of an IngestService, driven by hand-built RTMP."""

    def __init__(self, **config: Any) -> None:
        self.registry = CollectorRegistry()
        self.service = IngestService(IngestConfig(keys={KEY: "cam"}, **config), Hub(),
                                     IngestMetrics(self.registry))
        self.protocol = RtmpProtocol(self.service)
        self.loop = CountingLoop(asyncio.get_running_loop())
        self.protocol._loop = self.loop  # type: ignore[assignment]
        self.transport = FakeTransport()
        self.protocol.connection_made(self.transport)  # type: ignore[arg-type]
        self.encoder = ChunkEncoder()

    def handshake(self) -> None:
        self.protocol.data_received(client_c0c1(digest=False))
        s1 = bytes(self.transport.written[1 : 1 + 1536])
        self.protocol.data_received(client_c2(s1))

    def command(self, *values: object, stream_id: int = 0) -> None:
        self.protocol.data_received(
            self.encoder.encode(3 if stream_id == 0 else 8, 0, 20, stream_id,
                                amf0.encode(*values)))

    async def publish(self) -> None:
        self.handshake()
        self.command("connect", 1.0, {"app": "live", "tcUrl": "rtmp://127.0.0.1/live"})
        self.command("createStream", 2.0, None)
        self.command("publish", 3.0, None, KEY, "live", stream_id=1)
        for _ in range(100):  # the key check is an async step
            if self.protocol.stream is not None:
                return
            await asyncio.sleep(0.001)
        raise AssertionError("publish not accepted")

    def ping(self) -> None:
        self.protocol.data_received(self.encoder.encode(2, 0, 4, 0, bytes.fromhex("0006 00000001")))

    def count(self, kind: str) -> float:
        return self.registry.get_sample_value(
            "golive_rtmp_protocol_errors_total", {"kind": kind}) or 0.0

    async def closed(self, within: float) -> float:
        started = self.loop.time()
        while not self.transport.aborted:
            assert self.loop.time() - started < within, "not closed in time"
            await asyncio.sleep(0.01)
        return self.loop.time() - started


async def test_a_never_publishing_connection_is_closed_at_the_handshake_deadline() -> None:
    peer = Peer(handshake_timeout=0.2, idle_timeout=5.0)
    started = peer.loop.time()
    peer.handshake()
    await peer.closed(within=2.0)
    assert peer.loop.time() - started >= 0.2
    assert peer.count("timeout") == 1 and peer.count("idle") == 0
    assert peer.registry.get_sample_value(
        "golive_rtmp_connections_closed_total", {"result": "timeout"}) == 1
    assert len(peer.loop.armed) == 1  # armed once at accept; nothing moved it


async def test_reads_do_not_re_arm_the_timer_and_silence_hits_the_idle_deadline() -> None:
    peer = Peer(handshake_timeout=5.0, idle_timeout=0.5)
    await peer.publish()
    armed = len(peer.loop.armed)
    for _ in range(150):
        peer.ping()
        await asyncio.sleep(0.008)  # over 1.2 s: past the first two idle deadlines
    assert not peer.transport.aborted
    # One re-arm per deadline that passed while bytes kept coming, not one per read.
    assert len(peer.loop.armed) - armed <= 4
    await peer.closed(within=2.0)
    assert peer.count("idle") == 1 and peer.count("timeout") == 0


async def test_the_timer_is_brought_forward_when_a_publication_ends() -> None:
    peer = Peer(handshake_timeout=0.2, idle_timeout=30.0)
    await peer.publish()
    await asyncio.sleep(0.3)  # past the first handshake deadline: publishing, so none
    assert not peer.transport.aborted
    peer.command("FCUnpublish", 4.0, None, KEY)
    assert peer.protocol.stream is None
    waited = await peer.closed(within=2.0)
    assert 0.15 <= waited < 2.0  # the handshake deadline, not the idle one 30 s later
    assert peer.count("timeout") == 1
