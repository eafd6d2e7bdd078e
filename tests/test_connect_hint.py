"""A connect to an application golive does not serve: the log line says what to change in the
encoder's settings (OBS: Server and Stream Key; FFmpeg: one URL), never contradicts the
configured application, and never quotes the stream key that was pasted into the URL."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

import pytest
from helpers import MakeServer, eventually
from publishers import RawPublisher

from golive.ingest.client import ConnectResult
from golive.ingest.server import refused_connect_hint

KEY = "k-" + secrets.token_hex(8)  # a fresh secret per run: a leak cannot match by accident
SERVER = "rtmp://media.example:1935/live"


def no_key(text: str) -> bool:
    return False


@pytest.mark.parametrize(("app", "tc_url", "is_key", "says"), [
    # OBS: Server rtmp://host/live/KEY (Stream Key empty or the key again)
    (f"live/{KEY}", f"rtmp://media.example:1935/live/{KEY}", no_key,
     f"the stream key was put in the server URL: use Server {SERVER} and put the key in "
     "Stream Key only"),
    # OBS: Server rtmp://host:1935 with the key in Stream Key
    ("", "rtmp://media.example:1935", no_key,
     f"the server URL has no application: use Server {SERVER}, the key in Stream Key "
     f"(FFmpeg: {SERVER}/<stream key>)"),
    # FFmpeg: rtmp://host:1935/KEY (the application left out)
    (KEY, f"rtmp://media.example:1935/{KEY}", lambda text: text == KEY,
     f"the stream key was put where the application goes: use Server {SERVER} and put the "
     f"key in Stream Key (FFmpeg: {SERVER}/<stream key>)"),
    # a wrong application: a short word is shown, the key after it is not
    (f"stream/{KEY}", f"rtmp://media.example:1935/stream/{KEY}", no_key,
     f"unknown application 'stream': use Server {SERVER}, the key in Stream Key "
     f"(FFmpeg: {SERVER}/<stream key>)"),
    # a long unknown application may be a key nobody configured (open mode, the webhook's)
    (KEY, f"rtmp://media.example:1935/{KEY}", no_key,
     "unknown application (not shown: it may be a stream key): use Server "
     f"{SERVER}, the key in Stream Key (FFmpeg: {SERVER}/<stream key>)"),
])
def test_the_hint_says_what_to_change(app: str, tc_url: str, is_key: Callable[[str], bool],
                                      says: str) -> None:
    hint = refused_connect_hint(app, tc_url, "live", is_key)
    assert hint == says
    assert KEY not in hint


@pytest.mark.parametrize(("tc_url", "base"), [
    ("rtmps://user:pw@Media.Example:1936/live/x?token=t", "rtmps://media.example:1936/live"),
    ("rtmp://[::1]/x", "rtmp://[::1]/live"),
    ("", "rtmp://<this server>/live"),
    ("rtmp://host:port/x", "rtmp://<this server>/live"),
    ("http://host/x", "rtmp://<this server>/live"),
])
def test_the_suggested_server_url_comes_from_the_encoders_tc_url(tc_url: str, base: str) -> None:
    """Only scheme, host and port: the path and query may hold the key, a user:password the
    encoder's credentials."""
    assert refused_connect_hint("", tc_url, "live", no_key).startswith(
        f"the server URL has no application: use Server {base},")


@pytest.mark.e2e
@pytest.mark.parametrize(("app", "says"), [
    (f"live/{KEY}", "the stream key was put in the server URL: use Server "
                    "rtmp://127.0.0.1:{port}/live and put the key in Stream Key only"),
    (KEY, "the stream key was put where the application goes: use Server "
          "rtmp://127.0.0.1:{port}/live"),
    ("", "the server URL has no application: use Server rtmp://127.0.0.1:{port}/live"),
])
async def test_a_refused_connect_logs_the_hint_without_the_key(
        make_server: MakeServer, caplog: pytest.LogCaptureFixture, app: str, says: str) -> None:
    caplog.set_level(logging.DEBUG)
    server = await make_server(keys={KEY: "cam"})
    port = server.ingest.rtmp_port
    publisher = await RawPublisher.open(port, KEY, app=app)
    result = await publisher.publish()
    assert isinstance(result, ConnectResult) and not result.ok
    await publisher.wait_closed()
    await publisher.close()
    await eventually(lambda: not server.ingest.connections, what="connection cleanup")
    [line] = [r.getMessage() for r in caplog.records if "refused connect" in r.getMessage()]
    assert says.format(port=port) in line
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert KEY not in repr(record.args)
