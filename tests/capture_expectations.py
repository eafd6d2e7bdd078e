"""Independent expectations for the capture tests (the README table and the decoded traces),
plus the helpers the session tests share.

The expectations call no code under test. The figures come from tests/data/captures/README.md
(written by an independent parser when the sessions were recorded) and from the *.trace.txt
files. `ReplyReader` uses `ChunkDecoder` to read what the server wrote, and `Client` drives a
`ServerConnection` as a hand-built publisher.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from golive.ingest import amf0
from golive.ingest.chunk import ChunkDecoder, ChunkEncoder, ChunkLimits, RawMessage
from golive.ingest.connection import ConnectionConfig, ServerConnection
from golive.ingest.events import Event, PublishRequested
from golive.ingest.handshake import client_c0c1, client_c2

CAPTURES = Path(__file__).parent / "data" / "captures"
HANDSHAKE_BYTES = 1 + 1536 + 1536  # C0 + C1 + C2 (and S0 + S1 + S2 the other way)


@dataclass(frozen=True)
class CaptureRow:
    """One row of the README table."""

    name: str
    flash_ver: str  # "" where the README says "(none)"
    stream_key: str
    client_chunk_size: int
    video_msgs: int
    audio_msgs: int
    video_ts_span_ms: int
    first_video_tag: str
    first_video_csid: int

    @property
    def video_codec(self) -> str:
        """FFmpeg codec name of the first video tag, from the README's wording."""
        tag = self.first_video_tag
        if tag.startswith("AVC"):
            return "h264"
        if "hvc1" in tag:
            return "hevc"
        if "av01" in tag:
            return "av1"
        raise AssertionError(f"unexpected first video tag {tag!r} in the README")

    @property
    def c2s(self) -> Path:
        return CAPTURES / f"{self.name}.c2s.bin"

    @property
    def trace(self) -> Path:
        return CAPTURES / f"{self.name}.trace.txt"


def _split_row(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def readme_table() -> dict[str, CaptureRow]:
    """Parse the Markdown capture table of tests/data/captures/README.md."""
    lines = (CAPTURES / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| capture |"))
    header = _split_row(lines[start])
    expected_header = ["capture", "flashVer", "stream key", "client chunk size", "video msgs",
                       "audio msgs", "video ts span ms", "first video tag"]
    assert header == expected_header, header
    rows: dict[str, CaptureRow] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = dict(zip(header, _split_row(line), strict=True))
        tag = cells["first video tag"]
        match = re.search(r"csid (\d+)", tag)
        assert match, tag
        rows[cells["capture"]] = CaptureRow(
            name=cells["capture"],
            flash_ver="" if cells["flashVer"] == "(none)" else cells["flashVer"],
            stream_key=cells["stream key"],
            client_chunk_size=int(cells["client chunk size"]),
            video_msgs=int(cells["video msgs"]),
            audio_msgs=int(cells["audio msgs"]),
            video_ts_span_ms=int(cells["video ts span ms"]),
            first_video_tag=tag,
            first_video_csid=int(match.group(1)),
        )
    return rows


@dataclass
class Trace:
    """What the independent parser logged for one capture (client to server side)."""

    commands: list[list[object]] = field(default_factory=list)  # C>S CommandAMF0 values
    command_stream_ids: list[int] = field(default_factory=list)  # message stream id of each
    client_window_ack_sizes: list[int] = field(default_factory=list)
    client_chunk_sizes: list[int] = field(default_factory=list)
    audio_formats: set[str] = field(default_factory=set)
    digest_handshake: bool = False

    def command(self, name: str) -> list[object]:
        return next(c for c in self.commands if c[0] == name)

    @property
    def command_names(self) -> list[str]:
        return [str(c[0]) for c in self.commands]


_COMMAND = re.compile(r"C>S CommandAMF0 csid=\d+ sid=(\d+) (\[.*\])$")


def read_trace(path: Path) -> Trace:
    trace = Trace()
    for line in path.read_text(encoding="utf-8").splitlines():
        if (match := _COMMAND.search(line)) is not None:
            trace.command_stream_ids.append(int(match.group(1)))
            trace.commands.append(json.loads(match.group(2)))
        elif (match := re.search(r"C>S WindowAckSize (\d+)", line)) is not None:
            trace.client_window_ack_sizes.append(int(match.group(1)))
        elif (match := re.search(r"C>S SetChunkSize (\d+)", line)) is not None:
            trace.client_chunk_sizes.append(int(match.group(1)))
        elif "C>S Audio #" in line:
            trace.audio_formats.add(json.loads(line.split("C>S Audio #", 1)[1].split(" ", 1)[1])
                                    ["format"])
        elif "C>S handshake done" in line:
            trace.digest_handshake = "complex(digest)" in line
    return trace


# --- feeding helpers -----------------------------------------------------------------------


def random_pieces(data: bytes, seed: int, max_piece: int = 8192) -> Iterator[bytes]:
    rng = random.Random(seed)
    pos = 0
    while pos < len(data):
        size = rng.randint(1, max_piece)
        yield data[pos : pos + size]
        pos += size


def bytewise_then_pieces(data: bytes, bytewise: int, seed: int) -> Iterator[bytes]:
    for i in range(min(bytewise, len(data))):
        yield data[i : i + 1]
    yield from random_pieces(data[bytewise:], seed)


# --- reading what the server wrote ----------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One thing the server said: a message, or a Set Chunk Size (the decoder applies those
    silently, so they are recognised by the decoder's chunk size changing)."""

    type_id: int
    stream_id: int
    payload: bytes
    csid: int = 0

    def values(self) -> list[object]:
        return amf0.decode_all(self.payload)

    def u32(self) -> int:
        return int.from_bytes(self.payload[:4], "big")


SET_CHUNK_SIZE = 1


class ReplyReader:
    """Decodes the server's output one byte at a time so the position of a Set Chunk Size among
    the other messages is observable through the public `chunk_size` attribute."""

    def __init__(self) -> None:
        self._decoder = ChunkDecoder(ChunkLimits())
        self.replies: list[Reply] = []

    def feed(self, data: bytes) -> list[Reply]:
        new: list[Reply] = []
        for i in range(len(data)):
            before = self._decoder.chunk_size
            messages: list[RawMessage] = self._decoder.feed(data[i : i + 1])
            if self._decoder.chunk_size != before:
                new.append(Reply(SET_CHUNK_SIZE, 0, self._decoder.chunk_size.to_bytes(4, "big")))
            new.extend(Reply(m.type_id, m.stream_id, m.payload, m.csid) for m in messages)
        self.replies.extend(new)
        return new


# --- a hand-built publisher ---------------------------------------------------------------


class Client:
    """A publisher made of the handshake helpers, ChunkEncoder and amf0.encode, talking to one
    ServerConnection. Every reply the server writes is decoded by a ReplyReader."""

    def __init__(self, config: ConnectionConfig | None = None, *, compress: bool = False,
                 digest: bool = False) -> None:
        self.conn = ServerConnection(config)
        self.encoder = ChunkEncoder(compress=compress)
        self.reader = ReplyReader()
        self.events: list[Event] = []
        self.events += self.conn.receive_data(client_c0c1(digest=digest))
        s0s1s2 = self.conn.data_to_send()
        assert len(s0s1s2) == HANDSHAKE_BYTES
        self.events += self.conn.receive_data(client_c2(s0s1s2[1 : 1 + 1536]))

    def send_raw(self, data: bytes) -> list[Event]:
        events = self.conn.receive_data(data)
        self.events += events
        return events

    def send(self, csid: int, timestamp: int, type_id: int, stream_id: int,
             payload: bytes) -> list[Event]:
        return self.send_raw(self.encoder.encode(csid, timestamp, type_id, stream_id, payload))

    def command(self, *values: object, csid: int = 3, stream_id: int = 0) -> list[Event]:
        return self.send(csid, 0, 20, stream_id, amf0.encode(*values))

    def replies(self) -> list[Reply]:
        """What the server wrote since the last call."""
        return self.reader.feed(self.conn.data_to_send())

    def connect(self, app: str = "live", txn: float = 1.0, **extra: object) -> list[Event]:
        props: dict[str, object] = {"app": app, "type": "nonprivate",
                                    "flashVer": "FMLE/3.0 (compatible; test)",
                                    "tcUrl": f"rtmp://127.0.0.1/{app}"}
        props.update(extra)
        return self.command("connect", txn, props)

    def publish(self, key: str = "secret", accept: bool = True) -> int:
        """connect, createStream, publish; returns the stream id (accepted unless told not)."""
        self.connect()
        self.command("releaseStream", 2.0, None, key)
        self.command("FCPublish", 3.0, None, key)
        self.command("createStream", 4.0, None)
        result = [r.values() for r in self.replies() if r.type_id == 20]
        stream_id = int(next(v[3] for v in result if v[:2] == ["_result", 4.0]))
        events = self.command("publish", 5.0, None, key, "live", csid=8, stream_id=stream_id)
        requested = [e for e in events if isinstance(e, PublishRequested)]
        assert len(requested) == 1
        if accept:
            self.conn.accept_publish(stream_id)
        return stream_id
