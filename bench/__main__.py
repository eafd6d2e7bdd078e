"""`python -m bench`: run every registered benchmark and print one table.

python -m bench            the full set (a few minutes on a 2-core machine)
python -m bench --quick    small counts, under a minute: a smoke run
python -m bench --only ingest
python -m bench --only capacity    one node's capacity in one table (runs several of the others)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

from . import BENCHMARKS, Options, Row, exit_on_sigterm, format_table
from . import density as _density  # noqa: F401  (registers density)
from . import glass as _glass  # noqa: F401  (registers glass)
from . import hls_latency as _hls_latency  # noqa: F401  (registers hls-latency)
from . import ingest as _ingest  # noqa: F401  (registers the ingest benchmark)
from . import origin_load as _origin_load  # noqa: F401  (registers hls-origin)
from . import packaging as _packaging  # noqa: F401  (registers packaging)
from . import transcode as _transcode  # noqa: F401  (registers transcode)
from . import viewers as _viewers  # noqa: F401  (registers viewers)
from .capacity import run_capacity as _run_capacity  # noqa: F401  (capacity: --only only)
from .chat import run_chat as _run_chat  # noqa: F401  (registers chat, run last)
from .servers import machine_load

BUSY_BEFORE = 0.2  # cores busy on an idle machine: anything above is someone else's work


def main(argv: list[str] | None = None) -> int:
    names = [b.name for b in BENCHMARKS]
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    parser.add_argument(
        "--only",
        action="append",
        choices=names,
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(names)}",
    )
    args = parser.parse_args(argv)
    exit_on_sigterm()
    options = Options(quick=args.quick)
    busy = machine_load()
    if busy > BUSY_BEFORE:
        print(
            f"warning: the machine is already {busy * 100:.0f}% busy (of "
            f"{os.cpu_count()} cores x 100%) before any load; figures will be skewed",
            file=sys.stderr,
            flush=True,
        )
    rows: list[Row] = []
    failed = []
    references = []
    for bench in BENCHMARKS:
        if (bench.name not in args.only) if args.only else not bench.in_full_run:
            continue
        if bench.reference:
            references.append(f"{bench.name}: {bench.reference}")
        print(f"{bench.name}: {bench.description}", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            rows += bench.run(options)
        except Exception:
            # One broken benchmark must not hide the others' figures.
            traceback.print_exc()
            failed.append(bench.name)
            rows.append(Row(bench.name, "FAILED", "see the traceback above"))
        print(f"{bench.name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    print(format_table(rows, "reference"))
    if busy > BUSY_BEFORE:
        print(f"\nwarning: the machine was {busy * 100:.0f}% busy before the benchmarks started")
    if references:
        print("\nreference servers: " + "; ".join(references))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
