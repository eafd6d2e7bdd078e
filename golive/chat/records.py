"""What the chat keeps: plain records the room core produces and the store writes.

Times are wall-clock milliseconds since the epoch (`at`), as the wire protocol carries them;
`pdt` is the PROGRAM-DATE-TIME (epoch seconds) of the video frame live at that moment, None
while the stream is not live.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    MODERATOR = "moderator"
    CREATOR = "creator"


@dataclass(frozen=True, slots=True)
class User:
    id: str  # "u-" + random hex, one per join
    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: str  # "m-" + random hex
    stream: str
    user: User
    text: str
    at: int  # ms
    pdt: float | None
    deleted_by: str | None = None  # the moderator's name, once deleted


class BanKind(StrEnum):
    USER = "user"  # a user id
    NAME = "name"  # a folded display name (see names.fold)
    ADDRESS = "address"  # a client address


@dataclass(frozen=True, slots=True)
class BanRecord:
    stream: str
    kind: BanKind
    value: str
    until: int | None  # ms; None: until unbanned
    by: str  # the moderator's name
    at: int  # ms
    user_id: str = ""  # the user the ban was made for (unban lifts every ban made for it)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    stream: str
    at: int  # ms
    actor: User
    action: str  # delete, timeout, ban, unban, slow_mode, chat, filter, pin, answer, done, ...
    target: str  # a message, user or question id, or ""
    detail: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GiftRecord:
    id: str  # "g-" + random hex
    stream: str
    user: User
    gift: str  # catalogue name
    count: int
    coins: int  # count x the gift's value
    at: int  # ms
    pdt: float | None
    reference: str = ""  # the webhook's own id for the charge, when it gave one


class QuestionState(StrEnum):
    QUEUED = "queued"
    ANSWERING = "answering"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class QuestionRecord:
    id: str  # "q-" + random hex
    stream: str
    user: User
    text: str
    at: int  # ms
    pdt: float | None
    state: QuestionState = QuestionState.QUEUED


@dataclass(frozen=True, slots=True)
class RoomSettings:
    """What a moderator changes live and a restart keeps."""

    slow_mode: int = 0  # seconds between one user's messages; 0: off
    chat_enabled: bool = True
    words: tuple[str, ...] = ()  # added live to the configured filter
    patterns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TimelineRecord:
    """An event placed on the video's timeline (gift, pin, answering, marker), as a
    recording's replay and the playlists' EXT-X-DATERANGE carry it."""

    id: str
    stream: str
    kind: str  # gift, pin, question, marker
    at: int  # ms
    pdt: float | None
    duration: float | None  # seconds the event is shown; None: a moment
    label: str  # one line for a player's cue: "Ada sent 3 roses"
    attributes: dict[str, str | int | float] = field(default_factory=dict)
