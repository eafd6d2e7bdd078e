"""Errors raised by the sans-IO RTMP core.

`ProtocolError` is the peer's fault (malformed or hostile input); its `kind` is a short,
stable label used as the `kind` label of `golive_rtmp_protocol_errors_total`, so it must
never contain peer-controlled text. `LocalProtocolError` is our own misuse of the core
(a bug), kept distinct so it is never blamed on a client.
"""


class ProtocolError(Exception):
    """The remote peer sent something the core cannot accept. Drop that connection."""

    kind = "protocol"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class HandshakeError(ProtocolError):
    kind = "handshake"


class ChunkError(ProtocolError):
    kind = "chunk"


class AmfError(ProtocolError):
    kind = "amf"


class FlvError(ProtocolError):
    kind = "flv"


class LocalProtocolError(Exception):
    """The application drove the core wrongly (e.g. accepted a publish nobody asked for)."""
