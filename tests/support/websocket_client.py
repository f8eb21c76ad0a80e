"""The reference client of the OTLP WebSocket protocol (docs/websocket.md), on aiohttp's WebSocket client.

One connection; `export` sends a request under a fresh id and waits for the answer with that id, while
other requests may be in flight (answers are matched by id, in whatever order they come). `send` and
`answer` split the two halves for tests that pipeline many requests or never read.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from typing import Any

import aiohttp
import orjson


class OtlpWebSocket:
    """A connected client; use `async with OtlpWebSocket.connect(...) as client`."""

    def __init__(self, session: aiohttp.ClientSession, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.session = session
        self.socket = socket
        self._ids = itertools.count(1)
        self._answers: dict[str | None, asyncio.Future[dict[str, Any]]] = {}
        self.duplicates: list[dict[str, Any]] = []
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(
        cls, url: str, headers: dict[str, str] | None = None, ssl: ssl.SSLContext | None = None
    ) -> OtlpWebSocket:
        """`ssl`: the context for wss:// URLs (trusting the agent's CA)."""
        session = aiohttp.ClientSession()
        try:
            socket = await session.ws_connect(url, headers=headers or {}, autoping=True, ssl=ssl or True)
        except BaseException:
            await session.close()
            raise
        return cls(session, socket)

    async def __aenter__(self) -> OtlpWebSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self.socket.close()
        await self.session.close()

    def next_id(self) -> str:
        return str(next(self._ids))

    async def send(self, signal: str, body: bytes, request_id: str | None = None, json: bool = False) -> str:
        """Send one request (protobuf in a binary message, OTLP/JSON in a text one); returns its id."""
        request_id = request_id or self.next_id()
        self._future(request_id)
        header = f"{signal} {request_id}\n"
        if json:
            await self.socket.send_str(header + body.decode())
        else:
            await self.socket.send_bytes(header.encode() + body)
        return request_id

    async def send_raw(self, data: bytes | str) -> None:
        """Anything at all, for tests of what the agent does with bad messages."""
        if isinstance(data, str):
            await self.socket.send_str(data)
        else:
            await self.socket.send_bytes(data)

    async def answer(self, request_id: str | None, timeout: float = 10.0) -> dict[str, Any]:
        """The answer to `request_id` (None: to a message whose id could not be read)."""
        return await asyncio.wait_for(asyncio.shield(self._future(request_id)), timeout)

    async def export(
        self, signal: str, body: bytes, json: bool = False, timeout: float = 10.0
    ) -> dict[str, Any]:
        return await self.answer(await self.send(signal, body, json=json), timeout)

    def _future(self, request_id: str | None) -> asyncio.Future[dict[str, Any]]:
        if request_id not in self._answers:
            self._answers[request_id] = asyncio.get_running_loop().create_future()
        return self._answers[request_id]

    async def _read(self) -> None:
        async for message in self.socket:
            if message.type == aiohttp.WSMsgType.TEXT:
                parsed = orjson.loads(message.data)
                future = self._future(parsed["id"])
                if future.done():  # a second answer to one id is a protocol error: kept for tests to see
                    self.duplicates.append(parsed)
                else:
                    future.set_result(parsed)

    @property
    def answered(self) -> dict[str | None, dict[str, Any]]:
        return {key: f.result() for key, f in self._answers.items() if f.done()}
