"""OTLP/gRPC export with grpc.aio: raw request bytes out, status and partial success back.

Compression none/gzip/deflate (grpcio cannot send zstd). TLS when the endpoint is https:// or TLS is
configured, plaintext for http:// or `tls.insecure`; a bare host:port uses TLS unless `tls.insecure`, as the
OTLP exporter specification says.

TLS trust and client certificates come from `tls.ClientTls` (Secrets or caFile); when their files change the
transport opens a new channel for the next export and lets the old one finish its calls. Headers from
Secrets are sent as metadata on every call and redacted from every failure message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio
from google.rpc import error_details_pb2, status_pb2

from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.result import ExportResult
from otlp_agent.otlp import errors
from otlp_agent.otlp.signals import SIGNALS
from otlp_agent.security import auth, tls

_COMPRESSION = {
    spec.Compression.none: grpc.Compression.NoCompression,
    spec.Compression.gzip: grpc.Compression.Gzip,
    spec.Compression.deflate: grpc.Compression.Deflate,
}
_MAX_MESSAGE = 128 * 1024 * 1024


def target_and_security(endpoint: str, tls: spec.ClientTLS) -> tuple[str, bool]:
    """(host:port, use TLS) for a gRPC endpoint as users write it."""
    if endpoint.startswith("https://"):
        return endpoint.removeprefix("https://").rstrip("/"), not tls.insecure
    if endpoint.startswith("http://"):
        return endpoint.removeprefix("http://").rstrip("/"), False
    return endpoint.rstrip("/"), not tls.insecure


class GrpcTransport:
    """One channel per exporter; one unary call per batch."""

    def __init__(self, exporter: spec.Exporter) -> None:
        assert exporter.endpoint is not None
        self._target, secure = target_and_security(exporter.endpoint, exporter.tls)
        what = f"exporter {exporter.name}"
        self._tls = tls.ClientTls(exporter.tls, what) if secure else None
        self._secret_headers = auth.SecretHeaders(exporter.headers_from, what)
        self._compression = _COMPRESSION[exporter.compression]
        self._metadata = tuple((key.lower(), value) for key, value in exporter.headers.items())
        self._retiring: set[asyncio.Task[None]] = set()
        self._open_channel()

    def _open_channel(self) -> None:
        options = [
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ]
        if self._tls is not None:
            self._tls_version = self._tls.refresh()
            credentials = self._tls.grpc_credentials()
            self._channel = grpc.aio.secure_channel(self._target, credentials, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(self._target, options=options)
        self._methods = {
            signal: self._channel.unary_unary(f"/{info.grpc_service}/Export")
            for signal, info in SIGNALS.items()
        }

    def _reopen_if_rotated(self, grace: float) -> None:
        """A new channel when the TLS files changed; the old one gets `grace` seconds for its calls."""
        if self._tls is None or self._tls.refresh() == self._tls_version:
            return
        old = self._channel
        self._open_channel()
        task = asyncio.get_running_loop().create_task(old.close(grace))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def export(self, batch: Batch, timeout: float) -> ExportResult:
        payload = batch.payload()
        self._reopen_if_rotated(timeout)
        metadata = self._metadata + tuple(
            (key.lower(), value) for key, value in self._secret_headers.current().items()
        )
        try:
            response: bytes = await self._methods[batch.signal](
                payload, timeout=timeout, metadata=metadata, compression=self._compression
            )
        except grpc.aio.AioRpcError as exc:
            return _failure(exc, self._secret_headers.redact)
        rejected, message = _partial_success(batch, response)
        return ExportResult.success(
            wire_bytes=len(payload), rejected=rejected, message=self._secret_headers.redact(message)
        )

    async def close(self) -> None:
        await self._channel.close()
        await asyncio.gather(*self._retiring, return_exceptions=True)


def _partial_success(batch: Batch, response: bytes) -> tuple[int, str]:
    info = SIGNALS[batch.signal]
    parsed = info.response_type()
    try:
        parsed.ParseFromString(response)
    except Exception:  # a backend answering garbage still accepted the data
        return 0, ""
    partial = parsed.partial_success
    return int(getattr(partial, info.rejected_field)), str(partial.error_message)


def _failure(exc: grpc.aio.AioRpcError, redact: Callable[[str], str]) -> ExportResult:
    delay = _retry_info_delay(exc.trailing_metadata())
    code = exc.code()
    retryable = errors.grpc_retryable(code, delay is not None)
    message = redact(f"gRPC {code.name}: {exc.details()}")
    return ExportResult.failure(message, retryable=retryable, retry_after=delay)


def _retry_info_delay(metadata: Any) -> float | None:
    """RetryInfo.retry_delay from the grpc-status-details-bin trailer, in seconds."""
    for key, value in metadata or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None
