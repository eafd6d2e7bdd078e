"""The chat room core without sockets: events and a fake clock in, what to send to whom out
(golive/chat/room.py; the wire contract is README, "Chat and interaction")."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from golive.chat import protocol as p
from golive.chat.config import REACTIONS, ChatConfig, GiftType
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
    User,
)
from golive.chat.room import (
    ALL,
    CLOSE_POLICY,
    FLOOD_REFUSALS,
    FRAMES_BURST,
    GIFT_SHOWN,
    MAX_QUESTIONS_PER_USER,
    REACTIONS_EVERY,
    STAFF,
    GiftCharge,
    Outcome,
    Room,
)
from golive.chat.text import fold

# 2026-12-04T01:02:03Z: a wall clock in seconds, as the service passes it.
T0 = datetime(2026, 12, 4, 1, 2, 3, tzinfo=UTC).timestamp()
PDT = datetime(2026, 12, 4, 1, 2, 1, 456000, tzinfo=UTC).timestamp()
WEBHOOK = "https://pay.example/charge"
MODERATOR_TOKEN = "m" * 24
# What the store offers the room (the names in Outcome.writes).
STORE_METHODS = {"add_messages", "mark_deleted", "put_ban", "remove_bans", "add_audit",
                 "add_gift", "put_question", "put_settings", "add_timeline"}


def wide(ascii_text: str) -> str:
    """The text in fullwidth forms ("Ada" as U+FF21...), which NFKC makes ASCII again."""
    return "".join(chr(ord(c) + 0xFEE0) for c in ascii_text)


class Chat:
    """A room, a fake clock and deterministic ids."""

    def __init__(self, config: ChatConfig | None = None, stream: str = "main",
                 **restored: Any) -> None:
        self.now = T0
        self._ids = itertools.count(1)
        self.room = Room(stream, config or ChatConfig(), new_id=self._id, **restored)
        self.users: dict[int, User] = {}

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):08x}"

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def join(self, conn: int, name: str = "", role: Role = Role.VIEWER,
             address: str = "", user_id: str = "", watch: bool = False) -> Outcome:
        out = self.room.join(conn, address or f"10.0.0.{conn}",
                             p.Join(name or f"user{conn}", watch=watch), role,
                             user_id or f"u-{conn:06x}", self.now)
        welcome = sent(out, "welcome", conn)
        if welcome and welcome[0]["user"]:
            self.users[conn] = User(**{**welcome[0]["user"],
                                       "role": Role(welcome[0]["user"]["role"])})
        return out

    def send(self, conn: int, event: p.ClientEvent, pdt: float | None = None) -> Outcome:
        return self.room.receive(conn, event, self.now, pdt)

    def say(self, conn: int, text: str = "hello") -> Outcome:
        return self.send(conn, p.Say(text))

    def frame(self, conn: int, obj: dict[str, Any]) -> Outcome:
        """A frame as the edge hands it in: parsed, refusals answered as the edge would."""
        try:
            event = p.parse(json.dumps(obj))
        except p.Refusal as refusal:
            out = Outcome()
            out.refuse(conn, refusal)
            return out
        return self.send(conn, event)

    def uid(self, conn: int) -> str:
        return self.users[conn].id


def sent(out: Outcome, kind: str, to: int | str | None = None) -> list[dict[str, Any]]:
    """The objects of one type in `out`, for one recipient (any, if None)."""
    return [s.obj for s in out.sends if s.obj["type"] == kind and (to is None or s.to == to)]


def errors(out: Outcome, conn: int) -> list[str]:
    return [obj["code"] for obj in sent(out, "error", conn)]


def error(out: Outcome, conn: int) -> dict[str, Any]:
    """The one thing `out` says: an error for `conn`."""
    assert len(out.sends) == 1, out.sends
    assert out.sends[0].to == conn and out.sends[0].obj["type"] == "error", out.sends
    assert out.refused == [out.sends[0].obj["code"]]
    return out.sends[0].obj


def writes(out: Outcome, method: str) -> list[tuple[Any, ...]]:
    return [args for name, args in out.writes if name == method]


def audits(out: Outcome) -> list[AuditRecord]:
    return [args[0] for args in writes(out, "add_audit")]


def gifting(**options: Any) -> ChatConfig:
    return ChatConfig(gift_webhook=WEBHOOK, **options)


def staffed(config: ChatConfig | None = None, **restored: Any) -> Chat:
    """A room with its creator (conn 1), a moderator (conn 2) and a viewer, Ada (conn 3)."""
    chat = Chat(config, **restored)
    chat.join(1, "Host", Role.CREATOR, "10.0.0.1")
    chat.join(2, "alice", Role.MODERATOR, "10.0.0.2")
    chat.join(3, "Ada", Role.VIEWER, "10.0.0.3")
    return chat


# -- joining ------------------------------------------------------------------------------------

def test_a_viewer_joins() -> None:
    chat = Chat()
    out = chat.join(7, "Ada")
    assert [s.to for s in out.sends] == [7]
    welcome = sent(out, "welcome", 7)[0]
    assert welcome["user"] == {"id": "u-000007", "name": "Ada", "role": "viewer"}
    assert welcome["history"] == []
    room = welcome["room"]
    assert room["stream"] == "main"
    assert room["viewers"] == {"total": 1, "hls": 0, "chat": 1}
    assert room["slow_mode"] == 0 and room["chat_enabled"] is True
    assert room["pinned"] is None and room["answering"] is None and room["supporters"] == []
    assert room["reactions"] == list(REACTIONS)
    assert room["limits"] == {"max_length": 300}
    assert room["gifting"] is False and room["gifts"] == []
    assert "questions" not in room and "filter" not in room  # staff only
    assert out.closes == [] and out.refused == []
    assert chat.room.chatters == 1


@pytest.mark.parametrize("role", [Role.CREATOR, Role.MODERATOR])
def test_staff_join_with_the_queue_and_the_filter(role: Role) -> None:
    chat = Chat(ChatConfig(words=("spam",), patterns=("x+",)))
    chat.join(3, "Ada")
    chat.send(3, p.Ask("a question"))
    welcome = sent(chat.join(1, "Host", role), "welcome", 1)[0]
    assert welcome["user"]["role"] == role.value
    assert [q["text"] for q in welcome["room"]["questions"]] == ["a question"]
    assert welcome["room"]["filter"] == {
        "words": ["spam"], "patterns": ["x+"],
        "configured": {"words": ["spam"], "patterns": ["x+"]}}


def test_a_watch_only_join_reads_but_cannot_write() -> None:
    chat = Chat()
    out = chat.join(5, watch=True)
    welcome = sent(out, "welcome", 5)[0]
    assert welcome["user"] is None
    assert chat.room.chatters == 1
    for event in (p.Say("hi"), p.React("like", 1), p.Ask("?"), p.Delete("m-000000")):
        assert error(chat.send(5, event), 5)["code"] == "forbidden"
    assert sent(chat.send(5, p.Ping()), "pong", 5) == [{"type": "pong"}]
    assert error(chat.send(5, p.Join("Ada")), 5)["code"] == "already_joined"


@pytest.mark.parametrize(("name", "code"), [
    ("Créator", "name_reserved"), ("MODERATOR", "name_reserved"), ("Admin", "name_reserved"),
    ("MAIN", "name_reserved"),  # the stream's own name
    (wide("Alice"), "name_reserved"),  # a configured moderator's name (NFKC)
    ("Álice", "name_reserved"),
    ("", "bad_name"), ("  ", "bad_name"), ("x" * 33, "bad_name"), ("<b>Ada</b>", "bad_name"),
    ("Ada\u202e", "bad_name"),
])
def test_bad_and_reserved_names_are_refused_and_closed(name: str, code: str) -> None:
    chat = Chat(ChatConfig(moderators={"alice": MODERATOR_TOKEN}))
    out = chat.room.join(4, "10.0.0.4", p.Join(name), Role.VIEWER, "u-000004", chat.now)
    assert error(out, 4)["code"] == code
    assert [(c.conn, c.code) for c in out.closes] == [(4, CLOSE_POLICY)]
    assert chat.room.chatters == 0


def test_names_are_kept_in_nfkc() -> None:
    chat = Chat()
    assert sent(chat.join(4, wide("Ada")), "welcome")[0]["user"]["name"] == "Ada"


def test_the_names_of_staff_in_the_room_are_reserved_for_viewers() -> None:
    chat = Chat()
    chat.join(1, "Bob", Role.MODERATOR)  # a moderator by the admin token: no configured name
    assert error(chat.join(2, "BÖB"), 2)["code"] == "name_reserved"
    chat.room.leave(1)
    assert sent(chat.join(2, "BÖB"), "welcome")


@pytest.mark.parametrize("role", [Role.CREATOR, Role.MODERATOR])
@pytest.mark.parametrize("name", ["Creator", "alice", "main", "Mod"])
def test_staff_may_use_reserved_names(role: Role, name: str) -> None:
    chat = Chat(ChatConfig(moderators={"alice": MODERATOR_TOKEN}))
    assert sent(chat.join(1, name, role), "welcome")[0]["user"]["name"] == name


def test_a_second_join_is_refused_without_a_close() -> None:
    chat = Chat()
    chat.join(1, "Ada")
    out = chat.join(1, "Eve")
    assert error(out, 1)["code"] == "already_joined"
    assert out.closes == []
    assert error(chat.send(1, p.Join("Eve")), 1)["code"] == "already_joined"
    assert chat.users[1].name == "Ada"


def test_nothing_before_a_join() -> None:
    chat = Chat()
    assert error(chat.say(9), 9)["code"] == "not_joined"
    assert error(chat.send(9, p.Ping()), 9)["code"] == "not_joined"


def test_leave() -> None:
    chat = Chat()
    chat.join(1, "Ada")
    assert chat.room.leave(1) == Outcome()
    assert chat.room.chatters == 0
    assert error(chat.say(1), 1)["code"] == "not_joined"
    assert chat.room.leave(1) == Outcome()  # twice is harmless


# -- messages -----------------------------------------------------------------------------------

def test_a_message_goes_to_everyone_the_sender_included() -> None:
    chat = Chat()
    chat.join(1, "Ada")
    chat.join(2, "Eve")
    chat.advance(0.25)
    out = chat.send(1, p.Say("hello"), pdt=PDT)
    assert [s.to for s in out.sends] == [ALL]
    message = out.sends[0].obj
    assert message == {"type": "message", "id": message["id"],
                       "user": {"id": "u-000001", "name": "Ada", "role": "viewer"},
                       "text": "hello", "at": round(T0 * 1000) + 250,
                       "pdt": "2026-12-04T01:02:01.456Z"}
    assert message["id"].startswith("m-")
    assert out.messages == 1
    [(records,)] = writes(out, "add_messages")
    assert records == [MessageRecord(message["id"], "main", chat.users[1], "hello",
                                     message["at"], PDT)]
    assert [m.id for m in chat.room.history] == [message["id"]]
    assert sent(chat.join(3, "Zoe"), "welcome")[0]["history"] == [message]


def test_pdt_is_null_while_not_live() -> None:
    chat = Chat()
    chat.join(1, "Ada")
    assert sent(chat.say(1), "message")[0]["pdt"] is None


def test_message_text_is_normalised() -> None:
    chat = Chat()
    chat.join(1, "Ada")
    out = chat.say(1, "  two\nlines\u202e and\u200b\x07 more\r\n")
    assert sent(out, "message")[0]["text"] == "two lines and more"


def test_hostile_text_is_kept_exactly_as_text() -> None:
    chat = Chat()
    chat.join(1, "Ada")
    hostile = '<img src=x onerror=alert(1)> "\'</script>&amp;'
    obj = sent(chat.say(1, hostile), "message")[0]
    assert obj["text"] == hostile
    # JSON text, escaped for JSON only (the pages show it with textContent)
    assert '"text":"<img src=x onerror=alert(1)> \\"\'</script>&amp;"' in p.encode(obj)
    assert json.loads(p.encode(obj))["text"] == hostile


@pytest.mark.parametrize("text", ["", "   ", "\n\t\r\n", "\u200b\u202e\u2066"])
def test_an_empty_message_is_refused(text: str) -> None:
    chat = Chat()
    chat.join(1, "Ada")
    assert error(chat.say(1, text), 1)["code"] == "empty"
    assert not chat.room.history


def test_too_long_is_judged_on_the_normalised_text() -> None:
    chat = Chat(ChatConfig(max_message_length=10))
    chat.join(1, "Ada")
    assert sent(chat.say(1, "a" * 10), "message")
    assert sent(chat.say(1, "a\u200b" * 10 + "   \n"), "message")  # 24 written, 10 kept
    assert error(chat.say(1, "a" * 11), 1)["code"] == "too_long"


def test_the_word_filter() -> None:
    chat = staffed(ChatConfig(words=("spam",), patterns=(r"b[a4]d",)))
    for text in ("SPAM!", "spåm here", "so B4D"):
        assert error(chat.say(3, text), 3)["code"] == "filtered"
    assert sent(chat.say(3, "spammer"), "message")  # whole words only
    assert sent(chat.say(2, "spam"), "message")  # staff are exempt
    assert sent(chat.say(1, "bad"), "message")
    assert len(chat.room.history) == 3


def test_refused_messages_spend_no_rate() -> None:
    chat = Chat(ChatConfig(user_messages=2, words=("spam",)))
    chat.join(1, "Ada")
    for _ in range(5):
        chat.say(1, "spam")
        chat.say(1, "")
    assert sent(chat.say(1), "message") and sent(chat.say(1), "message")
    assert error(chat.say(1), 1)["code"] == "rate_limited"


# -- rate limits --------------------------------------------------------------------------------

def test_a_users_burst_then_refill_on_the_clock() -> None:
    chat = Chat()  # 5 messages per 10 s
    chat.join(1, "Ada")
    assert all(sent(chat.say(1), "message") for _ in range(5))
    refused = error(chat.say(1), 1)
    assert refused["code"] == "rate_limited" and refused["retry_after"] == 2.0
    chat.advance(1.5)
    assert error(chat.say(1), 1)["retry_after"] == 0.5
    chat.advance(0.5)
    assert sent(chat.say(1), "message")
    assert error(chat.say(1), 1)["code"] == "rate_limited"
    chat.advance(60)
    assert sum(bool(sent(chat.say(1), "message")) for _ in range(10)) == 5


def test_one_users_limit_is_not_anothers() -> None:
    chat = Chat(ChatConfig(user_messages=1))
    chat.join(1, "Ada")
    chat.join(2, "Eve")
    assert sent(chat.say(1), "message")
    assert error(chat.say(1), 1)["code"] == "rate_limited"
    assert sent(chat.say(2), "message")


def test_the_users_of_one_address_share_its_limit() -> None:
    chat = Chat(ChatConfig(user_messages=5, address_messages=3, address_window=6.0))
    chat.join(1, "Ada", address="192.0.2.9")
    chat.join(2, "Eve", address="192.0.2.9")
    chat.join(3, "Zoe", address="192.0.2.10")
    assert sent(chat.say(1), "message") and sent(chat.say(1), "message")
    assert sent(chat.say(2), "message")
    refused = error(chat.say(2), 2)
    assert refused["code"] == "rate_limited" and "network" in refused["message"]
    assert refused["retry_after"] == 2.0
    assert error(chat.say(1), 1)["code"] == "rate_limited"
    assert sent(chat.say(3), "message")  # another address
    chat.advance(2.0)
    # Eve's own bucket got back what the address refused: she still has 4.
    assert sent(chat.say(2), "message")
    assert error(chat.say(2), 2)["code"] == "rate_limited"


def test_staff_are_not_rate_limited() -> None:
    chat = staffed(ChatConfig(user_messages=1, address_messages=1))
    assert all(sent(chat.say(2), "message") for _ in range(FRAMES_BURST - 1))


# -- slow mode ----------------------------------------------------------------------------------

def test_slow_mode_on_and_off() -> None:
    chat = staffed()
    out = chat.send(2, p.SlowMode(10))
    assert sent(out, "slow_mode", ALL) == [{"type": "slow_mode", "seconds": 10}]
    assert writes(out, "put_settings") == [("main", RoomSettings(slow_mode=10))]
    assert [(a.action, a.detail) for a in audits(out)] == [("slow_mode", {"seconds": 10})]
    assert sent(chat.say(3), "message")
    chat.advance(3)
    refused = error(chat.say(3), 3)
    assert refused["code"] == "slow_mode" and refused["retry_after"] == 7.0
    assert error(chat.send(3, p.Ask("?")), 3)["code"] == "slow_mode"  # asking is writing
    assert sent(chat.say(2), "message") and sent(chat.say(2), "message")  # staff exempt
    chat.advance(7)
    assert sent(chat.say(3), "message")
    chat.send(1, p.SlowMode(0))
    assert sent(chat.say(3), "message") and sent(chat.say(3), "message")
    assert sent(chat.join(9, "Zoe"), "welcome")[0]["room"]["slow_mode"] == 0


def test_shortening_slow_mode_shortens_the_wait() -> None:
    chat = staffed()
    chat.send(2, p.SlowMode(60))
    assert sent(chat.say(3), "message")
    chat.advance(1)
    chat.send(2, p.SlowMode(5))
    assert error(chat.say(3), 3)["retry_after"] == 4.0
    chat.advance(4)
    assert sent(chat.say(3), "message")


def test_slow_mode_from_the_config() -> None:
    chat = staffed(ChatConfig(slow_mode=30))
    assert sent(chat.say(3), "message")
    assert error(chat.say(3), 3)["code"] == "slow_mode"


# -- chat on and off ----------------------------------------------------------------------------

def test_with_the_chat_off_only_staff_write() -> None:
    chat = staffed()
    out = chat.send(2, p.SetChat(False))
    assert sent(out, "chat_enabled", ALL) == [{"type": "chat_enabled", "enabled": False}]
    assert writes(out, "put_settings") == [("main", RoomSettings(chat_enabled=False))]
    assert [a.action for a in audits(out)] == ["chat"]
    assert error(chat.say(3), 3)["code"] == "chat_disabled"
    assert error(chat.send(3, p.Ask("?")), 3)["code"] == "chat_disabled"
    assert sent(chat.say(2), "message") and sent(chat.say(1), "message")
    assert sent(chat.join(4, "Zoe"), "welcome")[0]["room"]["chat_enabled"] is False
    chat.send(1, p.SetChat(True))
    assert sent(chat.say(3), "message")


# -- reactions ----------------------------------------------------------------------------------

def test_reactions_are_added_up_into_one_object_per_tick() -> None:
    chat = staffed()
    for conn, kind, count in ((3, "like", 3), (2, "heart", 1), (3, "like", 2), (1, "wow", 4)):
        assert chat.send(conn, p.React(kind, count)) == Outcome()  # nothing sent at once
    chat.advance(REACTIONS_EVERY)
    out = chat.room.tick(chat.now, 0)
    assert sent(out, "reactions", ALL) == [{
        "type": "reactions", "counts": {"like": 5, "heart": 1, "wow": 4},
        "totals": {"like": 5, "heart": 1, "wow": 4}}]
    chat.advance(REACTIONS_EVERY)
    assert sent(chat.room.tick(chat.now, 0), "reactions") == []  # no taps: nothing
    chat.send(3, p.React("like", 1))
    chat.advance(0.125)
    chat.send(3, p.React("laugh", 2))
    assert sent(chat.room.tick(chat.now, 0), "reactions")[0]["counts"] == {"like": 1,
                                                                            "laugh": 2}
    chat.send(3, p.React("like", 1))
    chat.advance(REACTIONS_EVERY - 0.125)
    assert sent(chat.room.tick(chat.now, 0), "reactions") == []  # at most every 0.5 s
    chat.advance(0.125)
    assert sent(chat.room.tick(chat.now, 0), "reactions") == [{
        "type": "reactions", "counts": {"like": 1},
        "totals": {"like": 7, "heart": 1, "laugh": 2, "wow": 4}}]


def test_taps_over_the_limit_are_dropped_quietly() -> None:
    chat = Chat()  # 20 a second, a burst of 50
    chat.join(1, "Ada")
    chat.join(2, "Eve")
    assert chat.send(1, p.React("like", 50)) == Outcome()
    assert chat.send(1, p.React("like", 50)) == Outcome()
    chat.advance(0.125)
    chat.send(1, p.React("like", 50))  # 2 more (2.5 tokens)
    chat.send(2, p.React("like", 7))  # another user's own limit
    out = chat.room.tick(chat.now, 0)
    assert sent(out, "reactions")[0]["counts"] == {"like": 59}


def test_an_unknown_reaction_is_refused() -> None:
    chat = Chat()
    chat.join(1, "Ada")
    assert error(chat.send(1, p.React("poop", 1)), 1)["code"] == "bad_request"


# -- viewer counts ------------------------------------------------------------------------------

def test_viewer_counts_are_pushed_when_changed_at_most_every_interval() -> None:
    chat = Chat(ChatConfig(viewer_interval=5.0))
    chat.join(1, "Ada")
    chat.join(2, "Eve")
    out = chat.room.tick(chat.now, 9)
    assert sent(out, "viewers", ALL) == [{"type": "viewers", "total": 9, "hls": 9, "chat": 2}]
    chat.advance(5)
    assert sent(chat.room.tick(chat.now, 9), "viewers") == []  # unchanged
    chat.advance(1)
    assert sent(chat.room.tick(chat.now, 12), "viewers") == []  # changed, but too soon
    chat.advance(4)
    assert sent(chat.room.tick(chat.now, 12), "viewers") == [
        {"type": "viewers", "total": 12, "hls": 12, "chat": 2}]
    for conn in range(3, 20):
        chat.join(conn, f"viewer{conn}")
    chat.advance(5)
    assert sent(chat.room.tick(chat.now, 12), "viewers") == [
        {"type": "viewers", "total": 19, "hls": 12, "chat": 19}]  # the larger count
    assert chat.room.viewers() == {"total": 19, "hls": 12, "chat": 19}


# -- questions ----------------------------------------------------------------------------------

def test_questions_go_to_the_staff_and_the_asker() -> None:
    chat = staffed()
    chat.join(4, "Eve")
    out = chat.send(3, p.Ask("why  is\nthe sky blue?"), pdt=PDT)
    question = sent(out, "question", STAFF)[0]
    assert question == {"type": "question", "id": question["id"],
                        "user": {"id": chat.uid(3), "name": "Ada", "role": "viewer"},
                        "text": "why is the sky blue?", "at": round(chat.now * 1000),
                        "pdt": "2026-12-04T01:02:01.456Z", "state": "queued"}
    assert sent(out, "question", 3) == [question]
    assert {s.to for s in out.sends} == {STAFF, 3}  # not Eve
    [(record,)] = writes(out, "put_question")
    assert record.id == question["id"] and record.state is QuestionState.QUEUED


def test_three_questions_waiting_per_user() -> None:
    chat = staffed()
    ids = [sent(chat.send(3, p.Ask(f"q{i}")), "question", 3)[0]["id"]
           for i in range(MAX_QUESTIONS_PER_USER)]
    assert error(chat.send(3, p.Ask("one more")), 3)["code"] == "rate_limited"
    chat.send(2, p.Done(ids[0]))
    assert sent(chat.send(3, p.Ask("now then")), "question", 3)


def test_answering_and_done() -> None:
    chat = staffed()
    first = sent(chat.send(3, p.Ask("first?")), "question", 3)[0]["id"]
    second = sent(chat.send(3, p.Ask("second?")), "question", 3)[0]["id"]
    chat.advance(1)
    out = chat.send(2, p.Answer(first), pdt=PDT)
    [answering] = sent(out, "answering", ALL)
    assert answering["question"]["id"] == first and answering["question"]["state"] == "answering"
    assert [(r.id, r.state) for (r,) in writes(out, "put_question")] == [
        (first, QuestionState.ANSWERING)]
    [record] = out.timeline
    assert (record.kind, record.at, record.pdt, record.duration, record.label) == (
        "question", round(chat.now * 1000), PDT, None, "Q: first?")
    assert record.attributes == {"USER": "Ada", "TEXT": "first?"}
    assert [(a.action, a.target, a.actor.name) for a in audits(out)] == [
        ("answer", first, "alice")]
    assert sent(chat.join(5, "Zoe"), "welcome")[0]["room"]["answering"]["id"] == first

    out = chat.send(1, p.Answer(second))  # the one answered before is done
    assert [(q["id"], q["state"]) for q in sent(out, "question", STAFF)] == [
        (first, "done"), (second, "answering")]
    assert sent(out, "answering", ALL)[0]["question"]["id"] == second
    assert first not in chat.room.questions

    out = chat.send(1, p.Done(second))
    assert sent(out, "answering", ALL) == [{"type": "answering", "question": None}]
    assert [(q["id"], q["state"]) for q in sent(out, "question", STAFF)] == [(second, "done")]
    assert [a.action for a in audits(out)] == ["done"]
    assert sent(chat.join(6, "Max"), "welcome")[0]["room"]["answering"] is None
    assert error(chat.send(1, p.Done(second)), 1)["code"] == "not_found"
    assert error(chat.send(1, p.Answer("q-000000")), 1)["code"] == "not_found"


def test_done_with_a_queued_question_sends_no_answering() -> None:
    chat = staffed()
    question = sent(chat.send(3, p.Ask("?")), "question", 3)[0]["id"]
    out = chat.send(2, p.Done(question))
    assert sent(out, "answering") == []
    assert sent(out, "question", STAFF)[0]["state"] == "done"


def test_staff_questions_are_not_echoed_twice() -> None:
    chat = staffed()
    out = chat.send(2, p.Ask("a note"))
    assert [s.to for s in out.sends] == [STAFF]


# -- gifts --------------------------------------------------------------------------------------

def test_without_a_webhook_gifting_is_off() -> None:
    chat = staffed()
    assert error(chat.send(3, p.SendGift("rose", 1)), 3)["code"] == "gifts_disabled"


def test_an_unknown_gift_is_refused() -> None:
    chat = staffed(gifting())
    assert error(chat.send(3, p.SendGift("yacht", 1)), 3)["code"] == "no_such_gift"


def test_a_gift_is_charged_then_broadcast() -> None:
    chat = staffed(gifting())
    welcome_room = sent(chat.join(9, "Zoe"), "welcome")[0]["room"]
    assert welcome_room["gifting"] is True
    assert [g["name"] for g in welcome_room["gifts"]] == ["rose", "heart", "star", "rocket"]
    out = chat.send(3, p.SendGift("rose", 3))
    assert out.sends == []
    [charge] = out.charges
    assert (charge.conn, charge.stream, charge.user, charge.address, charge.count,
            charge.coins, charge.gift.name) == (3, "main", chat.users[3], "10.0.0.3", 3, 3,
                                                "rose")
    assert charge.request.startswith("g-")
    refused = error(chat.send(3, p.SendGift("star", 1)), 3)  # one pending per user
    assert refused["code"] == "rate_limited"

    chat.advance(0.5)
    out = chat.room.gift_settled(charge, True, "", chat.now, PDT, reference="ch_42")
    gift = sent(out, "gift", ALL)[0]
    assert gift == {"type": "gift", "id": charge.request,
                    "user": {"id": chat.uid(3), "name": "Ada", "role": "viewer"},
                    "gift": {"name": "rose", "title": "Rose", "picture": "🌹", "coins": 1},
                    "count": 3, "coins": 3, "at": round(chat.now * 1000),
                    "pdt": "2026-12-04T01:02:01.456Z"}
    assert sent(out, "supporters", ALL) == [{"type": "supporters", "top": [
        {"user": {"id": chat.uid(3), "name": "Ada", "role": "viewer"}, "coins": 3}]}]
    assert writes(out, "add_gift") == [(GiftRecord(charge.request, "main", chat.users[3], "rose",
                                                   3, 3, gift["at"], PDT, "ch_42"),)]
    [record] = out.timeline
    assert (record.kind, record.at, record.pdt, record.duration, record.label) == (
        "gift", gift["at"], PDT, GIFT_SHOWN, "Ada sent Rose x3")
    assert record.attributes == {"USER": "Ada", "GIFT": "rose", "COUNT": 3, "COINS": 3}
    assert chat.send(3, p.SendGift("star", 1)).charges  # settled: the next may go


def test_a_refused_gift_is_told_to_the_giver_only() -> None:
    chat = staffed(gifting())
    [charge] = chat.send(3, p.SendGift("rocket", 2)).charges
    out = chat.room.gift_settled(charge, False, "insufficient coins", chat.now)
    refused = error(out, 3)
    assert refused["code"] == "gift_refused" and "insufficient coins" in refused["message"]
    assert out.writes == [] and out.timeline == []
    assert chat.send(3, p.SendGift("rose", 1)).charges  # no longer pending


def test_a_gift_settled_after_the_giver_left() -> None:
    chat = staffed(gifting())
    [charge] = chat.send(3, p.SendGift("rose", 1)).charges
    chat.room.leave(3)
    assert chat.room.gift_settled(charge, False, "", chat.now) == Outcome()
    assert sent(chat.room.gift_settled(charge, True, "", chat.now), "gift", ALL)


def test_gifting_is_writing() -> None:
    chat = staffed(gifting())
    chat.send(2, p.SetChat(False))
    assert error(chat.send(3, p.SendGift("rose", 1)), 3)["code"] == "chat_disabled"


def test_supporters_top_by_coins() -> None:
    gifts = (GiftType("penny", "Penny", "🪙", 1),)
    chat = Chat(gifting(gifts=gifts))
    for conn, name, coins in ((1, "Ada", 10), (2, "Eve", 100), (3, "Zoe", 5), (1, "Ada", 95)):
        if conn not in chat.room.members:
            chat.join(conn, name)
        [charge] = chat.send(conn, p.SendGift("penny", coins)).charges
        out = chat.room.gift_settled(charge, True, "", chat.now)
    assert [(s["user"]["name"], s["coins"]) for s in sent(out, "supporters")[0]["top"]] == [
        ("Ada", 105), ("Eve", 100), ("Zoe", 5)]
    for conn in range(10, 22):
        chat.join(conn, f"fan{conn}")
        [charge] = chat.send(conn, p.SendGift("penny", conn)).charges
        out = chat.room.gift_settled(charge, True, "", chat.now)
    top = sent(out, "supporters")[0]["top"]
    assert len(top) == 10
    assert [s["coins"] for s in top] == sorted((s["coins"] for s in top), reverse=True)


# -- moderation ---------------------------------------------------------------------------------

def test_delete_removes_from_history_and_unpins() -> None:
    chat = staffed()
    kept = sent(chat.say(3, "kept"), "message")[0]["id"]
    gone = sent(chat.say(3, "gone"), "message")[0]["id"]
    out = chat.send(2, p.Pin(gone), pdt=PDT)
    assert sent(out, "pinned", ALL)[0]["message"]["id"] == gone
    assert [(r.kind, r.label, r.attributes) for r in out.timeline] == [
        ("pin", "Ada: gone", {"USER": "Ada", "TEXT": "gone"})]
    out = chat.send(2, p.Delete(gone))
    assert sent(out, "deleted", ALL) == [{"type": "deleted", "id": gone, "by": {
        "id": chat.uid(2), "name": "alice", "role": "moderator"}}]
    assert sent(out, "pinned", ALL) == [{"type": "pinned", "message": None}]
    assert writes(out, "mark_deleted") == [(gone, "alice")]
    assert [(a.action, a.target) for a in audits(out)] == [("delete", gone)]
    assert [m.id for m in chat.room.history] == [kept]
    welcome = sent(chat.join(8, "Zoe"), "welcome")[0]
    assert [m["id"] for m in welcome["history"]] == [kept]
    assert welcome["room"]["pinned"] is None


def test_delete_of_an_older_message_still_marks_it() -> None:
    chat = staffed()
    out = chat.send(1, p.Delete("m-00ffffff"))
    assert writes(out, "mark_deleted") == [("m-00ffffff", "Host")]
    assert sent(out, "pinned") == []


def test_pin_and_unpin() -> None:
    chat = staffed()
    message = sent(chat.say(3, "look"), "message")[0]
    chat.send(2, p.Pin(message["id"]))
    assert sent(chat.join(8, "Zoe"), "welcome")[0]["room"]["pinned"] == message
    out = chat.send(2, p.Pin(None))
    assert sent(out, "pinned", ALL) == [{"type": "pinned", "message": None}]
    assert [a.action for a in audits(out)] == ["unpin"]
    assert error(chat.send(2, p.Pin("m-00ffffff")), 2)["code"] == "not_found"


def test_a_timed_out_user_reads_but_cannot_write_until_it_ends() -> None:
    chat = staffed()
    out = chat.send(2, p.TimeOut(chat.uid(3), 300, address=False))
    until = round(chat.now * 1000) + 300_000
    assert sent(out, "timed_out", ALL) == [{"type": "timed_out", "user": {
        "id": chat.uid(3), "name": "Ada", "role": "viewer"}, "until": until, "seconds": 300}]
    assert [(b.kind, b.value, b.until, b.by, b.user_id) for (b,) in writes(out, "put_ban")] == [
        (BanKind.USER, chat.uid(3), until, "alice", chat.uid(3)),
        (BanKind.NAME, "ada", until, "alice", chat.uid(3))]
    assert [(a.action, a.target, a.detail) for a in audits(out)] == [
        ("timeout", chat.uid(3), {"seconds": 300, "address": False})]
    assert 3 in chat.room.members and out.closes == []  # still reading
    chat.advance(100)
    refused = error(chat.say(3), 3)
    assert refused["code"] == "timed_out" and refused["retry_after"] == 200.0
    assert error(chat.send(3, p.Ask("?")), 3)["code"] == "timed_out"
    assert sent(chat.say(2, "others still write"), "message")
    assert {s.to for s in chat.say(1, "broadcasts reach Ada").sends} == {ALL}
    chat.advance(200)
    assert sent(chat.say(3), "message")


def test_a_timeout_by_address_and_by_name() -> None:
    chat = staffed()
    chat.join(4, "Eve", address="10.0.0.3")  # Ada's address
    chat.join(5, "Zoe", address="10.0.0.5")
    chat.send(2, p.TimeOut(chat.uid(3), 60))
    assert error(chat.say(4), 4)["code"] == "timed_out"  # the same address
    assert sent(chat.say(5), "message")
    chat.join(6, "ÄDA", address="10.9.9.9", user_id="u-0000aa")  # the same name, folded
    assert error(chat.say(6), 6)["code"] == "timed_out"
    chat.advance(60)
    assert all(sent(chat.say(conn), "message") for conn in (3, 4, 6))


def test_the_longest_timeout_in_force_is_the_one_told() -> None:
    chat = staffed()
    chat.join(4, "Eve", address="10.0.0.3")
    chat.send(2, p.TimeOut(chat.uid(4), 10, address=False))
    chat.send(2, p.TimeOut(chat.uid(3), 600))  # Ada, by address: Eve too
    assert error(chat.say(4), 4)["retry_after"] == 600.0
    chat.advance(10)
    assert error(chat.say(4), 4)["retry_after"] == 590.0


def test_a_ban_closes_the_users_connections() -> None:
    chat = staffed()
    chat.join(4, "Ada", address="10.0.0.44", user_id=chat.uid(3))  # Ada's second tab
    chat.join(5, "Eve", address="10.0.0.5")
    out = chat.send(2, p.Ban(chat.uid(3)))
    assert errors(out, 3) == ["banned"] and errors(out, 4) == ["banned"]
    assert [(c.conn, c.code, c.reason) for c in out.closes] == [
        (3, CLOSE_POLICY, "banned"), (4, CLOSE_POLICY, "banned")]
    assert sent(out, "banned", ALL) == [{"type": "banned", "user": {
        "id": chat.uid(3), "name": "Ada", "role": "viewer"}}]
    assert sorted(chat.room.members) == [1, 2, 5]
    assert [(b.kind, b.value, b.until) for (b,) in writes(out, "put_ban")] == [
        (BanKind.USER, chat.uid(3), None), (BanKind.NAME, "ada", None),
        (BanKind.ADDRESS, "10.0.0.44", None)]  # the address Ada was last seen at
    assert [(a.action, a.target, a.detail) for a in audits(out)] == [
        ("ban", chat.uid(3), {"address": True})]


def test_a_banned_user_cannot_rejoin_by_id_name_or_address() -> None:
    chat = staffed()
    ada = chat.uid(3)
    chat.send(2, p.Ban(ada))
    for conn, name, address, user_id in (
            (10, "Someone", "10.7.7.7", ada),  # by id (a resume token)
            (11, "  ÀDA ", "10.7.7.8", "u-0000b1"),  # by name, folded
            (12, "Newname", "10.0.0.3", "u-0000b2")):  # by address
        out = chat.join(conn, name, address=address, user_id=user_id)
        assert error(out, conn)["code"] == "banned"
        assert [c.conn for c in out.closes] == [conn]
        assert conn not in chat.room.members
    assert sent(chat.join(13, "Newname", address="10.7.7.9", user_id="u-0000b3"), "welcome")
    assert sent(chat.join(14, "Ada", Role.MODERATOR, address="10.0.0.3"), "welcome")


def test_a_ban_without_the_address_leaves_the_address_open() -> None:
    chat = staffed()
    chat.join(4, "Eve", address="10.0.0.3")
    out = chat.send(2, p.Ban(chat.uid(3), address=False))
    assert [c.conn for c in out.closes] == [3]
    assert 4 in chat.room.members and sent(chat.say(4), "message")
    assert sent(chat.join(5, "Zoe", address="10.0.0.3"), "welcome")
    assert error(chat.join(6, "ada", address="10.1.1.1"), 6)["code"] == "banned"


def test_a_ban_by_address_closes_the_other_viewers_there_but_not_staff() -> None:
    chat = staffed()
    chat.join(4, "Eve", address="10.0.0.3")
    chat.join(5, "Max", Role.MODERATOR, address="10.0.0.3")
    chat.join(6, address="10.0.0.3", watch=True)  # an overlay keeps reading
    out = chat.send(2, p.Ban(chat.uid(3)))
    assert sorted(c.conn for c in out.closes) == [3, 4]
    assert sorted(chat.room.members) == [1, 2, 5, 6]


def test_a_ban_by_name_closes_every_viewer_of_that_name() -> None:
    chat = staffed()
    chat.join(4, "ADA", address="10.0.0.40")  # another Ada, another tab, another address
    out = chat.send(2, p.Ban(chat.uid(3), address=False))
    assert sorted(c.conn for c in out.closes) == [3, 4]
    assert 4 not in chat.room.members


def test_a_user_who_left_can_still_be_banned() -> None:
    chat = staffed()
    ada = chat.uid(3)
    chat.room.leave(3)
    out = chat.send(2, p.Ban(ada))
    assert sent(out, "banned", ALL) and out.closes == []
    assert error(chat.join(3, "Ada"), 3)["code"] == "banned"


def test_a_timeout_never_shortens_a_ban() -> None:
    chat = staffed()
    ada = chat.uid(3)
    chat.room.leave(3)
    chat.send(2, p.Ban(ada))
    out = chat.send(2, p.TimeOut(ada, 5))
    assert writes(out, "put_ban") == []
    chat.advance(10)
    assert error(chat.join(3, "Ada"), 3)["code"] == "banned"


@pytest.mark.parametrize("target", [1, 2])
@pytest.mark.parametrize("event", [
    lambda uid: p.Ban(uid), lambda uid: p.TimeOut(uid, 60)])
def test_staff_cannot_be_sanctioned(target: int, event: Any) -> None:
    chat = staffed()
    out = chat.send(2 if target == 1 else 1, event(chat.uid(target)))
    assert error(out, 2 if target == 1 else 1)["code"] == "forbidden"
    assert out.writes == [] and target in chat.room.members


def test_an_unknown_user_is_not_found() -> None:
    chat = staffed()
    for event in (p.Ban("u-999999"), p.TimeOut("u-999999", 5), p.UserMessages("u-999999")):
        assert error(chat.send(2, event), 2)["code"] == "not_found"


def test_unban_lifts_every_ban_and_timeout() -> None:
    chat = staffed()
    chat.join(4, "Eve")
    ada, eve = chat.uid(3), chat.uid(4)
    chat.send(2, p.Ban(ada))
    chat.send(2, p.TimeOut(eve, 600))
    out = chat.send(1, p.Unban(ada))
    assert sent(out, "unbanned", ALL) == [{"type": "unbanned", "user": {
        "id": ada, "name": "Ada", "role": "viewer"}}]
    assert writes(out, "remove_bans") == [("main", ada)]
    assert [(a.action, a.target) for a in audits(out)] == [("unban", ada)]
    assert sent(chat.join(10, "Ada", address="10.0.0.3", user_id=ada), "welcome")
    assert sent(chat.say(10), "message")
    chat.send(1, p.Unban(eve))
    assert sent(chat.say(4), "message")


def test_user_messages_is_a_lookup() -> None:
    chat = staffed()
    out = chat.send(2, p.UserMessages(chat.uid(3)))
    assert out.sends == [] and out.writes == []
    assert [(lookup.conn, lookup.user) for lookup in out.lookups] == [(2, chat.users[3])]


STAFF_EVENTS = [p.Delete("m-000000"), p.TimeOut("u-000001", 5), p.Ban("u-000001"),
                p.Unban("u-000001"), p.SlowMode(5), p.SetChat(False), p.Filter(add=("x",)),
                p.UserMessages("u-000001"), p.Pin("m-000000"), p.Pin(None),
                p.Answer("q-000000"), p.Done("q-000000"), p.Marker("x")]


@pytest.mark.parametrize("event", STAFF_EVENTS, ids=lambda e: type(e).__name__)
def test_viewers_may_not_moderate(event: p.ClientEvent) -> None:
    chat = staffed()
    out = chat.send(3, event)
    assert error(out, 3)["code"] == "forbidden"
    assert out.writes == [] and out.timeline == [] and out.actions == []


def test_every_moderation_action_is_audited() -> None:
    chat = staffed()
    message = sent(chat.say(3, "hi"), "message")[0]["id"]
    question = sent(chat.send(3, p.Ask("?")), "question", 3)[0]["id"]
    ada = chat.uid(3)
    done = []
    for event in (p.Pin(message), p.Pin(None), p.Delete(message), p.TimeOut(ada, 5),
                  p.SlowMode(3), p.SetChat(False), p.Filter(add=("x",)), p.Answer(question),
                  p.Done(question), p.Ban(ada), p.Unban(ada)):
        chat.advance(1)
        out = chat.send(2, event)
        assert errors(out, 2) == [], event
        [record] = audits(out)
        assert record.stream == "main" and record.actor == chat.users[2]
        assert record.at == round(chat.now * 1000)
        done.append(record.action)
        assert out.actions == [type(event).__name__.lower()]
    assert done == ["pin", "unpin", "delete", "timeout", "slow_mode", "chat", "filter",
                    "answer", "done", "ban", "unban"]


def test_markers_are_the_creators() -> None:
    chat = staffed()
    assert error(chat.send(2, p.Marker("chapter")), 2)["code"] == "forbidden"
    out = chat.send(1, p.Marker(" Chapter\n2 "), pdt=PDT)
    assert sent(out, "marker", ALL) == [{"type": "marker", "label": "Chapter 2",
                                         "at": round(chat.now * 1000),
                                         "pdt": "2026-12-04T01:02:01.456Z"}]
    [record] = out.timeline
    assert (record.kind, record.label, record.duration, record.pdt) == (
        "marker", "Chapter 2", None, PDT)
    for label in ("\u200b", "x" * (p.MAX_MARKER_LENGTH + 1)):
        assert error(chat.send(1, p.Marker(label)), 1)["code"] == "bad_request"


# -- the filter, changed live -------------------------------------------------------------------

def test_filter_changes_apply_at_once_and_go_to_staff() -> None:
    chat = staffed(ChatConfig(words=("configured",)))
    out = chat.send(2, p.Filter(add=("spam", "eggs"), add_patterns=(r"b[a4]d",)))
    assert [s.to for s in out.sends] == [STAFF]
    assert sent(out, "filter", STAFF) == [{
        "type": "filter", "words": ["configured", "spam", "eggs"], "patterns": ["b[a4]d"],
        "configured": {"words": ["configured"], "patterns": []}}]
    assert writes(out, "put_settings") == [
        ("main", RoomSettings(words=("spam", "eggs"), patterns=("b[a4]d",)))]
    assert audits(out)[0].detail == {"add": ["spam", "eggs"], "remove": [],
                                     "add_patterns": ["b[a4]d"], "remove_patterns": []}
    for text in ("SPAM", "eggs!", "b4d", "configured"):
        assert error(chat.say(3, text), 3)["code"] == "filtered"
    assert sent(chat.say(2, "spam"), "message")
    chat.advance(10)
    out = chat.send(2, p.Filter(remove=("SPAM",), remove_patterns=(r"b[a4]d",)))
    assert sent(out, "filter")[0]["words"] == ["configured", "eggs"]
    assert sent(out, "filter")[0]["patterns"] == []
    assert sent(chat.say(3, "spam"), "message") and sent(chat.say(3, "bad"), "message")
    out = chat.send(2, p.Filter(remove=("configured",)))  # the config's own stay
    assert error(chat.say(3, "configured"), 3)["code"] == "filtered"


@pytest.mark.parametrize("pattern", ["(", "[z-a]", "a{99999999999999}", "*x"])
def test_an_invalid_pattern_is_a_bad_request(pattern: str) -> None:
    chat = staffed()
    out = chat.send(2, p.Filter(add=("spam",), add_patterns=(pattern,)))
    assert error(out, 2)["code"] == "bad_request"
    assert out.writes == []
    assert sent(chat.say(3, "spam"), "message")  # nothing of the change applied


# -- a room restored from its records ---------------------------------------------------------

def test_a_room_restored_from_its_records() -> None:
    ada = User("u-00ada0", "Ada", Role.VIEWER)
    eve = User("u-00e7e0", "Eve", Role.VIEWER)
    at = round(T0 * 1000)
    history = [MessageRecord(f"m-{i:06x}", "main", ada, f"old {i}", at - 1000 + i, None)
               for i in range(8)]
    history.insert(3, MessageRecord("m-dead00", "main", eve, "removed", at - 990, None,
                                    deleted_by="alice"))
    bans = [BanRecord("main", BanKind.USER, eve.id, None, "alice", at - 5000, eve.id),
            BanRecord("main", BanKind.NAME, "zoe", at - 1, "alice", at - 5000, "u-0020e0"),
            BanRecord("main", BanKind.ADDRESS, "10.6.6.6", at + 60_000, "alice", at, "u-0000c1")]
    questions = [QuestionRecord("q-00000a", "main", ada, "queued?", at, None),
                 QuestionRecord("q-00000b", "main", ada, "answering?", at, None,
                                QuestionState.ANSWERING),
                 QuestionRecord("q-00000c", "main", ada, "done?", at, None, QuestionState.DONE)]
    chat = Chat(ChatConfig(history=5), history=history, bans=bans,
                settings=RoomSettings(slow_mode=20, chat_enabled=False, words=("spam",)),
                questions=questions, supporters=[(ada, 30), (eve, 300)])

    welcome = sent(chat.join(1, "Host", Role.CREATOR), "welcome")[0]
    assert [m["text"] for m in welcome["history"]] == [f"old {i}" for i in range(3, 8)]
    room = welcome["room"]
    assert room["slow_mode"] == 20 and room["chat_enabled"] is False
    assert room["filter"]["words"] == ["spam"]
    assert [q["id"] for q in room["questions"]] == ["q-00000a", "q-00000b"]
    assert room["answering"]["id"] == "q-00000b"
    assert [(s["user"]["name"], s["coins"]) for s in room["supporters"]] == [
        ("Eve", 300), ("Ada", 30)]

    assert error(chat.join(2, "Someone", user_id=eve.id), 2)["code"] == "banned"
    assert sent(chat.join(3, "Zoe"), "welcome")  # that ban is over
    assert sent(chat.join(4, "Max", address="10.6.6.6"), "welcome")  # a timeout: joins...
    chat.send(1, p.SetChat(True))
    assert error(chat.say(4), 4)["code"] == "timed_out"  # ...but cannot write
    assert error(chat.say(3, "spam"), 3)["code"] == "filtered"


def test_a_deleted_message_never_comes_back_from_the_records() -> None:
    ada = User("u-00ada0", "Ada", Role.VIEWER)
    chat = Chat(history=[MessageRecord("m-dead00", "main", ada, "x", 1, None, "alice")])
    assert sent(chat.join(1, "Eve"), "welcome")[0]["history"] == []


def test_history_is_bounded() -> None:
    chat = Chat(ChatConfig(history=3))
    chat.join(1, "Ada", Role.MODERATOR)
    for i in range(10):
        chat.say(1, f"m{i}")
    assert [m.text for m in chat.room.history] == ["m7", "m8", "m9"]
    chat.send(1, p.Delete(chat.room.history[0].id))
    chat.say(1, "m10")
    chat.say(1, "m11")
    assert [m.text for m in chat.room.history] == ["m9", "m10", "m11"]


# -- flooding -----------------------------------------------------------------------------------

def test_flooding_is_refused_then_closed() -> None:
    chat = Chat()
    chat.join(1, "Ada")
    for _ in range(FRAMES_BURST):
        assert sent(chat.send(1, p.Ping()), "pong", 1)
    refused = error(chat.send(1, p.Ping()), 1)
    assert refused["code"] == "rate_limited" and refused["retry_after"] == 0.2
    for _ in range(FLOOD_REFUSALS - 2):
        assert error(chat.send(1, p.Say("x")), 1)["code"] == "rate_limited"
    out = chat.send(1, p.Ping())
    assert out.sends == []
    assert [(c.conn, c.code, c.reason) for c in out.closes] == [(1, CLOSE_POLICY, "flooding")]
    assert out.refused == ["flooding"]


def test_a_frame_let_through_forgives_the_flood() -> None:
    chat = Chat()
    chat.join(1, "Ada")
    for _ in range(FRAMES_BURST + FLOOD_REFUSALS - 1):
        chat.send(1, p.Ping())
    chat.advance(1.0)  # 6 frames' worth
    assert sent(chat.send(1, p.Ping()), "pong")
    for _ in range(5):
        chat.send(1, p.Ping())
    for _ in range(FLOOD_REFUSALS - 1):
        assert chat.send(1, p.Ping()).closes == []


# -- the room, driven at random -----------------------------------------------------------------

PROPERTY_CONFIG = ChatConfig(
    history=5, user_messages=3, user_window=5.0, address_messages=4, address_window=5.0,
    max_message_length=40, words=("spam",), moderators={"alice": MODERATOR_TOKEN},
    gift_webhook=WEBHOOK, viewer_interval=1.0)
CONNS = st.sampled_from([1, 2, 3, 3, 4, 4, 5, 6])  # the prelude's, mostly
TEXT = st.text(max_size=50) | st.sampled_from(
    ["hello", "spam", "SPÄM!", "<img src=x onerror=alert(1)>", "x" * 60, "", "\u202e\n",
     "lone \ud800"])
PATTERN = st.text(min_size=1, max_size=12) | st.sampled_from(["(", "x+", "a{99999999999}"])
WORDS = st.lists(st.text(min_size=1, max_size=10) | st.just("\ud800"), max_size=3)
PATTERNS = st.lists(PATTERN, max_size=2)
REF = st.integers(0, 8)  # picks among the ids seen so far (or one nobody was given)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, the weight times as often (one_of merges repeated branches)."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(
        lambda strategy: strategy)


EVENTS = weighted(
    (6, st.builds(lambda t: ("say", t), TEXT)),
    (2, st.builds(lambda t: ("ask", t), TEXT)),
    (2, st.builds(lambda k, n: ("react", k, n), st.sampled_from([*REACTIONS, "boo"]),
                  st.integers(1, 50))),
    (1, st.builds(lambda g, n: ("gift", g, n), st.sampled_from(["rose", "rocket", "yacht"]),
                  st.integers(1, 100))),
    (1, st.builds(lambda r: ("delete", r), REF)),
    (1, st.builds(lambda r, s, a: ("timeout", r, s, a), REF, st.integers(1, 600), st.booleans())),
    (1, st.builds(lambda r, a: ("ban", r, a), REF, st.booleans())),
    (1, st.builds(lambda r: ("unban", r), REF)),
    (1, st.builds(lambda s: ("slow_mode", s), st.sampled_from([0, 0, 2, 30]))),
    (1, st.builds(lambda e: ("chat", e), st.booleans())),
    (1, st.builds(lambda a, r, ap, rp: ("filter", a, r, ap, rp), WORDS, WORDS, PATTERNS, PATTERNS)),
    (1, st.builds(lambda r: ("user_messages", r), REF)),
    (1, st.builds(lambda r: ("pin", r), REF | st.none())),
    (1, st.builds(lambda r: ("answer", r), REF)),
    (1, st.builds(lambda r: ("done", r), REF)),
    (1, st.builds(lambda t: ("marker", t), TEXT)),
    (1, st.just(("ping",))),
    (1, st.builds(lambda n: ("join_again", n), TEXT)),
)
NAMES = st.sampled_from(["Ada", "ada", "ÄDA", "Eve", "Zoe", "alice", "Créator", "main", "",
                         "x" * 40, "Bob"])
JOIN = st.builds(lambda c, n, r, a, u, w: ("join", c, n, r, a, u, w), CONNS, NAMES,
                 st.sampled_from([Role.VIEWER, Role.VIEWER, Role.VIEWER, Role.MODERATOR,
                                  Role.CREATOR]),
                 st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3"]), st.integers(0, 5),
                 st.integers(0, 9).map(lambda n: n == 0))
EVENT = st.builds(lambda c, e: ("event", c, e), CONNS, EVENTS)
STEPS = weighted(
    (2, JOIN),
    (1, st.builds(lambda c: ("leave", c), CONNS)),
    (8, EVENT),
    (1, st.builds(lambda h: ("tick", h), st.integers(0, 30))),
    (1, st.builds(lambda i, ok: ("settle", i, ok), st.integers(0, 3), st.booleans())),
)
# Every run starts in a room with its staff and a few viewers (two of them at one address).
PRELUDE = [("join", 1, "Host", Role.CREATOR, "10.0.0.1", 0, False),
           ("join", 2, "alice", Role.MODERATOR, "10.0.0.2", 1, False),
           ("join", 3, "Ada", Role.VIEWER, "10.0.0.3", 0, False),
           ("join", 4, "Eve", Role.VIEWER, "10.0.0.3", 1, False),
           ("join", 5, "Zoe", Role.VIEWER, "10.0.0.1", 2, False)]
CLOCK = st.sampled_from([0.0, 0.0, 0.0, 0.01, 0.2, 0.5, 1.0, 3.0, 30.0, 700.0])


@dataclass
class Model:
    """What the test knows from the outcomes alone, to resolve the steps' references and to
    check the room against."""

    messages: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    where: dict[str, tuple[str, str]] = field(default_factory=dict)  # user id: name, address
    bans: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, value): made for
    charges: list[GiftCharge] = field(default_factory=list)

    def ref(self, ids: list[str], index: int, prefix: str) -> str:
        return ids[index] if index < len(ids) else f"{prefix}-{index:06x}"


def frame_of(step: tuple[Any, ...], model: Model) -> dict[str, Any]:
    """The client object a step stands for, its references resolved against the model."""
    kind, *args = step
    user = lambda i: model.ref(model.users, i, "u")  # noqa: E731
    message = lambda i: model.ref(model.messages, i, "m")  # noqa: E731
    question = lambda i: model.ref(model.questions, i, "q")  # noqa: E731
    match kind:
        case "say" | "ask":
            return {"type": "message" if kind == "say" else "ask", "text": args[0]}
        case "react":
            return {"type": "react", "kind": args[0], "count": args[1]}
        case "gift":
            return {"type": "gift", "gift": args[0], "count": args[1]}
        case "delete" | "pin" if args[0] is not None:
            return {"type": kind, "id": message(args[0])}
        case "pin":
            return {"type": "pin", "id": None}
        case "answer" | "done":
            return {"type": kind, "id": question(args[0])}
        case "timeout":
            return {"type": "timeout", "user": user(args[0]), "seconds": args[1],
                    "address": args[2]}
        case "ban":
            return {"type": "ban", "user": user(args[0]), "address": args[1]}
        case "unban" | "user_messages":
            return {"type": kind, "user": user(args[0])}
        case "slow_mode":
            return {"type": "slow_mode", "seconds": args[0]}
        case "chat":
            return {"type": "chat", "enabled": args[0]}
        case "filter":
            return {"type": "filter", "add": args[0], "remove": args[1],
                    "add_patterns": args[2], "remove_patterns": args[3]}
        case "marker":
            return {"type": "marker", "label": args[0]}
        case "join_again":
            return {"type": "join", "name": args[0]}
        case _:
            return {"type": "ping"}


def learn(out: Outcome, model: Model) -> None:
    for send in out.sends:
        obj = send.obj
        if obj["type"] == "message":
            model.messages.append(obj["id"])
        elif obj["type"] == "question":
            model.questions.append(obj["id"])
        elif obj["type"] == "welcome" and obj["user"] is not None:
            model.users.append(obj["user"]["id"])
    model.charges += out.charges


def check(room: Room, out: Outcome, caller: int | None, model: Model) -> None:
    closed = {close.conn for close in out.closes}
    for send in out.sends:
        assert send.to in (ALL, STAFF) or send.to in room.members or send.to in closed \
            or send.to == caller, send
        p.encode(send.obj).encode("utf-8")  # every object can go on the wire
    codes = [s.obj["code"] for s in out.sends if s.obj["type"] == "error"]
    assert codes == [code for code in out.refused if code != "flooding"]
    for name, args in out.writes:
        assert name in STORE_METHODS and isinstance(args, tuple)
    assert len(room.history) <= room.config.history
    for close in out.closes:  # (a flooder is out once the edge has closed it: leave())
        assert close.reason == "flooding" or close.conn not in room.members, close
    for conn, member in room.members.items():
        if member.user is None or member.staff:
            continue
        for key in (("user", member.user.id), ("name", fold(member.user.name)),
                    ("address", member.address)):
            assert key not in model.bans, (conn, member, key)


def follow_bans(out: Outcome, event: p.ClientEvent, model: Model) -> None:
    """The bans as the outcomes tell them: the keys a `banned` user holds until `unbanned`."""
    if sent(out, "banned") and isinstance(event, p.Ban):
        name, address = model.where[event.user]
        keys = [("user", event.user), ("name", fold(name))]
        if event.address and address:
            keys.append(("address", address))
        for key in keys:
            model.bans[key] = event.user
    if sent(out, "unbanned") and isinstance(event, p.Unban):
        model.bans = {k: v for k, v in model.bans.items() if v != event.user}


@given(st.lists(st.tuples(CLOCK, STEPS), min_size=20, max_size=100))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_room_driven_at_random_handles_everything(steps: list[tuple[float, Any]]) -> None:
    chat = Chat(PROPERTY_CONFIG)
    room, model = chat.room, Model()
    for advance, step in [(0.0, join) for join in PRELUDE] + steps:
        chat.advance(advance)
        caller: int | None = None
        event: p.ClientEvent | None = None
        match step:
            case ("join", conn, name, role, address, user, watch):
                caller = conn
                # A viewer keeps their id when they come back (resume); staff have their own.
                user_id = f"u-{'ff' if role is not Role.VIEWER else '00'}{user:04x}"
                out = room.join(conn, address, p.Join(name, watch=watch), role, user_id,
                                chat.now)
                welcome = sent(out, "welcome", conn)
                if welcome and welcome[0]["user"] is not None:
                    model.where[user_id] = (welcome[0]["user"]["name"], address)
            case ("leave", conn):
                out = room.leave(conn)
                assert conn not in room.members
            case ("event", conn, template):
                caller = conn
                try:  # as the edge does: the parser's refusals answered at once
                    event = p.parse(json.dumps(frame_of(template, model)))
                except p.Refusal as refusal:
                    out = Outcome()
                    out.refuse(conn, refusal)
                else:
                    out = room.receive(conn, event, chat.now, chat.now - 3.0)
            case ("tick", hls):
                out = room.tick(chat.now, hls)
            case ("settle", index, accepted):
                if not model.charges:
                    continue
                charge = model.charges.pop(index % len(model.charges))
                caller = charge.conn
                out = room.gift_settled(charge, accepted, "declined", chat.now, chat.now - 3.0)
        learn(out, model)
        if event is not None:
            follow_bans(out, event, model)
        check(room, out, caller, model)
