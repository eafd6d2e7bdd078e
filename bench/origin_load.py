"""HLS origin throughput: golive against nginx serving the very same files, under `wrk`
(`python -m bench.origin_load [--quick] [--no-wrk]`).

golive runs with its store on disk (then in memory) and a real-time publisher (bench/hls.py:
720p25, ~2.5 Mb/s, 2 s segments) keeps the stream live throughout, as in production:
playlists change every part.
nginx (one process, one worker, sendfile) serves golive's store directory as static files,
plus a snapshot of golive's media playlist written to disk (golive keeps playlists in memory).
Loads, each for a few seconds with one wrk thread (the machine's other core runs the server):

playlist       the media playlist, non-blocking, as wrk asks (no Accept-Encoding)
playlist-gzip  the same with Accept-Encoding: gzip (what browsers send; both compress it)
segment-disk   one complete ~2 s segment (~0.6 MB), the newest at the time, from --store-dir
part-disk      one LL-HLS part (~0.1 MB) of the segment being written, the same way
segment-memory, part-memory   the same from a second golive with its store in memory (the
               default); nginx serves a copy of the same bytes from a directory

Reported: requests/s, MB/s (wrk's Transfer/sec: bodies and headers) and the server's CPU over
the load (/proc, % of one core). Without wrk, an aiohttp load generator in a separate process
stands in; it is much slower than wrk, so it measures itself as much as the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from . import Options, Row, benchmark, exit_on_sigterm, format_table
from .hls import (
    STREAM,
    GoliveHls,
    NginxHttp,
    Publication,
    clip,
    log,
    nginx_binary,
    parse_playlist,
    publish,
)
from .servers import REPO, ServerProcess, machine_cpu, process_cpu

CONNECTIONS = 32
BUSY_MACHINE = 0.15  # cores of other work that make a measurement suspect
NO_WRK = False  # --no-wrk: use the aiohttp load generator even when wrk is installed
MB = 1e6
_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


@dataclass
class Load:
    server: str
    what: str
    requests_per_s: float
    bytes_per_s: float
    cpu: float  # server cores busy during the load
    errors: int  # non-2xx answers and socket errors
    tool: str
    client_cpu: float = 0.0  # the load generator's cores
    other_cpu: float = 0.0  # cores busy with anything else (other processes, kernel)

    @property
    def per_cpu(self) -> float:
        return self.requests_per_s / self.cpu if self.cpu > 0 else math.nan


def _size(number: str, unit: str) -> float:
    return float(number) * _UNITS[unit]


def run_wrk(url: str, seconds: float, headers: dict[str, str]) -> tuple[float, float, int]:
    """(requests/s, bytes/s, errors) from wrk's summary."""
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--timeout", "10s"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    result = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60)
    out = result.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)([KMGT]?B)", out)
    if result.returncode != 0 or not rate or not transfer:
        raise RuntimeError(f"wrk failed ({result.returncode}): {out}{result.stderr}")
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(v) for v in m.groups())
    return float(rate.group(1)), _size(*transfer.groups()), errors


def run_fallback(url: str, seconds: float, headers: dict[str, str]) -> tuple[float, float, int]:
    """The aiohttp load generator (`load` below) in a child process."""
    cmd = [sys.executable, "-m", "bench.origin_load", "load", url, "--seconds", str(seconds)]
    for name, value in headers.items():
        cmd += ["--header", f"{name}: {value}"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        raise RuntimeError(f"load generator failed: {result.stderr}")
    data = json.loads(result.stdout)
    return data["requests"] / data["seconds"], data["bytes"] / data["seconds"], data["errors"]


async def _aiohttp_load(url: str, seconds: float, headers: dict[str, str]) -> dict[str, float]:
    totals = {"requests": 0, "bytes": 0, "errors": 0}
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        end = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < end:
                try:
                    async with session.get(url, headers=headers) as response:
                        body = await response.read()
                    totals["requests"] += 1
                    totals["bytes"] += len(body)
                    totals["errors"] += response.status != 200
                except aiohttp.ClientError:
                    totals["errors"] += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return {**totals, "seconds": time.monotonic() - started}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for children: the load tool
    return usage.ru_utime + usage.ru_stime


def measure(
    server: ServerProcess, what: str, url: str, seconds: float, headers: dict[str, str]
) -> Load:
    tool = "wrk" if shutil.which("wrk") and not NO_WRK else "aiohttp"
    runner = run_wrk if tool == "wrk" else run_fallback
    before = (server.cpu(), machine_cpu(), process_cpu(os.getpid()), _children_cpu())
    t0 = time.monotonic()
    rate, transfer, errors = runner(url, seconds, headers)
    elapsed = time.monotonic() - t0
    after = (server.cpu(), machine_cpu(), process_cpu(os.getpid()), _children_cpu())
    server_cpu, machine, own, client = (
        (b - a) / elapsed for a, b in zip(before, after, strict=True)
    )
    load = Load(server.name, what, rate, transfer, server_cpu, errors, tool)
    load.client_cpu = client
    load.other_cpu = machine - server_cpu - own - client
    log(
        f"{server.name} {what}: {rate:,.0f} req/s, {transfer / MB:,.1f} MB/s, server CPU "
        f"{server_cpu * 100:.0f}%, {tool} {client * 100:.0f}%, everything else "
        f"{load.other_cpu * 100:.0f}% (of {os.cpu_count() or 0}00%), {errors} errors"
    )
    return load


async def _playlist(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        return await response.text() if response.status == 200 else ""


async def _fetch(session: aiohttp.ClientSession, url: str) -> bytes:
    async with session.get(url) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
        return await response.read()


async def _origin(golive: GoliveHls, seconds: float, warmup_segments: int,
                  *, playlists: bool) -> list[Load]:
    """The loads against golive and nginx: playlists (when `playlists`: they do not depend
    on the store), then a segment and a part, from golive's store (`golive.disk`: its
    directory, which nginx serves too; else memory, and nginx serves a copy of the same
    files from a directory of its own)."""
    store = "disk" if golive.disk else "memory"
    stop = asyncio.Event()
    publication = Publication()
    publisher = asyncio.create_task(publish(golive.port, stop, publication, clip()))
    playlist_url = golive.base_url + "index.m3u8"
    loads: list[Load] = []
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 30
            while len(parse_playlist(await _playlist(session, playlist_url)).segments) < (
                warmup_segments
            ):
                if publisher.done() or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"no segments from golive ({publication.error}); log:\n{golive.log()}"
                    )
                await asyncio.sleep(0.2)
            # golive's packaging alone, for the notes
            cpu0, t0 = golive.cpu(), time.monotonic()
            await asyncio.sleep(1.0)
            idle = (golive.cpu() - cpu0) / (time.monotonic() - t0)
            text = await _playlist(session, playlist_url)
            binary = nginx_binary()
            with contextlib.ExitStack() as stack:
                www = golive.store_dir
                if not golive.disk:  # nginx serves a copy of golive's bytes
                    www = stack.enter_context(tempfile.TemporaryDirectory(prefix="golive-www-"))
                nginx = stack.enter_context(NginxHttp(binary, www)) if binary else None
                servers: list[tuple[ServerProcess, str]] = [(golive, golive.base_url)]
                if nginx is not None:
                    nginx.put_playlist(f"live/{STREAM}/source/index.m3u8", text)
                    servers.append((nginx, nginx.base_url))
                for what, headers in (
                    (("playlist", {}), ("playlist-gzip", {"Accept-Encoding": "gzip"}))
                    if playlists else ()
                ):
                    for server, base in servers:
                        load = await asyncio.to_thread(
                            measure, server, what, base + "index.m3u8", seconds, headers
                        )
                        loads.append(load)
                # The newest complete segment, and a part of the segment being written:
                # listed (and kept) for the next ~20 s, longer than their loads.
                listing = parse_playlist(await _playlist(session, playlist_url))
                files = [("segment", f"seg-{listing.segments[-1]}.m4s"),
                         ("part", "part-{}.{}.m4s".format(*listing.parts[-1]))]
                # nginx's copies: in memory mode of every file, on disk of the part, which
                # golive deletes (with the playlist's parts) within seconds, sooner than a
                # load ends; golive's own copy lives a little longer, and a 404 is an error.
                copies = {}
                for kind, name in files:
                    if golive.disk and kind != "part":
                        continue
                    copies[name] = name if not golive.disk else f"kept-{name}"
                    path = Path(www) / STREAM / "source" / copies[name]  # (the store's layout)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(await _fetch(session, golive.base_url + name))
                for kind, name in files:
                    for server, base in servers:
                        url = base + (name if server is golive else copies.get(name, name))
                        size = len(await _fetch(session, url))
                        load = await asyncio.to_thread(
                            measure, server, f"{kind}-{store}", url, seconds, {})
                        load.what = f"{kind}-{store} ({size / MB:.2f} MB)"
                        loads.append(load)
            if playlists:
                loads.append(Load("golive", "idle", 0.0, 0.0, idle, 0, ""))
                loads.append(Load("golive", "playlist size", len(text), 0.0, 0.0, 0, ""))
    finally:
        stop.set()
        await publisher
    if publication.error:
        raise RuntimeError(f"publisher: {publication.error}")
    return loads


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def rows(loads: list[Load]) -> list[Row]:
    idle = next(x.cpu for x in loads if x.what == "idle")
    playlist_bytes = next(x.requests_per_s for x in loads if x.what == "playlist size")
    out: list[Row] = []
    kinds = [
        x.what for x in loads if x.server == "golive" and x.what not in ("idle", "playlist size")
    ]
    for what in kinds:
        g = next(x for x in loads if x.server == "golive" and x.what == what)
        r = next(
            (x for x in loads if x.server != "golive" and x.what.split()[0] == what.split()[0]),
            None,
        )
        name = f"hls.origin.{what.split()[0]}"
        notes = [f"{what}, {CONNECTIONS} connections"]
        if what == "playlist":
            notes.append(
                f"LL-HLS media playlist of {playlist_bytes / 1000:.1f} kB; golive packaging "
                f"the live stream alone: {idle * 100:.0f}% CPU"
            )
        if g.tool != "wrk":
            notes.append(
                "load from an aiohttp generator, not wrk (absent or --no-wrk): client-bound "
                "figures, MB/s of bodies only"
            )
        busy = [
            f"{x.server} {x.other_cpu * 100:.0f}%"
            for x in (g, r)
            if x and x.other_cpu > BUSY_MACHINE
        ]
        if busy:
            notes.append(
                f"machine busy with other work during the load: {', '.join(busy)} of a core"
            )
        if g.errors or (r and r.errors):
            notes.append(f"errors: golive {g.errors}, nginx {r.errors if r else 0}")
        out += [
            Row(
                name,
                "requests/s",
                _num(g.requests_per_s),
                _num(r.requests_per_s) if r else "-",
                g.requests_per_s,
                r.requests_per_s if r else None,
                "; ".join(notes),
            ),
            Row(
                name,
                "MB/s",
                _num(g.bytes_per_s / MB, 1),
                _num(r.bytes_per_s / MB, 1) if r else "-",
                g.bytes_per_s,
                r.bytes_per_s if r else None,
            ),
            Row(name, "server CPU % (1 core)", _num(g.cpu * 100), _num(r.cpu * 100) if r else "-"),
            Row(
                name,
                "requests / server CPU-s",
                _num(g.per_cpu),
                _num(r.per_cpu) if r else "-",
                g.per_cpu,
                r.per_cpu if r else None,
            ),
        ]
    return out


@benchmark(
    "hls-origin",
    "HLS origin throughput under wrk: playlists and segments, golive vs nginx",
    reference="nginx (one process, sendfile) serving golive's store directory, when installed",
)
def run_origin(options: Options) -> list[Row]:
    seconds = 2.0 if options.quick else 6.0
    warmup = 2 if options.quick else 6  # full: a whole window, the playlist's steady size
    clip()  # encode before starting any server
    loads = []
    for disk in (True, False):
        with GoliveHls({}, disk=disk) as golive:
            loads += asyncio.run(_origin(golive, seconds, warmup, playlists=disk))
    return rows(loads)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.origin_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("mode", nargs="?", default="all", choices=["all", "load"])
    parser.add_argument("url", nargs="?", help="load: the URL to request")
    parser.add_argument("--quick", action="store_true", help="short loads")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds per load")
    parser.add_argument("--header", action="append", default=[], help="load: NAME: VALUE")
    parser.add_argument("--no-wrk", action="store_true", help="the aiohttp load generator")
    args = parser.parse_args(argv)
    global NO_WRK
    NO_WRK = args.no_wrk
    exit_on_sigterm()
    if args.mode == "load":  # the aiohttp load generator, for when wrk is missing
        headers = dict(h.split(": ", 1) for h in args.header)
        print(json.dumps(asyncio.run(_aiohttp_load(args.url, args.seconds, headers))))
        return
    print(format_table(run_origin(Options(quick=args.quick)), "nginx"))


if __name__ == "__main__":
    main()
