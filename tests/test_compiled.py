"""The mypyc-compiled ingest modules (setup.py) must behave exactly like their Python source.

The install compiles ingest/chunk.py (and, when they type-check, timestamps.py and
connection.py) when it can and falls back to the pure modules when it cannot; which ones
this run imports is reported by `test_report_build`. For each compiled module the captures
are run through both it and its source loaded under another name, and every result must be
identical. The rest of the suite tests whichever modules are installed.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest

import golive.ingest.chunk as installed
import golive.ingest.connection as installed_connection
import golive.ingest.flv as installed_flv
import golive.ingest.timestamps as installed_timestamps
from golive.ingest.errors import ChunkError, ProtocolError
from golive.ingest.events import PublishRequested

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = sorted((ROOT / "tests" / "data" / "captures").glob("*.c2s.bin"))
HANDSHAKE = 1 + 1536 + 1536  # C0 C1 C2 precede the chunk stream



def _compiled(module: ModuleType) -> bool:
    return not (module.__file__ or "").endswith(".py")


def _needs_compiled(module: ModuleType) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not _compiled(module),
        reason=f"{module.__name__} is not compiled with mypyc ({module.__file__}): "
        "pure-Python install",
    )


needs_compiled = _needs_compiled(installed)


def _load_source(stem: str = "chunk") -> ModuleType:
    """ingest/<stem>.py as a separate, interpreted module.

    It is named inside golive.ingest so its relative imports resolve to the installed
    modules (the same ChunkError, the same event classes).
    """
    name = f"golive.ingest._{stem}_source_for_tests"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "ingest" / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look the module up while building classes
    spec.loader.exec_module(module)
    return module


def _pieces(data: bytes, rng: random.Random, largest: int) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        step = rng.randint(1, largest)
        out.append(data[pos : pos + step])
        pos += step
    return out


def _decode(module: ModuleType, pieces: list[bytes]) -> list[list[tuple]]:
    decoder = module.ChunkDecoder()
    return [[tuple(m) for m in decoder.feed(p)] for p in pieces]


def _decode_or_error(module: ModuleType, pieces: list[bytes]) -> tuple[list, str | None]:
    decoder = module.ChunkDecoder()
    out: list = []
    try:
        for p in pieces:
            out.append([tuple(m) for m in decoder.feed(p)])
    except ChunkError as e:
        return out, f"{type(e).__name__}:{e.kind}:{e}"
    return out, None


def test_report_build() -> None:
    """Always passes; says which modules this run tests (shown with -s)."""
    for module in (installed, installed_timestamps, installed_flv, installed_connection):
        print(f"{module.__name__}: {'compiled' if _compiled(module) else 'pure Python'}: "
              f"{module.__file__}")
        assert Path(module.__file__).name.startswith(module.__name__.rsplit(".", 1)[1] + ".")


def test_captures_present() -> None:
    assert CAPTURES, "no tests/data/captures/*.c2s.bin"


@needs_compiled
def test_source_is_not_the_compiled_module() -> None:
    source = _load_source()
    assert source.__file__ == str(ROOT / "ingest" / "chunk.py")
    assert source.ChunkDecoder is not installed.ChunkDecoder


@needs_compiled
@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_compiled_matches_source_on_captures(capture: Path) -> None:
    source = _load_source()
    data = capture.read_bytes()[HANDSHAKE:]
    whole = _decode(installed, [data])
    assert whole == _decode(source, [data])
    assert len(whole[0]) > 10
    flat = [m for batch in whole for m in batch]
    rng = random.Random(capture.name)
    for largest in (7, 300, 5000, 70000):
        pieces = _pieces(data, rng, largest)
        got = _decode(installed, pieces)
        assert got == _decode(source, pieces), f"pieces of up to {largest} bytes"
        assert [m for batch in got for m in batch] == flat


@needs_compiled
def test_compiled_matches_source_on_damaged_input() -> None:
    """Same messages and the same error (kind and text) on corrupted streams."""
    source = _load_source()
    rng = random.Random(1)
    for capture in CAPTURES:
        data = capture.read_bytes()[HANDSHAKE : HANDSHAKE + 200_000]
        for _ in range(20):
            damaged = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            pieces = _pieces(bytes(damaged), rng, 4096)
            assert _decode_or_error(installed, pieces) == _decode_or_error(source, pieces)


@needs_compiled
def test_compiled_encoder_matches_source() -> None:
    source = _load_source()
    rng = random.Random(2)
    for compress in (False, True):
        for repeat in (False, True):
            ours = installed.ChunkEncoder(compress=compress, repeat_extended=repeat)
            theirs = source.ChunkEncoder(compress=compress, repeat_extended=repeat)
            ours.chunk_size = theirs.chunk_size = rng.choice((128, 4096))
            ts = 0
            for _ in range(200):
                ts += rng.choice((0, 23, 40, 0x1000000))
                args = (rng.choice((3, 4, 6, 70, 400)), ts, rng.choice((8, 9, 18)), 1,
                        rng.randbytes(rng.randint(0, 10_000)))
                assert ours.encode(*args) == theirs.encode(*args)


def _run_connection(module: ModuleType, pieces: list[bytes]) -> list:
    """Every event and every byte the connection core answers, read by read."""
    core = module.ServerConnection(random_bytes=bytes)  # zeros: a reproducible handshake
    out: list = []
    try:
        for piece in pieces:
            events = core.receive_data(piece)
            for event in events:
                if isinstance(event, PublishRequested):
                    core.accept_publish(event.stream_id)
            out.append((events, core.data_to_send()))
    except ProtocolError as e:
        out.append(f"{type(e).__name__}:{e.kind}:{e}")
    return out


@_needs_compiled(installed_connection)
@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_compiled_connection_matches_source(capture: Path) -> None:
    source = _load_source("connection")
    data = capture.read_bytes()
    rng = random.Random(capture.name)
    for pieces in ([data], _pieces(data, rng, 200), _pieces(data, rng, 70000)):
        got = _run_connection(installed_connection, pieces)
        assert got == _run_connection(source, pieces)
        assert sum(len(events) for events, _ in got) > 10


@_needs_compiled(installed_timestamps)
def test_compiled_unwrapper_matches_source() -> None:
    source = _load_source("timestamps")
    rng = random.Random(3)
    ours, theirs = installed_timestamps.TimestampUnwrapper(), source.TimestampUnwrapper()
    ts = rng.randrange(1 << 32)
    for _ in range(20_000):
        ts = (ts + rng.choice((0, 1, 40, -30, 1 << 31, (1 << 31) + 1, 1 << 32))) % (1 << 32)
        assert ours.unwrap(ts) == theirs.unwrap(ts)


def _tag_or_error(parse: object, payload: bytes) -> object:
    try:
        tag = parse(payload)  # type: ignore[operator]
    except ProtocolError as e:
        return f"{type(e).__name__}:{e}"
    return (*tag[:-1], bytes(tag[-1])) if not hasattr(tag, "sample_rate") else (
        tag.codec, tag.packet_type, bytes(tag.body), tag.sample_rate, tag.channels)


@_needs_compiled(installed_flv)
def test_compiled_flv_matches_source() -> None:
    """Every audio/video payload of every capture, and damaged copies of them, parse to the
    same tags (or the same error) compiled and interpreted."""
    source = _load_source("flv")
    rng = random.Random(5)
    seen = 0
    for capture in CAPTURES:
        for message in installed.ChunkDecoder().feed(capture.read_bytes()[HANDSHAKE:]):
            if message.type_id not in (8, 9):
                continue
            payload = message.payload[:64]
            damaged = bytearray(payload)
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
            for data in (payload, bytes(damaged), payload[: rng.randrange(len(payload))]):
                ours_parse = installed_flv.parse_video if message.type_id == 9 else \
                    installed_flv.parse_audio
                theirs_parse = source.parse_video if message.type_id == 9 else \
                    source.parse_audio
                assert _tag_or_error(ours_parse, data) == _tag_or_error(theirs_parse, data)
                seen += 1
    assert seen > 4000
