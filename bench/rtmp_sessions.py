"""Publishing sessions to replay against an RTMP server, prepared offline.

A session is the whole byte stream a client sends, from C0 to its last byte. The real ones
come from tests/data/captures/*.c2s.bin (eight encoders, ~4 s each). To run many publishers at
once each needs its own stream key, so the key is rewritten inside the bytes with one of the
same length: every AMF0 length field and chunk header stays valid and the bytes are otherwise
exactly what the encoder sent. Each rewrite is verified once by replaying the result into
golive's sans-IO core.

For every session we also know, per fixed-size block, how many MediaUnits the server will have
completed once that block has arrived; the ingest benchmark uses it to match each unit the
server delivers with the write that completed it (ingest latency).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from golive.ingest import amf0
from golive.ingest.chunk import DEFAULT_CHUNK_SIZE, ChunkDecoder, ChunkEncoder, RawMessage
from golive.ingest.connection import ServerConnection
from golive.ingest.events import CodecConfigured, PublishRequested
from golive.ingest.handshake import HANDSHAKE_SIZE, client_c0c1
from golive.media import MediaUnit, TrackKind

CAPTURE_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "captures"
HANDSHAKE_BYTES = 1 + 2 * HANDSHAKE_SIZE  # C0 C1 C2: the chunk stream starts after them
KEY_DIGITS = 6  # distinct keys per run: 10**6 is far more than any benchmark opens
_MEDIA_TYPES = (8, 9)
_SET_CHUNK_SIZE = 1


@dataclass(frozen=True)
class Replay:
    """What golive's core makes of a session: the publish key and the units it completes."""

    key: str
    units: int
    media_ms: int  # span of the video (or audio) timestamps
    completions: tuple[int, ...]  # MediaUnits completed once block i has arrived (cumulative)


@dataclass(frozen=True)
class SessionTemplate:
    """One prepared session; `with_key` makes a publisher's copy."""

    name: str
    data: bytes
    key: str
    units: int
    media_ms: int
    _completions: dict[int, tuple[int, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _positions: list[int] = field(default_factory=list, compare=False, repr=False)

    @property
    def size(self) -> int:
        return len(self.data)

    def with_key(self, key: str) -> bytes:
        """The whole session publishing under `key`."""
        self._check_key(key)
        return self.data.replace(_amf0_string(self.key), _amf0_string(key))

    def blocks(self, key: str, block_size: int) -> list[bytes | memoryview]:
        """The session under `key` cut into `block_size` blocks, sharing the template's memory.

        800 publishers x 7 MB would not fit as copies; the key occupies a few bytes near the
        start and the end, so only the blocks holding it are copied and patched."""
        self._check_key(key)
        view = memoryview(self.data)
        blocks: list[bytes | memoryview] = [
            view[offset : offset + block_size] for offset in range(0, len(self.data), block_size)
        ]
        new = key.encode()
        for position in self._key_positions():
            for index in range(position // block_size, (position + len(new) - 1) // block_size + 1):
                block = blocks[index]
                patched = block if isinstance(block, bytearray) else bytearray(block)
                start = index * block_size
                for i in range(
                    max(position, start), min(position + len(new), start + len(patched))
                ):
                    patched[i - start] = new[i - position]
                blocks[index] = patched
        return blocks

    def _key_positions(self) -> list[int]:
        """Offsets of the key's bytes in every AMF0 string that holds exactly the key."""
        positions = self._positions
        if not positions:
            needle = _amf0_string(self.key)
            at = self.data.find(needle)
            while at >= 0:
                positions.append(at + 3)  # after the string marker and its 16-bit length
                at = self.data.find(needle, at + len(needle))
        return positions

    def _check_key(self, key: str) -> None:
        if len(key.encode()) != len(self.key.encode()):
            raise ValueError(f"key {key!r} is not the length of {self.key!r}")

    def key_for(self, index: int) -> str:
        """A key of the template key's length, distinct for every index < 10**KEY_DIGITS."""
        if len(self.key) <= KEY_DIGITS:
            raise ValueError(f"stream key {self.key!r} is too short to number")
        return f"{self.key[:-KEY_DIGITS]}{index:0{KEY_DIGITS}d}"

    def completions(self, block_size: int) -> tuple[int, ...]:
        """Cumulative MediaUnits completed after each `block_size` block (offline replay).

        The key does not change the parse, so one replay serves every publisher's copy."""
        cached = self._completions.get(block_size)
        if cached is None:
            cached = replay(self.data, block_size).completions
            self._completions[block_size] = cached
        return cached


def _amf0_string(value: str) -> bytes:
    raw = value.encode()
    return b"\x02" + len(raw).to_bytes(2, "big") + raw


def replay(data: bytes, block_size: int) -> Replay:
    """Feed `data` into golive's core in `block_size` blocks, as the ingest server would.

    Counts the units the server pushes to its hub: a track waits for its first unit (the
    server probes it), and a video track starts at a keyframe, so earlier inter frames are
    skipped, exactly as `golive.ingest.server.RtmpProtocol._process` does.
    """
    core = ServerConnection()
    keys: list[str] = []
    pending: set[TrackKind] = set()
    units = 0
    first: dict[TrackKind, int] = {}
    last: dict[TrackKind, int] = {}
    completions: list[int] = []
    for offset in range(0, len(data), block_size):
        for event in core.receive_data(data[offset : offset + block_size]):
            if type(event) is MediaUnit:
                if event.kind in pending:
                    if event.kind is TrackKind.VIDEO and not event.keyframe:
                        continue
                    pending.discard(event.kind)
                units += 1
                first.setdefault(event.kind, event.dts)
                last[event.kind] = event.dts
            elif isinstance(event, CodecConfigured):
                pending.add(event.kind)
            elif isinstance(event, PublishRequested):
                keys.append(event.key)
                if core.publishing_stream == event.stream_id and not core.publish_accepted:
                    core.accept_publish(event.stream_id)
        completions.append(units)
    core.data_to_send()
    if len(keys) != 1:
        raise ValueError(f"expected one publish in the session, found {len(keys)}")
    kind = TrackKind.VIDEO if TrackKind.VIDEO in first else TrackKind.AUDIO
    span = last.get(kind, 0) - first.get(kind, 0)
    return Replay(keys[0], units, span, tuple(completions))


def _messages(data: bytes) -> tuple[int, list[RawMessage]]:
    """The session's chunk stream as messages, and the client's (last) chunk size."""
    decoder = ChunkDecoder()
    messages = decoder.feed(data[HANDSHAKE_BYTES:])
    return decoder.chunk_size, messages


def _verify(template: SessionTemplate) -> None:
    """Check a key rewrite: same message layout, new key published, old key gone."""
    probe_key = template.key_for(10**KEY_DIGITS - 1)
    rewritten = template.with_key(probe_key)
    for size in (1000, 1 << 16):  # the block form must be the same bytes, however it is cut
        if b"".join(template.blocks(probe_key, size)) != rewritten:
            raise ValueError(f"{template.name}: blocks() differs from with_key()")
    result = replay(rewritten, 1 << 16)
    if result.key != probe_key or result.units != template.units:
        raise ValueError(
            f"{template.name}: key rewrite changed the session "
            f"(key {result.key!r}, {result.units} units)"
        )
    _, before = _messages(template.data)
    _, after = _messages(rewritten)
    old = template.key.encode()
    if [(m.type_id, len(m.payload)) for m in before] != [
        (m.type_id, len(m.payload)) for m in after
    ]:
        raise ValueError(f"{template.name}: key rewrite changed the message layout")
    if any(old in m.payload for m in after if m.type_id not in _MEDIA_TYPES):
        # The key straddles a chunk boundary somewhere, so the byte-level rewrite missed it.
        raise ValueError(f"{template.name}: the stream key survives the rewrite")


def _template(name: str, data: bytes) -> SessionTemplate:
    result = replay(data, 1 << 16)
    template = SessionTemplate(name, data, result.key, result.units, result.media_ms)
    _verify(template)
    return template


def load_captures(directory: Path = CAPTURE_DIR) -> list[SessionTemplate]:
    """Every *.c2s.bin capture in `directory`, verified; empty when there are none."""
    return [
        _template(path.name.removesuffix(".c2s.bin"), path.read_bytes())
        for path in sorted(directory.glob("*.c2s.bin"))
    ]


def templates(directory: Path = CAPTURE_DIR) -> list[SessionTemplate]:
    """The real captures, or one synthetic session when the captures are missing."""
    return load_captures(directory) or [synthesize()]


def extend(template: SessionTemplate, min_bytes: int) -> SessionTemplate:
    """A longer session: the capture's media repeated with shifted timestamps until the
    session holds at least `min_bytes`.

    Real encoders stream for hours; replaying a 4 s capture over and over on new connections
    would make connection setup (handshake, codec probe) dominate a real-time test. The
    messages and their payloads are the capture's own; only the chunking is redone (by
    `ChunkEncoder` with header compression, at the client's chunk size), so this is a
    realistic long publish but no longer byte-identical to the encoder's.
    """
    chunk_size, messages = _messages(template.data)
    media_at = [i for i, m in enumerate(messages) if m.type_id in _MEDIA_TYPES]
    if not media_at:
        raise ValueError(f"{template.name}: no media to repeat")
    head = messages[: media_at[0]]
    body = messages[media_at[0] : media_at[-1] + 1]
    tail = messages[media_at[-1] + 1 :]
    video = [m.timestamp for m in body if m.type_id == 9] or [m.timestamp for m in body]
    frame = (video[-1] - video[0]) // max(1, len(video) - 1)
    period = video[-1] - video[0] + frame  # ms one pass of the body lasts
    body_bytes = sum(len(m.payload) for m in body)
    loops = max(1, math.ceil((min_bytes - len(template.data)) / body_bytes) + 1)

    encoder = ChunkEncoder(compress=True)
    out = [template.data[:HANDSHAKE_BYTES]]
    if chunk_size != DEFAULT_CHUNK_SIZE:
        out.append(encoder.encode(2, 0, _SET_CHUNK_SIZE, 0, chunk_size.to_bytes(4, "big")))
        encoder.chunk_size = chunk_size
    for m in head:
        out.append(encoder.encode(m.csid, m.timestamp, m.type_id, m.stream_id, m.payload))
    for loop in range(loops):
        shift = loop * period
        for m in body:
            out.append(
                encoder.encode(m.csid, m.timestamp + shift, m.type_id, m.stream_id, m.payload)
            )
    end = (loops - 1) * period
    for m in tail:
        out.append(encoder.encode(m.csid, m.timestamp + end, m.type_id, m.stream_id, m.payload))
    return _template(f"{template.name}x{loops}", b"".join(out))


# ---- fallback: a synthetic session when the captures are missing --------------------------

SYNTH_KEY = "bench-synthetic"


def synthesize(seconds: float = 4.0, bitrate: int = 2_800_000) -> SessionTemplate:
    """A 1280x720 test pattern, H.264 + AAC at about `bitrate`, as an FFmpeg-like publisher.

    PyAV's FLV muxer writes the tags (it builds the avcC and AAC sequence headers the way
    FFmpeg's RTMP output does); each tag becomes one RTMP message, chunked by `ChunkEncoder`.
    """
    import av
    import numpy as np

    fps = 30
    buf = io.BytesIO()
    with av.open(buf, "w", format="flv") as container:
        video = container.add_stream(
            "libx264",
            rate=fps,
            options={"preset": "veryfast", "tune": "zerolatency", "g": str(2 * fps)},
        )
        video.width, video.height, video.pix_fmt = 1280, 720, "yuv420p"
        video.bit_rate = bitrate - 128_000
        audio = container.add_stream("aac", rate=48_000, layout="stereo")
        audio.bit_rate = 128_000
        frames = int(seconds * fps)
        rng = np.random.default_rng(1)
        noise = rng.integers(0, 64, (720, 1280, 3), dtype=np.uint8)
        x = np.arange(1280, dtype=np.uint16)
        for i in range(frames):
            # A moving gradient plus a shifting noise field: enough detail to reach the rate.
            image = ((x[None, :, None] + 4 * i) % 256).astype(np.uint8) + np.roll(noise, i, 1)
            frame = av.VideoFrame.from_ndarray(
                np.broadcast_to(image, (720, 1280, 3)).copy(), format="rgb24"
            )
            frame.pts = i
            container.mux(video.encode(frame))
        samples = 1024
        tone = (0.2 * np.sin(np.arange(samples * 2) * 0.05)).astype(np.float32)
        for i in range(int(seconds * 48_000 / samples)):
            aframe = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="flt", layout="stereo")
            aframe.sample_rate = 48_000
            aframe.pts = i * samples
            aframe.time_base = Fraction(1, 48_000)
            container.mux(audio.encode(aframe))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return _template("synthetic", _flv_to_session(buf.getvalue(), SYNTH_KEY))


def _flv_tags(flv: bytes) -> list[tuple[int, int, bytes]]:
    """(type, timestamp ms, payload) of every tag in an FLV file."""
    pos = int.from_bytes(flv[5:9], "big") + 4  # header, then PreviousTagSize0
    tags = []
    while pos + 11 <= len(flv):
        kind = flv[pos]
        size = int.from_bytes(flv[pos + 1 : pos + 4], "big")
        ts = int.from_bytes(flv[pos + 4 : pos + 7], "big") | flv[pos + 7] << 24
        tags.append((kind, ts, flv[pos + 11 : pos + 11 + size]))
        pos += 11 + size + 4
    return tags


def _flv_to_session(flv: bytes, key: str) -> bytes:
    tc_url = "rtmp://127.0.0.1/live"
    encoder = ChunkEncoder(compress=True)
    out = [client_c0c1(digest=False), bytes(HANDSHAKE_SIZE)]  # C2 is not validated

    def send(csid: int, ts: int, type_id: int, sid: int, payload: bytes) -> None:
        out.append(encoder.encode(csid, ts, type_id, sid, payload))

    send(2, 0, _SET_CHUNK_SIZE, 0, (4096).to_bytes(4, "big"))
    encoder.chunk_size = 4096
    send(
        3,
        0,
        20,
        0,
        amf0.encode(
            "connect",
            1.0,
            {
                "app": "live",
                "type": "nonprivate",
                "flashVer": "FMLE/3.0 (compatible; bench)",
                "tcUrl": tc_url,
            },
        ),
    )
    send(3, 0, 20, 0, amf0.encode("releaseStream", 2.0, None, key))
    send(3, 0, 20, 0, amf0.encode("FCPublish", 3.0, None, key))
    send(3, 0, 20, 0, amf0.encode("createStream", 4.0, None))
    send(4, 0, 20, 1, amf0.encode("publish", 5.0, None, key, "live"))
    for kind, ts, payload in _flv_tags(flv):
        if kind == 18:
            send(4, ts, 18, 1, amf0.encode("@setDataFrame") + payload)
        elif kind in _MEDIA_TYPES:
            send(4 if kind == 8 else 6, ts, kind, 1, payload)
    send(3, 0, 20, 0, amf0.encode("FCUnpublish", 6.0, None, key))
    send(3, 0, 20, 0, amf0.encode("deleteStream", 7.0, None, 1.0))
    return b"".join(out)
