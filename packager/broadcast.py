"""One stream name's HLS output across publisher reconnects: the publication lifecycle.

A `Broadcast` outlives its publications: a publisher that drops and reconnects within the
grace period continues the same playlists after a discontinuity, with MEDIA-SEQUENCE still
counting up. After the grace period the playlists get ENDLIST and stay readable for
ENDED_RETENTION; numbering continues if the name is published again.

    attach ──► live ──(publisher gone)──► grace ──(timer)──► ended ──(timer)──► expired
                 ▲                           │
                 └─────(publisher back)──────┘

The broadcast runs that lifecycle and feeds the source lane; the other jobs have owners of
their own, wired here once: `TrackSettling` (which tracks), `AacSidePath` (audio to AAC),
`RenditionSet` (the renditions, the master playlist, playlist files), `LiveEdge`, and the
listeners on the source lane's parts (`LongGopPolicy`, `TsOutput`, `TranscodedRenditions`,
`BroadcastRecording`), each registered in the order they must hear of a part.

Date ranges (gifts, pins, markers from chat) reach every rendition through `add_date_range`,
which only a live broadcast takes, and the recording keeps them all; `live_date` is the date
chat stamps its events with.

Muxing a part takes a fraction of a millisecond (see `fmp4.py`), so it runs on the event loop
between units: a thread hop would cost more than the work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import av

from golive.hub import LiveStream, StreamEnded, Subscription
from golive.media import MediaUnit, Track, TrackKind
from golive.packager.aac_path import AacSidePath
from golive.packager.config import HlsConfig
from golive.packager.fmp4 import PACKAGEABLE_AUDIO, PACKAGEABLE_VIDEO
from golive.packager.lane import Lane
from golive.packager.live_edge import LiveEdge
from golive.packager.long_gop import LongGopPolicy
from golive.packager.metrics import PackagerMetrics
from golive.packager.playlist import DateRange
from golive.packager.recording import BroadcastRecording, Recorder
from golive.packager.rendition import Rendition
from golive.packager.renditions import SOURCE, RenditionSet
from golive.packager.settling import TrackSettling
from golive.packager.store import DiskStore, Store
from golive.packager.thumbnail import Thumbnails
from golive.packager.timeline import TimelineConfig
from golive.packager.transcoded import TranscodedRenditions
from golive.packager.ts_output import TsOutput
from golive.transcode.audio import AudioToAac
from golive.transcode.service import Transcoder

log = logging.getLogger("golive.packager")

SUBSCRIBER = "hls"  # the packager's name as a subscriber of a stream (in the drop counter)
SUBSCRIBER_CAPACITY = 2048  # ~40 s of video+audio: the packager must not lose units
ENDED_RETENTION = 60.0  # seconds an ended broadcast's playlists stay readable


class Timer(Protocol):
    def cancel(self) -> None: ...


# (delay in seconds, callback) -> a handle to cancel it: the event loop's `call_later` by
# default; tests pass their own to step through grace periods without waiting.
Schedule = Callable[[float, Callable[[], None]], Timer]


def _call_later(delay: float, callback: Callable[[], None]) -> Timer:
    return asyncio.get_running_loop().call_later(delay, callback)


class Drains:
    """Runs the requested drains once each, soon (`call_soon`): every socket read of every
    publisher requests its broadcast's drain, and one event-loop iteration's reads are then
    packaged by one callback. One per packager service (a broadcast alone makes its own)."""

    def __init__(self) -> None:
        self._pending: dict[Callable[[], None], None] = {}  # in the order requested
        self._scheduled = False

    def request(self, drain: Callable[[], None]) -> None:
        self._pending[drain] = None
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for drain in pending:
            try:
                drain()
            except Exception:  # (drains report their own failures: this is a last resort)
                log.exception("packager drain failed")


class Broadcast:
    """One stream name's HLS output across publisher reconnects."""

    def __init__(self, name: str, config: HlsConfig, store: Store, metrics: PackagerMetrics,
                 first_sequence: int = 0,
                 on_expired: Callable[[Broadcast], None] | None = None,
                 transcoder: Transcoder | None = None,
                 audio: AudioToAac | None = None,
                 schedule: Schedule = _call_later, drains: Drains | None = None) -> None:
        self.name = name
        self._drains = drains if drains is not None else Drains()
        self.config = config
        self.store = store
        self.metrics = metrics
        self.timeline = TimelineConfig(segment_target_ms=round(config.segment_target * 1000),
                                       part_target_ms=round(config.part_target * 1000))
        self.renditions = RenditionSet(name, config, store, self.timeline,
                                       first_sequence=first_sequence,
                                       measured_frame_rate=self._measured_frame_rate)
        metrics.start_stream(name)
        self.lane = Lane(name, self.renditions.source, self.timeline, metrics)
        self.live_edge = LiveEdge(name, metrics.live_edge_delay)
        self.aac = AacSidePath(name, audio, self._aac_unit)
        self.transcoded = (TranscodedRenditions(name, transcoder, self.renditions,
                                                self.timeline, metrics, self.live_edge)
                           if transcoder is not None else None)
        ts = self.renditions.ts
        self.ts = TsOutput(name, ts) if ts is not None else None
        self.started_at = time.time()
        self.recording: BroadcastRecording | None = None
        if config.record_dir:  # <record_dir>/<name>/<UTC start>/index.m3u8
            started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.started_at))
            recorder = Recorder(DiskStore(config.record_dir), f"{name}/{started}/",
                                target_duration=self.timeline.target_duration_s)
            self.recording = BroadcastRecording(name, recorder, store, metrics.recording_errors)
        self.thumbnails = Thumbnails(name, lambda: self._tracks.get(TrackKind.VIDEO))
        self._listen_to_source()
        self.live = False  # a publisher is connected
        self.ended = False
        self.ended_at: float | None = None  # wall clock of ENDLIST
        self.publications = 0
        self.stream: LiveStream | None = None
        self._tracks: dict[TrackKind, Track] = {}  # the source's tracks being packaged
        self._task: asyncio.Task[None] | None = None
        self._schedule = schedule
        self._timer: Timer | None = None
        self._on_expired = on_expired
        self._closed = False
        self._unpackageable = False  # the current tracks cannot be packaged

    def _listen_to_source(self) -> None:
        """Who hears of each part the source lists, in this order: the long-GOP policy
        (which may open a re-encode the rungs' alignment must then know of), the MPEG-TS
        twin, the rungs' alignment and gaps, the recording, the thumbnail."""
        transcoded = self.transcoded
        reencode = None
        if transcoded is not None and transcoded.transcoder.reencode_long_gops:
            def reencode() -> None:
                transcoded.reencode_source(self._tracks.get(TrackKind.VIDEO),
                                           self.lane.tracks.get(TrackKind.AUDIO),
                                           self._metadata())
        lane = self.lane
        lane.on_listed(LongGopPolicy(self.name, self.config.segment_target,
                                     reencode).part_listed)
        if self.ts is not None:
            lane.on_listed(self.ts.part_listed)
        if transcoded is not None:
            lane.on_listed(transcoded.source_part_listed)
        if self.recording is not None:
            lane.on_listed(self.recording.part_listed)
        lane.on_listed(self.thumbnails.part_listed)

    @property
    def source(self) -> Rendition:
        return self.renditions.source

    # -- publications -----------------------------------------------------------------------

    def attach(self, stream: LiveStream) -> None:
        """A publisher (re)connected under this name."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.publications:
            log.info("stream %s: publisher back within the grace period; playlists continue "
                     "after a discontinuity", self.name)
            self.metrics.discontinuities.labels(self.name, "reconnect").inc()
        self.publications += 1
        self.live = True
        self.stream = stream
        subscription = stream.subscribe(SUBSCRIBER, SUBSCRIBER_CAPACITY)
        # Decided now, not when the task runs: after a quick takeover the first publication's
        # task may first run when the count already includes its successor.
        reconnect = self.publications > 1
        self._task = asyncio.get_running_loop().create_task(
            self._run(stream, subscription, self._task, reconnect), name=f"hls {self.name}")

    async def _run(self, stream: LiveStream, subscription: Subscription,
                   previous: asyncio.Task[None] | None, reconnect: bool) -> None:
        if previous is not None:  # a takeover: the old publication's units go first
            await asyncio.wait([previous])
        settling = TrackSettling()
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def drain() -> None:
            """Package what the buffer holds; the publication's end completes `ended`."""
            if ended.done() or self._closed:
                return
            try:
                while (item := subscription.get_nowait()) is not None:
                    self._take(item, settling, stream, reconnect)
            except StreamEnded:
                ended.set_result(None)
            except Exception as exc:
                ended.set_exception(exc)

        # The task only waits for the end: units are packaged by `drain`, run once per
        # event-loop iteration for every broadcast whose publisher sent something
        # (`Drains`), not by a task woken for each socket read.
        subscription.notify = lambda: self._drains.request(drain)
        drain()  # what came while the previous publication finished
        try:
            await ended
        except Exception:
            log.exception("stream %s: packaging failed; the playlists end here", self.name)
        finally:
            subscription.notify = None
            if not self._closed:  # when shutting down, nothing more is listed
                await self._finish(stream, settling, reconnect)

    def _take(self, item: Track | MediaUnit, settling: TrackSettling, stream: LiveStream,
              reconnect: bool) -> None:
        """One item of the publication's flow: a track (settling, or a codec change) or a
        unit (held until the tracks settle, then packaged)."""
        if type(item) is MediaUnit and self.lane.started and not self._unpackageable:
            self._feed(item)  # (nearly every item: first)
            return
        if isinstance(item, Track):
            settling.track(item)
            self._unpackageable = False  # new configuration: try again
            if self.lane.started and self._packaged(settling.tracks) != self._tracks:
                self._restart(settling.tracks, "codec change")
            return
        if self._unpackageable:
            self.metrics.dropped_units.labels(self.name).inc()
            return
        if self.lane.started:
            self._feed(item)
            return
        dropped = settling.dropped
        settling.hold(item)
        if settling.dropped != dropped:
            self.metrics.dropped_units.labels(self.name).inc()
        if settling.settled(stream.metadata):
            self._start(settling.tracks, discontinuity=reconnect)
            for unit in settling.take():
                self._feed(unit)

    async def _finish(self, stream: LiveStream, settling: TrackSettling,
                      reconnect: bool) -> None:
        """The publication is over: list what it left, then wait for a publisher again."""
        if not self.lane.started and settling.pending and settling.tracks:
            self._start(settling.tracks, discontinuity=reconnect)
            for unit in settling.take():
                self._feed(unit)
        await self.aac.drain()  # its last frames belong to this publication's segments
        if self._closed:
            return
        self._flush()
        if self.transcoded is not None:
            self.transcoded.stop(drain=True)
        self.lane.close()  # the next publication starts from its own tracks
        self._tracks = {}
        if self.stream is stream:
            self._publication_ended()

    def _packaged(self, tracks: dict[TrackKind, Track]) -> dict[TrackKind, Track]:
        """The source tracks this broadcast takes: as they are, or audio through AAC."""
        packaged = {}
        for kind, track in tracks.items():
            allowed = PACKAGEABLE_VIDEO if kind is TrackKind.VIDEO else PACKAGEABLE_AUDIO
            if track.codec in allowed or self.aac.wants(track):
                packaged[kind] = track
        return packaged

    def _start(self, tracks: dict[TrackKind, Track], *, discontinuity: bool) -> None:
        packaged = self._packaged(tracks)
        for kind, track in tracks.items():
            if kind not in packaged:
                log.warning("stream %s: %s codec %s is not packaged into HLS (supported: %s)",
                            self.name, kind.value, track.codec, ", ".join(sorted(
                                PACKAGEABLE_VIDEO if kind is TrackKind.VIDEO
                                else PACKAGEABLE_AUDIO)))
        output = dict(packaged)  # what the renditions carry
        audio = self.aac.open(packaged.get(TrackKind.AUDIO))
        if audio is not None:
            output[TrackKind.AUDIO] = audio
        elif TrackKind.AUDIO in packaged:
            del packaged[TrackKind.AUDIO], output[TrackKind.AUDIO]
        if not packaged:
            log.warning("stream %s: no track can be packaged; nothing will play", self.name)
            self._unpackageable = True
            return
        try:
            self.lane.start(output, discontinuity=discontinuity)
        except (ValueError, av.FFmpegError) as exc:
            log.warning("stream %s: cannot package these tracks: %s", self.name, exc)
            self._unpackageable = True
            return
        self._tracks = packaged
        muxer = self.lane.muxer
        assert muxer is not None
        if self.recording is not None:
            self.recording.set_init(self.lane.inits, muxer.init_segment)
        if self.ts is not None:
            self.ts.start(list(output.values()))
        log.info("stream %s: packaging %s as fMP4 HLS%s", self.name,
                 " + ".join(f"{t.kind.value} {t.codec_string or t.codec}"
                            for t in output.values()),
                 " with LL-HLS parts" if self.config.low_latency else "")
        if self.transcoded is not None:
            self.transcoded.start(tracks.get(TrackKind.VIDEO), output.get(TrackKind.AUDIO),
                                  self._metadata())

    def _metadata(self) -> dict[str, object]:
        return self.stream.metadata if self.stream is not None else {}

    def _restart(self, tracks: dict[TrackKind, Track], cause: str) -> None:
        """The codec configuration changed mid-stream: new init segment, discontinuity."""
        self._flush()
        self.metrics.discontinuities.labels(self.name, cause).inc()
        log.info("stream %s: %s; new init segment after a discontinuity", self.name, cause)
        self._start(tracks, discontinuity=True)

    def _feed(self, unit: MediaUnit) -> None:
        if unit.kind not in self._tracks:
            return
        if not unit.data:  # nothing to play, and libavformat refuses the part holding it
            self.metrics.dropped_units.labels(self.name).inc()
            return
        self.live_edge.ingested(unit.dts)  # what every rendition is measured against
        if unit.kind is TrackKind.AUDIO and self.aac.push(unit):
            return  # its AAC comes back to `_aac_unit`
        self._package(unit)

    def _aac_unit(self, unit: MediaUnit) -> None:
        if self.lane.started and not self.ended:
            self._package(unit)

    def _package(self, unit: MediaUnit) -> None:
        """A unit of what the renditions carry: into the source lane, then the ladders."""
        source = self.renditions.source
        version = source.version
        cut = self.lane.push(unit)
        if self.transcoded is not None:
            self.transcoded.source_unit(unit, cut)
        if source.version != version:  # a part was listed (not for most units)
            self.live_edge.measure(source)
            self.renditions.write_changed()

    def _flush(self) -> None:
        self.lane.flush()
        if self.ts is not None:
            self.ts.finish()

    def _publication_ended(self) -> None:
        self.live = False
        self.stream = None
        grace = self.config.grace_period
        log.info("stream %s: publisher gone; playlists end in %g s unless it reconnects",
                 self.name, grace)
        self._timer = self._schedule(grace, self.end)

    def end(self) -> None:
        """No publisher came back: ENDLIST now, files readable for ENDED_RETENTION."""
        if self.ended:
            return
        if self.transcoded is not None:
            self.transcoded.end()  # also a drain that has not finished
        self.ended = True
        self.ended_at = time.time()
        self.live = False
        self.renditions.end()
        self.metrics.ended(self.name)
        if self.recording is not None:
            self.recording.end()
        log.info("stream %s: broadcast ended (ENDLIST)", self.name)
        self._timer = self._schedule(ENDED_RETENTION, self._expire)

    def _expire(self) -> None:
        if self._on_expired is not None:
            self._on_expired(self)

    def close(self) -> None:
        """Shutting down, replaced or expired: stop everything, forget every file."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
        if self.transcoded is not None:
            self.transcoded.close()
        self.aac.close()
        self.lane.close()
        if self.ts is not None:
            self.ts.close()
        if self.recording is not None and not self.ended:
            self.recording.end()  # shutting down: the recording is a VOD playlist already
        self.renditions.close()

    # -- the timeline (chat) ----------------------------------------------------------------

    def add_date_range(self, date_range: DateRange) -> bool:
        """List it in every rendition's playlist and keep it in the recording. False, and
        nothing listed, unless a publisher is live (not in the grace period, not ended), or
        when the renditions refuse it (its ID is listed already, or too many are)."""
        if not self.live or self.ended or not self.renditions.add_date_range(date_range):
            return False
        if self.recording is not None:
            self.recording.add_date_range(date_range)
        self.renditions.write_changed()
        return True

    @property
    def live_date(self) -> float | None:
        """PROGRAM-DATE-TIME (epoch seconds) where the source's newest listed media ends, the
        date of the frame a viewer at the live edge sees now; None unless a publisher is live
        and media is listed. Cheap: asked for every chat message."""
        if not self.live or self.ended:
            return None
        return self.renditions.source.listed_until

    @property
    def recording_dir(self) -> Path | None:
        """The directory of the recording while it records (`--record-dir`), for files kept
        beside it (chat.jsonl); None without one, once it ended, or after it failed. It may
        not exist yet: the recording creates it with its first file."""
        recording = self.recording
        recorder = recording.recorder if recording is not None else None
        if recorder is None or recorder.ended or not self.config.record_dir:
            return None
        return Path(self.config.record_dir) / recorder.prefix

    # -- for the origin ---------------------------------------------------------------------

    @property
    def state(self) -> str:
        """live (media listed), waiting (for the first media), reconnecting (in the grace
        period), ended (ENDLIST, still readable)."""
        if self.ended:
            return "ended"
        if not self.live:
            return "reconnecting"
        return "live" if self.renditions.has_media else "waiting"

    def rung_status(self, name: str) -> dict[str, object] | None:
        """For the API: a transcoded rendition's state (None for the source, TS)."""
        return self.transcoded.status(name) if self.transcoded is not None else None

    def _measured_frame_rate(self) -> float | None:
        segmenter = self.lane.segmenter
        if TrackKind.VIDEO not in self._tracks or segmenter is None:
            return None
        return segmenter.frame_rate()


__all__ = ["ENDED_RETENTION", "SOURCE", "Broadcast"]
