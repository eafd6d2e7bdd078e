"""The HLS fast path: GET and HEAD requests for `/live/...` answered straight off the socket.

Why by hand: a viewer of an LL-HLS stream makes about seven requests a second (a blocking
playlist reload and a part per part, plus segments), so a crowd is requests per second, and
aiohttp's per-request machinery is the bottleneck. Measured on this machine (2 cores, wrk
with 50 connections on the other core): a bare aiohttp app answering a fixed 2 KB playlist
does 34.7k requests/s; the same answer written by an asyncio Protocol on uvloop does 194k.
So the requests that make up a crowd's load — well-formed HLS GETs and HEADs — are parsed
and answered here, with the very replies aiohttp's routes send (`hls.HlsHttp`: one logic,
two drivers), and everything else goes to aiohttp untouched:

- A connection starts on the fast path. The first request on it that is anything else (any
  other method or path, percent-encoding, a body, an upgrade, a malformed or oversized head,
  a file on disk to sendfile) and every byte after it are handed to aiohttp's own protocol,
  for the rest of the connection's life: aiohttp has seen none of the bytes before, so it
  parses that request as if it were the first.
- Blocking reloads and preload-hinted parts wait on the rendition's shared change future,
  with no task, callback or timer per waiter (`Waiters`).
- The bytes sent for a request head are sent again for the same head (`ReplyCache`): a
  crowd asks for the same parts and the same next playlist, with the same headers.
- One request at a time per connection (HTTP/1.1 pipelining is answered in order); no
  request is read or answered while the socket's send buffer is full, so a client that does
  not read cannot make the origin buffer without bound.
- The same connection limits as aiohttp's side (`connections.GuardedRequestHandler` owns
  this object): a request head must be complete within `header_timeout` of its first
  byte, and an idle keep-alive connection closes after `keepalive_timeout`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import functools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl

from golive.origin.hls import HlsHttp, HlsRequest, Reply
from golive.packager.query import Waiting

MAX_HEAD = 8190  # bytes: aiohttp's own limit for a request line and its headers
MAX_BUFFERED = 1024 * 1024  # bytes of requests read ahead of their answers
WRITE_BUFFER = 256 * 1024  # bytes queued to a socket past which no further request is answered
_REQUEST_LINE = re.compile(rb"(GET|HEAD) (/live/[!-~]*) HTTP/1\.([01])\r\n")
_FIELD_LINES = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*\r\n)*")
# The headers that change an answer, and those that mean the request is not a plain GET of
# a file (aiohttp handles those), found in the lowered head.
_NOT_OURS = {b"content-length", b"transfer-encoding", b"upgrade", b"expect"}
_WANTED = re.compile(rb"\r\n(accept-encoding|if-none-match|range|user-agent|connection|"
                     rb"content-length|transfer-encoding|upgrade|expect):([^\r\n]*)")


class HandOff(Exception):
    """The request is not one the fast path serves: aiohttp's protocol takes the connection."""


@dataclass(slots=True)  # (not frozen: frozen dataclasses are slow to build, per request)
class Head:
    """A parsed request head the fast path serves."""

    head: bool  # HEAD rather than GET
    path: str
    query: str
    keep_alive: bool
    accept_encoding: str
    if_none_match: str
    range: str | None
    user_agent: str
    size: int  # bytes of the head, terminator included


def parse_head(buffer: bytes | bytearray) -> Head | None:
    """The request head at the start of `buffer`; None while it is incomplete. Raises HandOff
    when the request is not a well-formed GET or HEAD of `/live/...` with no body."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD:
            raise HandOff
        return None
    if end > MAX_HEAD:
        raise HandOff
    head = bytes(buffer[:end + 2])  # every line with its CRLF
    line = _REQUEST_LINE.match(head)
    # Header lines are RFC 9110 tokens, a colon and a value: anything else (obsolete line
    # folding, a space before the colon, a bare CR) is aiohttp's to refuse with a 400.
    if line is None or _FIELD_LINES.fullmatch(head, line.end()) is None:
        raise HandOff
    fields: dict[bytes, str] = {}
    lowered = head.lower()  # (ASCII only: offsets stay those of `head`)
    for found in _WANTED.finditer(lowered, line.end() - 2):
        name = found.group(1)
        if name in _NOT_OURS:
            raise HandOff
        if name not in fields:
            fields[name] = head[found.start(2):found.end(2)].decode("latin-1").strip(" \t")
    target = line.group(2).decode("ascii")
    path, _, query = target.partition("?")
    if "%" in path or "#" in target:
        raise HandOff  # percent-decoding and fragments are aiohttp's to interpret
    connection = fields.get(b"connection", "").lower()
    keep_alive = ("close" not in connection if line.group(3) == b"1"
                  else "keep-alive" in connection)
    return Head(line.group(1) == b"HEAD", path, query, keep_alive,
                fields.get(b"accept-encoding", ""), fields.get(b"if-none-match", ""),
                fields.get(b"range"), fields.get(b"user-agent", ""), end + 4)


def hls_request(head: Head, address: str) -> HlsRequest:
    """Route a head like aiohttp's `/live/{name}/index.m3u8`, `/live/{name}/{rendition}/
    index.m3u8` and `/live/{name}/{rendition}/{file}`; HandOff for any other path."""
    pieces = head.path[6:].split("/")
    if not all(pieces):
        raise HandOff
    msn = part = None
    if head.query:
        if "%" in head.query or "+" in head.query:
            pairs = parse_qsl(head.query, keep_blank_values=True)
        else:
            pairs = [(k, v) for k, _, v in (item.partition("=")
                                            for item in head.query.split("&"))]
        for key, value in pairs:
            if key == "_HLS_msn" and msn is None:
                msn = value
            elif key == "_HLS_part" and part is None:
                part = value
    if len(pieces) == 2 and pieces[1] == "index.m3u8":
        return HlsRequest(pieces[0], None, "index.m3u8", msn, part, head.accept_encoding,
                          head.if_none_match, head.range, address, head.user_agent)
    if len(pieces) == 3:
        return HlsRequest(pieces[0], pieces[1], pieces[2], msn, part, head.accept_encoding,
                          head.if_none_match, head.range, address, head.user_agent)
    raise HandOff


class _Date:
    """The Date header's value, formatted once a second."""

    second = -1
    value = b""

    @classmethod
    def now(cls) -> bytes:
        second = int(time.time())
        if second != cls.second:
            cls.second = second
            cls.value = email.utils.formatdate(second, usegmt=True).encode()
        return cls.value


@functools.lru_cache(maxsize=4096)
def _head_lines(status: int, content_type: str, length: int,
                headers: tuple[tuple[str, str], ...]) -> bytes:
    """A response head but its Date and end: the same for every viewer of the same file."""
    reason = HTTPStatus(status).phrase
    lines = [f"HTTP/1.1 {status} {reason}"]
    if status != 304:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\nDate: ").encode("latin-1")


def serialize(reply: Reply, *, head_only: bool, keep_alive: bool) -> list[bytes | memoryview]:
    """The bytes of a reply on the wire: its head, then its body unless `head_only`."""
    body = reply.body
    head = (_head_lines(reply.status, reply.content_type, len(body),
                        tuple(reply.headers.items()))
            + _Date.now() + (b"\r\n\r\n" if keep_alive else b"\r\nConnection: close\r\n\r\n"))
    if head_only or reply.status == 304 or not body:
        return [head]
    return [head, body]


class Waiters:
    """Every fast-path request of one listener that waits (blocking reloads, hinted parts):
    woken together when their rendition changes — one callback on the shared change future
    for all of them, not one each — and past their deadlines by a sweep every `SWEEP`
    seconds rather than a timer each (a wait's deadline is three target durations away:
    answering it a tenth of a second late changes nothing)."""

    SWEEP = 0.1  # seconds

    def __init__(self) -> None:
        self._groups: dict[asyncio.Future[None], list[FastConnection]] = {}
        self._deadlines: dict[FastConnection, float] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    def add(self, connection: FastConnection, waiting: Waiting) -> None:
        group = self._groups.get(waiting.changed)
        if group is None:
            group = self._groups[waiting.changed] = []
            waiting.changed.add_done_callback(self._changed)
        group.append(connection)
        self._deadlines[connection] = waiting.deadline
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self.SWEEP, self._sweep)

    def discard(self, connection: FastConnection) -> None:
        """`connection` waits no more (answered, closed): its group entry goes stale."""
        self._deadlines.pop(connection, None)

    def _changed(self, changed: asyncio.Future[None]) -> None:
        for connection in self._groups.pop(changed, ()):
            if self._deadlines.pop(connection, None) is not None:
                connection.woken()

    def _sweep(self) -> None:
        now = asyncio.get_running_loop().time()
        overdue = [c for c, deadline in self._deadlines.items() if deadline <= now]
        for connection in overdue:
            if self._deadlines.pop(connection, None) is not None:
                connection.woken()
        self._sweeper = (asyncio.get_running_loop().call_later(self.SWEEP, self._sweep)
                         if self._deadlines else None)


@dataclass(slots=True)
class _Sent:
    """A reply as it went out, to send again for the same request head."""

    chunks: list[bytes | memoryview]
    request: HlsRequest
    reply: Reply
    sent: int  # body bytes
    keep_alive: bool
    expires: float  # loop time


class ReplyCache:
    """The bytes last sent for a request head, sent as they are for the same head (from any
    connection) for up to `TTL` seconds: a crowd asks for the same parts, and for the same
    next playlist, with the same headers. A playlist's entry also ends when the playlist
    changes (its change future is done); parts and segments never change. The bytes are the
    store's own (no copy), so the cache holds at most `SIZE` heads and, for `TTL` seconds,
    a file the store has just let go. Each hit is counted like any reply (metrics, the
    viewer estimate, for the connection that asked)."""

    TTL = 0.5  # seconds (the Date header in the cached bytes is at most that old)
    SIZE = 1024  # heads

    def __init__(self) -> None:
        self._entries: dict[bytes, _Sent] = {}

    def get(self, head: bytes, now: float) -> _Sent | None:
        entry = self._entries.get(head)
        if entry is None:
            return None
        changed = entry.reply.changed
        if now >= entry.expires or (changed is not None and changed.done()):
            del self._entries[head]
            return None
        return entry

    def put(self, head: bytes, request: HlsRequest, reply: Reply,
            chunks: list[bytes | memoryview], sent: int, keep_alive: bool,
            now: float) -> None:
        if reply.status not in (200, 206, 304):
            return  # errors are not worth it, and a 503's wait must not be skipped
        if len(self._entries) >= self.SIZE:
            del self._entries[next(iter(self._entries))]  # the oldest
        # Sent again, it is an answer that did not wait: a blocking reload's wait is 0.
        again = dataclasses.replace(reply, waited=0.0 if reply.waited is not None
                                    and request.playlist is not None else None)
        self._entries[head] = _Sent(chunks, request, again, sent, keep_alive,
                                    now + self.TTL)


class FastConnection:
    """One connection's fast path. `hand_off(data)` gives the connection, and `data` (the
    bytes from the request aiohttp is to handle on), to aiohttp's protocol."""

    def __init__(self, http: HlsHttp, waiters: Waiters, cache: ReplyCache,
                 transport: asyncio.Transport, address: str,
                 hand_off: Callable[[bytes], None], *, header_timeout: float,
                 keepalive_timeout: float, on_header_timeout: Callable[[], None]) -> None:
        self._http = http
        self._waiters = waiters
        self._cache = cache
        self._transport = transport
        self._address = address
        self._hand_off = hand_off
        self._header_timeout = header_timeout
        self._keepalive_timeout = keepalive_timeout
        self._on_header_timeout = on_header_timeout
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._waiting: tuple[Head, HlsRequest, float] | None = None  # (..., started)
        self._head_timer: asyncio.TimerHandle | None = None
        # The keep-alive timer is moved lazily: a request only notes the time (a timer per
        # request would cost more than the request), and the timer, when it fires early,
        # sets itself again for the idle time left.
        self._idle_since: float | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self.closed = False

    def feed(self, data: bytes) -> None:
        self._idle_since = None
        self._buffer += data
        if len(self._buffer) > MAX_BUFFERED:  # pipelining far beyond what a player does
            self._close()
            return
        if self._waiting is None:
            self._serve()

    def _serve(self) -> None:
        """Answer the complete requests in the buffer, in order, until one must wait or the
        socket's send buffer is full (`resume` goes on once it drains)."""
        while not self.closed and self._waiting is None:
            if self._transport.get_write_buffer_size() > WRITE_BUFFER:
                return
            if self._send_again():
                continue
            try:
                head = parse_head(self._buffer)
                if head is None:
                    self._await_head()  # (or, with nothing buffered, the keep-alive wait)
                    return
                request = hls_request(head, self._address)
            except HandOff:
                self._give_away()
                return
            if not self._answer(head, request, None):
                return
            del self._buffer[:head.size]
            if not head.keep_alive:
                self._close()
                return

    def _send_again(self) -> bool:
        """Answer the next request from the cache if its head is there (True)."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        key = bytes(self._buffer[:end + 4])
        entry = self._cache.get(key, self._loop.time())
        if entry is None:
            return False
        self._cancel_head_timer()
        self._transport.writelines(entry.chunks)
        self._http.count_status(entry.reply.status)
        self._http.account(entry.request, entry.reply, entry.sent, self._address)
        del self._buffer[:end + 4]
        if not entry.keep_alive:
            self._close()
        return not self.closed

    def _answer(self, head: Head, request: HlsRequest, started: float | None) -> bool:
        """Reply now (True), or wait (False: `woken` answers later). Hands off a file on
        disk to aiohttp, which sends it with sendfile."""
        now = self._loop.time()
        reply = self._http.reply_now(request, started, now)
        if isinstance(reply, Waiting):
            self._cancel_head_timer()
            self._waiting = (head, request, now if started is None else started)
            self._waiters.add(self, reply)
            return False
        if reply.path is not None:
            self._give_away()
            return False
        self._cancel_head_timer()
        chunks = serialize(reply, head_only=head.head, keep_alive=head.keep_alive)
        # One writev for head and body (uvloop sends what it is given together at once).
        self._transport.writelines(chunks)
        sent = 0 if head.head else len(reply.body)
        self._http.count_status(reply.status)
        self._http.account(request, reply, sent)
        self._cache.put(bytes(self._buffer[:head.size]), request, reply, chunks, sent,
                        head.keep_alive, now)
        return True

    def woken(self) -> None:
        """The awaited rendition changed, or the wait's deadline passed: answer again."""
        if self._waiting is None or self.closed:
            return
        head, request, started = self._waiting
        self._waiting = None
        if self._send_again():  # another waiter with the same request was answered first
            self._serve()
            return
        if self._answer(head, request, started):
            del self._buffer[:head.size]
            if not head.keep_alive:
                self._close()
                return
            self._serve()

    def resume(self) -> None:
        """The socket's send buffer drained: answer what is buffered."""
        if not self.closed and self._waiting is None:
            self._serve()

    def _give_away(self) -> None:
        """aiohttp takes the connection from the first unanswered request on."""
        self.closed = True
        self._cancel_timers()
        data, self._buffer = bytes(self._buffer), bytearray()
        self._hand_off(data)

    def _await_head(self) -> None:
        if not self._buffer:
            self._idle_since = self._loop.time()
            if self._idle_timer is None:
                self._idle_timer = self._loop.call_later(self._keepalive_timeout, self._idle)
        elif self._head_timer is None and self._header_timeout > 0:
            self._head_timer = self._loop.call_later(self._header_timeout, self._head_overdue)

    def _idle(self) -> None:
        self._idle_timer = None
        if self.closed or self._idle_since is None:
            return  # busy: the next idle moment sets the timer again
        left = self._idle_since + self._keepalive_timeout - self._loop.time()
        if left > 0:
            self._idle_timer = self._loop.call_later(left, self._idle)
        else:
            self._close()

    def _head_overdue(self) -> None:
        self._head_timer = None
        if not self.closed and self._waiting is None:
            self._on_header_timeout()
            self._close()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_head_timer()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._waiting = None
        self._waiters.discard(self)

    def _close(self) -> None:
        self.closed = True
        self._cancel_timers()
        self._transport.close()

    def connection_lost(self) -> None:
        self.closed = True
        self._cancel_timers()
