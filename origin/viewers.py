"""A viewer estimate: distinct clients that fetched a stream's media recently.

A client is its address plus user agent, hashed (no addresses are kept). Behind a CDN this
counts edge nodes rather than people, which is why it is called an estimate.
"""

from __future__ import annotations

import hashlib
import time

WINDOW = 15.0  # seconds: a player refreshes its playlist far more often than this
MAX_CLIENTS = 200_000  # per stream; beyond this the estimate saturates rather than grow


class ViewerCounter:
    def __init__(self) -> None:
        self._seen: dict[str, dict[bytes, float]] = {}

    def saw(self, stream: str, address: str, user_agent: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        clients = self._seen.setdefault(stream, {})
        key = hashlib.blake2b(f"{address}\0{user_agent}".encode(), digest_size=8).digest()
        if key not in clients and len(clients) >= MAX_CLIENTS:
            self._prune(clients, now)
            if len(clients) >= MAX_CLIENTS:
                return
        clients[key] = now

    def count(self, stream: str, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        clients = self._seen.get(stream)
        if not clients:
            return 0
        self._prune(clients, now)
        if not clients:
            del self._seen[stream]
        return len(clients)

    def streams(self) -> list[str]:
        return list(self._seen)

    @staticmethod
    def _prune(clients: dict[bytes, float], now: float) -> None:
        stale = [key for key, seen in clients.items() if now - seen > WINDOW]
        for key in stale:
            del clients[key]
