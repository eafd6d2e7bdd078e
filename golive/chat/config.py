"""The `[chat]` settings: limits, moderators, the word filter, the gift catalogue and its
webhook, retention, and the send queues. Built by `golive.config` from TOML.

Moderator tokens are secrets: they come from the config file (or its environment), never from
a URL, and no message here ever shows one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from golive.errors import raise_problems, shown

MIN_TOKEN_LENGTH = 16  # as the admin token: shorter ones are guessable over the network


@dataclass(frozen=True, slots=True)
class GiftType:
    name: str  # what a client sends: {"type": "gift", "gift": "rose"}
    title: str  # what a page shows
    picture: str  # an image URL (http(s):// or /path), or a short emoji text
    coins: int  # the price of one, in the operator's coins (golive never handles money)


# A catalogue to start from; the operator's [[chat.gifts]] replace it. Gifting stays off
# until a webhook charges viewers (gift_webhook).
DEFAULT_GIFTS = (
    GiftType("rose", "Rose", "🌹", 1),
    GiftType("heart", "Heart", "💖", 5),
    GiftType("star", "Star", "⭐", 10),
    GiftType("rocket", "Rocket", "🚀", 100),
)

REACTIONS = ("like", "heart", "laugh", "wow")
_GIFT_NAME = re.compile(r"[a-z0-9_-]{1,32}")


@dataclass(frozen=True)
class ChatConfig:
    enabled: bool = True
    max_message_length: int = 300  # characters, after normalisation
    history: int = 50  # recent messages a joining client gets
    retention_days: float = 30.0  # chat history, questions and timeline kept this long; 0: forever
    # A user may send `user_messages` messages per `user_window` seconds (a burst, then one
    # every window/messages seconds), and all the users of one address `address_messages`.
    user_messages: int = 5
    user_window: float = 10.0
    address_messages: int = 20
    address_window: float = 10.0
    reactions_per_second: int = 20  # taps per user, with a burst of 50
    connections_per_address: int = 20  # chat sockets; a household or office shares one
    slow_mode: int = 0  # seconds between one user's messages at start; 0: off
    words: tuple[str, ...] = ()  # refused words (whole words, case-insensitive)
    patterns: tuple[str, ...] = ()  # refused regular expressions (case-insensitive)
    # name = "token": moderators of every room. The token is a secret.
    moderators: dict[str, str] = field(default_factory=dict)
    # Addresses or networks (CIDR) of proxies whose X-Forwarded-For names the real client.
    trusted_proxies: tuple[str, ...] = ()
    gifts: tuple[GiftType, ...] = DEFAULT_GIFTS  # [[chat.gifts]] name, title, picture, coins
    gift_webhook: str | None = None  # POSTed each gift; 2xx charges and accepts it
    gift_webhook_timeout: float = 3.0  # seconds; a timeout refuses the gift (fails closed)
    send_queue: int = 1000  # objects waiting for one client before it is dropped as too slow
    batch_interval: float = 0.05  # seconds the room gathers broadcasts into one frame
    viewer_interval: float = 5.0  # seconds between viewer-count updates

    EXPECTED: ClassVar[dict[str, str]] = {
        "gifts": "a list of gifts ([[chat.gifts]] with name, title, picture and coins)",
        "moderators": 'a table of moderator names and their tokens (alice = "a-long-secret")',
        "gift_webhook": "a URL in quotes (http:// or https://)",
    }

    def __post_init__(self) -> None:
        gifts, problems = _gifts(self.gifts)
        object.__setattr__(self, "gifts", gifts)
        for name in ("words", "patterns", "trusted_proxies"):  # TOML gives lists
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problems += list(self._problems())
        raise_problems(problems)

    @property
    def gifting(self) -> bool:
        return self.gift_webhook is not None and bool(self.gifts)

    def _problems(self) -> Iterator[str]:
        for name in ("max_message_length", "history", "user_messages", "address_messages",
                     "reactions_per_second", "connections_per_address", "send_queue"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                yield f"chat.{name} must be a whole number, at least 1, got {shown(value)}"
        for name in ("user_window", "address_window", "gift_webhook_timeout",
                     "batch_interval", "viewer_interval"):
            if getattr(self, name) <= 0:
                yield f"chat.{name} must be more than 0 seconds, got {shown(getattr(self, name))}"
        if self.retention_days < 0:
            yield ("chat.retention_days must be 0 (forever) or more, got "
                   f"{shown(self.retention_days)}")
        if not 0 <= self.slow_mode <= 3600:
            yield f"chat.slow_mode must be 0-3600 seconds, got {shown(self.slow_mode)}"
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except (re.error, OverflowError) as exc:  # (a{99999999999} overflows)
                yield f"chat.patterns: {shown(pattern)} is not a regular expression ({exc})"
        tokens: dict[str, str] = {}
        for name, token in self.moderators.items():
            if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH \
                    or not token.isprintable() or " " in token:
                yield (f"chat.moderators.{name} must be a token of at least {MIN_TOKEN_LENGTH} "
                       "printable characters without spaces (e.g. `openssl rand -hex 24`)")
            elif token in tokens:
                yield (f"chat.moderators: {tokens[token]!r} and {name!r} have the same token; "
                       "each moderator needs one of their own")
            else:
                tokens[token] = name
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                yield (f"chat.trusted_proxies: {shown(proxy)} is not an address or network "
                       "(e.g. 127.0.0.1 or 10.0.0.0/8)")
        if self.gift_webhook is not None and not self.gift_webhook.startswith(
                ("http://", "https://")):
            yield ("chat.gift_webhook must be an http:// or https:// URL, got "
                   f"{shown(self.gift_webhook)}")


def _gifts(raw: Any) -> tuple[tuple[GiftType, ...], list[str]]:
    """The catalogue from TOML's list of tables (or GiftTypes given in code)."""
    if not isinstance(raw, list | tuple):
        return DEFAULT_GIFTS, [f"chat.gifts must be {ChatConfig.EXPECTED['gifts']}"]
    gifts: list[GiftType] = []
    problems: list[str] = []
    for index, entry in enumerate(raw):
        if isinstance(entry, GiftType):
            gifts.append(entry)
            continue
        where = f"chat.gifts[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a table with name, title, picture and coins")
            continue
        name, coins = entry.get("name"), entry.get("coins")
        unknown = sorted(set(entry) - {"name", "title", "picture", "coins"})
        if unknown:
            problems.append(f"{where}: {', '.join(unknown)} is not a setting of a gift "
                            "(name, title, picture, coins)")
        if not isinstance(name, str) or not _GIFT_NAME.fullmatch(name):
            problems.append(f"{where}.name must be 1-32 lowercase letters, digits, '-' or '_', "
                            f"got {shown(name)}")
            continue
        if not isinstance(coins, int) or isinstance(coins, bool) or coins < 1:
            problems.append(f"{where}.coins must be a whole number, at least 1, got {shown(coins)}")
            continue
        title = entry.get("title", name.capitalize())
        picture = entry.get("picture", "🎁")
        if not isinstance(title, str) or not isinstance(picture, str):
            problems.append(f"{where}: title and picture must be text in quotes")
            continue
        gifts.append(GiftType(name, title, picture, coins))
    names = [g.name for g in gifts]
    problems += [f"chat.gifts: {name!r} is in the catalogue twice"
                 for name in sorted({n for n in names if names.count(n) > 1})]
    return tuple(gifts), problems
