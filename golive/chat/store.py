"""What the chat keeps across a restart: SQLite in the state directory, off the event loop.

`chat.sqlite3` sits beside the stream keys (`ingest/key_store.py`) and, like them, is private
to its owner (0600 in a 0700 directory): it holds what viewers wrote, their names and, for
address bans, their addresses.

* `ChatStore` is synchronous: one sqlite3 connection, used from the thread that opened it.
  The journal is WAL so that a reader (a `golive chat` command, a backup) never blocks the
  server's writes, nor they it. `synchronous=NORMAL`: in WAL mode a commit then costs no
  fsync and the file stays consistent; a power cut (not a crash of golive) may undo the last
  commits before the next checkpoint.
* `AsyncChatStore` is the event loop's face of it: one worker thread owns the `ChatStore`.
  Reads are awaited and see every write queued before them. Writes are queued without
  awaiting and written in one transaction per batch (everything queued in one turn of the
  loop, or while the previous batch was being written), so a busy room costs a commit per
  batch, not per message; each write inside the batch has its own savepoint, so a bad one is
  lost alone. A failed write is logged (operation and stream, never what users wrote) and
  counted through `on_error`; it never raises into the event loop. At most `max_pending`
  writes wait: beyond that (a disk that stalls) a write is dropped and counted through
  `on_drop`, so memory stays bounded.
  A batch SQLite cannot write at all (a full or read-only disk: it then rolls the whole
  transaction back) is lost whole, counted, and logged once until a batch is written again.
* Retention is `purge(before_ms)`, for the chat service to call with now minus its configured
  history length: it removes messages, questions, timeline events and bans that ended before
  then. The gift ledger and the audit log are never purged (see `purge`).
* The schema is versioned by `PRAGMA user_version`: `MIGRATIONS` holds one script per
  version, applied in order, each in one transaction; a released script is never edited,
  a change is a new script at the end. A file from a newer golive is refused, never
  downgraded.

Users are stored as columns (id, name, role); `detail`, `attributes` and the filter lists as
JSON text (so tuples come back as lists inside `detail`, as they would from the wire).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

log = logging.getLogger("golive.chat")

FILE = "chat.sqlite3"
MAX_PENDING = 100_000  # queued writes (calls, not rows) before new ones are dropped
# The most writes in one transaction: a `golive chat` command writing at the same time waits
# for the write lock at most this long (5,000 messages take milliseconds).
MAX_BATCH = 10_000
BUSY_TIMEOUT_S = 5.0  # how long a write waits for another process's write lock

# One script per schema version: MIGRATIONS[0] makes version 1 from an empty file, and so on.
# Never edit a script once released (files in the field were made by it): append a new one.
MIGRATIONS: list[str] = [
    # v1: the tables. `seq` is the order of arrival, the tie-break between equal times.
    """
    CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        stream TEXT NOT NULL,
        user_id TEXT NOT NULL,
        user_name TEXT NOT NULL,
        user_role TEXT NOT NULL,
        text TEXT NOT NULL,
        at INTEGER NOT NULL,
        pdt REAL,
        deleted_by TEXT
    );
    CREATE TABLE bans (
        seq INTEGER PRIMARY KEY,
        stream TEXT NOT NULL,
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        until INTEGER,
        banned_by TEXT NOT NULL,
        at INTEGER NOT NULL,
        user_id TEXT NOT NULL DEFAULT '',
        UNIQUE (stream, kind, value)
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        stream TEXT NOT NULL,
        at INTEGER NOT NULL,
        actor_id TEXT NOT NULL,
        actor_name TEXT NOT NULL,
        actor_role TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE gifts (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        stream TEXT NOT NULL,
        user_id TEXT NOT NULL,
        user_name TEXT NOT NULL,
        user_role TEXT NOT NULL,
        gift TEXT NOT NULL,
        count INTEGER NOT NULL,
        coins INTEGER NOT NULL,
        at INTEGER NOT NULL,
        pdt REAL,
        reference TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE questions (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        stream TEXT NOT NULL,
        user_id TEXT NOT NULL,
        user_name TEXT NOT NULL,
        user_role TEXT NOT NULL,
        text TEXT NOT NULL,
        at INTEGER NOT NULL,
        pdt REAL,
        state TEXT NOT NULL
    );
    CREATE TABLE room_settings (
        stream TEXT PRIMARY KEY,
        slow_mode INTEGER NOT NULL,
        chat_enabled INTEGER NOT NULL,
        words TEXT NOT NULL,
        patterns TEXT NOT NULL
    );
    CREATE TABLE timeline (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        stream TEXT NOT NULL,
        kind TEXT NOT NULL,
        at INTEGER NOT NULL,
        pdt REAL,
        duration REAL,
        label TEXT NOT NULL,
        attributes TEXT NOT NULL
    );
    """,
    # v2: the indexes the queries need (each method names the one it uses). `messages_by_time`
    # and the scans of the small tables serve `purge`, which runs rarely.
    """
    CREATE INDEX messages_by_stream ON messages (stream, at);
    CREATE INDEX messages_by_user ON messages (stream, user_id, at);
    CREATE INDEX messages_by_time ON messages (at);
    CREATE INDEX bans_by_user ON bans (stream, user_id);
    CREATE INDEX audit_by_stream ON audit (stream, at);
    CREATE INDEX gifts_by_stream ON gifts (stream, at);
    CREATE INDEX gifts_by_supporter ON gifts (stream, user_id, coins);
    CREATE INDEX questions_open ON questions (stream, at)
        WHERE state IN ('queued', 'answering');
    CREATE INDEX timeline_by_stream ON timeline (stream, at);
    """,
    # v3: viewers' identities, so that a resume token outlives a restart (a ban by user id
    # then follows the person). The token is a credential: only its hash is kept.
    """
    CREATE TABLE identities (
        token_hash BLOB PRIMARY KEY,
        user_id TEXT NOT NULL,
        last_seen INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX identities_by_time ON identities (last_seen);
    """,
]


class ChatStoreError(RuntimeError):
    """The chat store's file cannot be used: written by a newer golive, not a database, or a
    migration failed (the file is then left at the version it had)."""


def schema_version() -> int:
    """The version this golive writes: the number of migrations it knows."""
    return len(MIGRATIONS)


def _statements(script: str) -> Iterator[str]:
    """The statements of a script, split where SQLite says one is complete (so a ';' inside a
    string or a trigger body does not split): `executescript` would commit the migration's
    open transaction first, and the version check must be inside that transaction."""
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \t\n;"):
                yield statement
            statement = ""
    if statement.strip(" \t\n;"):
        yield statement


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _role(user: User) -> str:
    return Role(user.role).value  # refuses a role no reader would understand


_MESSAGE_COLUMNS = "id, stream, user_id, user_name, user_role, text, at, pdt, deleted_by"
_BAN_COLUMNS = "stream, kind, value, until, banned_by, at, user_id"
_AUDIT_COLUMNS = "stream, at, actor_id, actor_name, actor_role, action, target, detail"
_GIFT_COLUMNS = ("id, stream, user_id, user_name, user_role, gift, count, coins, at, pdt, "
                "reference")
_QUESTION_COLUMNS = "id, stream, user_id, user_name, user_role, text, at, pdt, state"
_TIMELINE_COLUMNS = "id, stream, kind, at, pdt, duration, label, attributes"


def _message(row: tuple[Any, ...]) -> MessageRecord:
    id_, stream, user_id, name, role, text, at, pdt, deleted_by = row
    return MessageRecord(id_, stream, User(user_id, name, Role(role)), text, at, pdt,
                         deleted_by)


def _ban(row: tuple[Any, ...]) -> BanRecord:
    stream, kind, value, until, by, at, user_id = row
    return BanRecord(stream, BanKind(kind), value, until, by, at, user_id)


def _audit(row: tuple[Any, ...]) -> AuditRecord:
    stream, at, actor_id, name, role, action, target, detail = row
    return AuditRecord(stream, at, User(actor_id, name, Role(role)), action, target,
                       json.loads(detail))


def _gift(row: tuple[Any, ...]) -> GiftRecord:
    id_, stream, user_id, name, role, gift, count, coins, at, pdt, reference = row
    return GiftRecord(id_, stream, User(user_id, name, Role(role)), gift, count, coins, at,
                      pdt, reference)


def _question(row: tuple[Any, ...]) -> QuestionRecord:
    id_, stream, user_id, name, role, text, at, pdt, state = row
    return QuestionRecord(id_, stream, User(user_id, name, Role(role)), text, at, pdt,
                          QuestionState(state))


def _timeline(row: tuple[Any, ...]) -> TimelineRecord:
    id_, stream, kind, at, pdt, duration, label, attributes = row
    return TimelineRecord(id_, stream, kind, at, pdt, duration, label, json.loads(attributes))


class ChatStore:
    """The chat's records in `<directory>/chat.sqlite3`. Synchronous: use it from the thread
    that made it (`AsyncChatStore` gives it a thread of its own).

    Lists of records come back oldest first (by `at`, then order of arrival); a `limit`
    keeps the newest that many.
    """

    def __init__(self, directory: str | Path, *, timeout: float = BUSY_TIMEOUT_S) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.directory / FILE
        # Created private before SQLite opens it; SQLite gives its -wal and -shm files the
        # database file's mode.
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=timeout)
        try:
            self._prepare()
        except BaseException:
            self._db.close()
            raise

    @property
    def connection(self) -> sqlite3.Connection:
        """The connection, for diagnostics (a trace callback); the owning thread only."""
        return self._db

    def close(self) -> None:
        self._db.close()

    # -- opening and migrations ---------------------------------------------------------

    def _version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _prepare(self) -> None:
        known = schema_version()
        try:
            found = self._version()
        except sqlite3.DatabaseError as exc:
            raise ChatStoreError(f"{self.path} is not a chat store SQLite can read ({exc}); "
                                 "move it away and golive makes a new one") from None
        # Checked before anything is written: a newer golive's file is left as it was.
        if found > known:
            raise ChatStoreError(
                f"{self.path} was written by a newer golive (chat store schema version "
                f"{found}; this golive knows versions up to {known}): run the newer golive, "
                "or move the file away to start with an empty chat store")
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":  # a file system without shared memory (some network mounts)
            log.warning("chat store %s: journal mode %s, not WAL: a reader of the file "
                        "will hold up the server's chat writes", self.path, mode)
        self._db.execute("PRAGMA synchronous=NORMAL")
        for version in range(found, known):
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        """From `version` to `version + 1`, in one transaction."""
        try:
            # BEGIN IMMEDIATE takes the write lock, so a second process opening the file at
            # the same time waits here, then sees the version already moved and skips.
            with self.transaction():
                if self._version() != version:
                    return
                for statement in _statements(MIGRATIONS[version]):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {version + 1}")
        except sqlite3.Error as exc:
            raise ChatStoreError(
                f"{self.path}: migrating the chat store from schema version {version} to "
                f"{version + 1} failed ({exc}); the file is left at version {version}"
            ) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction; inside one already open, a savepoint, so that a failed part
        rolls back alone and the rest commits with the outer transaction."""
        if self._db.in_transaction:
            self._db.execute("SAVEPOINT part")
            try:
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK TO part")
                    self._db.execute("RELEASE part")
                raise
            self._db.execute("RELEASE part")
            return
        # IMMEDIATE: the write lock is taken (or waited for) at the start, never upgraded
        # halfway, which could fail with a busy error after the work was done.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

    def _select(self, sql: str, args: Sequence[object]) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, args).fetchall()

    # -- messages -----------------------------------------------------------------------

    def add_messages(self, messages: Iterable[MessageRecord]) -> None:
        rows = [(m.id, m.stream, m.user.id, m.user.name, _role(m.user), m.text, m.at, m.pdt,
                 m.deleted_by) for m in messages]
        with self.transaction():
            self._db.executemany(
                f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows)

    def mark_deleted(self, message_id: str, by: str) -> bool:
        """Was the message there and not deleted yet? The first deletion is the one kept."""
        cursor = self._db.execute(
            "UPDATE messages SET deleted_by = ? WHERE id = ? AND deleted_by IS NULL",
            (by, message_id))
        return cursor.rowcount > 0

    def recent_messages(self, stream: str, limit: int) -> list[MessageRecord]:
        """The newest `limit` messages not deleted (the history a joining viewer gets)."""
        rows = self._select(  # messages_by_stream, backwards
            f"SELECT * FROM (SELECT {_MESSAGE_COLUMNS}, seq FROM messages "
            "WHERE stream = ? AND deleted_by IS NULL ORDER BY at DESC, seq DESC LIMIT ?) "
            "ORDER BY at, seq", (stream, max(limit, 0)))
        return [_message(row[:-1]) for row in rows]

    def user_messages(self, stream: str, user_id: str, limit: int) -> list[MessageRecord]:
        """One user's newest `limit` messages, deleted ones included (for moderators)."""
        rows = self._select(  # messages_by_user
            f"SELECT * FROM (SELECT {_MESSAGE_COLUMNS}, seq FROM messages "
            "WHERE stream = ? AND user_id = ? ORDER BY at DESC, seq DESC LIMIT ?) "
            "ORDER BY at, seq", (stream, user_id, max(limit, 0)))
        return [_message(row[:-1]) for row in rows]

    def messages_between(self, stream: str, start_ms: int, end_ms: int) -> list[MessageRecord]:
        """The messages not deleted with start_ms <= at < end_ms, for a recording's replay
        (a deleted message is never replayed)."""
        rows = self._select(  # messages_by_stream
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE stream = ? AND at >= ? AND at < ? "
            "AND deleted_by IS NULL ORDER BY at, seq", (stream, start_ms, end_ms))
        return [_message(row) for row in rows]

    # -- bans (and timeouts: bans with an `until`) --------------------------------------

    def put_ban(self, ban: BanRecord) -> None:
        """One ban per (stream, kind, value): a new one replaces the old (the room decides
        whether a timeout may shorten a ban)."""
        self._db.execute(
            f"INSERT INTO bans ({_BAN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (stream, kind, value) DO UPDATE SET until = excluded.until, "
            "banned_by = excluded.banned_by, at = excluded.at, user_id = excluded.user_id",
            (ban.stream, BanKind(ban.kind).value, ban.value, ban.until, ban.by, ban.at,
             ban.user_id))

    def remove_bans(self, stream: str, user_id: str) -> int:
        """Lifts every ban made for the user (by id, name and address); how many there were.
        An empty id names no user: nothing is lifted."""
        if not user_id:
            return 0
        cursor = self._db.execute(  # bans_by_user
            "DELETE FROM bans WHERE stream = ? AND user_id = ?", (stream, user_id))
        return cursor.rowcount

    def active_bans(self, stream: str, now_ms: int) -> list[BanRecord]:
        """The bans still in force at `now_ms` (an `until` of now or before has ended)."""
        rows = self._select(  # by stream: the unique key's index or bans_by_user
            f"SELECT {_BAN_COLUMNS} FROM bans WHERE stream = ? AND (until IS NULL OR until > ?) "
            "ORDER BY at, seq", (stream, now_ms))
        return [_ban(row) for row in rows]

    # -- the audit log ------------------------------------------------------------------

    def add_audit(self, record: AuditRecord) -> None:
        actor = record.actor
        self._db.execute(
            f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (record.stream, record.at, actor.id, actor.name, _role(actor), record.action,
             record.target, _json(record.detail)))

    def audit(self, stream: str, limit: int) -> list[AuditRecord]:
        """The newest `limit` moderation actions."""
        rows = self._select(  # audit_by_stream, backwards
            f"SELECT * FROM (SELECT {_AUDIT_COLUMNS}, seq FROM audit WHERE stream = ? "
            "ORDER BY at DESC, seq DESC LIMIT ?) ORDER BY at, seq", (stream, max(limit, 0)))
        return [_audit(row[:-1]) for row in rows]

    # -- the gift ledger ----------------------------------------------------------------

    def add_gift(self, gift: GiftRecord) -> None:
        """Once per gift id: a second write of the same id fails (coins are never counted
        twice)."""
        user = gift.user
        self._db.execute(
            f"INSERT INTO gifts ({_GIFT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (gift.id, gift.stream, user.id, user.name, _role(user), gift.gift, gift.count,
             gift.coins, gift.at, gift.pdt, gift.reference))

    def gifts(self, stream: str, limit: int) -> list[GiftRecord]:
        """The newest `limit` entries of the stream's ledger."""
        rows = self._select(  # gifts_by_stream, backwards
            f"SELECT * FROM (SELECT {_GIFT_COLUMNS}, seq FROM gifts WHERE stream = ? "
            "ORDER BY at DESC, seq DESC LIMIT ?) ORDER BY at, seq", (stream, max(limit, 0)))
        return [_gift(row[:-1]) for row in rows]

    def top_supporters(self, stream: str, limit: int) -> list[tuple[User, int]]:
        """The users who gave the most coins on the stream, most first.

        A supporter is a user id (one per join, as the wire's `user.id`), shown with the name
        and role of their latest gift. Equal totals: whoever reached it first comes first.
        """
        rows = self._select(  # gifts_by_supporter (covering), then one row per supporter
            "WITH totals AS (SELECT user_id, SUM(coins) AS coins, MAX(seq) AS last "
            "FROM gifts WHERE stream = ? GROUP BY user_id) "
            "SELECT t.user_id, g.user_name, g.user_role, t.coins FROM totals AS t "
            "JOIN gifts AS g ON g.seq = t.last ORDER BY t.coins DESC, t.last LIMIT ?",
            (stream, max(limit, 0)))
        return [(User(user_id, name, Role(role)), coins) for user_id, name, role, coins in rows]

    # -- questions ----------------------------------------------------------------------

    def put_question(self, question: QuestionRecord) -> None:
        """A new question, or a known one's new state (its text and asker never change)."""
        user = question.user
        self._db.execute(
            f"INSERT INTO questions ({_QUESTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            (question.id, question.stream, user.id, user.name, _role(user), question.text,
             question.at, question.pdt, QuestionState(question.state).value))

    def open_questions(self, stream: str) -> list[QuestionRecord]:
        """The questions queued or being answered."""
        rows = self._select(  # questions_open (its WHERE repeated word for word)
            f"SELECT {_QUESTION_COLUMNS} FROM questions "
            "WHERE stream = ? AND state IN ('queued', 'answering') ORDER BY at, seq", (stream,))
        return [_question(row) for row in rows]

    # -- room settings ------------------------------------------------------------------

    def put_settings(self, stream: str, settings: RoomSettings) -> None:
        self._db.execute(
            "INSERT INTO room_settings (stream, slow_mode, chat_enabled, words, patterns) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (stream) DO UPDATE SET "
            "slow_mode = excluded.slow_mode, chat_enabled = excluded.chat_enabled, "
            "words = excluded.words, patterns = excluded.patterns",
            (stream, settings.slow_mode, int(settings.chat_enabled), _json(settings.words),
             _json(settings.patterns)))

    def settings(self, stream: str) -> RoomSettings:
        """The stream's settings, or the defaults when none were ever put."""
        row = self._db.execute(
            "SELECT slow_mode, chat_enabled, words, patterns FROM room_settings "
            "WHERE stream = ?", (stream,)).fetchone()
        if row is None:
            return RoomSettings()
        slow_mode, enabled, words, patterns = row
        return RoomSettings(slow_mode, bool(enabled), tuple(json.loads(words)),
                            tuple(json.loads(patterns)))

    # -- timeline -----------------------------------------------------------------------

    def add_timeline(self, event: TimelineRecord) -> None:
        """A new event, or a known id's new version (a pin whose duration is known once it
        is unpinned)."""
        self._db.execute(
            f"INSERT INTO timeline ({_TIMELINE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET stream = excluded.stream, kind = excluded.kind, "
            "at = excluded.at, pdt = excluded.pdt, duration = excluded.duration, "
            "label = excluded.label, attributes = excluded.attributes",
            (event.id, event.stream, event.kind, event.at, event.pdt, event.duration,
             event.label, _json(event.attributes)))

    def timeline_between(self, stream: str, start_ms: int,
                         end_ms: int) -> list[TimelineRecord]:
        """The events with start_ms <= at < end_ms."""
        rows = self._select(  # timeline_by_stream
            f"SELECT {_TIMELINE_COLUMNS} FROM timeline WHERE stream = ? AND at >= ? AND at < ? "
            "ORDER BY at, seq", (stream, start_ms, end_ms))
        return [_timeline(row) for row in rows]

    # -- identities ---------------------------------------------------------------------

    def put_identity(self, token_hash: bytes, user_id: str, at_ms: int) -> None:
        """A viewer's resume token (its hash) names this user id; seen now."""
        self._db.execute(
            "INSERT INTO identities VALUES (?, ?, ?) ON CONFLICT (token_hash) DO UPDATE SET "
            "last_seen = excluded.last_seen", (token_hash, user_id, at_ms))

    def identity(self, token_hash: bytes) -> str | None:
        """The user id a resume token's hash names, if it is known."""
        rows = self._select("SELECT user_id FROM identities WHERE token_hash = ?",
                            (token_hash,))
        return rows[0][0] if rows else None

    # -- retention ----------------------------------------------------------------------

    def purge(self, before_ms: int) -> int:
        """Forgets the messages, questions and timeline events from before `before_ms`, the
        bans that ended before then and the identities not seen since; how many rows went.
        Room settings are state, not history, and stay.

        The gift ledger and the audit log are kept whatever the retention: the ledger is the
        record of money (what each viewer was charged, with the webhook's reference, asked
        for in a dispute or an accounting long after the chat is gone) and the audit log the
        record of moderation (who deleted, banned or unbanned whom). Both grow by one row per
        paid or staff action, never per message.
        """
        with self.transaction():
            removed = 0
            for sql in ("DELETE FROM messages WHERE at < ?",  # messages_by_time
                        "DELETE FROM questions WHERE at < ?",
                        "DELETE FROM timeline WHERE at < ?",
                        "DELETE FROM bans WHERE until IS NOT NULL AND until < ?",
                        "DELETE FROM identities WHERE last_seen < ?"):  # identities_by_time
                removed += self._db.execute(sql, (before_ms,)).rowcount
        return removed


# -- the event loop's face ----------------------------------------------------------------

Operation = str | Callable[..., Any]


@dataclass(frozen=True, slots=True, eq=False)  # each write is itself, even if alike
class _Write:
    name: str
    call: Callable[..., Any]
    args: tuple[Any, ...]


def _resolve(operation: Operation) -> tuple[Callable[..., Any], str]:
    """A `ChatStore` method's name, or a callable taking the `ChatStore` first."""
    if isinstance(operation, str):
        call = getattr(ChatStore, operation, None) if not operation.startswith("_") else None
        if not callable(call):
            raise ValueError(f"ChatStore has no method {operation!r}")
        return call, operation
    return operation, getattr(operation, "__name__", type(operation).__name__)


def _streams(write: _Write) -> set[str]:
    """The streams a write is about, for its log line: a `stream` argument, or the records'."""
    with contextlib.suppress(TypeError, ValueError):
        stream = inspect.signature(write.call).bind(None, *write.args).arguments.get("stream")
        if isinstance(stream, str):
            return {stream}
    found: set[str] = set()
    for arg in write.args:
        for item in arg if isinstance(arg, list | tuple) else (arg,):
            stream = getattr(item, "stream", None)
            if isinstance(stream, str):
                found.add(stream)
    return found


def _reason(exc: BaseException) -> str:
    """What went wrong, without what users wrote: SQLite's messages name tables and
    constraints, never the values; other exceptions only by their type."""
    if isinstance(exc, sqlite3.Error):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


def _in_transaction(db: sqlite3.Connection) -> bool:
    try:
        return db.in_transaction
    except sqlite3.ProgrammingError:  # closed
        return False


def _names(streams: Iterable[str]) -> str:
    return ", ".join(sorted(streams)) or "-"


class AsyncChatStore:
    """A `ChatStore` on a worker thread of its own: `store = await AsyncChatStore.open(dir)`.

    `write(...)` queues (never awaits, never raises for a failed write); reads and `run(...)`
    are awaited and run after every write queued before them. `on_error(operation)` counts a
    write that failed and `on_drop(operation)` one dropped because `max_pending` writes were
    waiting (or the store was closing); both are called on the event loop.
    """

    def __init__(self, store: ChatStore, executor: ThreadPoolExecutor,
                 loop: asyncio.AbstractEventLoop, *,
                 on_error: Callable[[str], None] | None = None,
                 on_drop: Callable[[str], None] | None = None,
                 max_pending: int = MAX_PENDING) -> None:
        """Use `open`: the store must be made on the executor's thread, which owns it."""
        self._store = store
        self._executor = executor
        self._loop = loop
        self._on_error = on_error
        self._on_drop = on_drop
        self.max_pending = max_pending
        # Appended on the loop, taken by the worker (deque's ends are thread-safe).
        self._pending: deque[_Write] = deque()
        self._kick_scheduled = False  # touched on the loop only
        self._closed = False
        self._dropping = 0  # writes dropped since the queue was last below the bound
        self._losing = 0  # writes lost since a batch was last written (the worker's)
        self.failed = 0
        self.dropped = 0

    @classmethod
    async def open(cls, directory: str | Path, *,
                   on_error: Callable[[str], None] | None = None,
                   on_drop: Callable[[str], None] | None = None,
                   max_pending: int = MAX_PENDING) -> AsyncChatStore:
        """Opens (and migrates) the store on its thread; raises `ChatStoreError` when the file
        cannot be used, so that the server refuses to start rather than lose the chat."""
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="golive-chat-store")
        try:
            store = await loop.run_in_executor(executor, ChatStore, directory)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(store, executor, loop, on_error=on_error, on_drop=on_drop,
                   max_pending=max_pending)

    @property
    def path(self) -> Path:
        return self._store.path

    @property
    def pending(self) -> int:
        """Writes queued and not yet taken by the worker."""
        return len(self._pending)

    # -- writes -------------------------------------------------------------------------

    def write(self, operation: Operation, *args: Any) -> bool:
        """Queues `ChatStore.<operation>(*args)` (or `operation(chat_store, *args)`); False
        when it was dropped. An unknown method name is a bug and raises `ValueError`."""
        call, name = _resolve(operation)
        write = _Write(name, call, args)
        if self._closed or len(self._pending) >= self.max_pending:
            self._drop(write)
            return False
        if self._dropping:
            log.warning("chat store: writing again after %d dropped writes", self._dropping)
            self._dropping = 0
        self._pending.append(write)
        # The worker is woken once per loop turn, so every write made in one turn goes into
        # the same transaction.
        if not self._kick_scheduled:
            self._kick_scheduled = True
            self._loop.call_soon(self._kick)
        return True

    def _drop(self, write: _Write) -> None:
        """Counted every time, logged once per run of drops (a stalled disk would otherwise
        log at the rate viewers write)."""
        self.dropped += 1
        if not self._dropping:
            why = ("the store is closed" if self._closed
                   else f"{self.max_pending} writes are waiting for the disk")
            log.error("chat store: dropping writes, %s (first: %s for stream %s)", why,
                      write.name, _names(_streams(write)))
        self._dropping += 1
        if self._on_drop is not None:
            self._on_drop(write.name)

    def _kick(self) -> None:
        self._kick_scheduled = False
        if self._pending and not self._closed:  # a read or flush may have taken them
            self._executor.submit(self._drain)

    def _drain(self) -> None:
        """On the worker: writes everything queued, a batch per transaction."""
        while self._pending:
            batch: list[_Write] = []
            while self._pending and len(batch) < MAX_BATCH:
                batch.append(self._pending.popleft())
            self._write_batch(batch)

    def _write_batch(self, batch: list[_Write]) -> None:
        """One transaction, each write in a savepoint of its own so that a bad one (a
        duplicate id, text with no UTF-8 form) is lost alone."""
        store = self._store
        db = store.connection
        failed: list[_Write] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for write in batch:
                try:
                    with store.transaction():
                        write.call(store, *write.args)
                except Exception as exc:
                    # A full disk or an I/O error makes SQLite roll the whole transaction
                    # back: then the batch is lost, as when BEGIN or COMMIT fails.
                    if not _in_transaction(db):
                        raise
                    log.error("chat store: %s failed for stream %s (%s)", write.name,
                              _names(_streams(write)), _reason(exc))
                    failed.append(write)
            db.execute("COMMIT")
        except Exception as exc:
            if _in_transaction(db):
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            alone = {id(write) for write in failed}
            lost = [write for write in batch if id(write) not in alone]
            self._lost(lost, exc)
            failed += lost
        else:
            if self._losing:
                log.warning("chat store: writing again after %d writes lost", self._losing)
                self._losing = 0
        if failed:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody to count for
                self._loop.call_soon_threadsafe(self._count_failures,
                                                [write.name for write in failed])

    def _lost(self, writes: list[_Write], exc: BaseException) -> None:
        """A batch that could not be written. Logged once until a batch is written again: a
        dead disk fails every batch, and the count says how many went."""
        if not self._losing:
            streams: set[str] = set()
            for write in writes:
                streams |= _streams(write)
            log.error("chat store: %d writes lost for stream %s (%s); further losses are "
                      "counted, not logged, until the chat store writes again", len(writes),
                      _names(streams), _reason(exc))
        self._losing += len(writes)

    def _count_failures(self, names: list[str]) -> None:
        self.failed += len(names)
        if self._on_error is not None:
            for name in names:
                self._on_error(name)

    async def flush(self) -> None:
        """Returns once every write queued before the call is written (or counted failed)."""
        if not self._closed:
            await self._loop.run_in_executor(self._executor, self._drain)

    async def close(self) -> None:
        """Writes what is queued, then closes the file; later writes are dropped."""
        if self._closed:
            return
        self._closed = True
        await self._loop.run_in_executor(self._executor, self._drain)
        await self._loop.run_in_executor(self._executor, self._store.close)
        self._executor.shutdown(wait=False)  # its one thread is idle and ends at once

    # -- reads (and writes whose answer is wanted) --------------------------------------

    async def run(self, operation: Operation, *args: Any) -> Any:
        """`ChatStore.<operation>(*args)` (or `operation(chat_store, *args)`) on the worker,
        after the writes queued before it; its result, or its exception."""
        call, _ = _resolve(operation)
        if self._closed:
            raise ChatStoreError(f"the chat store {self.path} is closed")
        return await self._loop.run_in_executor(self._executor, self._after_pending, call,
                                                args)

    def _after_pending(self, call: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        self._drain()
        return call(self._store, *args)

    async def recent_messages(self, stream: str, limit: int) -> list[MessageRecord]:
        return await self.run(ChatStore.recent_messages, stream, limit)

    async def user_messages(self, stream: str, user_id: str,
                            limit: int) -> list[MessageRecord]:
        return await self.run(ChatStore.user_messages, stream, user_id, limit)

    async def messages_between(self, stream: str, start_ms: int,
                               end_ms: int) -> list[MessageRecord]:
        return await self.run(ChatStore.messages_between, stream, start_ms, end_ms)

    async def active_bans(self, stream: str, now_ms: int) -> list[BanRecord]:
        return await self.run(ChatStore.active_bans, stream, now_ms)

    async def audit(self, stream: str, limit: int) -> list[AuditRecord]:
        return await self.run(ChatStore.audit, stream, limit)

    async def gifts(self, stream: str, limit: int) -> list[GiftRecord]:
        return await self.run(ChatStore.gifts, stream, limit)

    async def top_supporters(self, stream: str, limit: int) -> list[tuple[User, int]]:
        return await self.run(ChatStore.top_supporters, stream, limit)

    async def open_questions(self, stream: str) -> list[QuestionRecord]:
        return await self.run(ChatStore.open_questions, stream)

    async def settings(self, stream: str) -> RoomSettings:
        return await self.run(ChatStore.settings, stream)

    async def timeline_between(self, stream: str, start_ms: int,
                               end_ms: int) -> list[TimelineRecord]:
        return await self.run(ChatStore.timeline_between, stream, start_ms, end_ms)

    async def identity(self, token_hash: bytes) -> str | None:
        return await self.run(ChatStore.identity, token_hash)

    async def purge(self, before_ms: int) -> int:
        return await self.run(ChatStore.purge, before_ms)
