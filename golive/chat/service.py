"""The chat service: runs a `Room` per stream and does the I/O the rooms ask for.

It loads a room from the store when its first client joins, feeds it the clock and the
live frame's PROGRAM-DATE-TIME, routes what it returns (objects to clients' outboxes,
records to the store, timeline events to the packager, gift charges to the webhook,
lookups to the store), batches broadcasts, and ticks reactions and viewer counts. One task
does the batching and ticking for every room, every `batch_interval`: a broadcast is encoded
once, as one frame text shared by every receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from golive.chat import protocol
from golive.chat.config import ChatConfig
from golive.chat.gifts import GiftWebhook
from golive.chat.metrics import ChatMetrics
from golive.chat.outbox import DROPPED, WRITTEN, Outbox
from golive.chat.records import MessageRecord, Role, TimelineRecord
from golive.chat.room import (
    ALL,
    STAFF,
    Close,
    GiftCharge,
    Lookup,
    Outcome,
    Room,
    iso,
    message_wire,
)

log = logging.getLogger("golive.chat")

TICK_EVERY = 0.25  # seconds between room ticks (reactions, viewers)
PURGE_EVERY = 3600.0  # seconds between retention purges of the chat store
IDLE_ROOM = 600.0  # seconds a room without clients is kept before it is unloaded
MAX_IDENTITIES = 200_000  # resume tokens remembered (LRU)
CLOSE_TOO_SLOW = 1013
CLOSE_GOING_AWAY = 1001
# Objects a recording's chat.jsonl keeps: what its replay shows.
REPLAYED = frozenset({"message", "deleted", "gift", "marker", "pinned", "answering",
                      "timed_out", "banned", "slow_mode", "chat_enabled"})


class ChatStoreLike(Protocol):
    """What the service needs of the store (`store.AsyncChatStore`)."""

    def write(self, method: str, *args: Any) -> None: ...
    async def recent_messages(self, stream: str, limit: int) -> list[MessageRecord]: ...
    async def user_messages(self, stream: str, user_id: str, limit: int
                            ) -> list[MessageRecord]: ...
    async def active_bans(self, stream: str, now_ms: int) -> list[Any]: ...
    async def settings(self, stream: str) -> Any: ...
    async def open_questions(self, stream: str) -> list[Any]: ...
    async def top_supporters(self, stream: str, limit: int) -> list[Any]: ...
    async def identity(self, token_hash: bytes) -> str | None: ...


@dataclass(slots=True)
class _RoomRun:
    room: Room
    outboxes: dict[int, Outbox] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)  # encoded broadcasts not yet sent
    pending_since: float = 0.0  # monotonic time of the first one
    idle_since: float | None = None
    replay: list[str] = field(default_factory=list)  # lines for the recording's chat.jsonl


class ChatService:
    def __init__(self, config: ChatConfig, metrics: ChatMetrics, *,
                 store: ChatStoreLike | None = None,
                 live_date: Callable[[str], float | None] = lambda stream: None,
                 hls_viewers: Callable[[str], int] = lambda stream: 0,
                 on_timeline: Callable[[TimelineRecord], None] = lambda record: None,
                 recording_dir: Callable[[str], Path | None] = lambda stream: None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.metrics = metrics
        self.store = store
        self._live_date = live_date
        self._hls_viewers = hls_viewers
        self._on_timeline = on_timeline
        self._recording_dir = recording_dir
        self._clock = clock
        self._rooms: dict[str, _RoomRun] = {}
        self._loading: dict[str, asyncio.Future[_RoomRun]] = {}
        self._streams: dict[int, str] = {}  # conn -> its room
        self._identities: OrderedDict[str, str] = OrderedDict()  # resume token -> user id
        self._addresses: Counter[str] = Counter()  # open chat sockets per client address
        self._webhook = (GiftWebhook(config.gift_webhook, config.gift_webhook_timeout)
                         if config.gifting and config.gift_webhook else None)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._next_conn = 0
        self._closing = False

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="chat rooms")

    async def close(self) -> None:
        self._closing = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for run in self._rooms.values():
            self._flush(run)
            self._write_replay(run)
            for outbox in run.outboxes.values():
                outbox.put(protocol.encode({"type": "error", "code": "server_shutdown",
                                            "message": "the server is shutting down"}))
                outbox.close(CLOSE_GOING_AWAY, "server shutdown")
        for task in list(self._tasks):
            task.cancel()
        if self._webhook is not None:
            await self._webhook.close()

    # -- the edge's calls -------------------------------------------------------------------

    def outbox(self, address: str, write_now: Callable[[str], bool] | None = None) -> Outbox:
        """A new connection's outbox; `write_now` is the edge's fast path (see `Outbox`)."""
        self._next_conn += 1
        self._addresses[address] += 1
        return Outbox(self._next_conn, address, self.config.send_queue, write_now)

    def connections_at(self, address: str) -> int:
        """Chat sockets open from `address` (joined or not yet)."""
        return self._addresses.get(address, 0)

    def moderator_for(self, token: str) -> str | None:
        """The configured moderator whose token this is (compared in constant time)."""
        found = None
        for name, secret in self.config.moderators.items():
            if hmac.compare_digest(token.encode(), secret.encode()):
                found = name
        return found

    async def join(self, outbox: Outbox, stream: str, event: protocol.Join, role: Role,
                   name: str | None = None) -> bool:
        """Join `outbox`'s client to `stream`'s room as `role` (`name` overrides the one it
        asked for: a moderator's configured name). False: refused (the outbox says why)."""
        run = await self._room(stream)
        if name is not None:
            event = protocol.Join(name, event.token, event.resume, event.watch)
        user_id, resume = await self._identity(stream, event, role)
        # What was said until now is in the welcome's history: sent now, not again after it.
        # (No await from here on: nothing is said in between.)
        self._flush(run)
        now = self._clock()
        outcome = run.room.join(outbox.conn, outbox.address, event, role, user_id, now, resume)
        joined = outbox.conn in run.room.members
        if joined:
            run.outboxes[outbox.conn] = outbox
            run.idle_since = None
            self._streams[outbox.conn] = stream
            self.metrics.connections.labels(stream).set(len(run.outboxes))
        self._apply(run, outcome, direct=outbox)
        return joined

    def receive(self, outbox: Outbox, text: str) -> None:
        stream = self._streams.get(outbox.conn)
        run = self._rooms.get(stream) if stream is not None else None
        if run is None:
            return
        try:
            event = protocol.parse(text)
        except protocol.Refusal as refusal:
            self.metrics.received.labels(run.room.stream, "invalid").inc()
            outcome = Outcome()
            outcome.refuse(outbox.conn, refusal)
            self._apply(run, outcome)
            return
        self.metrics.received.labels(run.room.stream, protocol.wire_type(event)).inc()
        now = self._clock()
        self._apply(run, run.room.receive(outbox.conn, event, now, self._live_date(stream)))

    def leave(self, outbox: Outbox) -> None:
        """The connection is gone (the edge calls this once for every outbox it got)."""
        left = self._addresses[outbox.address] - 1
        if left > 0:
            self._addresses[outbox.address] = left
        else:
            del self._addresses[outbox.address]
        stream = self._streams.get(outbox.conn)
        run = self._rooms.get(stream) if stream is not None else None
        if run is not None:
            self._forget_conn(run, outbox.conn)

    def chatters(self, stream: str) -> int:
        run = self._rooms.get(stream)
        return len(run.outboxes) if run is not None else 0

    # -- rooms ------------------------------------------------------------------------------

    async def _room(self, stream: str) -> _RoomRun:
        run = self._rooms.get(stream)
        if run is not None:
            return run
        loading = self._loading.get(stream)
        if loading is None:  # the first joiner loads it; others wait for the same load
            loading = self._loading[stream] = asyncio.get_running_loop().create_future()
            try:
                run = _RoomRun(await self._load(stream))
                self._rooms[stream] = run
                self.metrics.rooms.set(len(self._rooms))
                loading.set_result(run)
            except BaseException as exc:
                loading.set_exception(exc)
                raise
            finally:
                del self._loading[stream]
        return await asyncio.shield(loading)

    async def _load(self, stream: str) -> Room:
        config = self.config
        if self.store is None:
            return Room(stream, config)
        store = self.store
        now_ms = round(self._clock() * 1000)
        history, bans, settings, questions, supporters = await asyncio.gather(
            store.recent_messages(stream, config.history), store.active_bans(stream, now_ms),
            store.settings(stream), store.open_questions(stream),
            store.top_supporters(stream, 10))
        return Room(stream, config, history=history, bans=bans, settings=settings,
                    questions=questions, supporters=supporters)

    async def _identity(self, stream: str, event: protocol.Join, role: Role
                        ) -> tuple[str, str | None]:
        """The user id to join as, and the resume token to give the client (viewers). A
        token is remembered here (recent ones) and in the store (by its hash: it is a
        credential), so it names the same user after a restart too."""
        if role is Role.CREATOR:
            return _stable_id(f"creator\0{stream}"), None
        if role is Role.MODERATOR:
            return _stable_id(f"moderator\0{event.name}"), None
        token = event.resume
        user_id = self._identities.get(token) if token else None
        if token and user_id is None and self.store is not None and len(token) <= 64:
            user_id = await self.store.identity(_token_hash(token))
        if token is None or user_id is None:
            token, user_id = secrets.token_urlsafe(18), f"u-{secrets.token_hex(8)}"
        self._identities[token] = user_id
        self._identities.move_to_end(token)
        while len(self._identities) > MAX_IDENTITIES:
            self._identities.popitem(last=False)
        if self.store is not None:  # (seen now: retention counts from the last visit)
            self.store.write("put_identity", _token_hash(token), user_id,
                             round(self._clock() * 1000))
        return user_id, token

    # -- routing what a room returns ----------------------------------------------------------

    def _apply(self, run: _RoomRun, outcome: Outcome, direct: Outbox | None = None) -> None:
        room = run.room
        stream = room.stream
        for send in outcome.sends:
            if send.to == ALL:
                text = protocol.encode(send.obj)
                if not run.pending:
                    run.pending_since = time.monotonic()
                run.pending.append(text)
                if send.obj["type"] in REPLAYED:  # every replayed line has its moment
                    run.replay.append(text if "pdt" in send.obj else protocol.encode(
                        {**send.obj, "at": round(self._clock() * 1000),
                         "pdt": iso(self._live_date(stream))}))
            elif send.to == STAFF:
                text = protocol.encode(send.obj)
                for conn, member in room.members.items():
                    if member.staff:
                        self._put(run, run.outboxes.get(conn), text)
            else:
                target = run.outboxes.get(send.to) if isinstance(send.to, int) else None
                if target is None and direct is not None and direct.conn == send.to:
                    target = direct  # a refused join: the client is not in the room
                if target is not None:
                    self._put(run, target, protocol.encode(send.obj))
        for code in outcome.refused:
            self.metrics.refusals.labels(stream, code).inc()
        for action in outcome.actions:
            self.metrics.moderation.labels(stream, action).inc()
        if outcome.messages:
            self.metrics.messages.labels(stream).inc(outcome.messages)
        for close in outcome.closes:
            self._close(run, close, direct)
        if self.store is not None:
            for method, args in outcome.writes:
                self.store.write(method, *args)
        for record in outcome.timeline:
            self.metrics.timeline.labels(stream, record.kind).inc()
            self._on_timeline(record)
            if self.store is not None:
                self.store.write("add_timeline", record)
        for charge in outcome.charges:
            self._spawn(self._charge(run, charge))
        for lookup in outcome.lookups:
            self._spawn(self._lookup(run, lookup))

    def _put(self, run: _RoomRun, outbox: Outbox | None, text: str, objects: int = 1,
             since: float | None = None) -> None:
        if outbox is None:
            return
        done = outbox.put(text, objects, since)
        if done == DROPPED:
            self._drop_slow(run, outbox)
            return
        self.metrics.sent.labels(run.room.stream).inc(objects)
        if done == WRITTEN:
            self.metrics.frames.inc()

    def _drop_slow(self, run: _RoomRun, outbox: Outbox) -> None:
        """It cannot keep up: dropped, so that it never holds the room back."""
        self.metrics.dropped.labels(run.room.stream).inc()
        log.info("chat %s: dropped a client (%s) that could not keep up with its send "
                 "queue", run.room.stream, outbox.address)
        outbox.close(CLOSE_TOO_SLOW, "too slow")
        self._forget_conn(run, outbox.conn)

    def _close(self, run: _RoomRun, close: Close, direct: Outbox | None) -> None:
        outbox = run.outboxes.get(close.conn)
        if outbox is None and direct is not None and direct.conn == close.conn:
            outbox = direct
        if outbox is not None:
            outbox.close(close.code, close.reason)
            # (A refused join is the client's own business; a ban or a flood is the operator's.)
            if close.reason in ("banned", "flooding"):
                log.info("chat %s: closed a client (%s): %s", run.room.stream,
                         outbox.address, close.reason)
        self._forget_conn(run, close.conn)

    def _forget_conn(self, run: _RoomRun, conn: int) -> None:
        run.room.leave(conn)
        if run.outboxes.pop(conn, None) is not None:
            self.metrics.connections.labels(run.room.stream).set(len(run.outboxes))
            if not run.outboxes:
                run.idle_since = time.monotonic()
        self._streams.pop(conn, None)

    def _flush(self, run: _RoomRun) -> None:
        """The room's broadcasts so far, as one frame text shared by every client."""
        if not run.pending:
            return
        pending, run.pending = run.pending, []
        text = pending[0] if len(pending) == 1 else "[" + ",".join(pending) + "]"
        objects, since = len(pending), run.pending_since
        written = 0
        slow = []
        for outbox in run.outboxes.values():  # (this loop runs for every chatter: keep it lean)
            done = outbox.put(text, objects, since)
            if done == WRITTEN:
                written += 1
            elif done == DROPPED:
                slow.append(outbox)
        # Counted once per flush, not per client.
        self.metrics.sent.labels(run.room.stream).inc(objects * (len(run.outboxes) - len(slow)))
        if written:
            self.metrics.frames.inc(written)
            self.metrics.delivery.observe(time.monotonic() - since)
        for outbox in slow:
            self._drop_slow(run, outbox)

    # -- the one task -----------------------------------------------------------------------

    async def _run(self) -> None:
        ticked = 0.0
        replayed = time.monotonic()
        purged = float("-inf")  # retention: at start, then every PURGE_EVERY
        while True:
            await asyncio.sleep(self.config.batch_interval)
            try:
                monotonic = time.monotonic()
                tick = monotonic - ticked >= TICK_EVERY
                now = self._clock()
                for stream, run in list(self._rooms.items()):
                    if tick:
                        self._apply(run, run.room.tick(now, self._hls_viewers(stream)))
                    self._flush(run)
                    if run.idle_since is not None and monotonic - run.idle_since > IDLE_ROOM:
                        self._write_replay(run)
                        del self._rooms[stream]
                        self.metrics.rooms.set(len(self._rooms))
                        self.metrics.forget(stream)
                if tick:
                    ticked = monotonic
                if self.store is not None and monotonic - purged >= PURGE_EVERY \
                        and self.config.retention_days:
                    purged = monotonic
                    before = round((now - self.config.retention_days * 86400) * 1000)
                    self.store.write("purge", before)
                if monotonic - replayed >= 1.0:
                    replayed = monotonic
                    for run in self._rooms.values():
                        self._write_replay(run)
            except Exception:  # one bad tick must not end the chat of every room
                log.exception("chat: a room tick failed")

    def _write_replay(self, run: _RoomRun) -> None:
        """Append the replayed objects to the current recording's chat.jsonl (a thread
        writes: the loop never waits for the disk)."""
        if not run.replay:
            return
        lines, run.replay = run.replay, []
        directory = self._recording_dir(run.room.stream)
        if directory is not None:
            self._spawn(asyncio.to_thread(_append_lines, directory / "chat.jsonl", lines))

    # -- gifts and lookups ------------------------------------------------------------------

    async def _charge(self, run: _RoomRun, charge: GiftCharge) -> None:
        assert self._webhook is not None
        charged = await self._webhook.charge(charge)
        stream = run.room.stream
        self.metrics.gifts.labels(stream, "accepted" if charged.accepted else "refused").inc()
        if charged.accepted:
            self.metrics.gift_coins.labels(stream).inc(charge.coins)
        self._apply(run, run.room.gift_settled(charge, charged.accepted, charged.reason,
                                               self._clock(), self._live_date(stream),
                                               charged.reference))

    async def _lookup(self, run: _RoomRun, lookup: Lookup) -> None:
        messages: list[MessageRecord] = []
        if self.store is not None:
            messages = await self.store.user_messages(run.room.stream, lookup.user.id, 50)
        else:
            messages = [m for m in run.room.history if m.user.id == lookup.user.id]
        wire = [{**message_wire(m), "deleted": m.deleted_by is not None} for m in messages]
        self._put(run, run.outboxes.get(lookup.conn), protocol.encode(
            {"type": "user_messages", "user": {"id": lookup.user.id, "name": lookup.user.name,
                                               "role": lookup.user.role.value},
             "messages": wire}))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("chat: a background job failed: %r", task.exception())


def _token_hash(token: str) -> bytes:
    return hashlib.blake2b(token.encode(errors="replace"), digest_size=16).digest()


def _stable_id(seed: str) -> str:
    return "u-" + hashlib.blake2b(seed.encode(), digest_size=8).hexdigest()


def _append_lines(path: Path, lines: list[str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # (before the recording's first file)
        with path.open("a", encoding="utf-8") as file:
            file.write("\n".join(lines) + "\n")
    except OSError as exc:
        log.warning("chat: could not write %s: %s", path, exc)

