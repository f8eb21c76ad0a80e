"""OTLP over WebSocket (`receivers.otlp.websocket`): a path on the OTLP/HTTP receiver's port where a client
keeps one connection open and sends many export requests, each answered by its id (docs/websocket.md).

A message is a header line, `<signal> <id>\\n`, then the request: protobuf in a binary message, OTLP/JSON in
a text message. Each answer is a text message, a JSON object carrying the request's id and what an OTLP/HTTP
response to the same request would say: the status, partial success, whether to retry and after how long.

The HTTP receiver's settings apply: its TLS (same port), its bearer token (the Authorization header, or an
`access_token` query parameter, since browsers cannot set headers on a WebSocket; checked at the upgrade,
and again for each message — a constant-time compare against the current Secret, ~4 µs measured — so a
rotated or revoked token stops working on open connections too: that message is answered 401 and the
connection closed with 1008), its CORS allowed origins as the allow-list for browsers (a request carrying
an Origin header not on the list is refused with 403),
its maxBodySize per request (a larger message closes the connection with 1009, since its id cannot be
read without reading it) and its maxItemsPerRequest. Requests go through `admission` as HTTP requests do:
memory is reserved before a message is read (by the connection's `websocket_gate.Gate`, from the frame
headers), OTLP/JSON is converted and large requests are validated off the event loop within that
reservation, and the refusals are the HTTP receiver's (413, 503 + retry hint, ...), answered by id and
counted with the same reasons. Flow control: a connection has at most `maxInFlight` requests being
handled; while it has, the agent takes no message from it, aiohttp stops reading the socket and TCP pushes
back on the client instead of the agent buffering; while a message waits for its reservation the gate
reads nothing more either. Answers go out one at a time, and a client that does not read them holds its
own slots. permessage-deflate is not offered (a compressed message could expand past every bound before it
is seen).

Time: each message must arrive within the HTTP receiver's `readTimeout` (the gate's read deadline), else
the connection is closed with 1008. A connection is idle when it has no message being read or handled; one
idle for `idleTimeout` (since its last answer went out, or since it opened) is closed with 1008. Both are
timed by the agent and not by aiohttp's `receive_timeout`, which every ping and pong restarts: a client
that answers pings is still closed. A closed connection gives its `maxConnections` slot back when its
socket is gone, even while requests it sent wait for their export (their answers are dropped).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.exporter import memory
from otlp_agent.otlp import errors, otlp_json
from otlp_agent.receivers import admission, websocket_gate
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
_CLOSE_WAIT = 15.0  # seconds for the close handshake (aiohttp waits 10 for the client's), then dropped
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
        self.admission = admission.Admission(
            "WebSocket receiver", http.max_body_size, http.max_items_per_request
        )
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
        socket = web.WebSocketResponse(  # (no receive_timeout: idleTimeout is the connection's own timer)
            max_msg_size=self.http.max_body_size + HEADER_LIMIT, compress=False, heartbeat=_HEARTBEAT
        )
        if not socket.can_prepare(request):
            await socket.prepare(request)  # raises the HTTP error aiohttp answers a bad upgrade with
        connection = _Connection(self, socket, refused.tenant if refused is not None else None)
        connection.authorization = _authorization(request)
        transport = request.transport
        assert transport is not None  # (aiohttp runs no handler for a connection already lost)
        connection.gate = self._gate(transport, request, connection)
        connection.gate.install()  # before the handshake answer: every frame passes the gate
        self._connections.add(connection)
        self.metrics.websocket_connections.set(len(self._connections))
        try:
            await socket.prepare(request)
            await connection.serve()
        finally:
            connection.gate.close()
            self.forget(connection)
        return socket

    def forget(self, connection: _Connection) -> None:
        """The connection's socket is closed: its `maxConnections` slot is free (requests it sent may still
        wait for their export)."""
        if connection in self._connections:
            self._connections.discard(connection)
            self.metrics.websocket_connections.set(len(self._connections))

    def _gate(
        self, transport: asyncio.Transport, request: web.Request, connection: _Connection
    ) -> websocket_gate.Gate:
        def reserve_now(size: int) -> memory.Lease | None:
            return self.admission.reserve_now(self.consumer().limiter, size)

        def reserve(size: int) -> Awaitable[memory.Lease]:
            return self.admission.reserve(self.consumer().limiter, size)

        max_message = self.http.max_body_size + HEADER_LIMIT
        return websocket_gate.Gate(
            transport,
            request.protocol,
            max_message,
            reserve_now,
            reserve,
            connection.refused,
            read_timeout=self.http.read_timeout,
            too_slow=connection.too_slow,
            lost=lambda: self.forget(connection),
        )

    def _refuse_upgrade(self, request: web.Request) -> web.Response | auth.Identity | None:
        """Origin, token, connection limit and frames sent too early, checked before the upgrade (plain
        HTTP answers); the client's identity (its tenant) when the receiver asks for a token."""
        origin = request.headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin):
            return self._refuse_connection("origin", 403, f"origin {origin!r} is not allowed")
        if self._token is not None:
            identity = self._token.authenticate(_authorization(request))
            if isinstance(identity, errors.ReceiveError):
                return self._refuse_connection("unauthenticated", 401, identity.message)
        else:
            identity = None
        if len(self._connections) >= self.settings.max_connections:
            limit = self.settings.max_connections
            return self._refuse_connection("too_many_connections", 503, f"{limit} connections are open")
        if getattr(request.protocol, "_message_tail", b""):  # what aiohttp read past the request's headers
            # The gate must see every frame from the first (RFC 6455 4.1: a client waits for the answer).
            message = "frames sent before the handshake's answer"
            return self._refuse_connection("protocol", 400, message)
        return identity

    def _origin_allowed(self, origin: str) -> bool:
        allowed = self.http.cors.allowed_origins if self.http.cors is not None else []
        return "*" in allowed or origin in allowed

    def _refuse_connection(self, reason: str, status: int, message: str) -> web.Response:
        self.metrics.websocket_refused_connections.labels(reason).inc()
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        if status == 503:
            headers["Retry-After"] = "1"
        response = web.Response(status=status, text=message + "\n", headers=headers)
        if status == 400:
            response.force_close()  # what the client sent after its request is not HTTP
        return response

    def authenticate(self, authorization: str | None) -> auth.Identity | errors.ReceiveError | None:
        """Who the token says the client is now (None: the receiver asks for no token)."""
        return self._token.authenticate(authorization) if self._token is not None else None

    async def _close_all(self, app: web.Application) -> None:
        """At shutdown: requests already read get `grace` to be answered, then every socket closes."""
        connections = list(self._connections)
        in_flight = [task for connection in connections for task in connection.tasks]
        if in_flight:  # past the grace the agent answers waiting requests itself: a second to send those
            await asyncio.wait(in_flight, timeout=self.grace + _ANSWER_MARGIN)
        for connection in connections:
            connection.gate.closing()  # messages still coming are dropped: the agent is going away
        await asyncio.gather(
            *(c.socket.close(code=_CLOSE_GOING_AWAY, message=b"agent stopping") for c in connections),
            return_exceptions=True,
        )


def _authorization(request: web.Request) -> str | None:
    """The client's credentials: the `access_token` query parameter (browsers), else its header."""
    token = request.query.get("access_token")
    return f"Bearer {token}" if token is not None else request.headers.get("Authorization")


class _Connection:
    """One client's connection: read while there is room, handle each request, answer by id."""

    gate: websocket_gate.Gate  # set by the endpoint before the handshake
    authorization: str | None = None  # what the client presented at the upgrade, checked on each message

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
        self.revoked = False  # its token is no longer valid: closed once the refusal is answered
        self.shut_for: str | None = None  # why the agent closed the connection (counted when it did)
        self._closer: asyncio.Task[None] | None = None
        self._last_answer = 0.0  # (or when the connection opened)

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_answer = loop.time()
        self._idle_timer = loop.call_later(self.endpoint.settings.idle_timeout, self._check_idle)
        try:
            while True:
                await self.slots.acquire()  # every slot busy: take nothing more (aiohttp stops reading)
                message = await self.socket.receive()
                if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    if self.shut_for is None:
                        code = getattr(message.data, "code", None)
                        too_big = _CLOSE_TOO_BIG in (self.socket.close_code, code)
                        self._closed("too_large" if too_big else "client")
                    return
                self._spawn(self._handle(message.data, self.gate.take()))
                del message  # the request is the task's now: freed when it is done with it
        finally:
            self._idle_timer.cancel()
            self.gate.close()  # messages read but never taken give their reservations back now
            self.endpoint.forget(self)
            if self._closer is not None:
                await self._closer
            if self.tasks:  # requests already read are answered if the socket is still open
                await asyncio.gather(*self.tasks, return_exceptions=True)

    def too_slow(self) -> None:
        """The gate gave up on a message that did not arrive within readTimeout."""
        timeout = self.endpoint.http.read_timeout
        self.endpoint.metrics.refused_requests.labels("unknown", TRANSPORT, "timeout").inc()
        self._shut("too_slow", f"message not received within readTimeout ({timeout:g}s)")

    def _check_idle(self) -> None:
        """Idle: no message being read or handled, and none since the last answer, for idleTimeout. Pings and
        pongs do not count (aiohttp's receive_timeout, which they restart, would never fire for a client
        that answers pings)."""
        loop = asyncio.get_running_loop()
        idle = self.endpoint.settings.idle_timeout
        if self.tasks or self.gate.busy:  # its end sets `_last_answer`: looked at again after that
            self._idle_timer = loop.call_later(idle, self._check_idle)
            return
        left = self._last_answer + idle - loop.time()
        if left > 0:
            self._idle_timer = loop.call_later(left, self._check_idle)
            return
        self._shut("idle", "idle for too long")

    def _shut(self, reason: str, why: str) -> None:
        """Close the connection with 1008 (policy), counted by `reason`; once."""
        if self.shut_for is not None or self.socket.closed:
            return
        self.shut_for = reason
        self._closed(reason)
        self.gate.closing()
        self._closer = asyncio.get_running_loop().create_task(self._close(why.encode()))

    async def _close(self, why: bytes) -> None:
        try:
            await asyncio.wait_for(self.socket.close(code=_CLOSE_POLICY, message=why), _CLOSE_WAIT)
        except TimeoutError:
            self.gate.abort()  # a client that takes nothing, not even the close frame

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._last_answer = task.get_loop().time()

    def _closed(self, reason: str) -> None:
        self.endpoint.metrics.websocket_closed.labels(reason).inc()
        if reason == "too_large":
            self.endpoint.metrics.refused_requests.labels("unknown", TRANSPORT, "too_large").inc()

    async def _handle(self, data: str | bytes, lease: memory.Lease) -> None:
        """Answer one message, read within `lease` (its reservation, given back when the request is handed
        to the pipeline)."""
        try:
            await self._send(await self._serve(data, lease))
            if self.revoked:
                self._shut("unauthenticated", "bearer token no longer valid")
        finally:
            lease.release()
            self.slots.release()

    def refused(self, prefix: bytes, json: bool, exc: errors.ReceiveError) -> None:
        """A message the gate dropped unread (no memory for it): answer it by the id in its first bytes."""
        signal, request_id = "unknown", None
        try:
            frame = parse_frame(prefix, json)
            signal, request_id = frame.signal.value, frame.id
        except FrameError as unreadable:
            request_id = unreadable.id
        metrics = self.endpoint.metrics
        metrics.refused_requests.labels(signal, TRANSPORT, exc.reason).inc()
        self._spawn(self._answer_refused(refusal(request_id, exc)))

    async def _answer_refused(self, text: str) -> None:
        try:
            await self._send(text)
        finally:
            self.gate.answered()

    async def _serve(self, data: str | bytes, lease: memory.Lease) -> str:
        """The answer to one message."""
        json = isinstance(data, str)
        raw = data.encode() if isinstance(data, str) else data  # (text: one copy, made and dropped at once)
        del data
        lease.settle(len(raw))  # a message in fragments reserved the largest allowed
        try:
            frame = parse_frame(raw, json)
        except FrameError as exc:
            self.endpoint.metrics.refused_requests.labels("unknown", TRANSPORT, "malformed").inc()
            return refusal(exc.id, errors.bad_request(str(exc)))
        del raw  # the request's bytes live on in frame.body only
        signal = frame.signal
        identity = self.endpoint.authenticate(self.authorization)
        if isinstance(identity, errors.ReceiveError):  # the Secret changed since the upgrade
            self.revoked = True
            self._refused(signal, 0, identity.reason)
            return refusal(frame.id, identity)
        if identity is not None:
            self.tenant = identity.tenant
        try:
            received = await self._receive(frame, lease)
        except errors.ReceiveError as exc:
            self._refused(signal, 0, exc.reason)
            return refusal(frame.id, exc)
        finally:
            lease.release()  # handed over: the exporter lanes count the bytes from here
        if not received.items:  # nothing to export (e.g. OTLP/JSON whose only span was rejected)
            return self._success(frame, received, 0, "")
        try:
            accepted = await self.endpoint.consumer().consume(
                signal, received.payload, received.items, self.tenant
            )
        except errors.ReceiveError as exc:
            self._refused(signal, received.items, exc.reason)
            return refusal(frame.id, exc)
        return self._success(frame, received, accepted.rejected, accepted.message)

    async def _receive(self, frame: Frame, lease: memory.Lease) -> admission.Received:
        """Validated protobuf and its items (OTLP/JSON converted first), within `lease` and the limits of
        `admission`: the HTTP receiver's size and item limits, its memory accounting, off the event loop
        when large."""
        limit = self.endpoint.http.max_body_size
        if len(frame.body) > limit:
            raise errors.too_large(f"request of {len(frame.body)} bytes exceeds the limit of {limit} bytes")
        check = self.endpoint.admission
        if frame.json:
            return await check.from_json(self.endpoint.consumer().limiter, lease, frame.signal, frame.body)
        return admission.Received(frame.body, await check.validate(frame.signal, frame.body))

    def _success(self, frame: Frame, received: admission.Received, dropped: int, why: str) -> str:
        """Counted, and answered with partial success when items were rejected (converting, or after)."""
        metrics = self.endpoint.metrics
        labels = (frame.signal.value, TRANSPORT)
        metrics.received_items.labels(*labels).inc(received.items - dropped)
        metrics.received_bytes.labels(*labels).inc(len(received.payload))
        rejected = received.rejected + dropped
        if not rejected:
            return answer(frame.id)
        metrics.refused_items.labels(frame.signal.value, TRANSPORT, "partial").inc(rejected)
        partial = orjson.loads(otlp_json.response_json(frame.signal, rejected, received.message or why))
        return answer(frame.id, **partial)

    async def _send(self, text: str) -> None:
        async with self.sending:  # one answer at a time; a client that does not read them waits here
            if not self.socket.closed:
                await self.socket.send_str(text)

    def _refused(self, signal: Signal, items: int, reason: str) -> None:
        metrics = self.endpoint.metrics
        metrics.refused_requests.labels(signal.value, TRANSPORT, reason).inc()
        metrics.refused_items.labels(signal.value, TRANSPORT, reason).inc(items)
