"""The creator's pages: the studio (sign-in with the stream key, then chat moderation, questions,
gifts, markers and stream health), the OBS overlay, and a recording's replay with its chat.

The stream key is typed into the studio's sign-in form once, POSTed in the body, compared in
constant time by `check_key` (ingest's key table, passed in by the composition) and forgotten:
it is never in a URL, a redirect, a log line or a metric. What the browser keeps is a random
session token (`sessions.StudioSessions`) in an HttpOnly, SameSite=Strict cookie; the chat
socket reads the same cookie on its upgrade to give the studio's connection the creator's role.
Sign-in attempts are limited per client address, so keys cannot be guessed at network speed.

The pages are HTML shells with their data in data-* attributes; their scripts are files of
`static/` (served by player.py), allowed by a Content-Security-Policy that runs nothing else.
"""

from __future__ import annotations

import html
import logging
import time
from collections import deque
from urllib.parse import urlsplit

from aiohttp import web

from golive.names import is_valid_stream_name
from golive.origin.chat_socket import CHAT, CLIENT_ADDRESSES
from golive.origin.hls import PACKAGER
from golive.origin.player import NO_CACHE, page, page_policy
from golive.origin.sessions import CHECK_KEY, COOKIE, SESSIONS

log = logging.getLogger("golive.origin.studio")

SIGN_IN_ATTEMPTS = 10  # per address and window: a person mistyping is far below this
SIGN_IN_WINDOW = 60.0  # seconds
MAX_TRACKED_ADDRESSES = 10_000  # a flood from many addresses cannot grow memory without bound
MAX_KEY_LENGTH = 1024  # a longer "key" is no key, and is not compared


class SignInLimiter:
    """At most `attempts` sign-ins per address in any `window` seconds (a sliding window).
    Pure: the clock is passed in."""

    def __init__(self, attempts: int = SIGN_IN_ATTEMPTS, window: float = SIGN_IN_WINDOW) -> None:
        self.attempts = attempts
        self.window = window
        self._tried: dict[str, deque[float]] = {}

    def allow(self, address: str, now: float) -> float:
        """0 when this attempt may go ahead (it is counted); else the seconds to wait."""
        tried = self._tried.get(address)
        if tried is None:
            if len(self._tried) >= MAX_TRACKED_ADDRESSES:
                self._forget(now)
                if len(self._tried) >= MAX_TRACKED_ADDRESSES:  # the oldest goes first
                    del self._tried[next(iter(self._tried))]
            tried = self._tried[address] = deque()
        while tried and tried[0] <= now - self.window:
            tried.popleft()
        if len(tried) >= self.attempts:
            return tried[0] + self.window - now
        tried.append(now)
        return 0.0

    def _forget(self, now: float) -> None:
        for address in [a for a, t in self._tried.items() if not t or t[-1] <= now - self.window]:
            del self._tried[address]


LIMITER = web.AppKey("studio_sign_in_limiter", SignInLimiter)


def _stream(request: web.Request) -> str:
    name = request.match_info["name"]
    if not is_valid_stream_name(name):
        raise web.HTTPNotFound(text="no such stream\n", headers=NO_CACHE)
    return name


def _client_address(request: web.Request) -> str:
    """The address attempts are counted for: behind the operator's trusted proxies, the one
    they forward (the chat's rule), else the peer's."""
    addresses = request.app.get(CLIENT_ADDRESSES)
    if addresses is None:  # no chat: no proxies configured either
        return request.remote or ""
    return addresses.of(request.remote, request.headers.get("X-Forwarded-For"))


def _signed_in(request: web.Request, name: str) -> bool:
    token = request.cookies.get(COOKIE)
    return request.app[SESSIONS].stream_for(token, time.time()) == name


def _same_site(request: web.Request) -> bool:
    """No other site's page may post the forms. Browsers say where a request comes from in
    Sec-Fetch-Site (a proxy in front leaves it alone, whatever Host it sends on); older ones
    only in Origin, compared with the Host. Tools like curl send neither."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


def _over_https(request: web.Request) -> bool:
    """Whether the browser's request came over https: to golive, or to a TLS proxy in front
    that says so. The proxy's word is taken from anyone, because it can only add Secure to
    the cookie (a client lying about it loses its own session), never take it away."""
    if request.secure:
        return True
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    forwarded = request.headers.get("Forwarded", "").lower()
    return proto == "https" or "proto=https" in forwarded


def _html(text: str, *, status: int = 200, framed: bool = False,
          request: web.Request) -> web.Response:
    # no-store: a signed-in studio page must not be kept by a shared cache or the back button.
    return web.Response(text=text, status=status, content_type="text/html",
                        headers={"Cache-Control": "no-store",
                                 "Content-Security-Policy": page_policy(request, framed=framed),
                                 "Referrer-Policy": "same-origin"})


def _sign_in_page(request: web.Request, name: str, problem: str = "", status: int = 200
                  ) -> web.Response:
    safe = html.escape(name)
    error = f'<p class="error" id="sign-in-error" role="alert">{html.escape(problem)}</p>' \
        if problem else ""
    body = f"""<header><h1>Studio · {safe}</h1><nav><a href="/watch/{safe}">watch page</a>
</nav></header>
<form class="signin panel" method="post" action="/studio/{safe}/login">
<p>Sign in with the stream key of <code>{safe}</code>, the one your encoder (OBS) publishes
with. It is sent once, in this form; the studio then keeps a session cookie instead.</p>
{error}<label>Stream key <input type="password" name="key" required autocomplete="off"
autofocus spellcheck="false"></label>
<button class="primary">Sign in</button></form>"""
    return _html(page(f"studio · {name}", body, stylesheets=("chat.css",)), status=status,
                 request=request)


async def studio(request: web.Request) -> web.Response:
    name = _stream(request)
    if not _signed_in(request, name):
        return _sign_in_page(request, name)
    safe = html.escape(name)
    body = STUDIO_BODY.format(stream=safe, chat=int(CHAT in request.app))
    return _html(page(f"studio · {name}", body, body_class="wide", stylesheets=("chat.css",)),
                 request=request)


async def login(request: web.Request) -> web.Response:
    name = _stream(request)
    address = _client_address(request)
    if not _same_site(request):
        log.info("studio %s: refused a sign-in to stream=%s posted from another site (%s)",
                 address, name, request.headers.get("Origin"))
        raise web.HTTPForbidden(text="sign in from the studio page itself\n", headers=NO_CACHE)
    wait = request.app[LIMITER].allow(address, time.monotonic())
    if wait:
        log.info("studio %s: too many sign-in attempts for stream=%s; refused for %.0f s",
                 address, name, wait)
        response = _sign_in_page(request, name, "Too many attempts from your address: wait a "
                                 f"minute ({int(wait) + 1} s) and try again.", status=429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    check_key = request.app[CHECK_KEY]
    form = await request.post()
    key = form.get("key")
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH \
            or not check_key(name, key):
        log.info("studio %s: a sign-in to stream=%s with a wrong key", address, name)
        return _sign_in_page(request, name, "That key does not match this stream", status=403)
    sessions = request.app[SESSIONS]
    sessions.end(request.cookies.get(COOKIE))  # one session per browser
    token = sessions.create(name, time.time())
    log.info("studio %s: signed in to stream=%s", address, name)
    response = web.HTTPSeeOther(f"/studio/{name}", headers=NO_CACHE)
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                        secure=_over_https(request), max_age=int(sessions.lifetime))
    raise response


async def logout(request: web.Request) -> web.Response:
    name = _stream(request)
    if not _same_site(request):
        raise web.HTTPForbidden(text="sign out from the studio page itself\n", headers=NO_CACHE)
    request.app[SESSIONS].end(request.cookies.get(COOKIE))
    log.info("studio %s: signed out of stream=%s", _client_address(request), name)
    response = web.HTTPSeeOther(f"/studio/{name}", headers=NO_CACHE)
    response.del_cookie(COOKIE, path="/", secure=_over_https(request), httponly=True,
                        samesite="Strict")
    raise response


async def overlay(request: web.Request) -> web.Response:
    """A transparent page for OBS's browser source: chat, gift alerts, the question being
    answered. Read-only and without secrets, so its URL may be shared with anyone."""
    name = _stream(request)
    shown = {part: request.query.get(part, "1") != "0" for part in ("chat", "gifts", "questions")}
    parts = []
    if shown["questions"]:
        parts.append('<div class="answering" id="answering" hidden><span class="label">'
                     'Answering now</span><div class="body"></div></div>')
    if shown["chat"]:
        parts.append('<ol class="messages" id="messages"></ol>')
    if shown["gifts"]:
        parts.append('<div class="alerts" id="alerts" aria-live="polite"></div>')
    body = (f'<main class="overlay" id="overlay" data-stream="{html.escape(name)}">'
            + "".join(parts) + '</main>\n<script type="module" src="/static/overlay.js">'
            "</script>")
    text = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>{html.escape(name)} overlay</title>
<link rel="stylesheet" href="/static/overlay.css"></head><body>
{body}
</body></html>
"""
    return web.Response(text=text, content_type="text/html", headers={
        **NO_CACHE, "Content-Security-Policy": page_policy(request)})


async def replay(request: web.Request) -> web.Response:
    """A recording played with its chat: chat.jsonl beside the playlist, shown in step with
    the video's program date."""
    name = _stream(request)
    started = request.match_info["started"]
    if request.app[PACKAGER].recording_file(name, started, "index.m3u8") is None:
        raise web.HTTPNotFound(text="no such recording\n", headers=NO_CACHE)
    safe, when = html.escape(name), html.escape(started)
    base = f"/recordings/{safe}/{when}/"
    recorded = f"{started[:4]}-{started[4:6]}-{started[6:8]} {started[9:11]}:{started[11:13]} UTC"
    body = REPLAY_BODY.format(stream=safe, base=base, recorded=html.escape(recorded))
    return web.Response(text=page(f"{name} · replay", body, body_class="wide",
                                  stylesheets=("chat.css",)),
                        content_type="text/html",
                        headers={**NO_CACHE, "Content-Security-Policy": page_policy(request)})


def add_routes(app: web.Application) -> None:
    """The studio, overlay and replay pages. The composition gives the app SESSIONS (the
    chat socket reads the same ones for the creator's role) and CHECK_KEY."""
    app[LIMITER] = SignInLimiter()
    app.router.add_get("/studio/{name}", studio)
    app.router.add_post("/studio/{name}/login", login)
    app.router.add_post("/studio/{name}/logout", logout)
    app.router.add_get("/overlay/{name}", overlay)
    app.router.add_get("/recordings/{name}/{started}/", replay)


STUDIO_BODY = """<header><h1>Studio · {stream}</h1>
<span class="state" id="state">…</span><span class="muted" id="viewers"></span>
<nav><a href="/watch/{stream}">watch page</a> · <a href="/overlay/{stream}">overlay</a>
(an OBS browser source) · <form class="inline" method="post" action="/studio/{stream}/logout">
<button class="link">sign out</button></form></nav></header>
<div class="studio" id="studio" data-stream="{stream}" data-chat="{chat}">
<div class="column">
<section class="panel"><h2>Stream</h2><dl class="health" id="health">
<dt>state</dt><dd id="health-state">-</dd><dt>live for</dt><dd id="health-uptime">-</dd>
<dt>video</dt><dd id="health-resolution">-</dd><dt>ingest</dt><dd id="health-bitrate">-</dd>
<dt>players</dt><dd id="health-viewers">-</dd><dt>in chat</dt><dd id="health-chat">-</dd>
</dl></section>
<section class="panel"><h2>Chat settings</h2>
<form id="settings"><label><input type="checkbox" id="chat-enabled" checked> chat on</label>
<label>slow mode <select id="slow-mode"><option value="0">off</option>
<option value="5">5 s</option><option value="10">10 s</option><option value="30">30 s</option>
<option value="60">1 min</option><option value="300">5 min</option></select></label></form>
<h3>Word filter</h3><ul class="chips" id="filter-words"></ul>
<form id="filter-form"><input name="word" maxlength="64" placeholder="a word to refuse"
aria-label="A word to refuse"><button>Add</button></form>
<h3>Patterns</h3><ul class="chips" id="filter-patterns"></ul>
<form id="pattern-form"><input name="pattern" maxlength="200"
placeholder="a regular expression" aria-label="A regular expression to refuse">
<button>Add</button></form>
<h3>Banned</h3><ul class="chips" id="banned"></ul><p class="muted" id="banned-none">nobody, in
this session</p></section>
</div>
<aside class="chat" id="chat" aria-label="Chat">
<div class="chat-head"><strong>Chat</strong><span class="muted" id="chat-viewers"></span>
<span class="muted" id="chat-status">connecting…</span></div>
<p class="chat-rules" id="chat-rules" hidden></p>
<div class="box answering" id="answering" hidden><span class="label">Answering now</span>
<div class="body"></div></div>
<div class="box pinned" id="pinned" hidden><span class="label">Pinned
<button type="button" class="link" id="unpin">unpin</button></span><div class="body"></div></div>
<ol class="messages" id="messages" aria-live="polite"></ol>
<p class="chat-notice" id="chat-notice" role="status" hidden></p>
<div class="chat-foot"><form id="send-form"><input name="text" autocomplete="off"
maxlength="300" placeholder="Write as the creator…" aria-label="Message">
<button class="primary">Send</button></form></div></aside>
<div class="column">
<section class="panel"><h2>Questions <span class="muted" id="question-count"></span></h2>
<ol class="queue" id="questions"></ol><p class="muted" id="questions-none">none yet</p></section>
<section class="panel"><h2>Gifts <span class="muted" id="gift-total"></span></h2>
<ol class="queue scroll" id="gifts-received" reversed></ol>
<p class="muted" id="gifts-none">none yet</p>
<h3>Top supporters</h3><ol id="supporters"></ol></section>
<section class="panel"><h2>Markers</h2><form id="marker-form"><input name="label"
maxlength="64" required placeholder="what happens now" aria-label="Marker label">
<button>Add marker</button></form><ol class="queue" id="markers"></ol></section>
<section class="panel" id="user-panel" hidden><h2>Messages of <span id="user-name"></span>
<button type="button" class="link" id="user-close">close</button></h2>
<ul class="user-messages scroll" id="user-messages"></ul></section>
</div></div>
<script type="module" src="/static/studio.js"></script>"""

REPLAY_BODY = """<header><h1>{stream}</h1><span class="state ended">replay</span>
<span class="muted">recorded {recorded}</span><nav><a href="/watch/{stream}">watch page</a> ·
<a href="{base}index.m3u8">playlist</a></nav></header>
<div class="with-chat"><div class="stage">
<video id="video" controls playsinline data-src="{base}index.m3u8"
data-chat="{base}chat.jsonl"></video><p id="stats" class="muted"></p>
<section class="panel" id="chapters-panel" hidden><h2>Markers</h2>
<ul class="chapters" id="chapters"></ul></section></div>
<aside class="chat" id="chat" aria-label="Chat replay">
<div class="chat-head"><strong>Chat replay</strong>
<span class="muted" id="chat-status">loading…</span></div>
<div class="box answering" id="answering" hidden><span class="label">Answering now</span>
<div class="body"></div></div>
<div class="box pinned" id="pinned" hidden><span class="label">Pinned</span>
<div class="body"></div></div>
<ol class="messages" id="messages"></ol></aside></div>
<script src="/player/hls.min.js"></script>
<script type="module" src="/static/replay.js"></script>"""
