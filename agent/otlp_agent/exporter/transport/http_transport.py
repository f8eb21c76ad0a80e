"""OTLP/HTTP export with aiohttp: protobuf or JSON bodies, none/gzip/deflate/zstd or `auto` compression.

Large bodies are compressed in a worker thread (zlib and zstd release the GIL), with a codec object made per
call so no compressor is shared between threads. With `compression: auto` the codec comes from the
exporter's `codec_choice.Chooser`, measured in that same thread; a 415 answer to a compressed body drops
its codec from the choice and the batch goes again with the next best.

Connections come from a `pool.Pool` of aiohttp sessions: without `connections`, one session that opens a
connection per request in flight and keeps it alive 15 s (aiohttp's default); with it, `count` sessions of
one connection each (HTTP/1.1 carries one request at a time), closed after `idleTimeout` unused.

https:// endpoints verify the server with the system CAs, or the CA from caSecret/caFile, and present the
client certificate from certSecret; each request takes the SSL context current at that moment, so rotated
files apply to new connections. Headers from Secrets go on every request and are redacted from every
failure message.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from google.rpc import status_pb2

from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.result import ExportResult
from otlp_agent.exporter.transport import codec_choice, pool
from otlp_agent.otlp import compression, errors, otlp_json, wire
from otlp_agent.otlp.signals import SIGNALS
from otlp_agent.security import auth, tls
from otlp_agent.telemetry import build
from otlp_agent.telemetry.metrics import AgentMetrics

_THREAD_COMPRESS_MIN = 64 * 1024
_MESSAGE_LIMIT = 512
_UNSUPPORTED_MEDIA_TYPE = 415
_PAYLOAD_TOO_LARGE = 413
_SHARED_SESSION_LIMIT = 64  # connections of the one session used without `connections`
_AIOHTTP_KEEPALIVE = 15.0  # aiohttp's default: an idle connection of that session closes after this long


def signal_url(endpoint: str, path: str) -> str:
    """The URL for one signal: /v1/<signal> appended to the base URL, unless it is already there."""
    parts = urlsplit(endpoint)
    base = parts.path.rstrip("/")
    full = base if base.endswith(path) else base + path
    return urlunsplit((parts.scheme, parts.netloc, full, parts.query, ""))


class HttpTransport:
    """A pool of aiohttp sessions per exporter endpoint; one POST per batch."""

    def __init__(self, exporter: spec.Exporter, metrics: AgentMetrics | None = None) -> None:
        assert exporter.endpoint is not None
        self.name = exporter.name
        self._json = exporter.protocol == spec.Protocol.http_json
        self._chooser: codec_choice.Chooser | None = None
        self._fixed = codec_choice.Codec(exporter.compression.value, exporter.compression_level)
        if exporter.compression == spec.Compression.auto:
            settings = exporter.compression_auto or spec.CompressionAuto()
            self._chooser = codec_choice.Chooser(settings, exporter.protocol, exporter.name, metrics)
        self._urls = {
            signal: signal_url(exporter.endpoint, info.http_path) for signal, info in SIGNALS.items()
        }
        self._headers = {
            **exporter.headers,
            "Content-Type": "application/json" if self._json else "application/x-protobuf",
            "User-Agent": build.USER_AGENT,
        }
        what = f"exporter {exporter.name}"
        secure = exporter.endpoint.startswith("https://")
        self._tls = tls.ClientTls(exporter.tls, what) if secure else None
        self._secret_headers = auth.SecretHeaders(exporter.headers_from, what)
        self._pool = _session_pool(exporter.connections, exporter.name, metrics)

    @property
    def codec(self) -> codec_choice.Codec:
        """What the next batch is compressed with."""
        return self._chooser.current if self._chooser is not None else self._fixed

    async def export(self, batch: Batch, timeout: float) -> ExportResult:
        payload = batch.payload()
        if self._json:
            payload = otlp_json.to_json(wire.parse(batch.signal, payload))
        if self._chooser is not None:
            await self._chooser.evaluate(payload)
        while True:
            codec = self.codec
            body = await self._compress(payload, codec)
            result, status = await self._post(batch, codec, body, timeout)
            if (
                status == _UNSUPPORTED_MEDIA_TYPE
                and self._chooser is not None
                and self._chooser.refuse(codec)
            ):
                continue  # the backend cannot read this encoding: the next best, at once
            return result

    async def _post(
        self, batch: Batch, codec: codec_choice.Codec, body: bytes, timeout: float
    ) -> tuple[ExportResult, int | None]:
        """The result, and the HTTP status when there was one."""
        headers = {**self._secret_headers.current(), **self._headers}
        if codec.name != "none":
            headers["Content-Encoding"] = codec.name
        try:
            async with (
                self._pool.lease() as session,
                session.post(
                    self._urls[batch.signal],
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                    ssl=self._tls.ssl_context() if self._tls is not None else True,
                ) as response,
            ):
                content = await response.read()
                return self._result(batch, len(body), response, content), response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            message = self._secret_headers.redact(f"{type(exc).__name__}: {exc or 'connection failed'}")
            return ExportResult.failure(message, retryable=True), None

    def _result(
        self, batch: Batch, size: int, response: aiohttp.ClientResponse, content: bytes
    ) -> ExportResult:
        redact = self._secret_headers.redact
        if 200 <= response.status < 300:
            rejected, message = self._partial_success(batch, content, response.content_type)
            return ExportResult.success(wire_bytes=size, rejected=rejected, message=redact(message))
        return ExportResult.failure(
            redact(f"HTTP {response.status}: {_error_message(content, response.content_type)}"),
            retryable=errors.http_retryable(response.status),
            retry_after=errors.parse_retry_after(response.headers.get("Retry-After")),
            too_large=response.status == _PAYLOAD_TOO_LARGE,
        )

    async def _compress(self, payload: bytes, codec: codec_choice.Codec) -> bytes:
        if codec.name == "none":
            return payload
        if len(payload) < _THREAD_COMPRESS_MIN:
            return compression.encode(payload, codec.name, codec.level)
        return await asyncio.get_running_loop().run_in_executor(
            codec_choice.WORKERS, compression.encode, payload, codec.name, codec.level
        )

    def _partial_success(self, batch: Batch, content: bytes, content_type: str) -> tuple[int, str]:
        info = SIGNALS[batch.signal]
        if not content:
            return 0, ""
        try:
            if content_type == "application/json":
                return _json_partial_success(content, info.rejected_field)
            parsed = info.response_type.FromString(content)
        except Exception:  # an unreadable success body still means the data was accepted
            return 0, ""
        partial = parsed.partial_success
        return int(getattr(partial, info.rejected_field)), str(partial.error_message)

    async def close(self) -> None:
        await self._pool.close()


def _session_pool(
    connections: spec.Connections | None, exporter: str, metrics: AgentMetrics | None
) -> pool.Pool[aiohttp.ClientSession]:
    if connections is None:
        return pool.Pool(1, None, None, lambda: _session(_SHARED_SESSION_LIMIT, None), _close_session)
    idle = connections.idle_timeout
    return pool.Pool(connections.count, 1, idle, lambda: _session(1, idle), _close_session, exporter, metrics)


def _session(limit: int, keepalive: float | None) -> aiohttp.ClientSession:
    """A session of at most `limit` connections (made inside the running loop, which it belongs to)."""
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=keepalive or _AIOHTTP_KEEPALIVE)
    return aiohttp.ClientSession(connector=connector, auto_decompress=True)


async def _close_session(session: aiohttp.ClientSession) -> None:
    await session.close()


def _json_partial_success(content: bytes, rejected_field: str) -> tuple[int, str]:
    import orjson

    partial = orjson.loads(content).get("partialSuccess") or {}
    camel = "".join(part.capitalize() if i else part for i, part in enumerate(rejected_field.split("_")))
    return int(partial.get(camel, 0) or 0), str(partial.get("errorMessage", ""))


def _error_message(content: bytes, content_type: str) -> str:
    """The backend's error: google.rpc.Status when it sent one, else the start of the body."""
    if content_type == "application/x-protobuf":
        try:
            return str(status_pb2.Status.FromString(content).message)[:_MESSAGE_LIMIT]
        except Exception:
            pass
    return content[:_MESSAGE_LIMIT].decode("utf-8", "replace")
