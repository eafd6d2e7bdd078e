"""golive benchmarks: each measures golive and, when it is installed, a reference server under
the same load, and reports rows for one table (`python -m bench`).

    make bench                          installs nginx + libnginx-mod-rtmp, runs everything
    python -m bench [--quick] [--only ingest]
    python -m bench.ingest realtime --publishers 800
    python -m bench.ingest flood --py-spy /tmp/golive.spy     (pip install py-spy first)
    python -m bench.ingest flood --profile /tmp/golive.prof   (cProfile, event-loop thread)

Run them from the repository root on an otherwise idle machine: every figure is CPU time or
latency on a shared 2-core box, and the runner warns when something else was using it.

A benchmark is a function from `Options` to a list of `Row`s, registered in `BENCHMARKS` by
`@benchmark(name)`. Later benchmarks (HLS, transcode) add a module with one such function and
import it in `bench/__main__.py`; the runner, table and `--only` work for them unchanged.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    """What every benchmark is told; each one maps `quick` to its own small counts."""

    quick: bool = False


@dataclass(frozen=True)
class Row:
    """One line of the results table.

    `golive` and `reference` are display strings (a figure may be "12/40/95" or "yes"); the
    ratio is computed from `golive_value` / `reference_value` when both are numbers, so a row
    that cannot be compared (latency of a server we cannot observe) simply has no ratio. The
    ratio is golive / reference whichever way is better: the unit says what is measured.
    """

    name: str
    unit: str
    golive: str
    reference: str = "-"
    golive_value: float | None = None
    reference_value: float | None = None
    note: str = ""

    @property
    def ratio(self) -> str:
        if self.golive_value is None or not self.reference_value:
            return "-"
        return f"{self.golive_value / self.reference_value:.2f}"


@dataclass(frozen=True)
class Benchmark:
    name: str
    run: Callable[[Options], list[Row]]
    description: str = ""
    reference: str = ""  # what the "reference" column measures, e.g. "nginx-rtmp"
    in_full_run: bool = True  # False: only when named (`--only`): it repeats others' runs


BENCHMARKS: list[Benchmark] = []


def benchmark(
    name: str, description: str = "", reference: str = "", *, in_full_run: bool = True
) -> Callable[[Callable[[Options], list[Row]]], Callable[[Options], list[Row]]]:
    """Register a benchmark function under `name` (the order of registration is run order);
    `in_full_run` False: run only when named, as a benchmark made of the others is."""

    def register(fn: Callable[[Options], list[Row]]) -> Callable[[Options], list[Row]]:
        if any(b.name == name for b in BENCHMARKS):
            raise ValueError(f"benchmark {name!r} registered twice")
        BENCHMARKS.append(Benchmark(name, fn, description or (fn.__doc__ or "").strip(),
                                    reference, in_full_run))
        return fn

    return register


def format_table(rows: list[Row], reference_name: str = "reference") -> str:
    """A plain-text table; plain so that it reads the same in a terminal and in CI logs."""
    header = ("benchmark", "unit", "golive", reference_name, "ratio")
    lines = [(r.name, r.unit, r.golive, r.reference, r.ratio) for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(
            str(c).ljust(w) if i < 2 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [fmt(header), fmt(tuple("-" * w for w in widths))]
    out += [fmt(line) for line in lines]
    notes = [f"  [{r.name}] {r.note}" for r in rows if r.note]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out)


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so every server a benchmark started gets stopped by
    its context manager (the servers also get SIGTERM from the kernel if we die outright)."""

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
