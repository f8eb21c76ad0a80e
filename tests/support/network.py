"""Loopback network helpers for tests: every port a test uses is bound, never guessed.

A port probed free and bound later can be taken in between (by another test, another engineer's run, or
the second of two probes that returned the same number). So servers bind port 0 and report the port they
got (`bound_port`), a "nothing listens here" endpoint is a socket that holds its port for the test's life
without listening (`RefusingPort`), and a third-party process that cannot report its ports is asked the
kernel (`listening_ports`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

import psutil
from aiohttp import web

LOOPBACK = "127.0.0.1"


class RefusingPort:
    """A loopback TCP port held by a bound socket that never listens: a connection attempt is refused at
    once (RST), as with a backend that is down, and no other server can take the port meanwhile."""

    def __init__(self, host: str = LOOPBACK) -> None:
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._socket.bind((host, 0))
        self.host = host
        self.port: int = self._socket.getsockname()[1]

    @property
    def http_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> RefusingPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bound_port(server: web.AppRunner | asyncio.Server) -> int:
    """The port a started aiohttp runner or asyncio server is bound to (its first socket)."""
    if isinstance(server, web.AppRunner):
        return int(server.addresses[0][1])
    return int(server.sockets[0].getsockname()[1])


async def serve(runner: web.AppRunner, ssl_context: ssl.SSLContext | None = None) -> int:
    """Set up `runner`, serve it on a loopback port the kernel picks (port 0) and return that port."""
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, 0, ssl_context=ssl_context).start()
    return bound_port(runner)


def listening_ports(pid: int) -> dict[str, int]:
    """{local address: port} of every TCP socket process `pid` listens on, read from the kernel."""
    return {
        connection.laddr.ip: connection.laddr.port
        for connection in psutil.Process(pid).net_connections(kind="tcp")
        if connection.status == psutil.CONN_LISTEN
    }


async def accepts_connections(port: int, host: str = LOOPBACK) -> bool:
    """Whether a TCP connection to host:port is accepted right now."""
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
