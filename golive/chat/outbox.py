"""A client's bounded send queue. The room never waits for a socket: it offers frames here,
and a client whose queue is full is dropped (counted) rather than slowing the room, the way
the hub treats a slow media subscriber. The WebSocket edge drains it, joining whatever is
queued into one frame (a JSON array) per write."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Closing:
    code: int
    reason: str


DROPPED, QUEUED, WRITTEN = 0, 1, 2  # what `put` did (DROPPED is falsy)


class Outbox:
    def __init__(self, conn: int, address: str, limit: int,
                 write_now: Callable[[str], bool] | None = None) -> None:
        self.conn = conn
        self.address = address
        self.limit = limit  # objects
        # The edge's fast path: write this frame text to the socket at once if it can take
        # it (True), without waking the writer task. Only used while nothing is queued, so
        # frames never overtake each other.
        self.write_now = write_now
        self._items: deque[str] = deque()  # frame texts: one object, or an array of them
        self.queued = 0  # objects
        self.oldest: float | None = None  # monotonic time the oldest queued object was made
        self.ready = asyncio.Event()
        self.closing: Closing | None = None

    def put(self, text: str, objects: int = 1, since: float | None = None) -> int:
        """Send or queue a frame text holding `objects` objects, made at `since` (monotonic):
        WRITTEN (to the socket, at once), QUEUED (for the writer task), or DROPPED (nothing
        done) when it would overflow the queue: the client cannot keep up."""
        if self.closing is not None:
            return QUEUED  # (it is going anyway)
        if not self._items and self.write_now is not None and self.write_now(text):
            return WRITTEN
        if self.queued + objects > self.limit:
            return DROPPED
        self._items.append(text)
        self.queued += objects
        if self.oldest is None:
            self.oldest = time.monotonic() if since is None else since
        self.ready.set()
        return QUEUED

    def take(self) -> tuple[str, float | None] | None:
        """Everything queued as one frame text, and when its oldest object was made."""
        if not self._items:
            return None
        items, oldest = self._items, self.oldest
        self._items, self.queued, self.oldest = deque(), 0, None
        if len(items) == 1:
            return items[0], oldest
        # Arrays are opened up so that the frame is one flat array of objects.
        return "[" + ",".join(t[1:-1] if t[0] == "[" else t for t in items) + "]", oldest

    def close(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = Closing(code, reason)
        self.ready.set()
