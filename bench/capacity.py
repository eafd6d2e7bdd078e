"""What one node carries, in one table (issue 12): `python -m bench --only capacity [--quick]`
or `python -m bench.capacity [--quick]`.

1. Packaging: N real-time OBS publishers (200; 20 with --quick) packaged to LL-HLS by golive
   (`--no-transcode`) and to classic HLS by nginx-rtmp (`hls on`), in the same run: CPU,
   busiest thread, RSS and RSS per stream (bench/packaging.py).
2. Origin: playlists, segments and parts under wrk, golive against nginx serving the same
   files, from --store-dir and from memory (bench/origin_load.py).
3. Viewers: the largest number of hls.js-like LL-HLS viewers one node holds on one 720p
   stream with every viewer within one part target + 0.5 s of live, directly with
   `--no-transcode` and with the ladder on (bench/viewers.py, bench/viewer_load.py).
4. Latency: glass-to-glass in the real watch page (hls.js in Chromium, read back from
   stamped frames: bench/glass.py) at the defaults, with the ladder and without, and
   without it while 1,500 viewers (goal 4's load) play the same stream.

Each part is its own benchmark too (`--only packaging`, `hls-origin`, `viewers`, `glass`);
this one runs them in an order that keeps each off the others' CPU, with the counts the
issue's goals name. It takes about 15 minutes (--quick: a few).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from . import Options, Row, benchmark, exit_on_sigterm, format_table
from .glass import browser_missing, measure_glass, stamped_clip
from .hls import SECRET, STREAM, GoliveHls, Publication, log, publish
from .origin_load import run_origin
from .packaging import packaging_rows, run_packaging
from .viewers import rows as viewer_rows
from .viewers import run_viewers, start_viewers

PUBLISHERS, QUICK_PUBLISHERS = 200, 20
PACKAGING_SECONDS, QUICK_PACKAGING_SECONDS = 45.0, 6.0  # (45: ~18 s with the retention full)
VIEWER_COUNTS = (1000, 1500, 2000, 2500)
LADDER_COUNTS = (500, 1000, 1500)
QUICK_VIEWER_COUNTS = (200,)
LOADED_VIEWERS = 1500  # goal 4's viewer load (--no-transcode), under which goal 5 is measured
GLASS_SECONDS, QUICK_GLASS_SECONDS = 60.0, 15.0


async def _glass(viewers: int, seconds: float, *, transcode: bool) -> Row:
    """Glass-to-glass in the watch page at golive's defaults (with its ladder unless not
    `transcode`), with `viewers` hls.js-like viewers on the same stream meanwhile (0: none)."""
    media = stamped_clip()
    args = ("--key", f"{STREAM}={SECRET}", *(() if transcode else ("--no-transcode",)))
    label = (f"capacity.glass.{'ladder' if transcode else 'no-transcode'}"
             f".{viewers}-viewers")
    with GoliveHls({}, disk=False, serve_args=args) as golive:
        publication, stop = Publication(), asyncio.Event()
        publisher = asyncio.create_task(publish(golive.port, stop, publication, media))
        base = f"http://127.0.0.1:{golive.http_port}"
        under = ""
        try:
            if viewers:
                async with start_viewers(f"{base}/live/{STREAM}/index.m3u8", viewers) as load:
                    result = await measure_glass(base, STREAM, seconds, publication,
                                                 media=media, warm_up=10.0)
                report = load.report or {}
                lag = report.get("lag_ms") or {}
                under = (f"; the viewers meanwhile: held {report.get('held')}, lag p95 "
                         f"{lag.get('p95')} ms, {report.get('requests_per_s')} req/s")
            else:
                result = await measure_glass(base, STREAM, seconds, publication, media=media,
                                             warm_up=10.0)
        finally:
            stop.set()
            await publisher
    p50 = result.median()
    return Row(label, "glass-to-glass p50 s (hls.js in Chromium, the watch page)",
               f"{p50:.2f}", golive_value=p50, note=result.summary() + under)


@benchmark(
    "capacity",
    "one node's capacity: publishers packaged, origin, viewers held, glass-to-glass latency",
    reference="nginx-rtmp (hls on) for packaging, nginx for the origin, in the same run",
    in_full_run=False,
)
def run_capacity(options: Options) -> list[Row]:
    quick = options.quick
    rows: list[Row] = []
    publishers = QUICK_PUBLISHERS if quick else PUBLISHERS
    rows += packaging_rows(run_packaging(
        publishers, seconds=QUICK_PACKAGING_SECONDS if quick else PACKAGING_SECONDS,
        quick=quick))
    rows += run_origin(options)
    direct = run_viewers(QUICK_VIEWER_COUNTS if quick else VIEWER_COUNTS, quick=quick,
                         stop_after_failure=True)
    rows += viewer_rows(direct)
    if not quick:
        rows += viewer_rows(run_viewers(LADDER_COUNTS, ladder=True, stop_after_failure=True))
    missing = browser_missing()
    if missing:
        rows.append(Row("capacity.glass", "glass-to-glass", "-",
                        note="not measured: " + "; ".join(missing)))
        return rows
    seconds = QUICK_GLASS_SECONDS if quick else GLASS_SECONDS
    viewers = QUICK_VIEWER_COUNTS[0] if quick else LOADED_VIEWERS
    for count, transcode in ((0, True), (0, False), (viewers, False)):
        row = asyncio.run(_glass(count, seconds, transcode=transcode))
        log(f"{row.name}: {row.note}")
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few minutes")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    print(format_table(run_capacity(Options(quick=args.quick)), "reference"))


if __name__ == "__main__":
    main(sys.argv[1:])
