"""OTLP/gRPC export with grpc.aio: raw request bytes out, status and partial success back.

Compression none/gzip/deflate (grpcio cannot send zstd), or `auto`: the exporter's `codec_choice.Chooser`
measures what grpcio's compression would make of a sample of the batch (in a worker thread) and picks per
call; an UNIMPLEMENTED answer about compression drops that codec and the batch goes again with the next
best. TLS when the endpoint is https:// or TLS is configured, plaintext for http:// or `tls.insecure`; a
bare host:port uses TLS unless `tls.insecure`, as the OTLP exporter specification says.

Channels come from a `pool.Pool`: without `connections`, one channel; with it, `count` channels, each its
own HTTP/2 connection (a local subchannel pool, so grpcio does not share one connection between them), at
most `maxInFlight` calls each, closed after `idleTimeout` unused.

TLS trust and client certificates come from `tls.ClientTls` (Secrets or caFile); when their files change the
transport opens new channels for the next exports and lets the old ones finish their calls. Headers from
Secrets are sent as metadata on every call and redacted from every failure message.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.result import ExportResult
from otlp_agent.exporter.transport import codec_choice, pool
from otlp_agent.otlp import errors
from otlp_agent.otlp.signals import SIGNALS
from otlp_agent.security import auth, tls
from otlp_agent.telemetry import build
from otlp_agent.telemetry.metrics import AgentMetrics

_COMPRESSION = {
    "none": grpc.Compression.NoCompression,
    "gzip": grpc.Compression.Gzip,
    "deflate": grpc.Compression.Deflate,
}
_MAX_MESSAGE = 128 * 1024 * 1024
_SIZE = re.compile(r"larger than|too large|too big|exceeds|size limit|message length|max(imum)? size", re.I)


def target_and_security(endpoint: str, tls: spec.ClientTLS) -> tuple[str, bool]:
    """(host:port, use TLS) for a gRPC endpoint as users write it."""
    if endpoint.startswith("https://"):
        return endpoint.removeprefix("https://").rstrip("/"), not tls.insecure
    if endpoint.startswith("http://"):
        return endpoint.removeprefix("http://").rstrip("/"), False
    return endpoint.rstrip("/"), not tls.insecure


@dataclasses.dataclass
class _Channel:
    channel: grpc.aio.Channel
    methods: dict[Signal, Any]


class GrpcTransport:
    """A pool of channels per exporter endpoint; one unary call per batch."""

    def __init__(self, exporter: spec.Exporter, metrics: AgentMetrics | None = None) -> None:
        assert exporter.endpoint is not None
        self.name = exporter.name
        self._target, secure = target_and_security(exporter.endpoint, exporter.tls)
        what = f"exporter {exporter.name}"
        self._tls = tls.ClientTls(exporter.tls, what) if secure else None
        self._tls_version = self._tls.refresh() if self._tls is not None else None
        self._secret_headers = auth.SecretHeaders(exporter.headers_from, what)
        self._fixed = codec_choice.Codec(exporter.compression.value)
        self._chooser: codec_choice.Chooser | None = None
        if exporter.compression == spec.Compression.auto:
            settings = exporter.compression_auto or spec.CompressionAuto()
            self._chooser = codec_choice.Chooser(settings, exporter.protocol, exporter.name, metrics)
        self._metadata = tuple((key.lower(), value) for key, value in exporter.headers.items())
        self._close_grace = exporter.timeout
        pooled = exporter.connections
        self._local_subchannels = pooled is not None
        self._pool: pool.Pool[_Channel] = (
            pool.Pool(1, None, None, self._open_channel, self._close_channel)
            if pooled is None
            else pool.Pool(
                pooled.count,
                pooled.max_in_flight,
                pooled.idle_timeout,
                self._open_channel,
                self._close_channel,
                exporter.name,
                metrics,
            )
        )

    def _open_channel(self) -> _Channel:
        options = [
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.primary_user_agent", build.USER_AGENT),  # grpcio appends its own: "grpc-python/..."
        ]
        if self._local_subchannels:  # one HTTP/2 connection per channel, not one shared by all
            options.append(("grpc.use_local_subchannel_pool", 1))
        if self._tls is not None:
            channel = grpc.aio.secure_channel(self._target, self._tls.grpc_credentials(), options=options)
        else:
            channel = grpc.aio.insecure_channel(self._target, options=options)
        methods = {
            signal: channel.unary_unary(f"/{info.grpc_service}/Export") for signal, info in SIGNALS.items()
        }
        return _Channel(channel, methods)

    async def _close_channel(self, client: _Channel) -> None:
        await client.channel.close(self._close_grace)  # calls in flight get this long to finish

    def _reopen_if_rotated(self) -> None:
        """New channels when the TLS files changed; the old ones finish their calls first."""
        if self._tls is None:
            return
        version = self._tls.refresh()
        if version != self._tls_version:
            self._tls_version = version
            self._pool.retire_all()

    @property
    def codec(self) -> codec_choice.Codec:
        return self._chooser.current if self._chooser is not None else self._fixed

    async def export(self, batch: Batch, timeout: float) -> ExportResult:
        payload = batch.payload()
        self._reopen_if_rotated()
        metadata = self._metadata + tuple(
            (key.lower(), value) for key, value in self._secret_headers.current().items()
        )
        if self._chooser is not None:
            await self._chooser.evaluate(payload)
        while True:
            codec = self.codec
            try:
                async with self._pool.lease() as client:
                    response: bytes = await client.methods[batch.signal](
                        payload, timeout=timeout, metadata=metadata, compression=_COMPRESSION[codec.name]
                    )
            except grpc.aio.AioRpcError as exc:
                if _refuses_encoding(exc) and self._chooser is not None and self._chooser.refuse(codec):
                    continue  # the backend cannot read this encoding: the next best, at once
                return _failure(exc, self._secret_headers.redact)
            rejected, message = _partial_success(batch, response)
            return ExportResult.success(
                wire_bytes=len(payload), rejected=rejected, message=self._secret_headers.redact(message)
            )

    async def close(self) -> None:
        await self._pool.close()


def _refuses_encoding(exc: grpc.aio.AioRpcError) -> bool:
    """grpc-core answers a message in an encoding it does not accept with UNIMPLEMENTED naming it."""
    details = (exc.details() or "").lower()
    return exc.code() == grpc.StatusCode.UNIMPLEMENTED and ("compress" in details or "encoding" in details)


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
    # RESOURCE_EXHAUSTED with RetryInfo is throttling; without it and about size, the message is too large
    # (grpc-core says "Received message larger than max (N vs. M)"; OTLP receivers say similar).
    too_large = (
        code == grpc.StatusCode.RESOURCE_EXHAUSTED
        and delay is None
        and bool(_SIZE.search(exc.details() or ""))
    )
    return ExportResult.failure(message, retryable=retryable, retry_after=delay, too_large=too_large)


def _retry_info_delay(metadata: Any) -> float | None:
    """RetryInfo.retry_delay in seconds, from either trailer a backend may send it in: a google.rpc.Status
    in `grpc-status-details-bin` (the OTLP specification, the collector) or a bare RetryInfo in
    `google.rpc.retryinfo-bin` (what the Python SDK reads). A trailer that does not parse is ignored."""
    found: dict[str, float] = {}
    for key, value in metadata or ():
        if key in ("grpc-status-details-bin", "google.rpc.retryinfo-bin") and isinstance(value, bytes):
            delay = _parse_retry_info(key, value)
            if delay is not None:
                found[key] = delay
    return found.get("grpc-status-details-bin", found.get("google.rpc.retryinfo-bin"))


def _parse_retry_info(key: str, value: bytes) -> float | None:
    try:
        if key == "google.rpc.retryinfo-bin":
            infos = [error_details_pb2.RetryInfo.FromString(value)]
        else:
            details = status_pb2.Status.FromString(value).details
            infos = [_unpack(d) for d in details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    except DecodeError:
        return None
    if not infos:
        return None
    delay = infos[0].retry_delay
    return float(delay.seconds + delay.nanos / 1e9)


def _unpack(detail: Any) -> error_details_pb2.RetryInfo:
    info = error_details_pb2.RetryInfo()
    detail.Unpack(info)
    return info
