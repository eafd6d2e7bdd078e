"""The `[http]` settings: where the HTTP origin (HLS, player pages, /metrics, /api) listens.
Built by `golive.config` from TOML or the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from golive.errors import ConfigError, shown


@dataclass(frozen=True)
class HttpConfig:
    host: str = "0.0.0.0"
    port: int = 8080

    EXPECTED: ClassVar[dict[str, str]] = {"port": "a TCP port 0-65535"}

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"http.port must be a TCP port 0-65535, got {shown(self.port)}")
