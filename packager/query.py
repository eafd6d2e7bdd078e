"""The origin's one question to the packager: what answers this HLS request, and for how long.

In the spirit of gohlslib's `Muxer.File(name, msn, part, skip)`: the HTTP side passes the
path pieces and the blocking-reload query as it got them, and gets back an `HlsFile` (the
bytes or the file on disk, its kind, how long a cache may keep it, how long the request
blocked) or an `HlsError` saying why not. Everything HLS means lives on this side: which
files exist, blocking playlist reload (`_HLS_msn`/`_HLS_part`) and its limits, preload-hinted
parts, waiting for a stream's first segment, cache lifetimes. Everything HTTP means stays in
the origin: status codes, headers, compression, ranges. So either side can change (an edge
in front, a cluster node answering for another) without the other.

Every file is looked up in the store by a key built from validated path pieces, so a
request can never name anything outside the store.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from golive.names import is_valid_stream_name
from golive.packager.broadcast import Broadcast
from golive.packager.rendition import Rendition

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
_FILE = re.compile(r"^(?:init-\d+\.mp4|seg-\d+\.(?:m4s|ts)|part-(\d+)\.(\d+)\.m4s)$")
_CONTENT_TYPES = {".mp4": "video/mp4", ".m4s": "video/mp4", ".ts": "video/mp2t"}
MASTER_MAX_AGE = 2  # seconds: players read it once; a CDN may collapse a crowd's requests
ENDED_MAX_AGE = 60  # seconds an ended playlist may be cached (it will not change again)


@dataclass(frozen=True, slots=True)
class HlsFile:
    """One answer. Playlists come as `text` (the same str object until the playlist
    changes, so the origin can cache its compressed bytes by it); media as `data` from
    memory or as `path` on disk."""

    kind: str  # master, playlist, init, segment, part
    content_type: str
    text: str | None = None
    data: bytes | None = None
    path: Path | None = None
    max_age: int | None = None  # seconds a cache may keep it; None: immutable
    waited: float | None = None  # seconds the request blocked for it; None: it did not
    # A media playlist's: done when the playlist changes (until then this answer stands).
    changed: asyncio.Future[None] | None = None


class HlsError(Exception):
    """No file answers the request; the message says why (safe to show the client)."""

    waited: float | None = None  # seconds the request blocked before this was known


class NotFound(HlsError):
    """No such stream, rendition or file (or it left the live window)."""


class BadRequest(HlsError):
    """The request asks for something HLS does not allow (a blocking reload too far ahead)."""


class NotReady(HlsError):
    """It is not there yet: the stream has no media, or a blocking reload timed out."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class RenditionStatus:
    name: str
    codecs: tuple[str, ...]
    resolution: tuple[int, int] | None
    bandwidth: int  # peak b/s, as the master playlist says
    average_bandwidth: int
    segments: int  # listed now
    last_msn: int
    transcode: dict[str, object] | None  # a rung's state (shed, speed, frames); else None


@dataclass(frozen=True, slots=True)
class BroadcastStatus:
    """What the API and the pages show of a broadcast."""

    name: str
    state: str  # live, waiting, reconnecting, ended
    started_at: float  # wall clock, seconds
    renditions: tuple[RenditionStatus, ...]
    ended_at: float | None = None  # wall clock of ENDLIST
    recording: str | None = None  # its recording's playlist, an origin path (--record-dir)

    @property
    def resolution(self) -> tuple[int, int] | None:
        """The source's video size, when it has video."""
        return self.renditions[0].resolution if self.renditions else None


def broadcast_status(broadcast: Broadcast) -> BroadcastStatus:
    renditions = []
    for name, rendition in broadcast.renditions.items():
        peak, average = rendition.bandwidth()
        renditions.append(RenditionStatus(
            name=name, codecs=rendition.codecs, resolution=rendition.resolution,
            bandwidth=peak, average_bandwidth=average, segments=len(rendition.segments),
            last_msn=rendition.last_msn, transcode=broadcast.rung_status(name)))
    recording = broadcast.recording
    playlist = (f"/recordings/{recording.recorder.playlist_key}"
                if recording is not None and recording.recorder is not None
                and recording.recorder.segments else None)
    return BroadcastStatus(broadcast.name, broadcast.state, broadcast.started_at,
                           tuple(renditions), broadcast.ended_at, playlist)


# A recording's files: <name>/<UTC start>/<file>, as `Broadcast` lays them out.
_RECORDED = re.compile(r"^\d{8}T\d{6}Z$")
# chat.jsonl: the broadcast's chat, kept beside its recording by the chat service.
_RECORDED_FILE = re.compile(r"^(?:index\.m3u8|init-\d+\.mp4|seg-\d+\.(?:m4s|ts)|chat\.jsonl)$")


def recording_file(record_dir: str | None, stream: str, started: str,
                   filename: str) -> Path | None:
    """The path of a recording's file, from validated pieces only; None if it is not one."""
    if (record_dir is None or not is_valid_stream_name(stream)
            or not _RECORDED.match(started) or not _RECORDED_FILE.match(filename)):
        return None
    path = Path(record_dir) / stream / started / filename
    return path if path.is_file() else None


@dataclass(frozen=True, slots=True)
class Waiting:
    """No answer yet: ask again once `changed` is done (the rendition's next change, one
    future shared by every waiter) or at `deadline` (loop time), passing the time the
    request started waiting, and the answer then says what the wait came to."""

    changed: asyncio.Future[None]
    deadline: float


class HlsFiles:
    """Answers for every broadcast `lookup` knows by name."""

    def __init__(self, lookup: Callable[[str], Broadcast | None]) -> None:
        self._lookup = lookup

    async def file(self, stream: str, rendition: str | None, filename: str = "index.m3u8",
                   *, msn: str | None = None, part: str | None = None) -> HlsFile:
        """The answer to `/live/<stream>/index.m3u8` (`rendition` None, the master
        playlist), `/live/<stream>/<rendition>/index.m3u8` (with the blocking-reload query
        values `msn` and `part` as the client sent them) or a file beside it, waiting for
        it where HLS says a request may."""
        return await answered(lambda started, now: self.file_now(
            stream, rendition, filename, msn=msn, part=part, started=started, now=now))

    def file_now(self, stream: str, rendition: str | None, filename: str = "index.m3u8",
                 *, msn: str | None = None, part: str | None = None,
                 started: float | None = None, now: float = 0.0) -> HlsFile | Waiting:
        """`file`'s answer as it stands at loop time `now`, without waiting: a `Waiting`
        when HLS lets this request wait for something not there yet. `started`: the loop
        time the request began waiting (None: it has not), so that past its deadline the
        answer is what the wait came to. Raises `HlsError` when nothing answers."""
        broadcast = self._lookup(stream) if is_valid_stream_name(stream) else None
        if broadcast is None:
            raise NotFound("no such stream")
        if rendition is None:
            return _master(broadcast, started, now)
        found = broadcast.renditions.get(rendition)
        if found is None:
            raise NotFound("no such rendition")
        if filename == "index.m3u8":
            return _media_playlist(found, msn, part, started, now)
        return _media_file(found, filename, started, now)


T = TypeVar("T")


async def answered(ask: Callable[[float | None, float], T | Waiting]) -> T:
    """Drive `ask(started, now)` — an answer as it stands at loop time `now`, for a request
    waiting since `started` (None: not yet) — until it answers rather than says what to wait
    for. No task per waiter: one future of its own, woken by the shared change or its
    deadline (the shared future is never cancelled, whoever stops waiting)."""
    loop = asyncio.get_running_loop()
    started = None
    while True:
        now = loop.time()
        answer = ask(started, now)
        if not isinstance(answer, Waiting):
            return answer
        started = now if started is None else started
        woken = loop.create_future()
        timer = loop.call_at(answer.deadline, _wake, woken)
        answer.changed.add_done_callback(functools.partial(_woken, woken))
        try:
            await woken
        finally:
            timer.cancel()


def _woken(waiter: asyncio.Future[None], _changed: asyncio.Future[None]) -> None:
    _wake(waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _wait(rendition: Rendition, started: float | None, now: float) -> Waiting | None:
    """A `Waiting` on `rendition`, or None once the request has waited its three target
    durations (RFC 8216bis 6.2.5.2: a server may hold a blocking request that long)."""
    deadline = (now if started is None else started) + 3 * rendition.target_duration
    return Waiting(rendition.next_change(), deadline) if now < deadline else None


def _master(broadcast: Broadcast, started: float | None, now: float) -> HlsFile | Waiting:
    renditions = broadcast.renditions
    # Players read the master playlist once: wait for the transcoded renditions too (they
    # trail the source by the encoders' delay), or they would never be offered.
    for rendition in (renditions.source, *renditions.variants()):
        if _before_first_segment(rendition) and (wait := _wait(rendition, started, now)):
            return wait
    if not (renditions.source.segments or renditions.source.has_media):
        raise NotReady("stream has no media yet", retry_after=1)
    return HlsFile("master", PLAYLIST_TYPE, text=renditions.master_text(),
                   max_age=MASTER_MAX_AGE)


def _media_playlist(rendition: Rendition, msn_text: str | None, part_text: str | None,
                    started: float | None, now: float) -> HlsFile | Waiting:
    if msn_text is None and part_text is None:
        if _before_first_segment(rendition) and (wait := _wait(rendition, started, now)):
            return wait
        return HlsFile("playlist", PLAYLIST_TYPE, text=rendition.text(),
                       max_age=_live_max_age(rendition), changed=rendition.next_change())
    msn, part = _blocking_target(rendition, msn_text, part_text)
    waited = 0.0 if started is None else now - started
    if not rendition.has(msn, part) and not rendition.ended:
        if wait := _wait(rendition, started, now):
            return wait
        error = NotReady("the requested segment did not appear in time")
        error.waited = waited
        raise error
    # The answer to "at least msn/part" stays correct: a CDN may keep it a while.
    return HlsFile("playlist", PLAYLIST_TYPE, text=rendition.text(), waited=waited,
                   max_age=_live_max_age(rendition, rendition.target_duration),
                   changed=rendition.next_change())


def _blocking_target(rendition: Rendition, msn_text: str | None,
                     part_text: str | None) -> tuple[int, int | None]:
    """The (msn, part) a blocking reload asks for, checked against what HLS allows."""
    if msn_text is None:
        raise BadRequest("_HLS_part needs _HLS_msn")
    try:
        msn = int(msn_text)
        part = int(part_text) if part_text is not None else None
    except ValueError:
        raise BadRequest("_HLS_msn and _HLS_part must be integers") from None
    if msn < 0 or (part is not None and part < 0):
        raise BadRequest("_HLS_msn and _HLS_part must not be negative")
    if msn > max(rendition.last_msn, rendition.next_sequence - 1) + 2:
        raise BadRequest("_HLS_msn is more than two segments ahead of the playlist")
    if part is not None and rendition.part_target_ms:
        advance_limit = math.ceil(3 * rendition.target_duration * 1000
                                  / rendition.part_target_ms)
        if part > advance_limit:
            raise BadRequest("_HLS_part is beyond the advance part limit")
    return msn, part


def _media_file(rendition: Rendition, filename: str, started: float | None,
                now: float) -> HlsFile | Waiting:
    match = _FILE.match(filename)
    if match is None:
        raise NotFound("no such file")
    key = rendition.prefix + filename
    kind = "init" if filename.startswith("init") else "segment"
    store = rendition.store
    path, data = store.path(key), None
    if path is None:
        data = store.get(key)
    waited = None if started is None else now - started
    if match.group(1) is not None:
        kind = "part"
        if (path is None and data is None
                and rendition.part_listed_or_hinted(int(match.group(1)), int(match.group(2)))
                and (wait := _wait(rendition, started, now))):
            return wait  # a preload-hinted part: answered as soon as it is complete
    if path is None and data is None:
        raise NotFound("no such file (it may have left the live window)")
    return HlsFile(kind, _CONTENT_TYPES[filename[filename.rindex("."):]], data=data,
                   path=path, waited=waited)


def _before_first_segment(rendition: Rendition) -> bool:
    """A stream that just went live has no complete segment for a few seconds. A playlist of
    parts only has no EXTINF, and hls.js reports it as an empty level (levelEmptyError) and
    retries: better to answer a moment later (every request but a stream's first ones has
    its segment)."""
    return not rendition.segments and not rendition.ended


def _live_max_age(rendition: Rendition, max_age: float | None = None) -> int:
    if rendition.ended:
        return ENDED_MAX_AGE
    if max_age is None:
        # Half a part (or a segment, without parts): a CDN collapses requests, players stay fresh.
        max_age = (rendition.part_target_ms or 1000 * rendition.target_duration) / 2000
    return max(0, math.floor(max_age))
