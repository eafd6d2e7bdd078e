"""Stream keys are secrets; stream names are public. This module is the only place that maps
one to the other, so nothing downstream of ingest ever holds a key."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


def is_valid_stream_name(name: str) -> bool:
    """Public names appear in URLs, file names and metric labels: keep them plain."""
    return (
        0 < len(name) <= 64
        and name[0] != "."
        and all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)
    )


def open_mode_name(key: str) -> str:
    """A stable public name for a key in --open mode: the same encoder reconnecting gets the
    same name, and the name reveals nothing about the key."""
    return "s-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:12]


class KeyTable:
    def __init__(self, keys: Mapping[str, str], *, open_mode: bool = False) -> None:
        self._keys = dict(keys)
        self.open_mode = open_mode

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, key: str) -> str | None:
        """The public name for `key`, or None when the key is not valid."""
        for secret, name in self._keys.items():
            # Constant-time per candidate: the comparison must not leak how much matched.
            if hmac.compare_digest(secret.encode(), key.encode("utf-8", "surrogatepass")):
                return name
        return open_mode_name(key) if self.open_mode else None
