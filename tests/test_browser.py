"""hls.js in a real browser: golive's /watch page played by headless Chromium.

A real-time PyAV publisher feeds a golive server; `tests/browser/play.mjs` (Node, with
playwright-core driving the system's Chromium) opens the watch page with low latency on, then
with it off (`?lowLatency=0`), and samples the page's `window.golive` state every 250 ms. The
test judges the samples: frames and currentTime advance, no fatal error, hls.latency reported,
and LL-HLS playing much closer to live than plain HLS.

Needs Node, `make player` (hls.js, playwright-core) and `make browser-deps` (Chromium). When one
is missing the test runs those targets once, and skips saying what is missing if they fail.

GOLIVE_BROWSER_PART_TARGET=<seconds> plays with another HLS part target (for measuring the
default); GOLIVE_BROWSER_SECONDS=<seconds> changes how long each page plays.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import CHROMIUM, http_get, run_node
from publishers import PyAvPublisher

from golive.config import Config
from golive.ingest.config import IngestConfig
from golive.origin.config import AdminConfig, HttpConfig
from golive.packager.config import HlsConfig
from golive.server import Server
from golive.transcode.config import TranscodeConfig

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
PLAY = ROOT / "tests" / "browser" / "play.mjs"
KEY = "k-" + secrets.token_hex(8)
NAME = "cam"
FPS = 25
PAGE_SECONDS = float(os.environ.get("GOLIVE_BROWSER_SECONDS", "10"))
WARM_UP = 3.0  # seconds from opening a page before its measurements count


@dataclass
class Playback:
    """What one page measured after its warm-up."""

    mode: str
    samples: list[dict[str, Any]]
    console: list[str]

    @property
    def window(self) -> list[dict[str, Any]]:
        return [s for s in self.samples if s["t"] >= WARM_UP]

    @property
    def elapsed(self) -> float:
        return self.window[-1]["t"] - self.window[0]["t"]

    def advanced(self, field: str) -> float:
        return self.window[-1][field] - self.window[0][field]

    def median(self, field: str) -> float | None:
        values = [s[field] for s in self.window if _finite(s[field])]
        return statistics.median(values) if values else None

    @property
    def stalls(self) -> int:
        """`waiting` events after the warm-up (rebuffering)."""
        return self.window[-1]["stalls"] - self.window[0]["stalls"]

    @property
    def buffer_stalled_errors(self) -> int:
        return sum(e == "bufferStalledError" for e in self.samples[-1]["errors"])

    @property
    def buffer_stalled_after_warm_up(self) -> int:
        first, last = self.window[0]["errors"], self.window[-1]["errors"]
        return last.count("bufferStalledError") - first.count("bufferStalledError")

    @property
    def fatal(self) -> str | None:
        return next((s["fatal"] for s in self.samples if s["fatal"]), None)

    def summary(self) -> str:
        latency, since_ingest = self.median("latency"), self.median("sinceIngest")
        return (f"{self.mode}: hls.latency median {_seconds(latency)} "
                f"(target {_seconds(self.median('targetLatency'))}), since ingest "
                f"{_seconds(since_ingest)}, {self.stalls} stalls and "
                f"{self.buffer_stalled_errors} bufferStalledError, "
                f"{self.advanced('frames')} frames in {self.elapsed:.1f} s, "
                f"errors {sorted(set(self.samples[-1]['errors']))}")


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and value == value and abs(value) != float("inf")


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


async def _play(urls: list[str], seconds: float, switch: float = 0) -> list[dict[str, Any]]:
    # GOLIVE_SCREENSHOTS=DIR keeps each page's last look as a PNG, for a person to look at.
    shots = os.environ.get("GOLIVE_SCREENSHOTS")
    result = await run_node(
        str(PLAY), "--chromium", str(CHROMIUM), "--seconds", str(seconds),
        "--switch", str(switch), "--switch-from", str(WARM_UP),
        *(["--screenshots", shots] if shots else []), *urls,
        timeout=len(urls) * seconds + 60)
    assert isinstance(result, list)
    return result


def _hls_config() -> HlsConfig:
    part_target = os.environ.get("GOLIVE_BROWSER_PART_TARGET")
    if part_target is None:
        return HlsConfig()  # what golive serves by default
    return HlsConfig(part_target=float(part_target), segment_target=2.0)


async def test_hls_js_plays_live_in_chromium(browser_tools: None, tmp_path: Path) -> None:
    hls_config = _hls_config()
    server = Server(Config(ingest=IngestConfig(host="127.0.0.1", port=0, keys={KEY: NAME}),
                           http=HttpConfig(host="127.0.0.1", port=0),
                           admin=AdminConfig(port=0), hls=hls_config))
    await server.start()
    publisher = None
    try:
        publisher = await PyAvPublisher.start(
            f"rtmp://127.0.0.1:{server.ingest.rtmp_port}/live/{KEY}", tmp_path / "encoded",
            seconds=2 * PAGE_SECONDS + 6, realtime=True, width=640, height=360,
            # Held open after its media: the listing below must see it live however long
            # the two pages took (under load they outlasted the media).
            hold=True)
        base = f"http://127.0.0.1:{server.http_port}/watch/{NAME}"
        played = await _play([base, base + "?lowLatency=0"], PAGE_SECONDS)

        # The listing shows the broadcast as live, linking its page and playlist.
        status, listing = await http_get(server.http_port, "/")
        assert status == 200
        assert f'href="/watch/{NAME}"' in listing
        assert f'href="/live/{NAME}/index.m3u8"' in listing
        states = re.findall(r'class="state[^<]*', listing)
        assert '<span class="state live">live</span>' in listing, states
        await publisher.finish(60)
        publisher = None
    finally:
        if publisher is not None:
            publisher.kill()
        await asyncio.wait_for(server.close(), 10)

    low, plain = (Playback(mode, page["samples"], page["console"])
                  for mode, page in zip(("low latency", "standard"), played, strict=True))
    print(f"\npart target {hls_config.part_target} s, segment target "
          f"{hls_config.segment_target} s")
    for playback in (low, plain):
        print(playback.summary())
    for playback, low_latency in ((low, True), (plain, False)):
        context = f"{playback.mode}: {playback.summary()}; console {playback.console[-10:]}"
        assert playback.samples[0]["hls"], "hls.js did not start: " + context
        assert playback.samples[-1]["lowLatency"] is low_latency
        assert playback.fatal is None, context
        # Playlists are first served with a whole segment in them: no empty level at start.
        assert "levelEmptyError" not in playback.samples[-1]["errors"], context
        assert playback.elapsed >= PAGE_SECONDS - WARM_UP - 1, context
        # Playing all along: frames decoded and the clock moving at (about) real time.
        assert playback.advanced("frames") >= 0.6 * FPS * playback.elapsed, context
        assert playback.advanced("currentTime") >= 0.6 * playback.elapsed, context
        assert not playback.window[-1]["paused"], context
        # Around the player: a quality menu with "Auto" first and every rendition, the
        # viewer count (this page counts) and how long the broadcast has been live.
        last = playback.samples[-1]
        assert last["quality"][0].startswith("Auto") and len(last["quality"]) == (
            last["levels"] + 1), context
        assert re.fullmatch(r"[1-9]\d* watching", last["viewers"] or ""), context
        assert (last["uptime"] or "").startswith("live for "), context
        assert last["state"] == "live" and last["ended"] is None, context
        assert playback.median("latency") is not None, "no hls.latency: " + context
    # LL-HLS (parts, blocking reload) plays far closer to live than three whole segments back.
    low_latency, plain_latency = low.median("latency"), plain.median("latency")
    assert low_latency is not None and plain_latency is not None
    assert low_latency < 3.0, low.summary()
    assert low_latency < plain_latency - 1.0, (low.summary(), plain.summary())


async def test_hls_js_switches_between_aligned_renditions_without_stalls(
        browser_tools: None, tmp_path: Path) -> None:
    """The ladder's point: a player moving between renditions (here told to, every two
    seconds after its warm-up, as its bandwidth estimate would) keeps playing, because every
    rendition cuts its segments at the same times with an IDR there, and the rungs' live
    edge is close behind the source's (no rate-control lookahead)."""
    config = Config(ingest=IngestConfig(host="127.0.0.1", port=0, keys={KEY: NAME}),
                    http=HttpConfig(host="127.0.0.1", port=0), admin=AdminConfig(port=0),
                    transcode=TranscodeConfig(ladder=("240p@300k", "180p@150k")))
    server = Server(config)
    await server.start()
    publisher = None
    seconds = PAGE_SECONDS + 4
    try:
        publisher = await PyAvPublisher.start(
            f"rtmp://127.0.0.1:{server.ingest.rtmp_port}/live/{KEY}", tmp_path / "encoded",
            seconds=seconds + 8, realtime=True, width=640, height=360, gop=50)
        [page] = await _play([f"http://127.0.0.1:{server.http_port}/watch/{NAME}"], seconds,
                             switch=2.0)
        publisher.kill()
        publisher = None
    finally:
        if publisher is not None:
            publisher.kill()
        await asyncio.wait_for(server.close(), 10)
    playback = Playback("switching", page["samples"], page["console"])
    visited = sorted({s["level"] for s in playback.window})
    stalled_at = [s["t"] for s in playback.samples if "bufferStalledError" in s["errors"]][:1]
    context = (f"{playback.summary()}; levels played {visited}; first stall at "
               f"{stalled_at} s; console {playback.console[-10:]}")
    print("\n" + context)
    assert playback.fatal is None, context
    assert {s["levels"] for s in playback.window} == {3}, context
    assert len(visited) >= 2, context
    assert sum(1 for s in playback.window if s.get("asked") is not None) >= 2, context
    assert playback.stalls == 0 and playback.buffer_stalled_after_warm_up == 0, context
    assert playback.advanced("frames") >= 0.6 * FPS * playback.elapsed, context
    assert playback.advanced("currentTime") >= 0.6 * playback.elapsed, context


async def test_the_watch_page_says_when_the_broadcast_ended(browser_tools: None,
                                                            tmp_path: Path) -> None:
    """No black player with an endless spinner: once the broadcast ends (its grace period
    over), the page says so."""
    server = Server(Config(ingest=IngestConfig(host="127.0.0.1", port=0, keys={KEY: NAME}),
                           http=HttpConfig(host="127.0.0.1", port=0),
                           admin=AdminConfig(port=0), hls=HlsConfig(grace_period=0.5)))
    await server.start()
    try:
        publisher = await PyAvPublisher.start(
            f"rtmp://127.0.0.1:{server.ingest.rtmp_port}/live/{KEY}", tmp_path / "encoded",
            seconds=6, realtime=True, width=320, height=240)
        [page] = await _play([f"http://127.0.0.1:{server.http_port}/watch/{NAME}"], 14)
        assert await asyncio.wait_for(publisher.process.wait(), 30) == 0  # it published all
    finally:
        await asyncio.wait_for(server.close(), 10)
    samples = page["samples"]
    assert any(s["state"] == "live" and s["frames"] for s in samples), page["console"][-10:]
    last = samples[-1]
    assert last["ended"] == "This broadcast has ended.", (last, page["console"][-10:])
    assert (last["state"] == "ended" and not last["hls"]) or last["ended"]
