"""Stream keys kept in the state directory, so OBS need not be re-keyed at every start.

`golive serve` without any configured key makes one for `main` here once and reuses it;
`golive keys list|add|rotate|remove` manage the store. A running server sees changes at its
next publish (`KeyTable` asks `changed()` first), so a rotated key stops working at once.

SQLite (embedded, in the standard library) rather than a file of our own: atomic changes from
two processes (the server and `golive keys`), and `PRAGMA data_version` tells a reader that
another connection changed something, without reading the table again. The file is private
to its owner (0600 in a 0700 directory): it holds secrets.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from golive.names import is_valid_stream_name

FILE = "keys.sqlite3"
SECRET_BYTES = 16  # 22 URL-safe characters


class KeyStoreError(ValueError):
    """The change cannot be made (no such stream, a name taken, a bad name)."""


@dataclass(frozen=True, slots=True)
class StoredKey:
    name: str
    created: float  # wall clock, seconds
    rotated: float | None


class KeyStore:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.directory / FILE
        fresh = not self.path.exists()
        # Created private before SQLite opens it: the secrets are never readable by others.
        if fresh:
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        self._db.execute("""CREATE TABLE IF NOT EXISTS stream_keys (
            name TEXT PRIMARY KEY, secret TEXT NOT NULL UNIQUE,
            created REAL NOT NULL, rotated REAL)""")
        self._seen = -1

    def close(self) -> None:
        self._db.close()

    def changed(self) -> bool:
        """Has anything changed since the last call (by this or another process)?"""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        # data_version only moves for other connections' commits: count ours too.
        total = self._db.total_changes
        seen, self._seen = self._seen, hash((version, total))
        return seen != self._seen

    def secrets(self) -> dict[str, str]:
        """secret -> stream name, for the key table."""
        return dict(self._db.execute("SELECT secret, name FROM stream_keys"))

    def list(self) -> list[StoredKey]:
        return [StoredKey(*row) for row in self._db.execute(
            "SELECT name, created, rotated FROM stream_keys ORDER BY name")]

    def add(self, name: str) -> str:
        """A new stream with a new random key; the key (shown to the operator once)."""
        if not is_valid_stream_name(name):
            raise KeyStoreError(
                f"stream name {name!r} may only use letters, digits, '-', '_' and '.'")
        secret = secrets.token_urlsafe(SECRET_BYTES)
        try:
            self._db.execute("INSERT INTO stream_keys VALUES (?, ?, ?, NULL)",
                             (name, secret, time.time()))
        except sqlite3.IntegrityError:
            raise KeyStoreError(f"stream {name!r} already has a key: rotate it instead") \
                from None
        return secret

    def rotate(self, name: str) -> str:
        """A new key for `name`; the old one stops working."""
        secret = secrets.token_urlsafe(SECRET_BYTES)
        cursor = self._db.execute("UPDATE stream_keys SET secret = ?, rotated = ? "
                                  "WHERE name = ?", (secret, time.time(), name))
        if cursor.rowcount == 0:
            raise KeyStoreError(f"no key is kept for stream {name!r}")
        return secret

    def remove(self, name: str) -> None:
        cursor = self._db.execute("DELETE FROM stream_keys WHERE name = ?", (name,))
        if cursor.rowcount == 0:
            raise KeyStoreError(f"no key is kept for stream {name!r}")
