"""When a stream's ladder falls behind real time, what it gives up, in order. Pure.

The worker reports two things per stream: how much source video waits for the ladder (its
input backlog, in media seconds) and how far the ladder has got (the newest media time it
took). A ladder is behind real time when, over a window of `window` seconds in which it was
never idle, it took less than a second of media per second. A burst (an encoder catching up
after a network stall) makes a backlog too, but one the ladder works off faster than real
time: that is not shed.

The order, each step logged and counted:

1. Behind real time with more than `high` seconds waiting: the largest transcoded rung still
   encoded is shed. It costs the most, and its viewers have the source above it and smaller
   rungs below; its playlist lists gaps meanwhile, so players switch away. Another rung
   follows at most every `window` seconds while it stays behind; the smallest rung is never
   shed here (the worst networks keep a rendition).
2. If that is not enough the backlog reaches the worker's bound and source frames are dropped
   up to the next segment start (`worker.py`): every rung then lists a gap.

After `calm` seconds with the backlog under `low`, the most recently shed rung comes back
(at its next IDR point), one at a time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

HIGH_BACKLOG = 2.0  # seconds of source waiting, and behind real time: shed a rung
LOW_BACKLOG = 0.5  # seconds: calm enough to take a rung back...
CALM = 30.0  # ...after this long
WINDOW = 5.0  # seconds over which the ladder's speed is judged


@dataclass
class Shedder:
    rungs: tuple[str, ...]  # largest first
    high: float = HIGH_BACKLOG
    low: float = LOW_BACKLOG
    calm: float = CALM
    window: float = WINDOW
    shed: list[str] = field(default_factory=list)  # in the order they were shed
    _busy: deque[tuple[float, float]] = field(default_factory=deque)  # (now, media seconds)
    _calm_since: float | None = None

    def update(self, backlog: float, media: float, now: float) -> tuple[str, bool] | None:
        """`backlog`: seconds of source waiting; `media`: the newest media time taken, in
        seconds. Returns (rung, encoding) when a rung should change."""
        if backlog <= 0:
            self._busy.clear()  # idle: keeping up
        else:
            self._busy.append((now, media))
            while len(self._busy) > 2 and now - self._busy[1][0] >= self.window:
                self._busy.popleft()
        if backlog > self.high and self.behind():
            self._calm_since = None
            active = [r for r in self.rungs if r not in self.shed]
            if len(active) > 1:
                self.shed.append(active[0])
                self._busy.clear()  # judge the lighter ladder afresh
                return active[0], False
            return None
        if backlog < self.low and self.shed:
            if self._calm_since is None:
                self._calm_since = now
            elif now - self._calm_since >= self.calm:
                self._calm_since = now
                return self.shed.pop(), True
        elif backlog >= self.low:
            self._calm_since = None
        return None

    def behind(self) -> bool:
        """Busy for a whole window and slower than real time over it."""
        if len(self._busy) < 2:
            return False
        (start, media_start), (end, media_end) = self._busy[0], self._busy[-1]
        return end - start >= self.window and media_end - media_start < end - start
