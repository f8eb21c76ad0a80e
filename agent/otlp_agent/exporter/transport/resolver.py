"""The addresses a load-balancing exporter sends to: its endpoints' host names, resolved.

A headless Service's name resolves to the IP of each of its ready pods, so resolving the endpoint's host
is how the agent learns the target's pods without a Kubernetes client (the agent has no API access).
Each endpoint (`endpoint`, or every one of `endpoints`) is resolved with the system resolver
(`getaddrinfo`: cluster DNS, /etc/hosts), and every address it gives becomes one target: the endpoint
with its host replaced by that IP (`http://10.1.2.3:4318/v1/traces`, `10.1.2.3:4317`), keeping scheme,
port and path. An IP literal resolves to itself.

A resolution that fails, or finds nothing at all, keeps the previous addresses (a DNS hiccup must not
empty the set); failing with no previous addresses leaves the set empty, and exports fail retryably
until a resolution finds some.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

#: host, port -> the IPs it resolves to (raises OSError when it cannot be resolved).
Lookup = Callable[[str, int], Awaitable[list[str]]]
_DEFAULT_PORTS = {"http": 80, "https": 443}
_GRPC_PORT = 4317


@dataclasses.dataclass(frozen=True)
class Target:
    """An endpoint as written, split into what is resolved and what is kept."""

    scheme: str  # "" for a gRPC host:port
    host: str
    port: int
    path: str

    def at(self, ip: str) -> str:
        """The endpoint with its host replaced by `ip`."""
        host = f"[{ip}]" if ":" in ip else ip
        if not self.scheme:
            return f"{host}:{self.port}"
        return urlunsplit((self.scheme, f"{host}:{self.port}", self.path, "", ""))


def target_of(endpoint: str) -> Target:
    """Split an exporter endpoint (`host:port`, `http(s)://host[:port][/path]`); ValueError if it has no
    host."""
    has_scheme = "://" in endpoint
    parts = urlsplit(endpoint if has_scheme else f"//{endpoint}")
    if not parts.hostname:
        raise ValueError(f"{endpoint!r} names no host")
    scheme = parts.scheme if has_scheme else ""
    port = parts.port or _DEFAULT_PORTS.get(scheme, _GRPC_PORT)
    return Target(scheme, parts.hostname, port, parts.path)


async def system_lookup(host: str, port: int) -> list[str]:
    """The IPs `host` resolves to with the system resolver (IPv4 and IPv6, deduplicated)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


class Resolver:
    """The current addresses of a set of endpoints."""

    def __init__(self, endpoints: list[str], lookup: Lookup = system_lookup, timeout: float = 5.0) -> None:
        self.targets = [target_of(endpoint) for endpoint in endpoints]
        self.addresses: tuple[str, ...] = ()
        self._lookup = lookup
        self._timeout = timeout

    async def resolve(self) -> tuple[bool, str | None]:
        """Resolve every endpoint again: (whether the addresses changed, why it failed or None)."""
        found: list[str] = []
        failures = []
        for target in self.targets:
            try:
                async with asyncio.timeout(self._timeout):  # not wait_for: it can lose a cancel (3.11)
                    ips = await self._lookup(target.host, target.port)
            except (OSError, TimeoutError, UnicodeError) as exc:
                failures.append(f"{target.host}: {exc or type(exc).__name__}")
                continue
            found += [target.at(ip) for ip in ips]
        why = "; ".join(failures) or None
        if (failures and self.addresses) or not found:
            # Keep what was known: a DNS hiccup (or a moment with no ready pod) must not empty the set.
            return False, why or f"{', '.join(t.host for t in self.targets)} resolved to no address"
        addresses = tuple(sorted(set(found)))
        changed = addresses != self.addresses
        self.addresses = addresses
        return changed, None
