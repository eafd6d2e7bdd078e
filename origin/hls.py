"""HLS over HTTP: master and media playlists (with blocking reload), segments, parts, init.

URLs: `/live/<name>/index.m3u8` (master), `/live/<name>/<rendition>/index.m3u8` and the files
it lists beside it. Every file is looked up in the store by a key built from validated path
pieces, so a request can never name anything outside the store.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import math
import re
import time
from pathlib import Path

from aiohttp import web

from golive.names import is_valid_stream_name
from golive.origin.metrics import OriginMetrics
from golive.origin.viewers import ViewerCounter
from golive.packager.rendition import Rendition
from golive.packager.service import Broadcast, PackagerService
from golive.packager.store import Store

PACKAGER = web.AppKey("packager", PackagerService)
ORIGIN_METRICS = web.AppKey("origin_metrics", OriginMetrics)
VIEWERS = web.AppKey("viewers", ViewerCounter)

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
_FILE = re.compile(r"^(?:init-\d+\.mp4|seg-\d+\.(?:m4s|ts)|part-(\d+)\.(\d+)\.m4s)$")
_CONTENT_TYPES = {".mp4": "video/mp4", ".m4s": "video/mp4", ".ts": "video/mp2t"}
IMMUTABLE = "public, max-age=86400, immutable"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, Age, Date",
}


def _broadcast(request: web.Request) -> Broadcast:
    name = request.match_info["name"]
    broadcast = request.app[PACKAGER].get(name) if is_valid_stream_name(name) else None
    if broadcast is None:
        raise _not_found("no such stream")
    return broadcast


def _rendition(request: web.Request, broadcast: Broadcast) -> Rendition:
    rendition = broadcast.renditions.get(request.match_info["rendition"])
    if rendition is None:
        raise _not_found("no such rendition")
    return rendition


def _not_found(reason: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=reason + "\n", headers={**CORS, "Cache-Control": "no-cache"})


@functools.lru_cache(maxsize=1024)
def _encoded(text: str, gzipped: bool) -> bytes:
    """A playlist's bytes, compressed once per version: renditions cache their text, so the
    same string object (whose hash Python keeps) comes back until the playlist changes."""
    body = text.encode()
    return gzip.compress(body, compresslevel=5, mtime=0) if gzipped else body


def _playlist_response(request: web.Request, text: str, cache: str) -> web.Response:
    headers = {**CORS, "Cache-Control": cache, "Vary": "Accept-Encoding"}
    gzipped = "gzip" in request.headers.get("Accept-Encoding", "") and len(text) > 256
    body = _encoded(text, gzipped)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    request.app[ORIGIN_METRICS].sent_bytes.labels("playlist").inc(len(body))
    return web.Response(body=body, content_type=PLAYLIST_TYPE, headers=headers)


def _count_viewer(request: web.Request, stream: str) -> None:
    request.app[VIEWERS].saw(stream, request.remote or "",
                             request.headers.get("User-Agent", ""))


async def master_playlist(request: web.Request) -> web.StreamResponse:
    broadcast = _broadcast(request)
    request.app[ORIGIN_METRICS].playlist_requests.labels("master", "no").inc()
    _count_viewer(request, broadcast.name)
    if not await _first_segment(broadcast.source):
        raise web.HTTPServiceUnavailable(
            text="stream has no media yet\n",
            headers={**CORS, "Retry-After": "1", "Cache-Control": "no-cache"})
    # Players read the master playlist once: wait for the transcoded renditions too (they
    # trail the source by the encoders' delay), or they would never be offered.
    for rendition in broadcast.variants:
        await _first_segment(rendition)
    return _playlist_response(request, broadcast.master_text(), "public, max-age=2")


async def media_playlist(request: web.Request) -> web.StreamResponse:
    broadcast = _broadcast(request)
    rendition = _rendition(request, broadcast)
    metrics = request.app[ORIGIN_METRICS]
    _count_viewer(request, broadcast.name)
    query = request.query
    msn_text, part_text = query.get("_HLS_msn"), query.get("_HLS_part")
    if msn_text is None and part_text is None:
        metrics.playlist_requests.labels("media", "no").inc()
        await _first_segment(rendition)
        return _playlist_response(request, rendition.text(), _live_cache(rendition))
    metrics.playlist_requests.labels("media", "yes").inc()
    if msn_text is None:
        raise _bad_request("_HLS_part needs _HLS_msn")
    try:
        msn = int(msn_text)
        part = int(part_text) if part_text is not None else None
    except ValueError:
        raise _bad_request("_HLS_msn and _HLS_part must be integers") from None
    if msn < 0 or (part is not None and part < 0):
        raise _bad_request("_HLS_msn and _HLS_part must not be negative")
    if msn > max(rendition.last_msn, rendition.next_sequence - 1) + 2:
        raise _bad_request("_HLS_msn is more than two segments ahead of the playlist")
    if part is not None and rendition.part_target_ms:
        advance_limit = math.ceil(3 * rendition.target_duration * 1000
                                  / rendition.part_target_ms)
        if part > advance_limit:
            raise _bad_request("_HLS_part is beyond the advance part limit")
    timeout = 3 * rendition.target_duration
    started = time.monotonic()
    ready = await rendition.wait_for(msn, part, timeout)
    metrics.blocking_wait.labels("playlist").observe(time.monotonic() - started)
    if not ready and not rendition.ended:
        raise web.HTTPServiceUnavailable(
            text="the requested segment did not appear in time\n",
            headers={**CORS, "Cache-Control": "no-cache"})
    # The answer to "at least msn/part" stays correct: a CDN may keep it a while.
    return _playlist_response(request, rendition.text(),
                              _live_cache(rendition, max_age=rendition.target_duration))


async def _first_segment(rendition: Rendition) -> bool:
    """Wait (at most three target durations) for the first complete segment of a stream that
    just went live. A playlist of parts only has no EXTINF, and hls.js reports it as an
    empty level (levelEmptyError) and retries: better to answer a moment later."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3 * rendition.target_duration
    while not rendition.segments and not rendition.ended:
        remaining = deadline - loop.time()
        if remaining <= 0 or not await rendition.wait_changed(remaining):
            break
    return bool(rendition.segments) or rendition.has_media


def _live_cache(rendition: Rendition, max_age: float | None = None) -> str:
    if rendition.ended:
        return "public, max-age=60"
    if max_age is None:
        # Half a part (or a segment, without parts): a CDN collapses requests, players stay fresh.
        max_age = (rendition.part_target_ms or 1000 * rendition.target_duration) / 2000
    return f"public, max-age={max(0, math.floor(max_age))}"


def _bad_request(reason: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=reason + "\n", headers={**CORS, "Cache-Control": "no-cache"})


async def media_file(request: web.Request) -> web.StreamResponse:
    broadcast = _broadcast(request)
    rendition = _rendition(request, broadcast)
    filename = request.match_info["file"]
    match = _FILE.match(filename)
    if match is None:
        raise _not_found("no such file")
    key = rendition.prefix + filename
    kind = "init" if filename.startswith("init") else "segment"
    found = _lookup(broadcast.store, key)
    if match.group(1) is not None:
        kind = "part"
        msn, index = int(match.group(1)), int(match.group(2))
        if found is None and rendition.part_listed_or_hinted(msn, index):
            # A preload-hinted part: answer as soon as it is complete.
            started = time.monotonic()
            await rendition.wait_for(msn, index, 3 * rendition.target_duration)
            request.app[ORIGIN_METRICS].blocking_wait.labels("part").observe(
                time.monotonic() - started)
            found = _lookup(broadcast.store, key)
    if found is None:
        raise _not_found("no such file (it may have left the live window)")
    _count_viewer(request, broadcast.name)
    content_type = _CONTENT_TYPES[filename[filename.rindex("."):]]
    headers = {**CORS, "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes"}
    sent = request.app[ORIGIN_METRICS].sent_bytes.labels(kind)
    if isinstance(found, Path):  # on disk: aiohttp sends it with sendfile, answers ranges
        sent.inc(_range_length(request, found))
        return web.FileResponse(found, headers={**headers, "Content-Type": content_type})
    data, status = found, 200
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
    return web.Response(body=data, status=status, content_type=content_type, headers=headers)


def _lookup(store: Store, key: str) -> Path | bytes | None:
    """The file's path when the store keeps files, else its bytes; None if it is not there."""
    return store.path(key) or store.get(key)


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
