"""The packager: turns every live stream in the hub into HLS renditions in the store.

One `Broadcast` per public stream name outlives its publications: a publisher that drops and
reconnects within the grace period continues the same playlists after a discontinuity, with
MEDIA-SEQUENCE still counting up. After the grace period the playlists get ENDLIST and stay
readable for a while; numbering continues if the name is published again.

Muxing a part takes a fraction of a millisecond (see `fmp4.py`), so it runs on the event loop
between units: a thread hop would cost more than the work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import av

from golive.config import HlsConfig
from golive.hub import Hub, LiveStream, Subscription
from golive.media import MediaUnit, Track, TrackKind
from golive.packager.fmp4 import PACKAGEABLE_AUDIO, PACKAGEABLE_VIDEO
from golive.packager.lane import Lane
from golive.packager.metrics import PackagerMetrics
from golive.packager.playlist import MasterPlaylist, Variant, render_master_playlist
from golive.packager.recording import Recorder, seal_recording
from golive.packager.rendition import Rendition
from golive.packager.store import DiskStore, Store
from golive.packager.timeline import Part, TimelineConfig
from golive.packager.transcoded import TranscodedRenditions
from golive.packager.ts_output import TsOutput
from golive.transcode.audio import AudioToAac, AudioTranscodeError, AudioTranscoder
from golive.transcode.service import Transcoder

log = logging.getLogger("golive.packager")

SOURCE = "source"  # the rendition that passes the publisher's encoding through untouched
TS = "ts"  # MPEG-TS for legacy players (hls.mpegts)
SETTLE_MS = 1000  # media time to wait for a second track the metadata did not announce
MAX_PENDING_UNITS = 1000  # units held while the track set settles
SUBSCRIBER_CAPACITY = 2048  # ~40 s of video+audio: the packager must not lose units
ENDED_RETENTION = 60.0  # seconds an ended broadcast's playlists stay readable


class Broadcast:
    """One stream name's HLS output across publisher reconnects."""

    def __init__(self, name: str, config: HlsConfig, store: Store, metrics: PackagerMetrics,
                 first_sequence: int = 0,
                 on_expired: Callable[[Broadcast], None] | None = None,
                 transcoder: Transcoder | None = None,
                 audio: AudioToAac | None = None) -> None:
        self.name = name
        self.config = config
        self.store = store
        self.metrics = metrics
        self.timeline = TimelineConfig(segment_target_ms=round(config.segment_target * 1000),
                                       part_target_ms=round(config.part_target * 1000))
        self.source = self._rendition(SOURCE, first_sequence)
        self.renditions: dict[str, Rendition] = {SOURCE: self.source}
        self.lane = Lane(name, self.source, self.timeline, metrics)
        self.ts: TsOutput | None = None
        if config.mpegts:  # a media playlist of its own, not in the (fMP4) master playlist
            self.renditions[TS] = Rendition(
                name, TS, store, target_duration=self.timeline.target_duration_s,
                window_segments=config.window_segments, low_latency=False,
                first_sequence=first_sequence, extension="ts")
            self.ts = TsOutput(name, self.renditions[TS])
        self.transcoder = transcoder
        self.transcoded = TranscodedRenditions(self, transcoder) if transcoder else None
        self.audio = audio  # transcodes audio other than AAC (None: passed through)
        self._aac: AudioTranscoder | None = None  # this publication's, while it runs
        self.started_at = time.time()
        self.live = False  # a publisher is connected
        self.ended = False
        self.publications = 0
        self.stream: LiveStream | None = None
        self._tracks: dict[TrackKind, Track] = {}  # the source's tracks being packaged
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._on_expired = on_expired
        self._master: tuple[tuple[int, ...], str] | None = None
        self._written: dict[str, int] = {}  # rendition -> version last written to the store
        self._written_master = ""
        self.newest_ingest_ms: int | None = None
        self._warned_keyframes = False
        self._closed = False
        self._unpackageable = False  # the current tracks cannot be packaged
        self.recorder: Recorder | None = None
        if config.record_dir:  # <record_dir>/<name>/<UTC start>/index.m3u8
            started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.started_at))
            self.recorder = Recorder(DiskStore(config.record_dir), f"{name}/{started}/",
                                     target_duration=self.timeline.target_duration_s)

    def _rendition(self, name: str, first_sequence: int) -> Rendition:
        return Rendition(self.name, name, self.store,
                         target_duration=self.timeline.target_duration_s,
                         window_segments=self.config.window_segments,
                         low_latency=self.config.low_latency, first_sequence=first_sequence)

    def add_rendition(self, name: str) -> Rendition:
        """A transcoded rendition, numbered on from the source; every fMP4 rendition's
        playlist reports on the others (EXT-X-RENDITION-REPORT)."""
        rendition = self._rendition(name, self.source.next_sequence)
        self.renditions[name] = rendition
        fmp4 = [r for n, r in self.renditions.items() if n != TS]
        for each in fmp4:
            each.others = [other for other in fmp4 if other is not each]
        return rendition

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
        subscription = stream.subscribe("hls", SUBSCRIBER_CAPACITY)
        self._task = asyncio.get_running_loop().create_task(
            self._run(stream, subscription, self._task), name=f"hls {self.name}")

    async def _run(self, stream: LiveStream, subscription: Subscription,
                   previous: asyncio.Task[None] | None) -> None:
        if previous is not None:  # a takeover: the old publication's units go first
            await asyncio.wait([previous])
        pending: list[MediaUnit] = []
        tracks: dict[TrackKind, Track] = {}
        reconnect = self.publications > 1
        try:
            async for item in subscription:
                if isinstance(item, Track):
                    tracks[item.kind] = item
                    self._unpackageable = False  # new configuration: try again
                    if self.lane.started and self._packaged(tracks) != self._tracks:
                        self._restart(tracks, "codec change")
                    continue
                if self._unpackageable:
                    self.metrics.dropped_units.labels(self.name).inc()
                    continue
                if not self.lane.started:
                    pending.append(item)
                    if len(pending) > MAX_PENDING_UNITS:
                        del pending[0]
                        self.metrics.dropped_units.labels(self.name).inc()
                    if self._settled(tracks, stream, pending):
                        self._start(tracks, discontinuity=reconnect)
                        for unit in pending:
                            self._feed(unit)
                        pending.clear()
                    continue
                self._feed(item)
        except Exception:
            log.exception("stream %s: packaging failed; the playlists end here", self.name)
        finally:
            if not self._closed:  # when shutting down, nothing more is listed
                await self._finish(stream, tracks, pending, reconnect)

    async def _finish(self, stream: LiveStream, tracks: dict[TrackKind, Track],
                      pending: list[MediaUnit], reconnect: bool) -> None:
        if not self.lane.started and pending and tracks:
            self._start(tracks, discontinuity=reconnect)
            for unit in pending:
                self._feed(unit)
        if self._aac is not None:  # its last frames belong to this publication's segments
            await self._aac.drain()
            self._close_aac()
        if self._closed:
            return
        self._flush()
        if self.transcoded is not None:
            self.transcoded.stop(drain=True)
        self.lane.close()  # the next publication starts from its own tracks
        self._tracks = {}
        if self.stream is stream:
            self._publication_ended()

    def _settled(self, tracks: dict[TrackKind, Track], stream: LiveStream,
                 pending: list[MediaUnit]) -> bool:
        """Is the track set known? Muxing starts once every announced track has its
        configuration, or after SETTLE_MS of media when the publisher announced nothing."""
        if not tracks:
            return False
        announced = set()
        if "videocodecid" in stream.metadata:
            announced.add(TrackKind.VIDEO)
        if "audiocodecid" in stream.metadata:
            announced.add(TrackKind.AUDIO)
        if announced and announced <= tracks.keys():
            return True
        if len(tracks) == 2:
            return True
        return pending[-1].dts - pending[0].dts >= SETTLE_MS

    def _packaged(self, tracks: dict[TrackKind, Track]) -> dict[TrackKind, Track]:
        """The source tracks this broadcast takes: as they are, or audio through AAC."""
        packaged = {}
        for kind, track in tracks.items():
            allowed = PACKAGEABLE_VIDEO if kind is TrackKind.VIDEO else PACKAGEABLE_AUDIO
            if track.codec in allowed or (self.audio is not None and self.audio.wants(track)):
                packaged[kind] = track
        return packaged

    def _open_aac(self, audio: Track | None) -> Track | None:
        """The audio track every rendition carries: the source's, or the AAC it is
        transcoded to (one transcoder per publication, kept across a video codec change).
        None when there is none to carry."""
        if audio is None or self.audio is None or not self.audio.wants(audio):
            self._close_aac()
            return audio
        if self._aac is not None and self._aac.core.source == audio:
            return self._aac.track
        self._close_aac()
        try:
            self._aac = self.audio.open(self.name, audio, self._aac_unit)
        except AudioTranscodeError as exc:
            log.warning("stream %s: %s audio cannot be transcoded to AAC (%s)", self.name,
                        audio.codec, exc)
            return audio if audio.codec in PACKAGEABLE_AUDIO else None
        log.info("stream %s: %s audio is transcoded to AAC at %d kb/s for every rendition",
                 self.name, audio.codec, self._aac.core.bitrate // 1000)
        return self._aac.track

    def _close_aac(self) -> None:
        if self._aac is not None:
            self._aac.close()
            self._aac = None

    def _start(self, tracks: dict[TrackKind, Track], *, discontinuity: bool) -> None:
        packaged = self._packaged(tracks)
        for kind, track in tracks.items():
            if kind not in packaged:
                log.warning("stream %s: %s codec %s is not packaged into HLS (supported: %s)",
                            self.name, kind.value, track.codec, ", ".join(sorted(
                                PACKAGEABLE_VIDEO if kind is TrackKind.VIDEO
                                else PACKAGEABLE_AUDIO)))
        output = dict(packaged)  # what the renditions carry
        audio = self._open_aac(packaged.get(TrackKind.AUDIO))
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
        inits = self.lane.inits
        self._record(lambda recorder: recorder.set_init(inits, muxer.init_segment))
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
        self.newest_ingest_ms = unit.dts  # the live edge every rendition is measured against
        if unit.kind is TrackKind.AUDIO and self._aac is not None:
            self._aac.push(unit)  # its AAC comes back to `_aac_unit`
            return
        self._package(unit)

    def _aac_unit(self, unit: MediaUnit) -> None:
        if self.lane.started and not self.ended:
            self._package(unit)

    def _package(self, unit: MediaUnit) -> None:
        """A unit of what the renditions carry: into the source lane, the ladders, the rungs."""
        version = self.source.version
        cut = self.lane.push(unit, self._listed)
        last = self.source.last_media_ms
        if last is not None:
            self.metrics.live_edge_delay.labels(self.name, SOURCE).set(
                max(0, (self.newest_ingest_ms or unit.dts) - last) / 1000)
        if self.transcoded is not None:
            self.transcoded.source_unit(unit, cut)
        if self.source.version != version:
            self._write_playlists()

    def _flush(self) -> None:
        self.lane.flush(self._listed)
        if self.ts is not None:
            self.ts.finish()

    def _listed(self, part: Part) -> None:
        """A source part is listed: what follows the source rendition follows it."""
        source = self.source
        transcoded = self.transcoded
        if part.forced and part.first_in_segment and transcoded is not None and (
                transcoded.transcoder.reencode_long_gops):
            transcoded.reencode_source(self._tracks.get(TrackKind.VIDEO),
                                       self.lane.tracks.get(TrackKind.AUDIO), self._metadata())
        if part.forced and part.first_in_segment and not self._warned_keyframes:
            self._warned_keyframes = True
            log.warning(
                "stream %s: the publisher's keyframe interval is longer than the %g s "
                "segment target, so segments are cut between keyframes; set the "
                "encoder's keyframe interval to %g s (OBS: Output > Keyframe Interval)",
                self.name, self.config.segment_target, self.config.segment_target)
        if self.ts is not None:
            self.ts.add(part, source.last_msn)
        if part.first_in_segment and transcoded is not None:
            transcoded.source_segment_started(part, source.last_msn)
        if part.last_in_segment and source.segments:
            segment = source.segments[-1]
            if transcoded is not None:
                transcoded.source_segment_listed(segment.sequence)
            self._record(lambda recorder, s=segment: recorder.add_segment(
                s.sequence, self.store.get(source.prefix + s.uri) or b"", s.duration_ms,
                s.independent, s.discontinuity, s.program_date_time))

    def _record(self, action: Callable[[Recorder], None]) -> None:
        """Recording must never stop the live stream: a failure (disk full) ends it."""
        if self.recorder is None:
            return
        try:
            action(self.recorder)
        except (OSError, ValueError) as exc:
            log.error("stream %s: recording stopped: %s", self.name, exc)
            self.metrics.recording_errors.labels(self.name).inc()
            self.recorder = None

    def _write_playlists(self) -> None:
        """A disk store also gets the playlists (each written atomically), so another server
        (nginx, a CDN's origin pull) can serve the directory as it is. The memory store does
        not need them: the origin renders playlists on request."""
        if not self.store.holds_playlists:
            return
        # Only what changed since the last write: with a ladder, one rendition's new part
        # would otherwise rewrite every playlist.
        for name, rendition in self.renditions.items():
            if self._written.get(name) != rendition.version:
                self._written[name] = rendition.version
                self.store.put(f"{self.name}/{name}/index.m3u8", rendition.text().encode())
        master = self.master_text()
        if master != self._written_master:
            self._written_master = master
            self.store.put(f"{self.name}/index.m3u8", master.encode())

    def _publication_ended(self) -> None:
        self.live = False
        self.stream = None
        grace = self.config.grace_period
        log.info("stream %s: publisher gone; playlists end in %g s unless it reconnects",
                 self.name, grace)
        self._timer = asyncio.get_running_loop().call_later(grace, self.end)

    def end(self) -> None:
        """No publisher came back: ENDLIST now, files readable for ENDED_RETENTION."""
        if self.ended:
            return
        if self.transcoded is not None:
            self.transcoded.stop(drain=False)
            self.transcoded.done()  # also after a drain that has not finished
        self.ended = True
        self.live = False
        for rendition in self.renditions.values():
            rendition.end()
        self._write_playlists()
        self._record(lambda recorder: recorder.end())
        log.info("stream %s: broadcast ended (ENDLIST)", self.name)
        self._timer = asyncio.get_running_loop().call_later(ENDED_RETENTION, self._expire)

    def _expire(self) -> None:
        if self._on_expired is not None:
            self._on_expired(self)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
        if self.transcoded is not None:
            self.transcoded.stop(drain=False)
        self._close_aac()
        lanes = [self.lane, *(self.transcoded.lanes.values() if self.transcoded else ())]
        inits = {lane.rendition.name: lane.inits for lane in lanes}
        for lane in lanes:
            lane.close()
        if self.ts is not None:
            self.ts.close()
        for name, rendition in self.renditions.items():
            rendition.close()
            self.store.delete(f"{self.name}/{name}/index.m3u8")
            for index in range(1, inits.get(name, 0) + 1):  # earlier publications' inits
                self.store.delete(f"{rendition.prefix}init-{index}.mp4")
        self.store.delete(f"{self.name}/index.m3u8")
        self.metrics.forget(self.name, list(self.renditions))
        if self.transcoded is not None:
            self.transcoder.forget(self.name, list(self.transcoded.lanes))
        if self.audio is not None:
            self.audio.forget(self.name)

    # -- for the origin ---------------------------------------------------------------------

    @property
    def has_media(self) -> bool:
        return any(r.has_media for r in self.renditions.values())

    def rung_status(self, name: str) -> dict[str, object] | None:
        """For the API: a transcoded rendition's state (None for the source, TS)."""
        return self.transcoded.status(name) if self.transcoded is not None else None

    @property
    def variants(self) -> list[Rendition]:
        """The renditions the master playlist offers, best first."""
        transcoded = self.transcoded
        if transcoded is None:
            return [self.source]
        stand_in = not transcoded.transcoder.passthrough or transcoded.reencoded is not None
        return ([] if stand_in else [self.source]) + transcoded.offered()

    def master_text(self) -> str:
        versions = tuple(r.version for r in self.renditions.values())
        if self._master is not None and self._master[0] == versions:
            return self._master[1]
        variants = []
        offered = [r for r in self.variants if r.has_media]
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

    def _measured_frame_rate(self) -> float | None:
        segmenter = self.lane.segmenter
        if TrackKind.VIDEO not in self._tracks or segmenter is None:
            return None
        return segmenter.frame_rate()


class PackagerService:
    """Creates a `Broadcast` for every stream the hub starts."""

    def __init__(self, config: HlsConfig, hub: Hub, store: Store,
                 metrics: PackagerMetrics, transcoder: Transcoder | None = None,
                 audio: AudioToAac | None = None) -> None:
        self.config = config
        self.transcoder = transcoder
        self.audio = audio
        self.store = store
        self.metrics = metrics
        self.broadcasts: dict[str, Broadcast] = {}
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
            next_sequence = max(r.next_sequence for r in broadcast.renditions.values())
            broadcast.close()
            broadcast = None
        else:
            next_sequence = 0
        if broadcast is None:
            broadcast = Broadcast(stream.name, self.config, self.store, self.metrics,
                                  first_sequence=next_sequence, on_expired=self._expired,
                                  transcoder=self.transcoder, audio=self.audio)
            self.broadcasts[stream.name] = broadcast
            self.metrics.broadcasts.set(len(self.broadcasts))
        broadcast.attach(stream)

    def _expired(self, broadcast: Broadcast) -> None:
        if self.broadcasts.get(broadcast.name) is broadcast:
            del self.broadcasts[broadcast.name]
            self.metrics.broadcasts.set(len(self.broadcasts))
        broadcast.close()

    def get(self, name: str) -> Broadcast | None:
        return self.broadcasts.get(name)

    async def close(self) -> None:
        for broadcast in list(self.broadcasts.values()):
            broadcast.close()
        self.broadcasts.clear()
