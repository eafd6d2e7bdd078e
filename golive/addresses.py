"""The addresses a phone or a remote OBS can reach this machine at, for the start banner.

`gethostbyname(gethostname())` is what most servers print, and on stock Debian and Ubuntu it
answers 127.0.1.1 (the hostname's line in /etc/hosts): useless to any other device. Instead:
the address of the interface the default route leaves by (found by connecting a UDP socket,
which sends nothing), then every other interface that is up, not loopback and not link-local.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping

import psutil

# TEST-NET-1 (RFC 5737): never routed anywhere, so the lookup below sends no packet.
_PROBE = ("192.0.2.1", 9)


def route_address() -> str | None:
    """The IPv4 address this machine sends from by its default route; None without one."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(_PROBE)
        return str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()


def interface_addresses() -> dict[str, list[str]]:
    """IPv4 addresses of the interfaces that are up, by interface name."""
    stats = psutil.net_if_stats()
    found: dict[str, list[str]] = {}
    for name, addresses in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        found[name] = [a.address for a in addresses if a.family == socket.AF_INET]
    return found


def reachable(route: str | None, interfaces: Mapping[str, Iterable[str]]) -> list[str]:
    """What to tell other devices, best first: the default route's address, then the other
    interfaces' (sorted); never loopback or link-local. Empty when there is no network."""
    def usable(address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)

    others = sorted({a for addresses in interfaces.values() for a in addresses if usable(a)},
                    key=ipaddress.ip_address)
    first = [route] if route is not None and usable(route) else []
    return first + [a for a in others if a not in first]


def lan_addresses() -> list[str]:
    return reachable(route_address(), interface_addresses())
