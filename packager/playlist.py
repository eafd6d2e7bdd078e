"""HLS playlist text as a pure function of plain data (RFC 8216 and its LL-HLS revision).

Nothing here reads a clock or the store: the caller passes in what the playlist lists, and the
same input always renders the same text, which keeps golden tests exact.

Date ranges (EXT-X-DATERANGE: gifts, pins, markers on the program's timeline) carry text that
viewers typed. A quoted-string may not hold a double quote, CR or LF (RFC 8216bis 4.2); a
value that did would end the attribute, or the tag, where the viewer chose: `_quoted` makes
every such value safe, so no user string can add an attribute or a line to a playlist.
"""

from __future__ import annotations

import bisect
import math
import re
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


# An AttributeName (bis 4.2: [A-Z], [0-9], "-") in the "X-" namespace of client attributes.
_CLIENT_ATTRIBUTE = re.compile(r"^X-[A-Z0-9-]+$")
# What a quoted-string may not hold (bis 4.2: ", CR, LF), and what some parsers split lines on
# as well (C0/C1 controls, U+2028/2029: Python's splitlines does); lone surrogates (which
# UTF-8 cannot encode) would make the playlist unwritable.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class DateRange:
    """One EXT-X-DATERANGE (RFC 8216bis 4.4.5.1): a moment (or span) of the program's dates.

    `id` and `class_name` come from the server (e.g. "golive-g-81f2", "io.golive.gift"): they
    must be non-empty and plain, or this raises ValueError. `attributes` are client attributes
    named in full as players see them, "X-" prefix included (("X-GOLIVE-USER", "Ada") renders
    X-GOLIVE-USER="Ada", which hls.js exposes as `attr["X-GOLIVE-USER"]`); names are
    uppercase A-Z, 0-9 and "-". A str value is user text, rendered as a quoted-string made safe
    (a double quote becomes ', line breaks and control characters a space); an int renders as
    it is, a float with three decimals, like every other number in these playlists.
    """

    id: str
    class_name: str
    start_date: float  # epoch seconds
    duration: float | None = None  # seconds; None: not known (rendered without DURATION)
    attributes: tuple[tuple[str, str | int | float], ...] = ()

    def __post_init__(self) -> None:
        for what, text in (("ID", self.id), ("CLASS", self.class_name)):
            if not text or '"' in text or _UNSAFE.search(text) or _SURROGATE.search(text):
                raise ValueError(f"DateRange {what} must be non-empty plain text: {text!r}")
        if not math.isfinite(self.start_date):
            raise ValueError(f"DateRange START-DATE must be a date: {self.start_date!r}")
        if self.duration is not None and not (math.isfinite(self.duration)
                                              and self.duration >= 0):
            raise ValueError(f"DateRange DURATION must be 0 or more: {self.duration!r}")
        names = [name for name, _ in self.attributes]
        for name, value in self.attributes:
            if not _CLIENT_ATTRIBUTE.match(name):
                raise ValueError(f"DateRange attribute {name!r} is not X-<A-Z, 0-9, ->")
            if isinstance(value, bool) or not isinstance(value, str | int | float) or (
                    isinstance(value, float) and not math.isfinite(value)):
                raise ValueError(f"DateRange attribute {name} has no HLS form: {value!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"DateRange attributes named twice: {names}")

    @property
    def end_date(self) -> float:
        """Its last date; a range of unknown duration counts as the instant it starts."""
        return self.start_date + (self.duration or 0.0)


def date_range_in_window(date_range: DateRange, window_start: float) -> bool:
    """Is it still listed in a playlist whose first segment starts at `window_start`?

    RFC 8216bis 6.2.1: "The server MUST NOT remove an EXT-X-DATERANGE tag from a Playlist if
    any date in the range maps to a Media Segment in the Playlist", and the server may
    "Remove Media Metadata tags that no longer apply to the presentation". So a range stays
    while its last date (its START-DATE, or START-DATE + DURATION) is not older than the
    first listed segment, and leaves with the segment its last date fell in. One of unknown
    duration is taken as the instant it starts: a strict reading would keep it for the whole
    broadcast, and golive's ranges are events (a gift, a pin) whose moment is their start.
    Ranges dated after the newest listed media stay too (a rendition that lags, such as the
    MPEG-TS one, lists them before it lists their media).
    """
    return date_range.end_date >= window_start


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
    # Listed while in the window (`date_range_in_window`), each before the segment it falls in.
    date_ranges: tuple[DateRange, ...] = ()


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
    before, after = _place_date_ranges(playlist, listed, open_segment)
    init_uri = ""
    for index, segment in enumerate(listed):
        lines.extend(before.get(index, ()))
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
        lines.extend(before.get(len(listed), ()))
        if playlist.open_discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if playlist.open_init_uri and playlist.open_init_uri != init_uri:
            lines.append(f'#EXT-X-MAP:URI="{playlist.open_init_uri}"')
        if playlist.open_program_date_time is not None:
            lines.append("#EXT-X-PROGRAM-DATE-TIME:"
                         + format_date_time(playlist.open_program_date_time))
        lines.extend(_part_line(part) for part in playlist.open_parts)
    lines.extend(after)
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


def _place_date_ranges(playlist: MediaPlaylist, listed: list[SegmentEntry],
                       open_segment: bool) -> tuple[dict[int, list[str]], list[str]]:
    """The DATERANGE lines to write before each listed segment (by index; the open segment's
    is `len(listed)`), and those to write after all listed media.

    A range goes before the first segment whose end is after its START-DATE: the segment it
    falls in (for a date in the hole a discontinuity left, the next one). The open segment
    counts as endless: it is still growing, so a range dated at the live edge (where chat
    stamps its events) stays before it from one reload to the next. A date after all listed
    media (nothing open) goes at the end, which is where the segment it falls in will follow.

    Before the segment's own tags (DISCONTINUITY, MAP, PROGRAM-DATE-TIME) rather than after
    its date: EXT-X-DATERANGE is a Media Metadata tag, "not associated with specific Media
    Segments" (bis 4.4.5), and players place it by its START-DATE (hls.js maps every range to
    the fragment whose dates hold it, AVFoundation likewise), so any position is legal. This
    one keeps a segment's tags together, never comes between the EXT-X-PART tags of a segment
    (the tags that apply to it must precede its first part, bis 4.4.4.9), and gives the tag to
    the right fragment in players that read it as the next segment's tag (hls.js before 1.2).
    """
    if not playlist.date_ranges:
        return {}, []
    starts = [s.program_date_time for s in listed]
    ends = [s.program_date_time + s.duration for s in listed]
    if open_segment and playlist.open_program_date_time is not None:
        starts.append(playlist.open_program_date_time)
        ends.append(math.inf)
    if not starts:  # "If a Playlist contains an EXT-X-DATERANGE tag, it MUST also contain at
        return {}, []  # least one EXT-X-PROGRAM-DATE-TIME tag" (bis 4.4.5.1)
    before: dict[int, list[str]] = {}
    after: list[str] = []
    for date_range in sorted(playlist.date_ranges, key=lambda d: d.start_date):
        if not date_range_in_window(date_range, starts[0]):
            continue
        # Dates never run backwards in a playlist, so the ends are sorted (a recording lists
        # thousands of segments).
        index = bisect.bisect_right(ends, date_range.start_date)
        line = _date_range_line(date_range)
        if index < len(ends):
            before.setdefault(index, []).append(line)
        else:
            after.append(line)
    return before, after


def _date_range_line(date_range: DateRange) -> str:
    attributes = [f"ID={_quoted(date_range.id)}", f"CLASS={_quoted(date_range.class_name)}",
                  f'START-DATE="{format_date_time(date_range.start_date)}"']
    if date_range.duration is not None:
        attributes.append(f"DURATION={date_range.duration:.3f}")
    for name, value in date_range.attributes:
        if isinstance(value, str):
            text = _quoted(value)
        elif isinstance(value, int):
            text = str(value)
        else:  # decimal positional notation (never 1e-05): signed-decimal-floating-point
            text = f"{value:.3f}"
        attributes.append(f"{name}={text}")
    return "#EXT-X-DATERANGE:" + ",".join(attributes)


def _quoted(text: str) -> str:
    """A quoted-string holding `text` as near as HLS allows: " becomes ', a line break or
    control character a space, a lone surrogate U+FFFD. Everything else (markup, commas,
    any other Unicode) is legal inside the quotes and stays; whoever displays it escapes it."""
    return '"' + _SURROGATE.sub("\ufffd", _UNSAFE.sub(" ", text.replace('"', "'"))) + '"'


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
