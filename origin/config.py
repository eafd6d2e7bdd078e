"""The `[http]` settings: where the HTTP origin (HLS, player pages, /metrics, /api) listens,
and how long and how many connections a client may hold. Built by `golive.config` from TOML
or the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from golive.errors import raise_problems, shown


@dataclass(frozen=True)
class HttpConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    # Seconds from a request head's first byte to its end (slowloris); 0: no limit.
    header_timeout: float = 5.0
    # Seconds an idle keep-alive connection (or a new one that sends nothing) is kept; players
    # reuse theirs every part or segment, far more often.
    keepalive_timeout: float = 15.0
    # Concurrent connections per client address; 0: no limit. A browser opens at most 6 per
    # host and an LL-HLS player 2-4, so 128 lets 20-60 viewers share one NAT address.
    max_connections_per_address: int = 128

    EXPECTED: ClassVar[dict[str, str]] = {"port": "a TCP port 0-65535"}

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append(f"http.port must be a TCP port 0-65535, got {shown(self.port)}")
        if self.header_timeout < 0:
            problems.append("http.header_timeout must be 0 (off) or more seconds, got "
                            f"{shown(self.header_timeout)}")
        if self.keepalive_timeout <= 0:
            problems.append("http.keepalive_timeout must be more than 0 seconds, got "
                            f"{shown(self.keepalive_timeout)}")
        if self.max_connections_per_address < 0:
            problems.append("http.max_connections_per_address must be 0 (no limit) or more, "
                            f"got {shown(self.max_connections_per_address)}")
        raise_problems(problems)
