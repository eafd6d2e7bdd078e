"""The transcoder as the packager sees it: which rungs a source gets, and a session per stream.

Built by the composition root from `TranscodeConfig`; the packager asks it for a ladder when a
publication's video track is known and feeds the session it opens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from golive.media import Track
from golive.transcode.config import TranscodeConfig
from golive.transcode.ladder import APPLE_H264, Rung, ladder_for, parse_rung
from golive.transcode.metrics import TranscodeMetrics
from golive.transcode.pipeline import EncoderSettings
from golive.transcode.pool import SessionCallbacks, TranscodePool, TranscodeSession

DECODABLE = frozenset({"h264", "hevc", "av1", "vp9"})


class Transcoder:
    def __init__(self, config: TranscodeConfig, registry: CollectorRegistry) -> None:
        self.config = config
        self.metrics = TranscodeMetrics(registry)
        self.ladder = tuple(parse_rung(text) for text in config.ladder)
        self.settings = EncoderSettings(
            codec=config.codec, preset=config.preset, profile=config.profile,
            bframes=config.bframes, maxrate=config.maxrate, bufsize=config.bufsize,
            threads=config.threads, sliced_threads=config.sliced_threads,
            lookahead=config.lookahead,
            x264_params=config.x264_params)
        self.pool = TranscodePool(config.workers or TranscodePool.default_size(),
                                  self.settings, self.metrics)

    @property
    def passthrough(self) -> bool:
        return self.config.passthrough

    @property
    def reencode_long_gops(self) -> bool:
        return self.config.long_gop == "reencode"

    def rungs_for(self, video: Track, metadata: Mapping[str, Any]) -> tuple[Rung, ...]:
        """The ladder for this source (empty: nothing to transcode)."""
        if not self.transcodable(video):
            return ()
        rungs = ladder_for(self.ladder, video.width, video.height, _bitrate(metadata))
        if not self.passthrough:  # the source's size is re-encoded too
            rungs = (self.top_rung(video, metadata), *rungs)
        return rungs

    @staticmethod
    def transcodable(video: Track) -> bool:
        return video.codec in DECODABLE and bool(video.width and video.height)

    @staticmethod
    def top_rung(video: Track, metadata: Mapping[str, Any]) -> Rung:
        """The source's own size, re-encoded: Apple's rate for that size, or the source's
        announced rate when lower."""
        short = min(video.width, video.height)
        bitrate = _bitrate(metadata)
        apple = next((kbps for side, kbps in APPLE_H264 if side >= short), 7800) * 1000
        return Rung(short, min(apple, bitrate) if bitrate else apple, video.width, video.height)

    def open(self, stream: str, video: Track, rungs: tuple[Rung, ...],
             callbacks: SessionCallbacks, *, from_idr: bool = False) -> TranscodeSession:
        return self.pool.open(stream, video, rungs, callbacks, from_idr=from_idr)


    def shutting_down(self) -> None:
        """The server stops: no worker is restarted from now on (see `TranscodePool`)."""
        self.pool.shutting_down()

    async def close(self) -> None:
        await self.pool.close()


def _bitrate(metadata: Mapping[str, Any]) -> int:
    """The video bitrate the encoder announced (OBS, FFmpeg: kb/s), in b/s; 0 if none."""
    rate = metadata.get("videodatarate")
    return round(rate * 1000) if isinstance(rate, int | float) and rate > 0 else 0
