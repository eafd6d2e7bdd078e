"""Rate limits: token buckets, with the clock passed in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    """`capacity` actions at once, refilled at `capacity / window` per second."""

    capacity: float
    window: float
    tokens: float = -1.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity,
                              self.tokens + (now - self.updated) * self.capacity / self.window)
        self.updated = now

    def take(self, now: float, amount: float = 1.0) -> bool:
        self._refill(now)
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False

    def take_up_to(self, now: float, amount: float) -> float:
        """As much of `amount` as there are tokens for (reactions: excess taps are dropped)."""
        self._refill(now)
        granted = min(amount, int(self.tokens))
        self.tokens -= granted
        return granted

    def wait(self, now: float, amount: float = 1.0) -> float:
        """Seconds until `amount` could be taken."""
        self._refill(now)
        return max(0.0, (amount - self.tokens) * self.window / self.capacity)
