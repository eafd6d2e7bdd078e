"""The chat beside a live stream: events stamped with the live frame's PROGRAM-DATE-TIME,
gifts charged through a webhook and placed in every rendition's playlist as EXT-X-DATERANGE,
the recording's chat.jsonl, and what the state directory keeps across a restart."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from helpers import eventually, http_get
from publishers import PyAvPublisher
from test_chat_socket import Client

from golive.chat.config import ChatConfig
from golive.packager.config import HlsConfig
from golive.transcode.config import TranscodeConfig

KEY = "creator-key-0123456789"
NAME = "cam"


async def _billing(charged: list[dict[str, Any]], answer: int = 200) -> web.AppRunner:
    """The operator's billing service, as a gift webhook sees it."""
    async def charge(request: web.Request) -> web.Response:
        charged.append(await request.json())
        return web.json_response({"reference": f"bill-{len(charged)}"}, status=answer)
    app = web.Application()
    app.router.add_post("/charge", charge)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def _connect(session: aiohttp.ClientSession, port: int, name: str,
                   token: str | None = None) -> Client:
    client = Client(await session.ws_connect(f"http://127.0.0.1:{port}/chat/{NAME}"))
    await client.send(type="join", name=name, **({"token": token} if token else {}))
    return client


def _pdt(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def test_gifts_and_markers_land_on_the_timeline_of_every_rendition(make_server, tmp_path):
    charged: list[dict[str, Any]] = []
    billing = await _billing(charged)
    webhook = f"http://127.0.0.1:{billing.addresses[0][1]}/charge"
    server = await make_server(
        keys={KEY: NAME}, hls=HlsConfig(record_dir=str(tmp_path / "rec")),
        transcode=TranscodeConfig(ladder=("180p@150k",)), state_dir=str(tmp_path / "state"),
        chat=ChatConfig(gift_webhook=webhook))
    publisher = await PyAvPublisher.start(
        f"rtmp://127.0.0.1:{server.ingest.rtmp_port}/live/{KEY}", tmp_path / "out.pickle",
        seconds=12, realtime=True, width=320, height=240)
    session = aiohttp.ClientSession()
    try:
        await eventually(lambda: server.packager.live_date(NAME) is not None, timeout=15,
                         what="the stream live")
        ada = await _connect(session, server.http_port, "Ada")
        assert (await ada.next("welcome"))["room"]["gifting"] is True
        creator = await _connect(session, server.http_port, "Host", token=KEY)
        await creator.next("welcome")
        await ada.send(type="message", text="hello")
        message = await ada.next("message")
        live = server.packager.live_date(NAME)
        assert live is not None and abs(_pdt(message["pdt"]) - live) < 2.0
        await ada.send(type="gift", gift="rose", count=3)
        gift = await creator.next("gift")
        assert (gift["count"], gift["coins"], gift["user"]["name"]) == (3, 3, "Ada")
        assert charged[0]["gift"] == "rose" and charged[0]["coins"] == 3
        supporters = await ada.next("supporters")
        assert supporters["top"][0]["coins"] == 3
        await creator.send(type="marker", label="Giveaway")
        await ada.next("marker")

        async def listed(rendition: str, needle: str) -> bool:
            _, text = await http_get(server.http_port, f"/live/{NAME}/{rendition}/index.m3u8")
            return needle in text

        for rendition in ("source", "180p"):
            for needle in ('CLASS="io.golive.gift"', 'X-GOLIVE-USER="Ada"',
                           'CLASS="io.golive.marker"'):
                assert await listed(rendition, needle) or await _eventually_listed(
                    listed, rendition, needle), f"{needle} not in {rendition}"
        recording = server.packager.recording_dir(NAME)
        assert recording is not None
        await eventually(lambda: (recording / "chat.jsonl").is_file(), timeout=5,
                         what="chat.jsonl")
    finally:
        publisher.kill()
        await session.close()
        await billing.cleanup()
    status, text = await http_get(server.admin_port, f"/api/admin/chat/{NAME}/gifts")
    assert status == 200
    assert [(g["gift"], g["count"], g["coins"], g["reference"])
            for g in json.loads(text)["gifts"]] == [("rose", 3, 3, "bill-1")]
    lines = [json.loads(line) for line in (recording / "chat.jsonl").read_text().splitlines()]
    kinds = [line["type"] for line in lines]
    assert {"message", "gift", "marker"} <= set(kinds)
    assert all(line["pdt"] for line in lines)


async def _eventually_listed(listed: Any, rendition: str, needle: str) -> bool:
    for _ in range(30):
        if await listed(rendition, needle):
            return True
        await asyncio.sleep(0.2)
    return False


async def test_a_refused_gift_is_not_broadcast(make_server, tmp_path):
    charged: list[dict[str, Any]] = []
    billing = await _billing(charged, answer=402)
    webhook = f"http://127.0.0.1:{billing.addresses[0][1]}/charge"
    server = await make_server(keys={KEY: NAME}, chat=ChatConfig(gift_webhook=webhook))
    async with aiohttp.ClientSession() as session:
        ada = await _connect(session, server.http_port, "Ada")
        await ada.next("welcome")
        await ada.send(type="gift", gift="rocket")
        error = await ada.next("error")
        assert error["code"] == "gift_refused" and "402" in error["message"]
        assert not any(o.get("type") == "gift" for o in ada.objects)
    await billing.cleanup()


async def test_history_and_bans_survive_a_restart(make_server, tmp_path):
    state = str(tmp_path / "state")
    server = await make_server(keys={KEY: NAME}, state_dir=state)
    async with aiohttp.ClientSession() as session:
        ada = await _connect(session, server.http_port, "Ada")
        ada_welcome = await ada.next("welcome")
        troll = await _connect(session, server.http_port, "Troll")
        troll_id = (await troll.next("welcome"))["user"]["id"]
        creator = await _connect(session, server.http_port, "Host", token=KEY)
        await creator.next("welcome")
        await ada.send(type="message", text="kept")
        await ada.next("message")
        await creator.send(type="slow_mode", seconds=30)
        await ada.next("slow_mode")
        await creator.send(type="ban", user=troll_id, address=False)
        await ada.next("banned")
    await server.close()
    again = await make_server(keys={KEY: NAME}, state_dir=state)
    async with aiohttp.ClientSession() as session:
        bob = await _connect(session, again.http_port, "Bob")
        welcome = await bob.next("welcome")
        assert [m["text"] for m in welcome["history"]] == ["kept"]
        assert welcome["room"]["slow_mode"] == 30
        troll = await _connect(session, again.http_port, "troll")  # the name is banned
        assert (await troll.next("error"))["code"] == "banned"
        # Ada's resume token names her after the restart too: the same user id.
        back = Client(await session.ws_connect(f"http://127.0.0.1:{again.http_port}/chat/{NAME}"))
        await back.send(type="join", name="Ada", resume=ada_welcome["resume"])
        assert (await back.next("welcome"))["user"]["id"] == ada_welcome["user"]["id"]
    # The operator reads the moderation log on the admin listener.
    status, text = await http_get(again.admin_port, f"/api/admin/chat/{NAME}/audit")
    assert status == 200
    audit = json.loads(text)["audit"]
    assert [(a["action"], a["actor"]["role"]) for a in audit] == [
        ("slow_mode", "creator"), ("ban", "creator")]
    assert audit[1]["target"] == troll_id
    assert (Path(state) / "chat.sqlite3").is_file()
