"""The chat store: every record kept in a real SQLite file in the state directory survives a
restart, files of older schema versions are upgraded and newer ones refused, and the event
loop's face of it batches writes, counts failures and drops beyond its bound without ever
raising into the loop."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest

from golive.chat import store as store_module
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
from golive.chat.store import (
    FILE,
    MIGRATIONS,
    AsyncChatStore,
    ChatStore,
    ChatStoreError,
    schema_version,
)

DATA = Path(__file__).parent / "data"
STREAM = "main"
ADA = User("u-ada", "Ada", Role.VIEWER)
BOB = User("u-bob", "Bob", Role.VIEWER)
GRACE = User("u-grace", "Grace", Role.MODERATOR)
HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "'); DROP TABLE messages;--",
    "nul\x00inside\x00",
    "🎉 👩‍👩‍👧 🏳️‍🌈",
    "\u202eright to left\u202c, zero\u200bwidth",
    '"quoted" \\back\\ \'single\' %s %d ? :name',
    "line\nbreak\r\ttab",
]


def message(n: int, *, stream: str = STREAM, user: User = ADA, text: str | None = None,
            at: int | None = None) -> MessageRecord:
    return MessageRecord(f"m-{n:06x}", stream, user, f"hello {n}" if text is None else text,
                         1_000 + n if at is None else at, 1_700_000_000.0 + n / 1000)


def gift(n: int, user: User, coins: int, *, stream: str = STREAM) -> GiftRecord:
    return GiftRecord(f"g-{n:04x}", stream, user, "rose", coins // 10, coins, 5_000 + n,
                      None if n % 2 else 1_700_000_005.25, reference=f"ch_{n}")


def question(n: int, state: QuestionState = QuestionState.QUEUED, *,
             text: str | None = None) -> QuestionRecord:
    return QuestionRecord(f"q-{n:04x}", STREAM, ADA, text or f"question {n}?", 7_000 + n,
                          1_700_000_007.0, state)


def audit_record(n: int, action: str = "delete") -> AuditRecord:
    return AuditRecord(STREAM, 9_000 + n, GRACE, action, f"m-{n:06x}",
                       {"seconds": 300, "words": ["a", "b"], "nested": {"none": None}})


def timeline_event(n: int, *, duration: float | None = None) -> TimelineRecord:
    return TimelineRecord(f"t-{n:04x}", STREAM, "pin", 11_000 + n, 1_700_000_011.5, duration,
                          f"pinned {n}", {"X-GOLIVE-USER": "Ada", "X-GOLIVE-COINS": 30,
                                          "X-GOLIVE-RATE": 0.5})


def fill(store: ChatStore) -> None:
    """One of every kind of record, on two streams."""
    store.add_messages([message(n) for n in range(5)] + [message(9, stream="other")])
    store.mark_deleted(message(1).id, "Grace")
    store.put_ban(BanRecord(STREAM, BanKind.USER, BOB.id, None, "Grace", 100, BOB.id))
    store.put_ban(BanRecord(STREAM, BanKind.ADDRESS, "192.0.2.7", 10**12, "Grace", 100,
                            BOB.id))
    store.add_audit(audit_record(1, "ban"))
    store.add_gift(gift(1, ADA, 30))
    store.add_gift(gift(2, BOB, 50))
    store.put_question(question(1))
    store.put_question(question(2, QuestionState.ANSWERING))
    store.put_settings(STREAM, RoomSettings(15, False, ("spam",), (r"fr[e3]{2}",)))
    store.add_timeline(timeline_event(1, duration=4.5))


def everything(store: ChatStore) -> dict[str, object]:
    return {
        "recent": store.recent_messages(STREAM, 100),
        "other": store.recent_messages("other", 100),
        "ada": store.user_messages(STREAM, ADA.id, 100),
        "between": store.messages_between(STREAM, 0, 10**12),
        "bans": store.active_bans(STREAM, 0),
        "audit": store.audit(STREAM, 100),
        "gifts": store.gifts(STREAM, 100),
        "top": store.top_supporters(STREAM, 10),
        "questions": store.open_questions(STREAM),
        "settings": store.settings(STREAM),
        "timeline": store.timeline_between(STREAM, 0, 10**12),
    }


# -- ChatStore: each method round-trips --------------------------------------------------


def test_messages_round_trip(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    same_time = [message(10, at=50), message(11, at=50, user=BOB)]  # arrival breaks the tie
    kept = [message(n) for n in range(5)]
    kept[3] = MessageRecord(kept[3].id, STREAM, ADA, "no pdt", kept[3].at, None)
    store.add_messages(same_time + kept + [message(20, stream="other")])
    assert store.recent_messages(STREAM, 100) == same_time + kept
    assert store.recent_messages(STREAM, 3) == kept[2:]  # the newest, oldest first
    assert store.recent_messages(STREAM, 0) == [] and store.recent_messages("none", 5) == []
    assert store.recent_messages("other", 5) == [message(20, stream="other")]

    assert store.mark_deleted(kept[1].id, "Grace") is True
    assert store.mark_deleted(kept[1].id, "Linus") is False  # the first deletion is kept
    assert store.mark_deleted("m-nowhere", "Grace") is False
    deleted = MessageRecord(kept[1].id, STREAM, ADA, kept[1].text, kept[1].at, kept[1].pdt,
                            deleted_by="Grace")
    assert store.recent_messages(STREAM, 100) == [*same_time, kept[0], *kept[2:]]
    assert store.user_messages(STREAM, ADA.id, 100) == [same_time[0], kept[0], deleted,
                                                        *kept[2:]]
    assert store.user_messages(STREAM, ADA.id, 2) == kept[3:]
    assert store.user_messages(STREAM, BOB.id, 100) == [same_time[1]]
    # [start, end): a recording from 1001 to 1004 replays 1001..1003, never a deleted one.
    assert store.messages_between(STREAM, 1_001, 1_004) == [kept[2], kept[3]]
    assert store.messages_between(STREAM, 0, 10**12) == [*same_time, kept[0], *kept[2:]]
    with pytest.raises(sqlite3.IntegrityError):  # an id is written once
        store.add_messages([message(99), message(0)])
    assert store.recent_messages(STREAM, 100)[-1] == kept[-1]  # the whole call rolled back


def test_bans_round_trip_and_expire(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    by_id = BanRecord(STREAM, BanKind.USER, BOB.id, None, "Grace", 100, BOB.id)
    by_name = BanRecord(STREAM, BanKind.NAME, "bob", None, "Grace", 100, BOB.id)
    by_address = BanRecord(STREAM, BanKind.ADDRESS, "2001:db8::7", None, "Grace", 100, BOB.id)
    timeout = BanRecord(STREAM, BanKind.USER, ADA.id, 2_000, "Grace", 200, ADA.id)
    elsewhere = BanRecord("other", BanKind.USER, BOB.id, None, "Linus", 50, BOB.id)
    for ban in (by_id, by_name, by_address, timeout, elsewhere):
        store.put_ban(ban)
    assert store.active_bans(STREAM, 1_999) == [by_id, by_name, by_address, timeout]
    assert store.active_bans(STREAM, 2_000) == [by_id, by_name, by_address]  # ended
    longer = BanRecord(STREAM, BanKind.USER, ADA.id, 9_000, "Linus", 300, ADA.id)
    store.put_ban(longer)  # the same (stream, kind, value): replaces the timeout
    assert store.active_bans(STREAM, 2_000) == [by_id, by_name, by_address, longer]
    assert store.remove_bans(STREAM, BOB.id) == 3  # unban lifts id, name and address bans
    assert store.remove_bans(STREAM, BOB.id) == 0
    assert store.remove_bans(STREAM, "") == 0  # no user: nothing lifted
    assert store.active_bans(STREAM, 0) == [longer]
    assert store.active_bans("other", 0) == [elsewhere]


def test_audit_round_trips(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    records = [audit_record(n, action) for n, action in enumerate(("delete", "ban", "unban"))]
    records.append(AuditRecord(STREAM, 9_100, User("u-c", "Cam", Role.CREATOR), "marker", ""))
    for record in records:
        store.add_audit(record)
    store.add_audit(AuditRecord("other", 1, GRACE, "chat", "", {"enabled": False}))
    assert store.audit(STREAM, 100) == records
    assert store.audit(STREAM, 2) == records[2:]
    assert store.audit("other", 5)[0].detail == {"enabled": False}


def test_gift_ledger_and_top_supporters(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    renamed = User(ADA.id, "Ada L.", Role.MODERATOR)
    cara = User("u-cara", "Cara", Role.VIEWER)
    gifts = [gift(1, ADA, 30), gift(2, BOB, 80), gift(3, cara, 10), gift(4, renamed, 50)]
    for entry in gifts:
        store.add_gift(entry)
    store.add_gift(gift(5, cara, 1_000, stream="other"))
    assert store.gifts(STREAM, 100) == gifts
    assert store.gifts(STREAM, 1) == gifts[3:]
    # Ada and Bob both gave 80: Bob got there first. Ada shows with her latest name and role.
    assert store.top_supporters(STREAM, 10) == [(BOB, 80), (renamed, 80), (cara, 10)]
    assert store.top_supporters(STREAM, 1) == [(BOB, 80)]
    assert store.top_supporters("other", 10) == [(cara, 1_000)]
    assert store.top_supporters("none", 10) == []
    with pytest.raises(sqlite3.IntegrityError):  # coins are never counted twice
        store.add_gift(gift(2, BOB, 80))


def test_questions_insert_then_update_their_state(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    first, second, third = question(1), question(2), question(3, QuestionState.ANSWERING)
    for entry in (first, second, third):
        store.put_question(entry)
    assert store.open_questions(STREAM) == [first, second, third]
    # The update carries only the state: the asker's text stays as it was asked.
    store.put_question(question(1, QuestionState.DONE, text="rewritten"))
    store.put_question(question(2, QuestionState.ANSWERING))
    assert store.open_questions(STREAM) == [question(2, QuestionState.ANSWERING), third]
    assert store.connection.execute("SELECT text, state FROM questions WHERE id = ?",
                                    (first.id,)).fetchone() == (first.text, "done")
    assert store.open_questions("other") == []


def test_settings_default_then_kept_per_stream(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    assert store.settings(STREAM) == RoomSettings()
    changed = RoomSettings(slow_mode=30, chat_enabled=False, words=("spam", "scam"),
                           patterns=(r"\bfr[e3]{2}\b",))
    store.put_settings(STREAM, changed)
    assert store.settings(STREAM) == changed
    store.put_settings(STREAM, RoomSettings(slow_mode=0, words=("spam",)))
    assert store.settings(STREAM) == RoomSettings(slow_mode=0, words=("spam",))
    assert store.settings("other") == RoomSettings()


def test_timeline_round_trips_and_updates_by_id(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    events = [timeline_event(n) for n in range(4)]
    for event in events:
        store.add_timeline(event)
    assert store.timeline_between(STREAM, 11_001, 11_003) == events[1:3]
    unpinned = timeline_event(1, duration=12.25)  # the pin's duration, known once unpinned
    store.add_timeline(unpinned)
    assert store.timeline_between(STREAM, 0, 10**12) == [events[0], unpinned, *events[2:]]
    assert store.timeline_between("other", 0, 10**12) == []


def test_hostile_text_is_stored_and_returned_exactly(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    for n, text in enumerate(HOSTILE):
        user = User(f"u-{n}", text, Role.VIEWER)
        store.add_messages([message(n, user=user, text=text)])
        store.put_question(QuestionRecord(f"q-{n}", STREAM, user, text, n, None))
        store.add_gift(GiftRecord(f"g-{n}", STREAM, user, text, 1, 1, n, None, text))
        store.add_audit(AuditRecord(STREAM, n, user, text, text, {text: [text]}))
        store.add_timeline(TimelineRecord(f"t-{n}", STREAM, text, n, None, None, text,
                                          {text: text}))
        store.put_ban(BanRecord(STREAM, BanKind.NAME, text, None, text, n, user.id))
    store.put_settings(STREAM, RoomSettings(words=tuple(HOSTILE), patterns=tuple(HOSTILE)))
    texts = [m.text for m in store.recent_messages(STREAM, 100)]
    assert texts == HOSTILE
    assert [m.user.name for m in store.recent_messages(STREAM, 100)] == HOSTILE
    assert [q.text for q in store.open_questions(STREAM)] == HOSTILE
    assert [(g.gift, g.reference) for g in store.gifts(STREAM, 100)] == [(t, t) for t in HOSTILE]
    assert [(a.action, a.target, a.detail) for a in store.audit(STREAM, 100)] == [
        (t, t, {t: [t]}) for t in HOSTILE]
    assert [(e.kind, e.label, e.attributes) for e in store.timeline_between(STREAM, 0, 99)] \
        == [(t, t, {t: t}) for t in HOSTILE]
    assert {(b.value, b.by) for b in store.active_bans(STREAM, 0)} == {(t, t) for t in HOSTILE}
    assert store.settings(STREAM) == RoomSettings(words=tuple(HOSTILE), patterns=tuple(HOSTILE))
    tables = {row[0] for row in store.connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "messages" in tables  # still there


# -- the file ----------------------------------------------------------------------------


def test_the_file_is_private(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "state")
    store.add_messages([message(1)])
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    # The WAL and its index hold the newest rows too: SQLite gives them the file's mode.
    names = sorted(p.name for p in (tmp_path / "state").iterdir())
    assert names == [FILE, f"{FILE}-shm", f"{FILE}-wal"]
    for name in names:
        assert stat.S_IMODE((tmp_path / "state" / name).stat().st_mode) == 0o600, name
    store.close()


def test_a_restart_keeps_everything(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    fill(store)
    before = everything(store)
    store.close()
    again = ChatStore(tmp_path)
    assert everything(again) == before
    assert before["recent"] and before["bans"] and before["audit"] and before["top"]
    assert before["questions"] and before["timeline"] and before["settings"] != RoomSettings()
    mode, = again.connection.execute("PRAGMA journal_mode").fetchone()
    synchronous, = again.connection.execute("PRAGMA synchronous").fetchone()
    assert (mode, synchronous) == ("wal", 1)  # 1: NORMAL


def test_a_reader_does_not_block_the_writer(tmp_path: Path) -> None:
    """WAL: a `golive chat` command reading (here in an open read transaction) does not hold
    up the server's writes; the reader keeps its snapshot until it ends the transaction."""
    store = ChatStore(tmp_path, timeout=0.1)  # a blocked write would fail after 0.1 s
    store.add_messages([message(1)])
    reader = sqlite3.connect(tmp_path / FILE, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM messages").fetchone() == (1,)
    started = time.perf_counter()
    store.add_messages([message(n) for n in range(2, 50)])
    store.put_settings(STREAM, RoomSettings(slow_mode=5))
    assert time.perf_counter() - started < 0.1
    assert reader.execute("SELECT COUNT(*) FROM messages").fetchone() == (1,)
    reader.execute("COMMIT")
    assert reader.execute("SELECT COUNT(*) FROM messages").fetchone() == (49,)
    reader.close()


def test_the_queries_use_their_indexes(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    fill(store)
    statements: list[str] = []
    store.connection.set_trace_callback(statements.append)
    everything(store)
    store.user_messages(STREAM, ADA.id, 5)
    store.remove_bans(STREAM, BOB.id)
    store.connection.set_trace_callback(None)
    full_scan = re.compile(r"^SCAN (messages|bans|audit|gifts|questions|timeline)\b")
    plans = {}
    for sql in statements:
        if sql.startswith(("SELECT", "WITH", "DELETE")):
            plans[sql] = [row[3] for row in store.connection.execute("EXPLAIN QUERY PLAN " + sql)]
    assert len(plans) >= 11
    for sql, plan in plans.items():
        assert not any(full_scan.match(step) for step in plan), (sql, plan)


# -- schema versions ---------------------------------------------------------------------


def _version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def test_released_migrations_never_change() -> None:
    """A file in the field was made by these exact scripts: a change is a new migration."""
    released = {
        1: "7b5691b6aecaa2951abbeb64d250b6dcbae30131215da65d1b88c9e30fc1d5da",
        2: "2859b4720e36edb2a6c08c36e684e379658f73a64b2da1b8c1f511c937ff4eb9",
        3: "71fb136e8c0dc9228df424f0dc0c8715190260784622e3527d9440fae62ec009",
    }
    for version, digest in released.items():
        assert hashlib.sha256(MIGRATIONS[version - 1].encode()).hexdigest() == digest, version


def test_a_new_directory_and_an_empty_file_get_the_current_schema(tmp_path: Path) -> None:
    ChatStore(tmp_path / "new").close()
    assert _version(tmp_path / "new" / FILE) == schema_version() >= 2
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / FILE).touch()  # e.g. made by hand, or a crash before the first write
    store = ChatStore(tmp_path / "empty")
    store.add_messages([message(1)])
    assert store.recent_messages(STREAM, 5) == [message(1)]
    store.close()
    assert _version(tmp_path / "empty" / FILE) == schema_version()


def test_a_version_1_file_is_upgraded_keeping_its_rows(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / FILE, isolation_level=None)
    old.executescript(MIGRATIONS[0])  # the v1 script, as golive with schema 1 ran it
    old.execute("PRAGMA user_version = 1")
    old.executescript((DATA / "chat_store_v1.sql").read_text())
    old.close()

    store = ChatStore(tmp_path)
    assert _version(tmp_path / FILE) == schema_version()
    ada, bob = User("u-ada", "Ada", Role.VIEWER), User("u-bob", "Bob", Role.VIEWER)
    first = MessageRecord("m-v1a", STREAM, ada, "first <b>", 1000, 1700000000.5)
    hostile = MessageRecord("m-v1c", STREAM, ada, "'); DROP TABLE messages;--", 3000,
                            1700000002.5)
    assert store.recent_messages(STREAM, 10) == [first, hostile]
    assert store.user_messages(STREAM, bob.id, 10) == [
        MessageRecord("m-v1b", STREAM, bob, "gone", 2000, None, deleted_by="Grace")]
    assert store.active_bans(STREAM, 0) == [
        BanRecord(STREAM, BanKind.USER, bob.id, None, "Grace", 2100, bob.id),
        BanRecord(STREAM, BanKind.ADDRESS, "192.0.2.7", 99000, "Grace", 2100, bob.id)]
    assert store.audit(STREAM, 10) == [AuditRecord(
        STREAM, 2100, User("u-grace", "Grace", Role.MODERATOR), "ban", bob.id,
        {"address": True})]
    assert store.gifts(STREAM, 10) == [GiftRecord("g-v1a", STREAM, ada, "rose", 3, 30, 2500,
                                                  1700000001.0, "ch_1")]
    assert store.top_supporters(STREAM, 10) == [(ada, 30)]
    assert store.open_questions(STREAM) == [
        QuestionRecord("q-v1a", STREAM, ada, "Which lens?", 2600, None)]
    assert store.settings(STREAM) == RoomSettings(10, False, ("spam",), ("fr[e3]{2}",))
    assert store.timeline_between(STREAM, 0, 10**6) == [TimelineRecord(
        "g-v1a", STREAM, "gift", 2500, 1700000001.0, 5.0, "Ada sent 3 roses",
        {"X-GOLIVE-COINS": 30})]
    indexes = {row[0] for row in store.connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    assert {"messages_by_stream", "gifts_by_supporter", "questions_open"} <= indexes
    store.add_messages([message(1)])  # and it goes on being written
    assert len(store.recent_messages(STREAM, 10)) == 3


def test_a_file_from_a_newer_golive_is_refused_untouched(tmp_path: Path) -> None:
    newer = schema_version() + 3
    db = sqlite3.connect(tmp_path / FILE, isolation_level=None)
    db.execute("CREATE TABLE from_the_future (x)")
    db.execute(f"PRAGMA user_version = {newer}")
    db.close()
    with pytest.raises(ChatStoreError) as refused:
        ChatStore(tmp_path)
    text = str(refused.value)
    assert str(tmp_path / FILE) in text
    assert f"version {newer}" in text and f"up to {schema_version()}" in text
    assert "newer golive" in text
    assert _version(tmp_path / FILE) == newer
    db = sqlite3.connect(tmp_path / FILE)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # not even made WAL
    db.close()


def test_a_file_that_is_no_database_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / FILE).write_bytes(b"not a database, just text " * 100)
    with pytest.raises(ChatStoreError, match=re.escape(str(tmp_path / FILE))):
        ChatStore(tmp_path)


def test_a_failed_migration_leaves_the_file_at_its_version(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ChatStore(tmp_path).close()
    known = schema_version()
    broken = "CREATE TABLE half_done (x); INSERT INTO no_such_table VALUES (1);"
    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, broken])
    with pytest.raises(ChatStoreError, match=f"from schema version {known} to {known + 1}"):
        ChatStore(tmp_path)
    db = sqlite3.connect(tmp_path / FILE)
    assert db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'half_done'"
                      ).fetchone() == (0,)  # the migration's first statement rolled back
    db.close()
    assert _version(tmp_path / FILE) == known


# -- retention ---------------------------------------------------------------------------


def test_purge_forgets_old_chat_and_keeps_the_ledger_and_the_audit_log(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    old, new = message(1, at=1_000), message(2, at=5_000)
    store.add_messages([old, new])
    store.put_question(QuestionRecord("q-old", STREAM, ADA, "old?", 1_000, None))
    store.put_question(QuestionRecord("q-new", STREAM, ADA, "new?", 5_000, None))
    store.add_timeline(TimelineRecord("t-old", STREAM, "marker", 1_000, None, None, "old"))
    store.add_timeline(TimelineRecord("t-new", STREAM, "marker", 5_000, None, None, "new"))
    ended = BanRecord(STREAM, BanKind.USER, "u-x", 2_000, "Grace", 1_000, "u-x")
    running = BanRecord(STREAM, BanKind.USER, "u-y", 9_000, "Grace", 1_000, "u-y")
    forever = BanRecord(STREAM, BanKind.NAME, "bob", None, "Grace", 1_000, BOB.id)
    for ban in (ended, running, forever):
        store.put_ban(ban)
    old_gift = GiftRecord("g-old", STREAM, ADA, "rose", 1, 10, 1_000, None, "ch_old")
    store.add_gift(old_gift)
    old_audit = AuditRecord(STREAM, 1_000, GRACE, "delete", old.id)
    store.add_audit(old_audit)
    store.put_settings(STREAM, RoomSettings(slow_mode=9))

    assert store.purge(3_000) == 4  # a message, a question, an event, an ended ban
    assert store.recent_messages(STREAM, 10) == [new]
    assert [q.id for q in store.open_questions(STREAM)] == ["q-new"]
    assert [e.id for e in store.timeline_between(STREAM, 0, 10**6)] == ["t-new"]
    assert store.active_bans(STREAM, 0) == [running, forever]
    assert store.gifts(STREAM, 10) == [old_gift] and store.top_supporters(STREAM, 1) == [
        (ADA, 10)]
    assert store.audit(STREAM, 10) == [old_audit]
    assert store.settings(STREAM) == RoomSettings(slow_mode=9)
    assert store.purge(3_000) == 0


# -- AsyncChatStore ----------------------------------------------------------------------


async def test_a_burst_of_writes_is_one_transaction(tmp_path: Path) -> None:
    store = await AsyncChatStore.open(tmp_path)
    statements: list[str] = []
    await store.run(lambda s: s.connection.set_trace_callback(statements.append))
    burst = [message(n) for n in range(5_000)]
    started = time.perf_counter()
    for record in burst:  # as a busy room writes them: one call per message
        store.write("add_messages", [record])
    queued = time.perf_counter()
    await store.flush()
    written = time.perf_counter()
    await store.run(lambda s: s.connection.set_trace_callback(None))
    assert statements.count("BEGIN IMMEDIATE") == 1 and statements.count("COMMIT") == 1
    assert await store.recent_messages(STREAM, 10_000) == burst
    assert store.failed == store.dropped == 0
    print(f"5,000 messages: queued in {(queued - started) * 1000:.1f} ms, written in "
          f"{(written - queued) * 1000:.1f} ms, one transaction")
    await store.close()


async def test_reads_follow_earlier_writes_and_close_writes_the_rest(tmp_path: Path) -> None:
    store = await AsyncChatStore.open(tmp_path)
    store.write("add_messages", [message(1), message(2)])
    store.write("mark_deleted", message(1).id, "Grace")
    # No flush: a read runs after every write queued before it.
    assert await store.recent_messages(STREAM, 10) == [message(2)]
    assert await store.run("mark_deleted", message(2).id, "Grace") is True  # answer wanted
    store.write(ChatStore.put_settings, STREAM, RoomSettings(slow_mode=5))
    store.write(lambda chat, record: chat.put_question(record), question(1))
    store.write("add_gift", gift(1, ADA, 30))
    store.write("add_audit", audit_record(1))
    store.write("put_ban", BanRecord(STREAM, BanKind.USER, BOB.id, None, "Grace", 1, BOB.id))
    store.write("add_timeline", timeline_event(1))
    assert store.pending == 6
    await store.close()  # writes what was queued, then closes
    assert store.write("add_messages", [message(3)]) is False and store.dropped == 1
    with pytest.raises(ChatStoreError, match="closed"):
        await store.recent_messages(STREAM, 10)
    await store.close()  # a second close is harmless

    again = await AsyncChatStore.open(tmp_path)
    assert await again.recent_messages(STREAM, 10) == []
    assert len(await again.user_messages(STREAM, ADA.id, 10)) == 2  # both deleted, kept
    assert await again.messages_between(STREAM, 0, 10**6) == []
    assert await again.settings(STREAM) == RoomSettings(slow_mode=5)
    assert await again.open_questions(STREAM) == [question(1)]
    assert await again.gifts(STREAM, 5) == [gift(1, ADA, 30)]
    assert await again.top_supporters(STREAM, 5) == [(ADA, 30)]
    assert await again.audit(STREAM, 5) == [audit_record(1)]
    assert [b.value for b in await again.active_bans(STREAM, 0)] == [BOB.id]
    assert await again.timeline_between(STREAM, 0, 10**6) == [timeline_event(1)]
    assert await again.purge(10**6) == 4  # two messages, the question, the pin
    await again.close()


async def test_hostile_text_through_the_worker(tmp_path: Path) -> None:
    store = await AsyncChatStore.open(tmp_path)
    records = [message(n, user=User(f"u-{n}", text, Role.VIEWER), text=text)
               for n, text in enumerate(HOSTILE)]
    for record in records:
        store.write("add_messages", [record])
    assert await store.recent_messages(STREAM, 100) == records
    await store.close()


async def test_a_failed_write_is_counted_and_logged_without_user_text(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="golive.chat")
    errors: list[str] = []
    store = await AsyncChatStore.open(tmp_path, on_error=errors.append)
    secret = "<img src=x onerror=alert(1)> my phone is 555-0100"
    store.write("add_messages", [message(1, text=secret)])
    store.write("add_messages", [message(1, text=secret + " again")])  # the same id: refused
    # A lone surrogate (JSON can carry "\ud800") has no UTF-8 form: refused alone.
    store.write("add_messages", [message(2, stream="other", text="lone \ud800 half")])
    store.write("add_gift", gift(1, ADA, 30))
    await store.flush()
    assert errors == ["add_messages", "add_messages"] and store.failed == 2
    assert await store.recent_messages(STREAM, 10) == [message(1, text=secret)]
    assert await store.gifts(STREAM, 10) == [gift(1, ADA, 30)]  # same batch, kept
    assert "add_messages failed for stream main (IntegrityError" in caplog.text
    assert "add_messages failed for stream other (UnicodeEncodeError)" in caplog.text
    assert "onerror" not in caplog.text and "555" not in caplog.text
    assert "\ud800" not in caplog.text and "half" not in caplog.text
    with pytest.raises(ValueError, match="no method 'add_mesages'"):
        store.write("add_mesages", [message(3)])  # a typo is a bug, not a disk failure
    await store.close()


async def test_writes_to_a_closed_database_are_counted_not_raised(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="golive.chat")
    errors: list[str] = []
    store = await AsyncChatStore.open(tmp_path, on_error=errors.append)
    await store.run(ChatStore.close)  # the connection goes away under the worker
    for n in range(3):
        store.write("add_messages", [message(n)])
    store.write("put_settings", "other", RoomSettings(slow_mode=1))
    await store.flush()  # does not raise
    assert errors == ["add_messages"] * 3 + ["put_settings"] and store.failed == 4
    assert "4 writes lost for stream main, other (ProgrammingError" in caplog.text
    await store.close()  # nor does closing it


async def test_a_read_only_database_counts_its_writes_and_recovers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # As root, file modes stop no write: SQLite's own query_only makes the file read-only.
    caplog.set_level(logging.ERROR, logger="golive.chat")
    errors: list[str] = []
    store = await AsyncChatStore.open(tmp_path, on_error=errors.append)
    await store.run(lambda s: s.connection.execute("PRAGMA query_only = ON"))
    store.write("put_settings", STREAM, RoomSettings(slow_mode=30))
    store.write("add_audit", audit_record(1, "slow_mode"))
    await store.flush()
    assert errors == ["put_settings", "add_audit"]
    assert "2 writes lost for stream main (OperationalError: attempt to write a readonly " \
        "database)" in caplog.text
    await store.run(lambda s: s.connection.execute("PRAGMA query_only = OFF"))
    store.write("put_settings", STREAM, RoomSettings(slow_mode=30))
    assert await store.settings(STREAM) == RoomSettings(slow_mode=30)
    assert store.failed == 2
    await store.close()


async def test_a_full_disk_counts_what_it_loses_and_recovers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="golive.chat")
    errors: list[str] = []
    store = await AsyncChatStore.open(tmp_path, on_error=errors.append)
    earlier = [message(n) for n in range(5)]
    store.write("add_messages", earlier)
    await store.flush()
    # SQLite's own size limit: the file cannot grow, as on a full disk. SQLite then rolls
    # the whole transaction back, so the batch is lost, the writes that fitted included.
    pages = await store.run(lambda s: s.connection.execute("PRAGMA page_count").fetchone()[0])
    await store.run(lambda s: s.connection.execute(f"PRAGMA max_page_count = {pages}"))
    for n in range(100, 300):
        store.write("add_messages", [message(n, text="x" * 500)])
    await store.flush()  # does not raise
    for n in range(300, 310):  # the next batch: lost too, counted but not logged again
        store.write("add_messages", [message(n, text="x" * 500)])
    await store.flush()
    assert await store.recent_messages(STREAM, 1_000) == earlier
    assert errors == ["add_messages"] * 210 and store.failed == 210
    lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
    assert len(lost) == 1
    assert lost[0].startswith("chat store: 200 writes lost for stream main (OperationalError: "
                              "database or disk is full)")
    await store.run(lambda s: s.connection.execute(f"PRAGMA max_page_count = {pages * 100}"))
    store.write("add_messages", [message(400)])
    assert (await store.recent_messages(STREAM, 1_000))[-1] == message(400)
    assert "writing again after 210 writes lost" in caplog.text
    await store.close()


async def test_a_stalled_disk_drops_writes_beyond_the_bound(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="golive.chat")
    drops: list[str] = []
    store = await AsyncChatStore.open(tmp_path, on_drop=drops.append, max_pending=100)
    stalled, release = threading.Event(), threading.Event()

    def stall(chat: ChatStore) -> None:
        stalled.set()
        release.wait(10)

    store.write(stall)  # the worker is held inside a write, as by a disk that stopped
    while not stalled.is_set():
        await asyncio.sleep(0.005)
    accepted = [store.write("add_messages", [message(n)]) for n in range(150)]
    assert accepted == [True] * 100 + [False] * 50
    assert store.pending == 100 and store.dropped == 50 and drops == ["add_messages"] * 50
    dropping = [r.getMessage() for r in caplog.records if "dropping" in r.getMessage()]
    assert dropping == ["chat store: dropping writes, 100 writes are waiting for the disk "
                        "(first: add_messages for stream main)"]  # once, not per write
    release.set()
    await store.flush()
    assert await store.recent_messages(STREAM, 1_000) == [message(n) for n in range(100)]
    assert store.write("add_messages", [message(200)]) is True
    assert "writing again after 50 dropped writes" in caplog.text
    assert store.failed == 0
    await store.close()


async def test_open_refuses_a_newer_file(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / FILE, isolation_level=None)
    db.execute(f"PRAGMA user_version = {schema_version() + 1}")
    db.close()
    with pytest.raises(ChatStoreError, match="newer golive"):
        await AsyncChatStore.open(tmp_path)


def test_identities_are_kept_by_the_hash_of_their_token(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    token_hash = hashlib.blake2b(b"resume-token", digest_size=16).digest()
    store.put_identity(token_hash, "u-0123456789abcdef", 1_000)
    store.put_identity(token_hash, "u-0123456789abcdef", 5_000)  # seen again
    store.close()
    store = ChatStore(tmp_path)
    assert store.identity(token_hash) == "u-0123456789abcdef"
    assert store.identity(b"another") is None
    assert b"resume-token" not in (tmp_path / FILE).read_bytes()
    store.purge(4_000)  # seen at 5,000: kept
    assert store.identity(token_hash) == "u-0123456789abcdef"
    store.purge(6_000)
    assert store.identity(token_hash) is None
    store.close()
