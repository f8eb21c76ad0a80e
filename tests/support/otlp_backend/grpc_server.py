"""The backend's OTLP/gRPC side: Trace/Metrics/LogsService Export on a grpc.aio server.

Handlers are generic and take raw bytes (no deserializer), and per-message decompression is switched off
in the server, so the backend records exactly the message bytes that were on the wire and decompresses
them itself (gzip or deflate, recognised by their magic bytes because grpc hides `grpc-encoding` from the
handler's metadata). Clients reach the server through a `TcpRelay` so faults can drop a connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from tests.support.otlp_backend import exchange, faults, recorder, tcp_proxy, wire

CONTENT_TYPE = "application/grpc"
_DROP_GRACE = 5.0  # seconds a dropped call may take to notice its connection is gone


class GrpcReceiver:
    """A grpc.aio server for the three OTLP services, plus the relay clients connect through."""

    def __init__(self, store: recorder.Recorder, host: str, max_bytes: int) -> None:
        self._store = store
        self._host = host
        self._max_bytes = max_bytes
        self._server: grpc.aio.Server | None = None
        self._relay: tcp_proxy.TcpRelay | None = None
        self.port = 0  # the relay's port: what clients use
        self.direct_port = 0  # the grpc server itself: faster, but drop_connection cannot work there

    async def start(self, port: int = 0) -> None:
        options = [
            ("grpc.per_message_decompression", 0),
            ("grpc.max_receive_message_length", self._max_bytes),
            ("grpc.so_reuseport", 0),
        ]
        self._server = grpc.aio.server(options=options)
        self._server.add_generic_rpc_handlers([self._handler(signal) for signal in wire.SIGNALS.values()])
        self.direct_port = self._server.add_insecure_port(f"{self._host}:0")
        await self._server.start()
        self._relay = tcp_proxy.TcpRelay(self._host, self.direct_port)
        self.port = await self._relay.start(port)

    async def stop(self) -> None:
        if self._relay is not None:
            await self._relay.stop()
        if self._server is not None:
            await self._server.stop(grace=0.2)

    def _handler(self, signal: wire.Signal) -> grpc.GenericRpcHandler:
        async def export(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            return await self._export(signal, request, context)

        method = grpc.unary_unary_rpc_method_handler(export)  # no (de)serializers: raw bytes both ways
        return grpc.method_handlers_generic_handler(signal.service, {"Export": method})

    async def _export(
        self, signal: wire.Signal, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        incoming = exchange.Incoming(
            signal=signal,
            transport="grpc",
            content_type=CONTENT_TYPE,
            content_encoding=wire.sniff_grpc_compression(request),
            headers=_metadata_dict(context.invocation_metadata()),
            wire=request,
            peer=context.peer(),
        )
        answers = _GrpcAnswers(context, self._relay)
        return await exchange.Exchange(self._store, incoming, self._decoder(incoming), answers).run()

    def _decoder(self, incoming: exchange.Incoming) -> Any:
        def decode(data: bytes) -> bytes:
            if incoming.content_encoding == "identity":
                return data
            try:
                return wire.decompress(data, incoming.content_encoding, self._max_bytes)
            except wire.BadRequest:
                if incoming.content_encoding == "deflate":  # a plain message that merely looks like zlib
                    return data
                raise

        return decode


def _metadata_dict(metadata: Any) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    for key, value in metadata or ():
        name = key.lower()
        previous = headers.get(name)
        headers[name] = value if previous is None or not isinstance(value, str) else f"{previous}, {value}"
    return headers


class _GrpcAnswers:
    """How the gRPC side answers: response bytes, or an aborted call with status details."""

    def __init__(self, context: grpc.aio.ServicerContext[Any, Any], relay: tcp_proxy.TcpRelay | None) -> None:
        self._context = context
        self._relay = relay

    def status(self, fault: faults.Fault | None) -> str:
        return "OK" if fault is None else fault.grpc_status().name

    async def success(self, response: Any) -> bytes:
        return bytes(response.SerializeToString())

    async def error(self, fault: faults.Fault) -> bytes:
        code = fault.grpc_status()
        delay = fault.retry_delay_seconds()
        status = wire.error_status(code.value[0], fault.message, delay)
        trailers: list[tuple[str, bytes]] = [("grpc-status-details-bin", status.SerializeToString())]
        info = wire.retry_info(status)
        if info is not None:
            # The official OpenTelemetry Python exporter reads RetryInfo from this key, not the details.
            trailers.append(("google.rpc.retryinfo-bin", info.SerializeToString()))
        await self._context.abort(code, fault.message, trailing_metadata=tuple(trailers))
        raise AssertionError("unreachable: abort() raises")

    async def invalid(self, problem: wire.BadRequest) -> bytes:
        await self._context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(problem))
        raise AssertionError("unreachable: abort() raises")

    async def drop(self) -> bytes:
        if self._relay is None or not self._relay.drop(self._context.peer()):
            message = "drop_connection works through grpc_endpoint only"
            await self._context.abort(grpc.StatusCode.UNAVAILABLE, message)
        # The call's connection is gone, so grpc cancels this handler; the sleep only bounds a surprise.
        await asyncio.sleep(_DROP_GRACE)
        await self._context.abort(grpc.StatusCode.UNAVAILABLE, "connection drop did not cancel the call")
        raise AssertionError("unreachable: abort() raises")
