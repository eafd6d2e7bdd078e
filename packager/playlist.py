"""HLS playlist text as a pure function of plain data (RFC 8216 and its LL-HLS revision).

Nothing here reads a clock or the store: the caller passes in what the playlist lists, and the
same input always renders the same text, which keeps golden tests exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class PartEntry:
    uri: str
    duration: float  # seconds
    independent: bool


@dataclass(frozen=True, slots=True)
class SegmentEntry:
    sequence: int  # media sequence number
    uri: str
    duration: float  # seconds (EXTINF)
    program_date_time: float  # epoch seconds of its first sample
    init_uri: str  # the EXT-X-MAP it needs (fMP4); empty for MPEG-TS
    independent: bool  # starts with a keyframe
    discontinuity: bool = False
    parts: tuple[PartEntry, ...] = ()  # listed only near the live edge
    gap: bool = False


@dataclass(frozen=True, slots=True)
class RenditionReport:
    uri: str
    last_msn: int
    last_part: int | None  # None when that rendition lists no parts


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    target_duration: int
    media_sequence: int
    discontinuity_sequence: int
    segments: Sequence[SegmentEntry]
    ended: bool = False
    part_target: float | None = None  # seconds; None renders a classic playlist
    open_parts: tuple[PartEntry, ...] = ()  # parts of the segment not yet complete
    open_program_date_time: float | None = None  # when the open segment has no entry yet
    open_init_uri: str = ""
    open_discontinuity: bool = False
    preload_hint: str | None = None
    rendition_reports: tuple[RenditionReport, ...] = ()
    playlist_type: str | None = None  # "VOD" for recordings; live playlists have none


def format_date_time(epoch: float) -> str:
    """ISO 8601 with milliseconds and a Z, as players parse it."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def hold_back(playlist: MediaPlaylist) -> tuple[float, float | None]:
    """HOLD-BACK (3 target durations) and PART-HOLD-BACK (3 part targets, Apple's advice)."""
    part_hold = 3 * playlist.part_target if playlist.part_target else None
    return 3.0 * playlist.target_duration, part_hold


def render_media_playlist(playlist: MediaPlaylist) -> str:
    low_latency = playlist.part_target is not None and not playlist.ended
    lines = ["#EXTM3U", "#EXT-X-VERSION:3",  # raised below when an EXT-X-MAP is written
             f"#EXT-X-TARGETDURATION:{playlist.target_duration}"]
    if playlist.playlist_type:
        lines.append(f"#EXT-X-PLAYLIST-TYPE:{playlist.playlist_type}")
    # Parts exist for players at the live edge: an ended playlist lists whole segments only.
    # (Its PART-INF would need a PART-HOLD-BACK too, RFC 8216bis 4.4.3.8.)
    if low_latency:
        hold, part_hold = hold_back(playlist)
        lines.append(f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
                     f"PART-HOLD-BACK={part_hold:.3f},HOLD-BACK={hold:.3f}")
        lines.append(f"#EXT-X-PART-INF:PART-TARGET={playlist.part_target:.3f}")
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{playlist.media_sequence}")
    lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{playlist.discontinuity_sequence}")
    listed = list(playlist.segments)
    open_segment = bool(playlist.open_parts) and not playlist.ended
    independent = all(s.independent for s in listed) and (
        not open_segment or playlist.open_parts[0].independent)
    if independent and (listed or open_segment):
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    init_uri = ""
    for segment in listed:
        if segment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.init_uri and segment.init_uri != init_uri:
            init_uri = segment.init_uri
            lines.append(f'#EXT-X-MAP:URI="{init_uri}"')
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{format_date_time(segment.program_date_time)}")
        if low_latency:
            lines.extend(_part_line(part) for part in segment.parts)
        if segment.gap:
            lines.append("#EXT-X-GAP")
        lines.append(f"#EXTINF:{segment.duration:.3f},")
        lines.append(segment.uri)
    if open_segment:
        if playlist.open_discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if playlist.open_init_uri and playlist.open_init_uri != init_uri:
            lines.append(f'#EXT-X-MAP:URI="{playlist.open_init_uri}"')
        if playlist.open_program_date_time is not None:
            lines.append("#EXT-X-PROGRAM-DATE-TIME:"
                         + format_date_time(playlist.open_program_date_time))
        lines.extend(_part_line(part) for part in playlist.open_parts)
    if low_latency and playlist.preload_hint:
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{playlist.preload_hint}"')
    if low_latency:
        for report in playlist.rendition_reports:
            attributes = f'URI="{report.uri}",LAST-MSN={report.last_msn}'
            if report.last_part is not None:
                attributes += f",LAST-PART={report.last_part}"
            lines.append(f"#EXT-X-RENDITION-REPORT:{attributes}")
    if playlist.ended:
        lines.append("#EXT-X-ENDLIST")
    if init_uri or (open_segment and playlist.open_init_uri):
        # No higher than needed (RFC 8216bis 7): 3 for decimal EXTINF, 6 for EXT-X-MAP.
        lines[1] = "#EXT-X-VERSION:6"
    return "\n".join(lines) + "\n"


def _part_line(part: PartEntry) -> str:
    line = f'#EXT-X-PART:DURATION={part.duration:.3f},URI="{part.uri}"'
    if part.independent:
        line += ",INDEPENDENT=YES"
    return line


@dataclass(frozen=True, slots=True)
class Variant:
    uri: str
    bandwidth: int  # peak, bits per second
    average_bandwidth: int
    codecs: tuple[str, ...]
    resolution: tuple[int, int] | None = None
    frame_rate: float | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class MasterPlaylist:
    variants: Sequence[Variant] = field(default_factory=tuple)
    independent_segments: bool = True


def render_master_playlist(master: MasterPlaylist) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:6"]
    if master.independent_segments:
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    for variant in sorted(master.variants, key=lambda v: -v.bandwidth):
        attributes = [f"BANDWIDTH={max(1, variant.bandwidth)}",
                      f"AVERAGE-BANDWIDTH={max(1, variant.average_bandwidth)}"]
        if variant.codecs:
            attributes.append(f'CODECS="{",".join(variant.codecs)}"')
        if variant.resolution:
            attributes.append(f"RESOLUTION={variant.resolution[0]}x{variant.resolution[1]}")
        if variant.frame_rate:
            attributes.append(f"FRAME-RATE={variant.frame_rate:.3f}")
        if variant.name:
            attributes.append(f'NAME="{variant.name}"')
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attributes))
        lines.append(variant.uri)
    return "\n".join(lines) + "\n"
