"""The AAC side path: audio the renditions cannot carry as it came, transcoded to AAC.

Every rendition carries one audio track. AAC passes straight through; any other audio that
`AudioToAac` wants (Opus, MP3, G.711, ...) goes through one `AudioTranscoder` per publication,
on a thread of its own, and its AAC comes back to `deliver` on the event loop. A video codec
change keeps the transcoder (the audio did not change); a new audio configuration replaces it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from golive.media import MediaUnit, Track
from golive.packager.fmp4 import PACKAGEABLE_AUDIO
from golive.transcode.audio import AudioToAac, AudioTranscodeError, AudioTranscoder

log = logging.getLogger("golive.packager")


class AacSidePath:
    def __init__(self, stream: str, audio: AudioToAac | None,
                 deliver: Callable[[MediaUnit], None]) -> None:
        self.stream = stream
        self._audio = audio  # None: audio passes through as it came (audio = "source")
        self._deliver = deliver
        self._transcoder: AudioTranscoder | None = None  # this publication's, while it runs

    def wants(self, track: Track) -> bool:
        return self._audio is not None and self._audio.wants(track)

    def open(self, source: Track | None) -> Track | None:
        """The audio track every rendition carries for this `source` audio: itself, or the
        AAC it is transcoded to; None when there is none to carry."""
        audio = self._audio
        if source is None or audio is None or not audio.wants(source):
            self.close()
            return source
        if self._transcoder is not None and self._transcoder.core.source == source:
            return self._transcoder.track
        self.close()
        try:
            self._transcoder = audio.open(self.stream, source, self._deliver)
        except AudioTranscodeError as exc:
            log.warning("stream %s: %s audio cannot be transcoded to AAC (%s)", self.stream,
                        source.codec, exc)
            return source if source.codec in PACKAGEABLE_AUDIO else None
        log.info("stream %s: %s audio is transcoded to AAC at %d kb/s for every rendition",
                 self.stream, source.codec, self._transcoder.core.bitrate // 1000)
        return self._transcoder.track

    def push(self, unit: MediaUnit) -> bool:
        """Take a source audio unit if it is transcoded (its AAC comes to `deliver`)."""
        if self._transcoder is None:
            return False
        self._transcoder.push(unit)
        return True

    async def drain(self) -> None:
        """The publication is over: its last frames still belong to its segments."""
        if self._transcoder is not None:
            await self._transcoder.drain()
            self.close()

    def close(self) -> None:
        if self._transcoder is not None:
            self._transcoder.close()
            self._transcoder = None
