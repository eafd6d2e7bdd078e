"""The `[http]` settings: where the public HTTP origin (HLS, player pages, /api/streams)
listens, and how long and how many connections a client may hold; the `[admin]` settings:
where metrics and the operator's actions are served. Built by `golive.config` from TOML or
the command line.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import ClassVar

from golive.errors import ConfigError, raise_problems, shown

# Shorter bearer tokens are guessable by an attacker who can try them over the network.
MIN_TOKEN_LENGTH = 16


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
    # Answer well-formed HLS GETs straight off the socket (origin/hls_fast.py); false: every
    # request through aiohttp (the same replies, at a fifth of the requests per second).
    fast_hls: bool = True

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


@dataclass(frozen=True)
class AdminConfig:
    """Metrics and admin actions (publishers and their addresses, kick, key rotation) are kept
    off the public port. The safe default, as MediaMTX does for its API and metrics: a second
    listener on loopback, reachable only from this machine (Prometheus on the host, an SSH
    tunnel, a reverse proxy that does its own authentication).

    `token` (a bearer token, `Authorization: Bearer TOKEN`) is the other choice, for an
    operator whose Prometheus or tools are elsewhere: with it, the admin routes are also served
    on the public port, and every admin request, on either port, must carry it. An admin
    listener on a non-loopback address requires a token: nothing else would protect it.
    `listen = false` turns the admin listener off (the admin routes then exist only with a
    token, on the public port).
    """

    host: str = "127.0.0.1"
    port: int = 8081
    listen: bool = True
    token: str | None = None

    EXPECTED: ClassVar[dict[str, str]] = {"port": "a TCP port 0-65535"}

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append(f"admin.port must be a TCP port 0-65535, got {shown(self.port)}")
        if self.token is not None and (len(self.token) < MIN_TOKEN_LENGTH
                                       or not self.token.isprintable() or " " in self.token):
            # The token itself is never echoed: error messages end up in logs.
            problems.append(f"admin.token must be at least {MIN_TOKEN_LENGTH} printable "
                            "characters without spaces (e.g. `openssl rand -hex 24`)")
        raise_problems(problems)

    def check_exposure(self) -> None:
        """Refuse an admin listener that anyone could reach without a token. Checked by the
        composition (the CLI before it starts, `Server` itself) rather than on construction:
        the token may come from the environment while the host comes from the TOML file."""
        if self.listen and self.token is None and not is_loopback(self.host):
            raise ConfigError(
                f"admin.host {shown(self.host)} is not a loopback address: anyone who can reach it "
                "could list publishers' addresses, kick them and rotate keys. Set an admin "
                "token (--admin-token, GOLIVE_ADMIN_TOKEN or [admin] token) or listen on "
                "127.0.0.1")


def is_loopback(host: str) -> bool:
    """Only this machine can connect: 'localhost' or a loopback address (not "" or 0.0.0.0,
    which mean every interface, nor another host name, which may resolve anywhere)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
