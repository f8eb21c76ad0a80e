"""The world outside the cluster, for pods: backends at public names over HTTPS (port 443).

Each external name gets a loopback address of the kubelet's network; a TLS terminator listens there on
:443 with a certificate for the name from a test CA (trustme) and forwards the bytes to the real (plain)
server the test started, e.g. a recording OTLP backend. Pods resolve the name through their hosts file
and trust the CA through their CA bundle (the sandbox appends it), as nodes would trust a corporate CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import Awaitable, Callable

import trustme


class External:
    def __init__(self, base: ipaddress.IPv4Address, targets: dict[str, tuple[str, int]]) -> None:
        """Names get addresses counting down from the top of `base`'s /16 (pods count up from its bottom)."""
        self._ca = trustme.CA()
        self.ca_pem = self._ca.cert_pem.bytes().decode()
        self._targets = targets
        self._base = base
        self._ips: dict[str, str] = {}
        self._servers: list[asyncio.AbstractServer] = []

    def hosts_lines(self) -> list[str]:
        return [f"{ip} {name}" for name, ip in self._ips.items()]

    async def start(self) -> None:
        for name, (host, port) in sorted(self._targets.items()):
            await self.add(name, host, port)

    async def add(self, name: str, host: str, port: int) -> None:
        """Serve `https://<name>` (port 443) to pods, forwarding to the plain server at host:port."""
        top = int(ipaddress.ip_network(f"{self._base}/16", strict=False).broadcast_address) - 1
        ip = str(ipaddress.IPv4Address(top - len(self._ips)))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert(name).configure_cert(context)
        server = await asyncio.start_server(self._forwarder(host, port), ip, 443, ssl=context)
        self._servers.append(server)
        self._ips[name] = ip

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()

    @staticmethod
    def _forwarder(
        host: str, port: int
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

        return forward


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
