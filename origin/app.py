"""The HTTP application: one aiohttp app on one port for metrics, API and (later) HLS."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from golive.ingest.hub import Hub
from golive.media import Track, TrackKind

REGISTRY = web.AppKey("registry", CollectorRegistry)
HUB = web.AppKey("hub", Hub)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def streams(request: web.Request) -> web.Response:
    now = time.time()
    body = []
    for stream in request.app[HUB].streams():
        uptime = max(now - stream.started_at, 1e-3)
        body.append({
            "name": stream.name,
            "uptime_seconds": round(uptime, 3),
            "ingest_bitrate": round(stream.bytes_in * 8 / uptime),
            "codecs": [t.codec_string or t.codec for t in stream.tracks.values()],
            "tracks": [_track_json(t) for t in stream.tracks.values()],
            "subscribers": stream.subscriber_count,
        })
    return web.json_response({"streams": body})


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


def build_app(registry: CollectorRegistry, hub: Hub) -> web.Application:
    app = web.Application()
    app[REGISTRY] = registry
    app[HUB] = hub
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", health)
    app.router.add_get("/api/streams", streams)
    return app
