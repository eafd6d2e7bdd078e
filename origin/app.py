"""The public HTTP application: HLS, the player pages, /healthz and /api/streams, nothing that
names a client. Metrics and the operator's actions are the admin surface's (`admin.py`)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from golive.chat.service import ChatService
from golive.hub import Hub
from golive.media import Track, TrackKind
from golive.origin import chat_socket, hls, player, studio
from golive.origin.client_address import ClientAddresses
from golive.origin.metrics import OriginMetrics
from golive.origin.sessions import CHECK_KEY, SESSIONS, StudioSessions
from golive.origin.viewers import ViewerCounter
from golive.packager.service import PackagerService

REGISTRY = web.AppKey("registry", CollectorRegistry)
HUB = web.AppKey("hub", Hub)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus exposition; routed by the admin surface (admin.py), not here."""
    viewers = request.app[hls.VIEWERS]
    gauge = request.app[hls.ORIGIN_METRICS].viewers
    for stream in viewers.streams():
        count = viewers.count(stream)
        if count:
            gauge.labels(stream).set(count)
        else:
            gauge.remove(stream)
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def streams(request: web.Request) -> web.Response:
    now = time.time()
    packager = request.app[hls.PACKAGER]
    viewers = request.app[hls.VIEWERS]
    body = []
    for stream in request.app[HUB].streams():
        uptime = max(now - stream.started_at, 1e-3)
        status = packager.status(stream.name)
        renditions = [{
            "name": r.name, "playlist": f"/live/{stream.name}/{r.name}/index.m3u8",
            "codecs": list(r.codecs),
            "resolution": list(r.resolution) if r.resolution else None,
            "bandwidth": r.bandwidth, "average_bandwidth": r.average_bandwidth,
            "segments": r.segments, "last_msn": r.last_msn, "transcode": r.transcode,
        } for r in (status.renditions if status is not None else ())]
        body.append({
            "name": stream.name,
            "playlist": f"/live/{stream.name}/index.m3u8",
            "player": f"/watch/{stream.name}",
            "uptime_seconds": round(uptime, 3),
            "ingest_bitrate": round(stream.bytes_in * 8 / uptime),
            "codecs": [t.codec_string or t.codec for t in stream.tracks.values()],
            "tracks": [_track_json(t) for t in stream.tracks.values()],
            "renditions": renditions,
            "viewers": viewers.count(stream.name),
            "subscribers": stream.subscriber_count,
        })
    return web.json_response({"streams": body})


async def stream_info(request: web.Request) -> web.Response:
    """One broadcast as its watch page follows it: live, reconnecting or ended, with the
    viewer estimate; 404 when there is none under that name (now)."""
    name = request.match_info["name"]
    status = request.app[hls.PACKAGER].status(name)
    if status is None:
        raise web.HTTPNotFound(text="no such stream\n", headers={"Cache-Control": "no-cache"})
    now = time.time()
    ended = status.ended_at
    return web.json_response({
        "name": name, "state": status.state, "player": f"/watch/{name}",
        "playlist": f"/live/{name}/index.m3u8",
        "uptime_seconds": round((ended or now) - status.started_at, 3),
        "ended_seconds_ago": round(now - ended, 3) if ended is not None else None,
        "viewers": request.app[hls.VIEWERS].count(name),
        "resolution": list(status.resolution) if status.resolution else None,
    }, headers={"Cache-Control": "no-cache"})


def _track_json(track: Track) -> dict[str, object]:
    info: dict[str, object] = {"kind": track.kind.value, "codec": track.codec,
                               "codec_string": track.codec_string}
    if track.kind is TrackKind.VIDEO:
        info.update(width=track.width, height=track.height,
                    frame_rate=float(track.frame_rate) if track.frame_rate else None)
    else:
        info.update(sample_rate=track.sample_rate, channels=track.channels)
    return info


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "streams": len(request.app[HUB].streams())})


@web.middleware
async def count_responses(request: web.Request, handler: Handler) -> web.StreamResponse:
    counter = request.app[hls.ORIGIN_METRICS].responses
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        counter.labels(str(exc.status)).inc()
        raise
    counter.labels(str(response.status)).inc()
    return response


def build_app(registry: CollectorRegistry, hub: Hub, packager: PackagerService,
              player_dir: str | None = None,
              known_names: Callable[[], frozenset[str] | None] = lambda: None, *,
              chat: ChatService | None = None,
              check_key: Callable[[str, str], bool] = lambda name, key: False,
              admin_token: str | None = None,
              ) -> web.Application:
    """`chat`: the chat service behind `/chat/<name>` (None: no chat); `check_key`: whether
    a secret is a stream's key (the creator's sign-in)."""
    app = web.Application(middlewares=[count_responses])
    app[REGISTRY] = registry
    app[HUB] = hub
    app[hls.PACKAGER] = packager
    app[hls.ORIGIN_METRICS] = OriginMetrics(registry)
    app[hls.VIEWERS] = ViewerCounter()
    app.router.add_get("/healthz", health)
    app.router.add_get("/api/streams", streams)
    app.router.add_get("/api/streams/{name}", stream_info)
    hls.add_routes(app)
    player.add_routes(app, player_dir, known_names)
    app[SESSIONS] = StudioSessions()
    app[CHECK_KEY] = check_key
    if chat is not None:
        app[chat_socket.CHAT] = chat
        app[chat_socket.CLIENT_ADDRESSES] = ClientAddresses(chat.config.trusted_proxies)
        app[chat_socket.ADMIN_TOKEN] = admin_token or ""
        app[chat_socket.ROOM_ALLOWED] = lambda name: _room_allowed(packager, known_names, name)
        chat_socket.add_routes(app)
    studio.add_routes(app)  # the studio, the OBS overlay, a recording's replay
    return app


def _room_allowed(packager: PackagerService,
                  known_names: Callable[[], frozenset[str] | None], name: str) -> bool:
    """A room opens for a stream that exists or may come (as its watch page waits)."""
    if packager.status(name) is not None:
        return True
    known = known_names()
    return known is None or name in known
