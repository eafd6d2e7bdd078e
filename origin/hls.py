"""HLS over HTTP: master and media playlists (with blocking reload), segments, parts, init.

URLs: `/live/<name>/index.m3u8` (master), `/live/<name>/<rendition>/index.m3u8` and the files
it lists beside it. What answers a request is the packager's business (`PackagerService.file`,
the one question this module asks); this module only turns its answer into HTTP: status
codes, cache headers, gzip, ranges and sendfile, CORS, metrics, the viewer count.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from pathlib import Path

from aiohttp import web

from golive.origin.metrics import OriginMetrics
from golive.origin.viewers import ViewerCounter
from golive.packager.query import BadRequest, HlsError, HlsFile, NotFound, NotReady
from golive.packager.service import PackagerService

PACKAGER = web.AppKey("packager", PackagerService)
ORIGIN_METRICS = web.AppKey("origin_metrics", OriginMetrics)
VIEWERS = web.AppKey("viewers", ViewerCounter)

IMMUTABLE = "public, max-age=86400, immutable"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, Age, Date, ETag",
}


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


async def _ask(request: web.Request, rendition: str | None, filename: str = "index.m3u8",
               *, msn: str | None = None, part: str | None = None,
               playlist: str | None = None) -> HlsFile:
    """The packager's answer, or the HTTP error that says why there is none. `playlist`
    (master, media): count the request, and its client as a viewer, unless the stream or
    rendition does not exist."""
    try:
        answer = await request.app[PACKAGER].file(request.match_info["name"], rendition,
                                                  filename, msn=msn, part=part)
    except HlsError as exc:
        if playlist is not None and not isinstance(exc, NotFound):
            _count_playlist(request, playlist, msn is not None or part is not None)
        if exc.waited is not None:
            request.app[ORIGIN_METRICS].blocking_wait.labels("playlist").observe(exc.waited)
        headers = {**CORS, "Cache-Control": "no-cache"}
        text = f"{exc}\n"
        if isinstance(exc, NotFound):
            raise web.HTTPNotFound(text=text, headers=headers) from None
        if isinstance(exc, BadRequest):
            raise web.HTTPBadRequest(text=text, headers=headers) from None
        if isinstance(exc, NotReady) and exc.retry_after is not None:
            headers["Retry-After"] = f"{exc.retry_after:g}"
        raise web.HTTPServiceUnavailable(text=text, headers=headers) from None
    if playlist is not None:
        _count_playlist(request, playlist, msn is not None or part is not None)
    return answer


def _playlist_response(request: web.Request, answer: HlsFile) -> web.Response:
    text = answer.text or ""
    gzipped = "gzip" in request.headers.get("Accept-Encoding", "") and len(text) > 256
    # One tag per representation (RFC 9110 8.8.3): the gzipped bytes are not the plain ones.
    etag = _etag(text)[:-1] + ('-gz"' if gzipped else '"')
    headers = {**CORS, "Cache-Control": _cache_control(answer), "Vary": "Accept-Encoding",
               "ETag": etag}
    # A CDN revalidating its copy (If-None-Match) gets 304 while the playlist is the same.
    matches = request.headers.get("If-None-Match", "")
    if etag in matches or matches.strip() == "*":
        return web.Response(status=304, headers=headers)
    body = _encoded(text, gzipped)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    request.app[ORIGIN_METRICS].sent_bytes.labels("playlist").inc(len(body))
    return web.Response(body=body, content_type=answer.content_type, headers=headers)


def _count_viewer(request: web.Request) -> None:
    request.app[VIEWERS].saw(request.match_info["name"], request.remote or "",
                             request.headers.get("User-Agent", ""))


def _count_playlist(request: web.Request, kind: str, blocking: bool) -> None:
    """A playlist request for a stream that exists (404s are not a viewer)."""
    request.app[ORIGIN_METRICS].playlist_requests.labels(kind, "yes" if blocking else "no").inc()
    _count_viewer(request)


async def master_playlist(request: web.Request) -> web.StreamResponse:
    return _playlist_response(request, await _ask(request, None, playlist="master"))


async def media_playlist(request: web.Request) -> web.StreamResponse:
    answer = await _ask(request, request.match_info["rendition"], playlist="media",
                        msn=request.query.get("_HLS_msn"), part=request.query.get("_HLS_part"))
    if answer.waited is not None:
        request.app[ORIGIN_METRICS].blocking_wait.labels("playlist").observe(answer.waited)
    return _playlist_response(request, answer)


async def media_file(request: web.Request) -> web.StreamResponse:
    answer = await _ask(request, request.match_info["rendition"], request.match_info["file"])
    metrics = request.app[ORIGIN_METRICS]
    if answer.waited is not None:
        metrics.blocking_wait.labels("part").observe(answer.waited)
    _count_viewer(request)
    headers = {**CORS, "Cache-Control": _cache_control(answer), "Accept-Ranges": "bytes"}
    sent = metrics.sent_bytes.labels(answer.kind)
    if answer.path is not None:  # on disk: aiohttp sends it with sendfile, answers ranges
        sent.inc(_range_length(request, answer.path))
        return web.FileResponse(answer.path,
                                headers={**headers, "Content-Type": answer.content_type})
    data, status = answer.data or b"", 200
    if "Range" in request.headers:
        try:
            start, stop, _ = request.http_range.indices(len(data))
        except ValueError:
            start = stop = 0
        if start >= stop:
            raise web.HTTPRequestRangeNotSatisfiable(
                headers={**CORS, "Content-Range": f"bytes */{len(data)}"})
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
        data, status = data[start:stop], 206
    sent.inc(len(data))
    return web.Response(body=data, status=status, content_type=answer.content_type,
                        headers=headers)


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


def add_routes(app: web.Application) -> None:
    app.router.add_get("/live/{name}/index.m3u8", master_playlist)
    app.router.add_get("/live/{name}/{rendition}/index.m3u8", media_playlist)
    app.router.add_get("/live/{name}/{rendition}/{file}", media_file)
    app.router.add_route("OPTIONS", "/live/{tail:.*}", preflight)
