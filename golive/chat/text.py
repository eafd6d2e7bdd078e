"""What user text may be: display names, message text and the word filter.

Text stays text: nothing here escapes for HTML (the pages render with textContent, the
playlists quote for HLS); this module only decides what is accepted, in one normal form.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

MAX_NAME_LENGTH = 32
# Names nobody may take: they would pass for the staff or the system, whatever their case or
# accents ("Créator", "MODERATOR").
RESERVED_NAMES = frozenset({"creator", "moderator", "mod", "admin", "administrator", "golive",
                            "system", "staff", "owner", "host", "streamer", "server"})
_NAME_PUNCTUATION = frozenset(" _-.'")
# Control and format characters (bidi overrides, invisible separators) make text that reads
# differently from what it is; line breaks become spaces in a one-line chat. Kept: the zero
# width (non-)joiners, which emoji sequences (👨‍👩‍👧) and Indic and Persian writing need,
# and the tag characters of subdivision flags (🏴 England). The word filter ignores them.
_DROPPED = frozenset({"Cc", "Cf", "Co", "Cs", "Cn"})
_KEPT_FORMAT = frozenset({"\u200c", "\u200d", *map(chr, range(0xE0020, 0xE0080))})


def fold(name: str) -> str:
    """The form names are compared in: case-folded, accents and spacing removed."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)
                   and c not in _NAME_PUNCTUATION)


def display_name(raw: str, reserved: Iterable[str] = (), *, staff: bool = False) -> str:
    """The name as shown (NFKC), or ValueError saying what is wrong: `bad_name` or
    `name_reserved` as its first argument, the sentence as its second. Staff may take the
    reserved names (their role shows beside the name)."""
    name = unicodedata.normalize("NFKC", raw).strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise ValueError("bad_name", f"a name has 1-{MAX_NAME_LENGTH} characters")
    if not all(c.isalnum() or c in _NAME_PUNCTUATION for c in name) or "  " in name:
        raise ValueError("bad_name", "a name may use letters, digits, spaces and _-.' only")
    folded = fold(name)
    if not folded:
        raise ValueError("bad_name", "a name needs a letter or digit")
    if not staff and (folded in RESERVED_NAMES or folded in {fold(r) for r in reserved}):
        raise ValueError("name_reserved", f"{name!r} is reserved; choose another name")
    return name


def message_text(raw: str) -> str:
    """One line of chat as kept: NFC, control and format characters dropped, whitespace runs
    made one space, trimmed. Length is judged by the caller, on this form."""
    text = unicodedata.normalize("NFC", raw)
    # Every line break and space (U+2028, NEL, no-break...) is a space; some are control
    # characters, and dropped they would glue two words together.
    text = "".join(" " if c.isspace() else c for c in text
                   if c.isspace() or c in _KEPT_FORMAT
                   or unicodedata.category(c) not in _DROPPED)
    return re.sub(r" {2,}", " ", text).strip()


def _words_of(text: str) -> list[str]:
    """The text's words, folded. Combining marks and format characters go before the text is
    cut into words: a stray one ("s\u0336pam", "sp\u200dam") would otherwise cut a word in
    two."""
    bare = "".join(c for c in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(c) and unicodedata.category(c) != "Cf")
    return [w for w in map(fold, re.findall(r"\w+", bare)) if w]


def _compiled(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except OverflowError as exc:  # "a{99999999999}": what re.error says of other mistakes
        raise re.error(str(exc)) from None


class WordFilter:
    """Refused words (whole words, compared folded) and patterns (case-insensitive regular
    expressions, searched in the text as written and in its folded form)."""

    def __init__(self, words: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        self.words = tuple(dict.fromkeys(w.strip() for w in words if w.strip()))
        self.patterns = tuple(dict.fromkeys(patterns))
        # A refused entry of several words ("bad-word", "go away") matches those words in a
        # row, or written as one.
        phrases = {" ".join(parts) for parts in map(_words_of, self.words) if parts}
        phrases |= {phrase.replace(" ", "") for phrase in phrases}
        alternatives = "|".join(map(re.escape, sorted(phrases, key=len, reverse=True)))
        self._words = re.compile(rf"(?<!\S)(?:{alternatives})(?!\S)") if phrases else None
        self._patterns = [_compiled(p) for p in self.patterns]

    def blocks(self, text: str) -> bool:
        # Whole words of the folded text (fold removes spaces, so words are folded one by
        # one, then kept apart): "Spam" and "spåm" match "spam", "spammer" does not, and a
        # pattern "shit" does not match "push it".
        folded = " ".join(_words_of(text))
        if self._words is not None and self._words.search(folded):
            return True
        return any(p.search(text) or p.search(folded) for p in self._patterns)

    def changed(self, add: Iterable[str] = (), remove: Iterable[str] = (),
                add_patterns: Iterable[str] = (), remove_patterns: Iterable[str] = ()
                ) -> WordFilter:
        """A new filter with the change (invalid patterns raise re.error)."""
        gone = {fold(w) for w in remove}
        words = [w for w in self.words if fold(w) not in gone] + list(add)
        patterns = [p for p in self.patterns if p not in set(remove_patterns)]
        patterns += list(add_patterns)
        return WordFilter(words, patterns)
