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
  with no task per waiter (`hls.HlsHttp.reply_now`, driven by callbacks).
- One request at a time per connection (HTTP/1.1 pipelining is answered in order); reading
  pauses while the socket's send buffer is over its high-water mark, so a client that does
  not read cannot make the origin buffer without bound.
- The same connection limits as aiohttp's side (`connections.GuardedRequestHandler` owns
  this object): a request head must be complete within `header_timeout` of its first
  byte, and an idle keep-alive connection closes after `keepalive_timeout`.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
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
_HEADERS = {b"accept-encoding", b"if-none-match", b"range", b"user-agent", b"connection"}
# Headers that mean the request is not a plain GET of a file: aiohttp handles those.
_NOT_OURS = {b"content-length", b"transfer-encoding", b"upgrade", b"expect"}


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
    lines = bytes(buffer[:end]).split(b"\r\n")
    try:
        method, target, version = lines[0].split(b" ")
    except ValueError:
        raise HandOff from None
    if method not in (b"GET", b"HEAD") or not target.startswith(b"/live/") or (
            version not in (b"HTTP/1.1", b"HTTP/1.0")):
        raise HandOff
    fields: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name[-1:] in (b" ", b"\t") or name[:1] in (b" ", b"\t"):
            raise HandOff  # malformed, or obsolete line folding: aiohttp's 400
        name = name.lower()
        if name in _NOT_OURS:
            raise HandOff
        if name in _HEADERS and name not in fields:
            fields[name] = value.strip()
    try:
        text = target.decode("ascii")
        header = {k.decode(): v.decode("latin-1") for k, v in fields.items()}
    except UnicodeDecodeError:
        raise HandOff from None
    path, _, query = text.partition("?")
    if "%" in path or "#" in text:
        raise HandOff  # percent-decoding and fragments are aiohttp's to interpret
    connection = header.get("connection", "").lower()
    keep_alive = ("close" not in connection if version == b"HTTP/1.1"
                  else "keep-alive" in connection)
    return Head(method == b"HEAD", path, query, keep_alive, header.get("accept-encoding", ""),
                header.get("if-none-match", ""), header.get("range"),
                header.get("user-agent", ""), end + 4)


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


class FastConnection:
    """One connection's fast path. `hand_off(data)` gives the connection, and `data` (the
    bytes from the request aiohttp is to handle on), to aiohttp's protocol."""

    def __init__(self, http: HlsHttp, transport: asyncio.Transport, address: str,
                 hand_off: Callable[[bytes], None], *, header_timeout: float,
                 keepalive_timeout: float, on_header_timeout: Callable[[], None]) -> None:
        self._http = http
        self._transport = transport
        self._address = address
        self._hand_off = hand_off
        self._header_timeout = header_timeout
        self._keepalive_timeout = keepalive_timeout
        self._on_header_timeout = on_header_timeout
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._waiting: tuple[Head, HlsRequest, float] | None = None  # (..., started)
        self._wake_handle: asyncio.TimerHandle | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._generation = 0  # of the current wait: a stale wake-up is ignored
        self.closed = False

    def feed(self, data: bytes) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
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

    def _answer(self, head: Head, request: HlsRequest, started: float | None) -> bool:
        """Reply now (True), or wait (False: `_woken` answers later). Hands off a file on
        disk to aiohttp, which sends it with sendfile."""
        now = self._loop.time()
        reply = self._http.reply_now(request, started, now)
        if isinstance(reply, Waiting):
            self._wait(head, request, now if started is None else started, reply)
            return False
        if reply.path is not None:
            self._give_away()
            return False
        self._cancel_head_timer()
        # One writev for head and body (uvloop sends what it is given together at once).
        self._transport.writelines(serialize(reply, head_only=head.head,
                                             keep_alive=head.keep_alive))
        self._http.count_status(reply.status)
        self._http.account(request, reply, 0 if head.head else len(reply.body))
        return True

    def _wait(self, head: Head, request: HlsRequest, started: float, waiting: Waiting) -> None:
        self._cancel_head_timer()
        self._waiting = (head, request, started)
        self._generation += 1
        wake = functools.partial(self._woken, self._generation)
        waiting.changed.add_done_callback(wake)
        self._wake_handle = self._loop.call_at(waiting.deadline, wake, None)

    def _woken(self, generation: int, _changed: object) -> None:
        if generation != self._generation or self._waiting is None or self.closed:
            return
        if self._wake_handle is not None:
            self._wake_handle.cancel()
            self._wake_handle = None
        head, request, started = self._waiting
        self._waiting = None
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
            self._idle_timer = self._loop.call_later(self._keepalive_timeout, self._close)
        elif self._head_timer is None and self._header_timeout > 0:
            self._head_timer = self._loop.call_later(self._header_timeout, self._head_overdue)

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
        for timer in (self._idle_timer, self._wake_handle):
            if timer is not None:
                timer.cancel()
        self._idle_timer = self._wake_handle = None
        self._waiting = None
        self._generation += 1

    def _close(self) -> None:
        self.closed = True
        self._cancel_timers()
        self._transport.close()

    def connection_lost(self) -> None:
        self.closed = True
        self._cancel_timers()
