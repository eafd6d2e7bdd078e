"""Classic MPEG-TS HLS segments (H.264 + AAC) with libavformat's mpegts muxer, through PyAV.

CONFORMANCE.md wants continuity counters and timestamps to run on across segments, so one
muxer lives for a whole timeline and its output is cut at segment boundaries; a fresh muxer
per segment would restart every PID's counter at 0. Cutting a long-lived muxer's output is
only right if every byte of a segment has left libavformat before the next segment's first
byte does. Three places hold data back, measured on PyAV 18.1 / FFmpeg 8:

* the AVIO buffer (up to 32 KB): `flush_packets=1` hands each packet's bytes over at once;
* the mpegts muxer gathers audio frames into PES packets of up to 2930 bytes and writes them
  later: `pes_payload_size=0` gives every AAC frame its own PES, written at once;
* the interleaving queue of `av_interleaved_write_frame` (the only write call PyAV offers)
  keeps at least one packet back while the muxer has two streams: it cannot know that no
  older packet will follow. `max_interleave_delta=1` (microseconds) shrinks the queue to
  exactly the newest packet for input in DTS order, and PyAV cannot flush the queue short of
  closing the muxer. So the segment's last packet comes out when the next one goes in: the
  caller passes the first unit of the *next* segment as `following`; it is muxed at the end
  of this call (releasing this segment's tail), stays queued, and comes out at the start of
  the next call, where it belongs. The cost is latency: a TS segment can be muxed only once
  the first unit of the next one exists (the live packager has it one part later).
  `following=None` closes the muxer instead, which flushes everything: the end of the
  broadcast, or a discontinuity (the next call then starts a new muxer, whose timestamps may
  go backwards, which a running mpegts muxer refuses).

PAT and PMT: the muxer writes them before every video keyframe that follows a non-keyframe,
so a segment starting with an IDR starts with PAT, PMT, then the IDR (the first segment is
led by the one SDT the muxer writes; `sdt_period` keeps it from repeating at a cut). Units
arrive as FLV carries them (avcC, length-prefixed NAL units; raw AAC with an
AudioSpecificConfig): libavformat's mpegts muxer inserts `h264_mp4toannexb` itself when the
extradata is avcC (start codes, SPS/PPS before each IDR) and writes ADTS headers for AAC, so
no byte here is converted by hand.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Sequence

import av
from av.container import InputContainer, OutputContainer
from av.stream import Stream

from golive.flv_template import flv_with_sequence_headers
from golive.media import MILLISECONDS, MediaUnit, Track, TrackKind
from golive.packager.fmp4 import (
    UnsupportedCodec,
)

TS_PACKET = 188
TS_OPTIONS = {
    "max_interleave_delta": "1",  # see the module docstring: at most one packet queued
    "pes_payload_size": "0",  # one PES per audio frame, written at once
    "flush_packets": "1",  # every packet's bytes leave the AVIO buffer at once
    "avoid_negative_ts": "disabled",  # never shift: timestamps continue across muxers
    "sdt_period": "10000000",  # seconds: the DVB SDT once, not before a PAT at some cut
}


class TsMuxer:
    """Muxes one rendition (H.264 video, optionally AAC audio) into MPEG-TS segments."""

    def __init__(self, tracks: Iterable[Track]) -> None:
        ordered = sorted(tracks, key=lambda t: t.kind is not TrackKind.VIDEO)
        if not ordered:
            raise ValueError("nothing to mux")
        for track in ordered:
            wanted = "h264" if track.kind is TrackKind.VIDEO else "aac"
            if track.codec != wanted:
                raise UnsupportedCodec(
                    f"{track.kind} codec {track.codec} cannot go into MPEG-TS HLS here "
                    "(H.264 and AAC only)")
        if ordered[0].kind is not TrackKind.VIDEO:
            # Without video keyframes the muxer writes PAT/PMT only every `pat_period`,
            # not at segment starts; audio-only renditions are left to fMP4.
            raise UnsupportedCodec("an MPEG-TS rendition needs an H.264 video track")
        if len(ordered) > 2 or len({t.kind for t in ordered}) != len(ordered):
            raise ValueError("at most one video and one audio track")
        self.tracks = tuple(ordered)
        self._buffer = io.BytesIO()
        self._output: OutputContainer | None = None
        self._streams: dict[TrackKind, Stream] = {}
        self._pending: MediaUnit | None = None  # muxed as `following`, still queued
        self.timelines = 0  # muxers opened: each restarts continuity counters
        flv = flv_with_sequence_headers(self.tracks)
        self._template: InputContainer | None = av.open(io.BytesIO(flv), "r", format="flv")
        self._template_streams = {s.type: s for s in self._template.streams}
        missing = [t.kind.value for t in self.tracks
                   if t.kind.value not in self._template_streams]
        if missing:
            self.close()
            raise UnsupportedCodec(f"libavformat read no {', '.join(missing)} configuration")

    def close(self) -> None:
        """Drop the muxer without writing anything more."""
        self._abandon()
        self._template_streams = {}
        if self._template is not None:
            self._template.close()
            self._template = None

    def mux_segment(self, units: Sequence[tuple[MediaUnit, int]],
                    following: MediaUnit | None = None) -> bytes:
        """The bytes of one segment: `units` in DTS order, each with its duration in ms.

        `following` is the first unit of the next segment on the same timeline; without it the
        muxer is closed after this segment (end of broadcast, or a discontinuity follows).
        """
        if self._template is None:
            raise ValueError("the muxer is closed")
        todo = list(units)
        if self._pending is not None:
            # Already muxed at the end of the previous call; its bytes come out below.
            if not todo or todo[0][0] != self._pending:
                raise ValueError("the segment does not start with the unit announced as "
                                 "`following` in the previous call")
            todo = todo[1:]
            self._pending = None
        if following is not None and todo and following.dts <= max(u.dts for u, _ in todo):
            raise ValueError("`following` must come after every unit of the segment")
        output = self._output if self._output is not None else self._open()
        try:
            for unit, duration in todo:
                self._mux(output, unit, duration)
            if following is None:
                self._output = None
                output.close()  # av_write_trailer: flushes the interleaving queue
            elif len(self._streams) > 1 and following.kind in self._streams:
                # A single stream is not interleaved: nothing queued, nothing to release.
                self._mux(output, following, 0)
                self._pending = following
        except av.FFmpegError:
            # The muxer's state is unknown (e.g. DTS went backwards): drop it and its bytes;
            # the next call starts a new timeline.
            self._abandon()
            raise
        data = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        if len(data) % TS_PACKET:
            raise RuntimeError(f"the muxer left a partial TS packet ({len(data)} bytes)")
        return data

    def _abandon(self) -> None:
        output, self._output = self._output, None
        self._pending = None
        if output is not None:
            with contextlib.suppress(av.FFmpegError):
                output.close()
        self._buffer.seek(0)
        self._buffer.truncate()

    def _open(self) -> OutputContainer:
        output = av.open(self._buffer, "w", format="mpegts", options=dict(TS_OPTIONS))
        streams: dict[TrackKind, Stream] = {}
        for track in self.tracks:
            stream = output.add_stream_from_template(
                self._template_streams[track.kind.value], opaque=True)
            stream.time_base = MILLISECONDS  # the muxer sets 1/90000; PyAV rescales
            if track.kind is TrackKind.VIDEO:
                stream.codec_context.width = track.width
                stream.codec_context.height = track.height
            elif track.sample_rate:
                stream.codec_context.sample_rate = track.sample_rate
            streams[track.kind] = stream
        output.start_encoding()
        self._output = output
        self._streams = streams
        self.timelines += 1
        return output

    def _mux(self, output: OutputContainer, unit: MediaUnit, duration: int) -> None:
        stream = self._streams.get(unit.kind)
        if stream is None:
            return
        packet = av.Packet(unit.data)
        packet.stream = stream
        packet.time_base = MILLISECONDS
        packet.dts = unit.dts
        packet.pts = unit.pts
        packet.duration = duration
        packet.is_keyframe = unit.keyframe
        output.mux(packet)
