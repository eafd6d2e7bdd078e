"""The address of the client behind a request: the peer's, or — only when the peer is a
configured trusted proxy — the one its X-Forwarded-For names.

X-Forwarded-For is a list each proxy appends to, so anything left of the proxies we trust
may be forged by the client: walk it from the right, past trusted proxies, and take the first
address that is not one of them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddresses:
    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self._trusted: tuple[Network, ...] = tuple(
            ipaddress.ip_network(p, strict=False) for p in trusted_proxies)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    def of(self, peer: str | None, forwarded_for: str | None) -> str:
        address = peer or ""
        if not self._trusted or not forwarded_for or not self._is_trusted(address):
            return address
        for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return address  # a malformed list is not believed past this point
            address = hop
            if not self._is_trusted(hop):
                break
        return address
