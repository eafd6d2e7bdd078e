"""A checker for rendered HLS media playlists: the CONFORMANCE.md "## HLS" rules that can be
judged from playlist text, one playlist at a time and across successive reloads.

Parsed by hand rather than with the `m3u8` library: the rules need exact decimal durations,
tag order (MEDIA-SEQUENCE before the first segment, parts before their EXTINF, what trails
the last segment) and attribute spelling, which a forgiving parser would hide.

Every violation is a message that names the rule it breaks; `check_media_playlist` and
`check_successive` raise `RuleViolation` listing all of them at once, and `media_violations`
and `successive_violations` return them for tests that expect a particular breach.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

MIN_WINDOW_SEGMENTS = 6  # Apple: a live playlist lists at least six segments
PART_SHORTFALL = Decimal("0.85")  # parts reach 85% of PART-TARGET, with two exceptions
ONE_MS = Decimal("0.001")

_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^",]*)(?:,|$)')
# Tags that may appear at most once, each naming what it is.
_SINGLE = ("EXT-X-VERSION", "EXT-X-TARGETDURATION", "EXT-X-MEDIA-SEQUENCE",
           "EXT-X-DISCONTINUITY-SEQUENCE", "EXT-X-PART-INF", "EXT-X-SERVER-CONTROL",
           "EXT-X-ENDLIST", "EXT-X-PLAYLIST-TYPE", "EXT-X-INDEPENDENT-SEGMENTS")
_SEGMENT_TAGS = ("EXTINF", "EXT-X-DISCONTINUITY", "EXT-X-PROGRAM-DATE-TIME", "EXT-X-MAP",
                 "EXT-X-PART", "EXT-X-GAP", "EXT-X-BYTERANGE", "EXT-X-KEY")
# EXT-X-DATERANGE (bis 4.4.5.1): its attributes read loosely (any name, a quoted-string or a
# bare value), so the rules can say what is wrong rather than skip what does not parse.
_LOOSE_ATTRIBUTE = re.compile(r'([^=,"]*)=("[^"]*"|[^",]*)(?:,|$)')
_DATERANGE_ATTRIBUTES = ("ID", "CLASS", "START-DATE", "CUE", "END-DATE", "DURATION",
                         "PLANNED-DURATION", "SCTE35-CMD", "SCTE35-OUT", "SCTE35-IN",
                         "END-ON-NEXT")
_CLIENT_ATTRIBUTE = re.compile(r"^X-[A-Z0-9-]+$")  # an AttributeName in the X- namespace
_DECIMAL = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")  # decimal-floating-point
_CLIENT_VALUE = re.compile(r'^(?:"[^"\r\n]*"|0[xX][0-9A-Fa-f]+|-?[0-9]+(?:\.[0-9]+)?)$')


class RuleViolation(AssertionError):
    """A playlist breaks at least one rule; the message lists them all."""


@dataclass
class Part:
    uri: str
    duration: Decimal
    independent: bool


@dataclass
class Segment:
    sequence: int
    uri: str | None  # None: the open segment, listed by its parts only
    duration: Decimal | None
    discontinuity: bool
    program_date_time: datetime | None
    map_uri: str | None  # the EXT-X-MAP in effect
    parts: list[Part] = field(default_factory=list)
    gap: bool = False
    extinf_text: str = ""


@dataclass
class DateRangeTag:
    line: int
    attributes: dict[str, str]  # as written: quoted values keep their quotes
    errors: list[str] = field(default_factory=list)  # what could not be read

    def text(self, name: str) -> str | None:
        raw = self.attributes.get(name)
        return raw[1:-1] if raw is not None and raw.startswith('"') else raw

    def dates(self) -> tuple[datetime, datetime] | None:
        """(START-DATE, its last date), when START-DATE reads; a range with no DURATION
        counts as its first instant (as golive reads bis 6.2.1, see `_date_range_rules`)."""
        try:
            start = datetime.fromisoformat(self.text("START-DATE") or "")
            duration = float(self.attributes.get("DURATION", "0"))
        except ValueError:
            return None
        return start, start + timedelta(seconds=duration)


def _date_range_tag(line: int, value: str) -> DateRangeTag:
    tag = DateRangeTag(line, {})
    position = 0
    while position < len(value):
        match = _LOOSE_ATTRIBUTE.match(value, position)
        if match is None or match.end() == position:
            tag.errors.append(f"cannot read an attribute from {value[position:]!r}")
            break
        name, raw = match.groups()
        if name in tag.attributes:
            tag.errors.append(f"attribute {name} appears twice")
        tag.attributes[name] = raw
        position = match.end()
    return tag


@dataclass
class Playlist:
    """What a media playlist says, as written."""

    text: str
    version: int | None = None
    target_duration: int | None = None
    media_sequence: int | None = None
    discontinuity_sequence: int | None = None
    playlist_type: str | None = None
    independent_segments: bool = False
    part_target: Decimal | None = None
    server_control: dict[str, str] | None = None
    segments: list[Segment] = field(default_factory=list)  # complete ones
    open: Segment | None = None  # parts after the last complete segment
    preload_hints: list[dict[str, str]] = field(default_factory=list)
    rendition_reports: list[dict[str, str]] = field(default_factory=list)
    date_ranges: list[DateRangeTag] = field(default_factory=list)
    ended: bool = False
    has_map: bool = False
    has_skip: bool = False
    errors: list[str] = field(default_factory=list)  # syntax and ordering problems

    @property
    def all_segments(self) -> list[Segment]:
        return [*self.segments, *([self.open] if self.open is not None else [])]

    @property
    def duration(self) -> Decimal:
        """The complete segments' total (the live window)."""
        return sum((s.duration or Decimal(0) for s in self.segments), Decimal(0))

    @property
    def last_sequence(self) -> int:
        return (self.media_sequence or 0) + len(self.segments) - 1

    def part_uris(self) -> set[str]:
        return {part.uri for segment in self.all_segments for part in segment.parts}


def attributes(value: str) -> dict[str, str]:
    found = {}
    for name, raw in _ATTRIBUTE.findall(value):
        found[name] = raw[1:-1] if raw.startswith('"') else raw
    return found


def _decimal(text: str, what: str, errors: list[str]) -> Decimal | None:
    try:
        number = Decimal(text)
    except InvalidOperation:
        errors.append(f"syntax: {what} {text!r} is not a decimal number")
        return None
    if not number.is_finite() or number < 0:
        errors.append(f"syntax: {what} {text!r} is not a non-negative number")
        return None
    return number


def _integer(text: str, what: str, errors: list[str]) -> int | None:
    if not text.isdigit():
        errors.append(f"syntax: {what} {text!r} is not a decimal integer")
        return None
    return int(text)


def parse(text: str) -> Playlist:
    """Read a media playlist; problems of syntax and tag order go to `errors`."""
    playlist = Playlist(text)
    errors = playlist.errors
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0] != "#EXTM3U":
        errors.append("syntax: the first line must be #EXTM3U")
    seen: set[str] = set()
    pending_discontinuity = False
    pending_pdt: datetime | None = None
    pending_parts: list[Part] = []
    pending_gap = False
    extinf: tuple[Decimal | None, str] | None = None
    map_uri: str | None = None
    after_first_segment_tag = False
    trailing = False  # after ENDLIST, PRELOAD-HINT or RENDITION-REPORT only those may follow
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        if line != line.strip() or "\r" in line:
            errors.append(f"syntax: line {number} has stray whitespace")
        if not line.startswith("#"):  # a segment URI
            if extinf is None:
                errors.append(f"syntax: line {number}: URI {line!r} without an EXTINF")
                continue
            if trailing:
                errors.append(f"order: segment {line!r} after the playlist's closing tags")
            sequence = (playlist.media_sequence or 0) + len(playlist.segments)
            playlist.segments.append(Segment(
                sequence, line, extinf[0], pending_discontinuity, pending_pdt, map_uri,
                pending_parts, pending_gap, extinf[1]))
            pending_discontinuity, pending_pdt, pending_parts, pending_gap = False, None, [], False
            extinf = None
            continue
        if not line.startswith("#EXT"):
            continue  # a comment
        name, _, value = line[1:].partition(":")
        if name in _SINGLE:
            if name in seen:
                errors.append(f"syntax: {name} appears more than once")
            seen.add(name)
        if name in _SEGMENT_TAGS:
            after_first_segment_tag = True
            if trailing:
                errors.append(f"order: {name} after the playlist's closing tags")
        elif name in ("EXT-X-MEDIA-SEQUENCE", "EXT-X-DISCONTINUITY-SEQUENCE",
                      "EXT-X-TARGETDURATION") and after_first_segment_tag:
            errors.append(f"order: {name} must come before the first media segment")
        if name == "EXT-X-VERSION":
            playlist.version = _integer(value, name, errors)
        elif name == "EXT-X-TARGETDURATION":
            playlist.target_duration = _integer(value, name, errors)
        elif name == "EXT-X-MEDIA-SEQUENCE":
            playlist.media_sequence = _integer(value, name, errors)
        elif name == "EXT-X-DISCONTINUITY-SEQUENCE":
            playlist.discontinuity_sequence = _integer(value, name, errors)
        elif name == "EXT-X-PLAYLIST-TYPE":
            playlist.playlist_type = value
        elif name == "EXT-X-INDEPENDENT-SEGMENTS":
            playlist.independent_segments = True
        elif name == "EXT-X-PART-INF":
            target = attributes(value).get("PART-TARGET")
            if target is None:
                errors.append("syntax: EXT-X-PART-INF without PART-TARGET")
            else:
                playlist.part_target = _decimal(target, "PART-TARGET", errors)
        elif name == "EXT-X-SERVER-CONTROL":
            playlist.server_control = attributes(value)
        elif name == "EXTINF":
            if extinf is not None:
                errors.append(f"syntax: line {number}: two EXTINF for one segment")
            duration_text = value.partition(",")[0]
            extinf = (_decimal(duration_text, "EXTINF", errors), duration_text)
        elif name == "EXT-X-DISCONTINUITY":
            if pending_parts:
                errors.append(f"order: line {number}: DISCONTINUITY between a segment's parts")
            pending_discontinuity = True
        elif name == "EXT-X-PROGRAM-DATE-TIME":
            try:
                pending_pdt = datetime.fromisoformat(value)
            except ValueError:
                errors.append(f"syntax: PROGRAM-DATE-TIME {value!r} is not ISO 8601")
            if pending_pdt is not None and pending_pdt.tzinfo is None:
                errors.append(f"syntax: PROGRAM-DATE-TIME {value!r} has no time zone")
        elif name == "EXT-X-MAP":
            uri = attributes(value).get("URI")
            if not uri:
                errors.append("syntax: EXT-X-MAP without a URI")
            map_uri = uri
            playlist.has_map = True
        elif name == "EXT-X-PART":
            found = attributes(value)
            duration = _decimal(found.get("DURATION", ""), "PART DURATION", errors)
            if "URI" not in found:
                errors.append(f"syntax: line {number}: EXT-X-PART without a URI")
            if found.get("INDEPENDENT", "YES") != "YES":
                errors.append("syntax: INDEPENDENT is YES or absent")
            pending_parts.append(Part(found.get("URI", ""), duration or Decimal(0),
                                      found.get("INDEPENDENT") == "YES"))
        elif name == "EXT-X-GAP":
            pending_gap = True
        elif name == "EXT-X-SKIP":
            playlist.has_skip = True
        elif name == "EXT-X-DATERANGE":
            playlist.date_ranges.append(_date_range_tag(number, value))
        elif name == "EXT-X-PRELOAD-HINT":
            trailing = True
            playlist.preload_hints.append(attributes(value))
        elif name == "EXT-X-RENDITION-REPORT":
            trailing = True
            playlist.rendition_reports.append(attributes(value))
        elif name == "EXT-X-ENDLIST":
            trailing = True
            playlist.ended = True
    if extinf is not None:
        errors.append("syntax: the last EXTINF has no URI")
    if pending_parts:
        sequence = (playlist.media_sequence or 0) + len(playlist.segments)
        playlist.open = Segment(sequence, None, None, pending_discontinuity, pending_pdt,
                                map_uri, pending_parts)
    elif pending_discontinuity or pending_pdt is not None:
        errors.append("order: segment tags at the end with no segment or part to apply to")
    return playlist


def _ms(value: Decimal) -> str:
    return f"{value * 1000:.0f} ms"


def _needed_version(playlist: Playlist) -> int:
    """RFC 8216bis section 7: floating-point EXTINF needs 3, EXT-X-MAP in a playlist without
    I-FRAMES-ONLY needs 6, EXT-X-SKIP needs 9. Our playlists always write decimal EXTINF,
    so 3 is the floor even for a playlist that lists nothing yet."""
    if playlist.has_skip:
        return 9
    if playlist.has_map:
        return 6
    return 3


def media_violations(text: str, *, first_sequence: int | None = None,
                     min_segments: int = MIN_WINDOW_SEGMENTS,
                     independent: bool | None = None) -> list[str]:
    """Every rule one media playlist breaks.

    `first_sequence`: the MEDIA-SEQUENCE the playlist started at, when known; a higher one
    means segments were removed, so the window rules apply. `independent`: whether every
    listed segment truly starts with a keyframe, when the caller knows.
    """
    playlist = parse(text)
    found = list(playlist.errors)
    found += _header_rules(playlist)
    found += _segment_rules(playlist, independent)
    found += _low_latency_rules(playlist)
    found += _date_range_rules(playlist)
    if (first_sequence is not None and playlist.media_sequence is not None
            and playlist.media_sequence > first_sequence and not playlist.ended):
        found += _window_rules(playlist, min_segments, "segments were removed")
    return found


def _header_rules(playlist: Playlist) -> list[str]:
    found = []
    needed = _needed_version(playlist)
    if playlist.version is None:
        found.append(f"EXT-X-VERSION: missing (this playlist needs version {needed})")
    elif playlist.version > needed:
        found.append(f"EXT-X-VERSION: {playlist.version} is higher than needed ({needed})")
    elif playlist.version < needed:
        found.append(f"EXT-X-VERSION: {playlist.version} is too low for its tags ({needed})")
    if playlist.target_duration is None:
        found.append("EXT-X-TARGETDURATION: missing")
    if playlist.media_sequence is None:
        found.append("EXT-X-MEDIA-SEQUENCE: missing (live playlists must say it)")
    if playlist.discontinuity_sequence is None and not playlist.playlist_type:
        found.append("EXT-X-DISCONTINUITY-SEQUENCE: missing from a live playlist")
    if playlist.playlist_type is not None and not playlist.ended:
        found.append(f"PLAYLIST-TYPE: {playlist.playlist_type} on a live playlist")
    if playlist.playlist_type not in (None, "VOD", "EVENT"):
        found.append(f"PLAYLIST-TYPE: unknown value {playlist.playlist_type!r}")
    return found


def _segment_rules(playlist: Playlist, independent: bool | None) -> list[str]:
    found = []
    target = playlist.target_duration
    listed = playlist.all_segments
    for segment in playlist.segments:
        duration = segment.duration
        if duration is None:
            continue
        if target is not None and math.floor(duration + Decimal("0.5")) > target:
            found.append(f"EXTINF: segment {segment.sequence} lasts {segment.extinf_text} s, "
                         f"which rounds above TARGETDURATION {target}")
        if duration <= 0:
            found.append(f"EXTINF: segment {segment.sequence} has no duration")
        if "." not in segment.extinf_text:
            found.append(f"EXTINF: segment {segment.sequence} duration is not decimal")
        if segment.parts:
            total = sum((p.duration for p in segment.parts), Decimal(0))
            if abs(total - duration) > ONE_MS * len(segment.parts):
                found.append(f"EXT-X-PART: segment {segment.sequence}'s parts add up to "
                             f"{total} s, its EXTINF says {duration} s")
    uris = [s.uri for s in playlist.segments]
    if len(set(uris)) != len(uris):
        found.append("URI: a segment URI is listed twice")
    fmp4 = any(s.uri and s.uri.endswith((".m4s", ".mp4")) for s in listed) or any(
        p.uri.endswith((".m4s", ".mp4")) for s in listed for p in s.parts)
    if fmp4:
        for segment in listed:
            if segment.map_uri is None:
                found.append(f"EXT-X-MAP: fMP4 segment {segment.sequence} has no init segment")
    # PROGRAM-DATE-TIME: in every live playlist, on every segment after a discontinuity, and
    # (our rule) on every segment, continuing the previous one's date by its duration.
    if listed and not playlist.ended and listed[0].program_date_time is None:
        found.append("PROGRAM-DATE-TIME: the first segment of a live playlist has none")
    previous: Segment | None = None
    for segment in listed:
        date = segment.program_date_time
        if segment.discontinuity and date is None:
            found.append(f"PROGRAM-DATE-TIME: segment {segment.sequence} follows a "
                         "DISCONTINUITY without one")
        if (previous is not None and not segment.discontinuity and date is not None
                and previous.program_date_time is not None and previous.duration is not None):
            expected = previous.program_date_time.timestamp() + float(previous.duration)
            if abs(date.timestamp() - expected) > 0.0025:
                found.append(f"PROGRAM-DATE-TIME: segment {segment.sequence} starts at "
                             f"{date.isoformat()}, not where segment {previous.sequence} ends "
                             "(no DISCONTINUITY between them)")
        previous = segment
    if playlist.independent_segments:
        for segment in listed:
            if segment.parts and not segment.parts[0].independent:
                found.append(f"INDEPENDENT-SEGMENTS: segment {segment.sequence}'s first part "
                             "is not INDEPENDENT")
        if independent is False:
            found.append("INDEPENDENT-SEGMENTS: present, but not every segment starts with "
                         "a keyframe")
    elif independent is True and listed:
        found.append("INDEPENDENT-SEGMENTS: every segment starts with a keyframe, but the "
                     "tag is missing")
    if playlist.ended:
        if playlist.preload_hints:
            found.append("PRELOAD-HINT: never with ENDLIST")
        if playlist.open is not None:
            found.append("ENDLIST: parts listed after the last complete segment")
    return found


def _low_latency_rules(playlist: Playlist) -> list[str]:
    found: list[str] = []
    listed = playlist.all_segments
    any_parts = any(s.parts for s in listed)
    part_target = playlist.part_target
    control = playlist.server_control
    target = playlist.target_duration
    if any_parts and part_target is None:
        found.append("EXT-X-PART-INF: EXT-X-PART tags need a PART-TARGET")
    if control is not None and target is not None:
        hold = control.get("HOLD-BACK")
        if hold is not None and Decimal(hold) < 3 * target:
            found.append(f"HOLD-BACK: {hold} s is under 3 x TARGETDURATION ({3 * target} s)")
    if part_target is not None:
        part_hold = (control or {}).get("PART-HOLD-BACK")
        if part_hold is None:
            found.append("PART-HOLD-BACK: required in SERVER-CONTROL when EXT-X-PART-INF "
                         "is present")
        elif Decimal(part_hold) < 2 * part_target:
            found.append(f"PART-HOLD-BACK: {part_hold} s is under 2 x PART-TARGET")
        elif Decimal(part_hold) < 3 * part_target:
            found.append(f"PART-HOLD-BACK: {part_hold} s is under 3 x PART-TARGET "
                         "(Apple's advice, which we follow)")
        if not playlist.ended and (control or {}).get("CAN-BLOCK-RELOAD") != "YES":
            found.append("SERVER-CONTROL: a low-latency live playlist must say "
                         "CAN-BLOCK-RELOAD=YES")
        if target is not None and part_target > target:
            found.append("PART-TARGET: longer than TARGETDURATION")
    if part_target is not None:
        for segment in listed:
            parts = segment.parts
            for index, part in enumerate(parts):
                if part.duration > part_target:
                    found.append(f"EXT-X-PART: {part.uri} lasts {_ms(part.duration)}, over "
                                 f"PART-TARGET {_ms(part_target)}")
                if part.duration <= 0:
                    found.append(f"EXT-X-PART: {part.uri} has no duration")
                last = segment.uri is not None and index == len(parts) - 1
                if (not last and not part.independent
                        and part.duration < PART_SHORTFALL * part_target):
                    found.append(f"EXT-X-PART: {part.uri} lasts {_ms(part.duration)}, under "
                                 f"85% of PART-TARGET {_ms(part_target)} (neither INDEPENDENT "
                                 "nor its segment's last part)")
    uris = [p.uri for s in listed for p in s.parts]
    if len(set(uris)) != len(uris):
        found.append("EXT-X-PART: a part URI is listed twice")
    found += _part_window_rules(playlist)
    # PRELOAD-HINT: one part hint at most, for a part not listed yet; part of the full
    # low-latency profile (hls.js uses parts only with it) in live playlists with parts.
    part_hints = [h for h in playlist.preload_hints if h.get("TYPE") == "PART"]
    for hint in playlist.preload_hints:
        if hint.get("TYPE") not in ("PART", "MAP") or not hint.get("URI"):
            found.append(f"PRELOAD-HINT: needs TYPE=PART or MAP and a URI: {hint}")
    if len(part_hints) > 1:
        found.append("PRELOAD-HINT: more than one TYPE=PART hint")
    for hint in part_hints:
        if hint.get("URI") in playlist.part_uris():
            found.append(f"PRELOAD-HINT: {hint.get('URI')} is already listed as a part")
    if part_target is not None and not playlist.ended and not part_hints:
        found.append("PRELOAD-HINT: a low-latency live playlist needs a TYPE=PART hint")
    for report in playlist.rendition_reports:
        if not report.get("URI") or not report.get("LAST-MSN", "").isdigit():
            found.append(f"RENDITION-REPORT: needs URI and LAST-MSN: {report}")
        if "LAST-PART" in report and not report["LAST-PART"].isdigit():
            found.append(f"RENDITION-REPORT: LAST-PART must be a part index: {report}")
    return found


def _part_window_rules(playlist: Playlist) -> list[str]:
    """Which segments may (and must) list their parts.

    draft-pantos-hls-rfc8216bis 6.2.2 (the EXT-X-PART tag of 4.4.4.9): "EXT-X-PART tags
    SHOULD be removed from the Playlist after they are greater than three Target Durations
    from the end of the Playlist. Clients MUST be able to download the Partial Segment for at
    least three Target Durations after the EXT-X-PART tag is removed from the Playlist."

    How we read it, exactly:
    - "the end of the Playlist" is the end of the last listed media: the complete segments
      plus the open segment's parts.
    - a tag is as far from the end as the media from its start to that end (6.3.3 measures
      a segment's distance from the end the same way, from where it starts).
    - parts leave a segment all at once (removal is "in the order that they appear", and a
      segment's parts must add up to its EXTINF), so a segment lists its parts only while
      its first one is within three target durations: a segment partly older loses them all.
    So a segment lists parts exactly when the end lies at most 3 x TARGETDURATION after its
    start; a live playlist must list them then (players at PART-HOLD-BACK need them).
    Gap segments have no media, hence no parts, and are not judged.
    """
    found: list[str] = []
    target = playlist.target_duration
    if target is None or not any(s.parts for s in playlist.all_segments):
        return found
    window = 3 * target
    open_parts = playlist.open.parts if playlist.open is not None else []
    to_end = sum((p.duration for p in open_parts), Decimal(0))  # from a segment's start
    for segment in reversed(playlist.segments):
        to_end += segment.duration or 0
        if segment.gap:
            continue
        if segment.parts and to_end > window:
            found.append(f"EXT-X-PART: segment {segment.sequence} starts {to_end} s from the "
                         f"end of the playlist, over 3 x TARGETDURATION ({window} s), and "
                         "still lists its parts")
        elif not segment.parts and to_end <= window and not playlist.ended:
            found.append(f"EXT-X-PART: segment {segment.sequence} starts {to_end} s from the "
                         f"end of the playlist, within 3 x TARGETDURATION ({window} s), but "
                         "lists no parts")
    return found


def _date_range_rules(playlist: Playlist) -> list[str]:
    """EXT-X-DATERANGE syntax (bis 4.4.5.1): ID a quoted-string unique in the playlist (golive
    never augments a range with a second tag of its ID); START-DATE a quoted ISO 8601 date
    with a time zone; CLASS and END-DATE quoted; DURATION and PLANNED-DURATION decimal
    numbers; every other name defined by the spec or an X- client attribute (an AttributeName:
    A-Z, 0-9, -) whose value is a quoted-string, a hexadecimal-sequence or a
    signed-decimal-floating-point; and at least one PROGRAM-DATE-TIME in the playlist."""
    found: list[str] = []
    ids: set[str] = set()
    for tag in playlist.date_ranges:
        where = f"EXT-X-DATERANGE (line {tag.line})"
        found += [f"{where}: {error}" for error in tag.errors]
        raw = tag.attributes
        for name, value in raw.items():
            if name in _DATERANGE_ATTRIBUTES:
                continue
            if not _CLIENT_ATTRIBUTE.match(name):
                found.append(f"{where}: attribute {name!r} is neither the spec's nor an X- "
                             "client attribute of A-Z, 0-9 and -")
            elif not _CLIENT_VALUE.match(value):
                found.append(f"{where}: {name}={value} is not a quoted-string, hexadecimal "
                             "or decimal number")
        for name in ("ID", "CLASS", "START-DATE", "END-DATE"):
            if name in raw and not (len(raw[name]) >= 2 and raw[name][0] == raw[name][-1] == '"'):
                found.append(f"{where}: {name} must be a quoted-string, got {raw[name]}")
        identifier = tag.text("ID")
        if not identifier:
            found.append(f"{where}: no ID")
        elif identifier in ids:
            found.append(f"{where}: ID {identifier!r} is listed twice")
        ids.add(identifier or "")
        for name in ("START-DATE", "END-DATE"):
            text = tag.text(name)
            if text is None:
                if name == "START-DATE":
                    found.append(f"{where}: no START-DATE")
                continue
            try:
                date = datetime.fromisoformat(text)
            except ValueError:
                found.append(f"{where}: {name} {text!r} is not ISO 8601")
                continue
            if date.tzinfo is None:
                found.append(f"{where}: {name} {text!r} has no time zone")
        for name in ("DURATION", "PLANNED-DURATION"):
            if name in raw and not _DECIMAL.match(raw[name]):
                found.append(f"{where}: {name}={raw[name]} is not a decimal-floating-point")
    if playlist.date_ranges and not any(s.program_date_time for s in playlist.all_segments):
        found.append("EXT-X-DATERANGE: the playlist has no EXT-X-PROGRAM-DATE-TIME (a playlist "
                     "with date ranges must have one)")
    return found


def _date_range_reload_rules(old: Playlist, new: Playlist) -> list[str]:
    """bis 6.2.1: "The server MUST NOT remove an EXT-X-DATERANGE tag from a Playlist if any
    date in the range maps to a Media Segment in the Playlist", and a later tag of the same ID
    "cannot change (or lose) attributes" (4.4.5.1.1). A range without a DURATION is read as
    its START-DATE instant, as golive's renderer reads it (`date_range_in_window`)."""
    found: list[str] = []
    dated = [(s.program_date_time, s.duration if s.duration is not None
              else sum((p.duration for p in s.parts), Decimal(0)))
             for s in new.all_segments if s.program_date_time is not None]
    listed = {tag.text("ID"): tag for tag in new.date_ranges}
    for tag in old.date_ranges:
        identifier = tag.text("ID")
        now = listed.get(identifier)
        if now is not None:
            lost = {name: value for name, value in tag.attributes.items()
                    if now.attributes.get(name) != value}
            if lost:
                found.append(f"EXT-X-DATERANGE: {identifier!r} changed or lost {lost}")
            continue
        dates = tag.dates()
        if dates is None or not dated:
            continue
        first, end = dated[0][0], dated[-1][0] + timedelta(seconds=float(dated[-1][1]))
        if dates[1] >= first and dates[0] <= end:
            found.append(f"EXT-X-DATERANGE: {identifier!r} was removed while its dates still "
                         f"map to a listed segment ({first.isoformat()} to {end.isoformat()})")
    return found


def _window_rules(playlist: Playlist, min_segments: int, why: str) -> list[str]:
    found = []
    target = playlist.target_duration or 0
    if playlist.duration < 3 * target:
        found.append(f"window: {playlist.duration} s listed after {why}, under 3 x "
                     f"TARGETDURATION ({3 * target} s)")
    if len(playlist.segments) < min_segments:
        found.append(f"window: {len(playlist.segments)} segments listed after {why}, under "
                     f"Apple's {min_segments}")
    return found


def successive_violations(old_text: str, new_text: str, *,
                          min_segments: int = MIN_WINDOW_SEGMENTS) -> list[str]:
    """The rules a reload breaks: `new_text` is the playlist served after `old_text`."""
    old, new = parse(old_text), parse(new_text)
    found: list[str] = []
    if old.ended:
        if new_text != old_text:
            found.append("ENDLIST: the playlist changed after it ended")
        return found
    found += _date_range_reload_rules(old, new)
    if new.target_duration != old.target_duration:
        found.append(f"TARGETDURATION: changed from {old.target_duration} to "
                     f"{new.target_duration}")
    if old.part_target is not None and new.part_target != old.part_target and not (
            new.ended and new.part_target is None):  # an ended playlist may drop its parts
        found.append(f"PART-TARGET: changed from {old.part_target} to {new.part_target}")
    if old.server_control and new.server_control and not new.ended and (
            new.server_control != old.server_control):
        found.append("SERVER-CONTROL: changed between reloads")
    if old.media_sequence is None or new.media_sequence is None:
        return found
    if new.media_sequence < old.media_sequence:
        found.append(f"MEDIA-SEQUENCE: went back from {old.media_sequence} to "
                     f"{new.media_sequence}")
        return found
    if new.last_sequence < old.last_sequence:
        found.append(f"segments: the newest complete segment went from {old.last_sequence} "
                     f"back to {new.last_sequence}")
    removed = [s for s in old.segments if s.sequence < new.media_sequence]
    if new.media_sequence - old.media_sequence != len(removed):
        found.append(f"MEDIA-SEQUENCE: rose by {new.media_sequence - old.media_sequence} "
                     f"but {len(removed)} listed segments were removed")
    expected_ds = (old.discontinuity_sequence or 0) + sum(s.discontinuity for s in removed)
    if (new.discontinuity_sequence or 0) != expected_ds:
        found.append(f"DISCONTINUITY-SEQUENCE: {new.discontinuity_sequence}, expected "
                     f"{expected_ds} (+1 per removed DISCONTINUITY)")
    if removed and not new.ended:
        found += _window_rules(new, min_segments, "segments were removed")
    previous = {s.sequence: s for s in old.all_segments}
    for segment in new.all_segments:
        before = previous.get(segment.sequence)
        if before is None:
            continue
        if before.uri is not None and (segment.uri, segment.duration) != (
                before.uri, before.duration):
            found.append(f"segments: segment {segment.sequence} changed from {before.uri} "
                         f"({before.duration} s) to {segment.uri} ({segment.duration} s)")
        if segment.discontinuity != before.discontinuity:
            found.append(f"DISCONTINUITY: segment {segment.sequence} gained or lost its tag")
        if (before.program_date_time is not None and segment.program_date_time is not None
                and before.program_date_time != segment.program_date_time):
            found.append(f"PROGRAM-DATE-TIME: segment {segment.sequence} changed date")
        if before.parts and segment.parts:
            old_parts = [(p.uri, p.duration, p.independent) for p in before.parts]
            new_parts = [(p.uri, p.duration, p.independent) for p in segment.parts]
            if new_parts[:len(old_parts)] != old_parts:
                found.append(f"EXT-X-PART: segment {segment.sequence}'s listed parts changed")
        elif before.uri is None and segment.uri is not None and not segment.parts and (
                new.part_target is not None and not new.ended):
            found.append(f"EXT-X-PART: segment {segment.sequence} lost its parts on "
                         "completing")
    return found


def check_media_playlist(text: str, **options: object) -> Playlist:
    found = media_violations(text, **options)  # type: ignore[arg-type]
    if found:
        raise RuleViolation(_report(found, text))
    return parse(text)


def check_successive(old_text: str, new_text: str, **options: object) -> None:
    found = successive_violations(old_text, new_text, **options)  # type: ignore[arg-type]
    if found:
        raise RuleViolation(_report(found, old_text + "----- then -----\n" + new_text))


def _report(found: list[str], text: str) -> str:
    return "\n".join(["HLS rules broken:", *(f"  - {f}" for f in found), "playlist:", text])
