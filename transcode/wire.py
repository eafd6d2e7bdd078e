"""Messages between the server and its transcode workers: pickled tuples, each framed by a
4-byte big-endian length, over a Unix socket pair. Both ends are golive's own processes.

Server -> worker: ("start", session, Track, rungs, EncoderSettings), ("unit", session,
MediaUnit, idr), ("stop", session).
Worker -> server: ("item", session, rung name, Track | MediaUnit), ("stats", session,
WorkerStats), ("stopped", session), ("failed", session, reason).
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import IO, Any

HEADER = struct.Struct(">I")
MAX_MESSAGE = 64 * 1024 * 1024  # a frame larger than any video unit ingest accepts


def frame(message: tuple[Any, ...]) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload)) + payload


def read(stream: IO[bytes]) -> tuple[Any, ...] | None:
    """The next message from a blocking stream; None at the end of the stream."""
    try:
        header = stream.read(HEADER.size)
    except ConnectionError:
        return None
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_MESSAGE:
        raise ValueError(f"message of {size} bytes")
    try:
        payload = stream.read(size)
    except ConnectionError:
        return None
    if len(payload) < size:
        return None
    return pickle.loads(payload)


async def read_async(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    try:
        header = await reader.readexactly(HEADER.size)
        (size,) = HEADER.unpack(header)
        if size > MAX_MESSAGE:
            raise ValueError(f"message of {size} bytes")
        return pickle.loads(await reader.readexactly(size))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
