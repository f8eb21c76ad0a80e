"""The counting sink: an OTLP backend that only decompresses and counts, in its own process.

Serves OTLP/HTTP (any POST path, protobuf) and OTLP/gRPC (TraceService/Export, raw bytes) on loopback.
For every request it records the bytes as they arrived on the wire (before decompression: the HTTP server
is told not to decode bodies itself), decompresses, counts spans with the wire-format walker and answers
with an empty success response. Spans are counted here, at the receiving end, so "delivered" means
delivered.

An optional latency holds every answer for `latency_s` (a slow backend; an HTTP/1.1 connection carries one
request at a time, so over HTTP that is a per-connection latency). An optional throttle caps the sink at
`max_spans_per_s`: each request is answered only when a shared
token schedule allows its spans, so however many exports a system keeps in flight, it cannot deliver
faster than that. The overload scenario uses it to make the backend, not the CPU, the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web

from bench import wire
from bench.counters import SinkCounters

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
GRPC_MAX_MESSAGE = 256 * 1024 * 1024


@dataclass(frozen=True)
class SinkConfig:
    max_spans_per_s: float | None = None  # None: unthrottled
    latency_s: float = 0.0  # every answer is held this long
    cpus: tuple[int, ...] | None = None  # CPU placement of the sink process


class Throttle:
    """A token schedule: reserve(n) returns how long to wait so throughput stays under `rate` spans/s."""

    def __init__(self, rate: float | None, clock: Any = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self.next_free = 0.0

    def reserve(self, spans: int) -> float:
        if not self.rate:
            return 0.0
        now = self.clock()
        start = max(now, self.next_free)
        self.next_free = start + spans / self.rate
        return self.next_free - now


class CountingSink:
    """Counts what arrives; one instance per process, used from one event loop.

    Unthrottled, a request is answered first and counted right after, by a background task: a backend's
    decompression time should not become the exporter's round-trip time (that would measure the sink,
    not the system). The backlog is bounded (`backlog` requests), so a sink that falls behind pushes back
    instead of growing. Throttled, a request must be counted before the answer, to know how long to hold it.
    """

    def __init__(
        self, counters: SinkCounters, throttle: Throttle, backlog: int = 64, latency: float = 0.0
    ) -> None:
        self.counters = counters
        self.throttle = throttle
        self.latency = latency
        self.pending: asyncio.Queue[tuple[bytes, str, int]] = asyncio.Queue(backlog)
        self.worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.worker = asyncio.get_running_loop().create_task(self._drain())

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker

    async def _drain(self) -> None:
        while True:
            self.count(*(await self.pending.get()))
            self.pending.task_done()  # lets a caller `await pending.join()` until all is counted

    def decode(self, body: bytes, encoding: str) -> tuple[int, int] | None:
        """(spans, decoded bytes) of one request; None (and counted as bad) when it cannot be decoded."""
        try:
            decoded = wire.decompress(body, encoding)
            return wire.count_spans(decoded), len(decoded)
        except Exception:  # WireError, zlib.error, ZstdError: any undecodable body is the client's fault
            self.counters.add("bad_requests")
            return None

    def record(self, spans: int, decoded_bytes: int, wire_bytes: int) -> None:
        self.counters.add("requests")
        self.counters.add("spans", spans)
        self.counters.add("wire_bytes", wire_bytes)
        self.counters.add("decoded_bytes", decoded_bytes)

    def count(self, body: bytes, encoding: str, wire_bytes: int) -> None:
        decoded = self.decode(body, encoding)
        if decoded is not None:
            self.record(*decoded, wire_bytes)

    async def accept(self, body: bytes, encoding: str, wire_bytes: int) -> bool:
        """Take one request; False when it is known to be undecodable (answered as a client error)."""
        if not self.throttle.rate:
            await self.pending.put((body, encoding, wire_bytes))
            return True
        decoded = self.decode(body, encoding)
        if decoded is None:
            return False
        delay = self.throttle.reserve(decoded[0])
        if delay > 0:
            await asyncio.sleep(delay)
        # Counted when released, so a window never includes spans still held back by the throttle.
        self.record(*decoded, wire_bytes)
        return True

    async def http_handler(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()  # still compressed: the server runs with auto_decompress=False
        ok = await self.accept(body, request.headers.get("Content-Encoding", ""), len(body))
        if self.latency:
            await asyncio.sleep(self.latency)
        status = 200 if ok else 400
        return web.Response(status=status, body=b"", content_type="application/x-protobuf")

    async def grpc_export(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        # grpcio has already undone any grpc-encoding: the wire size is the message size (+5-byte frame).
        if not await self.accept(request, "", len(request) + 5):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "undecodable request")
        if self.latency:
            await asyncio.sleep(self.latency)
        return b""


async def start_http(sink: CountingSink, host: str = "127.0.0.1", port: int = 0) -> tuple[Any, int]:
    """Start the HTTP side; return (runner, port)."""
    app = web.Application(client_max_size=GRPC_MAX_MESSAGE)
    app.router.add_route("POST", "/{tail:.*}", sink.http_handler)
    runner = web.AppRunner(app, access_log=None, auto_decompress=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=256)
    await site.start()
    return runner, runner.addresses[0][1]


async def start_grpc(sink: CountingSink, host: str = "127.0.0.1", port: int = 0) -> tuple[Any, int]:
    """Start the gRPC side; return (server, port)."""
    options = [
        ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE),
        ("grpc.max_send_message_length", GRPC_MAX_MESSAGE),
    ]
    server = grpc.aio.server(options=options)
    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(sink.grpc_export)},
    )
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound


async def serve(config: SinkConfig, counters: SinkCounters, ports: Any, stop: Any) -> None:
    """Serve both protocols until `stop` (a multiprocessing Event) is set; report ports on `ports`."""
    sink = CountingSink(counters, Throttle(config.max_spans_per_s), latency=config.latency_s)
    sink.start()
    runner, http_port = await start_http(sink)
    server, grpc_port = await start_grpc(sink)
    ports.send({"http": http_port, "grpc": grpc_port, "pid": os.getpid()})
    try:
        while not stop.is_set():  # noqa: ASYNC110  (a multiprocessing Event cannot be awaited)
            await asyncio.sleep(0.1)
    finally:
        await server.stop(grace=0.5)
        await runner.cleanup()
        await sink.stop()


def main(config: SinkConfig, counters: SinkCounters, ports: Any, stop: Any) -> None:
    """Process entry point (multiprocessing target)."""
    if config.cpus is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, config.cpus)
    asyncio.run(serve(config, counters, ports, stop))
