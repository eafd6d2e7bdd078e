"""Connection limits of the HTTP origin, which aiohttp's server lacks: a deadline for a request
head, and a cap on concurrent connections per client address (slowloris).

aiohttp has no request-head timeout; its keep-alive timer only bounds the idle wait. A client
that trickles header bytes therefore holds a connection, a parser and a task as long as it
likes. `GuardedRequestHandler` starts a clock at the first byte of a request head and closes
the connection if the head is not complete `header_timeout` seconds later (like hyper's
header_read_timeout: a client's pre-opened, idle connection is left to the keep-alive
timeout). Only the head counts: once aiohttp has parsed it, a handler may take as long as it
needs (LL-HLS blocking playlist reloads wait up to three target durations).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any, cast

from aiohttp import web

from golive.origin.config import HttpConfig
from golive.origin.hls import HLS_HTTP, ORIGIN_METRICS, HlsHttp
from golive.origin.hls_fast import FastConnection, ReplyCache, Waiters
from golive.origin.metrics import HEADER_TIMEOUT, PER_ADDRESS_LIMIT, OriginMetrics

log = logging.getLogger("golive.origin")

LOG_INTERVAL = 60.0  # seconds between two log lines about the same address


class ConnectionGuard:
    """The state shared by every connection of one listener: counts per address, metrics, and
    the log lines about refused or cut connections (at most one per address per minute)."""

    def __init__(self, config: HttpConfig, metrics: OriginMetrics,
                 fast_hls: HlsHttp | None = None) -> None:
        self.header_timeout = config.header_timeout
        self.keepalive_timeout = config.keepalive_timeout
        self.fast_hls = fast_hls  # the HLS fast path's replies (None: aiohttp for all)
        self.fast_waiters = Waiters()
        self.fast_cache = ReplyCache()
        self.max_per_address = config.max_connections_per_address
        self.metrics = metrics
        self._open: Counter[str] = Counter()
        self._logged: dict[str, tuple[float, int]] = {}  # address -> (last log time, muted)

    def admit(self, address: str | None) -> bool:
        """Count a new connection from `address`, or refuse it (False) past the cap."""
        if address is not None:
            if 0 < self.max_per_address <= self._open[address]:
                self.closed(address, PER_ADDRESS_LIMIT)
                return False
            self._open[address] += 1
        self.metrics.connections.inc()
        return True

    def open(self, address: str) -> int:
        """Connections open from `address` now."""
        return self._open[address]

    def release(self, address: str | None) -> None:
        if address is not None:
            self._open[address] -= 1
            if self._open[address] <= 0:
                del self._open[address]
        self.metrics.connections.dec()

    def closed(self, address: str | None, reason: str) -> None:
        self.metrics.connections_closed.labels(reason).inc()
        now = time.monotonic()
        last, muted = self._logged.get(address or "", (-LOG_INTERVAL, 0))
        if now - last < LOG_INTERVAL:
            self._logged[address or ""] = (last, muted + 1)
            return
        if len(self._logged) > 10_000:  # many addresses: forget those quiet for a minute
            self._logged = {a: v for a, v in self._logged.items() if now - v[0] < LOG_INTERVAL}
        self._logged[address or ""] = (now, 0)
        what = (f"request head not complete within {self.header_timeout:g} s"
                if reason == HEADER_TIMEOUT
                else f"over {self.max_per_address} connections from this address")
        log.warning("closed an HTTP connection from %s: %s%s", address, what,
                    f" ({muted} more since the last such line)" if muted else "")


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's protocol, plus the per-address cap at connection_made and the head deadline,
    and the HLS fast path: a connection is the fast path's (`hls_fast.FastConnection`) until
    a request it does not serve, and aiohttp's from that request on."""

    def __init__(self, manager: web.Server, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._address: str | None = None
        self._admitted = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._fast: FastConnection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        # Only the socket's own peer: X-Forwarded-For is the client's to forge.
        self._address = peer[0] if isinstance(peer, tuple) and peer else None
        if not self._guard.admit(self._address):
            # Closed before reading a byte: answering (503) would mean reading the request
            # head, the work the cap saves, and an early answer followed by a close is often
            # lost to the reset the unread request provokes.
            transport.close()
            return
        self._admitted = True
        super().connection_made(transport)
        guard = self._guard
        if guard.fast_hls is not None:
            # aiohttp's idle timer for a connection that has sent nothing would close it
            # while the fast path serves it: the fast path keeps its own until a hand-off.
            self.keep_alive(True)
            self._fast = FastConnection(
                guard.fast_hls, guard.fast_waiters, guard.fast_cache,
                cast(asyncio.Transport, transport),
                self._address or "",
                self._hand_off, header_timeout=guard.header_timeout,
                keepalive_timeout=guard.keepalive_timeout,
                on_header_timeout=lambda: guard.closed(self._address, HEADER_TIMEOUT))

    def _hand_off(self, data: bytes) -> None:
        """aiohttp's protocol takes the connection, from the request at `data`'s start."""
        self._fast = None
        if self.transport is not None:
            self.transport.resume_reading()  # (the fast path may have paused it)
        self.data_received(data)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._fast is not None and self.transport is not None:
            self.transport.pause_reading()  # no new request until the client reads

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._fast is not None and self.transport is not None:
            self.transport.resume_reading()
            self._fast.resume()

    def data_received(self, data: bytes) -> None:
        if self._fast is not None:
            self._fast.feed(data)
            return
        super().data_received(data)
        if not self._admitted:
            return
        if self._awaiting_request():
            if self._head_timer is None and data and self._guard.header_timeout > 0:
                # the first byte of a head starts the clock
                self._head_timer = self._loop.call_later(
                    self._guard.header_timeout, self._head_overdue)
        elif self._head_timer is not None:  # the head is complete (or a handler runs)
            self._head_timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return  # aiohttp never saw this connection
        self._admitted = False
        if self._fast is not None:
            self._fast.connection_lost()
            self._fast = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._guard.release(self._address)
        super().connection_lost(exc)

    def _awaiting_request(self) -> bool:
        # No parsed request queued and none being handled (aiohttp's private state: there is
        # no public one): bytes arriving now belong to the next request's head.
        return not self._messages and not self._request_in_progress

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self._awaiting_request() and self.transport is not None:
            self._guard.closed(self._address, HEADER_TIMEOUT)
            self.force_close()


class _GuardedServer(web.Server):
    """aiohttp's server (the protocol factory the listener calls per connection), making
    GuardedRequestHandlers with the same settings aiohttp's AppRunner gave it."""

    def __init__(self, inner: web.Server, guard: ConnectionGuard) -> None:
        super().__init__(inner.request_handler, request_factory=inner.request_factory,
                         handler_cancellation=inner.handler_cancellation, **inner._kwargs)
        self._guard = guard

    def __call__(self) -> web.RequestHandler:
        return GuardedRequestHandler(self, self._guard, loop=self._loop, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    """An AppRunner whose connections are guarded by `ConnectionGuard` and whose idle
    keep-alive connections close after `config.keepalive_timeout`."""

    def __init__(self, app: web.Application, config: HttpConfig, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=config.keepalive_timeout, **kwargs)
        self.guard = ConnectionGuard(config, app[ORIGIN_METRICS],
                                     app.get(HLS_HTTP) if config.fast_hls else None)

    async def _make_server(self) -> web.Server:
        return _GuardedServer(await super()._make_server(), self.guard)
