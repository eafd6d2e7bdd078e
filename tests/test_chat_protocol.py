"""The chat's wire parser: every client frame becomes one typed event or a `Refusal` with a stable
code (README, "Chat and interaction"), whatever the text; and what the server encodes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golive.chat import protocol as p

BOUNDED = settings(max_examples=200, deadline=None)
ID = "m-0123456789abcdef"
USER = "u-00aa11"
QUESTION = "q-abcdef"


def frame(obj: Any) -> str:
    return json.dumps(obj)


def refusal(text: str) -> p.Refusal:
    with pytest.raises(p.Refusal) as caught:
        p.parse(text)
    return caught.value


@pytest.mark.parametrize(("obj", "event"), [
    ({"type": "join", "name": "Ada"}, p.Join("Ada")),
    ({"type": "join", "name": "Ada", "token": "t" * 20, "resume": "r"},
     p.Join("Ada", "t" * 20, "r")),
    ({"type": "join", "watch": True}, p.Join("", watch=True)),
    ({"type": "join", "watch": True, "name": 5}, p.Join("", watch=True)),  # a watcher has none
    ({"type": "message", "text": "hi"}, p.Say("hi")),
    ({"type": "react", "kind": "like"}, p.React("like", 1)),
    ({"type": "react", "kind": "wow", "count": 50}, p.React("wow", 50)),
    ({"type": "ask", "text": "why?"}, p.Ask("why?")),
    ({"type": "gift", "gift": "rose"}, p.SendGift("rose", 1)),
    ({"type": "gift", "gift": "rose", "count": 100}, p.SendGift("rose", 100)),
    ({"type": "delete", "id": ID}, p.Delete(ID)),
    ({"type": "timeout", "user": USER}, p.TimeOut(USER, 300, True)),
    ({"type": "timeout", "user": USER, "seconds": 86400, "address": False},
     p.TimeOut(USER, 86400, False)),
    ({"type": "ban", "user": USER}, p.Ban(USER, True)),
    ({"type": "ban", "user": USER, "address": False}, p.Ban(USER, False)),
    ({"type": "unban", "user": USER}, p.Unban(USER)),
    ({"type": "slow_mode"}, p.SlowMode(0)),
    ({"type": "slow_mode", "seconds": 3600}, p.SlowMode(3600)),
    ({"type": "chat", "enabled": False}, p.SetChat(False)),
    ({"type": "filter", "add": ["spam"], "remove_patterns": ["x+"]},
     p.Filter(add=("spam",), remove_patterns=("x+",))),
    ({"type": "filter"}, p.Filter()),
    ({"type": "user_messages", "user": USER}, p.UserMessages(USER)),
    ({"type": "pin", "id": ID}, p.Pin(ID)),
    ({"type": "pin", "id": None}, p.Pin(None)),
    ({"type": "pin"}, p.Pin(None)),
    ({"type": "answer", "id": QUESTION}, p.Answer(QUESTION)),
    ({"type": "done", "id": QUESTION}, p.Done(QUESTION)),
    ({"type": "marker", "label": "chapter 2"}, p.Marker("chapter 2")),
    ({"type": "ping"}, p.Ping()),
    ({"type": "ping", "extra": [1, {"x": None}], "more": "ignored"}, p.Ping()),
])
def test_each_client_object_parses_to_its_event(obj: dict[str, Any], event: p.ClientEvent) -> None:
    assert p.parse(frame(obj)) == event


@pytest.mark.parametrize("text", [
    "", "not json", "{", "[1, 2]", '"a string"', "42", "null", "true", "{}",
    frame({"type": "nope"}), frame({"type": None}), frame({"type": 3}), frame({"type": ["join"]}),
    frame({"type": "join"}), frame({"type": "join", "name": 3}),
    frame({"type": "join", "name": "Ada", "token": 123}), frame({"type": "join", "watch": "yes"}),
    frame({"type": "message"}), frame({"type": "message", "text": ["hi"]}),
    frame({"type": "react"}), frame({"type": "react", "kind": "like", "count": 0}),
    frame({"type": "react", "kind": "like", "count": 51}),
    frame({"type": "react", "kind": "like", "count": True}),
    frame({"type": "react", "kind": "like", "count": 2.0}),
    frame({"type": "gift", "gift": "rose", "count": 101}),
    frame({"type": "delete"}), frame({"type": "delete", "id": "42"}),
    frame({"type": "delete", "id": "m-12345"}), frame({"type": "delete", "id": "x-123456"}),
    frame({"type": "delete", "id": "m-ABCDEF"}), frame({"type": "delete", "id": "m-" + "a" * 33}),
    frame({"type": "timeout", "user": USER, "seconds": 0}),
    frame({"type": "timeout", "user": USER, "seconds": 86401}),
    frame({"type": "timeout", "user": USER, "address": 1}),
    frame({"type": "ban", "user": "Ada"}), frame({"type": "unban"}),
    frame({"type": "slow_mode", "seconds": -1}), frame({"type": "slow_mode", "seconds": 3601}),
    frame({"type": "chat", "enabled": "no"}),
    frame({"type": "filter", "add": "spam"}), frame({"type": "filter", "add": [""]}),
    frame({"type": "filter", "add": ["x" * 101]}), frame({"type": "filter", "add": [1]}),
    frame({"type": "filter", "add_patterns": ["x"] * (p.MAX_FILTER_CHANGE + 1)}),
    frame({"type": "pin", "id": 7}), frame({"type": "answer", "id": None}),
    frame({"type": "marker"}),
    frame({"type": "message", "text": "x" * p.MAX_FRAME_BYTES}),  # too big a frame
    "[" * 2040 + "]" * 2040,  # nested deeper than the parser recurses
    '{"type": ' + "[" * 1900 + "]" * 1900 + "}",
    '{"type": ' + "[" * 900 + "]" * 900 + "}",
    '{"type": "message", "text": NaN}',
])
def test_anything_else_is_a_bad_request(text: str) -> None:
    refused = refusal(text)
    assert refused.code == "bad_request"
    assert refused.to_wire() == {"type": "error", "code": "bad_request",
                                 "message": refused.message}


@pytest.mark.parametrize("obj", [
    {"type": "message", "text": "hi \ud800"},
    {"type": "join", "name": "Ada\udfff"},
    {"type": "filter", "add": ["\udc00"]},
    {"type": "filter", "add_patterns": ["(?P<\ud800>x)"]},
    {"type": "marker", "label": "\ud83d"},
])
def test_lone_surrogates_are_refused(obj: dict[str, Any]) -> None:
    """JSON can escape a lone surrogate; no UTF-8 frame or store could carry it back."""
    assert refusal(frame(obj)).code == "bad_request"


def test_a_surrogate_pair_escaped_in_json_is_one_character() -> None:
    assert p.parse(r'{"type": "message", "text": "\ud83d\ude00"}') == p.Say("😀")


def test_refusal_messages_name_the_field() -> None:
    assert "react.count" in refusal(frame({"type": "react", "kind": "x", "count": 99})).message
    assert '"nope"' in refusal(frame({"type": "nope"})).message


def test_an_unknown_type_is_shown_short_and_ascii() -> None:
    message = refusal(frame({"type": "ü" * 500})).message
    assert message.isascii() and len(message) < 80


@pytest.mark.parametrize(("seconds", "shown"), [
    (2.0, 2.0), (0.1, 0.1), (0.04, 0.1), (0.16666, 0.2), (3.3333, 3.4), (299.95, 300.0),
    (1.0000001, 1.0), (0.0, 0.0),
])
def test_retry_after_is_rounded_up_to_a_tenth(seconds: float, shown: float) -> None:
    """Rounded down, a client that waits as long as it is told is refused again."""
    wire = p.Refusal("rate_limited", "slow down", seconds).to_wire()
    assert wire == {"type": "error", "code": "rate_limited", "message": "slow down",
                    "retry_after": shown}


def test_encode_is_compact_utf8_text_with_nothing_escaped_for_html() -> None:
    obj = {"type": "message", "text": "<img src=x onerror=alert(1)> & café 😀"}
    text = p.encode(obj)
    assert text == '{"type":"message","text":"<img src=x onerror=alert(1)> & café 😀"}'
    assert json.loads(text) == obj


# -- whatever a client sends: an event or a Refusal, never another exception -------------------

def parsed_or_refused(text: str) -> None:
    try:
        event = p.parse(text)
    except p.Refusal as refused:
        assert refused.code == "bad_request"
        json.dumps(refused.to_wire(), ensure_ascii=False).encode("utf-8")
        return
    assert type(event).__name__ in {t.__name__ for t in p.ClientEvent.__args__}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=20)
TYPES = ["join", "message", "react", "ask", "gift", "delete", "timeout", "ban", "unban",
         "slow_mode", "chat", "filter", "user_messages", "pin", "answer", "done", "marker",
         "ping"]  # README, "Objects a client sends"
FIELDS = ["name", "token", "resume", "watch", "text", "kind", "count", "gift", "id", "user",
          "seconds", "address", "enabled", "add", "remove", "add_patterns", "remove_patterns",
          "label"]
FIELD_VALUES = JSON | st.sampled_from(
    [ID, USER, QUESTION, "like", "rose", "Ada", 1, 50, 300, 86400, True, False, None,
     ["spam"], ["(", "x+"], ""])


@given(st.text(max_size=300))
@BOUNDED
def test_any_text(text: str) -> None:
    parsed_or_refused(text)


@given(JSON)
@BOUNDED
def test_any_json_value(value: Any) -> None:
    parsed_or_refused(json.dumps(value))


@given(st.sampled_from(TYPES),
       st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), FIELD_VALUES, max_size=6))
@BOUNDED
def test_any_fields_of_a_known_type(kind: str, fields: dict[str, Any]) -> None:
    parsed_or_refused(json.dumps({**fields, "type": kind}))


def test_every_event_knows_its_wire_type() -> None:
    """Metrics count received objects by the type the client sent."""
    samples = {"join": '{"type":"join","name":"Ada"}', "message": '{"type":"message","text":"x"}',
               "ping": '{"type":"ping"}', "slow_mode": '{"type":"slow_mode","seconds":5}',
               "chat": '{"type":"chat","enabled":false}',
               "user_messages": '{"type":"user_messages","user":"u-abcdef"}'}
    for kind, text in samples.items():
        assert p.wire_type(p.parse(text)) == kind
    assert set(p._WIRE_TYPES.values()) == set(p._READERS)
