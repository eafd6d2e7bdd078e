"""The rendition set: rungs numbered on from the source, reports, the master playlist's
offer and order, and writing only the playlists that changed."""

from __future__ import annotations

from pathlib import Path

from golive.packager.config import HlsConfig
from golive.packager.renditions import SOURCE, RenditionSet
from golive.packager.store import DiskStore, MemoryStore
from golive.packager.timeline import TimelineConfig

TIMELINE = TimelineConfig(segment_target_ms=2000, part_target_ms=333)


def listed(rendition, parts: int = 1, start: float = 1000.0) -> None:
    """Give a rendition complete segments (one part each) of 2 s."""
    for index in range(parts):
        rendition.add_part(b"p" * 1000, 2000, True, True, True, 2000 * (index + 1),
                           now=start + 2 * index)


def test_rungs_number_on_from_the_source_and_report_on_each_other() -> None:
    renditions = RenditionSet("show", HlsConfig(), MemoryStore(), TIMELINE, first_sequence=5)
    listed(renditions.source, parts=3)
    rung = renditions.add_rung("360p", 360)
    assert rung.next_sequence == renditions.source.next_sequence == 8
    small = renditions.add_rung("180p", 180)
    assert set(renditions.source.others) == {rung, small}
    assert set(rung.others) == {renditions.source, small}
    assert renditions.next_sequence == 8
    assert renditions.names() == [SOURCE, "360p", "180p"]


def test_the_master_offers_the_source_then_the_rungs_largest_first() -> None:
    renditions = RenditionSet("show", HlsConfig(), MemoryStore(), TIMELINE)
    small = renditions.add_rung("180p", 180)
    large = renditions.add_rung("540p", 540)
    assert renditions.variants() == [renditions.source, large, small]
    renditions.offer_source = False  # a re-encode of its size stands in
    assert renditions.variants() == [large, small]
    for rendition in (renditions.source, large, small):
        listed(rendition)
    text = renditions.master_text()
    assert "source/index.m3u8" not in text
    assert text.index("540p/index.m3u8") < text.index("180p/index.m3u8")
    assert renditions.master_text() is text  # rendered once per change


def test_mpegts_is_a_rendition_but_not_in_the_master() -> None:
    renditions = RenditionSet("show", HlsConfig(mpegts=True), MemoryStore(), TIMELINE)
    assert renditions.ts is renditions["ts"]
    assert renditions.variants() == [renditions.source]
    rung = renditions.add_rung("360p", 360)
    assert renditions.ts not in rung.others


def test_a_disk_store_gets_only_the_playlists_that_changed(tmp_path: Path) -> None:
    store = DiskStore(tmp_path)
    puts: list[str] = []
    put = store.put
    store.put = lambda key, data: (puts.append(key), put(key, data))[1]  # type: ignore[method-assign]
    renditions = RenditionSet("show", HlsConfig(), store, TIMELINE)
    rung = renditions.add_rung("360p", 360)
    listed(renditions.source)
    listed(rung)
    renditions.write_changed()
    playlists = [key for key in puts if key.endswith(".m3u8")]
    assert sorted(playlists) == ["show/360p/index.m3u8", "show/index.m3u8",
                                 "show/source/index.m3u8"]
    puts.clear()
    renditions.write_changed()
    assert puts == []  # nothing changed
    rung.add_part(b"q" * 500, 333, True, True, False, 2333, now=1010.0)
    renditions.write_changed()
    assert [key for key in puts if key.endswith(".m3u8")] == ["show/360p/index.m3u8"]
    assert (tmp_path / "show/360p/index.m3u8").read_text() == rung.text()


def test_a_memory_store_gets_no_playlists() -> None:
    store = MemoryStore()
    renditions = RenditionSet("show", HlsConfig(), store, TIMELINE)
    listed(renditions.source)
    renditions.write_changed()
    assert store.get("show/source/index.m3u8") is None


def test_close_forgets_every_file_and_playlist(tmp_path: Path) -> None:
    store = DiskStore(tmp_path)
    renditions = RenditionSet("show", HlsConfig(), store, TIMELINE)
    renditions.source.set_init(1, b"init one")
    listed(renditions.source)
    renditions.source.set_init(2, b"init two")  # a second publication's
    listed(renditions.source, start=1010.0)
    renditions.write_changed()
    renditions.end()
    assert "#EXT-X-ENDLIST" in (tmp_path / "show/source/index.m3u8").read_text()
    renditions.close()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
