"""The chat pages in a real browser: a viewer, the creator and OBS's overlay, each in their
own Chromium context, on a real golive server with a live stream.

`tests/browser/chat.mjs` (Node, playwright-core driving the system's Chromium) plays the
people: the creator signs in to the studio through its form with the real key; the viewer
joins the watch page's chat as "Ada", writes a greeting and `<img src=x onerror=alert(1)>`
(which every page must show as those characters, running nothing), reacts, asks a question
the creator answers, and sends 3 roses, charged by the operator's billing service (here a
small aiohttp app on a loopback port, the server's gift webhook) and shown as an alert on the
overlay; the creator deletes the HTML message and it disappears for the viewer.

A second test plays a recording's replay page, its chat.jsonl written beside the playlist as
the recorder keeps it, and checks each object is shown when the video's program date passes
its `pdt` (and a deleted message goes when its deletion's does).

Needs Node, `make player` (hls.js, playwright-core) and `make browser-deps` (Chromium); without them
the test skips and says which is missing. GOLIVE_SCREENSHOTS=DIR keeps the pages' looks.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from helpers import CHROMIUM, eventually, http_get, run_node
from publishers import PyAvPublisher, RawPublisher, encode_clip

from golive.chat.config import ChatConfig
from golive.config import Config
from golive.ingest.config import IngestConfig
from golive.origin.config import AdminConfig, HttpConfig
from golive.packager.config import HlsConfig
from golive.server import Server
from golive.transcode.config import TranscodeConfig

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "tests" / "browser" / "chat.mjs"
KEY = "k-" + secrets.token_hex(12)
NAME = "cam"
PAYLOAD = "<img src=x onerror=alert(1)>"


@pytest.fixture
async def billing() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """The operator's billing service: charges every gift (200) and keeps what it was
    asked, on a loopback port of its own."""
    charges: list[dict[str, Any]] = []

    async def charge(request: web.Request) -> web.Response:
        charges.append(await request.json())
        return web.json_response({"reference": f"bill-{len(charges)}"})

    app = web.Application()
    app.router.add_post("/charge", charge)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/charge", charges
    await runner.cleanup()


async def _scenario(port: int, *extra: str) -> dict[str, Any]:
    shots = os.environ.get("GOLIVE_SCREENSHOTS")
    result = await run_node(
        str(SCENARIO), "--chromium", str(CHROMIUM),
        "--base", f"http://127.0.0.1:{port}", "--stream", NAME, *extra,
        *(["--screenshots", shots] if shots else []),
        timeout=180, env={**os.environ, "GOLIVE_STUDIO_KEY": KEY})
    assert isinstance(result, dict)
    return result


async def test_viewer_creator_and_overlay_in_chromium(
        browser_tools: None, billing: tuple[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    webhook, charges = billing
    server = Server(Config(
        ingest=IngestConfig(host="127.0.0.1", port=0, keys={KEY: NAME}),
        http=HttpConfig(host="127.0.0.1", port=0), admin=AdminConfig(port=0),
        transcode=TranscodeConfig(enabled=False), chat=ChatConfig(gift_webhook=webhook)))
    await server.start()
    publisher = None
    try:
        publisher = await PyAvPublisher.start(
            f"rtmp://127.0.0.1:{server.ingest.rtmp_port}/live/{KEY}", tmp_path / "encoded",
            seconds=120, realtime=True, width=640, height=360, hold=True)
        result = await _scenario(server.http_port)
    finally:
        if publisher is not None:
            publisher.kill()
        await asyncio.wait_for(server.close(), 10)

    context = json.dumps({k: v for k, v in result.items() if k != "ok"}, indent=1)[-4000:]
    print("\nbrowser console:", *result["console"], sep="\n  ")
    assert result["ok"], context
    assert KEY not in result["studioUrl"] and result["studioUrl"].endswith(f"/studio/{NAME}")
    assert result["remembered"] == "Ada" and result["sameUser"], context
    # The HTML came through as its characters, on every page, and ran nothing.
    for page in ("viewerTexts", "studioTexts", "overlayTexts"):
        assert "Hello from Ada!" in result[page] and PAYLOAD in result[page], (page, context)
    assert result["viewerImages"] == 0 and result["studioImages"] == 0, context
    assert result["dialogs"] == [], context
    # Deleted by the creator: gone for the viewer (and the studio), the greeting still there.
    assert PAYLOAD not in result["viewerTextsAfter"], context
    assert "Hello from Ada!" in result["viewerTextsAfter"], context
    assert PAYLOAD not in result["studioTextsAfter"], context
    assert int(result["hearts"]) >= 5, context
    # The creator's look at one user's messages: the kept one, and the deleted one flagged
    # when it is there (a server without a chat store keeps only the kept ones).
    assert {"text": "Hello from Ada!", "deleted": False} in result["history"], context
    assert all(m["deleted"] for m in result["history"] if m["text"] == PAYLOAD), context
    # Banned: told once, not reconnecting, the messages gone from the viewer's own page.
    banned = result["banned"]
    assert banned["final"] == "banned" and not banned["connected"], context
    assert banned["sendHidden"], context
    assert "You are banned from this chat." in banned["notices"], context
    assert result["answering"] == "Which camera is that?", context  # the asker saw it too
    assert result["modeAfterAsking"] == "message", context
    # The gift: charged by the operator's service once, then shown on the overlay.
    assert result["alert"] == "Ada sent 3 Roses", context
    assert [(c["gift"], c["count"], c["coins"], c["user"]["name"], c["stream"])
            for c in charges] == [("rose", 3, 3, "Ada", NAME)], charges
    assert "Ada" in result["supporters"], context
    # On a narrow screen the chat is below the video, not beside it.
    assert result["narrow"]["chatTop"] >= result["narrow"]["videoBottom"] - 1, context
    # Nothing refused by the pages' Content-Security-Policy, no script error.
    refused = [line for line in result["console"]
               if "pageerror" in line or "Content Security Policy" in line]
    assert refused == [], context


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def test_a_recording_replays_its_chat_in_step(browser_tools: None, tmp_path: Path) -> None:
    record_dir = tmp_path / "recordings"
    server = Server(Config(
        ingest=IngestConfig(host="127.0.0.1", port=0, keys={KEY: NAME}),
        http=HttpConfig(host="127.0.0.1", port=0), admin=AdminConfig(port=0),
        transcode=TranscodeConfig(enabled=False),
        hls=HlsConfig(grace_period=0.2, record_dir=str(record_dir))))
    await server.start()
    try:
        publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
        assert (await publisher.publish()).code == "NetStream.Publish.Start"
        await publisher.send_tags(encode_clip(6.0, 320, 240).tags)
        await publisher.close()
        await eventually(lambda: server.packager.get(NAME) is not None
                         and server.packager.get(NAME).ended, timeout=15, what="ENDLIST")
        [started] = [p.name for p in (record_dir / NAME).iterdir()]
        base = f"/recordings/{NAME}/{started}/"
        _, playlist = await http_get(server.http_port, base + "index.m3u8")
        first = re.search(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)", playlist)
        assert first, playlist
        t0 = datetime.fromisoformat(first.group(1))

        def at(seconds: float) -> str:
            return _iso(t0 + timedelta(seconds=seconds))

        ada = {"id": "u-1", "name": "Ada", "role": "viewer"}
        second = {"type": "message", "id": "m-2", "user": ada, "text": "second one",
                  "at": 2, "pdt": at(2.5)}
        lines = [
            {"type": "message", "id": "m-1", "user": ada, "text": "first one", "at": 1,
             "pdt": at(0.5)},
            {"type": "marker", "label": "Intro", "at": 3, "pdt": at(1.0)},
            second,
            {"type": "pinned", "message": second, "at": 4, "pdt": at(3.0)},
            {"type": "deleted", "id": "m-1", "by": {"id": "u-c", "name": NAME,
                                                     "role": "creator"}, "at": 5,
             "pdt": at(4.0)},
        ]
        # The last line torn, as a recording cut by a crash would leave it.
        (record_dir / NAME / started / "chat.jsonl").write_text(
            "".join(json.dumps(line) + "\n" for line in lines) + '{"type": "mess')
        result = await _scenario(server.http_port, "--replay", base, "--seconds", "8")
    finally:
        await asyncio.wait_for(server.close(), 10)

    context = json.dumps({k: v for k, v in result.items() if k != "ok"}, indent=1)[-4000:]
    assert result["ok"], context
    assert result["chapters"] == ["Intro"], context
    # Every sample clear of an event's moment (by more than the page's 250 ms tick and the
    # sampling's own) shows exactly what the chat held at that program date.
    judged = 0
    for sample in result["samples"]:
        if sample["playingDate"] is None:
            continue
        now = (datetime.fromisoformat(sample["playingDate"]) - t0).total_seconds()
        if any(abs(now - moment) < 0.6 for moment in (0.5, 2.5, 3.0, 4.0)):
            continue
        judged += 1
        shown = " | ".join(sample["texts"])
        assert ("first one" in shown) == (0.5 < now < 4.0), (now, sample)
        assert ("second one" in shown) == (now > 2.5), (now, sample)
        assert (sample["pinned"] == "second one") == (now > 3.0), (now, sample)
        assert ("Intro" in shown) == (now > 1.0), (now, sample)
    assert judged >= 8, context
    # It played through the moments, not stuck at the start.
    assert max(s["currentTime"] for s in result["samples"]) > 4.5, context
    assert not [line for line in result["console"] if "pageerror" in line
                or "Content Security Policy" in line], context
