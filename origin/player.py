"""The viewer pages: `/` lists the broadcasts, `/watch/<name>` plays one with hls.js.

hls.js is installed from npm by `make player` (into `node_modules/`, never committed) and
served from `/player/hls.min.js`; the page's own script is `/player/golive.js` (below). Without
hls.js the watch page says how to get it.

Beside the video, the stream's chat (`/static/watch.js`, on the shared `/static/chat.js`): the
scripts and styles the chat pages share are files in `static/`, served from `/static/<file>`.
They are ES modules (one imports the other; no build step) kept as files rather than strings
here, so they read, diff and lint as the JavaScript they are. Every page here that runs a
script is sent with a Content-Security-Policy that allows scripts from this origin only:
nothing written into a page by mistake could run.

The watch page keeps what it measures in `window.golive` (errors, fatal, latency, frames,
stalls, lowLatency, ...) and the player in `window.hls`, for people and for
tests/test_browser.py. `?lowLatency=0` plays without LL-HLS (parts, blocking reload). It polls
`/api/streams/<name>` for the viewer count, the uptime and the end of the broadcast.

A name nobody publishes under and no key is configured or kept for gets a 404; a known name
that is not live yet gets the "waiting" page, which starts playing when it goes live. (With
--open or a webhook any name may come, so every valid name waits.)
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from golive.names import is_valid_stream_name
from golive.origin.chat_socket import CHAT
from golive.origin.hls import PACKAGER
from golive.packager.query import BroadcastStatus

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}
# Only these files are served from /static/: a name from the URL is never joined to a path.
STATIC_FILES = frozenset(p.name for p in STATIC_DIR.iterdir() if p.suffix in STATIC_TYPES) \
    if STATIC_DIR.is_dir() else frozenset()
DEFAULT_PLAYER_DIR = PROJECT_ROOT / "node_modules" / "hls.js" / "dist"
PLAYER_DIR = web.AppKey("player_dir", Path)
# The stream names a key is configured or kept for; None when any name may be published
# (open mode, a webhook), so an unknown name cannot be told from one not live yet.
KNOWN_NAMES = web.AppKey("known_names", Callable[[], frozenset[str] | None])

NO_CACHE = {"Cache-Control": "no-cache"}

STYLE = """
:root { color-scheme: light dark; --muted: #888; --live: #d22; }
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 960px;
       padding: 0 1rem; line-height: 1.4; }
header { display: flex; align-items: baseline; gap: 1rem; flex-wrap: wrap; }
header h1 { margin: 0 0 .5rem; font-size: 1.5rem; }
a { color: inherit; }
nav, .muted { color: var(--muted); font-size: .9rem; }
video { width: 100%; aspect-ratio: 16 / 9; background: #000; display: block; }
code { font-family: ui-monospace, monospace; font-size: .9em; }
#stats { font-family: ui-monospace, monospace; font-size: .85rem; min-height: 1.4em; }
.bar { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; margin: .5rem 0; }
.notice { padding: 3rem 1rem; text-align: center; background: #8882; border-radius: .5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #8884; }
.state { font-size: .75rem; font-weight: 600; text-transform: uppercase; padding: .1em .5em;
         border-radius: .3em; border: 1px solid currentColor; }
.live { color: var(--live); }
.reconnecting { color: #c80; }
.ended, .waiting { color: var(--muted); }
"""

# The watch page's script: small, no build step. Its settings come from the <video> element's
# data attributes, so the page needs no inline script and this file caches like any other.
SCRIPT = """\
"use strict";
(() => {
  const video = document.getElementById("video");
  const stats = document.getElementById("stats");
  const quality = document.getElementById("quality");
  const source = video.dataset.src;
  const state = window.golive = {
    errors: [], fatal: null, latency: null, targetLatency: null, frames: 0, dropped: 0,
    stalls: 0, buffer: 0, lowLatency: video.dataset.lowLatency === "1",
  };
  video.addEventListener("waiting", () => { state.stalls += 1; });
  video.addEventListener("ended", () => { stats.textContent = "The broadcast has ended."; });
  if (!window.Hls || !Hls.isSupported()) {
    if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = source;  // Safari and iOS play HLS natively
    } else {
      stats.textContent = "This browser cannot play HLS (no Media Source Extensions).";
    }
    return;
  }
  // Measured with bench/glass.py (glass-to-glass, read from the frames): hls.js targets the
  // playlist's PART-HOLD-BACK behind its live edge estimate, and lands later than that when
  // start-up takes time. Its own catch-up (maxLiveSyncPlaybackRate) only runs with more than
  // 1 s buffered ahead, never the case at a sub-second target, so a late start stayed late
  // (1.3 s at 0.32 s parts): the page catches up itself (followLiveEdge below) and hls.js
  // leaves the rate alone. Each stall raises hls.js's target by liveSyncOnStallIncrease for
  // the rest of the session; 1 s (its default) for one start-up hiccup doubled the latency.
  const config = {
    lowLatencyMode: state.lowLatency,
    liveDurationInfinity: true,
    backBufferLength: 30,
    maxLiveSyncPlaybackRate: 1,
    liveSyncOnStallIncrease: 0.25,
  };
  // The rate: hls.js's own curve of the distance to the target (1.05 at 0.15 s, 1.2 at
  // 0.5 s, 1.5 from 1.5 s: a long stall is made up in seconds, not minutes), from 1.05.
  const MAX_RATE = 1.5;
  const BEHIND = 0.15, CAUGHT_UP = 0.05;  // seconds past the target: start, stop
  const KEEP_AHEAD = 0.4;  // seconds buffered ahead below which the page never speeds up
  const catchUpRate = (behind) =>
    Math.min(MAX_RATE, Math.max(1.05, Math.round(40 / (1 + Math.exp(-0.75 * behind))) / 20));
  const followLiveEdge = () => {
    if (!hls || !state.lowLatency || video.paused || hls.targetLatency === null) return;
    if (hls.config.maxLiveSyncPlaybackRate !== 1) return;  // hls.js's own catch-up is on
    const ranges = video.buffered;
    const ahead = ranges.length ? ranges.end(ranges.length - 1) - video.currentTime : 0;
    const behind = hls.latency - hls.targetLatency;
    const fast = video.playbackRate > 1;
    const catchUp = ahead > KEEP_AHEAD && behind > (fast ? CAUGHT_UP : BEHIND);
    const rate = catchUp ? catchUpRate(behind) : 1;
    if (video.playbackRate !== rate) video.playbackRate = rate;
  };
  video.addEventListener("timeupdate", followLiveEdge);
  let hls = null;
  let recoveredAt = 0;
  const start = () => {
    hls = window.hls = new Hls(config);
    hls.on(Hls.Events.ERROR, (event, data) => {
      state.errors.push(data.details);
      if (!data.fatal) return;
      const now = performance.now();
      if (data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR) {
        // Not live (yet): look again in a moment, as a viewer waiting for the show would.
        stats.textContent = "Waiting for the stream to go live…";
        hls.destroy();
        setTimeout(start, 3000);
      } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR && now - recoveredAt > 5000) {
        recoveredAt = now;  // once in a while: a decoder hiccup, not a broken stream
        hls.recoverMediaError();
      } else {
        state.fatal = data.details;
        stats.textContent = `Playback failed: ${data.details}. Reload the page to retry.`;
      }
    });
    hls.on(Hls.Events.MANIFEST_PARSED, (event, data) => {
      // "Auto" first (hls.js picks by bandwidth), then every rendition, largest first.
      quality.replaceChildren(new Option("Auto", "-1"));
      data.levels.map((level, index) => ({ level, index }))
        .sort((a, b) => (b.level.height - a.level.height) || (b.level.bitrate - a.level.bitrate))
        .forEach(({ level, index }) => {
          const label = (level.height ? `${level.height}p` : "audio") +
            (level.bitrate ? ` · ${(level.bitrate / 1e6).toFixed(2)} Mbit/s` : "");
          quality.add(new Option(label, String(index)));
        });
      quality.value = "-1";
      state.levels = data.levels.length;
    });
    hls.loadSource(source);
    hls.attachMedia(video);
  };
  quality.addEventListener("change", () => {
    if (hls) hls.currentLevel = Number(quality.value);  // -1: back to automatic
  });
  start();
  // The broadcast's own state, from the server: viewers, uptime, and its end.
  const badge = document.getElementById("state");
  const viewers = document.getElementById("viewers");
  const uptime = document.getElementById("uptime");
  const clock = (total) => {
    const s = Math.max(0, Math.floor(total));
    const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, r = s % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? `${h}:` : "") + `${mm}:${String(r).padStart(2, "0")}`;
  };
  const follow = async () => {
    try {
      const response = await fetch(video.dataset.info, { cache: "no-store" });
      if (!response.ok) return;
      const info = await response.json();
      state.broadcast = info.state;
      badge.textContent = info.state;
      badge.className = `state ${info.state}`;
      // Once the chat room counts viewers (HLS and chat together) the chat shows that count.
      if (state.roomViewers === undefined) viewers.textContent = `${info.viewers} watching`;
      uptime.textContent = info.state === "ended" ? "" : `live for ${clock(info.uptime_seconds)}`;
      if (info.state === "ended" && hls) {
        hls.destroy();
        hls = null;
        video.replaceWith(Object.assign(document.createElement("p"), {
          className: "notice", id: "ended", textContent: "This broadcast has ended.",
        }));
        stats.textContent = "";
        quality.closest(".bar").remove();  // nothing left to choose
        viewers.textContent = "";
      }
    } catch (error) { /* the next poll tries again */ }
  };
  follow();
  setInterval(follow, 5000);
  const seconds = (value) => (Number.isFinite(value) ? value.toFixed(2) : "-");
  setInterval(() => {
    if (!hls || state.fatal || video.ended || !hls.levels.length) return;
    const quality = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    state.frames = quality ? quality.totalVideoFrames : 0;
    state.dropped = quality ? quality.droppedVideoFrames : 0;
    state.latency = hls.latency;
    state.targetLatency = hls.targetLatency;
    const ranges = video.buffered;
    state.buffer = ranges.length ? ranges.end(ranges.length - 1) - video.currentTime : 0;
    const level = hls.levels[hls.currentLevel];
    if (quality.value === "-1" && level && level.height) {
      quality.options[0].textContent = `Auto (${level.height}p)`;
    }
    const size = level && level.width ? `${level.width}\\u00d7${level.height} · ` : "";
    const rate = level && level.bitrate ? `${(level.bitrate / 1e6).toFixed(2)} Mbit/s · ` : "";
    stats.textContent = `latency ${seconds(state.latency)} s` +
      ` (target ${seconds(state.targetLatency)}) · buffer ${seconds(state.buffer)} s · ` +
      size + rate + `frames ${state.frames}` +
      (state.dropped ? ` (${state.dropped} dropped)` : "") + ` · stalls ${state.stalls}` +
      (video.playbackRate !== 1 ? ` · catching up at ${video.playbackRate.toFixed(2)}x` : "");
  }, 250);
})();
"""


def page(title: str, body: str, *, head: str = "", body_class: str = "",
         stylesheets: tuple[str, ...] = ()) -> str:
    """A whole page in the pages' look; `stylesheets` are files of /static/."""
    links = "".join(f'\n<link rel="stylesheet" href="/static/{name}">' for name in stylesheets)
    opening = f'<body class="{body_class}">' if body_class else "<body>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{html.escape(title)}</title>{head}
<style>{STYLE}</style>{links}
</head>{opening}
{body}
</body></html>
"""


_HOST = re.compile(r"^[A-Za-z0-9.\-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$")


def page_policy(request: web.Request, *, framed: bool = True) -> str:
    """The Content-Security-Policy of a page with scripts: this origin's scripts only (no
    inline script, no eval), images from anywhere (gift pictures), media from MSE's blobs
    and data: (hls.js: its empty caption track is a data:,WEBVTT), and the chat's WebSocket
    on this host. `framed=False` forbids framing (the
    studio's one-click moderation must not be clickjacked)."""
    # 'self' covers ws(s): in CSP 3, but older Safari needs the WebSocket origin spelled out.
    host = request.host if _HOST.match(request.host) else ""
    sockets = f" ws://{host} wss://{host}" if host else ""
    return ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob: http: https:; media-src 'self' blob: data:; "
            f"worker-src 'self' blob:; connect-src 'self'{sockets}; object-src 'none'; "
            "base-uri 'none'; form-action 'self'"
            + ("" if framed else "; frame-ancestors 'none'"))


def _ago(seconds: float) -> str:
    minutes = int(max(0, seconds) // 60)
    if minutes < 1:
        return "just now"
    if minutes < 120:
        return f"{minutes} min ago"
    return f"{minutes // 60} h ago"


def _when(broadcast: BroadcastStatus, now: float) -> str:
    """What a viewer wants to know of a broadcast's time: how long it has been live, or how
    long ago it ended."""
    if broadcast.ended_at is not None:
        return f"ended {_ago(now - broadcast.ended_at)}"
    return f"live for {_duration(now - broadcast.started_at)}"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


async def index(request: web.Request) -> web.Response:
    packager = request.app[PACKAGER]
    broadcasts = packager.statuses()
    now = time.time()
    rows = []
    for broadcast in broadcasts:
        name = html.escape(broadcast.name)
        state = broadcast.state
        resolution = broadcast.resolution
        size = "&times;".join(map(str, resolution)) if resolution else ""
        playlist = f"/live/{name}/index.m3u8"
        has_picture = state == "live" and packager.thumbnail(broadcast.name) is not None
        picture = (f'<img src="/live/{name}/thumbnail.jpg" alt="" width="160">'
                   if has_picture else "")
        rows.append(
            f'<tr><td>{picture}</td><td><a href="/watch/{name}">{name}</a></td>'
            f'<td><span class="state {state}">{state}</span></td>'
            f"<td>{_when(broadcast, now)}</td><td>{size}</td>"
            f'<td><a href="{playlist}"><code>{playlist}</code></a></td></tr>')
    if rows:
        listing = ("<table><thead><tr><th></th><th>stream</th><th>state</th><th>time</th>"
                   "<th>video</th><th>playlist</th></tr></thead><tbody>"
                   + "".join(rows) + "</tbody></table>")
    else:
        listing = ("<p>No stream is live. Publish with RTMP to "
                   "<code>rtmp://&lt;this host&gt;/live/&lt;stream key&gt;</code>.</p>")
    body = (f"<header><h1>golive</h1><nav>{len(broadcasts)} broadcast(s) · "
            '<a href="/api/streams">API</a></nav></header>'
            f"{listing}")
    refresh = '\n<meta http-equiv="refresh" content="5">'
    return web.Response(text=page("golive", body, head=refresh), content_type="text/html",
                        headers=NO_CACHE)


async def watch(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    broadcast = request.app[PACKAGER].status(name) if is_valid_stream_name(name) else None
    known = request.app[KNOWN_NAMES]()
    if broadcast is None and (not is_valid_stream_name(name)
                              or (known is not None and name not in known)):
        body = ('<header><h1>No such stream</h1><nav><a href="/">all streams</a></nav>'
                f"</header><p class=\"notice\">Nobody publishes a stream named "
                f"<code>{html.escape(name)}</code> here, and no key is set up for one.</p>")
        return web.Response(text=page("no such stream", body), status=404,
                            content_type="text/html", headers=NO_CACHE)
    safe = html.escape(name)
    playlist = f"/live/{safe}/index.m3u8"
    low_latency = request.query.get("lowLatency", "1") != "0"
    state = broadcast.state if broadcast is not None else "offline"
    toggle = (f'<a href="/watch/{safe}?lowLatency=0">standard latency</a>' if low_latency
              else f'<a href="/watch/{safe}">low latency</a>')
    header = (f'<header><h1>{safe}</h1><span class="state {state}" id="state">{state}</span>'
              '<span class="muted" id="viewers"></span><span class="muted" id="uptime"></span>'
              f'<nav><a href="/">all streams</a> · <a href="{playlist}">playlist</a> · '
              f"{'low latency' if low_latency else 'standard latency'} (switch to {toggle})"
              "</nav></header>")
    if broadcast is not None and broadcast.ended_at is not None:
        replay = ""
        if broadcast.recording:
            playlist_path = html.escape(broadcast.recording)
            replay = (f' <a href="{html.escape(replay_page(broadcast.recording))}">Watch the '
                      f'replay</a> with its chat. <a href="{playlist_path}">Its recording</a> '
                      "plays in Safari, VLC or ffplay too.")
        body = (f'{header}<p class="notice" id="ended">This broadcast ended '
                f"{_ago(time.time() - broadcast.ended_at)}.{replay}</p>")
        return web.Response(text=page(name, body), content_type="text/html", headers=NO_CACHE)
    if not (request.app[PLAYER_DIR] / "hls.min.js").is_file():
        body = (f"{header}<p>The player script (hls.js) is not installed. Run "
                "<code>make player</code> in the golive checkout (it installs hls.js from "
                f'npm), or open <a href="{playlist}"><code>{playlist}</code></a> in Safari, '
                "VLC or ffplay.</p>")
        return web.Response(text=page(name, body), content_type="text/html", headers=NO_CACHE)
    # Link previews (chat apps, social sites) show the stream's picture and name.
    origin = html.escape(str(request.url.origin()))
    preview = (f'\n<meta property="og:title" content="{safe} on golive">'
               f'\n<meta property="og:image" content="{origin}/live/{safe}/thumbnail.jpg">')
    player = f"""<video id="video" controls muted autoplay playsinline data-src="{playlist}"
       data-info="/api/streams/{safe}" data-low-latency="{int(low_latency)}"></video>
<div class="bar"><label>Quality <select id="quality"><option value="-1">Auto</option>
</select></label></div>
<p id="stats">{"waiting for the stream to go live…" if broadcast is None else "starting…"}</p>
"""
    scripts = ('<script src="/player/hls.min.js"></script>\n'
               '<script src="/player/golive.js"></script>')
    if CHAT not in request.app:  # `golive serve --no-chat`: the player alone, as before
        return web.Response(text=page(name, f"{header}\n{player}{scripts}", head=preview),
                            content_type="text/html",
                            headers={**NO_CACHE, "Content-Security-Policy": page_policy(request)})
    body = (f'{header}\n<div class="with-chat"><div class="stage">\n{player}</div>\n'
            f"{CHAT_PANEL.format(stream=safe)}</div>\n{scripts}\n"
            '<script type="module" src="/static/watch.js"></script>')
    return web.Response(text=page(name, body, head=preview, body_class="wide",
                                  stylesheets=("chat.css",)), content_type="text/html",
                        headers={**NO_CACHE, "Content-Security-Policy": page_policy(request)})


def replay_page(playlist: str) -> str:
    """The replay page of a recording, from its playlist's origin path (beside it)."""
    return playlist.rsplit("/", 1)[0] + "/"


# The watch page's chat; watch.js fills it. The name form and the text box are both here from
# the start so the page reads the same without the socket (it says it is connecting).
CHAT_PANEL = """<aside class="chat" id="chat" data-stream="{stream}" aria-label="Chat">
<div class="chat-head"><strong>Chat</strong><span class="muted" id="chat-viewers"></span>
<span class="muted" id="chat-status">connecting…</span></div>
<p class="chat-rules" id="chat-rules" hidden></p>
<div class="box answering" id="answering" hidden><span class="label">Answering now</span>
<div class="body"></div></div>
<div class="box pinned" id="pinned" hidden><span class="label">Pinned</span>
<div class="body"></div></div>
<ol class="messages" id="messages" aria-live="polite"></ol>
<p class="chat-notice" id="chat-notice" role="status" hidden></p>
<div class="gift-picker" id="gift-picker" hidden>
<div class="picker-head"><strong>Send a gift</strong>
<label class="muted">how many <input id="gift-count" type="number" min="1" max="100" value="1">
</label><button type="button" class="link" id="gift-close">close</button>
</div><ul id="gift-list"></ul></div>
<div class="chat-foot">
<div class="reactions" id="reactions"></div>
<form id="join-form" hidden><input name="name" maxlength="32" required autocomplete="nickname"
placeholder="Your name in the chat" aria-label="Your name in the chat">
<button class="primary">Join chat</button></form>
<form id="send-form" hidden><div class="modes"><label><input type="radio" name="mode"
value="message" checked> Chat</label><label><input type="radio" name="mode" value="ask">
Ask a question</label></div>
<input name="text" autocomplete="off" maxlength="300" placeholder="Say something…"
aria-label="Message"><button class="primary">Send</button>
<button type="button" id="gift-button" hidden title="Send a gift">🎁 Gift</button>
<div class="as"><span id="chat-as"></span><button type="button" class="link" id="chat-leave">
change name</button></div></form>
</div></aside>"""


async def recording(request: web.Request) -> web.StreamResponse:
    """A recording's playlist and files (`--record-dir`), read-only."""
    info = request.match_info
    path = request.app[PACKAGER].recording_file(info["name"], info["started"], info["file"])
    if path is None:
        raise web.HTTPNotFound(text="no such recording\n", headers=NO_CACHE)
    kind = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t",
            ".jsonl": "application/x-ndjson"}.get(path.suffix, "video/mp4")
    # The playlist and the chat (chat.jsonl) grow while the broadcast goes on; segments don't.
    growing = path.suffix in (".m3u8", ".jsonl")
    return web.FileResponse(path, headers={"Content-Type": kind, "Cache-Control": "no-cache"
                                           if growing else "public, max-age=3600",
                                           "Access-Control-Allow-Origin": "*"})


async def thumbnail(request: web.Request) -> web.Response:
    """A recent picture of a live broadcast, at a stable URL (for link previews too)."""
    jpeg = request.app[PACKAGER].thumbnail(request.match_info["name"])
    if jpeg is None:
        raise web.HTTPNotFound(text="no picture of that stream (yet)\n", headers=NO_CACHE)
    return web.Response(body=jpeg, content_type="image/jpeg",
                        headers={"Cache-Control": "public, max-age=5",
                                 "Access-Control-Allow-Origin": "*"})


async def static_file(request: web.Request) -> web.StreamResponse:
    """The chat pages' scripts and styles: revalidated on each load (an upgrade takes effect
    at once), answered 304 when unchanged."""
    name = request.match_info["file"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound(text="no such file\n", headers=NO_CACHE)
    path = STATIC_DIR / name
    return web.FileResponse(path, headers={"Content-Type": STATIC_TYPES[path.suffix],
                                           **NO_CACHE})


async def page_script(request: web.Request) -> web.Response:
    return web.Response(text=SCRIPT, content_type="text/javascript", headers=NO_CACHE)


async def player_script(request: web.Request) -> web.StreamResponse:
    path = request.app[PLAYER_DIR] / request.match_info["file"]
    if not path.is_file():
        raise web.HTTPNotFound(text="hls.js is not installed: run `make player`\n")
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})


def add_routes(app: web.Application, player_dir: str | None,
               known_names: Callable[[], frozenset[str] | None] = lambda: None) -> None:
    app[PLAYER_DIR] = Path(player_dir) if player_dir else DEFAULT_PLAYER_DIR
    app[KNOWN_NAMES] = known_names
    app.router.add_get("/", index)
    app.router.add_get("/watch/{name}", watch)
    app.router.add_get("/live/{name}/thumbnail.jpg", thumbnail)
    app.router.add_get("/recordings/{name}/{started}/{file}", recording)
    app.router.add_get("/player/golive.js", page_script)
    app.router.add_get("/static/{file}", static_file)
    app.router.add_get(r"/player/{file:hls(?:\.min)?\.js(?:\.map)?}", player_script)
