"""The stream hub: live streams, their tracks, and bounded fan-out to subscribers.

A publisher pushes units into its `LiveStream`; each subscriber owns a bounded buffer. A
subscriber that falls behind loses units, never the publisher's time: on overflow its buffer
is emptied and it skips ahead to the next video keyframe (so what it gets next decodes), and
every lost unit is counted. Pushing never blocks and never allocates beyond the bounds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from golive.media import MediaUnit, Track, TrackKind

log = logging.getLogger("golive.hub")

DEFAULT_SUBSCRIBER_CAPACITY = 512  # units: ~8 s of 25 fps video + 48 kHz AAC


class StreamEnded(Exception):
    """The stream's publisher is gone; no more units will come."""


Item = MediaUnit | Track


class Subscription:
    """One consumer's bounded view of a live stream.

    It yields the stream's current tracks first, then units from the next video keyframe on
    (or at once for audio-only streams); a `Track` item in the flow means the units after it
    use that new codec configuration.
    """

    def __init__(self, stream: LiveStream, name: str, capacity: int,
                 on_drop: Callable[[str, str, int], None] | None) -> None:
        self.stream = stream
        self.name = name
        self.capacity = capacity
        self.dropped = 0
        self._queue: deque[Item] = deque(stream.tracks.values())
        # Start at a keyframe when there is video; before any track is known the encoder's
        # first video frame is a keyframe anyway.
        self._skipping = TrackKind.VIDEO in stream.tracks
        self._lagging = False  # skipping because it fell behind (counted), not because new
        self._waiter: asyncio.Future[None] | None = None
        # Called instead of waking a task, for a consumer that drains the buffer from a
        # callback (`get_nowait`, until empty) rather than awaiting `get`: the packager,
        # whose work per unit is a few microseconds, and a task wake-up per socket read cost
        # more. Called when the buffer goes from empty to holding something, after a loss,
        # and at the end.
        self.notify: Callable[[], None] | None = None
        self._closed = False
        self._on_drop = on_drop

    def _push(self, item: Item) -> None:
        queue = self._queue
        if type(item) is MediaUnit:
            if self._skipping:
                if not (item.keyframe and item.kind is TrackKind.VIDEO):
                    if self._lagging:
                        self._lose(1)
                    return
                self._skipping = self._lagging = False
            if len(queue) >= self.capacity:
                self._overflow()
                if self._skipping and not (item.keyframe and item.kind is TrackKind.VIDEO):
                    self._lose(1)
                    self._wake()
                    return
                self._skipping = self._lagging = False
        elif len(queue) >= self.capacity:
            self._overflow()  # track changes are never dropped
        queue.append(item)
        # A notified consumer empties the buffer each time it is told, so it needs telling
        # only when the buffer starts to fill: once per socket read, not once per unit.
        if self.notify is None or len(queue) == 1:
            self._wake()

    def _push_all(self, units: list[MediaUnit]) -> None:
        """`_push` of each, in order; at once when none is skipped nor overflows."""
        queue = self._queue
        if self._skipping or len(queue) + len(units) > self.capacity:
            for unit in units:
                self._push(unit)
            return
        empty = not queue
        queue.extend(units)
        if self.notify is None or empty:
            self._wake()

    def _overflow(self) -> None:
        """Empty the buffer but for the newest track of each kind; skip to a keyframe."""
        tracks: dict[TrackKind, Track] = {}
        lost = 0
        for queued in self._queue:
            if type(queued) is MediaUnit:
                lost += 1
            else:
                tracks[queued.kind] = queued
        self._queue.clear()
        self._queue.extend(tracks.values())
        self._skipping = self._lagging = TrackKind.VIDEO in self.stream.tracks
        if lost:
            self._lose(lost)

    def _wake(self) -> None:
        if self.notify is not None:
            self.notify()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _lose(self, count: int) -> None:
        self.dropped += count
        if self._on_drop is not None:
            self._on_drop(self.stream.name, self.name, count)

    def _close(self) -> None:
        self._closed = True
        self._wake()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def get_nowait(self) -> Item | None:
        """The next item, or None when nothing is buffered. Raises StreamEnded at the end."""
        if self._queue:
            return self._queue.popleft()
        if self._closed:
            raise StreamEnded(self.stream.name)
        return None

    async def get(self) -> Item:
        while not self._queue:
            if self._closed:
                raise StreamEnded(self.stream.name)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def close(self) -> None:
        """Stop receiving; the stream forgets this subscriber."""
        self.stream._subscribers.discard(self)
        self._close()

    def __aiter__(self) -> AsyncIterator[Item]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Item]:
        try:
            while True:
                yield await self.get()
        except StreamEnded:
            return


@dataclass(eq=False)
class LiveStream:
    """One publication: from publish to unpublish (a reconnect is a new LiveStream)."""

    name: str
    publisher: str  # client address, for logs and the API
    session_id: int
    started_at: float = field(default_factory=time.time)
    tracks: dict[TrackKind, Track] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    ended: bool = False
    bytes_in: int = 0
    units_in: int = 0
    _subscribers: set[Subscription] = field(default_factory=set)
    _on_drop: Callable[[str, str, int], None] | None = None

    def set_track(self, track: Track) -> None:
        self.tracks[track.kind] = track
        for subscription in tuple(self._subscribers):
            subscription._push(track)

    def push(self, unit: MediaUnit) -> None:
        self.units_in += 1
        for subscription in tuple(self._subscribers) if self._subscribers else ():
            subscription._push(unit)

    def push_all(self, units: list[MediaUnit]) -> None:
        """`push` of each (those one socket read completed), for less than the price."""
        self.units_in += len(units)
        for subscription in tuple(self._subscribers) if self._subscribers else ():
            subscription._push_all(units)

    def subscribe(self, name: str, capacity: int = DEFAULT_SUBSCRIBER_CAPACITY) -> Subscription:
        subscription = Subscription(self, name, capacity, self._on_drop)
        if self.ended:
            subscription._close()
        else:
            self._subscribers.add(subscription)
        return subscription

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def end(self) -> None:
        self.ended = True
        for subscription in tuple(self._subscribers):
            subscription._close()
        self._subscribers.clear()


class Hub:
    """Live streams by public name. Keys never reach the hub: names are public."""

    def __init__(self, on_drop: Callable[[str, str, int], None] | None = None) -> None:
        self._streams: dict[str, LiveStream] = {}
        self._session_ids = itertools.count(1)
        self._on_drop = on_drop
        self._publish_listeners: list[Callable[[LiveStream], None]] = []

    def get(self, name: str) -> LiveStream | None:
        return self._streams.get(name)

    def streams(self) -> list[LiveStream]:
        return list(self._streams.values())

    def on_publish(self, listener: Callable[[LiveStream], None]) -> None:
        """Call `listener(stream)` for every stream that starts from now on."""
        self._publish_listeners.append(listener)

    def start(self, name: str, publisher: str) -> LiveStream:
        """A new publication under `name`. Any previous one under that name must have been
        ended by the caller (the takeover policy belongs to the ingest server)."""
        old = self._streams.get(name)
        if old is not None and not old.ended:
            raise RuntimeError(f"stream {name!r} is still live")
        stream = LiveStream(name, publisher, next(self._session_ids), _on_drop=self._on_drop)
        self._streams[name] = stream
        for listener in self._publish_listeners:
            try:
                listener(stream)
            except Exception:
                log.exception("publish listener failed for stream %s", name)
        return stream

    def end(self, stream: LiveStream) -> None:
        stream.end()
        if self._streams.get(stream.name) is stream:
            del self._streams[stream.name]
