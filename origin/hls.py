"""HLS over HTTP: master and media playlists (with blocking reload), segments, parts, init.

URLs: `/live/<name>/index.m3u8` (master), `/live/<name>/<rendition>/index.m3u8` and the files
it lists beside it. What answers a request is the packager's business (`file_now`, the one
question this module asks); this module turns its answer into HTTP — status codes, cache
headers, gzip and entity tags, ranges, CORS — as a `Reply`, and counts it (metrics, the
viewer estimate). Two drivers deliver replies: aiohttp's routes here (every connection that
aiohttp serves, and files on disk, which aiohttp sends with sendfile), and the HLS fast path
(`hls_fast.py`), which answers most HLS requests straight off the socket.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from prometheus_client import Counter

from golive.origin.metrics import OriginMetrics
from golive.origin.viewers import ViewerCounter
from golive.packager.query import (
    BadRequest,
    HlsError,
    HlsFile,
    NotFound,
    NotReady,
    Waiting,
    answered,
)
from golive.packager.service import PackagerService

PACKAGER = web.AppKey("packager", PackagerService)
ORIGIN_METRICS = web.AppKey("origin_metrics", OriginMetrics)
VIEWERS = web.AppKey("viewers", ViewerCounter)

IMMUTABLE = "public, max-age=86400, immutable"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, Age, Date, ETag",
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(slots=True)  # (not frozen: frozen dataclasses are slow to build, per request)
class HlsRequest:
    """An HLS request as both drivers see it: the path's pieces (`rendition` None for the
    master playlist) and the headers that change the answer."""

    stream: str
    rendition: str | None
    filename: str = "index.m3u8"
    msn: str | None = None
    part: str | None = None
    accept_encoding: str = ""
    if_none_match: str = ""
    range: str | None = None
    address: str = ""
    user_agent: str = ""

    @property
    def playlist(self) -> str | None:
        """master or media for a playlist request, else None."""
        if self.rendition is None:
            return "master"
        return "media" if self.filename == "index.m3u8" else None


@dataclass(slots=True)
class Reply:
    """One response: what `reply` decided, before either driver writes it. `path`: the body
    is that file on disk (aiohttp's sendfile); `kind`: of file, for the byte counter."""

    status: int
    headers: dict[str, str]
    body: bytes | memoryview = b""
    content_type: str = "text/plain; charset=utf-8"
    kind: str | None = None
    path: Path | None = None
    waited: float | None = None  # seconds the request blocked (as `HlsFile.waited`)
    changed: asyncio.Future[None] | None = None  # a playlist's: done once it is outdated


@functools.lru_cache(maxsize=1024)
def _encoded(text: str, gzipped: bool) -> bytes:
    """A playlist's bytes, compressed once per version: renditions cache their text, so the
    same string object (whose hash Python keeps) comes back until the playlist changes."""
    body = text.encode()
    return gzip.compress(body, compresslevel=5, mtime=0) if gzipped else body


@functools.lru_cache(maxsize=1024)
def _etag(text: str) -> str:
    """A playlist version's entity tag, computed once per version (as `_encoded`). From the
    text itself, not a counter: a restart starts counting again, and a CDN must never take a
    new playlist for the old one."""
    return '"' + hashlib.blake2b(text.encode(), digest_size=12).hexdigest() + '"'


def _cache_control(answer: HlsFile) -> str:
    return IMMUTABLE if answer.max_age is None else f"public, max-age={answer.max_age}"


class HlsHttp:
    """HTTP's side of HLS for one origin: the packager's answers as replies, and the
    accounting (metrics, the viewer estimate) of each reply sent."""

    def __init__(self, packager: PackagerService, metrics: OriginMetrics,
                 viewers: ViewerCounter) -> None:
        self.packager = packager
        self.metrics = metrics
        self.viewers = viewers
        # Labelled children looked up once: labels() costs more than inc() per request.
        self._responses: dict[int, Counter] = {}
        self._sent = {kind: metrics.sent_bytes.labels(kind)
                      for kind in ("playlist", "init", "segment", "part")}
        self._playlists = {(kind, blocking): metrics.playlist_requests.labels(
            kind, "yes" if blocking else "no")
            for kind in ("master", "media") for blocking in (False, True)}
        self._waits = {kind: metrics.blocking_wait.labels(kind) for kind in ("playlist", "part")}

    def reply_now(self, request: HlsRequest, started: float | None = None,
                  now: float = 0.0) -> Reply | Waiting:
        """The reply as it stands at loop time `now` (see `PackagerService.file_now`)."""
        try:
            answer = self.packager.file_now(request.stream, request.rendition,
                                            request.filename, msn=request.msn,
                                            part=request.part, started=started, now=now)
        except HlsError as exc:
            reply = error_reply(exc)
            reply.waited = exc.waited
            return reply
        if isinstance(answer, Waiting):
            return answer
        if answer.text is not None:
            reply = playlist_reply(answer, request.accept_encoding, request.if_none_match)
        else:
            reply = media_reply(answer, request.range)
        reply.waited, reply.changed = answer.waited, answer.changed
        return reply

    async def reply(self, request: HlsRequest) -> Reply:
        """The reply, once any wait HLS allows this request is over."""
        return await answered(lambda started, now: self.reply_now(request, started, now))

    def account(self, request: HlsRequest, reply: Reply, sent: int,
                address: str | None = None) -> None:
        """Count a reply that was sent: its body bytes (`sent`), the playlist request and
        its wait, and its client (`address`, else the request's) as a viewer — for a
        playlist unless the stream or rendition does not exist (a 404 is not a viewer), for
        media only when it was sent."""
        if reply.kind is not None:
            self._sent[reply.kind].inc(sent)
        kind = request.playlist
        if reply.waited is not None:
            self._waits["playlist" if kind is not None else "part"].observe(reply.waited)
        if kind is not None:
            if reply.status == 404:
                return
            self._playlists[kind, request.msn is not None or request.part is not None].inc()
        elif reply.status >= 400:
            return
        self.viewers.saw(request.stream, request.address if address is None else address,
                         request.user_agent)

    def count_status(self, status: int) -> None:
        """A response's status, for the driver that has no middleware counting it."""
        counter = self._responses.get(status)
        if counter is None:
            counter = self._responses[status] = self.metrics.responses.labels(str(status))
        counter.inc()


def error_reply(exc: HlsError) -> Reply:
    headers = {**CORS, "Cache-Control": "no-cache"}
    status = 503
    if isinstance(exc, NotFound):
        status = 404
    elif isinstance(exc, BadRequest):
        status = 400
    elif isinstance(exc, NotReady) and exc.retry_after is not None:
        headers["Retry-After"] = f"{exc.retry_after:g}"
    return Reply(status, headers, f"{exc}\n".encode())


def playlist_reply(answer: HlsFile, accept_encoding: str, if_none_match: str) -> Reply:
    text = answer.text or ""
    gzipped = "gzip" in accept_encoding and len(text) > 256
    # One tag per representation (RFC 9110 8.8.3): the gzipped bytes are not the plain ones.
    etag = _etag(text)[:-1] + ('-gz"' if gzipped else '"')
    headers = {**CORS, "Cache-Control": _cache_control(answer), "Vary": "Accept-Encoding",
               "ETag": etag}
    # A CDN revalidating its copy (If-None-Match) gets 304 while the playlist is the same.
    if etag in if_none_match or if_none_match.strip() == "*":
        return Reply(304, headers, content_type=answer.content_type)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return Reply(200, headers, _encoded(text, gzipped), answer.content_type, "playlist")


def media_reply(answer: HlsFile, range_header: str | None) -> Reply:
    headers = {**CORS, "Cache-Control": _cache_control(answer), "Accept-Ranges": "bytes"}
    if answer.path is not None:  # on disk: aiohttp sends it with sendfile, answers ranges
        return Reply(200, headers, content_type=answer.content_type, kind=answer.kind,
                     path=answer.path)
    data = answer.data if answer.data is not None else b""
    if range_header is None:
        return Reply(200, headers, data, answer.content_type, answer.kind)
    span = byte_range(range_header, len(data))
    if span is None:
        return Reply(416, {**CORS, "Content-Range": f"bytes */{len(data)}"})
    start, stop = span
    headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
    return Reply(206, headers, memoryview(data)[start:stop], answer.content_type, answer.kind)


def byte_range(value: str, size: int) -> tuple[int, int] | None:
    """[start, stop) of a single `bytes=` range (RFC 9110 14.1.2) of a body of `size` bytes;
    None when it is not satisfiable (or not one range)."""
    match = _RANGE.match(value.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        start, stop = max(0, size - int(last)), size
    else:
        start = int(first)
        stop = size if last == "" else min(size, int(last) + 1)
    return (start, stop) if start < stop else None


# ---- aiohttp's driver ----------------------------------------------------------------------


def _request(request: web.Request, rendition: str | None,
             filename: str = "index.m3u8") -> HlsRequest:
    query = request.query
    return HlsRequest(
        request.match_info["name"], rendition, filename, query.get("_HLS_msn"),
        query.get("_HLS_part"), request.headers.get("Accept-Encoding", ""),
        request.headers.get("If-None-Match", ""), request.headers.get("Range"),
        request.remote or "", request.headers.get("User-Agent", ""))


async def _respond(request: web.Request, hls_request: HlsRequest) -> web.StreamResponse:
    http = request.app[HLS_HTTP]
    reply = await http.reply(hls_request)
    if reply.path is not None:
        http.account(hls_request, reply, _range_length(request, reply.path))
        return web.FileResponse(reply.path,
                                headers={**reply.headers, "Content-Type": reply.content_type})
    http.account(hls_request, reply, len(reply.body))
    if reply.status == 304:
        return web.Response(status=304, headers=reply.headers)
    return web.Response(status=reply.status, body=reply.body, headers={
        **reply.headers, "Content-Type": reply.content_type})


async def master_playlist(request: web.Request) -> web.StreamResponse:
    return await _respond(request, _request(request, None))


async def media_playlist(request: web.Request) -> web.StreamResponse:
    return await _respond(request, _request(request, request.match_info["rendition"]))


async def media_file(request: web.Request) -> web.StreamResponse:
    return await _respond(request, _request(request, request.match_info["rendition"],
                                            request.match_info["file"]))


def _range_length(request: web.Request, path: Path) -> int:
    try:
        size = path.stat().st_size
        start, stop, _ = request.http_range.indices(size)
    except (OSError, ValueError):
        return 0
    return max(0, stop - start)


async def preflight(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={
        **CORS, "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
        "Access-Control-Allow-Headers": "Range", "Access-Control-Max-Age": "86400"})


HLS_HTTP = web.AppKey("hls_http", HlsHttp)


def add_routes(app: web.Application) -> None:
    app[HLS_HTTP] = HlsHttp(app[PACKAGER], app[ORIGIN_METRICS], app[VIEWERS])
    app.router.add_get("/live/{name}/index.m3u8", master_playlist)
    app.router.add_get("/live/{name}/{rendition}/index.m3u8", media_playlist)
    app.router.add_get("/live/{name}/{rendition}/{file}", media_file)
    app.router.add_route("OPTIONS", "/live/{tail:.*}", preflight)
