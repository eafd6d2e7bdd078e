"""The chat load generator (bench/chat_load.py, the benchmark's own process) against a real
server: a few seconds with 20 chatters, and its report says every message reached every one
of them, with latencies."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from helpers import MakeServer

REPO = Path(__file__).resolve().parent.parent
CLIENTS = 20
RATE, SECONDS = 5.0, 3.0  # 15 messages: within every per-user and per-address default limit

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(15)
async def test_load_generator_reports_every_delivery(make_server: MakeServer) -> None:
    server = await make_server(keys={"bench-chat-secret-key": "bench"})
    # The generator in its own process, as the benchmark runs it, with the server in ours:
    # chatters from 4 loopback addresses, under the default 20 chat sockets per address.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.chat_load", "--port", str(server.http_port),
        "--room", "bench", "--clients", str(CLIENTS), "--rate", f"{RATE:g}",
        "--seconds", f"{SECONDS:g}", "--connect-rate", "200", "--per-address", "5",
        "--drain-quiet", "0.5", cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 12)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    events = [json.loads(line) for line in out.splitlines()]
    assert proc.returncode == 0, err.decode()
    assert [e["event"] for e in events if e["event"] != "warning"] == [
        "joined", "sending", "sent", "report"]
    report = events[-1]
    assert report["joined"] == report["kept_up"] == CLIENTS, report["join_failed"]
    assert report["sent"] == RATE * SECONDS
    assert not report["refused"] and not report["dropped"] and not report["unsent"]
    assert report["accepted"] == report["sent"]
    assert report["lost"] == 0 and report["duplicates"] == 0
    assert report["receptions"] == report["expected"] == report["sent"] * CLIENTS
    latency = report["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"] < 2000
    assert report["cpu"] > 0 and report["join_ms"]["p99"] > 0
