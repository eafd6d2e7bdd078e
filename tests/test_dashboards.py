"""The Grafana dashboard and the Prometheus alert rules of deploy/, against the real thing.

`promtool` checks the rules and runs their unit tests (deploy/prometheus/golive-alerts.test.yml:
what fires when, on made-up series). Then a real Prometheus (Debian's package, `make
prometheus`) scrapes a live golive every second — a paced RTMP publisher, a 180p ladder, an
LL-HLS viewer doing blocking reloads, one refused publish and one broken handshake — and
every dashboard query and every alert's measure must return data with a value.

The alerts' convention (deploy/prometheus/golive-alerts.yml): each `expr` is
`<measure> <comparison> <number>`. The measure has a value for every live stream while all is
well, and the comparison picks the bad ones, so a healthy stream makes the alert silent while
its measure shows that the metric, its labels and the guards are right. The test evaluates
the measure (the expression without its last comparison) and also checks the deterministic
alerts are silent while the stream is healthy.

Prometheus here is our own instance on a free loopback port with its own storage, never the
system service the Debian package may start; it is stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from helpers import MakeServer, eventually, free_port
from publishers import RawPublisher, encode_clip

from golive.server import Server
from golive.transcode.config import TranscodeConfig

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "golive.json"
ALERTS = ROOT / "deploy" / "prometheus" / "golive-alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "golive-alerts.test.yml"
EXAMPLE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
KEY = "dash-key-0123456789"
NAME = "cam"
RATE_WINDOW = "5s"  # $__rate_interval and $__interval in the test: 5 scrapes
# Alerts whose measure cannot cross its threshold while the stream is healthy, whatever the
# machine's load (a slow encoder or a late live edge on a busy CI box is not a bug here).
SILENT_WHEN_HEALTHY = {"GolivePublisherGone", "GoliveStoreWriteErrors",
                       "GoliveTranscodeFailed", "GoliveDown", "GoliveWorkerRestarts"}
COMPARISON = re.compile(r"^(?P<measure>.*?)\s*(?:==|!=|>=|<=|>|<)\s*-?[0-9.]+\s*$", re.S)


def metrics_target(server: Server) -> tuple[str, str]:
    """Where Prometheus scrapes golive: host:port and path. The one place to change when
    /metrics moves to another listener."""
    return f"127.0.0.1:{server.admin_port}", "/metrics"  # the admin listener


def _tool(name: str) -> str:
    """prometheus or promtool; `make prometheus` once when missing, else a skip saying why."""
    found = shutil.which(name)
    if found:
        return found
    detail = "`make` is not there to install it"
    if shutil.which("make"):
        try:
            result = subprocess.run(["make", "--no-print-directory", "prometheus"], cwd=ROOT,
                                    capture_output=True, text=True, timeout=600)
            detail = (f"`make prometheus` exited {result.returncode}: "
                      + (result.stderr or result.stdout).strip()[-500:]) if result.returncode \
                else "`make prometheus` ran but did not provide it"
        except subprocess.TimeoutExpired:
            detail = "`make prometheus` timed out"
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (Debian's prometheus package) and {detail}")
    return found


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel, rows' nested panels included."""
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in items:
            yield item
            yield from panels(item.get("panels", []))

    model = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in panels(model["panels"])
            if panel["type"] != "row" for target in panel["targets"]]


def alert_names() -> list[str]:
    """The rules file's alerts, by name (their expressions come from Prometheus, which
    parsed the file: /api/v1/rules)."""
    return re.findall(r"^\s*- alert: (\w+)\s*$", ALERTS.read_text(), re.M)


def measure(expr: str) -> str:
    match = COMPARISON.match(expr.strip())
    assert match, f"not `<measure> <comparison> <number>`: {expr}"
    return match["measure"]


def substitute(expr: str) -> str:
    """The dashboard's variables as Grafana would fill them for the live stream."""
    for variable, value in (("$__rate_interval", RATE_WINDOW), ("$__interval", RATE_WINDOW),
                            ("$stream", NAME), ("$job", "golive")):
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a variable the test does not know: {expr}"
    return expr


# --- 1. the files ----------------------------------------------------------------------------


def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    promtool = _tool("promtool")
    for args in (["check", "rules", str(ALERTS)], ["test", "rules", str(ALERT_TESTS)],
                 ["check", "config", str(EXAMPLE_CONFIG)]):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"


def test_the_dashboard_is_a_grafana_model_with_a_query_on_every_panel() -> None:
    model = json.loads(DASHBOARD.read_text())
    assert model["schemaVersion"] >= 36 and model["uid"] and model["title"]
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["stream"]["query"]["query"] == (
        "label_values(golive_ingest_bytes_total, stream)")
    ids = []
    for panel in model["panels"]:
        ids.append(panel["id"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    rows = [p["title"] for p in model["panels"] if p["type"] == "row"]
    assert rows == ["Ingest", "Stream health", "Latency", "Ladder", "Origin", "Viewers",
                    "Process"]
    # Every metric the dashboard names exists (the README's table is the registry's).
    documented = set(re.findall(r"^\| `(\w+)` \|", (ROOT / "README.md").read_text(), re.M))
    for title, expr in dashboard_exprs():
        for name in re.findall(r"\b((?:golive|process)_\w+)", expr):
            base = re.sub(r"_bucket$", "", name)
            assert base in documented, f"{title}: {name} is not a golive metric"
    assert len(alert_names()) >= 6


# --- 2. a real Prometheus scraping a live golive -----------------------------------------------


@contextlib.asynccontextmanager
async def prometheus(server: Server, tmp_path: Path) -> AsyncIterator[str]:
    """Our own Prometheus scraping `server` every second with the alert rules: its URL."""
    binary = _tool("prometheus")
    target, path = metrics_target(server)
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "golive", "metrics_path": path,
                            "static_configs": [{"targets": [target]}]}]}))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 15
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{url}/-/ready") as response:
                        if response.status == 200:
                            break
                if process.returncode is not None or time.monotonic() > deadline:
                    raise AssertionError("prometheus did not start: "
                                         + (tmp_path / "prometheus.log").read_text()[-2000:])
                await asyncio.sleep(0.1)
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


async def query(session: aiohttp.ClientSession, url: str, expr: str) -> list[dict[str, Any]]:
    async with session.get(f"{url}/api/v1/query", params={"query": expr}) as response:
        body = await response.json()
    assert body["status"] == "success", f"{expr}: {body}"
    return list(body["data"]["result"])


async def scrapes(session: aiohttp.ClientSession, url: str) -> int:
    result = await query(session, url, 'count_over_time(up{job="golive"}[1m])')
    return int(float(result[0]["value"][1])) if result else 0


def _has_value(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(series["value"][1])) for series in result)


async def publish_in_real_time(publisher: RawPublisher, seconds: float) -> None:
    """The clip's tags at the pace of their timestamps, like a live encoder."""
    clip = encode_clip(seconds, 320, 240)
    started = time.monotonic()
    for tag in clip.tags:
        delay = started + tag.timestamp / 1000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await publisher.send_tags([tag])


async def watch(port: int) -> None:
    """An LL-HLS viewer: the master playlist, then blocking reloads of the 180p rendition up
    to each preload-hinted part, which it fetches."""
    base = f"http://127.0.0.1:{port}/live/{NAME}"
    hint = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-(\d+)\.(\d+)\.m4s"')
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(f"{base}/index.m3u8") as response:
            assert response.status == 200
        query_string = ""
        while True:
            async with session.get(f"{base}/180p/index.m3u8{query_string}") as response:
                text = await response.text()
            found = hint.search(text) if response.status == 200 else None
            if found is None:
                query_string = ""
                await asyncio.sleep(0.2)
                continue
            msn, part = found.groups()
            async with session.get(f"{base}/180p/part-{msn}.{part}.m4s") as response:
                await response.read()
            query_string = f"?_HLS_msn={msn}&_HLS_part={part}"


async def refused_publish_and_broken_handshake(rtmp_port: int) -> None:
    """One of each, so the dashboard's error panels have series."""
    refused = await RawPublisher.open(rtmp_port, "not-a-key")
    result = await refused.publish()
    assert result.code != "NetStream.Publish.Start"
    await refused.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", rtmp_port)
    writer.write(b"\x05" + bytes(1536))  # RTMP version 5: not RTMP
    await writer.drain()
    with contextlib.suppress(ConnectionError):
        await asyncio.wait_for(reader.read(), 5)
    writer.close()


async def test_every_dashboard_query_and_alert_measure_has_data_from_a_live_golive(
        make_server: MakeServer, tmp_path: Path) -> None:
    _tool("prometheus")  # before starting anything: skip early when missing
    started = time.monotonic()
    server = await make_server(keys={KEY: NAME},
                               transcode=TranscodeConfig(ladder=("180p@200k",)))
    await asyncio.to_thread(encode_clip, 30.0, 320, 240)  # encoded before the clock runs
    publisher = await RawPublisher.open(server.ingest.rtmp_port, KEY)
    assert (await publisher.publish()).code == "NetStream.Publish.Start"
    tasks = [asyncio.create_task(publish_in_real_time(publisher, 30.0))]
    try:
        def transcoded() -> bool:
            broadcast = server.packager.get(NAME)
            rung = broadcast.renditions.get("180p") if broadcast else None
            return bool(rung and rung.segments)

        await eventually(transcoded, timeout=20, what="a transcoded segment")
        tasks.append(asyncio.create_task(watch(server.http_port)))
        await refused_publish_and_broken_handshake(server.ingest.rtmp_port)
        async with prometheus(server, tmp_path) as url, aiohttp.ClientSession() as session:
            # A few scrapes: rate() over RATE_WINDOW needs two samples in it, and the rules
            # an evaluation with them.
            deadline = time.monotonic() + 20
            while await scrapes(session, url) < 7:
                assert time.monotonic() < deadline, "prometheus did not scrape golive"
                await asyncio.sleep(0.5)
            assert (await query(session, url, 'up{job="golive"}'))[0]["value"][1] == "1"
            for task in tasks:
                assert not task.done(), f"publisher or viewer stopped: {task}"

            async with session.get(f"{url}/api/v1/rules") as response:
                groups = (await response.json())["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            assert sorted(rule["name"] for rule in rules) == sorted(alert_names())
            for rule in rules:
                assert rule["type"] == "alerting", rule["name"]
                assert rule["labels"]["severity"] in ("warning", "critical"), rule["name"]
                assert {"summary", "description"} <= set(rule["annotations"]), rule["name"]

            empty = []
            exprs = [(f"panel {title!r}", substitute(expr)) for title, expr in dashboard_exprs()]
            exprs += [(f"alert {rule['name']} measure", measure(rule["query"]))
                      for rule in rules]
            for what, expr in exprs:
                if not _has_value(await query(session, url, expr)):
                    empty.append(f"{what}: {expr}")
            assert not empty, "no data while the stream is live:\n" + "\n".join(empty)

            for rule in rules:
                if rule["name"] in SILENT_WHEN_HEALTHY:
                    assert await query(session, url, rule["query"]) == [], (
                        f"{rule['name']} would fire for a healthy stream")
            bad = {rule["name"]: (rule["health"], rule.get("lastError")) for rule in rules
                   if rule["health"] != "ok"}
            assert not bad, f"rules not evaluated cleanly: {bad}"
            print(f"{len(exprs) - len(rules)} dashboard queries and {len(rules)} alert "
                  f"measures returned data")
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await publisher.close()
    assert time.monotonic() - started < 60
