"""The start banner tells other devices an address they can reach (never loopback when the
machine has a network), every one when there are several."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import AsyncIterator

import pytest

from golive import addresses, cli
from golive.config import Config
from golive.ingest.config import IngestConfig
from golive.origin.config import AdminConfig, HttpConfig
from golive.server import Server
from golive.transcode.config import TranscodeConfig


def test_the_default_route_first_then_every_other_interface() -> None:
    interfaces = {"lo": ["127.0.0.1"], "wlan0": ["10.0.0.5"], "eth0": ["192.168.1.20"],
                  "docker0": ["172.17.0.1"], "usb0": ["169.254.3.4"], "down": []}
    assert addresses.reachable("192.168.1.20", interfaces) == [
        "192.168.1.20", "10.0.0.5", "172.17.0.1"]
    # No default route (a laptop off the network but on a hotspot): the interfaces.
    assert addresses.reachable(None, interfaces) == ["10.0.0.5", "172.17.0.1", "192.168.1.20"]
    assert addresses.reachable("127.0.0.1", {"lo": ["127.0.0.1"]}) == []


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    config = Config(ingest=IngestConfig(host="0.0.0.0", port=0, keys={"s3cret-key-123": "cam"}),
                    http=HttpConfig(host="0.0.0.0", port=0), admin=AdminConfig(port=0),
                    transcode=TranscodeConfig(enabled=False))
    server = Server(config)
    await server.start()
    yield server
    await server.close()


async def test_a_debian_hostname_is_not_what_the_banner_says(
        server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    # Stock Debian/Ubuntu: the hostname resolves to 127.0.1.1 (/etc/hosts).
    monkeypatch.setattr("socket.gethostbyname", lambda name: "127.0.1.1")
    monkeypatch.setattr(addresses, "route_address", lambda: "192.168.1.20")
    monkeypatch.setattr(addresses, "interface_addresses", lambda: {
        "lo": ["127.0.0.1"], "eth0": ["192.168.1.20"], "wlan0": ["10.0.0.5"]})
    cli._banner(server, None)
    text = capsys.readouterr().out
    rtmp, http = server.ingest.rtmp_port, server.http_port
    assert f"  Server:      rtmp://192.168.1.20:{rtmp}/live\n" in text
    assert f"               (or rtmp://10.0.0.5:{rtmp}/live)\n" in text
    assert f"Watch:         http://192.168.1.20:{http}/watch/cam\n" in text
    assert f"Studio:        http://192.168.1.20:{http}/studio/cam  (" in text
    assert f"OBS overlay:   http://192.168.1.20:{http}/overlay/cam  (" in text
    assert text.index("Watch:") < text.index("Studio:") < text.index("OBS overlay:")
    # Metrics and the admin API are on the loopback admin listener, on purpose; every other
    # address in the banner is for other devices.
    admin = f"http://127.0.0.1:{server.admin_port}"
    assert f"Metrics:       {admin}/metrics\n" in text
    assert f"Admin API:     {admin}/api/admin/publishers  (this machine only)\n" in text
    assert "127." not in text.replace(admin, "")


async def test_this_machine_is_announced_by_an_address_others_reach(
        server: Server, capsys: pytest.CaptureFixture) -> None:
    up = [a for values in addresses.interface_addresses().values() for a in values
          if not ipaddress.ip_address(a).is_loopback]
    cli._banner(server, None)
    announced = re.search(r"Server:\s+rtmp://([^:]+):", capsys.readouterr().out)
    assert announced is not None
    if up:  # this machine has a network (CI's has): never loopback then
        assert announced.group(1) in up
    else:
        assert announced.group(1) == "127.0.0.1"
