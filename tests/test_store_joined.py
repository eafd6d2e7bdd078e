"""A segment stored as the join of its parts: the same bytes are held once, in memory, and
every part still reads back as it was (issue 12, memory: parts and segments must not hold the
same bytes twice)."""

from __future__ import annotations

from pathlib import Path

from golive.packager.store import DiskStore, FallbackStore, MemoryStore, MirroredStore

PARTS = [b"moof-mdat-0" * 100, b"moof-mdat-1" * 90, b"moof-mdat-2" * 80]
KEYS = [f"s/source/part-7.{i}.m4s" for i in range(3)]
SEGMENT = "s/source/seg-7.m4s"


def _filled(store: MemoryStore | DiskStore | FallbackStore) -> None:
    for key, data in zip(KEYS, PARTS, strict=True):
        store.put(key, data)


def test_in_memory_the_parts_become_views_of_the_segment() -> None:
    store = MemoryStore()
    _filled(store)
    assert store.size() == sum(map(len, PARTS))
    assert store.put_joined(SEGMENT, KEYS) == sum(map(len, PARTS))
    segment = store.get(SEGMENT)
    assert segment == b"".join(PARTS)
    # The parts read back unchanged, from the segment's own buffer: held once.
    for key, data in zip(KEYS, PARTS, strict=True):
        part = store.get(key)
        assert part == data and isinstance(part, memoryview) and part.obj is segment
    assert store.size() == len(segment)
    # Ranges of a part (the origin slices for Range requests) read the same bytes.
    assert bytes(store.get(KEYS[1])[5:20]) == PARTS[1][5:20]  # type: ignore[index]
    store.delete(KEYS[0])
    assert store.get(KEYS[0]) is None and store.size() == len(segment)
    store.delete(SEGMENT)  # the segment leaves the window before its last parts
    assert store.get(KEYS[2]) == PARTS[2] and store.size() == 0
    for key in KEYS[1:]:
        store.delete(key)
    assert store.size() == 0
    store.put(KEYS[1], b"again")  # a key reused after its view was deleted: plain again
    assert store.size() == 5 and store.get(KEYS[1]) == b"again"


def test_a_part_already_gone_is_not_brought_back() -> None:
    store = MemoryStore()
    _filled(store)
    store.delete(KEYS[1])
    assert store.put_joined(SEGMENT, KEYS) == len(PARTS[0]) + len(PARTS[2])
    assert store.get(KEYS[1]) is None
    assert store.get(KEYS[2]) == PARTS[2]


def test_on_disk_the_segment_is_a_file_of_its_own(tmp_path: Path) -> None:
    for store in (DiskStore(tmp_path / "disk"), FallbackStore(DiskStore(tmp_path / "fb"))):
        _filled(store)
        assert store.put_joined(SEGMENT, KEYS) == sum(map(len, PARTS))
        path = store.path(SEGMENT)
        assert path is not None and path.read_bytes() == b"".join(PARTS)
        assert all(store.get(k) == d for k, d in zip(KEYS, PARTS, strict=True))


def test_a_mirrored_disk_store_serves_from_memory_and_writes_every_file(tmp_path: Path) -> None:
    disk = DiskStore(tmp_path)
    store = MirroredStore(FallbackStore(disk))
    _filled(store)
    for key, data in zip(KEYS, PARTS, strict=True):  # on disk for nginx, and in memory
        assert (tmp_path / key).read_bytes() == data
        assert store.path(key) is None and store.get(key) == data
    (tmp_path / KEYS[0]).unlink()  # the segment is joined in memory, not read back from disk
    assert store.put_joined(SEGMENT, KEYS) == sum(map(len, PARTS))
    assert (tmp_path / SEGMENT).read_bytes() == b"".join(PARTS)
    assert store.memory_size() == sum(map(len, PARTS))  # held once, in memory
    store.delete(SEGMENT)
    assert not (tmp_path / SEGMENT).exists() and store.get(SEGMENT) is None
    assert store.holds_playlists


def test_in_memory_a_segment_is_joined_when_first_read() -> None:
    """Players of LL-HLS read parts: a segment nobody reads is never copied together."""
    store = MemoryStore()
    _filled(store)
    originals = [store.get(key) for key in KEYS]
    assert store.put_joined(SEGMENT, KEYS) == sum(map(len, PARTS))
    assert store.size() == sum(map(len, PARTS))  # held once
    # Not joined yet: the parts still read back as the very buffers they were put as.
    assert all(store.get(k) is o for k, o in zip(KEYS, originals, strict=True))
    store.delete(KEYS[0])  # a part that leaves before the segment is read is still in it
    segment = store.get(SEGMENT)
    assert segment == b"".join(PARTS) and store.get(SEGMENT) is segment
    part = store.get(KEYS[1])
    assert isinstance(part, memoryview) and part.obj is segment and part == PARTS[1]
    assert store.size() == len(segment)
    store.delete(SEGMENT)
    assert store.size() == 0


def test_in_memory_a_segment_never_read_is_forgotten_with_its_parts() -> None:
    store = MemoryStore()
    _filled(store)
    store.put_joined(SEGMENT, KEYS)
    store.delete(SEGMENT)
    for key in KEYS:
        store.delete(key)
    assert store.size() == 0 and store.keys() == []


def test_in_memory_a_part_of_pieces_is_joined_when_read_and_given_to_its_segment() -> None:
    """A part put as its pieces (moof, samples) is joined on its first read; a segment read
    later joins the parts' joined bytes, and the part becomes a view of the segment: no
    byte is held twice at any point."""
    store = MemoryStore()
    pieces = [[data[:7], data[7:50], data[50:]] for data in PARTS]
    for key, chunks in zip(KEYS, pieces, strict=True):
        store.put_chunks(key, chunks)
    assert store.size() == sum(map(len, PARTS))
    assert store.put_joined(SEGMENT, KEYS) == sum(map(len, PARTS))
    assert store.size() == sum(map(len, PARTS))
    first = store.get(KEYS[0])  # read before the segment: joined alone
    assert first == PARTS[0] and isinstance(first, bytes)
    assert store.get(KEYS[0]) is first  # (once)
    segment = store.get(SEGMENT)
    assert segment == b"".join(PARTS)
    for key, data in zip(KEYS, PARTS, strict=True):
        part = store.get(key)
        assert isinstance(part, memoryview) and part.obj is segment and part == data
    assert store.size() == len(segment)


def test_every_store_takes_a_part_as_pieces(tmp_path: Path) -> None:
    for store in (MemoryStore(), DiskStore(tmp_path / "disk"),
                  FallbackStore(DiskStore(tmp_path / "fb")),
                  MirroredStore(FallbackStore(DiskStore(tmp_path / "mirror")))):
        store.put_chunks(KEYS[0], [b"moof", b"-", b"mdat"])
        assert store.get(KEYS[0]) == b"moof-mdat"
        store.put_chunks(KEYS[1], [])
        assert store.get(KEYS[1]) == b""
