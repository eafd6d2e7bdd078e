"""Stream keys that survive a restart: the key store, `golive keys`, and a running server
taking a change at the next publish."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from publishers import RawPublisher

from golive.cli import _first_key, main
from golive.config import Config
from golive.ingest.config import IngestConfig
from golive.ingest.key_store import FILE, KeyStore, KeyStoreError
from golive.ingest.keys import KeyTable
from golive.origin.config import AdminConfig, HttpConfig
from golive.server import Server
from golive.transcode.config import TranscodeConfig


def test_the_store_keeps_keys_private_and_across_instances(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "state")
    secret = store.add("main")
    assert len(secret) >= 22
    assert stat.S_IMODE((tmp_path / "state" / FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    store.close()
    again = KeyStore(tmp_path / "state")
    assert again.secrets() == {secret: "main"}
    assert [k.name for k in again.list()] == ["main"] and again.list()[0].rotated is None
    rotated = again.rotate("main")
    assert rotated != secret and again.secrets() == {rotated: "main"}
    assert again.list()[0].rotated is not None
    with pytest.raises(KeyStoreError, match="already has a key"):
        again.add("main")
    with pytest.raises(KeyStoreError, match="may only use"):
        again.add("../etc")
    with pytest.raises(KeyStoreError, match="no key is kept"):
        again.rotate("other")
    again.remove("main")
    assert again.secrets() == {}


def test_a_running_key_table_sees_another_process_change(tmp_path: Path) -> None:
    server_side = KeyStore(tmp_path)
    table = KeyTable({"configured-secret-1": "cam"}, store=server_side)
    assert table.name_for("configured-secret-1") == "cam"
    cli_side = KeyStore(tmp_path)  # `golive keys add` in another process
    secret = cli_side.add("main")
    assert table.name_for(secret) == "main"
    new = cli_side.rotate("main")
    assert table.name_for(secret) is None and table.name_for(new) == "main"
    cli_side.remove("main")
    assert table.name_for(new) is None
    assert table.name_for("configured-secret-1") == "cam"


def test_serve_makes_the_first_key_once(tmp_path: Path) -> None:
    made = _first_key(str(tmp_path))
    assert made is not None
    assert _first_key(str(tmp_path)) is None  # the next start reuses it
    assert KeyStore(tmp_path).secrets() == {made: "main"}


def test_golive_keys_shows_secrets_only_when_made(tmp_path: Path) -> None:
    runner = CliRunner()
    state = ["--state-dir", str(tmp_path)]
    added = runner.invoke(main, ["keys", "add", "cam", *state])
    assert added.exit_code == 0
    (secret,) = KeyStore(tmp_path).secrets()
    assert secret in added.output
    listed = runner.invoke(main, ["keys", "list", *state])
    assert listed.exit_code == 0 and listed.output.startswith("cam\tmade ")
    assert secret not in listed.output
    rotated = runner.invoke(main, ["keys", "rotate", "cam", *state])
    (new,) = KeyStore(tmp_path).secrets()
    assert rotated.exit_code == 0 and new in rotated.output and secret not in rotated.output
    assert runner.invoke(main, ["keys", "add", "cam", *state]).exit_code == 2
    assert runner.invoke(main, ["keys", "remove", "cam", *state]).exit_code == 0
    refused = runner.invoke(main, ["keys", "remove", "cam", *state])
    assert refused.exit_code == 2 and "no key is kept for stream 'cam'" in refused.output


async def test_a_rotated_key_is_refused_at_the_next_publish(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    old = store.add("main")
    server = Server(Config(ingest=IngestConfig(host="127.0.0.1", port=0),
                           http=HttpConfig(host="127.0.0.1", port=0), admin=AdminConfig(port=0),
                           transcode=TranscodeConfig(enabled=False), state_dir=str(tmp_path)))
    await server.start()
    try:
        publisher = await RawPublisher.open(server.ingest.rtmp_port, old)
        assert (await publisher.publish()).code == "NetStream.Publish.Start"
        await publisher.close()
        new = store.rotate("main")  # `golive keys rotate main` while it runs
        stale = await RawPublisher.open(server.ingest.rtmp_port, old)
        assert (await stale.publish()).code == "NetStream.Publish.BadName"
        await stale.close()
        fresh = await RawPublisher.open(server.ingest.rtmp_port, new)
        assert (await fresh.publish()).code == "NetStream.Publish.Start"
        await fresh.close()
    finally:
        await server.close()
