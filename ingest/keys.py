"""Stream keys are secrets; stream names are public. This module holds the one rule that maps
a key to the name its publication gets, so nothing downstream of ingest ever holds a key.
What a name may look like is `golive.names`'s rule."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from golive.ingest.key_store import KeyStore
from golive.names import is_valid_stream_name


def open_mode_name(key: str) -> str:
    """A stable public name for a key nobody configured (--open mode, or a key the webhook
    allowed without naming it): the same encoder reconnecting gets the same name, and the
    name reveals nothing about the key."""
    return "s-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:12]


class KeyTable:
    """The configured keys (config file, --key), and those kept in the state directory's
    `store`, re-read whenever `golive keys` changed them."""

    def __init__(self, keys: Mapping[str, str], *, open_mode: bool = False,
                 store: KeyStore | None = None) -> None:
        self._configured = dict(keys)
        self._keys = dict(keys)
        self.open_mode = open_mode
        self._store = store

    def __len__(self) -> int:
        self._refresh()
        return len(self._keys)

    def names(self) -> frozenset[str]:
        """The stream names a key is configured or kept for (open mode: any name may come)."""
        self._refresh()
        return frozenset(self._keys.values())

    def is_key(self, text: str) -> bool:
        """Whether `text` is one of the configured or kept keys (to keep it out of a log)."""
        return self._known(text) is not None

    def is_key_of(self, name: str, key: str) -> bool:
        """Whether `key` publishes the stream `name` (a creator signing in to its studio)."""
        known = self._known(key)
        if known is not None:
            return known == name
        return self.open_mode and open_mode_name(key) == name

    def _known(self, key: str) -> str | None:
        """The stream a configured or kept `key` is for."""
        self._refresh()
        encoded = key.encode("utf-8", "surrogatepass")
        for secret, name in self._keys.items():
            # Constant-time per candidate: the comparison must not leak how much matched.
            if hmac.compare_digest(secret.encode(), encoded):
                return name
        return None

    def _refresh(self) -> None:
        if self._store is not None and self._store.changed():
            self._keys = {**self._store.secrets(), **self._configured}

    def name_for(self, key: str, *, chosen: str | None = None,
                 authorized: bool = False) -> str | None:
        """The public name a publish with `key` gets, or None when it may not publish.

        In order: the name the operator's webhook `chosen` (None if that name is invalid),
        the name configured for the key, else a name derived from the key when any key may
        publish (open mode) or the webhook `authorized` this one.
        """
        if chosen:
            return chosen if is_valid_stream_name(chosen) else None
        known = self._known(key)
        if known is not None:
            return known
        return open_mode_name(key) if self.open_mode or authorized else None
