"""OTLP over WebSocket (`receivers.otlp.websocket`): a path on the OTLP/HTTP receiver's port where a client
keeps one connection open and sends many export requests, each answered by its id (docs/websocket.md).

A message is a header line, `<signal> <id>\\n`, then the request: protobuf in a binary message, OTLP/JSON in
a text message. Each answer is a text message, a JSON object carrying the request's id and what an OTLP/HTTP
response to the same request would say: the status, partial success, whether to retry and after how long.

The HTTP receiver's settings apply: its TLS (same port), its bearer token (the Authorization header, or an
`access_token` query parameter, since browsers cannot set headers on a WebSocket), its CORS allowed origins
as the allow-list for browsers (a request carrying an Origin header not on the list is refused with 403),
and its maxBodySize per request (a larger message closes the connection with 1009, since its id cannot be
read without reading it). Flow control: a connection has at most `maxInFlight` requests being handled; while
they are, the agent reads nothing more from it, so aiohttp stops reading the socket and TCP pushes back on
the client instead of the agent buffering. Answers go out one at a time, and a client that does not read
them holds its own slots. permessage-deflate is not offered (a compressed message could expand past every
bound before it is seen).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable

import aiohttp
import orjson
from aiohttp import web

from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import errors, otlp_json, wire
from otlp_agent.receivers.consumer import Consumer
from otlp_agent.security import auth
from otlp_agent.telemetry.metrics import AgentMetrics

TRANSPORT = "websocket"
HEADER_LIMIT = 128  # bytes: the header line "<signal> <id>\n" ends within them
_ID_BYTES = range(0x21, 0x7F)  # printable ASCII but space
_MAX_ID = 64
_HEARTBEAT = 30.0  # seconds between pings, so a vanished peer is noticed
_CLOSE_TOO_BIG = 1009
_CLOSE_GOING_AWAY = 1001
_CLOSE_POLICY = 1008
_ANSWER_MARGIN = 1.0  # seconds after the grace for the last answers to go out


@dataclasses.dataclass(frozen=True)
class Frame:
    """One request message: its signal, the client's id for it, the request bytes, and their format."""

    signal: Signal
    id: str
    body: bytes
    json: bool


class FrameError(ValueError):
    """A message that is not `<signal> <id>\\n<request>`; `id` when the header got that far."""

    def __init__(self, message: str, id: str | None = None) -> None:
        super().__init__(message)
        self.id = id


def parse_frame(data: bytes, json: bool) -> Frame:
    """Split a message into its header and its request."""
    end = data.find(b"\n", 0, HEADER_LIMIT)
    if end < 0:
        raise FrameError(f"a message starts with '<signal> <id>\\n' within {HEADER_LIMIT} bytes")
    parts = data[:end].split(b" ")
    if len(parts) != 2 or not 0 < len(parts[1]) <= _MAX_ID or any(byte not in _ID_BYTES for byte in parts[1]):
        raise FrameError(f"the header is '<signal> <id>': an id of 1 to {_MAX_ID} printable characters")
    name, request_id = parts[0].decode("ascii", "replace"), parts[1].decode("ascii")
    if name not in Signal.__members__:
        raise FrameError(f"unknown signal {name!r}: use traces, metrics or logs", request_id)
    return Frame(Signal(name), request_id, data[end + 1 :], json)


def answer(request_id: str | None, status: int = 200, **fields: object) -> str:
    """An answer message: the id, the HTTP status the same request would get, and the rest."""
    return orjson.dumps({"id": request_id, "status": status, **fields}).decode()


def refusal(request_id: str | None, exc: errors.ReceiveError) -> str:
    """What an OTLP/HTTP client would hear for this refusal (google.rpc.Status, Retry-After)."""
    fields: dict[str, object] = {
        "retryable": errors.http_retryable(exc.http_status),
        "error": {"code": exc.grpc_code.value[0], "message": exc.message},
    }
    if exc.retry_after is not None:
        fields["retryAfter"] = max(1, math.ceil(exc.retry_after))
    return answer(request_id, exc.http_status, **fields)


class WebSocketEndpoint:
    """The WebSocket path of one HTTP receiver; `consumer()` is the pipeline in use (it changes on reload)."""

    def __init__(
        self,
        settings: spec.WebSocketReceiver,
        http: spec.HttpReceiver,
        consumer: Callable[[], Consumer],
        metrics: AgentMetrics,
        grace: float = 2.0,
    ) -> None:
        """`grace`: at shutdown, how long requests already read get to be answered."""
        self.settings = settings
        self.grace = grace
        self.http = http
        self.consumer = consumer
        self.metrics = metrics
        self._token = auth.BearerTokens(http.auth, "WebSocket receiver") if http.auth is not None else None
        self._connections: set[_Connection] = set()

    def install(self, app: web.Application) -> None:
        """Add the path to the HTTP receiver's application (before it starts)."""
        app.router.add_get(self.settings.path, self.handle)
        app.on_shutdown.append(self._close_all)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        refused = self._refuse_upgrade(request)
        if isinstance(refused, web.Response):
            return refused
        socket = web.WebSocketResponse(
            max_msg_size=self.http.max_body_size + HEADER_LIMIT,
            compress=False,
            heartbeat=_HEARTBEAT,
            receive_timeout=self.settings.idle_timeout,
        )
        await socket.prepare(request)
        connection = _Connection(self, socket, refused.tenant if refused is not None else None)
        self._connections.add(connection)
        self.metrics.websocket_connections.set(len(self._connections))
        try:
            await connection.serve()
        finally:
            self._connections.discard(connection)
            self.metrics.websocket_connections.set(len(self._connections))
        return socket

    def _refuse_upgrade(self, request: web.Request) -> web.Response | auth.Identity | None:
        """Origin, token and connection limit, checked before the upgrade (plain HTTP answers); the
        client's identity (its tenant) when the receiver asks for a token."""
        origin = request.headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin):
            return self._refuse_connection("origin", 403, f"origin {origin!r} is not allowed")
        if self._token is not None:
            token = request.query.get("access_token")
            header = f"Bearer {token}" if token is not None else request.headers.get("Authorization")
            identity = self._token.authenticate(header)
            if isinstance(identity, errors.ReceiveError):
                return self._refuse_connection("unauthenticated", 401, identity.message)
        else:
            identity = None
        if len(self._connections) >= self.settings.max_connections:
            limit = self.settings.max_connections
            return self._refuse_connection("too_many_connections", 503, f"{limit} connections are open")
        return identity

    def _origin_allowed(self, origin: str) -> bool:
        allowed = self.http.cors.allowed_origins if self.http.cors is not None else []
        return "*" in allowed or origin in allowed

    def _refuse_connection(self, reason: str, status: int, message: str) -> web.Response:
        self.metrics.websocket_refused_connections.labels(reason).inc()
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        if status == 503:
            headers["Retry-After"] = "1"
        return web.Response(status=status, text=message + "\n", headers=headers)

    async def _close_all(self, app: web.Application) -> None:
        """At shutdown: requests already read get `grace` to be answered, then every socket closes."""
        connections = list(self._connections)
        in_flight = [task for connection in connections for task in connection.tasks]
        if in_flight:  # past the grace the agent answers waiting requests itself: a second to send those
            await asyncio.wait(in_flight, timeout=self.grace + _ANSWER_MARGIN)
        await asyncio.gather(
            *(c.socket.close(code=_CLOSE_GOING_AWAY, message=b"agent stopping") for c in connections),
            return_exceptions=True,
        )


class _Connection:
    """One client's connection: read while there is room, handle each request, answer by id."""

    def __init__(
        self, endpoint: WebSocketEndpoint, socket: web.WebSocketResponse, tenant: str | None
    ) -> None:
        """`tenant`: the one the client's token names (routes may match it), or None."""
        self.endpoint = endpoint
        self.socket = socket
        self.tenant = tenant
        self.slots = asyncio.Semaphore(endpoint.settings.max_in_flight)
        self.sending = asyncio.Lock()
        self.tasks: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        try:
            while True:
                await self.slots.acquire()  # every slot busy: read nothing more (TCP pushes back)
                try:
                    message = await self.socket.receive()
                except TimeoutError:
                    self._closed("idle")
                    await self.socket.close(code=_CLOSE_POLICY, message=b"idle for too long")
                    return
                if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    too_big = _CLOSE_TOO_BIG in (self.socket.close_code, getattr(message.data, "code", None))
                    self._closed("too_large" if too_big else "client")
                    return
                task = asyncio.get_running_loop().create_task(self._handle(message))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        finally:
            if self.tasks:  # requests already read are answered if the socket is still open
                await asyncio.gather(*self.tasks, return_exceptions=True)

    def _closed(self, reason: str) -> None:
        self.endpoint.metrics.websocket_closed.labels(reason).inc()
        if reason == "too_large":
            self.endpoint.metrics.refused_requests.labels("unknown", TRANSPORT, "too_large").inc()

    async def _handle(self, message: aiohttp.WSMessage) -> None:
        try:
            json = message.type == aiohttp.WSMsgType.TEXT
            data = message.data.encode() if json else message.data
            await self._send(await self._serve(data, json))
        finally:
            self.slots.release()

    async def _serve(self, data: bytes, json: bool) -> str:
        """The answer to one message."""
        metrics = self.endpoint.metrics
        try:
            frame = parse_frame(data, json)
        except FrameError as exc:
            metrics.refused_requests.labels("unknown", TRANSPORT, "malformed").inc()
            return refusal(exc.id, errors.bad_request(str(exc)))
        signal = frame.signal
        try:
            payload, items, rejected, message = self._decode(frame)
        except errors.ReceiveError as exc:
            self._refused(signal, 0, exc.reason)
            return refusal(frame.id, exc)
        if not items:  # nothing to export (e.g. OTLP/JSON whose only span was rejected): no empty exports
            return self._success(frame, payload, 0, rejected, message, 0, "")
        try:
            accepted = await self.endpoint.consumer().consume(signal, payload, items, self.tenant)
        except errors.ReceiveError as exc:
            self._refused(signal, items, exc.reason)
            return refusal(frame.id, exc)
        return self._success(frame, payload, items, rejected, message, accepted.rejected, accepted.message)

    def _success(
        self, frame: Frame, payload: bytes, items: int, rejected: int, message: str, dropped: int, why: str
    ) -> str:
        """Counted, and answered with partial success when items were rejected (converting, or after)."""
        metrics = self.endpoint.metrics
        labels = (frame.signal.value, TRANSPORT)
        metrics.received_items.labels(*labels).inc(items - dropped)
        metrics.received_bytes.labels(*labels).inc(len(payload))
        rejected += dropped
        if not rejected:
            return answer(frame.id)
        metrics.refused_items.labels(frame.signal.value, TRANSPORT, "partial").inc(rejected)
        partial = orjson.loads(otlp_json.response_json(frame.signal, rejected, message or why))
        return answer(frame.id, **partial)

    def _decode(self, frame: Frame) -> tuple[bytes, int, int, str]:
        """Validated protobuf, its items, and items rejected while converting OTLP/JSON (with why)."""
        limit = self.endpoint.http.max_body_size
        if len(frame.body) > limit:
            raise errors.too_large(f"request of {len(frame.body)} bytes exceeds the limit of {limit} bytes")
        rejected, message = 0, ""
        payload = frame.body
        if frame.json:
            try:
                converted = otlp_json.parse_request(frame.signal, frame.body)
            except otlp_json.JsonError as exc:
                raise errors.bad_request(f"invalid OTLP/JSON: {exc}") from None
            payload, rejected, message = converted.payload, converted.rejected, converted.error
        try:
            return payload, wire.validate_and_count(frame.signal, payload), rejected, message
        except wire.MalformedPayload as exc:
            raise errors.bad_request(str(exc)) from None

    async def _send(self, text: str) -> None:
        async with self.sending:  # one answer at a time; a client that does not read them waits here
            if not self.socket.closed:
                await self.socket.send_str(text)

    def _refused(self, signal: Signal, items: int, reason: str) -> None:
        metrics = self.endpoint.metrics
        metrics.refused_requests.labels(signal.value, TRANSPORT, reason).inc()
        metrics.refused_items.labels(signal.value, TRANSPORT, reason).inc(items)
