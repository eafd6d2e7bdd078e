"""The admin surface: metrics and operator actions off the public port (a loopback listener by
default, or a bearer token), over real HTTP and RTMP on loopback."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from helpers import MakeServer, Metrics, http_get, scrape
from publishers import RawPublisher, ServerClosed

from golive.cli import main
from golive.config import Config, ConfigError
from golive.ingest.key_store import KeyStore
from golive.origin.config import AdminConfig
from golive.server import Server

KEY = "admin-test-key-1"
NAME = "cam"
TOKEN = "t0ken-for-the-admin-surface"


async def request(method: str, port: int, path: str,
                  headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(
            method, f"http://127.0.0.1:{port}{path}", headers=headers,
            timeout=aiohttp.ClientTimeout(total=5)) as response:
        text = await response.text()
        is_json = response.content_type == "application/json"
        return response.status, json.loads(text) if is_json else text


async def publish(server: Server, key: str = KEY) -> RawPublisher:
    publisher = await RawPublisher.open(server.ingest.rtmp_port, key)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    return publisher


async def test_metrics_are_served_by_the_admin_listener_not_the_public_port(
        make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME})
    assert server.admin_port not in (None, server.http_port)
    status, _ = await http_get(server.http_port, "/metrics")
    assert status == 404
    status, text = await http_get(server.admin_port, "/metrics")
    assert status == 200 and "golive_rtmp_connections" in text
    status, page = await http_get(server.http_port, "/")
    assert status == 200 and "/metrics" not in page  # no link to what is not there
    for path in ("/api/admin/publishers", "/api/admin/keys"):
        assert (await http_get(server.http_port, path))[0] == 404


async def test_the_public_api_names_no_client_the_admin_api_does(
        make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME})
    publisher = await publish(server)
    try:
        host, port = publisher.writer.get_extra_info("sockname")[:2]
        status, public = await request("GET", server.http_port, "/api/streams")
        assert status == 200 and [s["name"] for s in public["streams"]] == [NAME]
        assert host not in json.dumps(public)
        status, admin = await request("GET", server.admin_port, "/api/admin/publishers")
        assert status == 200
        [listed] = admin["publishers"]
        assert listed["stream"] == NAME and listed["client"] == f"{host}:{port}"
        assert listed["bytes_in"] >= 0 and listed["since"] > 0 and listed["codecs"] == []
        assert KEY not in json.dumps(admin)
    finally:
        await publisher.close()


async def test_kick_closes_the_publisher_and_the_broadcast_waits_for_it(
        make_server: MakeServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="golive.admin")
    server = await make_server(keys={KEY: NAME})
    publisher = await publish(server)
    status, body = await request("POST", server.admin_port, f"/api/admin/publishers/{NAME}/kick")
    assert status == 200 and body["stream"] == NAME
    with pytest.raises(ServerClosed):  # the server closed the RTMP connection
        await publisher.until(lambda event: False)
    await publisher.close()
    assert server.hub.get(NAME) is None
    broadcast = server.packager.status(NAME)
    assert broadcast is not None and broadcast.state == "reconnecting"  # the grace period

    status, body = await request("POST", server.admin_port, f"/api/admin/publishers/{NAME}/kick")
    assert status == 404 and "nobody publishes" in body["error"]
    metrics = await scrape(server)
    assert metrics.get("golive_admin_actions_total", action="kick") == 1
    [logged] = [r.getMessage() for r in caplog.records if "kicked" in r.getMessage()]
    assert f"stream={NAME}" in logged and logged.startswith("admin 127.0.0.1:")
    assert KEY not in caplog.text


async def test_rotate_returns_a_new_key_that_publishes_and_the_old_one_is_refused(
        make_server: MakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    kept = KeyStore(tmp_path)
    old = kept.add("main")
    kept.close()
    server = await make_server(state_dir=str(tmp_path))
    status, body = await request("GET", server.admin_port, "/api/admin/keys")
    assert status == 200 and [k["stream"] for k in body["keys"]] == ["main"]
    assert old not in json.dumps(body)

    status, body = await request("POST", server.admin_port, "/api/admin/keys/main/rotate")
    assert status == 200 and body["stream"] == "main"
    new = body["key"]
    assert new and new != old
    stale = await RawPublisher.open(server.ingest.rtmp_port, old)
    assert (await stale.publish()).code == "NetStream.Publish.BadName"
    await stale.close()
    (await publish(server, new)).writer.close()

    status, body = await request("POST", server.admin_port, "/api/admin/keys/other/rotate")
    assert status == 404 and "no key is kept for stream 'other'" in body["error"]
    assert (await scrape(server)).get("golive_admin_actions_total", action="rotate_key") == 1
    assert new not in caplog.text and old not in caplog.text


async def test_without_a_key_store_rotation_is_a_conflict(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME})  # no state directory
    status, body = await request("POST", server.admin_port, f"/api/admin/keys/{NAME}/rotate")
    assert status == 409 and "without a state directory" in body["error"]
    assert (await request("GET", server.admin_port, "/api/admin/keys"))[0] == 409


async def test_a_token_guards_every_admin_route_on_both_ports(
        make_server: MakeServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = await make_server(keys={KEY: NAME}, admin=AdminConfig(port=0, token=TOKEN))
    assert server.admin_port is not None
    for port in (server.http_port, server.admin_port):
        for headers in (None, {"Authorization": "Bearer wrong-token-of-some-length"},
                        {"Authorization": TOKEN}):  # no scheme: not a bearer token
            status, body = await request("GET", port, "/metrics", headers)
            assert status == 401 and "Bearer" in body["error"]
        status, text = await http_get(port, "/metrics", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and "golive_rtmp_connections" in text
        assert TOKEN not in text
        assert (await request("POST", port, f"/api/admin/publishers/{NAME}/kick"))[0] == 401
    right = {"Authorization": f"bearer {TOKEN}"}  # the scheme is case-insensitive (RFC 9110)
    status, body = await request("GET", server.http_port, "/api/admin/publishers", right)
    assert status == 200 and body == {"publishers": []}
    _, text = await http_get(server.admin_port, "/metrics", right)
    assert Metrics(text).get("golive_admin_unauthorized_requests_total") == 8
    assert TOKEN not in caplog.text


async def test_the_tokenless_listener_refuses_other_sites_requests(
        make_server: MakeServer) -> None:
    """A web page in the operator's browser can reach 127.0.0.1 too: by DNS rebinding (its
    own Host) or with a cross-site form POST (its Origin)."""
    server = await make_server(keys={KEY: NAME})
    publisher = await publish(server)
    try:
        rebound = {"Host": f"attacker.example:{server.admin_port}"}
        assert (await request("GET", server.admin_port, "/api/admin/publishers", rebound))[0] \
            == 403
        cross_site = {"Origin": "https://attacker.example"}
        status, _ = await request("POST", server.admin_port,
                                  f"/api/admin/publishers/{NAME}/kick", cross_site)
        assert status == 403 and server.hub.get(NAME) is not None
        same = {"Origin": f"http://127.0.0.1:{server.admin_port}"}
        assert (await request("GET", server.admin_port, "/api/admin/publishers", same))[0] == 200
        assert (await request("GET", server.admin_port, "/metrics",
                              {"Host": f"localhost:{server.admin_port}"}))[0] == 200
    finally:
        await publisher.close()


def test_an_admin_listener_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a loopback address"):
        Server(Config(admin=AdminConfig(host="0.0.0.0")))
    AdminConfig(host="0.0.0.0", token=TOKEN).check_exposure()  # with a token: allowed
    with pytest.raises(ConfigError, match="at least 16"):
        AdminConfig(token="short")
    result = CliRunner().invoke(main, ["serve", "--admin-host", "0.0.0.0", "--state-dir",
                                       str(tmp_path), "--rtmp-port", "0", "--http-port", "0"])
    assert result.exit_code == 2 and "is not a loopback address" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


async def test_the_token_alone_serves_admin_on_the_public_port(make_server: MakeServer) -> None:
    server = await make_server(keys={KEY: NAME},
                               admin=AdminConfig(listen=False, token=TOKEN))
    assert server.admin_port is None
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (await http_get(server.http_port, "/metrics", bearer))[0] == 200
