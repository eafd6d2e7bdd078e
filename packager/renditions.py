"""The set of renditions of one broadcast: the source, the MPEG-TS twin, the transcoded rungs.

It owns what concerns them together: numbering a new rung on from the source, the rendition
reports every fMP4 playlist carries about the others, the master playlist (which renditions
are offered, in what order, rendered once per change) and, with a disk store, writing the
playlists that changed, and the broadcast's date ranges (EXT-X-DATERANGE), which every
rendition lists. The lanes that fill the renditions and the broadcast that owns them stay
outside: this is only the shelf they are listed on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from golive.packager.config import HlsConfig
from golive.packager.playlist import (
    DateRange,
    MasterPlaylist,
    Variant,
    date_range_in_window,
    render_master_playlist,
)
from golive.packager.rendition import Rendition
from golive.packager.store import Store
from golive.packager.timeline import TimelineConfig

SOURCE = "source"  # the rendition that passes the publisher's encoding through untouched
TS = "ts"  # MPEG-TS for legacy players (hls.mpegts); not in the (fMP4) master playlist
# Date ranges listed at once, at most: each is a line in every playlist on every reload, so a
# flood (of gifts, say) must not make playlists grow without bound. Far above what chat sends
# in a live window of some 12 s.
MAX_DATE_RANGES = 200


class RenditionSet:
    def __init__(self, stream: str, config: HlsConfig, store: Store, timeline: TimelineConfig,
                 *, first_sequence: int = 0,
                 measured_frame_rate: Callable[[], float | None] = lambda: None) -> None:
        self.stream = stream
        self.store = store
        self._config = config
        self._timeline = timeline
        # For a master playlist entry whose encoder declared no frame rate.
        self._measured_frame_rate = measured_frame_rate
        self.source = self._new(SOURCE, first_sequence)
        self._all: dict[str, Rendition] = {SOURCE: self.source}
        self.ts: Rendition | None = None
        if config.mpegts:
            self.ts = self._all[TS] = Rendition(
                stream, TS, store, target_duration=timeline.target_duration_s,
                window_segments=config.window_segments, low_latency=False,
                first_sequence=first_sequence, extension="ts")
        self._rung_sizes: dict[str, int] = {}  # rung -> short side, to offer the largest first
        # False while a re-encode of the source's size stands in for it (long GOPs, or
        # passthrough off): the master playlist then offers the rungs only.
        self.offer_source = True
        self._master: tuple[tuple[int, ...], str] | None = None
        self._written: dict[str, int] = {}  # rendition -> version last written to the store
        self._written_master = ""
        self.date_ranges: tuple[DateRange, ...] = ()  # those still in some rendition's window

    def _new(self, name: str, first_sequence: int) -> Rendition:
        config = self._config
        return Rendition(self.stream, name, self.store,
                         target_duration=self._timeline.target_duration_s,
                         window_segments=config.window_segments,
                         low_latency=config.low_latency, first_sequence=first_sequence)

    def add_rung(self, name: str, short_side: int) -> Rendition:
        """A transcoded rendition, numbered on from the source; every fMP4 rendition's
        playlist reports on the others (EXT-X-RENDITION-REPORT)."""
        rendition = self._new(name, self.source.next_sequence)
        self._forget_old_date_ranges()
        rendition.date_ranges = self.date_ranges  # it lists those its window will reach
        self._all[name] = rendition
        self._rung_sizes[name] = short_side
        fmp4 = [r for n, r in self._all.items() if n != TS]
        for each in fmp4:
            each.others = [other for other in fmp4 if other is not each]
        return rendition

    # -- lookup -------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Rendition:
        return self._all[name]

    def get(self, name: str) -> Rendition | None:
        return self._all.get(name)

    def __iter__(self) -> Iterator[Rendition]:
        return iter(self._all.values())

    def names(self) -> list[str]:
        return list(self._all)

    def items(self) -> list[tuple[str, Rendition]]:
        return list(self._all.items())

    @property
    def has_media(self) -> bool:
        return any(r.has_media for r in self._all.values())

    @property
    def next_sequence(self) -> int:
        """Where a broadcast of the same name numbers on from, so a CDN never sees a
        segment name twice."""
        return max(r.next_sequence for r in self._all.values())

    # -- date ranges --------------------------------------------------------------------------

    def add_date_range(self, date_range: DateRange) -> bool:
        """List it in every rendition (the source, the rungs, MPEG-TS) from its next reload.
        False, and nothing listed, when its ID is listed already (bis 6.2.1: an ID is never
        reused for a new range) or MAX_DATE_RANGES are."""
        self._forget_old_date_ranges()
        kept = self.date_ranges
        if len(kept) >= MAX_DATE_RANGES or any(d.id == date_range.id for d in kept):
            return False
        self.date_ranges = (*kept, date_range)
        for rendition in self._all.values():
            rendition.set_date_ranges(self.date_ranges)
        return True

    def _forget_old_date_ranges(self) -> None:
        """Those out of every rendition's window (the renderer no longer lists them), so a
        rung that starts late gets only those that can still be in its window. Renditions
        with no media yet do not hold any back: their window starts at the newest media."""
        starts = [start for r in self._all.values() if (start := r.window_start) is not None]
        if starts:
            self.date_ranges = tuple(d for d in self.date_ranges
                                     if date_range_in_window(d, min(starts)))

    # -- the master playlist ------------------------------------------------------------------

    def variants(self) -> list[Rendition]:
        """The renditions the master playlist offers, best first: the source (unless a
        re-encode stands in for it), then the rungs, largest first."""
        rungs = sorted(self._rung_sizes, key=self._rung_sizes.__getitem__, reverse=True)
        return ([self.source] if self.offer_source else []) + [self._all[n] for n in rungs]

    def master_text(self) -> str:
        """Rendered once per change of any rendition (the origin asks on every request)."""
        versions = tuple(r.version for r in self._all.values())
        if self._master is not None and self._master[0] == versions:
            return self._master[1]
        variants = []
        offered = [r for r in self.variants() if r.has_media]
        for rendition in offered:
            peak, average = rendition.bandwidth()
            variants.append(Variant(
                uri=f"{rendition.name}/index.m3u8", bandwidth=peak, average_bandwidth=average,
                codecs=rendition.codecs, resolution=rendition.resolution,
                frame_rate=rendition.frame_rate or self._measured_frame_rate(),
                name=rendition.name))
        independent = all(s.independent for r in offered for s in r.segments)
        text = render_master_playlist(MasterPlaylist(variants, independent))
        self._master = (versions, text)
        return text

    # -- the store ----------------------------------------------------------------------------

    def write_changed(self) -> None:
        """A disk store also gets the playlists (each written atomically), so another server
        (nginx, a CDN's origin pull) can serve the directory as it is. The memory store does
        not need them: the origin renders playlists on request."""
        if not self.store.holds_playlists:
            return
        # Only what changed since the last write: with a ladder, one rendition's new part
        # would otherwise rewrite every playlist.
        for name, rendition in self._all.items():
            if self._written.get(name) != rendition.version:
                self._written[name] = rendition.version
                self.store.put(f"{self.stream}/{name}/index.m3u8", rendition.text().encode())
        master = self.master_text()
        if master != self._written_master:
            self._written_master = master
            self.store.put(f"{self.stream}/index.m3u8", master.encode())

    def end(self) -> None:
        """ENDLIST in every playlist."""
        for rendition in self._all.values():
            rendition.end()
        self.write_changed()

    def close(self) -> None:
        """Forget every file and playlist: the broadcast is replaced or expired."""
        for name, rendition in self._all.items():
            rendition.close()
            self.store.delete(f"{self.stream}/{name}/index.m3u8")
        self.store.delete(f"{self.stream}/index.m3u8")
