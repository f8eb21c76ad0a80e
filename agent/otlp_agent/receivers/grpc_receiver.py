"""OTLP/gRPC receiver (grpc.aio): TraceService, MetricsService and LogsService Export.

Requests arrive as raw bytes (no deserializer), are validated and counted with one upb parse, and go to the
consumer unchanged. grpc itself decompresses gzip/deflate and enforces the message size limit after
decompression (RESOURCE_EXHAUSTED). Refusals carry RetryInfo so OTLP clients back off.

With `tls` the port serves TLS (mTLS with a client CA) from credentials grpc fetches again on every
handshake when the Secret changed; with `auth` every call must carry `authorization: Bearer <token>`
metadata or gets UNAUTHENTICATED before its payload is looked at.
"""

from __future__ import annotations

import math
from typing import Any

import grpc
import grpc.aio
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import errors, wire
from otlp_agent.otlp.signals import SIGNALS, response_bytes
from otlp_agent.receivers.consumer import Consumer
from otlp_agent.security import auth, tls
from otlp_agent.telemetry.metrics import AgentMetrics

_TRANSPORT = "grpc"
#: A connection must finish its TLS / HTTP/2 handshake within this long (grpc's default is 120 s).
HANDSHAKE_TIMEOUT_MS = 10_000


class GrpcReceiver:
    """A grpc.aio server bound to one port: `settings.port`, or `listen_port` (0: one the OS picks);
    `port` is the one it got."""

    def __init__(
        self,
        settings: spec.GrpcReceiver,
        host: str,
        consumer: Consumer,
        metrics: AgentMetrics,
        listen_port: int | None = None,
    ) -> None:
        self.settings = settings
        self.host = host
        self.consumer = consumer
        self.metrics = metrics
        self.listen_port = settings.port if listen_port is None else listen_port
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None
        self._token: auth.BearerTokens | None = None

    async def start(self) -> None:
        """Listen; raises OSError (secrets.SecretError included) when the port or a Secret is unusable."""
        # Secrets first: a grpc.aio server made and then dropped unstarted can crash grpc when collected.
        if self.settings.auth is not None:
            self._token = auth.BearerTokens(self.settings.auth, "gRPC receiver")
        credentials = None
        if self.settings.tls is not None:
            credentials = tls.ServerTls(self.settings.tls, "gRPC receiver").grpc_credentials()
        server = grpc.aio.server(options=self._options())
        for signal, info in SIGNALS.items():
            handler = grpc.unary_unary_rpc_method_handler(self._handler(signal))
            server.add_generic_rpc_handlers(
                [grpc.method_handlers_generic_handler(info.grpc_service, {"Export": handler})]
            )
        host = f"[{self.host}]" if ":" in self.host else self.host
        address = f"{host}:{self.listen_port}"
        try:
            if credentials is not None:
                self.port = server.add_secure_port(address, credentials)
            else:
                self.port = server.add_insecure_port(address)
            await server.start()
        except BaseException:
            await server.stop(None)
            raise
        self._server = server

    def _options(self) -> list[tuple[str, Any]]:
        return [
            ("grpc.max_receive_message_length", self.settings.max_message_size),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
            ("grpc.server_handshake_timeout_ms", HANDSHAKE_TIMEOUT_MS),
        ]

    def _handler(self, signal: Signal) -> Any:
        async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return await self._export(signal, request, context)

        return export

    async def _export(self, signal: Signal, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        tenant = None
        if self._token is not None:
            identity = self._token.authenticate(_metadata_value(context, "authorization"))
            if isinstance(identity, auth.Identity):
                tenant = identity.tenant
            else:
                self._refused(signal, 0, identity.reason)
                await context.abort(identity.grpc_code, identity.message)
        try:
            items = wire.validate_and_count(signal, request)
        except wire.MalformedPayload as exc:
            self._refused(signal, 0, "malformed")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            answer = await self.consumer.consume(signal, request, items, tenant)
        except errors.ReceiveError as exc:
            self._refused(signal, items, exc.reason)
            await context.abort(exc.grpc_code, exc.message, trailing_metadata=_retry_trailer(exc))
        labels = (signal.value, _TRANSPORT)
        self.metrics.received_items.labels(*labels).inc(items - answer.rejected)
        self.metrics.received_bytes.labels(*labels).inc(len(request))
        if answer.rejected:
            self._refused(signal, answer.rejected, "partial")
        return response_bytes(signal, answer.rejected, answer.message)

    def _refused(self, signal: Signal, items: int, reason: str) -> None:
        self.metrics.refused_requests.labels(signal.value, _TRANSPORT, reason).inc()
        self.metrics.refused_items.labels(signal.value, _TRANSPORT, reason).inc(items)

    async def stop(self, grace: float) -> None:
        """Stop taking new calls; calls in progress get `grace` seconds to finish."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None


def _metadata_value(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else None
    return None


def _retry_trailer(exc: errors.ReceiveError) -> tuple[tuple[str, bytes], ...]:
    """google.rpc.Status with RetryInfo in grpc-status-details-bin, as OTLP clients expect on throttling."""
    if exc.retry_after is None:
        return ()
    seconds = math.floor(exc.retry_after)
    delay = duration_pb2.Duration(seconds=seconds, nanos=int((exc.retry_after - seconds) * 1e9))
    status = status_pb2.Status(code=exc.grpc_code.value[0], message=exc.message)
    status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return (("grpc-status-details-bin", status.SerializeToString()),)
