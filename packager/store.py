"""Where packaged files live: one small interface, in memory (default) or on disk.

Keys are relative paths such as `main/source/seg-12.m4s`, built only by the packager from
validated stream names and its own counters. The origin still resolves every request through
`Store.get`, which refuses anything that is not a plain relative key, so nothing outside the
store is ever reachable.

A disk that fails (full, its directory removed or made read-only under a running server)
must not stop a live stream: `FallbackStore` wraps the live `DiskStore` and keeps in memory
whatever it cannot write, so golive's origin goes on serving the stream from memory (the
playlists it renders itself anyway); only a server reading the directory (nginx) misses
those files. Memory holds no more than the memory store would: the packager deletes files
as they leave the live window. Never raising into the packager is the point: ending the
stream instead would punish viewers for an operator's disk. Each failure is counted (the
`on_error` callback: `golive_store_write_errors_total{stream,operation}`) and logged once
per stream, with the path and the errno; once the stream's last file held in memory is gone
(the broadcast ended, or the disk took every file again) a new failure is logged again.

Recordings use a plain `DiskStore`, which raises: a recording held in memory would be no
recording, so `BroadcastRecording` stops it instead. `check_directories` tests every
directory once at start-up, so a path that was never writable is an error at start rather
than at the first publish.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from golive.errors import ConfigError
from golive.packager.config import HlsConfig

log = logging.getLogger("golive.packager")

_KEY = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")


def valid_key(key: str) -> bool:
    return bool(_KEY.match(key)) and not any(part in (".", "..") for part in key.split("/"))


class Store(Protocol):
    holds_playlists: bool  # write playlist files too (for other servers reading the store)

    def put(self, key: str, data: bytes) -> None: ...
    def put_chunks(self, key: str, chunks: list[bytes]) -> None:
        """Store `key` as the join of `chunks` (a part: its moof and its samples' data). In
        memory the join waits for the first read: the samples are held as ingest made them,
        and a part nobody reads is never copied."""
    def put_joined(self, key: str, parts: list[str]) -> int:
        """Store `key` as the join of the files `parts` (a segment of its LL-HLS parts), which
        stay readable; the bytes joined. In memory the segment and its parts never hold the
        same bytes twice: the segment is joined when first read, and the parts then become
        views of the joined buffer."""
    def get(self, key: str) -> bytes | None: ...
    def delete(self, key: str) -> None: ...
    def size(self) -> int: ...
    def path(self, key: str) -> Path | None:
        """The file holding `key`, if the store keeps files and it exists (for sendfile)."""


class _Unjoined:
    """A file held as the buffers it is the join of, joined when first read: a part (its
    `chunks`: its moof and the samples' data as ingest made them) or a segment (its
    `members`: each part's key, what that key held, and its length).

    Most players of LL-HLS read parts only, and nobody reads the streams nobody watches:
    copying each part's samples together as it was muxed, and each segment's parts as it
    completed, were 10% and 16% of the event loop with 200 publishers and nobody watching
    (bench/packaging.py). A part read before its segment is joined gives its pieces up for
    its joined bytes, which the segment then takes: the bytes are never held twice."""

    __slots__ = ("body", "chunks", "members", "size")

    def __init__(self, chunks: list[bytes | memoryview], size: int,
                 members: tuple[tuple[str, object, int], ...] = ()) -> None:
        self.chunks = chunks
        self.members = members
        self.size = size
        self.body: bytes | None = None  # the join, once read

    def join(self) -> bytes:
        if not self.members:
            return b"".join(self.chunks)
        pieces: list[bytes | memoryview] = []
        for _, held, _ in self.members:
            if type(held) is _Unjoined:
                pieces += held.chunks
            else:
                pieces.append(held)  # type: ignore[arg-type]
        return b"".join(pieces)


class MemoryStore:
    """Files in a dict: the default, nothing touches the disk."""

    holds_playlists = False

    def __init__(self) -> None:
        self._files: dict[str, bytes | memoryview | _Unjoined] = {}
        self._views: set[str] = set()  # keys holding (a view of) another key's bytes
        self._bytes = 0  # held, counting each buffer once

    def put(self, key: str, data: bytes) -> None:
        if not valid_key(key):
            raise ValueError(f"bad store key {key!r}")
        self.delete(key)
        self._files[key] = data
        self._bytes += len(data)

    def put_chunks(self, key: str, chunks: list[bytes]) -> None:
        if not valid_key(key):
            raise ValueError(f"bad store key {key!r}")
        self.delete(key)
        held = _Unjoined(list(chunks), sum(len(c) for c in chunks))
        self._files[key] = held
        self._bytes += held.size

    def put_joined(self, key: str, parts: list[str]) -> int:
        if not valid_key(key):
            raise ValueError(f"bad store key {key!r}")
        self.delete(key)
        members = []
        for part in parts:
            held = self._files.get(part)
            if held is None:  # (a part deleted meanwhile stays deleted)
                continue
            length = held.size if type(held) is _Unjoined else len(held)  # type: ignore[arg-type]
            members.append((part, held, length))
            # Its bytes are counted with the segment from now on: held once.
            if part not in self._views:
                self._views.add(part)
                self._bytes -= length
        segment = _Unjoined([], sum(m[2] for m in members), tuple(members))
        self._files[key] = segment
        self._bytes += segment.size
        return segment.size

    def _read(self, key: str) -> bytes | memoryview | None:
        held = self._files.get(key)
        if type(held) is not _Unjoined:
            return held
        body = held.join()
        held.body = body
        held.chunks = [body]  # (the pieces go: a segment joined later takes these bytes)
        self._files[key] = body
        offset, view = 0, memoryview(body)
        for part, was, length in held.members:
            now = self._files.get(part)
            # The part as it was put, or the bytes it was joined into when read: from now
            # on a view of the segment (not when deleted or replaced meanwhile).
            if now is not None and (now is was or (type(was) is _Unjoined and now is was.body)):
                self._files[part] = view[offset:offset + length]
            offset += length
        held.members = ()
        return body

    def get(self, key: str) -> bytes | None:
        if not valid_key(key):
            return None
        # A view is bytes-like: the origin sends it as it is (no copy); len() and slicing
        # for ranges work the same.
        return self._read(key)  # type: ignore[return-value]

    def delete(self, key: str) -> None:
        old = self._files.pop(key, None)
        if old is None:
            return
        if key in self._views:
            # Its bytes were counted with the joined file (they stay alive while any view
            # of them does; parts outlive their segment by a few seconds at most).
            self._views.discard(key)
        else:
            self._bytes -= old.size if type(old) is _Unjoined else len(old)  # type: ignore[arg-type]

    def size(self) -> int:
        return self._bytes

    def keys(self) -> list[str]:
        return list(self._files)

    def path(self, key: str) -> Path | None:
        return None


class DiskStore:
    """Files under one directory, written atomically (temporary file, then rename), so a
    reader (golive's origin, or nginx serving the same directory) never sees half a file."""

    holds_playlists = True

    def __init__(self, root: str | Path) -> None:
        # Not made here: `put` makes every directory it needs (the root too), so a root
        # that cannot be made fails in `put`, where the caller handles a failing disk.
        self.root = Path(root).resolve()
        self._bytes = 0

    def _path(self, key: str) -> Path | None:
        if not valid_key(key):
            return None
        path = (self.root / key).resolve()
        return path if path.is_relative_to(self.root) else None

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if path is None:
            raise ValueError(f"bad store key {key!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.stat().st_size if path.exists() else 0
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._bytes += len(data) - old

    def put_chunks(self, key: str, chunks: list[bytes]) -> None:
        self.put(key, b"".join(chunks))

    def put_joined(self, key: str, parts: list[str]) -> int:
        return _put_read_back(self, key, parts)

    def path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path is not None and path.is_file() else None

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path is None:
            return
        try:
            size = path.stat().st_size
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):  # no such file, as in `get`
            return
        self._bytes -= size

    def size(self) -> int:
        return self._bytes


class MirroredStore:
    """A store on disk (for nginx, a CDN origin pull, a look at the files) whose live files
    golive's own origin serves from a copy in memory.

    Measured (2026-12-04, bench/origin_load.py, wrk, 32 connections, one 0.6-0.8 MB segment
    of a live 720p stream): from the disk 1,150-1,370 requests/s (0.26x nginx), from memory
    3,560 (0.53-0.83x nginx's 4,300-6,800 across runs; about 2.8 GB/s). The disk
    path is slow because uvloop has no `loop.sendfile`, so aiohttp's FileResponse falls back
    to reading the file in a thread and writing it through Python. The copy costs what the
    memory store holds anyway: the window and its retention, segments held once with their
    parts (`put_joined`), dropped when the packager deletes them."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.holds_playlists = inner.holds_playlists
        self._memory = MemoryStore()

    def put(self, key: str, data: bytes) -> None:
        self._memory.put(key, data)
        self.inner.put(key, data)

    def put_chunks(self, key: str, chunks: list[bytes]) -> None:
        data = b"".join(chunks)  # (the disk needs the joined bytes now: held once, joined)
        self._memory.put(key, data)
        self.inner.put(key, data)

    def put_joined(self, key: str, parts: list[str]) -> int:
        size = self._memory.put_joined(key, parts)
        body = self._memory.get(key)
        self.inner.put(key, body if body is not None else b"")  # (no need to read the parts back)
        return size

    def get(self, key: str) -> bytes | None:
        data = self._memory.get(key)
        return data if data is not None else self.inner.get(key)

    def path(self, key: str) -> Path | None:
        return None if self._memory.get(key) is not None else self.inner.path(key)

    def delete(self, key: str) -> None:
        self._memory.delete(key)
        self.inner.delete(key)

    def size(self) -> int:
        return self.inner.size()

    def memory_size(self) -> int:
        return self._memory.size()


def _put_read_back(store: Store, key: str, parts: list[str]) -> int:
    """`put_joined` for a store of files: the parts read back and written joined."""
    body = b"".join(store.get(part) or b"" for part in parts)
    store.put(key, body)
    return len(body)


def _reason(exc: OSError) -> str:
    """`[Errno 28] No space left on device`: the OS's reason without the file name."""
    return f"[Errno {exc.errno}] {exc.strerror}" if exc.errno is not None else str(exc)


class FallbackStore:
    """A `DiskStore` that keeps in memory what it cannot write: `put` and `delete` never
    raise an OSError (see the module docstring). `on_error(stream, operation)` hears of every
    failed "write" or "delete"; the stream is a key's first part."""

    holds_playlists = True

    def __init__(self, disk: DiskStore,
                 on_error: Callable[[str, str], None] | None = None) -> None:
        self.disk = disk
        self._memory = MemoryStore()
        self._on_error = on_error
        self._held: Counter[str] = Counter()  # stream -> its files held in memory
        self._reported: set[str] = set()  # streams whose failure is logged

    def put(self, key: str, data: bytes) -> None:
        try:
            self.disk.put(key, data)
        except OSError as exc:
            self._failed(key, "write", exc, "serving from memory")
            if self._memory.get(key) is None:
                self._held[_stream(key)] += 1
            self._memory.put(key, data)
        else:
            self._forget(key)  # a newer copy is on disk now

    def put_chunks(self, key: str, chunks: list[bytes]) -> None:
        self.put(key, b"".join(chunks))

    def put_joined(self, key: str, parts: list[str]) -> int:
        # Parts held in memory (the disk failed) are joined with those on disk; the segment
        # then goes where `put` can put it.
        return _put_read_back(self, key, parts)

    def get(self, key: str) -> bytes | None:
        data = self._memory.get(key)
        return data if data is not None else self.disk.get(key)

    def path(self, key: str) -> Path | None:
        return None if self._memory.get(key) is not None else self.disk.path(key)

    def delete(self, key: str) -> None:
        self._forget(key)
        try:
            self.disk.delete(key)
        except OSError as exc:
            self._failed(key, "delete", exc, "the file stays on disk")

    def size(self) -> int:
        return self.disk.size() + self._memory.size()

    def _forget(self, key: str) -> None:
        if self._memory.get(key) is None:
            return
        self._memory.delete(key)
        stream = _stream(key)
        self._held[stream] -= 1
        if self._held[stream] <= 0:  # nothing of it left in memory: a new failure is news
            del self._held[stream]
            self._reported.discard(stream)

    def _failed(self, key: str, operation: str, exc: OSError, consequence: str) -> None:
        stream = _stream(key)
        if self._on_error is not None:
            self._on_error(stream, operation)
        if stream not in self._reported:
            self._reported.add(stream)
            log.error("stream %s: cannot %s %s: %s; %s", stream, operation,
                      self.disk.root / key, _reason(exc), consequence)


def _stream(key: str) -> str:
    return key.split("/", 1)[0]


def check_directory(directory: str | Path) -> None:
    """Raise the OSError that stops writing in `directory`: it is made if missing, then a
    probe file is written there and removed."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
    path.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=path, prefix=".golive-probe-")
    try:
        os.write(fd, b"probe")
    finally:
        os.close(fd)
        os.unlink(probe)


def check_directories(hls: HlsConfig) -> None:
    """At start-up: every directory the HLS settings name is writable, else a ConfigError
    naming the setting, the path and the OS's reason."""
    for setting, option, directory in (("hls.store_dir", "--store-dir", hls.store_dir),
                                       ("hls.record_dir", "--record-dir", hls.record_dir)):
        if not directory:
            continue
        try:
            check_directory(directory)
        except OSError as exc:
            raise ConfigError(f"{setting} ({option}): cannot write to {directory}: "
                              f"{_reason(exc)}") from exc
