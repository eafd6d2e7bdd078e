"""Stopping `golive serve` the way users do: Ctrl-C in its terminal, which sends SIGINT to the
whole process group, the transcode workers included. Only the server decides how to stop: it
ends every stream, then stops its workers, and nothing prints a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port, golive_command, http_get
from publishers import PyAvPublisher

Process = asyncio.subprocess.Process

pytestmark = pytest.mark.e2e

KEY = "k-" + secrets.token_hex(8)
NAME = "cam"


async def _streams(http_port: int) -> list[dict[str, Any]] | None:
    """`/api/streams`; None while the server is not answering yet."""
    with contextlib.suppress(OSError, asyncio.TimeoutError):
        status, text = await http_get(http_port, "/api/streams")
        if status == 200:
            streams: list[dict[str, Any]] = json.loads(text)["streams"]
            return streams
    return None


async def _until(condition: Callable[[], Awaitable[bool]], server: Process, what: str,
                 timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert server.returncode is None, f"golive exited waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_a_signal_to_the_group_with_a_live_stream_stops_all_without_a_traceback(
        tmp_path: Path, stop: signal.Signals) -> None:
    """Ctrl-C in a terminal; SIGTERM to the whole group (systemd's default KillMode)."""
    rtmp_port, http_port = free_port(), free_port()
    # Its own session and process group, as a shell gives a foreground job: SIGINT to the
    # group is what a terminal's Ctrl-C does.
    server = await asyncio.create_subprocess_exec(
        *golive_command(), "serve", "--host", "127.0.0.1", "--rtmp-port", str(rtmp_port),
        "--http-port", str(http_port), "--admin-port", str(free_port()),
        "--key", f"{NAME}={KEY}", "--ladder", "180p@150k",
        "--transcode-workers", "1", "--segment-target", "1",
        "--state-dir", str(tmp_path / "state"),  # not the user's
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        start_new_session=True)
    assert server.stderr is not None
    stderr = asyncio.create_task(server.stderr.read())  # the workers write here too
    publisher: PyAvPublisher | None = None
    try:
        async def answering() -> bool:
            return await _streams(http_port) is not None

        async def transcoding() -> bool:  # a rung has listed a segment: its worker encodes
            return any(r["transcode"] is not None and r["segments"] >= 1
                       for s in await _streams(http_port) or () if s["name"] == NAME
                       for r in s["renditions"])

        await _until(answering, server, "the server")
        publisher = await PyAvPublisher.start(
            f"rtmp://127.0.0.1:{rtmp_port}/live/{KEY}", tmp_path / "published", seconds=30,
            realtime=True)  # live until the server stops
        await _until(transcoding, server, "a rung segment")

        os.killpg(server.pid, stop)
        await asyncio.wait_for(server.wait(), 8)
        # Every writer of the pipe is gone (no worker outlived the server): it ends.
        log = (await asyncio.wait_for(stderr, 5)).decode(errors="replace")
        assert server.returncode == 0, log
        assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
        assert f"stream={NAME}: publishing ended (server shutting down)" in log, log
        assert "died (exit status" not in log, log  # no worker was restarted, nor reported
        assert "golive: shut down" in log, log
        assert not _group_alive(server.pid)
    finally:
        if publisher is not None:
            publisher.kill()
            await publisher.process.wait()
        if server.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            await server.wait()
        stderr.cancel()


async def test_a_worker_ignores_sigint_and_exits_0_when_its_channel_closes() -> None:
    ours, theirs = socket.socketpair()
    try:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "golive.transcode.worker", "--fd", str(theirs.fileno()),
            pass_fds=(theirs.fileno(),), stderr=asyncio.subprocess.PIPE)
    finally:
        theirs.close()
    try:
        await asyncio.sleep(0.3)  # also a Ctrl-C while it starts must be ignored
        worker.send_signal(signal.SIGINT)
        await asyncio.sleep(0.5)
        worker.send_signal(signal.SIGINT)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(worker.wait()), 0.5)
        ours.close()  # what the server's shutdown does
        _, err = await asyncio.wait_for(worker.communicate(), 5)
        assert worker.returncode == 0
        assert err == b""
    finally:
        ours.close()
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
