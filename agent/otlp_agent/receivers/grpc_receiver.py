"""OTLP/gRPC receiver (grpc.aio): TraceService, MetricsService and LogsService Export.

Requests arrive as raw bytes (no deserializer), are validated and counted by `admission` (one upb parse for
an ordinary request), and go to the consumer unchanged. grpc itself decompresses gzip/deflate and enforces
the message size limit after decompression (RESOURCE_EXHAUSTED). Retryable refusals carry RetryInfo in both
trailers clients read (see `_retry_trailer`), so OTLP clients back off as told.

The methods are served as client-streaming handlers (on the wire a unary call is a stream of one message),
so the handler runs *before* grpc reads the message: bearer-token auth and the memory reservation
(`maxMessageSize`) come first, and a refused call costs no more than the HTTP/2
flow-control window its stream already filled (64 KiB: window probing is off, see `_options`).
A call cancelled (by its client, or its deadline) while the worker thread validates its message, or
while that job waits in the worker's queue, keeps its message counted until the worker is past it.
`readTimeout` bounds the TLS / HTTP/2 handshake and the read of the message; `maxConcurrentStreams` the
calls per connection, `maxConnectionIdle` an idle connection's life. grpc offers no limit on connections
per client.

With `tls` the port serves TLS (mTLS with a client CA) from credentials grpc fetches again on every
handshake when the Secret changed; with `auth` every call must carry `authorization: Bearer <token>`
metadata or gets UNAUTHENTICATED before its message is read.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import errors
from otlp_agent.otlp.signals import SIGNALS, response_bytes
from otlp_agent.receivers import admission
from otlp_agent.receivers.consumer import Consumer
from otlp_agent.security import auth, tls
from otlp_agent.telemetry.metrics import AgentMetrics

_TRANSPORT = "grpc"


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
        self.admission = admission.Admission(
            "gRPC receiver", settings.max_message_size, settings.max_items_per_request
        )
        self._deadlines = admission.ReadDeadlines()

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
            handler = grpc.stream_unary_rpc_method_handler(self._handler(signal))
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
            ("grpc.server_handshake_timeout_ms", int(self.settings.read_timeout * 1000)),
            ("grpc.max_concurrent_streams", self.settings.max_concurrent_streams),
            ("grpc.max_connection_idle_ms", int(self.settings.max_connection_idle * 1000)),
            # No bandwidth-delay probing: it grows every stream's flow-control window to megabytes, which grpc
            # fills before the handler has reserved memory for the message (measured: 48 waiting 4 MiB calls
            # cost ~110 MiB more with it). Without it a waiting stream holds at most its initial 64 KiB.
            ("grpc.http2.bdp_probe", 0),
        ]

    def _handler(self, signal: Signal) -> Any:
        async def export(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
            return await self._export(signal, context)

        return export

    async def _export(self, signal: Signal, context: grpc.aio.ServicerContext) -> bytes:
        """Answer one call. A refusal is raised here, where the request is not in scope: raised where it
        is, its traceback would keep the request's bytes alive until the garbage collector ran (measured:
        ~300 MB under 48 concurrent 16 MiB calls)."""
        outcome = await self._answer(signal, context)
        if isinstance(outcome, errors.ReceiveError):
            await context.abort(outcome.grpc_code, outcome.message, trailing_metadata=_retry_trailer(outcome))
        assert isinstance(outcome, bytes)
        return outcome

    async def _answer(self, signal: Signal, context: grpc.aio.ServicerContext) -> bytes | errors.ReceiveError:
        tenant = None
        if self._token is not None:
            identity = self._token.authenticate(_metadata_value(context, "authorization"))
            if not isinstance(identity, auth.Identity):
                self._refused(signal, 0, identity.reason)
                return identity
            tenant = identity.tenant
        try:
            request, items = await self._receive(signal, context)
        except errors.ReceiveError as exc:
            self._refused(signal, 0, exc.reason)
            return errors.detached(exc)
        if items == 0:  # nothing to export (no empty exports)
            self.metrics.received_bytes.labels(signal.value, _TRANSPORT).inc(len(request))
            return response_bytes(signal, 0, "")
        try:
            answer = await self.consumer.consume(signal, request, items, tenant)
        except errors.ReceiveError as exc:
            self._refused(signal, items, exc.reason)
            return errors.detached(exc)
        labels = (signal.value, _TRANSPORT)
        self.metrics.received_items.labels(*labels).inc(items - answer.rejected)
        self.metrics.received_bytes.labels(*labels).inc(len(request))
        if answer.rejected:
            self._refused(signal, answer.rejected, "partial")
        return response_bytes(signal, answer.rejected, answer.message)

    async def _receive(self, signal: Signal, context: grpc.aio.ServicerContext) -> tuple[bytes, int]:
        """Read and validate the call's one message within a memory reservation, given back on return."""
        # Its size is unknown until grpc has read it: reserve the worst case, the size limit. (The Python
        # copy of grpc's buffer, and the decompressed copy of a compressed message, are made one at a time
        # and freed at once: they are part of the fixed overhead, see docs/agent.md#memory.)
        limiter, size = self.consumer.limiter, self.settings.max_message_size
        lease = self.admission.reserve_now(limiter, size) or await self.admission.reserve(limiter, size)
        release = lease.release
        try:
            request = await self._deadlines.within(
                context.read(), self.settings.read_timeout, "request message"
            )
            if not isinstance(request, bytes):  # EOF: grpc refused the message as too large (or none came)
                raise errors.too_large(
                    f"request message larger than maxMessageSize ({self.settings.max_message_size} bytes)"
                )
            lease.settle(len(request))
            return request, await self.admission.validate(signal, request)
        except asyncio.CancelledError:  # the client cancelled, or its deadline passed: the worker may hold it
            release = functools.partial(self.admission.release_after_worker, lease)
            raise
        finally:
            release()  # handed over: the exporter lanes count the bytes from here

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
    """RetryInfo for a retryable refusal, twice: inside a google.rpc.Status in `grpc-status-details-bin`
    (what the OTLP specification describes, read by the collector and the Go and .NET exporters) and
    alone in `google.rpc.retryinfo-bin` (what the Python SDK's gRPC exporter reads). Without it a client
    falls back to its own backoff."""
    if exc.retry_after is None:
        return ()
    seconds = math.floor(exc.retry_after)
    delay = duration_pb2.Duration(seconds=seconds, nanos=int((exc.retry_after - seconds) * 1e9))
    info = error_details_pb2.RetryInfo(retry_delay=delay)
    status = status_pb2.Status(code=exc.grpc_code.value[0], message=exc.message)
    status.details.add().Pack(info)
    return (
        ("grpc-status-details-bin", status.SerializeToString()),
        ("google.rpc.retryinfo-bin", info.SerializeToString()),
    )
