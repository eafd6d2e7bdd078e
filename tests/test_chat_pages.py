"""The chat's pages over HTTP, on a real server: the studio's sign-in (a wrong key, the right
one, the cookie's flags, the key kept out of URLs, redirects and logs, attempts limited,
signing out), the overlay and the replay pages, and what every page promises about scripts:
only files of this origin, no inline handlers, no HTML built from data."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import aiohttp
import pytest
from helpers import MakeServer, eventually, http_get, scrape
from publishers import RawPublisher, encode_clip

import golive.origin.player
from golive.chat.config import ChatConfig
from golive.origin import studio
from golive.origin.sessions import COOKIE
from golive.origin.studio import SIGN_IN_ATTEMPTS, SignInLimiter
from golive.packager.config import HlsConfig
from golive.transcode.config import TranscodeConfig

KEY = "studio-page-key-0123456789"
NAME = "cam"
STATIC = Path(golive.origin.player.__file__).parent / "static"


async def _post(port: int, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[aiohttp.ClientResponse, str]:
    """A POST that does not follow the redirect, so its Location and cookies can be read."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session, \
            session.post(f"http://127.0.0.1:{port}{path}", data=form or {}, headers=headers,
                         allow_redirects=False) as response:
        return response, await response.text()


async def _sign_in(port: int, key: str = KEY, headers: dict[str, str] | None = None
                   ) -> tuple[aiohttp.ClientResponse, str]:
    return await _post(port, f"/studio/{NAME}/login", {"key": key}, headers)


def _session_cookie(response: aiohttp.ClientResponse) -> str:
    [header] = [h for h in response.headers.getall("Set-Cookie", [])
                if h.startswith(f"{COOKIE}=")]
    return header


async def test_signing_in_to_the_studio_with_the_stream_key(
        make_server: MakeServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(enabled=False))
    port = server.http_port

    status, page = await http_get(port, f"/studio/{NAME}")
    assert status == 200
    assert f'<form class="signin panel" method="post" action="/studio/{NAME}/login">' in page
    assert 'type="password" name="key"' in page and 'id="studio"' not in page

    response, page = await _sign_in(port, "not-the-key-at-all")
    assert response.status == 403 and "That key does not match this stream" in page
    assert not response.headers.getall("Set-Cookie", [])
    response, page = await _sign_in(port, "")
    assert response.status == 403

    response, _ = await _sign_in(port)
    assert response.status == 303 and response.headers["Location"] == f"/studio/{NAME}"
    cookie = _session_cookie(response)
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert "secure" not in flags  # plain http: a Secure cookie would never come back
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(token) >= 40 and KEY not in token
    for name, value in response.headers.items():
        assert KEY not in value, name

    # Signed in: the studio itself, never cached, not to be framed.
    headers = {"Cookie": f"{COOKIE}={token}"}
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}/studio/{NAME}", headers=headers) as studio:
        page = await studio.text()
        assert studio.status == 200 and 'id="studio" data-stream="cam" data-chat="1"' in page
        assert studio.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in studio.headers["Content-Security-Policy"]
    assert '<script type="module" src="/static/studio.js"></script>' in page
    assert 'action="/studio/cam/logout"' in page
    # Another stream's studio is not signed in by this session.
    status, other = await http_get(port, "/studio/other", headers=headers)
    assert status == 200 and 'id="studio"' not in other and "Stream key" in other

    # The key never in a log line (at any level) nor in a metric.
    logged = "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records)
    assert "signed in to stream=cam" in logged and "wrong key" in logged
    assert KEY not in logged and token not in logged
    metrics = await scrape(server)
    assert KEY not in metrics.text and token not in metrics.text


async def test_the_key_in_a_url_signs_nobody_in(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(enabled=False))
    status, page = await http_get(server.http_port, f"/studio/{NAME}?key={KEY}")
    assert status == 200 and 'id="studio"' not in page and KEY not in page
    status, _ = await http_get(server.http_port, f"/studio/{NAME}/login?key={KEY}")
    assert status == 405  # signing in is a POST of the form, only


async def test_behind_a_tls_proxy_the_cookie_is_secure(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(enabled=False))
    response, _ = await _sign_in(server.http_port, headers={"X-Forwarded-Proto": "https"})
    assert response.status == 303
    assert "secure" in [p.strip().lower() for p in _session_cookie(response).split(";")]


async def test_sign_in_attempts_are_limited_per_address(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(enabled=False))
    for attempt in range(SIGN_IN_ATTEMPTS):
        response, _ = await _sign_in(server.http_port, f"guess-{attempt}")
        assert response.status == 403, attempt
    response, page = await _sign_in(server.http_port)  # even the right key, for a while
    assert response.status == 429 and "Too many attempts" in page
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert not response.headers.getall("Set-Cookie", [])


def test_the_limit_is_a_sliding_window_per_address(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = SignInLimiter(attempts=3, window=60.0)
    assert [limiter.allow("10.0.0.1", t) for t in (0.0, 10.0, 20.0)] == [0.0, 0.0, 0.0]
    assert limiter.allow("10.0.0.1", 30.0) == pytest.approx(30.0)  # the first one ages out at 60
    assert limiter.allow("10.0.0.2", 30.0) == 0.0  # another address has its own attempts
    assert limiter.allow("10.0.0.1", 60.5) == 0.0
    assert limiter.allow("10.0.0.1", 61.0) > 0
    # A flood from many addresses is forgotten, oldest first, rather than kept.
    monkeypatch.setattr(studio, "MAX_TRACKED_ADDRESSES", 100)
    for n in range(1000):
        limiter.allow(f"192.0.2.{n}", 100.0)
    assert len(limiter._tried) <= 100


async def test_another_site_cannot_post_the_forms(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(enabled=False))
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
        response, _ = await _sign_in(server.http_port, headers=headers)
        assert response.status == 403 and not response.headers.getall("Set-Cookie", [])
    response, _ = await _sign_in(server.http_port, headers={
        "Sec-Fetch-Site": "same-origin", "Origin": f"http://127.0.0.1:{server.http_port}"})
    assert response.status == 303


async def test_signing_out_ends_the_session(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(enabled=False))
    response, _ = await _sign_in(server.http_port)
    token = _session_cookie(response).split(";")[0].split("=", 1)[1]
    headers = {"Cookie": f"{COOKIE}={token}"}
    response, _ = await _post(server.http_port, f"/studio/{NAME}/logout", headers=headers)
    assert response.status == 303 and response.headers["Location"] == f"/studio/{NAME}"
    cleared = _session_cookie(response).lower()
    assert 'golive_studio=""' in cleared and "max-age=0" in cleared
    status, page = await http_get(server.http_port, f"/studio/{NAME}", headers=headers)
    assert status == 200 and 'id="studio"' not in page  # the old cookie is worth nothing


async def test_the_pages_refuse_names_that_are_not_stream_names(
        make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(enabled=False))
    for path in ("/studio/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "/overlay/%3Cimg%20src%3Dx%3E",
                 "/studio/..%2Fetc", "/recordings/%3Cb%3E/20260101T000000Z/"):
        status, page = await http_get(server.http_port, path)
        assert status == 404, path
        assert "<script>" not in page and "<img" not in page and "<b>" not in page
    response, _ = await _post(server.http_port, "/studio/%3Cscript%3E/login", {"key": KEY})
    assert response.status == 404


async def test_the_overlay_is_read_only_and_transparent(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(enabled=False))
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{server.http_port}/overlay/{NAME}") as response:
        page = await response.text()
        assert response.status == 200
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert 'id="overlay" data-stream="cam"' in page
    assert 'id="messages"' in page and 'id="alerts"' in page and 'id="answering"' in page
    assert not re.search(r"<(form|input|button|select|textarea)\b", page)  # no controls
    assert '<link rel="stylesheet" href="/static/overlay.css">' in page
    status, css = await http_get(server.http_port, "/static/overlay.css")
    assert status == 200 and "background: transparent" in css
    _, page = await http_get(server.http_port, f"/overlay/{NAME}?chat=0")
    assert 'id="messages"' not in page and 'id="alerts"' in page
    _, page = await http_get(server.http_port, f"/overlay/{NAME}?gifts=0&questions=0")
    assert 'id="alerts"' not in page and 'id="answering"' not in page and 'id="messages"' in page


async def test_the_watch_page_has_the_chat_beside_the_video(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(enabled=False))
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{server.http_port}/watch/{NAME}") as response:
        page = await response.text()
        policy = response.headers["Content-Security-Policy"]
    assert '<aside class="chat" id="chat" data-stream="cam"' in page
    assert 'id="join-form"' in page and 'id="send-form"' in page and 'id="reactions"' in page
    assert '<script type="module" src="/static/watch.js"></script>' in page
    assert "script-src 'self';" in policy and "media-src 'self' blob: data:" in policy
    assert f"ws://127.0.0.1:{server.http_port}" in policy


async def test_without_the_chat_the_watch_page_is_the_player_alone(
        make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(enabled=False),
                               chat=ChatConfig(enabled=False))
    _, page = await http_get(server.http_port, f"/watch/{NAME}")
    assert '<video id="video"' in page and 'id="chat"' not in page and "watch.js" not in page
    response, _ = await _sign_in(server.http_port)  # the studio still signs in: its health
    token = _session_cookie(response).split(";")[0].split("=", 1)[1]
    _, studio_page = await http_get(server.http_port, f"/studio/{NAME}",
                                    headers={"Cookie": f"{COOKIE}={token}"})
    assert 'data-stream="cam" data-chat="0"' in studio_page


async def test_scripts_are_files_of_this_origin_and_build_no_html(
        make_server: MakeServer) -> None:
    """The pages carry no inline script or event handler (the policy would refuse them), and
    the scripts never hand a string to the HTML parser."""
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(enabled=False))
    response, _ = await _sign_in(server.http_port)
    cookie = {"Cookie": f"{COOKIE}={_session_cookie(response).split(';')[0].split('=', 1)[1]}"}
    for path in (f"/watch/{NAME}", f"/studio/{NAME}", f"/overlay/{NAME}"):
        status, page = await http_get(server.http_port, path, headers=cookie)
        assert status == 200, path
        assert not re.search(r"\son[a-z]+\s*=", page), path
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", page), path
        assert "javascript:" not in page.lower(), path
    for script in sorted(STATIC.glob("*.js")):
        text = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                     "eval(", "new Function"):
            assert sink not in text, (script.name, sink)
        status, served = await http_get(server.http_port, f"/static/{script.name}")
        assert status == 200 and served == text
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{server.http_port}/static/chat.js") as response:
        assert response.headers["Content-Type"].startswith("text/javascript")
    for bad in ("/static/nothing.js", "/static/..%2Fplayer.py", "/static/studio.py"):
        assert (await http_get(server.http_port, bad))[0] == 404, bad


async def test_a_recording_replays_with_its_chat(make_server: MakeServer,
                                                 tmp_path: Path) -> None:
    server = await make_server(keys={KEY: NAME}, transcode=TranscodeConfig(enabled=False),
                               hls=HlsConfig(grace_period=0.2, record_dir=str(tmp_path)))
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(encode_clip(3.0, 320, 240).tags)
    await eventually(lambda: server.packager.get(NAME) is not None
                     and server.packager.get(NAME).source.segments, what="a segment")
    await publisher.close()
    await eventually(lambda: server.packager.get(NAME).ended, what="ENDLIST")

    _, ended = await http_get(server.http_port, f"/watch/{NAME}")
    link = re.search(r'<a href="(/recordings/cam/(\d{8}T\d{6}Z)/)">Watch the replay</a>', ended)
    assert link, ended
    assert f'<a href="{link.group(1)}index.m3u8">Its recording</a>' in ended
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{server.http_port}{link.group(1)}") as response:
        page = await response.text()
        assert response.status == 200
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert f'data-src="{link.group(1)}index.m3u8"' in page
    assert f'data-chat="{link.group(1)}chat.jsonl"' in page
    assert '<script type="module" src="/static/replay.js"></script>' in page

    # Its chat, when one was kept: served beside the playlist, one object a line.
    chat_path = f"{link.group(1)}chat.jsonl"
    assert (await http_get(server.http_port, chat_path))[0] == 404
    (tmp_path / NAME / link.group(2) / "chat.jsonl").write_text(
        '{"type": "message", "id": "m-1", "text": "hi", "pdt": null, "at": 1}\n')
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{server.http_port}{chat_path}") as response:
        assert response.status == 200 and response.content_type == "application/x-ndjson"
        assert (await response.text()).startswith('{"type": "message"')
    for bad in ("/recordings/cam/20260101T000000Z/", f"/recordings/cam/{link.group(2)}x/",
                "/recordings/cam/..%2F..%2F/chat.jsonl"):
        assert (await http_get(server.http_port, bad))[0] == 404, bad
