"""A store or record directory golive cannot write: refused at start-up with a clear message,
and when it fails under a running server the stream goes on from memory, counted and logged
once, with no traceback.

As root, permission bits stop no write, so the failures here come from a file standing
where a directory must be: that fails for root too (ENOTDIR).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from helpers import MakeServer, eventually, http_get, scrape
from publishers import RawPublisher, encode_clip

from golive.packager.config import HlsConfig
from golive.packager.store import DiskStore, FallbackStore, check_directories

KEY = "k-" + secrets.token_hex(8)
NAME = "disk"


def serve(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`golive serve` in a child process: a check that wrongly passes would run the server,
    which the timeout then ends (a failure) rather than hanging the test run."""
    return subprocess.run(
        [sys.executable, "-c", "from golive.cli import main; main()", "serve", "--open",
         "--rtmp-port", "0", "--http-port", "0", "--no-transcode", "--state-dir", str(state),
         *args],
        capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("option, setting", [("--store-dir", "hls.store_dir"),
                                             ("--record-dir", "hls.record_dir")])
def test_unwritable_directory_is_refused_at_start(tmp_path: Path, option: str,
                                                  setting: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    directory = blocker / "media"  # cannot be made: its parent is a file
    result = serve(tmp_path / "state", option, str(directory))
    assert result.returncode == 2, result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert setting in error and option in error and str(directory) in error
    assert "Not a directory" in error
    assert "Traceback" not in result.stderr


def test_the_check_writes_nothing_it_leaves(tmp_path: Path) -> None:
    """A writable directory passes, and keeps no probe file; a missing one is made."""
    check_directories(HlsConfig(store_dir=str(tmp_path / "new" / "store"),
                                record_dir=str(tmp_path)))
    assert list((tmp_path / "new" / "store").iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] == ["new"]


def test_fallback_store_keeps_what_the_disk_refuses(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    errors: list[tuple[str, str]] = []
    store = FallbackStore(DiskStore(tmp_path), lambda *error: errors.append(error))
    store.put("s/a/seg-1.m4s", b"on disk")
    assert store.path("s/a/seg-1.m4s") == tmp_path / "s/a/seg-1.m4s"
    shutil.rmtree(tmp_path / "s")
    (tmp_path / "s").write_text("")  # the stream's directory is now a file
    store.put("s/a/seg-2.m4s", b"in memory")
    store.put("s/a/seg-3.m4s", b"in memory too")
    assert store.get("s/a/seg-2.m4s") == b"in memory" and store.path("s/a/seg-2.m4s") is None
    assert errors == [("s", "write"), ("s", "write")]
    assert [r.getMessage() for r in caplog.records] == [
        f"stream s: cannot write {tmp_path}/s/a/seg-2.m4s: [Errno 20] Not a directory; "
        "serving from memory"]
    store.delete("s/a/seg-2.m4s")
    store.delete("s/a/seg-3.m4s")
    assert store.get("s/a/seg-2.m4s") is None and store.size() == len(b"on disk")
    # Nothing of the stream is left in memory: a failure now is a new incident, logged.
    store.put("s/a/seg-4.m4s", b"again")
    assert len(caplog.records) == 2
    (tmp_path / "s").unlink()
    store.put("s/a/seg-4.m4s", b"on disk again")  # the disk is back: memory lets go
    assert store.path("s/a/seg-4.m4s") is not None
    assert store.get("s/a/seg-4.m4s") == b"on disk again"


def _sequences(playlist: str) -> list[int]:
    return [int(n) for n in re.findall(r"^seg-(\d+)\.m4s$", playlist, re.M)]


@pytest.mark.e2e
async def test_store_failing_under_a_running_server(make_server: MakeServer, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """The stream's directory turns into a file mid-broadcast: the origin keeps serving new
    segments from memory, every failed write is counted, one line says so, and the
    broadcast ends cleanly (ENDLIST) without a traceback."""
    caplog.set_level(logging.INFO)
    store = tmp_path / "store"
    server = await make_server(hls=HlsConfig(segment_target=1.0, grace_period=0.2,
                                             store_dir=str(store)), keys={KEY: NAME})
    clip = encode_clip(8.0, 320, 240)
    half = len(clip.tags) // 2
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(clip.tags[:half])
    await eventually(lambda: len(list(store.glob(f"{NAME}/source/seg-*.m4s"))) >= 2,
                     what="segments on disk", timeout=10)
    on_disk = max(int(p.stem[4:]) for p in store.glob(f"{NAME}/source/seg-*.m4s"))
    shutil.rmtree(store / NAME)
    (store / NAME).write_text("not a directory")
    await publisher.send_tags(clip.tags[half:])
    await eventually(lambda: len(server.packager.get(NAME).source.segments) >= on_disk + 3,
                     what="segments after the failure", timeout=10)

    status, _ = await http_get(server.http_port, f"/live/{NAME}/index.m3u8")
    assert status == 200
    status, playlist = await http_get(server.http_port, f"/live/{NAME}/source/index.m3u8")
    assert status == 200
    newest = max(_sequences(playlist))
    assert newest > on_disk + 1
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{server.http_port}/live/{NAME}/source/seg-{newest}.m4s") as got:
        assert got.status == 200 and len(await got.read()) > 1000  # from memory

    await publisher.close()
    await eventually(lambda: server.packager.get(NAME).ended, what="broadcast ended")
    _, playlist = await http_get(server.http_port, f"/live/{NAME}/source/index.m3u8")
    assert playlist.rstrip().endswith("#EXT-X-ENDLIST")
    await asyncio.sleep(0.1)  # anything the end still logs

    metrics = await scrape(server)
    assert metrics.count("golive_store_write_errors_total", stream=NAME, operation="write") >= 3
    about = [r for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(about) == 1, [r.getMessage() for r in about]
    assert f"stream {NAME}: cannot write {store / NAME}/" in about[0].getMessage()
    assert "[Errno 20] Not a directory" in about[0].getMessage()
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.e2e
async def test_record_dir_failing_under_a_running_server(
        make_server: MakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The record directory is gone (a file in its place) when a broadcast starts: the
    recording stops, logged once and counted; the live stream is untouched."""
    caplog.set_level(logging.INFO)
    records = tmp_path / "records"
    server = await make_server(hls=HlsConfig(grace_period=0.2, record_dir=str(records)),
                               keys={KEY: NAME})
    shutil.rmtree(records, ignore_errors=True)
    records.write_text("not a directory")
    clip = encode_clip(4.0, 320, 240)
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    await publisher.send_tags(clip.tags)
    await publisher.close()
    await eventually(lambda: server.packager.get(NAME) is not None
                     and server.packager.get(NAME).ended, what="broadcast ended")
    status, playlist = await http_get(server.http_port, f"/live/{NAME}/source/index.m3u8")
    assert status == 200 and _sequences(playlist)
    metrics = await scrape(server)
    assert metrics.count("golive_hls_recording_errors_total", stream=NAME) == 1
    about = [r for r in caplog.records if "recording stopped" in r.getMessage()]
    assert len(about) == 1
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]
