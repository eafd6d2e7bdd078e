"""The chat's text rules (display names, message text, the word filter) and its token buckets:
pure functions, no room, no clock but the one passed in."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golive.chat.limits import TokenBucket
from golive.chat.text import (
    MAX_NAME_LENGTH,
    WordFilter,
    display_name,
    fold,
    message_text,
)


def wide(ascii_text: str) -> str:
    """The text in fullwidth forms ("Ada" as U+FF21...), which NFKC makes ASCII again."""
    return "".join(chr(ord(c) + 0xFEE0) for c in ascii_text)


def refused(raw: str, reserved: tuple[str, ...] = (), **options: bool) -> str:
    """The code display_name refuses `raw` with."""
    with pytest.raises(ValueError) as caught:
        display_name(raw, reserved, **options)
    code, sentence = caught.value.args
    assert isinstance(sentence, str) and sentence
    return code


# -- display names ------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "shown"), [
    ("Ada", "Ada"),
    ("  Ada Lovelace ", "Ada Lovelace"),
    (wide("Ada"), "Ada"),  # fullwidth letters: NFKC
    ("ﬁona", "fiona"),  # a ligature: NFKC
    ("Zoë", "Zoë"),
    ("Zoe\u0308", "Zoë"),  # a combining diaeresis composes
    ("o'brien-2.0_x", "o'brien-2.0_x"),
    ("李小龍", "李小龍"),
    ("a" * MAX_NAME_LENGTH, "a" * MAX_NAME_LENGTH),
])
def test_display_names_are_kept_in_nfkc(raw: str, shown: str) -> None:
    assert display_name(raw) == shown


@pytest.mark.parametrize("raw", [
    "", "   ", "a" * (MAX_NAME_LENGTH + 1), wide("a") * (MAX_NAME_LENGTH + 1),
    "<b>Ada</b>", "Ada!", "Ada  Lovelace", "Ada\u202eevoL", "A\u200bda", "Ada\nEve",
    "...", "_-'", "😀",
])
def test_bad_names(raw: str) -> None:
    assert refused(raw) == "bad_name"


@pytest.mark.parametrize("raw", [
    "Créator", "MODERATOR", "Mod", "admin", "ADMINISTRATOR", "GoLive", "system", "staff",
    wide("Creator"), "c.r.e.a.t.o.r", "C r e a t o r", "mod_", "Ōwner",
])
def test_reserved_names_whatever_their_case_accents_or_spacing(raw: str) -> None:
    assert refused(raw) == "name_reserved"


def test_names_reserved_by_the_caller_compare_folded() -> None:
    reserved = ("Main Stage", "alice")
    assert refused("mainstage", reserved) == "name_reserved"
    assert refused("ÁLICE", reserved) == "name_reserved"
    assert display_name("Alicia", reserved) == "Alicia"


def test_staff_may_take_the_reserved_names() -> None:
    assert display_name("Creator", staff=True) == "Creator"
    assert display_name("Mod Alice", staff=True) == "Mod Alice"
    assert refused("<Creator>", staff=True) == "bad_name"  # the other rules still hold


def test_fold() -> None:
    assert fold("Ünïcödé") == "unicode"
    assert fold("Straße") == "strasse"
    assert fold("O'Brien-Smith Jr.") == "obriensmithjr"
    assert fold(wide("ADA")) == "ada"


# -- message text -------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "kept"), [
    ("hello", "hello"),
    ("  hello   world  ", "hello world"),
    ("one\ntwo\r\nthree\tfour", "one two three four"),
    ("line\u2028separator\u2029paragraph\x85next", "line separator paragraph next"),
    ("a\x00b\x07c\x1bd\x7f", "abcd"),
    ("\u202eevil\u202c text", "evil text"),  # bidi override dropped
    ("zero\u200bwidth\ufeff", "zerowidth"),
    ("e\u0301", "é"),  # NFC
    ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
    ("\"quotes\" & 'apostrophes' \\", "\"quotes\" & 'apostrophes' \\"),
    ("🇫🇷 👍🏽 ❤️", "🇫🇷 👍🏽 ❤️"),
    ("\n\n\t", ""),
    ("\ud800lone surrogate", "lone surrogate"),
])
def test_message_text(raw: str, kept: str) -> None:
    assert message_text(raw) == kept


@given(st.text())
@settings(max_examples=200, deadline=None)
def test_message_text_is_one_clean_line(raw: str) -> None:
    text = message_text(raw)
    assert text == text.strip()
    assert "  " not in text
    assert not any(c.isspace() and c != " " for c in text)
    assert message_text(text) == text  # a normal form


# -- the word filter ----------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "spam", "Spam!", "SPAM", "buy spam now", "spåm", wide("spam"), "(spam)",
    "s\u0336p\u0336a\u0336m",  # struck through with combining marks
])
def test_filter_words_match_whole_words_folded(text: str) -> None:
    assert WordFilter(["spam"]).blocks(text)


@pytest.mark.parametrize("text", ["spammer", "antispam", "spa m", "s pam", "hello"])
def test_filter_words_do_not_match_inside_other_words(text: str) -> None:
    assert not WordFilter(["spam"]).blocks(text)


def test_filter_words_written_with_accents_or_case() -> None:
    words = WordFilter(["Café", "NAÏVE"])
    assert words.blocks("cafe au lait")
    assert words.blocks("so naive")
    assert not words.blocks("cafeteria")


def test_filter_words_with_punctuation_block_themselves() -> None:
    words = WordFilter(["bad-word", "go away"])
    assert words.blocks("a bad-word here")
    assert words.blocks("Bad Word")
    assert words.blocks("badword")
    assert words.blocks("just GO AWAY")
    assert not words.blocks("bad words")
    assert not words.blocks("go")


def test_filter_patterns_case_insensitive_on_the_text_and_its_folded_form() -> None:
    patterns = WordFilter(patterns=[r"b[a4]d", r"free ?money", r"https?://\S+"])
    assert patterns.blocks("so B4D")
    assert patterns.blocks("FREE MONEY")
    assert patterns.blocks("frée mönéy")  # the folded form
    assert patterns.blocks("see http://x.example/")
    assert not patterns.blocks("good")
    assert not WordFilter(patterns=["shit"]).blocks("push it")  # words stay apart


def test_filter_change() -> None:
    base = WordFilter(["spam", "  ", "spam", "eggs"], [r"x+", r"x+"])
    assert base.words == ("spam", "eggs")  # blanks and repeats dropped
    assert base.patterns == ("x+",)
    changed = base.changed(add=["ham"], remove=["SPAM"], add_patterns=["y+"],
                           remove_patterns=["x+"])
    assert changed.words == ("eggs", "ham")
    assert changed.patterns == ("y+",)
    assert not changed.blocks("spam xxx") and changed.blocks("ham") and changed.blocks("yy")
    assert base.blocks("spam")  # the old filter is unchanged


@pytest.mark.parametrize("pattern", ["(", "[a-", "a(?i)", r"\N{nonsense}", "a{99999999999999}"])
def test_an_invalid_pattern_raises_re_error(pattern: str) -> None:
    with pytest.raises(re.error):
        WordFilter().changed(add_patterns=[pattern])


def test_an_empty_filter_blocks_nothing() -> None:
    assert not WordFilter().blocks("anything at all")


# -- token buckets ------------------------------------------------------------------------------

def test_bucket_burst_then_refill() -> None:
    bucket = TokenBucket(5, 10.0, updated=100.0)
    assert all(bucket.take(100.0) for _ in range(5))
    assert not bucket.take(100.0)
    assert bucket.wait(100.0) == pytest.approx(2.0)
    assert not bucket.take(101.9)
    assert bucket.wait(101.9) == pytest.approx(0.1)
    assert bucket.take(102.0)
    assert not bucket.take(102.0)
    assert bucket.take(112.0, 5)  # refilled to capacity, not beyond
    assert not bucket.take(112.0)


def test_bucket_take_up_to_grants_what_there_is() -> None:
    bucket = TokenBucket(50, 2.5, updated=0.0)
    assert bucket.take_up_to(0.0, 30) == 30
    assert bucket.take_up_to(0.0, 30) == 20
    assert bucket.take_up_to(0.0, 30) == 0
    assert bucket.take_up_to(0.1, 30) == 2  # 20 a second
    assert bucket.wait(0.1, 10) == pytest.approx(0.5)


def test_a_clock_going_back_mints_no_tokens_and_freezes_nothing() -> None:
    bucket = TokenBucket(2, 10.0, updated=50.0)
    assert bucket.take(50.0) and bucket.take(50.0)
    assert not bucket.take(40.0)  # (a wall clock stepped back)
    assert bucket.take(45.0)  # refills from the new time on, 1 token per 5 s
    assert not bucket.take(45.0)


def test_joiners_that_writing_and_emoji_need_are_kept() -> None:
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"
    england = "\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F"
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "I want", with a ZWNJ
    for text in (family, england, persian):
        assert message_text(text) == text
    assert message_text("a\u202eb\u2066c") == "abc"  # bidi overrides and isolates go


def test_a_joiner_does_not_hide_a_filtered_word() -> None:
    assert WordFilter(["spam"]).blocks("sp\u200dam now")
    assert WordFilter(["spam"]).blocks("s\u200cpam")
