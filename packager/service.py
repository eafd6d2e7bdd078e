"""The packager: a `Broadcast` for every stream the hub starts, and the origin's questions.

One broadcast per public stream name (see `broadcast.py` for its lifecycle). The origin asks
only what `file` and `status` answer (`query.py`), never walks the broadcasts themselves; chat
only what `add_date_range`, `live_date` and `recording_dir` answer, by stream name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from golive.hub import Hub, LiveStream
from golive.packager.broadcast import Broadcast, Drains
from golive.packager.config import HlsConfig
from golive.packager.metrics import PackagerMetrics
from golive.packager.playlist import DateRange
from golive.packager.query import (
    BroadcastStatus,
    HlsFile,
    HlsFiles,
    Waiting,
    broadcast_status,
    recording_file,
)
from golive.packager.recording import seal_recording
from golive.packager.store import DiskStore, Store
from golive.transcode.audio import AudioToAac
from golive.transcode.service import Transcoder

log = logging.getLogger("golive.packager")


class PackagerService:
    """Creates a `Broadcast` for every stream the hub starts."""

    def __init__(self, config: HlsConfig, hub: Hub, store: Store,
                 metrics: PackagerMetrics, transcoder: Transcoder | None = None,
                 audio: AudioToAac | None = None,
                 forget_stream: Callable[[str], None] = lambda stream: None) -> None:
        self.config = config
        # Removes every stage's metric series of a stream whose broadcast is over for good.
        self._forget_stream = forget_stream
        self.transcoder = transcoder
        self.audio = audio
        self.store = store
        self.metrics = metrics
        self.broadcasts: dict[str, Broadcast] = {}
        self._drains = Drains()  # one callback per loop iteration packages every broadcast
        self._files = HlsFiles(self.broadcasts.get)
        hub.on_publish(self._on_publish)
        if config.record_dir:
            self._seal_leftover_recordings(Path(config.record_dir))

    def _seal_leftover_recordings(self, root: Path) -> None:
        """Recordings a previous process left open (it crashed) become VOD playlists."""
        store = DiskStore(root)
        for playlist in sorted(root.glob("*/*/index.m3u8")):
            prefix = playlist.parent.relative_to(root).as_posix()
            if seal_recording(store, prefix):
                log.warning("recording %s was left open by a previous run; sealed it", prefix)

    def _on_publish(self, stream: LiveStream) -> None:
        broadcast = self.broadcasts.get(stream.name)
        if broadcast is not None and broadcast.ended:
            next_sequence = broadcast.renditions.next_sequence
            broadcast.close()
            self._forget_stream(stream.name)
            broadcast = None
        else:
            next_sequence = 0
        if broadcast is None:
            broadcast = Broadcast(stream.name, self.config, self.store, self.metrics,
                                  first_sequence=next_sequence, on_expired=self._expired,
                                  transcoder=self.transcoder, audio=self.audio,
                                  drains=self._drains)
            self.broadcasts[stream.name] = broadcast
            self.metrics.broadcasts.set(len(self.broadcasts))
        broadcast.attach(stream)

    def _expired(self, broadcast: Broadcast) -> None:
        if self.broadcasts.get(broadcast.name) is broadcast:
            del self.broadcasts[broadcast.name]
            self.metrics.broadcasts.set(len(self.broadcasts))
            broadcast.close()
            self._forget_stream(broadcast.name)
        else:
            broadcast.close()

    def get(self, name: str) -> Broadcast | None:
        return self.broadcasts.get(name)

    # -- chat's questions -----------------------------------------------------------------------

    def add_date_range(self, stream: str, date_range: DateRange) -> bool:
        """An EXT-X-DATERANGE for every rendition of the live broadcast `stream` (and its
        recording). False when no broadcast of that name is live, or it refused the range
        (its ID is listed already, or `renditions.MAX_DATE_RANGES` are)."""
        broadcast = self.broadcasts.get(stream)
        return broadcast is not None and broadcast.add_date_range(date_range)

    def live_date(self, stream: str) -> float | None:
        """PROGRAM-DATE-TIME (epoch seconds) of the newest frame the live broadcast `stream`
        lists; None when there is none (not started, in its grace period, ended)."""
        broadcast = self.broadcasts.get(stream)
        return broadcast.live_date if broadcast is not None else None

    def recording_dir(self, stream: str) -> Path | None:
        """The directory of the broadcast's current recording (None without --record-dir or
        when not recording), where chat keeps chat.jsonl beside the playlist; it is created
        with the recording's first file, so whoever writes there first creates it."""
        broadcast = self.broadcasts.get(stream)
        return broadcast.recording_dir if broadcast is not None else None

    # -- the origin's questions ---------------------------------------------------------------

    async def file(self, stream: str, rendition: str | None, filename: str = "index.m3u8",
                   *, msn: str | None = None, part: str | None = None) -> HlsFile:
        """See `HlsFiles.file`: raises `query.HlsError` when nothing answers."""
        return await self._files.file(stream, rendition, filename, msn=msn, part=part)

    def file_now(self, stream: str, rendition: str | None, filename: str = "index.m3u8",
                 *, msn: str | None = None, part: str | None = None,
                 started: float | None = None, now: float = 0.0) -> HlsFile | Waiting:
        """See `HlsFiles.file_now`: the answer without waiting, or what to wait for."""
        return self._files.file_now(stream, rendition, filename, msn=msn, part=part,
                                    started=started, now=now)

    def recording_file(self, stream: str, started: str, filename: str) -> Path | None:
        """A file of a recording (`--record-dir`), by its origin path's pieces."""
        return recording_file(self.config.record_dir, stream, started, filename)

    def thumbnail(self, name: str) -> bytes | None:
        """A recent JPEG of a live broadcast's picture (None: none yet, or no video)."""
        broadcast = self.broadcasts.get(name)
        return broadcast.thumbnails.jpeg if broadcast is not None and not broadcast.ended \
            else None

    def status(self, name: str) -> BroadcastStatus | None:
        broadcast = self.broadcasts.get(name)
        return broadcast_status(broadcast) if broadcast is not None else None

    def statuses(self) -> list[BroadcastStatus]:
        """Every broadcast with playlists (live, in its grace period, or ended), by name."""
        return [broadcast_status(self.broadcasts[name]) for name in sorted(self.broadcasts)]

    async def close(self) -> None:
        for broadcast in list(self.broadcasts.values()):
            broadcast.close()
        self.broadcasts.clear()
