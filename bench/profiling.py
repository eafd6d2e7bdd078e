"""Sampling profiles of a running server with py-spy (all threads, native code excluded).

cProfile (`--profile`) sees only the event-loop thread and slows it down; py-spy samples
every thread from outside at little cost, so it also shows the codec probes that golive runs
in worker threads. py-spy is optional: `pip install py-spy` into the venv.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy_binary() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


class PySpy:
    """`py-spy record` attached to `pid` while the block runs; raw (collapsed) stacks."""

    def __init__(self, pid: int, output: str, rate: int = 250) -> None:
        binary = py_spy_binary()
        if binary is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.command = [
            binary,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--output",
            output,
            "--threads",
            "--function",
            "--nonblocking",
        ]
        self.output = output
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PySpy:
        self.proc = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if not Path(self.output).exists():
            raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')[-2000:]}")


def top_cprofile(path: str, limit: int = 15) -> str:
    """Top functions by own time from a cProfile dump, leaving out the event loop's wait in
    epoll (nothing with a CPU clock; most of the time with a wall clock)."""
    import pstats

    stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
    rows = []
    busy = 0.0
    for (filename, line, name), (_, calls, tottime, cumtime, _) in stats.items():
        where = f"{name}" if filename == "~" else f"{name} ({_short(filename)}:{line})"
        if "poll' of 'select.epoll" in name:
            continue
        busy += tottime
        rows.append((tottime, calls, cumtime, where))
    rows.sort(reverse=True)
    lines = [
        f"{'tottime':>8} {'%':>5} {'calls':>9} {'cumtime':>8}  function  "
        f"[{busy:.2f} s in all, epoll wait excluded]"
    ]
    for tottime, calls, cumtime, where in rows[:limit]:
        lines.append(
            f"{tottime:8.3f} {100 * tottime / busy:5.1f} {calls:9d} {cumtime:8.3f}  {where}"
        )
    return "\n".join(lines)


def _short(filename: str) -> str:
    parts = Path(filename).parts
    return "/".join(parts[-2:]) if len(parts) > 1 else filename


def top_functions(raw_path: str, limit: int = 15) -> str:
    """The functions with the most samples at the top of the stack ("self" time), with their
    share of all samples and their inclusive share, from py-spy's raw output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in Path(raw_path).read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("thread ", "process "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{'self %':>7} {'total %':>7}  function (file:line)  [{total} samples]"]
    for frame, count in own.most_common(limit):
        lines.append(f"{100 * count / total:7.1f} {100 * inclusive[frame] / total:7.1f}  {frame}")
    return "\n".join(lines)
