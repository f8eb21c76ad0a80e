"""The backend's OTLP/HTTP side: POST /v1/traces, /v1/metrics, /v1/logs on an aiohttp server.

aiohttp decodes gzip/deflate request bodies by itself; the server runs with `auto_decompress=False` so the
recorded body is the one on the wire, and `wire.decompress` undoes the Content-Encoding (identity, gzip,
deflate or zstd). Answers use the request's content type (protobuf or OTLP/JSON), errors carry a
google.rpc.Status body as the OTLP spec asks. Handler cancellation is on, so a client that gives up
during a `delay` fault is noticed, and a dropped connection ends its handler.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from google.rpc import code_pb2

from tests.support.otlp_backend import exchange, faults, recorder, wire

_DROP_GRACE = 5.0  # seconds a dropped request may take to notice its connection is gone


class HttpReceiver:
    """An aiohttp server with one route per OTLP signal."""

    def __init__(self, store: recorder.Recorder, host: str, max_bytes: int) -> None:
        self._store = store
        self._host = host
        self._max_bytes = max_bytes
        self._runner: web.AppRunner | None = None
        self._in_flight: set[asyncio.Task[Any]] = set()
        self.port = 0

    async def start(self, port: int = 0) -> None:
        app = web.Application(client_max_size=self._max_bytes)
        for signal in wire.SIGNALS.values():
            app.router.add_post(signal.path, self._route(signal))
        self._runner = web.AppRunner(
            app, auto_decompress=False, handler_cancellation=True, shutdown_timeout=0.5, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        # Cancel held requests first: aiohttp's own shutdown would wait out its timeout for them.
        for task in self._in_flight:
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    def _route(self, signal: wire.Signal) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            task = asyncio.current_task()
            assert task is not None
            self._in_flight.add(task)
            try:
                return await self._export(signal, request)
            finally:
                self._in_flight.discard(task)

        return handle

    async def _export(self, signal: wire.Signal, request: web.Request) -> web.StreamResponse:
        body = await request.read()  # raw: the server does not auto-decompress
        incoming = exchange.Incoming(
            signal=signal,
            transport="http",
            content_type=request.content_type,
            content_encoding=_content_encoding(request),
            headers=_headers_dict(request),
            wire=body,
            peer=str(request.transport.get_extra_info("peername") if request.transport else ""),
        )
        answers = _HttpAnswers(request, wire.JSON if request.content_type == wire.JSON else wire.PROTOBUF)
        return await exchange.Exchange(self._store, incoming, self._decoder(incoming), answers).run()

    def _decoder(self, incoming: exchange.Incoming) -> Any:
        def decode(data: bytes) -> bytes:
            if incoming.content_type not in (wire.PROTOBUF, wire.JSON):
                raise wire.BadRequest(f"unsupported Content-Type {incoming.content_type!r}", http_status=415)
            plain = wire.decompress(data, incoming.content_encoding, self._max_bytes)
            if incoming.content_type == wire.JSON:
                return wire.json_to_protobuf(incoming.signal, plain)
            return plain

        return decode


def _content_encoding(request: web.Request) -> str:
    return request.headers.get("Content-Encoding", "").strip().lower() or "identity"


def _headers_dict(request: web.Request) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for key, value in request.headers.items():
        name = key.lower()
        headers[name] = value if name not in headers else f"{headers[name]}, {value}"
    return headers


class _HttpAnswers:
    """How the HTTP side answers, in the request's content type."""

    def __init__(self, request: web.Request, content_type: str) -> None:
        self._request = request
        self._content_type = content_type

    def status(self, fault: faults.Fault | None) -> str:
        return "200" if fault is None else str(fault.http_code())

    async def success(self, response: Any) -> web.StreamResponse:
        return self._respond(200, response)

    async def error(self, fault: faults.Fault) -> web.StreamResponse:
        code = fault.grpc_status().value[0]
        status = wire.error_status(code, fault.message, fault.retry_delay_seconds())
        retry_after = fault.retry_after_header()
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return self._respond(fault.http_code(), status, headers)

    async def invalid(self, problem: wire.BadRequest) -> web.StreamResponse:
        status = wire.error_status(code_pb2.INVALID_ARGUMENT, str(problem), None)
        return self._respond(problem.http_status, status)

    async def drop(self) -> web.StreamResponse:
        transport = self._request.transport
        if transport is not None:
            transport.abort()
        # aiohttp cancels this handler once it sees the connection is lost; the sleep only bounds that.
        await asyncio.sleep(_DROP_GRACE)
        raise web.HTTPServiceUnavailable(reason="connection drop did not cancel the request")

    def _respond(self, status: int, message: Any, headers: dict[str, str] | None = None) -> web.Response:
        body = wire.encode(message, self._content_type)
        return web.Response(status=status, body=body, content_type=self._content_type, headers=headers)
