"""The servers under test, as child processes that are always cleaned up.

`GoliveServer` runs `python -m bench.ingest_server`; `NginxRtmp` runs nginx with
libnginx-mod-rtmp as a single process (master_process off), so in both cases one PID holds
all the server's CPU time. Both are context managers: leaving the block, normally or by an
exception, terminates the process (then kills it if it lingers) and removes its files.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
NGINX_RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads included (/proc/PID/stat)."""
    return process_cpu_path(Path(f"/proc/{pid}/stat"))


def thread_cpu(pid: int) -> tuple[float, float]:
    """(main thread, all other live threads) CPU seconds: golive's event loop vs its worker
    threads (codec probes run in asyncio's default executor)."""
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            cpu = process_cpu_path(task / "stat")
        except OSError:
            continue  # the thread ended meanwhile
        if task.name == str(pid):
            main = cpu
        else:
            other += cpu
    return main, other


def process_cpu_path(path: Path) -> float:
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    fields = path.read_bytes().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_cpu() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat), softirq included: on
    loopback the kernel's network work is a large share of a streaming server's cost."""
    with open("/proc/stat", "rb") as f:
        fields = f.readline().split()[1:]
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    busy = sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4))
    return busy / _TICKS


def machine_load(seconds: float = 1.0) -> float:
    """Cores busy over the next `seconds` (before a benchmark: anything else running skews it)."""
    before = machine_cpu()
    time.sleep(seconds)
    return (machine_cpu() - before) / seconds


def die_with_parent() -> None:
    """Runs in the child before exec: if the benchmark is killed outright (no chance to clean
    up), the kernel sends the server SIGTERM instead of leaving it running."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CpuSampler:
    """Samples processes' CPU time in a thread, to read utilisation over any time window.

    Besides the named processes it records "self" (this process: the publishers when they run
    in-process) and "machine" (every core), so other work on the machine can be told apart."""

    def __init__(self, pids: dict[str, int], interval: float = 0.25) -> None:
        self.pids = pids
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)

    def __enter__(self) -> CpuSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        values = {"machine": machine_cpu(), "self": process_cpu(os.getpid())}
        for name, pid in self.pids.items():
            try:
                values[name] = process_cpu(pid)
            except OSError:
                values[name] = float("nan")
        self.samples.append((time.monotonic(), values))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def utilisation(self, name: str, start: float, end: float) -> float | None:
        """CPU seconds per second of `name` between the samples nearest `start` and `end`."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < self.interval:
            return None
        (t0, v0), (t1, v1) = inside[0], inside[-1]
        return (v1[name] - v0[name]) / (t1 - t0)


class ServerProcess:
    """A server as a child process. Subclasses start it in `__enter__`, its output going to
    the temporary file `_log`, its files (if any) in the temporary directory `dir`; leaving
    the block stops it (SIGTERM, then SIGKILL if it lingers) and removes both."""

    name = "server"
    proc: subprocess.Popen[bytes] | None = None
    port = 0
    dir = ""  # the server's temporary directory; "" when it has none (yet)
    _log: IO[bytes] | None = None

    def log(self, limit: int = 4000) -> str:
        """The end of what the server wrote, for error messages."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-limit:]

    def __exit__(self, *exc: object) -> None:
        # SIGTERM: golive shuts down cleanly (and writes its profile, if any), nginx fast.
        self._stop(signal.SIGTERM)
        if self._log is not None:
            self._log.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        return process_cpu(self.pid)

    def threads_cpu(self) -> tuple[float, float]:
        return thread_cpu(self.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class GoliveServer(ServerProcess):
    """golive with an arrival-recording subscriber (bench/ingest_server.py)."""

    name = "golive"

    def __init__(
        self,
        *,
        profile: str | None = None,
        log_level: str = "WARNING",
        subscriber: bool = True,
        startup_timeout: float = 30.0,
    ) -> None:
        self.profile = profile
        self.subscriber = subscriber
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self.http_port = 0

    def __enter__(self) -> GoliveServer:
        cmd = [
            sys.executable,
            "-m",
            "bench.ingest_server",
            "--rtmp-port",
            "0",
            "--http-port",
            "0",
            "--log-level",
            self.log_level,
        ]
        if self.profile:
            cmd += ["--profile", self.profile]
        if not self.subscriber:
            cmd.append("--no-subscriber")
        self._log = tempfile.TemporaryFile(prefix="golive-bench-log-")
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            preexec_fn=die_with_parent,
        )
        try:
            ready = self._read_json(self.startup_timeout)
            if ready.get("event") != "ready":
                raise RuntimeError(f"golive said {ready!r} instead of ready")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.port = int(ready["rtmp_port"])
        self.http_port = int(ready["http_port"])
        return self

    def _read_json(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"golive printed nothing in {timeout:g} s; log:\n{self.log()}")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"golive exited ({self.proc.poll()}); log:\n{self.log()}")
        return dict(json.loads(line))

    def dump(self, timeout: float = 60.0) -> dict[str, Any]:
        """Ask for the arrival times; the server exits after printing them."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"dump\n")
        self.proc.stdin.flush()
        result = self._read_json(timeout)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._stop()
        return result

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            # Nobody will read the arrival dump SIGTERM makes it print: close the pipe first,
            # so that a dump larger than the pipe buffer cannot block its exit.
            self.proc.stdout.close()
        super().__exit__(*exc)
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()


def nginx_rtmp_available() -> str | None:
    """The nginx binary when nginx and the RTMP module are both installed, else None."""
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    return binary if binary and NGINX_RTMP_MODULE.exists() else None


NGINX_CONF = """\
load_module {module};
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 8192; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
{hls}        }}
    }}
}}
"""


# nginx-rtmp's classic HLS (MPEG-TS fragments and playlists written to disk), set like a
# typical deployment but to golive's own segmenting, so that both package the same: 2 s
# fragments cut at keyframes (hls_fragment), six of them listed (hls_playlist_length 12s),
# old fragments removed by the module's cleaner (hls_cleanup, its default).
NGINX_HLS = """\
            hls on;
            hls_path {hls_path};
            hls_fragment 2s;
            hls_playlist_length 12s;
            hls_cleanup on;
"""


class NginxRtmp(ServerProcess):
    """nginx-rtmp as one process, configured like the issue's reference measurement; with
    `hls`, packaging every stream to classic HLS in `hls_path` (NGINX_HLS: `<key>.m3u8` and
    `<key>-N.ts` in a directory of its temporary one)."""

    name = "nginx-rtmp"

    def __init__(self, binary: str, startup_timeout: float = 10.0, *, hls: bool = False) -> None:
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.hls = hls
        self.hls_path = ""

    def __enter__(self) -> NginxRtmp:
        self.dir = tempfile.mkdtemp(prefix="golive-bench-nginx-")
        self._log = tempfile.TemporaryFile(prefix="golive-bench-nginx-log-")
        hls = ""
        if self.hls:
            self.hls_path = os.path.join(self.dir, "hls")
            os.mkdir(self.hls_path)
            hls = NGINX_HLS.format(hls_path=self.hls_path)
        try:
            for _attempt in range(3):  # the free port may be taken between bind and listen
                self.port = free_port()
                conf = Path(self.dir) / "nginx.conf"
                conf.write_text(
                    NGINX_CONF.format(
                        module=NGINX_RTMP_MODULE, dir=self.dir, port=self.port, hls=hls
                    )
                )
                self.proc = subprocess.Popen(
                    [self.binary, "-p", self.dir + "/", "-e", "stderr", "-c", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=self._log,
                    preexec_fn=die_with_parent,
                )
                if self._wait_listening():
                    return self
                self._stop()
            raise RuntimeError(f"nginx-rtmp did not start; log:\n{self.log()}")
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return True
            time.sleep(0.05)
        return False


async def end_child(proc: asyncio.subprocess.Process | None, log: IO[bytes] | None) -> None:
    """Stop a load generator's process (SIGTERM, then SIGKILL after 10 s) and close its log."""
    if proc is not None and proc.returncode is None:
        proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if log is not None:
        log.close()
