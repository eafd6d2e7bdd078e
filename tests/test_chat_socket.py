"""The chat over real WebSockets: a golive server in the test's loop, aiohttp clients."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

import aiohttp
import pytest
from helpers import eventually, http_get, scrape

from golive.chat.config import ChatConfig

KEY = "creator-key-0123456789"
NAME = "main"


class Client:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.objects: list[dict[str, Any]] = []

    async def send(self, **obj: Any) -> None:
        await self.ws.send_str(json.dumps(obj))

    async def next(self, kind: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The next object of `kind` (matching `match`), reading frames as needed."""
        async def read() -> dict[str, Any]:
            while True:
                for index, obj in enumerate(self.objects):
                    if obj.get("type") == kind and all(obj.get(k) == v for k, v in match.items()):
                        del self.objects[: index + 1]
                        return obj
                message = await self.ws.receive()
                if message.type is not aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"socket ended ({message.type}) waiting for {kind}: "
                                          f"{self.objects}")
                data = json.loads(message.data)
                self.objects.extend(data if isinstance(data, list) else [data])
        return await asyncio.wait_for(read(), timeout)


@pytest.fixture
async def chat_server(make_server):
    async def make(**chat: Any):
        server = await make_server(keys={KEY: NAME}, chat=ChatConfig(**chat))
        session = aiohttp.ClientSession()

        async def connect(name: str | None = "Ada", token: str | None = None,
                          headers: dict[str, str] | None = None, **join: Any) -> Client:
            ws = await session.ws_connect(f"http://127.0.0.1:{server.http_port}/chat/{NAME}",
                                          headers=headers)
            client = Client(ws)
            if name is not None:
                await client.send(type="join", name=name,
                                  **({"token": token} if token else {}), **join)
            return client
        make.sessions.append(session)
        return server, connect
    make.sessions = []
    yield make
    for session in make.sessions:
        await session.close()


async def test_a_message_reaches_everyone_and_the_creator_deletes_it(chat_server):
    server, connect = await chat_server()
    ada = await connect("Ada")
    welcome = await ada.next("welcome")
    assert welcome["user"]["role"] == "viewer" and welcome["user"]["name"] == "Ada"
    assert welcome["resume"] and welcome["history"] == []
    creator = await connect("Host Person", token=KEY)
    assert (await creator.next("welcome"))["user"]["role"] == "creator"
    await ada.send(type="message", text="<img src=x onerror=alert(1)>")
    mine = await ada.next("message")
    theirs = await creator.next("message")
    assert mine == theirs and mine["text"] == "<img src=x onerror=alert(1)>"
    assert mine["pdt"] is None  # the stream is not live
    await creator.send(type="delete", id=mine["id"])
    assert (await ada.next("deleted"))["id"] == mine["id"]
    later = await connect("Bob")
    assert (await later.next("welcome"))["history"] == []  # deleted messages are not history
    metrics = await scrape(server)
    assert metrics.get("golive_chat_messages_total", stream=NAME) == 1
    assert metrics.get("golive_chat_moderation_actions_total", stream=NAME,
                       action="delete") == 1
    assert KEY not in (await scrape(server)).text


async def test_a_banned_viewer_is_closed_and_cannot_come_back(chat_server, caplog):
    caplog.set_level(logging.INFO)
    _, connect = await chat_server()
    ada = await connect("Ada")
    ada_id = (await ada.next("welcome"))["user"]["id"]
    creator = await connect("Host", token=KEY)
    await creator.next("welcome")
    await creator.send(type="ban", user=ada_id)
    assert (await ada.next("error"))["code"] == "banned"
    message = await ada.ws.receive()
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ada.ws.close_code == 1008
    again = await connect("ada")  # same address, same name folded: refused
    assert (await again.next("error"))["code"] == "banned"
    assert "chat main: closed a client (127.0.0.1): banned" in caplog.text


async def test_refusals_have_stable_codes(chat_server):
    _, connect = await chat_server(max_message_length=10, words=("spam",))
    ada = await connect("Ada")
    await ada.next("welcome")
    for text, code in (("x" * 11, "too_long"), ("   ", "empty"), ("SPAM now", "filtered")):
        await ada.send(type="message", text=text)
        assert (await ada.next("error"))["code"] == code
    await ada.send(type="nonsense")
    assert (await ada.next("error"))["code"] == "bad_request"
    await ada.ws.send_str("not json")
    assert (await ada.next("error"))["code"] == "bad_request"
    await ada.send(type="ban", user="u-123456")
    assert (await ada.next("error"))["code"] == "forbidden"
    bad = await connect("moderator")
    assert (await bad.next("error"))["code"] == "name_reserved"
    wrong = await connect("Eve", token="not-a-valid-token-at-all")
    assert (await wrong.next("error"))["code"] == "forbidden"


async def test_a_huge_frame_closes_only_that_client(chat_server):
    server, connect = await chat_server()
    ada = await connect("Ada")
    await ada.next("welcome")
    bob = await connect("Bob")
    await bob.next("welcome")
    await ada.ws.send_str(json.dumps({"type": "message", "text": "x" * 10_000}))
    message = await ada.ws.receive()
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ada.ws.close_code == 1009
    await bob.send(type="message", text="still here")
    assert (await bob.next("message"))["text"] == "still here"
    assert (await scrape(server)).get("golive_chat_refusals_total", stream=NAME,
                                      code="too_big") == 1


async def test_a_client_that_does_not_read_is_dropped_and_the_room_goes_on(chat_server):
    server, connect = await chat_server(send_queue=200, max_message_length=3900,
                                        user_messages=1000, address_messages=100_000,
                                        connections_per_address=100)
    # The slow client is a raw socket with a tiny receive buffer (set before it connects, so
    # that TCP never offers a large window) that never reads after its join: the server's
    # socket buffers fill, then its outbox, and then it is dropped. The senders are raw
    # sockets too (they do not read either, and may be dropped the same way).
    slow = await _raw_client(server.http_port, "Slow")
    reader = await connect("Reader")
    await reader.next("welcome")
    received: list[str] = []

    async def read() -> None:
        while True:
            received.append((await reader.next("message", timeout=10))["text"])

    reading = asyncio.create_task(read())
    senders = [await _raw_client(server.http_port, f"Sender {n}") for n in range(40)]
    for round_ in range(60):
        for n, sender in enumerate(senders):
            sender.write(_masked_frame(json.dumps(
                {"type": "message", "text": f"{n}.{round_} " + "y" * 3800}).encode()))
        await asyncio.sleep(0.005)

    async def dropped() -> float:
        return (await scrape(server)).count("golive_chat_dropped_clients_total", stream=NAME)

    async def accepted() -> float:
        return (await scrape(server)).count("golive_chat_messages_total", stream=NAME)

    for _ in range(200):
        if await dropped() >= 1 and len(received) == await accepted():
            break
        await asyncio.sleep(0.05)
    reading.cancel()
    for writer in (slow, *senders):
        writer.close()
    assert await dropped() >= 1
    # The client that kept up lost nothing, and got each sender's messages in order.
    assert len(received) == await accepted() > 1000
    for n in range(40):
        rounds = [int(t.split(" ")[0].split(".")[1]) for t in received
                  if t.startswith(f"{n}.")]
        assert rounds == sorted(rounds)


async def _raw_client(port: int, name: str) -> asyncio.StreamWriter:
    """A WebSocket client that joins and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    _, writer = await asyncio.open_connection(sock=sock)
    writer.write(f"GET /chat/{NAME} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode()
                 + _masked_frame(json.dumps({"type": "join", "name": name}).encode()))
    return writer


def _masked_frame(payload: bytes) -> bytes:
    """One client text frame (RFC 6455: FIN, opcode 1, masked)."""
    mask = b"\x01\x02\x03\x04"
    length = len(payload)
    header = bytes([0x81, 0x80 | length]) if length < 126 else (
        bytes([0x81, 0x80 | 126]) + length.to_bytes(2, "big"))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_moderator_tokens_and_trusted_proxies(chat_server, caplog):
    caplog.set_level(logging.DEBUG)
    token = "moderator-token-0123456789"
    server, connect = await chat_server(moderators={"Grace": token},
                                        trusted_proxies=("127.0.0.1",))
    mod = await connect("whatever", token=token)
    welcome = await mod.next("welcome")
    assert welcome["user"] == {**welcome["user"], "role": "moderator", "name": "Grace"}
    assert "questions" in welcome["room"] and "filter" in welcome["room"]
    ada = await connect("Ada", headers={"X-Forwarded-For": "203.0.113.7"})
    ada_id = (await ada.next("welcome"))["user"]["id"]
    await mod.send(type="ban", user=ada_id)
    await ada.next("error", code="banned")
    # Another name from that forwarded address is refused; from another address it is not.
    again = await connect("Other", headers={"X-Forwarded-For": "203.0.113.7"})
    assert (await again.next("error"))["code"] == "banned"
    elsewhere = await connect("Other", headers={"X-Forwarded-For": "203.0.113.8"})
    assert (await elsewhere.next("welcome"))["user"]["name"] == "Other"
    assert token not in caplog.text and token not in (await scrape(server)).text


async def test_watch_only_join_reads_but_cannot_write(chat_server):
    _, connect = await chat_server()
    overlay = await connect(None)
    await overlay.send(type="join", watch=True)
    assert (await overlay.next("welcome"))["user"] is None
    ada = await connect("Ada")
    await ada.next("welcome")
    await ada.send(type="message", text="hi")
    assert (await overlay.next("message"))["text"] == "hi"
    await overlay.send(type="message", text="no")
    assert (await overlay.next("error"))["code"] == "forbidden"


async def test_an_unknown_room_is_404(chat_server):
    server, _ = await chat_server()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as error:
            await session.ws_connect(f"http://127.0.0.1:{server.http_port}/chat/nobody")
    assert error.value.status == 404
    # Without a state directory the chat keeps no log: the admin API says so.
    status, text = await http_get(server.admin_port, f"/api/admin/chat/{NAME}/audit")
    assert status == 409 and "without a state directory" in json.loads(text)["error"]


async def test_reactions_are_counted_not_echoed(chat_server):
    _, connect = await chat_server()
    ada = await connect("Ada")
    await ada.next("welcome")
    for _ in range(10):
        await ada.send(type="react", kind="heart", count=3)
    reactions = await ada.next("reactions")
    totals = reactions["totals"]
    assert totals["heart"] <= 30
    await eventually(lambda: True)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_the_fast_path_frames_text_as_rfc_6455_says(size: int) -> None:
    from golive.origin.chat_socket import text_frame

    frame = text_frame(b"x" * size)
    assert frame[0] == 0x81 and frame[1] & 0x80 == 0  # FIN + text; a server never masks
    length, offset = frame[1] & 0x7F, 2
    if length == 126:
        length, offset = int.from_bytes(frame[2:4], "big"), 4
    elif length == 127:
        length, offset = int.from_bytes(frame[2:10], "big"), 10
    assert length == size and frame[offset:] == b"x" * size
    assert (size < 126) == (offset == 2) and (126 <= size < 65536) == (offset == 4)


async def test_connections_per_address_are_limited_and_freed(chat_server):
    _, connect = await chat_server(connections_per_address=2)
    first, second = await connect("One"), await connect("Two")
    await first.next("welcome")
    await second.next("welcome")
    third = await connect("Three")
    assert (await third.next("error"))["code"] == "too_many_connections"
    await first.ws.close()
    for _ in range(50):  # the server notices the close
        fourth = await connect("Four")
        reply = None
        try:
            reply = await fourth.next("welcome", timeout=1)
            break
        except ConnectionError:
            await asyncio.sleep(0.05)
    assert reply is not None and reply["user"]["name"] == "Four"
