"""The load generator: several processes, each sending pre-serialized OTLP requests over gRPC or HTTP.

Each worker process owns one gRPC channel (or a few keep-alive HTTP connections) and keeps `concurrency`
requests in flight. Closed loop (default): every slot sends again as soon as its answer arrives, so the
offered load is whatever the system under test absorbs. Open loop (`rate` set): the worker starts requests
on a fixed schedule whatever happens to earlier ones, which is how overload is offered; a tick that finds
every slot busy is counted as `not_sent`, so the achieved offered load is known.

The client keeps its own truth: every answer is classified as accepted, refused-retryable (per the OTLP
spec: gRPC UNAVAILABLE and friends, RESOURCE_EXHAUSTED only with RetryInfo; HTTP 429/502/503/504),
non-retryable, or a transport error, with per-status counts returned at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, replace
from typing import Any

import grpc

from bench import http1
from bench.counters import ClientCounters

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RETRYABLE_GRPC = frozenset(
    {"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"}
)
RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
ACCEPTED, RETRYABLE, NON_RETRYABLE = "accepted", "retryable", "non_retryable"


@dataclass(frozen=True)
class LoadConfig:
    protocol: str  # "grpc" | "http" | "http-json"
    bodies: tuple[bytes, ...]
    spans_per_request: int
    port: int = 0  # 0: the one `main` is given when told to go (the system's, known once it is ready)
    concurrency: int = 8  # requests in flight per worker
    rate: float | None = None  # requests/s per worker (open loop); None = closed loop
    timeout: float = 10.0
    host: str = "127.0.0.1"
    cpus: tuple[int, ...] | None = None


def classify_grpc(code: str, has_retry_info: bool) -> str:
    """OTLP/gRPC: which answers a client retries."""
    if code == "OK":
        return ACCEPTED
    if code in RETRYABLE_GRPC or (code == "RESOURCE_EXHAUSTED" and has_retry_info):
        return RETRYABLE
    return NON_RETRYABLE


def classify_http(status: int) -> str:
    """OTLP/HTTP: which answers a client retries."""
    if 200 <= status < 300:
        return ACCEPTED
    return RETRYABLE if status in RETRYABLE_HTTP else NON_RETRYABLE


class Recorder:
    """Turns outcomes into shared counters and per-status counts."""

    def __init__(self, counters: ClientCounters, spans_per_request: int) -> None:
        self.counters = counters
        self.spans = spans_per_request
        self.codes: dict[str, int] = {}

    def record(self, kind: str, label: str, started: float, hint: bool = False) -> None:
        self.codes[label] = self.codes.get(label, 0) + 1
        self.counters.add("sent")
        self.counters.add("latency_us", int((time.perf_counter() - started) * 1e6))
        if kind == ACCEPTED:
            self.counters.add("accepted")
            self.counters.add("accepted_spans", self.spans)
        elif kind == RETRYABLE:
            self.counters.add("retryable")
            self.counters.add("retryable_spans", self.spans)
            self.counters.add("retry_hint", int(hint))
        else:
            self.counters.add("non_retryable")

    def transport_error(self, error: BaseException) -> None:
        label = f"transport:{type(error).__name__}"
        self.codes[label] = self.codes.get(label, 0) + 1
        self.counters.add("sent")
        self.counters.add("transport_errors")


class GrpcSender:
    def __init__(self, config: LoadConfig, recorder: Recorder) -> None:
        options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        self.channel = grpc.aio.insecure_channel(f"{config.host}:{config.port}", options=options)
        # No serializers: the request is already bytes, the response is not parsed.
        self.call = self.channel.unary_unary(TRACE_EXPORT)
        self.timeout = config.timeout
        self.recorder = recorder

    def new_slot(self) -> Any:
        return None

    async def send(self, slot: Any, body: bytes) -> None:
        started = time.perf_counter()
        try:
            await self.call(body, timeout=self.timeout)
        except grpc.aio.AioRpcError as error:
            code = error.code().name
            details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin", b"")
            hint = b"google.rpc.RetryInfo" in (details if isinstance(details, bytes) else b"")
            self.recorder.record(classify_grpc(code, hint), f"grpc:{code}", started, hint)
            return
        self.recorder.record(ACCEPTED, "grpc:OK", started)

    async def close(self) -> None:
        await self.channel.close(grace=None)


class HttpSender:
    def __init__(self, config: LoadConfig, recorder: Recorder) -> None:
        self.host, self.port = config.host, config.port
        self.timeout = config.timeout
        self.recorder = recorder
        content_type = "application/json" if config.protocol == "http-json" else "application/x-protobuf"
        self.prebuilt = {
            body: http1.build_request(config.host, config.port, body, content_type=content_type)
            for body in config.bodies
        }
        self.connections: list[http1.Connection] = []

    def new_slot(self) -> http1.Connection:
        connection = http1.Connection(self.host, self.port)
        self.connections.append(connection)
        return connection

    async def send(self, slot: http1.Connection, body: bytes) -> None:
        started = time.perf_counter()
        try:
            response = await asyncio.wait_for(slot.request(self.prebuilt[body]), self.timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as error:
            self.recorder.transport_error(error)
            return
        hint = "retry-after" in response.headers
        kind = classify_http(response.status)
        self.recorder.record(kind, f"http:{response.status}", started, hint)

    async def close(self) -> None:
        for connection in self.connections:
            connection.close()


async def closed_loop(sender: Any, config: LoadConfig, worker: int) -> None:
    async def slot_loop(index: int) -> None:
        slot = sender.new_slot()
        n = len(config.bodies)
        i = (worker * config.concurrency + index) % n
        while True:
            await sender.send(slot, config.bodies[i])
            i = (i + 1) % n

    await asyncio.gather(*(slot_loop(k) for k in range(config.concurrency)))


async def open_loop(sender: Any, config: LoadConfig, recorder: Recorder, worker: int) -> None:
    assert config.rate
    free: asyncio.Queue[Any] = asyncio.Queue()
    for _ in range(config.concurrency):
        free.put_nowait(sender.new_slot())
    interval = 1.0 / config.rate
    start = time.monotonic()
    tasks: set[asyncio.Task[None]] = set()

    async def one(slot: Any, body: bytes) -> None:
        try:
            await sender.send(slot, body)
        finally:
            free.put_nowait(slot)

    tick = 0
    while True:
        tick += 1
        await asyncio.sleep(max(0.0, start + tick * interval - time.monotonic()))
        if free.empty():
            recorder.counters.add("not_sent")
            continue
        task = asyncio.create_task(
            one(free.get_nowait(), config.bodies[(worker + tick) % len(config.bodies)])
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def run_worker(config: LoadConfig, counters: ClientCounters, stop: Any, worker: int) -> dict[str, int]:
    recorder = Recorder(counters, config.spans_per_request)
    sender: Any = GrpcSender(config, recorder) if config.protocol == "grpc" else HttpSender(config, recorder)
    if config.rate:
        load = asyncio.create_task(open_loop(sender, config, recorder, worker))
    else:
        load = asyncio.create_task(closed_loop(sender, config, worker))
    try:
        # A multiprocessing Event cannot be awaited; polling it costs nothing at 20 Hz.
        while not stop.is_set() and not load.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    finally:
        load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load
        await sender.close()
    return recorder.codes


def main(
    config: LoadConfig, counters: ClientCounters, stop: Any, results: Any, worker: int, go: Any, port: Any
) -> None:
    """Process entry point (multiprocessing target): wait for `go`, send to `port` (a shared value set
    before `go`) unless the config names one, run until `stop`, report status counts."""
    if config.cpus is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, config.cpus)
    while not go.wait(0.1):  # spawned early, while the system starts; sends nothing until told
        if stop.is_set():
            results.put((worker, {}))
            return
    if not config.port:
        config = replace(config, port=port.value)
    codes = asyncio.run(run_worker(config, counters, stop, worker))
    results.put((worker, codes))
