"""The HLS fast path (origin/hls_fast.py): its head parser on any bytes (hypothesis), and over
real sockets against a live stream — the very replies aiohttp's routes send, hand-off to
aiohttp mid-connection, pipelining, blocking reloads answered all at once, HEAD, the head
deadline and idle close, and a client that does not read."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest
from helpers import MakeServer, eventually, scrape
from hypothesis import given, settings
from hypothesis import strategies as st
from publishers import FlvTag, RawPublisher, encode_clip

from golive.origin.config import HttpConfig
from golive.origin.hls_fast import MAX_HEAD, HandOff, Head, hls_request, parse_head
from golive.packager.config import HlsConfig
from golive.server import Server

KEY = "k-" + secrets.token_hex(8)
NAME = "cam"
# Headers that differ between two answers of the same content: when, and by whom.
VOLATILE = {"date", "server", "connection", "keep-alive"}


# ---- the parser ----------------------------------------------------------------------------


def test_a_plain_hls_get_is_parsed() -> None:
    raw = (b"GET /live/cam/source/index.m3u8?_HLS_msn=5&_HLS_part=2 HTTP/1.1\r\n"
           b"Host: x\r\nAccept-Encoding: gzip, br\r\nUSER-AGENT: hls.js\r\n"
           b"Range: bytes=0-9\r\nIf-None-Match: \"abc\"\r\n\r\nGET /next")
    head = parse_head(raw)
    assert isinstance(head, Head)
    assert (head.head, head.path, head.keep_alive) == (False, "/live/cam/source/index.m3u8", True)
    assert (head.accept_encoding, head.user_agent, head.range, head.if_none_match) == (
        "gzip, br", "hls.js", "bytes=0-9", '"abc"')
    assert raw[head.size:] == b"GET /next"
    request = hls_request(head, "10.0.0.1")
    assert (request.stream, request.rendition, request.filename, request.msn,
            request.part) == ("cam", "source", "index.m3u8", "5", "2")
    master = hls_request(parse_head(b"HEAD /live/cam/index.m3u8 HTTP/1.0\r\n\r\n"), "")
    assert (master.rendition, master.playlist) == (None, "master")


@pytest.mark.parametrize("raw", [
    b"POST /live/cam/index.m3u8 HTTP/1.1\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n\r\n",
    b"GET /live/c%61m/index.m3u8 HTTP/1.1\r\n\r\n",
    b"GET /live/cam/index.m3u8 HTTP/2\r\n\r\n",
    b"GET /live/cam/index.m3u8 HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody",
    b"GET /live/cam/index.m3u8 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /live/cam/index.m3u8 HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
    b"GET /live/cam/index.m3u8 HTTP/1.1\r\nbroken header\r\n\r\n",
    b"GET /live/cam/index.m3u8 HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
    b"GET /live/cam/index.m3u8 HTTP/1.1\r\nHost : x\r\n\r\n",
    b"GET  /live/cam/index.m3u8 HTTP/1.1\r\n\r\n",
    b"GET /live/cam/index.m3u8 HTTP/1.1\r\n" + b"X: " + b"a" * MAX_HEAD + b"\r\n\r\n",
])
def test_anything_else_is_handed_to_aiohttp(raw: bytes) -> None:
    with pytest.raises(HandOff):
        head = parse_head(raw)
        assert head is not None
        hls_request(head, "")


@pytest.mark.parametrize("path", ["/live/cam/", "/live//index.m3u8", "/live/cam/a/b/c",
                                  "/live/cam/seg-1.m4s"])
def test_paths_aiohttp_does_not_route_there_are_handed_off(path: str) -> None:
    with pytest.raises(HandOff):
        hls_request(parse_head(f"GET {path} HTTP/1.1\r\n\r\n".encode()), "")


def test_an_incomplete_head_waits_until_it_is_too_long() -> None:
    assert parse_head(b"GET /live/cam/index.m3u8 HTTP/1.1\r\nHost: x\r\n") is None
    with pytest.raises(HandOff):
        parse_head(b"GET /live/" + b"a" * (MAX_HEAD + 1))


_TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~",
                 min_size=1, max_size=12)
_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                               blacklist_characters="\x7f"), max_size=30)
_WANTED = ["Accept-Encoding", "If-None-Match", "Range", "User-Agent", "Connection"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.one_of(_TOKEN, st.sampled_from(_WANTED)), _VALUE), max_size=8),
       st.sampled_from(["GET", "HEAD"]), st.booleans())
def test_well_formed_heads_are_read_as_written(fields: list[tuple[str, str]], method: str,
                                               shout: bool) -> None:
    """Any well-formed head: the first of each wanted header is read (names in any case,
    values stripped of spaces), and one the fast path must not serve is handed off."""
    lines = [f"{method} /live/cam/source/index.m3u8 HTTP/1.1",
             *(f"{name.upper() if shout else name}: {value}" for name, value in fields)]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    first: dict[str, str] = {}
    for name, value in fields:
        first.setdefault(name.lower(), value.strip(" \t"))
    if first.keys() & {"content-length", "transfer-encoding", "upgrade", "expect"}:
        with pytest.raises(HandOff):
            parse_head(raw)
        return
    head = parse_head(raw)
    assert head is not None and head.size == len(raw) and head.head == (method == "HEAD")
    assert head.accept_encoding == first.get("accept-encoding", "")
    assert head.if_none_match == first.get("if-none-match", "")
    assert head.range == first.get("range")
    assert head.user_agent == first.get("user-agent", "")
    assert head.keep_alive == ("close" not in first.get("connection", "").lower())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_are_served_waited_for_or_handed_off(raw: bytes) -> None:
    try:
        head = parse_head(raw)
        if head is not None:
            assert 0 < head.size <= len(raw)
            hls_request(head, "")
    except HandOff:
        pass


# ---- over real sockets ---------------------------------------------------------------------


class Connection:
    """One raw HTTP/1.1 keep-alive connection: requests written as given, responses read by
    their Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: Server) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", server.http_port))

    def send(self, path: str, headers: dict[str, str] | None = None,
             method: str = "GET") -> None:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1",
                 *(f"{k}: {v}" for k, v in (headers or {}).items())]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def response(self, method: str = "GET",
                       timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = b"" if method == "HEAD" or status_line.split()[1] in ("304",) else (
            await asyncio.wait_for(self.reader.readexactly(length), timeout))
        return int(status_line.split()[1]), headers, body

    async def get(self, path: str, headers: dict[str, str] | None = None,
                  method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        self.send(path, headers, method)
        return await self.response(method)

    def close(self) -> None:
        self.writer.close()


async def aiohttp_connection(server: Server) -> Connection:
    """A connection aiohttp serves: its first request is not the fast path's."""
    connection = await Connection.open(server)
    status, _, _ = await connection.get("/healthz")
    assert status == 200
    return connection


@pytest.fixture
async def live(make_server: MakeServer) -> tuple[Server, RawPublisher]:
    server = await make_server(hls=HlsConfig(segment_target=1.0, part_target=0.2),
                               http=HttpConfig(header_timeout=1.0, keepalive_timeout=2.0),
                               keys={KEY: NAME})
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(encode_clip(4.0, 320, 240).tags)
    await eventually(lambda: server.packager.get(NAME) is not None
                     and len(server.packager.get(NAME).source.segments) >= 3,
                     what="three segments")
    yield server, publisher
    await publisher.close()


def _same(fast: tuple[int, dict[str, str], bytes],
          slow: tuple[int, dict[str, str], bytes]) -> None:
    assert fast[0] == slow[0]
    assert fast[2] == slow[2]
    keep = {k: v for k, v in fast[1].items() if k not in VOLATILE}
    assert keep == {k: v for k, v in slow[1].items() if k not in VOLATILE}


async def test_the_fast_path_sends_what_aiohttp_sends(live: tuple[Server, RawPublisher]) -> None:
    server, _ = live
    source = server.packager.get(NAME).source
    segment = source.segments[0]
    playlist = f"/live/{NAME}/source/index.m3u8"
    fast, slow = await Connection.open(server), await aiohttp_connection(server)
    _, headers, _ = await fast.get(playlist)
    etag = headers["etag"]
    cases = [
        (f"/live/{NAME}/index.m3u8", {}, "GET"),
        (playlist, {}, "GET"),
        (playlist, {"Accept-Encoding": "gzip"}, "GET"),
        (playlist, {"If-None-Match": etag}, "GET"),
        (playlist, {}, "HEAD"),
        (f"{playlist}?_HLS_msn={segment.sequence}&_HLS_part=0", {}, "GET"),
        (f"{playlist}?_HLS_msn=abc", {}, "GET"),
        (f"{playlist}?_HLS_part=1", {}, "GET"),
        (f"{playlist}?_HLS_msn={source.last_msn + 9}", {}, "GET"),
        (f"/live/{NAME}/source/{segment.init_uri}", {}, "GET"),
        (f"/live/{NAME}/source/{segment.uri}", {}, "GET"),
        (f"/live/{NAME}/source/{segment.uri}", {"Range": "bytes=10-99"}, "GET"),
        (f"/live/{NAME}/source/{segment.uri}", {"Range": "bytes=-50"}, "GET"),
        (f"/live/{NAME}/source/{segment.uri}", {"Range": "bytes=99999999-"}, "GET"),
        (f"/live/{NAME}/source/{segment.uri}", {}, "HEAD"),
        (f"/live/{NAME}/source/part-{segment.sequence}.0.m4s", {}, "GET"),
        (f"/live/{NAME}/source/seg-999999.m4s", {}, "GET"),
        (f"/live/{NAME}/source/../../etc/passwd", {}, "GET"),
        (f"/live/{NAME}/nope/index.m3u8", {}, "GET"),
        ("/live/nobody/index.m3u8", {}, "GET"),
    ]
    for path, headers, method in cases:
        answers = [await c.get(path, headers, method) for c in (fast, slow)]
        _same(*answers)
    assert (await fast.get(f"/live/{NAME}/source/{segment.uri}"))[0] == 200
    fast.close()
    slow.close()


async def test_a_connection_moves_to_aiohttp_at_its_first_other_request(
        live: tuple[Server, RawPublisher]) -> None:
    server, _ = live
    playlist = f"/live/{NAME}/source/index.m3u8"
    connection = await Connection.open(server)
    first = await connection.get(playlist)
    status, _, body = await connection.get("/api/streams")
    assert status == 200 and NAME.encode() in body
    again = await connection.get(playlist)
    assert first[0] == again[0] == 200 and "server" in again[1]  # (aiohttp names itself)
    assert "server" not in first[1]
    connection.close()


async def test_pipelined_requests_are_answered_in_order(live: tuple[Server, RawPublisher]) -> None:
    server, _ = live
    segments = list(server.packager.get(NAME).source.segments)
    connection = await Connection.open(server)
    paths = [f"/live/{NAME}/source/{s.uri}" for s in segments[:3]]
    connection.writer.write(b"".join(
        f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in [*paths, "/healthz"]))
    store = server.packager.get(NAME).source.store
    for path, segment in zip(paths, segments, strict=False):
        status, _, body = await connection.response()
        assert status == 200 and body == bytes(store.get(segment_key(server, segment.uri)))
        assert path.endswith(segment.uri)
    status, _, body = await connection.response()  # handed to aiohttp, after the three
    assert status == 200 and b"ok" in body
    connection.close()


def segment_key(server: Server, uri: str) -> str:
    return server.packager.get(NAME).source.prefix + uri


async def test_blocking_reloads_wait_and_are_answered_together(
        live: tuple[Server, RawPublisher]) -> None:
    server, publisher = live
    source = server.packager.get(NAME).source
    msn = source.last_msn + 1
    path = f"/live/{NAME}/source/index.m3u8?_HLS_msn={msn}&_HLS_part=0"
    connections = [await Connection.open(server) for _ in range(40)]
    for connection in connections:
        connection.send(path)
    await asyncio.sleep(0.3)
    assert not any(c.reader._buffer for c in connections)  # nobody answered early
    started = time.monotonic()
    await publisher.send_tags(FlvTag(t.type, t.timestamp + 4000, t.body)
                              for t in encode_clip(4.0, 320, 240).media_tags
                              if t.timestamp < 1000)  # one more second of media
    answers = [await c.response() for c in connections]
    assert time.monotonic() - started < 3
    assert all(status == 200 and f"part-{msn}.0.m4s".encode() in body
               for status, _, body in answers)
    assert len({body for _, _, body in answers}) == 1
    # the same connections carry on: a part, then the next blocking reload
    status, _, part = await connections[0].get(f"/live/{NAME}/source/part-{msn}.0.m4s")
    assert status == 200 and part
    for connection in connections:
        connection.close()
    metrics = await scrape(server)
    assert metrics.count("golive_http_playlist_requests_total", kind="media",
                         blocking="yes") >= 40
    assert metrics.count("golive_http_responses_total", code="200") >= 41


async def test_a_blocking_reload_that_times_out_is_a_503(make_server: MakeServer) -> None:
    server = await make_server(hls=HlsConfig(segment_target=1.0, part_target=0.2),
                               keys={KEY: NAME})
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(encode_clip(2.0, 320, 240).tags)
    await eventually(lambda: server.packager.get(NAME) is not None
                     and server.packager.get(NAME).source.segments, what="a segment")
    connection = await Connection.open(server)
    msn = server.packager.get(NAME).source.last_msn + 2
    started = time.monotonic()
    status, headers, _ = await connection.get(f"/live/{NAME}/source/index.m3u8?_HLS_msn={msn}")
    assert status == 503 and 2.9 <= time.monotonic() - started <= 4.5
    assert headers["cache-control"] == "no-cache"
    assert (await connection.get(f"/live/{NAME}/index.m3u8"))[0] == 200
    connection.close()
    await publisher.close()


async def test_a_trickled_head_is_cut_and_an_idle_connection_closed(
        live: tuple[Server, RawPublisher]) -> None:
    server, _ = live
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
    writer.write(b"GET /live/cam/source/index.m3u8 HTTP/1.1\r\nHost")
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(100), 5) == b""
    assert 0.9 <= time.monotonic() - started <= 2.0
    metrics = await scrape(server)
    assert metrics.count("golive_http_connections_closed_total", reason="header_timeout") == 1
    connection = await Connection.open(server)
    assert (await connection.get(f"/live/{NAME}/source/index.m3u8"))[0] == 200
    started = time.monotonic()
    assert await asyncio.wait_for(connection.reader.read(100), 5) == b""  # keep-alive over
    assert 1.9 <= time.monotonic() - started <= 3.0
    connection.close()


async def test_connection_close_is_honoured(live: tuple[Server, RawPublisher]) -> None:
    server, _ = live
    connection = await Connection.open(server)
    status, headers, _ = await connection.get(f"/live/{NAME}/index.m3u8",
                                              {"Connection": "close"})
    assert status == 200 and headers["connection"] == "close"
    assert await asyncio.wait_for(connection.reader.read(100), 5) == b""
    connection.close()


async def test_a_client_that_does_not_read_stops_being_read(
        live: tuple[Server, RawPublisher]) -> None:
    """Hundreds of pipelined segment requests, never read: the origin stops reading requests
    once the socket's send buffer is full, rather than buffer every answer; other viewers
    are served meanwhile."""
    server, _ = live
    segment = server.packager.get(NAME).source.segments[0]
    _, writer = await asyncio.open_connection("127.0.0.1", server.http_port, limit=1024)
    request = f"GET /live/{NAME}/source/{segment.uri} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    size = len(bytes(server.packager.get(NAME).source.store.get(segment_key(server,
                                                                            segment.uri))))
    writer.transport.pause_reading()
    for _ in range(400):
        writer.write(request)
    await asyncio.sleep(1.0)
    handlers = [h for h in server._runner.server.connections if h.transport is not None]
    buffered = max(h.transport.get_write_buffer_size() for h in handlers)
    assert buffered < 4 * size + 1_000_000  # a few answers at most, not 400
    other = await Connection.open(server)
    assert (await other.get(f"/live/{NAME}/source/index.m3u8"))[0] == 200
    other.close()
    writer.close()


async def test_a_reply_sent_again_is_never_outdated(live: tuple[Server, RawPublisher]) -> None:
    """The same head from another connection gets the bytes already sent (counted again),
    until the playlist changes: then the new playlist."""
    server, publisher = live
    playlist = f"/live/{NAME}/source/index.m3u8"
    first, second = await Connection.open(server), await Connection.open(server)
    before = await first.get(playlist)
    again = await second.get(playlist)
    assert before[2] == again[2] and before[1]["date"] == again[1]["date"]
    source = server.packager.get(NAME).source
    version = source.version
    await publisher.send_tags(FlvTag(t.type, t.timestamp + 4000, t.body)
                              for t in encode_clip(4.0, 320, 240).media_tags
                              if t.timestamp < 500)
    await eventually(lambda: source.version != version, what="a new part")
    after = await second.get(playlist)
    assert after[2] != before[2] and after[2] == source.text().encode()
    first.close()
    second.close()
    metrics = await scrape(server)
    assert metrics.count("golive_http_playlist_requests_total", kind="media",
                         blocking="no") >= 3
