"""The chat's wire objects: what a client may send, parsed and checked, and the refusal codes.

Pure: text in, a typed event out, or a `Refusal` naming a stable code (README, "Chat and
interaction"). Any text a client sends yields one of the two, never another exception; the
room core then decides what the event means. Events are small frozen dataclasses, like the
RTMP core's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_FRAME_BYTES = 4096  # a client's frame; the WebSocket edge refuses bigger ones (1009)
MAX_TIMEOUT_SECONDS = 86_400
MAX_SLOW_MODE_SECONDS = 3600
MAX_REACTION_COUNT = 50
MAX_GIFT_COUNT = 100
MAX_FILTER_CHANGE = 100  # words or patterns in one `filter` object
MAX_MARKER_LENGTH = 64
_ID = re.compile(r"[mqug]-[0-9a-f]{6,32}")
# JSON may escape half a surrogate pair ("\ud800"); no UTF-8 frame or store can carry it back.
_SURROGATE = re.compile("[\ud800-\udfff]")


class Refusal(Exception):
    """What a client gets back as an `error` object: a stable code and a sentence."""

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.retry_after is not None:
            # Up to the next tenth (of whole milliseconds, so float noise does not add one):
            # a client that waits as long as it is told is not refused again.
            wire["retry_after"] = -(-max(0, round(self.retry_after * 1000)) // 100) / 10
        return wire


@dataclass(frozen=True, slots=True)
class Join:
    name: str
    token: str | None = None
    resume: str | None = None  # the identity token a previous welcome gave this client
    watch: bool = False  # read-only (an overlay): no name, cannot write


@dataclass(frozen=True, slots=True)
class Say:
    text: str


@dataclass(frozen=True, slots=True)
class React:
    kind: str
    count: int


@dataclass(frozen=True, slots=True)
class Ask:
    text: str


@dataclass(frozen=True, slots=True)
class SendGift:
    gift: str
    count: int


@dataclass(frozen=True, slots=True)
class Delete:
    id: str


@dataclass(frozen=True, slots=True)
class TimeOut:
    user: str
    seconds: int
    address: bool = True


@dataclass(frozen=True, slots=True)
class Ban:
    user: str
    address: bool = True


@dataclass(frozen=True, slots=True)
class Unban:
    user: str


@dataclass(frozen=True, slots=True)
class SlowMode:
    seconds: int


@dataclass(frozen=True, slots=True)
class SetChat:
    enabled: bool


@dataclass(frozen=True, slots=True)
class Filter:
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    add_patterns: tuple[str, ...] = ()
    remove_patterns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UserMessages:
    user: str


@dataclass(frozen=True, slots=True)
class Pin:
    id: str | None  # None: unpin


@dataclass(frozen=True, slots=True)
class Answer:
    id: str


@dataclass(frozen=True, slots=True)
class Done:
    id: str


@dataclass(frozen=True, slots=True)
class Marker:
    label: str


@dataclass(frozen=True, slots=True)
class Ping:
    pass


ClientEvent = (Join | Say | React | Ask | SendGift | Delete | TimeOut | Ban | Unban | SlowMode
               | SetChat | Filter | UserMessages | Pin | Answer | Done | Marker | Ping)


def parse(text: str) -> ClientEvent:
    """One client frame's event. Raises `Refusal` (code `bad_request`) for anything else."""
    if len(text) > MAX_FRAME_BYTES:  # (characters; the edge also limits the bytes)
        raise Refusal("bad_request", f"frames are limited to {MAX_FRAME_BYTES} bytes")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise Refusal("bad_request", "a frame must hold one JSON object") from None
    if not isinstance(obj, dict):
        raise Refusal("bad_request", "a frame must hold one JSON object")
    kind = obj.get("type")
    reader = _READERS.get(kind) if isinstance(kind, str) else None
    if reader is None:
        raise Refusal("bad_request", f"unknown type {_shown(kind)}")
    return reader(_Fields(obj, kind))


class _Fields:
    """Typed access to an object's fields; every mistake is a `bad_request` naming it."""

    def __init__(self, obj: dict[str, Any], kind: str) -> None:
        self.obj = obj
        self.kind = kind

    def _bad(self, name: str, what: str) -> Refusal:
        return Refusal("bad_request", f"{self.kind}.{name} must be {what}")

    def text(self, name: str, *, optional: bool = False) -> str | None:
        value = self.obj.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, str) or _SURROGATE.search(value):
            raise self._bad(name, "a string")
        return value

    def required_text(self, name: str) -> str:
        value = self.text(name)
        assert value is not None
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.obj.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self._bad(name, f"a whole number {low}-{high}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.obj.get(name, default)
        if not isinstance(value, bool):
            raise self._bad(name, "true or false")
        return value

    def ident(self, name: str, *, optional: bool = False) -> str | None:
        value = self.obj.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not _ID.fullmatch(value):
            raise self._bad(name, "an id the server gave")
        return value

    def required_ident(self, name: str) -> str:
        value = self.ident(name)
        assert value is not None
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.obj.get(name, [])
        if (not isinstance(value, list) or len(value) > MAX_FILTER_CHANGE
                or not all(isinstance(v, str) and 0 < len(v) <= 100 and not _SURROGATE.search(v)
                           for v in value)):
            raise self._bad(name, f"a list of at most {MAX_FILTER_CHANGE} strings "
                                  "of 1-100 characters")
        return tuple(value)


def _join(f: _Fields) -> Join:
    watch = f.flag("watch", False)
    name = "" if watch else f.required_text("name")
    return Join(name, f.text("token", optional=True), f.text("resume", optional=True), watch)


def _filter(f: _Fields) -> Filter:
    return Filter(f.strings("add"), f.strings("remove"), f.strings("add_patterns"),
                  f.strings("remove_patterns"))


def _pin(f: _Fields) -> Pin:
    return Pin(f.ident("id", optional=True))


_READERS = {
    "join": _join,
    "message": lambda f: Say(f.required_text("text")),
    "react": lambda f: React(f.required_text("kind"),
                             f.integer("count", 1, 1, MAX_REACTION_COUNT)),
    "ask": lambda f: Ask(f.required_text("text")),
    "gift": lambda f: SendGift(f.required_text("gift"), f.integer("count", 1, 1, MAX_GIFT_COUNT)),
    "delete": lambda f: Delete(f.required_ident("id")),
    "timeout": lambda f: TimeOut(f.required_ident("user"),
                                 f.integer("seconds", 300, 1, MAX_TIMEOUT_SECONDS),
                                 f.flag("address", True)),
    "ban": lambda f: Ban(f.required_ident("user"), f.flag("address", True)),
    "unban": lambda f: Unban(f.required_ident("user")),
    "slow_mode": lambda f: SlowMode(f.integer("seconds", 0, 0, MAX_SLOW_MODE_SECONDS)),
    "chat": lambda f: SetChat(f.flag("enabled", True)),
    "filter": _filter,
    "user_messages": lambda f: UserMessages(f.required_ident("user")),
    "pin": _pin,
    "answer": lambda f: Answer(f.required_ident("id")),
    "done": lambda f: Done(f.required_ident("id")),
    "marker": lambda f: Marker(f.required_text("label")),
    "ping": lambda f: Ping(),
}


_WIRE_TYPES: dict[type, str] = {Join: "join", Say: "message", React: "react", Ask: "ask",
                                SendGift: "gift", Delete: "delete", TimeOut: "timeout",
                                Ban: "ban", Unban: "unban", SlowMode: "slow_mode",
                                SetChat: "chat", Filter: "filter",
                                UserMessages: "user_messages", Pin: "pin", Answer: "answer",
                                Done: "done", Marker: "marker", Ping: "ping"}


def wire_type(event: ClientEvent) -> str:
    """The `type` a client sends for this event (metrics label objects by it)."""
    return _WIRE_TYPES[type(event)]


def _shown(value: object) -> str:
    text = json.dumps(value, ensure_ascii=True)[:40]
    return text


def encode(obj: dict[str, Any]) -> str:
    """One server object as frame text: compact, UTF-8 as is (a JSON string is text for any
    client; nothing here is markup)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
