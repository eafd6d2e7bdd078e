"""Track settling: which tracks a publication has, decided before its first segment is cut.

RTMP announces no track list. A publisher's metadata (`onMetaData`) usually names its codecs,
and each track's configuration arrives in a sequence header before its first frame; but some
encoders send no metadata, or audio only a moment after video. Muxing must not start with one
track and learn of the other later (a new init segment and a discontinuity in the first
seconds), so the first units wait here until every announced track has its configuration,
both kinds are known, or SETTLE_MS of media has gone by with no announcement. Pure: tracks,
units and the metadata in; whether the set is settled and the units held, out.
"""

from __future__ import annotations

from collections.abc import Mapping

from golive.media import MediaUnit, Track, TrackKind

SETTLE_MS = 1000  # media time to wait for a second track the metadata did not announce
MAX_PENDING_UNITS = 1000  # units held while the track set settles (the oldest go first)


class TrackSettling:
    """One publication's source tracks, and its first units until their set is settled."""

    def __init__(self) -> None:
        self.tracks: dict[TrackKind, Track] = {}  # the newest configuration of each kind
        self.pending: list[MediaUnit] = []
        self.dropped = 0  # units held too long: the oldest, past MAX_PENDING_UNITS

    def track(self, track: Track) -> None:
        self.tracks[track.kind] = track

    def hold(self, unit: MediaUnit) -> None:
        self.pending.append(unit)
        if len(self.pending) > MAX_PENDING_UNITS:
            del self.pending[0]
            self.dropped += 1

    def settled(self, metadata: Mapping[str, object]) -> bool:
        """Is the track set known? Every track the metadata announced has its configuration,
        or both kinds do, or SETTLE_MS of media went by without an announcement."""
        if not self.tracks:
            return False
        announced = set()
        if "videocodecid" in metadata:
            announced.add(TrackKind.VIDEO)
        if "audiocodecid" in metadata:
            announced.add(TrackKind.AUDIO)
        if announced and announced <= self.tracks.keys():
            return True
        if len(self.tracks) == 2:
            return True
        pending = self.pending
        return bool(pending) and pending[-1].dts - pending[0].dts >= SETTLE_MS

    def take(self) -> list[MediaUnit]:
        """The units held so far, oldest first; none are held after this."""
        pending, self.pending = self.pending, []
        return pending
