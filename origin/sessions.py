"""Studio sign-in sessions: a creator types the stream key into the studio page's form once and
gets an HttpOnly cookie holding a random session token instead. The key itself never travels
again, never sits in a URL, and is never kept here: only the stream the session is for.

Pure (the clock is passed in); the studio page issues sessions and the chat socket asks which
stream a cookie speaks for (the creator's role).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

COOKIE = "golive_studio"
TOKEN_BYTES = 32
LIFETIME = 12 * 3600.0  # seconds: a long broadcast day, then sign in again
MAX_SESSIONS = 10_000  # a flood of sign-ins cannot grow memory without bound


@dataclass(slots=True)
class _Session:
    stream: str
    expires: float


class StudioSessions:
    def __init__(self, lifetime: float = LIFETIME) -> None:
        self.lifetime = lifetime
        self._sessions: dict[str, _Session] = {}

    def create(self, stream: str, now: float) -> str:
        """A new session for `stream`'s creator; its token (the cookie's value)."""
        if len(self._sessions) >= MAX_SESSIONS:
            self._expire(now)
            if len(self._sessions) >= MAX_SESSIONS:  # the oldest goes (dicts keep order)
                del self._sessions[next(iter(self._sessions))]
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self._sessions[token] = _Session(stream, now + self.lifetime)
        return token

    def stream_for(self, token: str | None, now: float) -> str | None:
        """The stream a session token signs in to, or None (unknown, expired, none)."""
        session = self._sessions.get(token) if token else None
        if session is None:
            return None
        if session.expires <= now:
            del self._sessions[token]  # type: ignore[arg-type]
            return None
        return session.stream

    def end(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)

    def end_stream(self, stream: str) -> None:
        """Sign every session of a stream out (its key was rotated or removed)."""
        for token in [t for t, s in self._sessions.items() if s.stream == stream]:
            del self._sessions[token]

    def _expire(self, now: float) -> None:
        for token in [t for t, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[token]


# How the origin's handlers reach them (the studio page, the chat socket).
SESSIONS = web.AppKey("studio_sessions", StudioSessions)
# Is `secret` the stream key of stream `name`? (Constant-time inside; from ingest's keys.)
CHECK_KEY = web.AppKey("check_key", Callable[[str, str], bool])
