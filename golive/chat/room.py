"""One stream's chat room: a pure core. Events and a clock in; what to send to whom out.

The input contract (the WebSocket edge and `service.py` keep it):
- `join(conn, address, event, role, user_id, now)` once per connection, first; the caller has
  decided the role (a moderator token, the creator's session) and the user id (a new one, or
  the one a resume token names).
- `receive(conn, event, now, pdt)` for every later client event; `pdt` is the
  PROGRAM-DATE-TIME of the frame live now (None while the stream is not live).
- `leave(conn)` when the connection is gone; `tick(now, hls_viewers)` a few times a second;
  `gift_settled(...)` when the gift webhook has answered a `GiftCharge`.

Each returns an `Outcome`: objects for one connection, for everyone (`ALL`) or for the staff
(`STAFF`); connections to close; records for the store (method name and arguments);
`TimelineRecord`s for the playlists; gift charges and lookups for the service to do. Nothing
here reads a clock, touches a socket or the database; refusals are `error` objects with the
stable codes of the README, counted by code in `Outcome.refused`.
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from golive.chat import protocol as p
from golive.chat.config import REACTIONS, ChatConfig, GiftType
from golive.chat.limits import TokenBucket
from golive.chat.records import (
    AuditRecord,
    BanKind,
    BanRecord,
    GiftRecord,
    MessageRecord,
    QuestionRecord,
    QuestionState,
    Role,
    RoomSettings,
    TimelineRecord,
    User,
)
from golive.chat.text import WordFilter, display_name, fold, message_text

ALL = "all"
STAFF = "staff"
REACTIONS_EVERY = 0.5  # seconds between `reactions` objects (taps are added up meanwhile)
GIFT_SHOWN = 5.0  # seconds a gift alert lasts on the timeline
MAX_OPEN_QUESTIONS = 500  # per room; a viewer may have 3 waiting
MAX_QUESTIONS_PER_USER = 3
MAX_SEEN_USERS = 20_000  # users a moderator can still act on after they left
SUPPORTERS_SHOWN = 10
# Frames a connection may send: a burst of 60, then 6 a second (reactions come every ~0.3 s).
FRAMES_BURST, FRAMES_WINDOW = 60, 10.0
FLOOD_REFUSALS = 50  # frames refused in a row for flooding: the connection is closed
REACTION_BURST = 50
CLOSE_POLICY = 1008


def iso(pdt: float | None) -> str | None:
    """PROGRAM-DATE-TIME as playlists write it: ISO 8601, milliseconds, Z."""
    if pdt is None:
        return None
    moment = datetime.fromtimestamp(pdt, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def user_wire(user: User) -> dict[str, str]:
    return {"id": user.id, "name": user.name, "role": user.role.value}


def message_wire(message: MessageRecord) -> dict[str, Any]:
    return {"type": "message", "id": message.id, "user": user_wire(message.user),
            "text": message.text, "at": message.at, "pdt": iso(message.pdt)}


def question_wire(question: QuestionRecord) -> dict[str, Any]:
    return {"type": "question", "id": question.id, "user": user_wire(question.user),
            "text": question.text, "at": question.at, "pdt": iso(question.pdt),
            "state": question.state.value}


def gift_wire(gift: GiftType) -> dict[str, Any]:
    return {"name": gift.name, "title": gift.title, "picture": gift.picture,
            "coins": gift.coins}


@dataclass(frozen=True, slots=True)
class Send:
    to: int | str  # a connection, ALL or STAFF
    obj: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Close:
    conn: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class GiftCharge:
    """A gift to charge through the operator's webhook before it counts."""

    request: str  # the gift's id, "g-..."
    conn: int
    stream: str
    user: User
    address: str
    gift: GiftType
    count: int
    coins: int


@dataclass(frozen=True, slots=True)
class Lookup:
    """A moderator asked for a user's recent messages (the service reads the store)."""

    conn: int
    user: User


@dataclass(slots=True)
class Outcome:
    sends: list[Send] = field(default_factory=list)
    closes: list[Close] = field(default_factory=list)
    writes: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    timeline: list[TimelineRecord] = field(default_factory=list)
    charges: list[GiftCharge] = field(default_factory=list)
    lookups: list[Lookup] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # error codes sent
    actions: list[str] = field(default_factory=list)  # moderation actions done
    messages: int = 0  # chat messages accepted

    def send(self, to: int | str, obj: dict[str, Any]) -> None:
        self.sends.append(Send(to, obj))

    def refuse(self, conn: int, refusal: p.Refusal) -> None:
        self.sends.append(Send(conn, refusal.to_wire()))
        self.refused.append(refusal.code)


@dataclass(slots=True)
class Member:
    conn: int
    address: str
    user: User | None  # None: a read-only watcher (an overlay)
    messages: TokenBucket
    reactions: TokenBucket
    frames: TokenBucket
    last_message: float = float("-inf")  # slow mode counts from here (seconds)
    flooding: int = 0
    gift_pending: bool = False

    @property
    def staff(self) -> bool:
        return self.user is not None and self.user.role is not Role.VIEWER


class Room:
    def __init__(self, stream: str, config: ChatConfig, *,
                 history: Iterable[MessageRecord] = (), bans: Iterable[BanRecord] = (),
                 settings: RoomSettings | None = None,
                 questions: Iterable[QuestionRecord] = (),
                 supporters: Iterable[tuple[User, int]] = (),
                 new_id: Callable[[str], str] | None = None) -> None:
        self.stream = stream
        self.config = config
        self._new_id = new_id or (lambda prefix: f"{prefix}-{secrets.token_hex(8)}")
        self.members: dict[int, Member] = {}
        self.history: deque[MessageRecord] = deque(
            (m for m in history if m.deleted_by is None), maxlen=config.history)
        self._bans: dict[tuple[BanKind, str], BanRecord] = {(b.kind, b.value): b for b in bans}
        self.settings = settings or RoomSettings(slow_mode=config.slow_mode)
        self._filter = self._build_filter(self.settings)
        self.questions: OrderedDict[str, QuestionRecord] = OrderedDict(
            (q.id, q) for q in questions if q.state is not QuestionState.DONE)
        self._supporters: dict[str, tuple[User, int]] = {u.id: (u, c) for u, c in supporters}
        self._seen: OrderedDict[str, tuple[User, str]] = OrderedDict()
        self.pinned: MessageRecord | None = None
        self._address_buckets: dict[str, TokenBucket] = {}
        self._reactions: dict[str, int] = {}
        self._reaction_totals: dict[str, int] = dict.fromkeys(REACTIONS, 0)
        self._reactions_sent = 0.0
        self._viewers_sent: dict[str, int] | None = None
        self._viewers_at = float("-inf")
        self._hls_viewers = 0

    # -- the input contract -----------------------------------------------------------------

    def join(self, conn: int, address: str, event: p.Join, role: Role, user_id: str,
             now: float, resume: str | None = None) -> Outcome:
        out = Outcome()
        if conn in self.members:
            out.refuse(conn, p.Refusal("already_joined", "this connection has joined"))
            return out
        buckets = self._buckets(now)
        if event.watch:
            self.members[conn] = Member(conn, address, None, *buckets)
            out.send(conn, self._welcome(None, None))
            return out
        try:
            name = self._name(event.name, role)
        except ValueError as exc:
            code, message = exc.args
            self._refuse_join(out, conn, p.Refusal(code, message))
            return out
        user = User(user_id, name, role)
        if role is Role.VIEWER:
            ban = self._sanction(user, address, now, ban=True)
            if ban is not None:
                self._refuse_join(out, conn, p.Refusal("banned", "you are banned from this chat"))
                return out
        self.members[conn] = Member(conn, address, user, *buckets)
        self._seen[user.id] = (user, address)
        self._seen.move_to_end(user.id)
        while len(self._seen) > MAX_SEEN_USERS:
            self._seen.popitem(last=False)
        out.send(conn, self._welcome(user, resume))
        return out

    def receive(self, conn: int, event: p.ClientEvent, now: float,
                pdt: float | None = None) -> Outcome:
        out = Outcome()
        member = self.members.get(conn)
        if member is None:
            out.refuse(conn, p.Refusal("not_joined", 'send {"type": "join", "name": ...} first'))
            return out
        if not member.frames.take(now):
            member.flooding += 1
            if member.flooding >= FLOOD_REFUSALS:  # out of the room now, closed by the edge
                del self.members[conn]
                out.closes.append(Close(conn, CLOSE_POLICY, "flooding"))
                out.refused.append("flooding")
            else:
                out.refuse(conn, p.Refusal("rate_limited", "too many frames; slow down",
                                           member.frames.wait(now)))
            return out
        member.flooding = 0
        if isinstance(event, p.Ping):
            out.send(conn, {"type": "pong"})
            return out
        if isinstance(event, p.Join):  # (a watcher's too: it has joined)
            out.refuse(conn, p.Refusal("already_joined", "this connection has joined"))
            return out
        if member.user is None:
            out.refuse(conn, p.Refusal("forbidden", "this connection only watches"))
            return out
        try:
            self._handle(out, member, member.user, event, now, pdt)
        except p.Refusal as refusal:
            out.refuse(conn, refusal)
        return out

    def leave(self, conn: int) -> Outcome:
        self.members.pop(conn, None)
        return Outcome()

    def tick(self, now: float, hls_viewers: int) -> Outcome:
        """Reaction counts and viewer counts, when due."""
        out = Outcome()
        if self._reactions and now - self._reactions_sent >= REACTIONS_EVERY:
            out.send(ALL, {"type": "reactions", "counts": self._reactions,
                           "totals": {k: v for k, v in self._reaction_totals.items() if v}})
            self._reactions = {}
            self._reactions_sent = now
        self._hls_viewers = hls_viewers
        if now - self._viewers_at >= self.config.viewer_interval:
            viewers = self.viewers()
            if viewers != self._viewers_sent:
                out.send(ALL, {"type": "viewers", **viewers})
                self._viewers_sent = viewers
            self._viewers_at = now
        return out

    def gift_settled(self, charge: GiftCharge, accepted: bool, reason: str, now: float,
                     pdt: float | None = None, reference: str = "") -> Outcome:
        out = Outcome()
        member = self.members.get(charge.conn)
        if member is not None:
            member.gift_pending = False
        if not accepted:
            if member is not None:
                out.refuse(charge.conn, p.Refusal("gift_refused", f"the gift was not charged "
                                                  f"({reason})" if reason else
                                                  "the gift was not charged"))
            return out
        at = _ms(now)
        record = GiftRecord(charge.request, self.stream, charge.user, charge.gift.name,
                            charge.count, charge.coins, at, pdt, reference)
        out.writes.append(("add_gift", (record,)))
        coins = self._supporters.get(charge.user.id, (charge.user, 0))[1]
        self._supporters[charge.user.id] = (charge.user, coins + charge.coins)
        out.send(ALL, {"type": "gift", "id": record.id, "user": user_wire(charge.user),
                       "gift": gift_wire(charge.gift), "count": charge.count,
                       "coins": charge.coins, "at": at, "pdt": iso(pdt)})
        out.send(ALL, {"type": "supporters", "top": self.supporters()})
        title = charge.gift.title if charge.count == 1 else f"{charge.gift.title} x{charge.count}"
        self._timeline(out, "gift", at, pdt, GIFT_SHOWN, f"{charge.user.name} sent {title}",
                       {"USER": charge.user.name, "GIFT": charge.gift.name,
                        "COUNT": charge.count, "COINS": charge.coins})
        return out

    # -- what the room knows ----------------------------------------------------------------

    @property
    def chatters(self) -> int:
        return len(self.members)

    def viewers(self) -> dict[str, int]:
        """A viewer with chat open is counted by both: the total is the larger count."""
        chat = len(self.members)
        return {"total": max(chat, self._hls_viewers), "hls": self._hls_viewers, "chat": chat}

    def supporters(self) -> list[dict[str, Any]]:
        top = sorted(self._supporters.values(), key=lambda uc: -uc[1])[:SUPPORTERS_SHOWN]
        return [{"user": user_wire(user), "coins": coins} for user, coins in top]

    def conns_of(self, user_id: str) -> list[int]:
        return [c for c, m in self.members.items() if m.user is not None and m.user.id == user_id]

    # -- events -----------------------------------------------------------------------------

    def _handle(self, out: Outcome, member: Member, user: User, event: p.ClientEvent,
                now: float, pdt: float | None) -> None:
        match event:
            case p.Say(text):
                self._say(out, member, user, text, now, pdt)
            case p.React(kind, count):
                if kind not in REACTIONS:
                    raise p.Refusal("bad_request", f"react.kind must be one of "
                                    f"{', '.join(REACTIONS)}")
                granted = int(member.reactions.take_up_to(now, count))
                if granted:  # taps beyond the limit are dropped quietly (no error storm)
                    self._reactions[kind] = self._reactions.get(kind, 0) + granted
                    self._reaction_totals[kind] += granted
            case p.Ask(text):
                self._ask(out, member, user, text, now, pdt)
            case p.SendGift(name, count):
                self._gift(out, member, user, name, count, now)
            case _:
                self._staff(out, member, user, event, now, pdt)

    def _writer_checks(self, member: Member, user: User, now: float) -> None:
        """May this user write now? Raises the refusal that says why not."""
        if member.staff:
            return
        if not self.settings.chat_enabled:
            raise p.Refusal("chat_disabled", "the chat is turned off for now")
        sanction = self._sanction(user, member.address, now, ban=False)
        if sanction is not None and sanction.until is None:
            raise p.Refusal("banned", "you are banned from this chat")
        if sanction is not None and sanction.until is not None:
            raise p.Refusal("timed_out", "you are timed out", (sanction.until - _ms(now)) / 1000)

    def _text(self, member: Member, raw: str) -> str:
        text = message_text(raw)
        if not text:
            raise p.Refusal("empty", "there is nothing to send")
        if len(text) > self.config.max_message_length:
            raise p.Refusal("too_long", f"messages are limited to "
                            f"{self.config.max_message_length} characters")
        if not member.staff and self._filter.blocks(text):
            raise p.Refusal("filtered", "that message is not allowed here")
        return text

    def _spend(self, member: Member, now: float) -> None:
        """Slow mode and the rate limits (the user's, then the address's)."""
        if member.staff:
            return
        next_message = member.last_message + self.settings.slow_mode
        if self.settings.slow_mode and now < next_message:
            raise p.Refusal("slow_mode", f"slow mode: one message every "
                            f"{self.settings.slow_mode} s", next_message - now)
        if not member.messages.take(now):
            raise p.Refusal("rate_limited", "too many messages; wait a moment",
                            member.messages.wait(now))
        address = self._address_buckets.get(member.address)
        if address is None:
            if len(self._address_buckets) > 50_000:  # forget full buckets first
                self._address_buckets = {a: b for a, b in self._address_buckets.items()
                                         if b.wait(now, b.capacity) > 0}
            address = self._address_buckets[member.address] = TokenBucket(
                self.config.address_messages, self.config.address_window, updated=now)
        if not address.take(now):
            member.messages.tokens += 1  # (not this user's fault: give it back)
            raise p.Refusal("rate_limited", "too many messages from your network; wait a "
                            "moment", address.wait(now))
        member.last_message = now

    def _say(self, out: Outcome, member: Member, user: User, raw: str, now: float,
             pdt: float | None) -> None:
        self._writer_checks(member, user, now)
        text = self._text(member, raw)
        self._spend(member, now)
        record = MessageRecord(self._new_id("m"), self.stream, user, text, _ms(now), pdt)
        self.history.append(record)
        out.writes.append(("add_messages", ([record],)))
        out.send(ALL, message_wire(record))
        out.messages += 1

    def _ask(self, out: Outcome, member: Member, user: User, raw: str, now: float,
             pdt: float | None) -> None:
        self._writer_checks(member, user, now)
        text = self._text(member, raw)
        mine = sum(1 for q in self.questions.values() if q.user.id == user.id)
        if mine >= MAX_QUESTIONS_PER_USER or len(self.questions) >= MAX_OPEN_QUESTIONS:
            raise p.Refusal("rate_limited", "your questions are waiting to be answered")
        self._spend(member, now)
        question = QuestionRecord(self._new_id("q"), self.stream, user, text, _ms(now), pdt)
        self.questions[question.id] = question
        out.writes.append(("put_question", (question,)))
        out.send(STAFF, question_wire(question))
        if not member.staff:
            out.send(member.conn, question_wire(question))

    def _gift(self, out: Outcome, member: Member, user: User, name: str, count: int,
              now: float) -> None:
        if not self.config.gifting:
            raise p.Refusal("gifts_disabled", "gifts are not set up on this server")
        gift = next((g for g in self.config.gifts if g.name == name), None)
        if gift is None:
            raise p.Refusal("no_such_gift", "there is no such gift")
        self._writer_checks(member, user, now)
        if member.gift_pending:
            raise p.Refusal("rate_limited", "your last gift is still being charged")
        member.gift_pending = True
        out.charges.append(GiftCharge(self._new_id("g"), member.conn, self.stream, user,
                                      member.address, gift, count, count * gift.coins))

    def _staff(self, out: Outcome, member: Member, actor: User, event: p.ClientEvent,
               now: float, pdt: float | None) -> None:
        if not member.staff:
            raise p.Refusal("forbidden", "only the creator and moderators may do that")
        at = _ms(now)
        match event:
            case p.Delete(message_id):
                self._delete(out, actor, message_id, at)
            case p.TimeOut(user_id, seconds, by_address):
                target = self._target(user_id)
                self._sanction_user(out, actor, target, at + seconds * 1000, by_address, at)
                out.send(ALL, {"type": "timed_out", "user": user_wire(target[0]),
                               "until": at + seconds * 1000, "seconds": seconds})
                self._audit(out, actor, "timeout", user_id, at, seconds=seconds,
                            address=by_address)
            case p.Ban(user_id, by_address):
                target = self._target(user_id)
                self._sanction_user(out, actor, target, None, by_address, at)
                conns = dict.fromkeys(self.conns_of(user_id) + self._conns_named(target[0].name)
                                      + (self._conns_at(target[1]) if by_address else []))
                for conn in conns:  # out of the room at once; the edge closes the sockets
                    del self.members[conn]
                    out.refuse(conn, p.Refusal("banned", "you are banned from this chat"))
                    out.closes.append(Close(conn, CLOSE_POLICY, "banned"))
                out.send(ALL, {"type": "banned", "user": user_wire(target[0])})
                self._audit(out, actor, "ban", user_id, at, address=by_address)
            case p.Unban(user_id):
                gone = [key for key, ban in self._bans.items() if ban.user_id == user_id]
                for key in gone:
                    del self._bans[key]
                out.writes.append(("remove_bans", (self.stream, user_id)))
                user = self._seen.get(user_id, (User(user_id, "", Role.VIEWER), ""))[0]
                out.send(ALL, {"type": "unbanned", "user": user_wire(user)})
                self._audit(out, actor, "unban", user_id, at)
            case p.SlowMode(seconds):
                self._settings(out, replace(self.settings, slow_mode=seconds))
                out.send(ALL, {"type": "slow_mode", "seconds": seconds})
                self._audit(out, actor, "slow_mode", "", at, seconds=seconds)
            case p.SetChat(enabled):
                self._settings(out, replace(self.settings, chat_enabled=enabled))
                out.send(ALL, {"type": "chat_enabled", "enabled": enabled})
                self._audit(out, actor, "chat", "", at, enabled=enabled)
            case p.Filter():
                self._change_filter(out, actor, event, at)
            case p.UserMessages(user_id):
                out.lookups.append(Lookup(member.conn, self._target(user_id)[0]))
            case p.Pin(message_id):
                self._pin(out, actor, message_id, at, pdt)
            case p.Answer(question_id):
                self._answer(out, actor, question_id, at, pdt)
            case p.Done(question_id):
                self._done(out, actor, question_id, at)
            case p.Marker(label):
                if actor.role is not Role.CREATOR:
                    raise p.Refusal("forbidden", "only the creator sets markers")
                text = message_text(label)
                if not 1 <= len(text) <= p.MAX_MARKER_LENGTH:
                    raise p.Refusal("bad_request", f"marker.label has 1-{p.MAX_MARKER_LENGTH} "
                                    "characters")
                out.send(ALL, {"type": "marker", "label": text, "at": at, "pdt": iso(pdt)})
                self._timeline(out, "marker", at, pdt, None, text, {})
            case _:  # pragma: no cover (every event type is matched above)
                raise p.Refusal("bad_request", "unknown event")
        out.actions.append(type(event).__name__.lower())

    def _delete(self, out: Outcome, actor: User, message_id: str, at: int) -> None:
        kept = [m for m in self.history if m.id != message_id]
        if len(kept) != len(self.history):
            self.history = deque(kept, maxlen=self.config.history)
        out.writes.append(("mark_deleted", (message_id, actor.name)))
        out.send(ALL, {"type": "deleted", "id": message_id, "by": user_wire(actor)})
        if self.pinned is not None and self.pinned.id == message_id:
            self.pinned = None
            out.send(ALL, {"type": "pinned", "message": None})
        self._audit(out, actor, "delete", message_id, at)

    def _target(self, user_id: str) -> tuple[User, str]:
        """A user a moderator acts on: one in the room now or seen here before."""
        seen = self._seen.get(user_id)
        if seen is None:
            raise p.Refusal("not_found", "no such user in this chat")
        if seen[0].role is not Role.VIEWER:
            raise p.Refusal("forbidden", "the creator and moderators cannot be sanctioned")
        return seen

    def _conns_named(self, name: str) -> list[int]:
        folded = fold(name)
        return [c for c, m in self.members.items()
                if m.user is not None and not m.staff and fold(m.user.name) == folded]

    def _conns_at(self, address: str) -> list[int]:
        return [c for c, m in self.members.items()
                if m.address == address and m.user is not None and not m.staff]

    def _sanction_user(self, out: Outcome, actor: User, target: tuple[User, str],
                       until: int | None, by_address: bool, at: int) -> None:
        user, address = target
        keys = [(BanKind.USER, user.id), (BanKind.NAME, fold(user.name))]
        if by_address and address:
            keys.append((BanKind.ADDRESS, address))
        for kind, value in keys:
            ban = BanRecord(self.stream, kind, value, until, actor.name, at, user.id)
            existing = self._bans.get((kind, value))
            if existing is not None and existing.until is None and until is not None:
                continue  # a timeout never shortens a ban
            self._bans[(kind, value)] = ban
            out.writes.append(("put_ban", (ban,)))

    def _sanction(self, user: User, address: str, now: float, *, ban: bool
                  ) -> BanRecord | None:
        """The ban in force for this user, if any; or else (not `ban`) the timeout that ends
        last."""
        at = _ms(now)
        timeouts: list[BanRecord] = []
        for key in ((BanKind.USER, user.id), (BanKind.NAME, fold(user.name)),
                    (BanKind.ADDRESS, address)):
            record = self._bans.get(key)
            if record is None:
                continue
            if record.until is None:
                return record
            if record.until <= at:
                del self._bans[key]  # expired
            elif not ban:
                timeouts.append(record)
        return max(timeouts, key=lambda record: record.until or 0, default=None)

    def _settings(self, out: Outcome, settings: RoomSettings) -> None:
        self.settings = settings
        out.writes.append(("put_settings", (self.stream, settings)))

    def _change_filter(self, out: Outcome, actor: User, event: p.Filter, at: int) -> None:
        try:
            changed = WordFilter(self.settings.words, self.settings.patterns).changed(
                event.add, event.remove, event.add_patterns, event.remove_patterns)
        except re.error as exc:
            raise p.Refusal("bad_request", f"filter: not a regular expression ({exc})") \
                from None
        self._settings(out, replace(self.settings, words=changed.words,
                                    patterns=changed.patterns))
        self._filter = self._build_filter(self.settings)
        out.send(STAFF, {"type": "filter", **self._filter_wire()})
        self._audit(out, actor, "filter", "", at, add=list(event.add),
                    remove=list(event.remove), add_patterns=list(event.add_patterns),
                    remove_patterns=list(event.remove_patterns))

    def _pin(self, out: Outcome, actor: User, message_id: str | None, at: int,
             pdt: float | None) -> None:
        if message_id is None:
            self.pinned = None
            out.send(ALL, {"type": "pinned", "message": None})
            self._audit(out, actor, "unpin", "", at)
            return
        message = next((m for m in self.history if m.id == message_id), None)
        if message is None:
            raise p.Refusal("not_found", "only a recent message can be pinned")
        self.pinned = message
        out.send(ALL, {"type": "pinned", "message": message_wire(message)})
        self._timeline(out, "pin", at, pdt, None, f"{message.user.name}: {message.text}",
                       {"USER": message.user.name, "TEXT": message.text})
        self._audit(out, actor, "pin", message_id, at)

    def _answer(self, out: Outcome, actor: User, question_id: str, at: int,
                pdt: float | None) -> None:
        question = self.questions.get(question_id)
        if question is None:
            raise p.Refusal("not_found", "no such question waiting")
        for other in list(self.questions.values()):
            if other.state is QuestionState.ANSWERING and other.id != question_id:
                self._set_question(out, replace(other, state=QuestionState.DONE))
        answering = replace(question, state=QuestionState.ANSWERING)
        self._set_question(out, answering)
        out.send(ALL, {"type": "answering", "question": question_wire(answering)})
        self._timeline(out, "question", at, pdt, None, f"Q: {question.text}",
                       {"USER": question.user.name, "TEXT": question.text})
        self._audit(out, actor, "answer", question_id, at)

    def _done(self, out: Outcome, actor: User, question_id: str, at: int) -> None:
        question = self.questions.get(question_id)
        if question is None:
            raise p.Refusal("not_found", "no such question waiting")
        self._set_question(out, replace(question, state=QuestionState.DONE))
        if question.state is QuestionState.ANSWERING:
            out.send(ALL, {"type": "answering", "question": None})
        self._audit(out, actor, "done", question_id, at)

    def _set_question(self, out: Outcome, question: QuestionRecord) -> None:
        if question.state is QuestionState.DONE:
            self.questions.pop(question.id, None)
        else:
            self.questions[question.id] = question
        out.writes.append(("put_question", (question,)))
        out.send(STAFF, question_wire(question))

    # -- helpers ----------------------------------------------------------------------------

    def _name(self, raw: str, role: Role) -> str:
        if role is not Role.VIEWER:  # staff may use their own names, reserved or not
            return display_name(raw, staff=True)
        reserved = [self.stream, *self.config.moderators,
                    *(m.user.name for m in self.members.values() if m.staff and m.user)]
        return display_name(raw, reserved)

    def _refuse_join(self, out: Outcome, conn: int, refusal: p.Refusal) -> None:
        out.refuse(conn, refusal)
        out.closes.append(Close(conn, CLOSE_POLICY, refusal.code))

    def _buckets(self, now: float) -> tuple[TokenBucket, TokenBucket, TokenBucket]:
        config = self.config
        return (TokenBucket(config.user_messages, config.user_window, updated=now),
                TokenBucket(REACTION_BURST, REACTION_BURST / config.reactions_per_second,
                            updated=now),
                TokenBucket(FRAMES_BURST, FRAMES_WINDOW, updated=now))

    def _build_filter(self, settings: RoomSettings) -> WordFilter:
        return WordFilter((*self.config.words, *settings.words),
                          (*self.config.patterns, *settings.patterns))

    def _filter_wire(self) -> dict[str, Any]:
        return {"words": list(self._filter.words), "patterns": list(self._filter.patterns),
                "configured": {"words": list(self.config.words),
                               "patterns": list(self.config.patterns)}}

    def _welcome(self, user: User | None, resume: str | None) -> dict[str, Any]:
        room: dict[str, Any] = {
            "stream": self.stream, "viewers": self.viewers(),
            "slow_mode": self.settings.slow_mode, "chat_enabled": self.settings.chat_enabled,
            "pinned": message_wire(self.pinned) if self.pinned else None,
            "answering": next((question_wire(q) for q in self.questions.values()
                               if q.state is QuestionState.ANSWERING), None),
            "supporters": self.supporters(),
            "gifting": self.config.gifting,
            "gifts": [gift_wire(g) for g in self.config.gifts] if self.config.gifting else [],
            "reactions": list(REACTIONS),
            "limits": {"max_length": self.config.max_message_length},
        }
        if user is not None and user.role is not Role.VIEWER:
            room["questions"] = [question_wire(q) for q in self.questions.values()]
            room["filter"] = self._filter_wire()
        welcome: dict[str, Any] = {
            "type": "welcome", "user": user_wire(user) if user else None,
            "history": [message_wire(m) for m in self.history], "room": room}
        if resume is not None:
            welcome["resume"] = resume
        return welcome

    def _timeline(self, out: Outcome, kind: str, at: int, pdt: float | None,
                  duration: float | None, label: str,
                  attributes: dict[str, str | int | float]) -> None:
        out.timeline.append(TimelineRecord(self._new_id("t"), self.stream, kind, at, pdt,
                                           duration, label[:200], attributes))

    def _audit(self, out: Outcome, actor: User, action: str, target: str, at: int,
               **detail: object) -> None:
        out.writes.append(("add_audit", (AuditRecord(self.stream, at, actor, action, target,
                                                     dict(detail)),)))


def _ms(now: float) -> int:
    return round(now * 1000)
