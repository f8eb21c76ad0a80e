"""OTLP/HTTP export with aiohttp: protobuf or JSON bodies, none/gzip/deflate/zstd compression.

Large bodies are compressed in a worker thread (zlib and zstd release the GIL), with a codec object made per
call so no compressor is shared between threads.

https:// endpoints verify the server with the system CAs, or the CA from caSecret/caFile, and present the
client certificate from certSecret; each request takes the SSL context current at that moment, so rotated
files apply to new connections. Headers from Secrets go on every request and are redacted from every
failure message.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from google.rpc import status_pb2

from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.result import ExportResult
from otlp_agent.otlp import compression, errors, otlp_json, wire
from otlp_agent.otlp.signals import SIGNALS
from otlp_agent.security import auth, tls

_THREAD_COMPRESS_MIN = 64 * 1024
_COMPRESS_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="otlp-compress")
_USER_AGENT = "otlp-agent/0.1"
_MESSAGE_LIMIT = 512


def signal_url(endpoint: str, path: str) -> str:
    """The URL for one signal: /v1/<signal> appended to the base URL, unless it is already there."""
    parts = urlsplit(endpoint)
    base = parts.path.rstrip("/")
    full = base if base.endswith(path) else base + path
    return urlunsplit((parts.scheme, parts.netloc, full, parts.query, ""))


class HttpTransport:
    """One aiohttp session per exporter; one POST per batch."""

    def __init__(self, exporter: spec.Exporter) -> None:
        assert exporter.endpoint is not None
        self._json = exporter.protocol == spec.Protocol.http_json
        self._encoding = exporter.compression.value
        self._level = exporter.compression_level
        self._urls = {
            signal: signal_url(exporter.endpoint, info.http_path) for signal, info in SIGNALS.items()
        }
        self._headers = {
            **exporter.headers,
            "Content-Type": "application/json" if self._json else "application/x-protobuf",
            "User-Agent": _USER_AGENT,
        }
        if self._encoding != "none":
            self._headers["Content-Encoding"] = self._encoding
        what = f"exporter {exporter.name}"
        secure = exporter.endpoint.startswith("https://")
        self._tls = tls.ClientTls(exporter.tls, what) if secure else None
        self._secret_headers = auth.SecretHeaders(exporter.headers_from, what)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # created lazily: a session belongs to the running loop
            connector = aiohttp.TCPConnector(limit=64)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        return self._session

    async def export(self, batch: Batch, timeout: float) -> ExportResult:
        body = await self._encode(batch)
        try:
            async with self._client().post(
                self._urls[batch.signal],
                data=body,
                headers={**self._secret_headers.current(), **self._headers},
                timeout=aiohttp.ClientTimeout(total=timeout),
                ssl=self._tls.ssl_context() if self._tls is not None else True,
            ) as response:
                content = await response.read()
                redact = self._secret_headers.redact
                if 200 <= response.status < 300:
                    rejected, message = self._partial_success(batch, content, response.content_type)
                    return ExportResult.success(
                        wire_bytes=len(body), rejected=rejected, message=redact(message)
                    )
                return ExportResult.failure(
                    redact(f"HTTP {response.status}: {_error_message(content, response.content_type)}"),
                    retryable=errors.http_retryable(response.status),
                    retry_after=errors.parse_retry_after(response.headers.get("Retry-After")),
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            message = self._secret_headers.redact(f"{type(exc).__name__}: {exc or 'connection failed'}")
            return ExportResult.failure(message, retryable=True)

    async def _encode(self, batch: Batch) -> bytes:
        payload = batch.payload()
        if self._json:
            payload = otlp_json.to_json(wire.parse(batch.signal, payload))
        if self._encoding == "none":
            return payload
        if len(payload) < _THREAD_COMPRESS_MIN:
            return compression.encode(payload, self._encoding, self._level)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            _COMPRESS_POOL, compression.encode, payload, self._encoding, self._level
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
        if self._session is not None:
            await self._session.close()


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
