"""The viewer pages: `/` lists live streams, `/watch/<name>` plays one with hls.js.

hls.js is installed from npm by `make player` (into `node_modules/`, never committed) and
served from `/player/hls.min.js`. Without it the page says how to get it.
"""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

from golive.ingest.keys import is_valid_stream_name

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PLAYER_DIR = PROJECT_ROOT / "node_modules" / "hls.js" / "dist"
PLAYER_DIR = web.AppKey("player_dir", Path)


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 960px; padding: 0 1rem; }}
video {{ width: 100%; background: #000; }}
code {{ background: #eee; padding: 0 .25em; }}
#stats {{ font-family: ui-monospace, monospace; }}
</style></head><body>
{body}
</body></html>
"""


async def index(request: web.Request) -> web.Response:
    from golive.origin.hls import PACKAGER

    broadcasts = sorted(request.app[PACKAGER].broadcasts.values(), key=lambda b: b.name)
    items = []
    for broadcast in broadcasts:
        state = "live" if broadcast.live else ("ended" if broadcast.ended else "reconnecting")
        name = html.escape(broadcast.name)
        items.append(f'<li><a href="/watch/{name}">{name}</a> ({state}) '
                     f'&middot; <code>/live/{name}/index.m3u8</code></li>')
    listing = "<ul>" + "".join(items) + "</ul>" if items else "<p>No stream is live.</p>"
    return web.Response(text=_page("golive", f"<h1>golive</h1>{listing}"),
                        content_type="text/html", headers={"Cache-Control": "no-cache"})


async def watch(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not is_valid_stream_name(name):
        raise web.HTTPNotFound(text="no such stream\n")
    player = request.app[PLAYER_DIR] / "hls.min.js"
    safe = html.escape(name)
    low_latency = request.query.get("lowLatency", "1") != "0"
    if not player.is_file():
        body = (f"<h1>{safe}</h1><p>The player script (hls.js) is not installed. Run "
                "<code>make player</code> in the golive checkout (it installs hls.js from "
                "npm), or open <code>/live/" + safe + "/index.m3u8</code> in Safari, VLC or "
                "ffplay.</p>")
        return web.Response(text=_page(name, body), content_type="text/html")
    body = f"""<h1>{safe}</h1>
<video id="video" controls muted autoplay playsinline></video>
<p id="stats">starting…</p>
<script src="/player/hls.min.js"></script>
<script>
const source = "/live/{safe}/index.m3u8";
const video = document.getElementById("video");
const stats = document.getElementById("stats");
window.golive = {{ errors: [], fatal: null, latency: null, frames: 0,
                  lowLatency: {str(low_latency).lower()} }};
if (Hls.isSupported()) {{
  const hls = new Hls({{ lowLatencyMode: window.golive.lowLatency, backBufferLength: 30 }});
  window.hls = hls;
  hls.on(Hls.Events.ERROR, (event, data) => {{
    window.golive.errors.push(data.details);
    if (data.fatal) window.golive.fatal = data.details;
  }});
  hls.loadSource(source);
  hls.attachMedia(video);
  setInterval(() => {{
    window.golive.latency = hls.latency;
    const quality = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    window.golive.frames = quality ? quality.totalVideoFrames : 0;
    const ahead = video.buffered.length
      ? video.buffered.end(video.buffered.length - 1) - video.currentTime : 0;
    stats.textContent = `latency ${{hls.latency.toFixed(2)}} s · level ${{hls.currentLevel}}` +
      ` · frames ${{window.golive.frames}} · buffer ${{ahead.toFixed(2)}} s`;
  }}, 250);
}} else if (video.canPlayType("application/vnd.apple.mpegurl")) {{
  video.src = source;  // Safari and iOS play HLS natively
}}
</script>"""
    return web.Response(text=_page(name, body), content_type="text/html",
                        headers={"Cache-Control": "no-cache"})


async def player_script(request: web.Request) -> web.StreamResponse:
    path = request.app[PLAYER_DIR] / request.match_info["file"]
    if not path.is_file():
        raise web.HTTPNotFound(text="hls.js is not installed: run `make player`\n")
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})


def add_routes(app: web.Application, player_dir: str | None) -> None:
    app[PLAYER_DIR] = Path(player_dir) if player_dir else DEFAULT_PLAYER_DIR
    app.router.add_get("/", index)
    app.router.add_get("/watch/{name}", watch)
    app.router.add_get(r"/player/{file:hls(?:\.min)?\.js(?:\.map)?}", player_script)
