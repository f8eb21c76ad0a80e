"""OTLP/HTTP receiver (aiohttp): POST /v1/traces, /v1/metrics, /v1/logs with protobuf or JSON bodies.

aiohttp's own body decompression is turned off: the raw body is bounded by `maxBodySize`, then decoded by
`compression.decode`, which stops at the same limit, so a compression bomb costs at most the limit. Answers
use the request's content type; failures carry a google.rpc.Status body; refusals carry Retry-After.

`readTimeout` bounds every wait on a client: headers (and idle keep-alive) through aiohttp's keep-alive
timer, which closes a connection that has not completed a request in time; the body with a timeout around
the read, answered 408 and closed. With `tls` the site serves HTTPS from a context that switches to the
current certificate on every handshake; with `auth` a request without the bearer token gets 401 before
its body is read.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable

import grpc
import orjson
from aiohttp import http_exceptions, web
from google.rpc import status_pb2

from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import compression, errors, otlp_json, wire
from otlp_agent.otlp.signals import SIGNALS, response_bytes
from otlp_agent.receivers.consumer import Answer, Consumer
from otlp_agent.security import auth, tls
from otlp_agent.telemetry.metrics import AgentMetrics

_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"
_TRANSPORT = "http"
_CORS_BASE_HEADERS = ("content-type", "content-encoding")
_MAX_LINGER = 10.0  # seconds; aiohttp's default


class _DropClientFaults(logging.Filter):
    """aiohttp logs every malformed HTTP request at ERROR with a traceback: the client's fault, and a way
    for anyone to flood the agent's logs. Those are dropped (the client got its 400); the agent's own
    errors still get through."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, http_exceptions.HttpProcessingError) and 400 <= (exc.code or 500) < 500)


_SERVER_LOG = logging.getLogger("otlp_agent.http_server")
_SERVER_LOG.addFilter(_DropClientFaults())


class HttpReceiver:
    """An aiohttp server bound to one port: `settings.port`, or `listen_port` (0: one the OS picks);
    `port` is the one it got, read from the listening socket."""

    def __init__(
        self,
        settings: spec.HttpReceiver,
        host: str,
        consumer: Consumer,
        metrics: AgentMetrics,
        shutdown_timeout: float = 5.0,
        listen_port: int | None = None,
    ) -> None:
        self.settings = settings
        self.listen_port = settings.port if listen_port is None else listen_port
        self.shutdown_timeout = shutdown_timeout
        self.host = host
        self.consumer = consumer
        self.metrics = metrics
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._token: auth.BearerTokens | None = None

    async def start(self) -> None:
        """Listen; raises OSError (secrets.SecretError included) when the port or a Secret is unusable."""
        if self.settings.auth is not None:
            self._token = auth.BearerTokens(self.settings.auth, "HTTP receiver")
        ssl_context = None
        if self.settings.tls is not None:
            ssl_context = tls.ServerTls(self.settings.tls, "HTTP receiver").ssl_context()
        app = web.Application(client_max_size=self.settings.max_body_size)
        for signal, info in SIGNALS.items():
            app.router.add_post(info.http_path, self._handler(signal))
            if self.settings.cors is not None:
                app.router.add_route("OPTIONS", info.http_path, self._preflight)
        # auto_decompress=False: we decode with a bound (see module docstring).
        runner = web.AppRunner(
            app,
            auto_decompress=False,
            access_log=None,
            logger=_SERVER_LOG,
            handle_signals=False,
            shutdown_timeout=self.shutdown_timeout,  # requests in progress get this long at shutdown
            keepalive_timeout=self.settings.read_timeout,  # also closes a connection stuck in its headers
            # After an early answer (401, 408, 413) the rest of the body is read and dropped for at most this
            # long, so the client sees the answer rather than a reset, and a slow client cannot hold on.
            lingering_time=min(self.settings.read_timeout, _MAX_LINGER),
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.listen_port, reuse_address=True, ssl_context=ssl_context)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    def _handler(self, signal: Signal) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def export(request: web.Request) -> web.StreamResponse:
            response = await self._export(signal, request)
            self._add_cors(request, response)
            return response

        return export

    async def _export(self, signal: Signal, request: web.Request) -> web.Response:
        content_type = request.content_type
        answer_type = _JSON if content_type == _JSON else _PROTOBUF
        tenant = None
        if self._token is not None:
            identity = self._token.authenticate(request.headers.get("Authorization"))
            if isinstance(identity, errors.ReceiveError):
                self._refused(signal, 0, identity.reason)
                response = _error_response(identity, answer_type)
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
            tenant = identity.tenant
        try:
            payload, items, rejected, message = await self._decode(signal, request, content_type)
        except errors.ReceiveError as exc:
            self._refused(signal, 0, exc.reason)
            return _error_response(exc, answer_type)
        try:
            answer = await self.consumer.consume(signal, payload, items, tenant)
        except errors.ReceiveError as exc:
            self._refused(signal, items, exc.reason)
            return _error_response(exc, answer_type)
        return self._success(signal, answer_type, len(payload), items, rejected, message, answer)

    async def _decode(
        self, signal: Signal, request: web.Request, content_type: str
    ) -> tuple[bytes, int, int, str]:
        if content_type not in (_PROTOBUF, _JSON):
            raise errors.unsupported_media_type(
                f"unsupported Content-Type {content_type!r}: use {_PROTOBUF} or {_JSON}"
            )
        limit = self.settings.max_body_size
        try:
            async with asyncio.timeout(self.settings.read_timeout):
                raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise errors.too_large(f"body exceeds the limit of {limit} bytes") from None
        except TimeoutError:
            raise _slow_body(self.settings.read_timeout) from None
        try:
            body = compression.decode(raw, request.headers.get("Content-Encoding", ""), limit)
        except compression.TooLarge as exc:
            raise errors.too_large(str(exc)) from None
        except compression.BadEncoding as exc:
            unknown = "unsupported Content-Encoding" in str(exc)
            raise (errors.unsupported_media_type if unknown else errors.bad_request)(str(exc)) from None
        if content_type == _JSON:
            return _from_json(signal, body)
        try:
            return body, wire.validate_and_count(signal, body), 0, ""
        except wire.MalformedPayload as exc:
            raise errors.bad_request(str(exc)) from None

    def _success(
        self,
        signal: Signal,
        answer_type: str,
        size: int,
        items: int,
        rejected: int,
        message: str,
        answer: Answer,
    ) -> web.Response:
        rejected += answer.rejected
        message = message or answer.message
        labels = (signal.value, _TRANSPORT)
        self.metrics.received_items.labels(*labels).inc(items - answer.rejected)
        self.metrics.received_bytes.labels(*labels).inc(size)
        if rejected:
            self.metrics.refused_items.labels(signal.value, _TRANSPORT, "partial").inc(rejected)
        if answer_type == _JSON:
            body = otlp_json.response_json(signal, rejected, message)
        else:
            body = response_bytes(signal, rejected, message)
        return web.Response(body=body, content_type=answer_type)

    def _refused(self, signal: Signal, items: int, reason: str) -> None:
        self.metrics.refused_requests.labels(signal.value, _TRANSPORT, reason).inc()
        self.metrics.refused_items.labels(signal.value, _TRANSPORT, reason).inc(items)

    def _allowed_origin(self, request: web.Request) -> str | None:
        cors = self.settings.cors
        origin = request.headers.get("Origin")
        if cors is None or origin is None:
            return None
        if "*" in cors.allowed_origins:
            return "*"
        return origin if origin in cors.allowed_origins else None

    def _add_cors(self, request: web.Request, response: web.StreamResponse) -> None:
        origin = self._allowed_origin(request)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"

    async def _preflight(self, request: web.Request) -> web.Response:
        cors = self.settings.cors
        response = web.Response(status=204)
        if cors is not None and self._allowed_origin(request) is not None:
            self._add_cors(request, response)
            response.headers["Access-Control-Allow-Methods"] = "POST"
            headers = (*_CORS_BASE_HEADERS, *cors.allowed_headers)
            response.headers["Access-Control-Allow-Headers"] = ", ".join(headers)
            response.headers["Access-Control-Max-Age"] = str(int(cors.max_age))
        return response

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _from_json(signal: Signal, body: bytes) -> tuple[bytes, int, int, str]:
    try:
        converted = otlp_json.parse_request(signal, body)
    except otlp_json.JsonError as exc:
        raise errors.bad_request(f"invalid OTLP/JSON: {exc}") from None
    payload = bytes(converted.message.SerializeToString())
    try:
        # Built from JSON, the message skipped upb's parse limits (nesting depth): parse it as every
        # protobuf consumer will, or one such request would make its whole batch unexportable.
        items = wire.validate_and_count(signal, payload)
    except wire.MalformedPayload as exc:
        raise errors.bad_request(f"OTLP/JSON request not representable as protobuf: {exc}") from None
    return payload, items, converted.rejected, converted.error


def _slow_body(timeout: float) -> errors.ReceiveError:
    return errors.ReceiveError(
        f"request body not received within {timeout:g}s", 408, grpc.StatusCode.DEADLINE_EXCEEDED, "timeout"
    )


def _error_response(exc: errors.ReceiveError, answer_type: str) -> web.Response:
    status = status_pb2.Status(code=exc.grpc_code.value[0], message=exc.message)
    if answer_type == _JSON:
        body = orjson.dumps({"code": status.code, "message": status.message})
    else:
        body = status.SerializeToString()
    response = web.Response(status=exc.http_status, body=body, content_type=answer_type)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if exc.http_status == 408:
        response.force_close()  # the rest of a slow body is not worth waiting for
    return response
