"""The chat's WebSocket edge: `GET /chat/<name>`. It only pumps frames: text in to the chat
service, the client's outbox out to the socket. Who a client is (its role) is decided here
from what it presents — a moderator's token, the admin token, the stream key, or the studio
session cookie sent with the upgrade — and never logged.

Each connection has one writer task that drains its outbox, joining what is queued into one
frame; a client that does not read fills its outbox and is dropped by the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Callable

from aiohttp import WSMsgType, web

from golive.chat import protocol
from golive.chat.metrics import ChatMetrics
from golive.chat.outbox import Outbox
from golive.chat.records import Role
from golive.chat.service import CLOSE_TOO_SLOW, ChatService
from golive.names import is_valid_stream_name
from golive.origin.client_address import ClientAddresses
from golive.origin.sessions import CHECK_KEY, COOKIE, SESSIONS

log = logging.getLogger("golive.chat")

CHAT = web.AppKey("chat", ChatService)
CLIENT_ADDRESSES = web.AppKey("client_addresses", ClientAddresses)
ADMIN_TOKEN = web.AppKey("admin_token", str)  # "" when none is configured
# May a room be opened under this name? (Known or live names; any valid name in open mode.)
ROOM_ALLOWED = web.AppKey("room_allowed", Callable[[str], bool])

JOIN_TIMEOUT = 10.0  # seconds a new connection has to send its join
HEARTBEAT = 25.0  # seconds between pings: dead peers (a phone that left) are noticed
WRITE_BUFFER_LIMIT = 256 * 1024  # bytes written but not yet taken by a client's socket
CLOSE_TIMEOUT = 2.0  # seconds the writer has to send what is left and close
DRAIN_POLL = 0.025  # seconds between looks at a full buffer (only slow clients wait)


async def chat_socket(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    chat = request.app[CHAT]
    if not is_valid_stream_name(name) or not request.app[ROOM_ALLOWED](name):
        raise web.HTTPNotFound(text="no such chat room\n")
    address = request.app[CLIENT_ADDRESSES].of(request.remote,
                                               request.headers.get("X-Forwarded-For"))
    ws = web.WebSocketResponse(max_msg_size=protocol.MAX_FRAME_BYTES, heartbeat=HEARTBEAT,
                               compress=False)
    await ws.prepare(request)
    if chat.connections_at(address) >= chat.config.connections_per_address:
        await _refuse(ws, chat.metrics, name, protocol.Refusal(
            "too_many_connections", "too many chat connections from your address"))
        return ws
    transport = request.transport
    outbox = chat.outbox(address, _write_now(ws, transport))
    writer = asyncio.create_task(_pump(ws, transport, outbox, chat.metrics),
                                 name=f"chat writer {name}")
    try:
        if await _join(request, ws, chat, outbox, name):
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    chat.receive(outbox, message.data)
                elif message.type is WSMsgType.BINARY:
                    chat.metrics.refusals.labels(name, "bad_request").inc()
                    outbox.put(protocol.encode(protocol.Refusal(
                        "bad_request", "frames are JSON text").to_wire()))
                elif message.type is WSMsgType.ERROR:  # aiohttp closes it (1009, 1002)
                    too_big = getattr(message.data, "code", None) == 1009  # WebSocketError
                    code = "too_big" if too_big else "protocol_error"
                    chat.metrics.refusals.labels(name, code).inc()
                    log.info("chat %s: closed a client (%s): %s", name, address,
                             message.data)
                    break
                if outbox.closing is not None:
                    break
    finally:
        chat.leave(outbox)
        if outbox.closing is None:
            outbox.close(1000, "")
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, TimeoutError):
            await asyncio.wait_for(writer, CLOSE_TIMEOUT)
        if not writer.done() or outbox.closing.code == CLOSE_TOO_SLOW:
            # A peer that does not read cannot take a closing handshake either.
            writer.cancel()
            if request.transport is not None:
                request.transport.abort()
        else:
            with contextlib.suppress(ConnectionError):
                await ws.close()
    return ws


async def _join(request: web.Request, ws: web.WebSocketResponse, chat: ChatService,
                outbox: Outbox, name: str) -> bool:
    try:
        first = await ws.receive(timeout=JOIN_TIMEOUT)
    except TimeoutError:
        outbox.put(protocol.encode(protocol.Refusal("not_joined", "no join was sent").to_wire()))
        outbox.close(1008, "no join")
        return False
    if first.type is not WSMsgType.TEXT:
        outbox.close(1000 if first.type in (WSMsgType.CLOSE, WSMsgType.CLOSING,
                                            WSMsgType.CLOSED) else 1008, "")
        return False
    try:
        event = protocol.parse(first.data)
        if not isinstance(event, protocol.Join):
            raise protocol.Refusal("not_joined", 'send {"type": "join", "name": ...} first')
        role, staff_name = _role(request, name, event)
    except protocol.Refusal as refusal:
        chat.metrics.refusals.labels(name, refusal.code).inc()
        outbox.put(protocol.encode(refusal.to_wire()))
        outbox.close(1008, refusal.code)
        return False
    return await chat.join(outbox, name, event, role, staff_name)


def _role(request: web.Request, stream: str, event: protocol.Join) -> tuple[Role, str | None]:
    """The role the client's token or studio session gives it, and the name a moderator's
    token fixes. A token that matches nothing is refused rather than ignored: its holder
    meant to be staff and should know it is not."""
    app = request.app
    if app[SESSIONS].stream_for(request.cookies.get(COOKIE), time.time()) == stream:
        return Role.CREATOR, None
    token = event.token
    if not token:
        return Role.VIEWER, None
    if app[CHECK_KEY](stream, token):
        return Role.CREATOR, None
    moderator = app[CHAT].moderator_for(token)
    if moderator is not None:
        return Role.MODERATOR, moderator
    admin = app[ADMIN_TOKEN]
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return Role.MODERATOR, event.name
    raise protocol.Refusal("forbidden", "that token is not valid here")


async def _refuse(ws: web.WebSocketResponse, metrics: ChatMetrics, stream: str,
                  refusal: protocol.Refusal) -> None:
    metrics.refusals.labels(stream, refusal.code).inc()
    with contextlib.suppress(ConnectionError):  # (it may be gone already)
        await ws.send_str(protocol.encode(refusal.to_wire()))
        await ws.close(code=1008, message=refusal.code.encode())


class _Frames:
    """The last frame text, framed: a room's flush offers one text to every client in turn,
    so it is encoded once for all of them."""

    text: str | None = None
    frame = b""

    @classmethod
    def of(cls, text: str) -> bytes:
        if text is not cls.text:
            cls.text, cls.frame = text, text_frame(text.encode())
        return cls.frame


def text_frame(payload: bytes) -> bytes:
    """A server's WebSocket text frame (RFC 6455 5.2: FIN, opcode 1, unmasked)."""
    length = len(payload)
    if length < 126:
        header = bytes((0x81, length))
    elif length < 1 << 16:
        header = bytes((0x81, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + length.to_bytes(8, "big")
    return header + payload


def _write_now(ws: web.WebSocketResponse, transport: asyncio.Transport | None
               ) -> Callable[[str], bool] | None:
    """The fast path of a connection's outbox: a frame written to the transport at once.

    Measured at 4,250 chatters x 50 messages/s (bench/chat.py, py-spy): waking a writer task
    per client per flush cost about 35% of the loop and aiohttp's send_str, which frames and
    encodes the same text again for every client, another 16%. Written here, the text is
    framed once per flush (`_Frames`). It is the same frame aiohttp would write (no
    compression is negotiated: `compress=False`), at a frame boundary of the same transport,
    and only while the writer task has nothing queued and the socket takes it."""
    if transport is None:
        return None

    def write_now(text: str) -> bool:
        if ws.closed or transport.is_closing() or \
                transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            return False
        transport.write(_Frames.of(text))
        return True
    return write_now


async def _pump(ws: web.WebSocketResponse, transport: asyncio.Transport | None,
                outbox: Outbox, metrics: ChatMetrics) -> None:
    """The connection's writer: whatever is queued, as one frame, until it closes.

    aiohttp writes an uncompressed frame into the transport at once and never waits for the
    peer, so a client that does not read would grow the transport's buffer without bound.
    The writer waits instead while that buffer is over `WRITE_BUFFER_LIMIT`: what is due
    meanwhile stays in the bounded outbox, which drops the client when it overflows."""
    try:
        while True:
            # (uvloop's transports are not asyncio.WriteTransport subclasses: no isinstance.)
            while (transport is not None and outbox.closing is None
                   and transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT):
                await asyncio.sleep(DRAIN_POLL)
            await outbox.ready.wait()
            outbox.ready.clear()
            taken = outbox.take()
            if taken is not None:
                text, since = taken
                await ws.send_str(text)
                metrics.frames.inc()
                if since is not None:
                    metrics.delivery.observe(time.monotonic() - since)
            if outbox.closing is not None and outbox.queued == 0:
                if outbox.closing.code == CLOSE_TOO_SLOW:
                    return  # (the handler aborts the connection)
                await ws.close(code=outbox.closing.code,
                               message=outbox.closing.reason.encode()[:120])
                return
    except (ConnectionError, RuntimeError) as exc:  # the peer went away mid-write
        log.debug("chat writer ended: %s", exc)
        outbox.close(1006, "gone")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/chat/{name}", chat_socket)
