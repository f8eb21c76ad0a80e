"""OTLP/HTTP receiver (aiohttp): POST /v1/traces, /v1/metrics, /v1/logs with protobuf or JSON bodies.

aiohttp's own body decompression is turned off: the raw body is bounded by `maxBodySize`, then decoded by
`compression.decode`, which stops at the same limit, so a compression bomb costs at most the limit. Memory
for the body is reserved before it is read, and the request is validated within its entry limit, by
`admission` (shared with the gRPC receiver). Answers use the request's content type; failures carry a
google.rpc.Status body; retryable refusals carry Retry-After.

`readTimeout` bounds every wait on a client: the TLS handshake (asyncio's own default is 60 s), headers
(and idle keep-alive) through aiohttp's keep-alive timer, which closes a connection that has not completed
a request in time; the body with a timeout around the read, answered 408 and closed. HTTP/1.1 serves one
request at a time per connection; connections per client are not limited here (use a NetworkPolicy or
the load balancer). With `tls` the site serves HTTPS from a context that switches to the current
certificate on every handshake; with `auth` a request without the bearer token gets 401 before its body is
read. A request with no items (e.g. OTLP/JSON whose only item was rejected) is answered without reaching
the exporters: no empty exports.

A client that disconnects has its handler cancelled (aiohttp's `handler_cancellation`), so a request that
waits (delivery `endToEnd` or `durable`, `whenFull: block`) ends with its client instead of holding its bytes
until the export: the exporters keep what they accepted (their hand-over does not depend on the client, see
`exporter/lane`), and a resend is recognised by its fingerprint. A body cancelled while the worker thread
still holds it (decompressing or validating, running or queued) stays counted until the worker is past it.
Not while an extension shares the application: the WebSocket receiver tells how a connection ended from
what it reads, which a cancellation would cut short (its handlers run on after their client left, as before).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import math
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import http_exceptions, web
from google.rpc import status_pb2

from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import errors, otlp_json
from otlp_agent.otlp.signals import SIGNALS, response_bytes
from otlp_agent.receivers import admission
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
        self.admission = admission.Admission(
            "HTTP receiver", settings.max_body_size, settings.max_items_per_request
        )
        self._deadlines = admission.ReadDeadlines()
        # What else serves on this port (the WebSocket receiver): each adds its routes to the application.
        self.extensions: list[Callable[[web.Application], None]] = []

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
        for extend in self.extensions:
            extend(app)
        # auto_decompress=False: we decode with a bound (see module docstring).
        runner = web.AppRunner(
            app,
            auto_decompress=False,
            access_log=None,
            logger=_SERVER_LOG,
            handle_signals=False,
            handler_cancellation=not self.extensions,  # see the module docstring
            shutdown_timeout=self.shutdown_timeout,  # requests in progress get this long at shutdown
            keepalive_timeout=self.settings.read_timeout,  # also closes a connection stuck in its headers
            # After an early answer (401, 408, 413) the rest of the body is read and dropped for at most this
            # long, so the client sees the answer rather than a reset, and a slow client cannot hold on.
            lingering_time=min(self.settings.read_timeout, _MAX_LINGER),
        )
        await runner.setup()
        site = _Site(runner, self.host, self.listen_port, reuse_address=True, ssl_context=ssl_context)
        site.handshake_timeout = self.settings.read_timeout
        await site.start()
        self._runner = runner
        self.port = site.port

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
            received = await self._receive(signal, request, content_type)
        except errors.ReceiveError as exc:
            self._refused(signal, 0, exc.reason)
            return _error_response(exc, answer_type)
        if received.items == 0:  # nothing to export (no empty exports)
            return self._success(signal, answer_type, received, _NOTHING)
        try:
            answer = await self.consumer.consume(signal, received.payload, received.items, tenant)
        except errors.ReceiveError as exc:
            self._refused(signal, received.items, exc.reason)
            return _error_response(exc, answer_type)
        return self._success(signal, answer_type, received, answer)

    async def _receive(self, signal: Signal, request: web.Request, content_type: str) -> admission.Received:
        """Read, decompress and validate the body within a memory reservation, given back on return."""
        if content_type not in (_PROTOBUF, _JSON):
            raise errors.unsupported_media_type(
                f"unsupported Content-Type {content_type!r}: use {_PROTOBUF} or {_JSON}"
            )
        limit = self.settings.max_body_size
        declared = request.content_length
        if declared is not None and declared > limit:
            raise errors.too_large(f"body of {declared} bytes exceeds the limit of {limit} bytes")
        limiter = self.consumer.limiter
        # (The joined copy of the body's chunks is made synchronously, one request at a time: fixed overhead.)
        size = limit if declared is None else declared
        lease = self.admission.reserve_now(limiter, size) or await self.admission.reserve(limiter, size)
        release = lease.release
        try:
            raw = await self._deadlines.within(
                _read_body(request, limit), self.settings.read_timeout, "request body"
            )
            lease.settle(len(raw))
            encoding = request.headers.get("Content-Encoding", "")
            body = await self.admission.decode(limiter, lease, raw, encoding)
            if content_type == _JSON:
                return await self.admission.from_json(limiter, lease, signal, body)
            return admission.Received(body, await self.admission.validate(signal, body))
        except asyncio.CancelledError:  # the client left: the worker thread may still hold the body
            release = functools.partial(self.admission.release_after_worker, lease)
            raise
        finally:
            release()  # handed over: the exporter lanes count the bytes from here

    def _success(
        self, signal: Signal, answer_type: str, received: admission.Received, answer: Answer
    ) -> web.Response:
        rejected = received.rejected + answer.rejected
        message = received.message or answer.message
        labels = (signal.value, _TRANSPORT)
        self.metrics.received_items.labels(*labels).inc(received.items - answer.rejected)
        self.metrics.received_bytes.labels(*labels).inc(len(received.payload))
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


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body, at most `limit` bytes. Not `request.read()`: aiohttp keeps the body it reads cached on the
    request, which a keep-alive connection keeps referencing after the answer (measured: 48 idle
    connections held ~200 MB of bodies the agent was done with)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise errors.too_large(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@dataclasses.dataclass(frozen=True)
class _Nothing:
    """The pipeline's answer for a request it was not given (no items)."""

    rejected: int = 0
    message: str = ""


_NOTHING = _Nothing()


class _Site(web.TCPSite):
    """A TCPSite whose TLS handshakes are bounded (asyncio waits 60 s by default; aiohttp has no knob)."""

    handshake_timeout = 60.0

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            server,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            ssl_handshake_timeout=self.handshake_timeout if self._ssl_context else None,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port


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
