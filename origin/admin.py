"""The admin surface: Prometheus metrics and the operator's actions, apart from the public
origin (which keeps the player, the playlists, `/healthz` and `/api/streams`, and shows no
client's address).

    GET  /metrics                           Prometheus exposition
    GET  /api/admin/publishers              who publishes what, from which address
    POST /api/admin/publishers/{name}/kick  close that publisher's RTMP connection
    GET  /api/admin/keys                    the streams with a kept key (names, not keys)
    POST /api/admin/keys/{name}/rotate      a new key for a kept stream, shown once (its
                                            studio sessions end)
    GET  /api/admin/chat/{name}/audit       the room's moderation log, newest last
    GET  /api/admin/chat/{name}/gifts       the room's gift ledger, newest last

The routes are served by a second application on its own listener (`[admin]`, loopback by
default), and with a bearer token also on the public port (`add_routes` there too). How a
request is allowed:

- With a token, every admin request must carry `Authorization: Bearer TOKEN`, compared in
  constant time. A header rather than a query parameter: URLs end up in access logs, proxy
  logs and browser history. Browsers never attach a bearer token by themselves, so a page
  elsewhere cannot make the operator's browser act (no CSRF).
- Without one (the loopback listener), anything on this machine may ask, as with MediaMTX's
  default API listener. One hole remains there: a web page in the operator's browser can
  send requests to 127.0.0.1. The `Host` must then be a loopback name (a page cannot
  rebind its own domain to 127.0.0.1 and read the answers) and a browser's `Origin`, when
  sent, must be that same host (a page cannot POST a kick or a rotation). A reverse proxy in
  front must pass the upstream's Host (nginx does by default) or use a token.

Logs name the action, the stream and the admin client's address; never a key or the token.
"""

from __future__ import annotations

import hmac
import json
import logging
import time

from aiohttp import web

from golive.chat.room import user_wire
from golive.chat.store import AsyncChatStore
from golive.ingest.key_store import KeyStore, KeyStoreError
from golive.ingest.server import IngestService
from golive.origin import hls
from golive.origin.app import HUB, REGISTRY, Handler, metrics
from golive.origin.chat_socket import CHAT
from golive.origin.config import is_loopback
from golive.origin.metrics import AdminMetrics
from golive.origin.sessions import SESSIONS

log = logging.getLogger("golive.admin")

INGEST = web.AppKey("ingest", IngestService)
KEY_STORE = web.AppKey("key_store", KeyStore)  # absent: no state directory, no kept keys
TOKEN = web.AppKey("admin_token", str)  # absent: the loopback listener without a token
ADMIN_METRICS = web.AppKey("admin_metrics", AdminMetrics)

# Secrets in answers must not be kept by a browser or a proxy.
NO_STORE = {"Cache-Control": "no-store"}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=NO_STORE)


def _bearer(request: web.Request) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def _same_machine_request(request: web.Request) -> bool:
    """Without a token: a Host naming this machine, and no other site's Origin (see above)."""
    if not is_loopback(request.url.host or ""):
        return False
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def _guarded(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        token = request.app.get(TOKEN)
        if token is None:
            if not _same_machine_request(request):
                log.info("admin %s: refused %s %s: not a request from this machine (Host %r)",
                         request.remote, request.method, request.path, request.host)
                return _error(403, "the admin listener answers requests from this machine "
                                   "only (Host: 127.0.0.1 or localhost, no other Origin)")
            return await handler(request)
        given = _bearer(request)
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            request.app[ADMIN_METRICS].unauthorized.inc()
            log.info("admin %s: refused %s %s: %s", request.remote, request.method,
                     request.path, "no bearer token" if given is None else "wrong token")
            response = _error(401, "admin requests need the header 'Authorization: Bearer "
                                   "<admin token>'")
            response.headers["WWW-Authenticate"] = 'Bearer realm="golive admin"'
            return response
        return await handler(request)

    return guarded


async def list_publishers(request: web.Request) -> web.Response:
    now = time.time()
    publishers = [{
        "stream": stream.name,
        "client": stream.publisher,
        "since": round(stream.started_at, 3),
        "uptime_seconds": round(now - stream.started_at, 3),
        "codecs": [t.codec_string or t.codec for t in stream.tracks.values()],
        "bytes_in": stream.bytes_in,
    } for stream in sorted(request.app[HUB].streams(), key=lambda s: s.name)]
    return web.json_response({"publishers": publishers}, headers=NO_STORE)


async def kick(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    stream = request.app[HUB].get(name)
    client = stream.publisher if stream is not None else "?"
    if not request.app[INGEST].kick(name):
        return _error(404, f"nobody publishes stream {name!r}")
    request.app[ADMIN_METRICS].actions.labels("kick").inc()
    log.info("admin %s: kicked the publisher of stream=%s (rtmp %s)", request.remote, name,
             client)
    return web.json_response({"stream": name, "kicked": client}, headers=NO_STORE)


def _key_store(request: web.Request) -> KeyStore | None:
    return request.app.get(KEY_STORE)


_NO_STORE_MESSAGE = ("golive runs without a state directory, so no stream key is kept and "
                     "the keys are the configured ones (--key, [ingest.keys]): change them there")


async def list_keys(request: web.Request) -> web.Response:
    store = _key_store(request)
    if store is None:
        return _error(409, _NO_STORE_MESSAGE)
    keys = [{"stream": key.name, "created": round(key.created, 3),
             "rotated": round(key.rotated, 3) if key.rotated is not None else None}
            for key in store.list()]
    return web.json_response({"keys": keys}, headers=NO_STORE)


async def rotate_key(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    store = _key_store(request)
    if store is None:
        return _error(409, _NO_STORE_MESSAGE)
    try:
        secret = store.rotate(name)
    except KeyStoreError as exc:
        return _error(404, f"{exc} (configured keys, --key or [ingest.keys], are changed in "
                           "the configuration)")
    request.app[ADMIN_METRICS].actions.labels("rotate_key").inc()
    if SESSIONS in request.app:  # the old key's studio sign-ins end with it
        request.app[SESSIONS].end_stream(name)
    log.info("admin %s: rotated the key of stream=%s; the old key is refused from the next "
             "publish", request.remote, name)
    # Shown once, as `golive keys rotate` does; the connected publisher, if any, stays on.
    return web.json_response({"stream": name, "key": secret}, headers=NO_STORE)


MAX_LISTED = 1000


def _limit(request: web.Request) -> int:
    try:
        return max(1, min(MAX_LISTED, int(request.query.get("limit", "100"))))
    except ValueError:
        return 100


async def chat_audit(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    records = await _chat_store(request).audit(name, _limit(request))
    return web.json_response({"stream": name, "audit": [{
        "at": r.at, "actor": user_wire(r.actor), "action": r.action, "target": r.target,
        "detail": r.detail} for r in records]}, headers=NO_STORE)


async def chat_gifts(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    records = await _chat_store(request).gifts(name, _limit(request))
    return web.json_response({"stream": name, "gifts": [{
        "id": g.id, "at": g.at, "user": user_wire(g.user), "gift": g.gift, "count": g.count,
        "coins": g.coins, "reference": g.reference} for g in records]}, headers=NO_STORE)


def _chat_store(request: web.Request) -> AsyncChatStore:
    """The chat's store, or the 409 that says why there is none."""
    chat = request.app.get(CHAT)
    reason = ("the chat is off (--no-chat)" if chat is None else
              "golive runs without a state directory, so the chat keeps no log"
              if chat.store is None else None)
    if reason is not None:
        raise web.HTTPConflict(text=json.dumps({"error": reason}),
                               content_type="application/json", headers=NO_STORE)
    return chat.store  # type: ignore[union-attr,return-value]


def add_routes(app: web.Application, ingest: IngestService, key_store: KeyStore | None,
               admin_metrics: AdminMetrics, token: str | None) -> None:
    """The admin routes on `app`, which must hold the origin's REGISTRY, HUB, VIEWERS and
    ORIGIN_METRICS (for /metrics). Token None: allowed from this machine only (for the
    loopback listener; never pass None for the public app)."""
    app[INGEST] = ingest
    if key_store is not None:
        app[KEY_STORE] = key_store
    if token is not None:
        app[TOKEN] = token
    app[ADMIN_METRICS] = admin_metrics
    app.router.add_get("/metrics", _guarded(metrics))
    app.router.add_get("/api/admin/publishers", _guarded(list_publishers))
    app.router.add_post("/api/admin/publishers/{name}/kick", _guarded(kick))
    app.router.add_get("/api/admin/keys", _guarded(list_keys))
    app.router.add_post("/api/admin/keys/{name}/rotate", _guarded(rotate_key))
    app.router.add_get("/api/admin/chat/{name}/audit", _guarded(chat_audit))
    app.router.add_get("/api/admin/chat/{name}/gifts", _guarded(chat_gifts))


def build_admin_app(public: web.Application, ingest: IngestService, key_store: KeyStore | None,
                    admin_metrics: AdminMetrics, token: str | None) -> web.Application:
    """The admin listener's application. It shares the public app's registry and viewer
    estimate, so /metrics here reports what the public port serves."""
    app = web.Application()
    app[REGISTRY] = public[REGISTRY]
    app[HUB] = public[HUB]
    app[hls.VIEWERS] = public[hls.VIEWERS]
    app[hls.ORIGIN_METRICS] = public[hls.ORIGIN_METRICS]
    for key in (CHAT, SESSIONS):  # the chat's logs, and the studio sessions a rotation ends
        if key in public:
            app[key] = public[key]  # type: ignore[index]
    add_routes(app, ingest, key_store, admin_metrics, token)
    return app
