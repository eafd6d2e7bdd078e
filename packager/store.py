"""Where packaged files live: one small interface, in memory (default) or on disk.

Keys are relative paths such as `main/source/seg-12.m4s`, built only by the packager from
validated stream names and its own counters. The origin still resolves every request through
`Store.get`, which refuses anything that is not a plain relative key, so nothing outside the
store is ever reachable.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")


def valid_key(key: str) -> bool:
    return bool(_KEY.match(key)) and not any(part in (".", "..") for part in key.split("/"))


class Store(Protocol):
    holds_playlists: bool  # write playlist files too (for other servers reading the store)

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def delete(self, key: str) -> None: ...
    def size(self) -> int: ...
    def path(self, key: str) -> Path | None:
        """The file holding `key`, if the store keeps files and it exists (for sendfile)."""


class MemoryStore:
    """Files in a dict: the default, nothing touches the disk."""

    holds_playlists = False

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        self._bytes = 0

    def put(self, key: str, data: bytes) -> None:
        if not valid_key(key):
            raise ValueError(f"bad store key {key!r}")
        old = self._files.get(key)
        if old is not None:
            self._bytes -= len(old)
        self._files[key] = data
        self._bytes += len(data)

    def get(self, key: str) -> bytes | None:
        if not valid_key(key):
            return None
        return self._files.get(key)

    def delete(self, key: str) -> None:
        old = self._files.pop(key, None)
        if old is not None:
            self._bytes -= len(old)

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
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
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
        except FileNotFoundError:
            return
        self._bytes -= size

    def size(self) -> int:
        return self._bytes
