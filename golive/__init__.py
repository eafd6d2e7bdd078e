"""golive: a live-streaming media server (RTMP in, HLS out)."""

__version__ = "0.1.0"
