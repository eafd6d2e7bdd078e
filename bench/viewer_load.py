"""LL-HLS viewer load generator: N simulated hls.js players on one live stream of a golive
server, and how far behind live each of them gets (`python -m bench.viewer_load --url URL`).

It runs in processes of its own (bench/viewers.py starts it) so that its CPU is its own and the
server's is the server's: a coordinator (this module's `main`) and `--processes` workers, each
holding a share of the viewers. HTTP/1.1 is spoken over raw asyncio BufferedProtocols on
uvloop: every read lands in one shared buffer, a part's bytes are counted there and never
copied, and a playlist's bytes are parsed once per distinct response (every viewer of a
variant gets the same bytes), so one process affords thousands of requests/s on a core that
the server shares.

Each viewer behaves like hls.js 1.7 with `lowLatencyMode` (its base-playlist-controller and
level-details, read for this): GET the master playlist, pick a variant (the highest
BANDWIDTH; `--spread`: viewer i takes variant i mod n, as ABR on mixed networks would), GET
its media playlist, then the EXT-X-MAP init and the parts from the live edge minus
PART-HOLD-BACK (backed up to the last INDEPENDENT part of that segment, as hls.js's
getNextPart does), then loop: a blocking reload for the part after the last one listed
(`_HLS_msn=M&_HLS_part=N+1`, or `_HLS_msn=M+1&_HLS_part=0` when the last listed part ends a
complete segment; hls.js's "CDN tune-in" skip-ahead when the response is older than a part
target), and every newly listed part fetched in order, one at a time, on a second keep-alive
connection (hls.js's playlist and fragment loaders). Non-200 answers, lost connections and
time-outs are handled with hls.js's default load policies (time-outs: the master 20 s in all,
a playlist 10 s to its first byte, a part 10 s; retries: the master 1, a playlist 2, 1 s and
2 s apart, a part 6, 1-8 s apart; after a time-out at once, a playlist without directives); a
viewer that exhausts them has errored out and stops ("timeout connecting": the server never
accepted the connection). Unlike hls.js, a 4xx is retried too (hls.js would give up on the
variant): for this bench a 404 of a listed part is the server's failure, counted either way.
Viewers come from loopback addresses 127.0.x.y (`--per-address` each: golive caps
connections per address), each with its own User-Agent.

The reference: the coordinator follows every variant in use with one more blocking-reload
follower of its own (no media fetches, in a process without viewers). A part's live time is
the first time any follower had a playlist response listing it: the reference's, or a
viewer's when one was woken before it (the server answers its waiters one after another).
A viewer's lag for a part is the time it had the part's last byte minus that live time; both
are this host's CLOCK_MONOTONIC. Lag splits into the playlist delay (the viewer's own listing
minus live) and the part fetch (last byte minus its listing).

Protocol of a run: the viewers join at `--rate` per second; when all have joined (or failed)
the coordinator prints `{"event": "joined"}`, waits `--warmup` seconds, prints
`{"event": "window", "start": t}`, measures for `--seconds` (0: until a line `stop` or EOF on
stdin), prints `{"event": "window_end", "end": t}`, lets the viewers fetch for `--drain`
seconds more, and prints the report (`"event": "report"`, its figures in `analyse`). "Held":
every viewer joined, none errored out, every viewer fetched every part listed in the window,
and each viewer's p95 lag over the window's parts is within one part target + `--slack`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import json
import math
import os
import re
import resource
import sys
import time
import zlib
from array import array
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, NamedTuple, cast
from urllib.parse import urljoin, urlsplit

import numpy as np

from .chat_load import raise_file_limit, source_address
from .servers import die_with_parent, process_cpu

PART_KEY = 1000  # a part's key is msn x PART_KEY + index: one int, ordered like (msn, index)
BUFFER_SIZE = 1 << 18  # one read's worth: loopback hands over up to this much at once
CACHE_LIMIT = 512  # distinct playlist responses remembered per process
SWEEP = 0.5  # s between two looks for requests past their time-out
STUCK = 2.0  # s: a viewer with no new part for this long within the window is stuck
NS = 1_000_000_000
_BUF = bytearray(BUFFER_SIZE)  # every connection of a process reads into this
_VIEW = memoryview(_BUF)


# ---- playlists: what hls.js reads of them, and which request it makes next --------------


@dataclass(frozen=True, slots=True)
class Variant:
    bandwidth: int
    name: str
    path: str  # absolute path of its media playlist on the server


def parse_master(text: str, url: str) -> list[Variant]:
    """The variants of a master playlist, highest BANDWIDTH first."""
    variants, attributes = [], None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-STREAM-INF:"):
            attributes = _attributes(line.partition(":")[2])
        elif attributes is not None and line and not line.startswith("#"):
            variants.append(Variant(int(attributes.get("BANDWIDTH", "0")),
                                    attributes.get("NAME", line),
                                    urlsplit(urljoin(url, line)).path))
            attributes = None
    return sorted(variants, key=lambda v: -v.bandwidth)


_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def _attributes(text: str) -> dict[str, str]:
    return {name: value.strip('"') for name, value in _ATTRIBUTE.findall(text)}


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    """One version of a live media playlist, as hls.js's LevelDetails sees it."""

    keys: tuple[int, ...]  # every listed part, in order (msn x PART_KEY + index)
    uris: tuple[str, ...]  # their URIs as written
    starts: tuple[float, ...]  # media time of each part's start, from the playlist's start
    ends: tuple[float, ...]
    independent: tuple[bool, ...]
    wall_ends: tuple[float, ...]  # epoch seconds each part ends (PROGRAM-DATE-TIME); nan
    end_sn: int  # the last complete segment's msn (hls.js endSN)
    init: str | None  # the last EXT-X-MAP's URI
    target_duration: float
    part_target: float
    part_hold_back: float
    can_block: bool
    ended: bool

    @property
    def last_part(self) -> tuple[int, int]:
        """(msn, index) of the last listed part (hls.js lastPartSn, lastPartIndex); index -1
        when no part is listed."""
        if not self.keys:
            return self.end_sn, -1
        return divmod(self.keys[-1], PART_KEY)

    def new_since(self, key: int) -> int:
        """The position of the first part listed after `key`."""
        return bisect.bisect_right(self.keys, key)


def parse_media(text: str) -> MediaPlaylist:
    keys: list[int] = []
    uris: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    independent: list[bool] = []
    wall: list[float] = []
    msn, index, clock, segment_start = 0, 0, 0.0, 0.0
    pdt = math.nan
    init = None
    target = part_target = hold = 0.0
    can_block = ended = False
    last_complete = -1
    for line in text.splitlines():
        if line.startswith("#EXT-X-PART:"):
            attrs = _attributes(line[12:])
            duration = float(attrs["DURATION"])
            keys.append(msn * PART_KEY + index)
            uris.append(attrs["URI"])
            starts.append(clock)
            clock += duration
            ends.append(clock)
            independent.append(attrs.get("INDEPENDENT") == "YES")
            wall.append(pdt + (clock - segment_start))
            index += 1
        elif line.startswith("#EXTINF:"):
            # the segment's own duration is what counts for its successor's start
            clock = segment_start + float(line[8:].partition(",")[0])
        elif line and not line.startswith("#"):
            last_complete = msn
            msn, index, segment_start = msn + 1, 0, clock
            pdt = math.nan
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pdt = _epoch(line[25:])
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            msn = int(line[22:])
            last_complete = msn - 1
        elif line.startswith("#EXT-X-MAP:"):
            init = _attributes(line[11:])["URI"]
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(line[22:])
        elif line.startswith("#EXT-X-PART-INF:"):
            part_target = float(_attributes(line[16:])["PART-TARGET"])
        elif line.startswith("#EXT-X-SERVER-CONTROL:"):
            attrs = _attributes(line[22:])
            can_block = attrs.get("CAN-BLOCK-RELOAD") == "YES"
            hold = float(attrs.get("PART-HOLD-BACK", "0"))
        elif line.startswith("#EXT-X-ENDLIST"):
            ended = True
    return MediaPlaylist(tuple(keys), tuple(uris), tuple(starts), tuple(ends),
                         tuple(independent), tuple(wall), last_complete, init, target,
                         part_target, hold or 3 * part_target, can_block, ended)


def _epoch(text: str) -> float:
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        return math.nan


class Directives(NamedTuple):
    """The delivery directives of the next reload (None: a plain reload), and hls.js's
    tune-in goal that goes with it."""

    msn: int | None
    part: int | None
    goal: float = 0.0

    def query(self) -> str:
        if self.msn is None:
            return ""
        query = f"?_HLS_msn={self.msn}"
        return query if self.part is None else query + f"&_HLS_part={self.part}"


def next_request(playlist: MediaPlaylist, age: float = 0.0,
                 previous_goal: float = 0.0) -> Directives:
    """hls.js 1.7's next blocking reload after an advanced playlist (base-playlist-controller
    playlistLoaded, lowLatencyMode): the part after the last listed one, in the next segment
    when the last listed part ends a complete segment (lastPartSn === endSN). `age`: seconds
    since the response's first byte (plus its Age header): past a part target, hls.js asks
    that much further ahead ("CDN tune-in"), and past three target durations for no part."""
    last_sn, last_index = playlist.last_part
    msn: int | None
    part: int | None
    if last_index >= 0:
        if last_sn == playlist.end_sn:
            msn, part = playlist.end_sn + 1, 0
        else:
            msn, part = last_sn, last_index + 1
    else:
        msn, part = playlist.end_sn + 1, None
    target, part_target = playlist.target_duration, playlist.part_target
    goal = min(age - part_target, target * 1.5)
    if goal <= 0:
        return Directives(msn, part)
    if age > target * 3:
        return Directives(None, None, goal)
    if previous_goal and age - part_target > previous_goal:
        return Directives(msn, part, 0.0)  # the goal grew: hls.js stops trusting the age
    msn += math.floor(goal / target)
    if part is not None:
        part += math.floor((goal % target) / part_target + 0.5)  # JavaScript's Math.round
    return Directives(msn, part, goal)


def join_position(playlist: MediaPlaylist) -> int:
    """The first part hls.js loads when it joins: the one holding the live edge minus
    PART-HOLD-BACK, backed up to its segment's last INDEPENDENT part at or before it."""
    if not playlist.keys:
        return 0
    target = playlist.ends[-1] - playlist.part_hold_back
    position = max(0, bisect.bisect_right(playlist.starts, target) - 1)
    segment = playlist.keys[position] // PART_KEY
    start = position
    while start > 0 and not playlist.independent[start]:
        if playlist.keys[start - 1] // PART_KEY != segment:
            break
        start -= 1
    return start


# ---- HTTP/1.1 -------------------------------------------------------------------------


class Response(NamedTuple):
    status: int  # 0: no response (connection failed or closed); -1: timed out
    body: bytes | None  # only when asked for
    length: int
    first_ns: int  # the response's first byte arrived
    done_ns: int  # its last byte arrived
    gzip: bool
    age: float  # the Age header, seconds
    why: str = ""


Callback = Callable[[Response], None]
HEAD, BODY = range(2)


class Link(asyncio.BufferedProtocol):
    """One TCP connection of a `Connection`: a new one each time it connects, so that a late
    `connection_lost` of an old socket is told apart from the current one's."""

    def __init__(self, owner: Connection) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but are one
        self.transport = cast(asyncio.Transport, transport)
        self.owner.made(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.lost(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return _VIEW

    def buffer_updated(self, nbytes: int) -> None:
        if self.owner.link is self:
            self.owner.received(nbytes)


class Connection:
    """One keep-alive HTTP/1.1 connection, one request at a time (browsers do not pipeline).
    A connection the server closed between requests is opened again and the request sent
    again once, as browsers do for a reused connection."""

    def __init__(self, counters: Counters, host: str, port: int, source: str,
                 headers: bytes) -> None:
        self.counters = counters
        self.host, self.port, self.source = host, port, source
        self.headers = headers  # the request's header lines after the request line
        self.link: Link | None = None  # connected or connecting
        self.transport: asyncio.Transport | None = None
        self.request = b""
        self.want_body = False
        self.callback: Callback | None = None
        self.sent_ns = self.first_ns = 0
        self.first_limit = self.load_limit = 0  # ns: the request's time-outs
        self.resent = False
        self.state = HEAD
        self.head = bytearray()  # a head split over reads (rare)
        self.chunks: list[bytes] = []
        self.status = self.length = self.remaining = 0
        self.gzip = self.close_after = False
        self.age = 0.0

    def get(self, path: str, want_body: bool, callback: Callback,
            timeouts: tuple[float, float] = (10.0, 20.0)) -> None:
        """GET `path`; `callback` gets the response. `timeouts`: seconds to the first byte
        and to the last (hls.js's maxTimeToFirstByteMs and maxLoadTimeMs)."""
        self.request = b"GET %s HTTP/1.1\r\n%s" % (path.encode(), self.headers)
        self.want_body, self.callback = want_body, callback
        self.first_limit, self.load_limit = (int(min(t, 1e6) * NS) for t in timeouts)
        self.sent_ns, self.first_ns, self.resent = time.monotonic_ns(), 0, False
        self._send()

    def _send(self) -> None:
        if self.transport is not None:
            self.transport.write(self.request)
        elif self.link is None:
            link = self.link = Link(self)
            asyncio.get_running_loop().create_task(self._connect(link))
        # else: connecting; `made` sends it

    async def _connect(self, link: Link) -> None:
        try:
            await asyncio.get_running_loop().create_connection(
                lambda: link, self.host, self.port, local_addr=(self.source, 0))
        except OSError as exc:
            if self.link is link:
                self.link = None
                self._finish(0, f"connect: {exc.strerror or exc}")

    def made(self, link: Link) -> None:
        if self.link is not link:
            assert link.transport is not None
            link.transport.abort()
            return
        self.transport = link.transport
        self.counters.connects += 1
        self.state, self.head = HEAD, bytearray()
        if self.callback is not None and self.transport is not None:
            self.transport.write(self.request)

    def lost(self, link: Link) -> None:
        if self.link is not link:
            return  # a socket given up before
        self.link = self.transport = None
        if self.callback is None:
            return
        if not self.first_ns and not self.resent:
            self.resent = True  # closed while idle (keep-alive timeout): once more
            self.counters.resent += 1
            self._send()
            return
        self._finish(0, "connection closed")

    def _drop(self) -> None:
        """Forget the current socket (closing it): the next request opens another."""
        if self.transport is not None:
            self.transport.abort()
        self.link = self.transport = None

    def received(self, nbytes: int) -> None:
        now = time.monotonic_ns()
        self.counters.received += nbytes
        if self.head:  # a head split over reads: join it (small) and go on from a copy
            data = bytes(self.head) + _BUF[:nbytes]
            self.head = bytearray()
            self._consume(data, len(data), now)
        else:
            self._consume(_BUF, nbytes, now)

    def _consume(self, buf: bytes | bytearray, size: int, now: int) -> None:
        pos = 0
        while pos < size:
            if self.callback is None:
                self._protocol_error("bytes with no request outstanding")
                return
            if self.state == HEAD:
                if not self.first_ns:
                    self.first_ns = now
                end = buf.find(b"\r\n\r\n", pos, size)
                if end < 0:
                    self.head += buf[pos:size]
                    if len(self.head) > 16384:
                        self._protocol_error("response head too long")
                    return
                if not self._parse_head(bytes(buf[pos:end])):
                    return
                pos = end + 4
                if not self.remaining:
                    self._complete(now)
                    continue
            take = min(self.remaining, size - pos)
            if self.want_body:
                self.chunks.append(bytes(buf[pos : pos + take]))
            self.remaining -= take
            pos += take
            if not self.remaining:
                self._complete(now)

    def _parse_head(self, head: bytes) -> bool:
        lines = head.split(b"\r\n")
        try:
            self.status = int(lines[0][9:12])
        except ValueError:
            self._protocol_error("bad status line")
            return False
        length = None
        self.gzip = self.close_after = False
        self.age = 0.0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"content-encoding":
                self.gzip = b"gzip" in value
            elif name == b"connection":
                self.close_after = b"close" in value.lower()
            elif name == b"age":
                with contextlib.suppress(ValueError):
                    self.age = float(value)
            elif name == b"transfer-encoding":
                self._protocol_error("chunked responses are not supported")
                return False
        if length is None and not (self.status < 200 or self.status in (204, 304)):
            self._protocol_error("a response without Content-Length")
            return False
        self.length = self.remaining = length or 0
        self.state, self.chunks = BODY, []
        return True

    def _complete(self, now: int) -> None:
        callback = self.callback
        assert callback is not None
        body = b"".join(self.chunks) if self.want_body else None
        response = Response(self.status, body, self.length, self.first_ns, now, self.gzip,
                            self.age)
        self.callback, self.state, self.chunks = None, HEAD, []
        self.counters.count(response)
        if self.close_after:
            self._drop()
        callback(response)

    def _finish(self, status: int, why: str) -> None:
        callback = self.callback
        if callback is None:
            return
        self.callback, self.state, self.chunks = None, HEAD, []
        now = time.monotonic_ns()
        response = Response(status, None, 0, self.first_ns or now, now, False, 0.0, why)
        self.counters.count(response)
        callback(response)

    def _protocol_error(self, why: str) -> None:
        self._drop()
        self._finish(0, why)

    def expire(self, now: int) -> None:
        """Give up a request that takes longer than hls.js would wait."""
        if self.callback is None:
            return
        waited = now - self.sent_ns
        if waited > self.load_limit or (not self.first_ns and waited > self.first_limit):
            # still connecting: the server did not accept (its listen backlog overflowed)
            why = "timeout connecting" if self.transport is None else "timeout"
            self._drop()
            self._finish(-1, why)

    def close(self) -> None:
        self.callback = None
        if self.transport is not None:
            self.transport.close()
        self.link = self.transport = None


class Counters:
    """A process's requests and bytes, per second of CLOCK_MONOTONIC (so that the window's
    share can be taken after the run)."""

    def __init__(self) -> None:
        self.origin = int(time.monotonic())
        self.requests = array("q", [0]) * 4096
        self.bytes = array("q", [0]) * 4096
        self.received = 0  # bytes read, heads included
        self.connects = self.resent = 0
        self.statuses: Counter[int] = Counter()

    def count(self, response: Response) -> None:
        second = int(response.done_ns / NS) - self.origin
        if 0 <= second < len(self.requests):
            self.requests[second] += 1
            self.bytes[second] += response.length
        if response.status != 200:
            self.statuses[response.status] += 1

    def over(self, start: float, end: float) -> tuple[int, int]:
        """(requests, body bytes) in the whole seconds of [start, end)."""
        a, b = int(start) - self.origin + 1, int(end) - self.origin
        return sum(self.requests[a:b]), sum(self.bytes[a:b])


# ---- hls.js's retries ------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """hls.js's default LoadPolicy of a request kind (config.ts): its time-outs (to the first
    byte, to the last), retries on an error status (exponential backoff from `delay`, capped
    at `cap`), and at once on a time-out."""

    first_byte: float
    load: float
    errors: int
    delay: float
    cap: float
    timeouts: int

    @property
    def limits(self) -> tuple[float, float]:
        return self.first_byte, self.load

    def retry_in(self, attempt: int, timed_out: bool) -> float | None:
        """Seconds before retry number `attempt` (from 0), None: give up."""
        if timed_out:
            return 0.0 if attempt < self.timeouts else None
        if attempt >= self.errors:
            return None
        return min(self.delay * 2**attempt, self.cap)


MANIFEST = Policy(first_byte=math.inf, load=20.0, errors=1, delay=1.0, cap=8.0, timeouts=2)
PLAYLIST = Policy(first_byte=10.0, load=20.0, errors=2, delay=1.0, cap=8.0, timeouts=2)
FRAGMENT = Policy(first_byte=10.0, load=120.0, errors=6, delay=1.0, cap=8.0, timeouts=4)


# ---- a viewer ---------------------------------------------------------------------------


class Playlists:
    """Parsed media playlists of a process, keyed by the response's bytes: every viewer of a
    variant gets the same bytes for the same version, so each is parsed once."""

    def __init__(self) -> None:
        self.cache: dict[bytes, tuple[MediaPlaylist, Directives]] = {}
        self.parsed = 0

    def get(self, body: bytes, gzipped: bool) -> tuple[MediaPlaylist, Directives]:
        entry = self.cache.get(body)
        if entry is None:
            self.parsed += 1
            text = (zlib.decompress(body, 31) if gzipped else body).decode()
            playlist = parse_media(text)
            entry = (playlist, next_request(playlist))
            if len(self.cache) >= CACHE_LIMIT:
                del self.cache[next(iter(self.cache))]
            self.cache[body] = entry
        return entry


class Follower:
    """Blocking playlist reloads of one variant, as hls.js does them (the reference does
    only this; a Viewer also fetches what gets listed)."""

    policy = PLAYLIST

    def __init__(self, process: Process, index: int, source: str) -> None:
        self.process = process
        self.index = index
        agent = b"golive-bench-viewer/%d (hls.js 1.7 lowLatencyMode)" % index
        headers = (b"Host: %s:%d\r\nUser-Agent: %s\r\nAccept: */*\r\n"
                   b"Accept-Encoding: gzip\r\nConnection: keep-alive\r\n\r\n"
                   % (process.host.encode(), process.port, agent))
        self.playlist_connection = Connection(process.counters, process.host, process.port,
                                              source, headers)
        self.headers, self.source = headers, source
        self.variant: Variant | None = None
        self.base = ""  # the media playlist's directory
        self.playlist: MediaPlaylist | None = None
        self.goal = 0.0
        self.last_key = -1  # the last part taken from a listing
        self.keys = array("q")  # parts taken from listings, in order ...
        self.listed = array("q")  # ... and when the response listing each one was complete
        self.attempts = 0  # of the current playlist request
        self.misses = 0  # responses that did not advance
        self.failed: str | None = None
        self.errors: Counter[str] = Counter()
        self.retries = 0
        self.joined_ns = 0
        self.started_ns = 0
        self.stopped = False

    def follow(self, variant: Variant) -> None:
        self.variant = variant
        self.base = variant.path.rpartition("/")[0] + "/"
        self.playlist_connection.get(variant.path, True, self.on_playlist, PLAYLIST.limits)

    def on_playlist(self, response: Response) -> None:
        if self.stopped:
            return
        if response.status != 200 or response.body is None:
            self._retry_playlist(response)
            return
        self.attempts = 0
        playlist, directives = self.process.playlists.get(response.body, response.gzip)
        previous, self.playlist = self.playlist, playlist
        if previous is None:
            self.joined(playlist, response)
        else:
            self.take(playlist, playlist.new_since(self.last_key), response.done_ns)
        if playlist.ended:
            self.fail("the playlist ended")
            return
        if previous is not None and playlist.last_part <= previous.last_part and (
                playlist.end_sn <= previous.end_sn):
            # not advanced: hls.js reloads without directives after half a target duration
            self.misses += 1
            self.reload(Directives(None, None), playlist.target_duration / 2)
            return
        age = (time.monotonic_ns() - response.first_ns) / NS + response.age
        if age > playlist.part_target:
            directives = next_request(playlist, age, self.goal)
        # hls.js keeps the goal on each new LevelDetails: none (0) when it did not compute one
        self.goal = directives.goal
        self.reload(directives, 0.0)

    def reload(self, directives: Directives, delay: float) -> None:
        assert self.variant is not None
        path = self.variant.path + directives.query()
        if delay > 0:
            self.process.loop.call_later(delay, self._get_playlist, path)
        else:
            self._get_playlist(path)

    def _get_playlist(self, path: str) -> None:
        if not self.stopped:
            self.playlist_connection.get(path, True, self.on_playlist, PLAYLIST.limits)

    def _retry_playlist(self, response: Response) -> None:
        self.errors[_error(response)] += 1
        delay = self.policy.retry_in(self.attempts, response.status == -1)
        self.attempts += 1
        if delay is None:
            self.fail(f"playlist: {_error(response)} after {self.attempts} attempts")
            return
        self.retries += 1
        # a timed-out blocking request is retried without its directives (hls.js checkRetry)
        assert self.variant is not None
        if response.status == -1 or self.playlist is None:
            self.reload(Directives(None, None), delay)
        else:
            self.reload(self._last_directives(), delay)

    def _last_directives(self) -> Directives:
        assert self.playlist is not None
        return next_request(self.playlist)

    def joined(self, playlist: MediaPlaylist, response: Response) -> None:
        self.joined_ns = response.done_ns
        self.take(playlist, 0, response.done_ns)

    def take(self, playlist: MediaPlaylist, start: int, now: int) -> None:
        for position in range(start, len(playlist.keys)):
            key = playlist.keys[position]
            self.keys.append(key)
            self.listed.append(now)
            self.last_key = key

    def fail(self, why: str) -> None:
        if self.failed is None:
            self.failed = why
        self.stop()

    def stop(self) -> None:
        self.stopped = True
        self.playlist_connection.close()

    def expire(self, now: int) -> None:
        self.playlist_connection.expire(now)


class Reference(Follower):
    """The reference: notes when each part of its variant was first listed (and, from the
    PROGRAM-DATE-TIME, how long after the end of its media, in wall-clock time)."""

    def __init__(self, process: Process, index: int, source: str) -> None:
        super().__init__(process, index, source)
        # per part listed after the first response: (monotonic ns listed, wall time listed
        # minus the end of its media), flattened
        self.wall_late = array("d")
        self.listings = 0

    def take(self, playlist: MediaPlaylist, start: int, now: int) -> None:
        self.listings += 1
        if self.listings > 1 and start < len(playlist.keys):
            wall = time.time()
            for position in range(start, len(playlist.keys)):
                self.wall_late.append(now)
                self.wall_late.append(wall - playlist.wall_ends[position])
        super().take(playlist, start, now)


class Viewer(Follower):
    """One hls.js player: the master playlist, a variant, its init and parts."""

    def __init__(self, process: Process, index: int, source: str, spread: bool) -> None:
        super().__init__(process, index, source)
        self.spread = spread
        self.media_connection = Connection(process.counters, process.host, process.port,
                                           source, self.headers)
        self.queue: deque[tuple[int, str]] = deque()  # (part key or -1 for the init, path)
        self.fetching = False
        self.media_attempts = 0
        self.done = array("q")  # per part fetched, in order: its key, last byte, size
        self.fetched = array("q")
        self.sizes = array("q")
        self.init = ""

    def start(self, master: str) -> None:
        self.started_ns = time.monotonic_ns()
        self.playlist_connection.get(master, True, self.on_master, MANIFEST.limits)

    def on_master(self, response: Response) -> None:
        if self.stopped:
            return
        if response.status != 200 or response.body is None:
            self.errors[_error(response)] += 1
            delay = MANIFEST.retry_in(self.attempts, response.status == -1)
            self.attempts += 1
            if delay is None:
                self.fail(f"master: {_error(response)} after {self.attempts} attempts")
                return
            self.retries += 1
            self.process.loop.call_later(delay, self._get_master)
            return
        self.attempts = 0
        variants = self.process.variants(response.body, response.gzip)
        if not variants:
            self.fail("no variant in the master playlist")
            return
        self.follow(variants[self.index % len(variants)] if self.spread else variants[0])

    def _get_master(self) -> None:
        if not self.stopped:
            self.playlist_connection.get(self.process.master, True, self.on_master,
                                         MANIFEST.limits)

    def joined(self, playlist: MediaPlaylist, response: Response) -> None:
        self.joined_ns = response.done_ns
        self.take(playlist, join_position(playlist), response.done_ns)
        self.process.viewer_joined(self)

    def take(self, playlist: MediaPlaylist, start: int, now: int) -> None:
        if playlist.init and playlist.init != self.init:
            # a new EXT-X-MAP (the first, or after a discontinuity): before the next part
            self.init = playlist.init
            self.queue.append((-1, self.base + playlist.init))
        base = self.base
        for position in range(start, len(playlist.keys)):
            key = playlist.keys[position]
            self.keys.append(key)
            self.listed.append(now)
            self.queue.append((key, base + playlist.uris[position]))
            self.last_key = key
        self.pump()

    def pump(self) -> None:
        if self.fetching or not self.queue or self.stopped:
            return
        self.fetching = True
        self.media_connection.get(self.queue[0][1], False, self.on_media, FRAGMENT.limits)

    def on_media(self, response: Response) -> None:
        self.fetching = False
        if self.stopped:
            return
        if response.status != 200:
            self.errors[_error(response)] += 1
            delay = FRAGMENT.retry_in(self.media_attempts, response.status == -1)
            self.media_attempts += 1
            if delay is None:
                self.fail(f"part: {_error(response)} after {self.media_attempts} attempts")
                return
            self.retries += 1
            self.fetching = True  # nothing else goes out before the retry
            self.process.loop.call_later(delay, self._retry_media)
            return
        self.media_attempts = 0
        key, _ = self.queue.popleft()
        if key >= 0:
            self.done.append(key)
            self.fetched.append(response.done_ns)
            self.sizes.append(response.length)
        self.pump()

    def _retry_media(self) -> None:
        self.fetching = False
        self.pump()

    def stop(self) -> None:
        super().stop()
        self.media_connection.close()

    def expire(self, now: int) -> None:
        super().expire(now)
        self.media_connection.expire(now)


def _error(response: Response) -> str:
    if response.status == -1:
        return response.why or "timeout"
    if response.status == 0:
        return response.why or "no response"
    return str(response.status)


# ---- processes ------------------------------------------------------------------------


class Process:
    """What one process's viewers (or the coordinator's references) share."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.master = parts.path
        self.url = url
        self.loop = asyncio.get_running_loop()
        self.counters = Counters()
        self.playlists = Playlists()
        self._variants: dict[bytes, list[Variant]] = {}
        self.followers: list[Follower] = []
        self.lag = array("d")  # (time, lateness) of a 10 ms timer, flattened
        self.joined = 0
        self.all_joined = self.loop.create_future()
        self.expected = 0

    def variants(self, body: bytes, gzipped: bool) -> list[Variant]:
        variants = self._variants.get(body)
        if variants is None:
            text = (zlib.decompress(body, 31) if gzipped else body).decode()
            variants = self._variants[body] = parse_master(text, self.url)
        return variants

    def viewer_joined(self, viewer: Viewer) -> None:
        self.joined += 1
        self._check_joined()

    def _check_joined(self) -> None:
        settled = sum(1 for f in self.followers if f.joined_ns or f.failed)
        if settled >= self.expected and not self.all_joined.done():
            self.all_joined.set_result(None)

    async def sweep(self) -> None:
        """Time-outs, and failures during the join (which settle the join too)."""
        while True:
            await asyncio.sleep(SWEEP)
            now = time.monotonic_ns()
            for follower in self.followers:
                if not follower.stopped:
                    follower.expire(now)
            self._check_joined()

    async def watch_lag(self) -> None:
        """How late this process's event loop runs a timer: if it is saturated, the lags it
        measures are partly its own."""
        interval = 0.01
        while True:
            before = time.monotonic()
            await asyncio.sleep(interval)
            now = time.monotonic()
            self.lag.append(now)
            self.lag.append(now - before - interval)

    def lag_over(self, start: float, end: float) -> dict[str, float] | None:
        samples = np.frombuffer(self.lag, dtype=np.float64).reshape(-1, 2)
        inside = samples[(samples[:, 0] >= start) & (samples[:, 0] <= end), 1] * 1e3
        return _points(inside, (99, 100))


def _pack(values: array) -> str:
    return base64.b64encode(values.tobytes()).decode()


def _unpack(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.int64)


async def worker_main(args: argparse.Namespace) -> None:
    """A worker: its share of the viewers (global indices first, first + step, ...), each
    joining at start_at + index / rate; on `stop START END` from the coordinator, its data."""
    process = Process(args.url)
    indices = range(args.first, args.viewers, args.step)
    process.expected = len(indices)
    sweep = asyncio.create_task(process.sweep())
    lag = asyncio.create_task(process.watch_lag())
    stop_line = asyncio.create_task(read_line())
    for index in indices:
        delay = args.start_at + index / args.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        viewer = Viewer(process, index, source_address(index // args.per_address), args.spread)
        process.followers.append(viewer)
        viewer.start(process.master)
    if not indices:
        process.all_joined.set_result(None)
    await process.all_joined
    emit({"event": "joined", "viewers": len(indices),
          "joined": sum(1 for f in process.followers if f.joined_ns)})
    line = await stop_line
    sweep.cancel()
    lag.cancel()
    start, end = (float(v) for v in line.split()[1:3]) if line.startswith("stop ") else (0, 0)
    viewers = cast(list[Viewer], process.followers)
    for viewer in viewers:
        viewer.stop()
    emit(worker_data(process, viewers, start, end))


def worker_data(process: Process, viewers: list[Viewer], start: float, end: float
                ) -> dict[str, Any]:
    requests, body = process.counters.over(start, end)
    return {
        "event": "data",
        "requests": requests,
        "bytes": body,
        "received": process.counters.received,
        "connects": process.counters.connects,
        "resent": process.counters.resent,
        "statuses": {str(k): v for k, v in process.counters.statuses.items()},
        "playlists_parsed": process.playlists.parsed,
        "loop_lag_ms": process.lag_over(start, end),
        "viewers": [
            {"index": v.index, "variant": v.variant.name if v.variant else None,
             "joined_ns": v.joined_ns, "started_ns": v.started_ns, "failed": v.failed,
             "errors": dict(v.errors), "retries": v.retries, "misses": v.misses,
             "keys": _pack(v.keys), "listed": _pack(v.listed), "done": _pack(v.done),
             "fetched": _pack(v.fetched), "sizes": _pack(v.sizes)}
            for v in viewers
        ],
    }


async def read_line() -> str:
    """The next line on stdin ("" at EOF)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return (await reader.readline()).decode().strip()


# ---- the coordinator --------------------------------------------------------------------


class Worker:
    """A worker process, its JSON lines read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process, log: IO[bytes]) -> None:
        self.proc = proc
        self.log = log

    async def event(self, name: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(),
                                          max(0.0, deadline - time.monotonic()))
            if not line:
                self.log.seek(0)
                raise RuntimeError(f"a viewer worker exited before {name!r}: "
                                   f"{self.log.read().decode(errors='replace')[-2000:]}")
            event = json.loads(line)
            if event.get("event") == name:
                return dict(event)

    async def stop(self, start: float, end: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"stop {start} {end}\n".encode())
        await self.proc.stdin.drain()


async def start_workers(args: argparse.Namespace, start_at: float) -> list[Worker]:
    import tempfile

    workers = []
    for first in range(args.processes):
        log = tempfile.TemporaryFile(prefix="golive-bench-viewer-worker-")  # noqa: SIM115
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.viewer_load", "--worker", "--url", args.url,
            "--viewers", str(args.viewers), "--first", str(first), "--step",
            str(args.processes), "--rate", f"{args.rate:g}", "--start-at", repr(start_at),
            "--per-address", str(args.per_address), *(["--spread"] if args.spread else []),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
            preexec_fn=die_with_parent, limit=1 << 30,
        )  # fmt: skip
        workers.append(Worker(proc, log))
    return workers


async def references(process: Process, spread: bool) -> list[Reference]:
    """One reference per variant the viewers use (every one with --spread, else the first),
    from an address of their own (the last loopback one the viewers would get)."""
    status, body, gzipped = await fetch_once(process, process.master)
    if status != 200:
        raise RuntimeError(f"the master playlist answered {status}")
    variants = process.variants(body, gzipped)
    out = []
    for i, variant in enumerate(variants if spread else variants[:1]):
        reference = Reference(process, -1 - i, "127.255.255.254")
        process.followers.append(reference)
        reference.follow(variant)
        out.append(reference)
    return out


async def fetch_once(process: Process, path: str) -> tuple[int, bytes, bool]:
    done: asyncio.Future[Response] = process.loop.create_future()
    connection = Connection(process.counters, process.host, process.port, "127.255.255.254",
                            b"Host: %s\r\nAccept-Encoding: gzip\r\n\r\n" % process.host.encode())
    connection.get(path, True, done.set_result)
    response = await asyncio.wait_for(done, MANIFEST.load)
    connection.close()
    return response.status, response.body or b"", response.gzip


async def coordinator_main(args: argparse.Namespace) -> dict[str, Any]:
    process = Process(args.url)
    lag = asyncio.create_task(process.watch_lag())
    sweep = asyncio.create_task(process.sweep())
    refs = await references(process, args.spread)
    start_at = time.monotonic() + 0.5 + 0.3 * args.processes  # the workers' start-up
    workers = await start_workers(args, start_at)
    pids = [w.proc.pid for w in workers]
    emit({"event": "started", "pids": [os.getpid(), *pids]})
    joins = await asyncio.gather(*(w.event("joined", args.viewers / args.rate + 90)
                                   for w in workers))
    emit({"event": "joined", "viewers": args.viewers, "joined": sum(j["joined"] for j in joins),
          "seconds": round(time.monotonic() - start_at, 2)})
    await asyncio.sleep(args.warmup)
    cpu0 = _cpu(pids)
    start = time.monotonic()
    emit({"event": "window", "start": start})
    if args.seconds > 0:
        await asyncio.sleep(args.seconds)
    else:
        await read_line()
    end = time.monotonic()
    cpu1 = _cpu(pids)
    emit({"event": "window_end", "end": end})
    await asyncio.sleep(args.drain)
    for worker in workers:
        await worker.stop(start, end)
    data = await asyncio.gather(*(w.event("data", 60) for w in workers))
    for worker in workers:
        await worker.proc.wait()
        worker.log.close()
    for reference in refs:
        reference.stop()
    lag.cancel()
    sweep.cancel()
    cpu = [(b - a) / (end - start) for a, b in zip(cpu0, cpu1, strict=True)]
    report = analyse(args, refs, data, start, end)
    report.update({
        "cpu": round(sum(cpu), 4),
        "cpu_processes": [round(c, 4) for c in cpu],  # the coordinator first
        "coordinator_loop_lag_ms": process.lag_over(start, end),
    })
    if args.dump:
        dump(args.dump, refs, data, start, end)
    return report


def _cpu(pids: list[int]) -> list[float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    own = usage.ru_utime + usage.ru_stime
    out = [own]
    for pid in pids:
        try:
            out.append(process_cpu(pid))
        except OSError:
            out.append(math.nan)
    return out


def dump(path: str, refs: list[Reference], data: list[dict[str, Any]], start: float,
         end: float) -> None:
    """Every follower's raw record, as JSON, for tests to check on their own."""
    out = {
        "window": [start, end],
        "references": {r.variant.name if r.variant else "": {
            "keys": list(r.keys), "listed": list(r.listed)} for r in refs},
        "viewers": [{
            "index": v["index"], "variant": v["variant"], "failed": v["failed"],
            **{name: _unpack(v[name]).tolist() for name in
               ("keys", "listed", "done", "fetched", "sizes")}}
            for d in data for v in d["viewers"]],
    }
    with open(path, "w") as f:
        json.dump(out, f)


def analyse(args: argparse.Namespace, refs: list[Reference], data: list[dict[str, Any]],
            start: float, end: float) -> dict[str, Any]:
    """The run's figures.

    viewers / joined / failed (reasons: errored out after hls.js's retries) / errors (by
    status, retried or not) / retries; window: seconds measured; parts: listed in the window
    per variant; lag_ms over every (viewer, window part) fetched: p50/p95/p99/max;
    viewer_p95_ms: each viewer's own p95 (a part never fetched counts as infinitely late), its
    median and worst; late: viewers whose p95 exceeds limit_ms (part target + slack); missed:
    window parts some viewer never fetched (missed_viewers: how many viewers); skipped: parts
    a viewer jumped over between two it fetched; out_of_order (includes duplicates); stuck:
    viewers with no part for STUCK seconds inside the window; playlist_delay_ms (a viewer's
    listing minus live) and fetch_ms (last byte minus listing), p50/p95/p99; reference_late:
    viewers' listings that came before the reference's; reference_listed_late_ms: the
    reference's listing minus the end of the part's media by its PROGRAM-DATE-TIME (the
    server's own delay, in wall-clock time); requests_per_s and mb_per_s (body bytes) over
    the window; held.
    """
    limit_ms = (refs[0].playlist.part_target if refs and refs[0].playlist else 0.0) * 1e3 \
        + args.slack * 1e3
    start_ns, end_ns = int(start * NS), int(end * NS)
    lives: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for ref in refs:
        keys = np.frombuffer(ref.keys, dtype=np.int64)
        lives[ref.variant.name if ref.variant else ""] = (keys, np.frombuffer(
            ref.listed, dtype=np.int64).copy())
    viewers = [v for d in data for v in d["viewers"]]
    reference_late = 0
    # live = the earliest listing by anyone: the reference, or a viewer woken before it
    for viewer in viewers:
        if viewer["variant"] not in lives:
            continue
        keys, live = lives[viewer["variant"]]
        vkeys, vlisted = _unpack(viewer["keys"]), _unpack(viewer["listed"])
        pos = np.searchsorted(keys, vkeys)
        ok = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == vkeys)
        earlier = vlisted[ok] < live[pos[ok]]
        reference_late += int(earlier.sum())
        np.minimum.at(live, pos[ok], vlisted[ok])
    lags: list[np.ndarray] = []
    delays: list[np.ndarray] = []
    fetches: list[np.ndarray] = []
    viewer_p95: list[float] = []
    missed = missed_viewers = skipped = out_of_order = stuck = 0
    failed = Counter(v["failed"] for v in viewers if v["failed"])
    errors: Counter[str] = Counter()
    for viewer in viewers:
        errors.update(viewer["errors"])
        if viewer["variant"] not in lives or not viewer["joined_ns"]:
            viewer_p95.append(math.inf)
            continue
        keys, live = lives[viewer["variant"]]
        window = np.nonzero((live >= start_ns) & (live <= end_ns))[0]
        done, fetched = _unpack(viewer["done"]), _unpack(viewer["fetched"])
        steps = np.diff(done)
        out_of_order += int((steps <= 0).sum())
        pos = np.searchsorted(keys, done)
        known = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == done)
        pos, fetched_known = pos[known], fetched[known]
        if len(pos) > 1:
            gaps = np.diff(pos)
            skipped += int(gaps[gaps > 1].sum() - (gaps > 1).sum())
        inside = np.isin(pos, window)
        lag = (fetched_known[inside] - live[pos[inside]]) / 1e6
        lags.append(lag)
        got = len(np.unique(pos[inside]))
        lost = len(window) - got
        if lost:
            missed += lost
            missed_viewers += 1
        viewer_p95.append(math.inf if lost or not len(lag)
                          else float(np.percentile(lag, 95)))
        times = np.concatenate([[start_ns], fetched[(fetched >= start_ns) & (fetched <= end_ns)],
                                [end_ns]])
        if np.diff(times).max() > STUCK * NS:
            stuck += 1
        vkeys, vlisted = _unpack(viewer["keys"]), _unpack(viewer["listed"])
        lpos = np.searchsorted(keys, vkeys)
        lok = (lpos < len(keys)) & (keys[np.minimum(lpos, len(keys) - 1)] == vkeys)
        lpos, vlisted = lpos[lok], vlisted[lok]
        linside = np.isin(lpos, window)
        delays.append((vlisted[linside] - live[lpos[linside]]) / 1e6)
        listed_at = dict(zip(lpos[linside].tolist(), vlisted[linside].tolist(), strict=True))
        fetches.append(np.asarray([(f - listed_at[p]) / 1e6 for p, f in
                                   zip(pos[inside].tolist(), fetched_known[inside].tolist(),
                                       strict=True) if p in listed_at]))
    all_lags = np.concatenate([*lags, np.zeros(0)])
    per_viewer = np.asarray(viewer_p95) if viewer_p95 else np.zeros(0)
    late = int((per_viewer > limit_ms).sum())
    joined = sum(1 for v in viewers if v["joined_ns"])
    requests = sum(d["requests"] for d in data)
    body = sum(d["bytes"] for d in data)
    seconds = max(1, int(end) - int(start) - 1)  # the whole seconds counted
    ref_late = np.concatenate([np.frombuffer(r.wall_late, dtype=np.float64) for r in refs]
                              + [np.zeros(0)]).reshape(-1, 2)
    in_window = (ref_late[:, 0] >= start_ns) & (ref_late[:, 0] <= end_ns)
    ref_late = ref_late[in_window, 1] * 1e3
    parts = {name: int(((live >= start_ns) & (live <= end_ns)).sum())
             for name, (_, live) in lives.items()}
    held = (joined == len(viewers) == args.viewers and not failed and not missed
            and not late and not out_of_order and all(parts.values()))
    finite = per_viewer[np.isfinite(per_viewer)]
    return {
        "event": "report",
        "viewers": len(viewers),
        "joined": joined,
        "failed": dict(failed),
        "errors": dict(errors),
        "retries": sum(v["retries"] for v in viewers),
        "misses": sum(v["misses"] for v in viewers),
        "window": [start, end],
        "parts": parts,
        "limit_ms": round(limit_ms, 1),
        "lag_ms": _points(all_lags, (50, 95, 99, 100)),
        "lag_min_ms": round(float(all_lags.min()), 2) if len(all_lags) else None,
        "viewer_p95_ms": {
            "p50": round(float(np.median(per_viewer)), 2) if len(per_viewer) else None,
            "max": round(float(per_viewer.max()), 2) if len(per_viewer) else None,
            "max_finite": round(float(finite.max()), 2) if len(finite) else None,
        },
        "late": late,
        "missed": missed,
        "missed_viewers": missed_viewers,
        "skipped": skipped,
        "out_of_order": out_of_order,
        "stuck": stuck,
        "playlist_delay_ms": _points(np.concatenate([*delays, np.zeros(0)]), (50, 95, 99)),
        "fetch_ms": _points(np.concatenate([*fetches, np.zeros(0)]), (50, 95, 99)),
        "reference_late": reference_late,
        "reference_listed_late_ms": _points(ref_late[np.isfinite(ref_late)], (50, 95, 100)),
        "requests_per_s": round(requests / seconds, 1),
        "mb_per_s": round(body / seconds / 1e6, 2),
        "connects": sum(d["connects"] for d in data),
        "resent": sum(d["resent"] for d in data),
        "statuses": dict(sum((Counter(d["statuses"]) for d in data), Counter())),
        "playlists_parsed": sum(d["playlists_parsed"] for d in data),
        "loop_lag_ms": [d["loop_lag_ms"] for d in data],
        "held": bool(held),
    }


def _points(values: np.ndarray, points: tuple[float, ...]) -> dict[str, float] | None:
    if not len(values):
        return None
    figures = np.percentile(values, points)
    names = ["max" if p == 100 else f"p{p:g}" for p in points]
    return {n: round(float(v), 2) for n, v in zip(names, figures, strict=True)}


def emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.viewer_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", required=True,
                        help="the master playlist, e.g. http://127.0.0.1:8080/live/main/index.m3u8")
    parser.add_argument("--viewers", type=int, default=500)
    parser.add_argument("--rate", type=float, default=200.0, help="viewers joining per second")
    parser.add_argument("--spread", action="store_true",
                        help="spread the viewers over the variants (default: the highest)")
    parser.add_argument("--processes", type=int, default=1, help="worker processes")
    parser.add_argument("--per-address", type=int, default=16,
                        help="viewers per loopback source address (2 connections each)")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds after the last join before the window")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="the measured window; 0: until `stop` on stdin")
    parser.add_argument("--drain", type=float, default=2.0,
                        help="seconds of fetching after the window, for its last parts")
    parser.add_argument("--slack", type=float, default=0.5,
                        help="seconds beyond one part target a viewer's p95 lag may be")
    parser.add_argument("--dump", help="write every follower's raw record to this JSON file")
    # a worker's own arguments (the coordinator passes them)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--step", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    raise_file_limit()
    try:
        import uvloop
    except ImportError:
        run = asyncio.run
    else:
        run = uvloop.run  # type: ignore[assignment]
    if args.worker:
        run(worker_main(args))
        return
    emit(run(coordinator_main(args)))


if __name__ == "__main__":
    main()
