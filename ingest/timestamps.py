"""RTMP timestamps are 32-bit milliseconds that wrap after ~49.7 days; unwrap them to 64 bits."""

_WRAP = 1 << 32
_HALF = 1 << 31


class TimestampUnwrapper:
    """Serial-number arithmetic (RFC 1982 style): a step of less than 2^31 ms forwards is
    progress, a larger one is a small step backwards (e.g. B-frame order across tracks)."""

    __slots__ = ("_last", "_started", "_value")

    def __init__(self) -> None:
        self._started = False
        self._last = 0
        self._value = 0

    def unwrap(self, timestamp: int) -> int:
        if not self._started:
            self._started = True
            self._last = timestamp
            self._value = timestamp
            return timestamp
        step = (timestamp - self._last) % _WRAP
        if step >= _HALF:
            step -= _WRAP
        self._last = timestamp
        self._value += step
        return self._value
