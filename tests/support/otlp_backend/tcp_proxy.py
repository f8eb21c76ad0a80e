"""A loopback TCP relay in front of the gRPC server, so a fault can drop one client's connection.

grpc's Python server has no way to close a connection from a handler. Clients therefore connect to this
relay, which opens one upstream connection per client; the gRPC handler sees the upstream socket as its
peer (`context.peer()`), and `drop(peer)` closes both sockets of that pair, exactly like a backend that
dies mid-request. Flow control is passed through (a slow reader pauses the other side).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class _Half(asyncio.Protocol):
    """One side of a relayed pair; forwards what it reads to its partner."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.partner: _Half | None = None
        self.on_lost: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.partner is not None and self.partner.transport is not None:
            self.partner.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.on_lost is not None:
            self.on_lost()
        if self.partner is not None and self.partner.transport is not None:
            self.partner.transport.close()

    def pause_writing(self) -> None:
        if self.partner is not None and self.partner.transport is not None:
            self.partner.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.partner is not None and self.partner.transport is not None:
            self.partner.transport.resume_reading()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class _ClientSide(_Half):
    """The client-facing half: holds reading until its upstream connection exists."""

    def __init__(self, relay: TcpRelay) -> None:
        super().__init__()
        self._relay = relay

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.pause_reading()
        self._relay.connect_upstream(self)


class TcpRelay:
    """Listens on a free loopback port and relays each connection to `upstream_port`."""

    def __init__(self, host: str, upstream_port: int) -> None:
        self._host = host
        self._upstream_port = upstream_port
        self._server: asyncio.Server | None = None
        self._pairs: dict[int, tuple[_Half, _Half]] = {}  # upstream local port -> (client, upstream)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _ClientSide(self), self._host, port)
        sockname = self._server.sockets[0].getsockname()
        return int(sockname[1])

    def connect_upstream(self, client: _ClientSide) -> None:
        task = asyncio.get_running_loop().create_task(self._link(client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _link(self, client: _ClientSide) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_connection(_Half, self._host, self._upstream_port)
        except OSError:
            client.abort()
            return
        assert upstream.transport is not None and client.transport is not None
        port = upstream.transport.get_extra_info("sockname")[1]
        self._pairs[port] = (client, upstream)
        upstream.on_lost = lambda: self._forget(port, upstream)
        upstream.partner, client.partner = client, upstream
        client.transport.resume_reading()

    def _forget(self, port: int, upstream: _Half) -> None:
        if port in self._pairs and self._pairs[port][1] is upstream:
            del self._pairs[port]

    def drop(self, peer: str) -> bool:
        """Abort the client connection whose upstream side is `peer` ("ipv4:127.0.0.1:PORT")."""
        port = int(peer.rsplit(":", 1)[-1])
        pair = self._pairs.pop(port, None)
        if pair is None:
            return False
        for half in pair:
            half.abort()
        return True

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for pair in self._pairs.values():
            for half in pair:
                half.abort()
        self._pairs.clear()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
