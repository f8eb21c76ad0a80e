"""The hostile mix: floods sent to the system while the load generator runs, and a probe client measuring how
long well-behaved requests wait meanwhile.

One `spawn`ed process runs, until stopped, rounds of: an item flood over HTTP (~8M empty spans in 16 MiB),
an item flood over gRPC (~8M empty resource entries), then `concurrent_big` valid 16 MiB bodies over HTTP
and as many over gRPC at once. Beside them, a probe sends a 10-span request over HTTP and one over gRPC
every 20 ms and records each answer's latency (success or refusal alike). The runner reports the probe's
p50/p99/max and the answers the floods got; the system's peak RSS is sampled as for every scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from dataclasses import dataclass
from typing import Any

from otlp_agent.otlp import wire

MiB = 1024 * 1024
TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
CTX = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class HostileConfig:
    grpc_port: int
    http_port: int
    flood_items: int = 8_000_000
    big_body: int = 16 * MiB
    concurrent_big: int = 16
    host: str = "127.0.0.1"


def empty_spans(count: int) -> bytes:
    """A valid request of `count` empty spans in one scope of one resource (2 bytes per span)."""
    return wire.length_delimited(1, wire.length_delimited(2, b"\x12\x00" * count))


def empty_resources(count: int) -> bytes:
    """A valid request of `count` empty resource entries."""
    return b"\x0a\x00" * count


def big_body(size: int) -> bytes:
    """A valid request of about `size` bytes: spans carrying 256 KiB attributes."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for index in range(max(1, size // (256 * 1024))):
        span = scope.spans.add(name="big", trace_id=b"\x09" * 16, span_id=(index + 1).to_bytes(8, "big"))
        span.attributes.add(key="blob").value.string_value = "x" * (256 * 1024 - 100)
    return bytes(request.SerializeToString())


def small_body(serial: int) -> bytes:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for index in range(10):
        scope.spans.add(
            name="probe", trace_id=serial.to_bytes(16, "big"), span_id=(index + 1).to_bytes(8, "big")
        )
    return bytes(request.SerializeToString())


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _run(config: HostileConfig, stop: Any, results: Any) -> dict[str, Any]:
    import aiohttp
    import grpc
    import grpc.aio

    latencies: list[float] = []
    answers: dict[str, int] = {}
    url = f"http://{config.host}:{config.http_port}/v1/traces"
    headers = {"Content-Type": "application/x-protobuf"}
    options = [("grpc.max_send_message_length", 64 * MiB)]

    def count(label: str) -> None:
        answers[label] = answers.get(label, 0) + 1

    async def http_post(session: aiohttp.ClientSession, body: bytes) -> str:
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return f"http {response.status}"
        except aiohttp.ClientError as error:
            return f"http {type(error).__name__}"

    async def grpc_call(channel: Any, body: bytes) -> str:
        try:
            await channel.unary_unary(TRACES)(body, timeout=60)
        except grpc.aio.AioRpcError as error:
            return f"grpc {error.code().name}"
        return "grpc OK"

    async def probe(session: aiohttp.ClientSession, channel: Any) -> None:
        serial = 0
        while not stop.is_set():
            serial += 1
            started = time.monotonic()
            await http_post(session, small_body(serial))
            latencies.append(time.monotonic() - started)
            started = time.monotonic()
            await grpc_call(channel, small_body(serial))
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.02)

    spans, resources, big = (
        empty_spans(config.flood_items),
        empty_resources(config.flood_items),
        big_body(config.big_body),
    )

    async def floods(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            async with grpc.aio.insecure_channel(f"{config.host}:{config.grpc_port}", options=options) as ch:
                count("flood spans " + await http_post(session, spans))
                count("flood resources " + await grpc_call(ch, resources))
                for label in await asyncio.gather(
                    *(http_post(session, big) for _ in range(config.concurrent_big))
                ):
                    count("big " + label)
                for label in await asyncio.gather(
                    *(grpc_call(ch, big) for _ in range(config.concurrent_big))
                ):
                    count("big " + label)

    timeout = aiohttp.ClientTimeout(total=120)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        grpc.aio.insecure_channel(f"{config.host}:{config.grpc_port}") as channel,
    ):
        tasks = [asyncio.create_task(probe(session, channel)), asyncio.create_task(floods(session))]
        results.send("started")
        await asyncio.to_thread(stop.wait)  # a multiprocessing Event, set by the runner
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return {
        "probe_requests": len(latencies),
        "probe_p50_ms": _ms(percentile(latencies, 0.50)),
        "probe_p99_ms": _ms(percentile(latencies, 0.99)),
        "probe_max_ms": _ms(max(latencies) if latencies else None),
        "flood_answers": answers,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def main(config: HostileConfig, stop: Any, results: Any) -> None:
    results.send(asyncio.run(_run(config, stop, results)))


class Hostile:
    """The hostile process, started at the measurement window and stopped at its end."""

    def __init__(self, config: HostileConfig) -> None:
        self._stop = CTX.Event()
        self._receive, send = CTX.Pipe(duplex=False)
        self._process = CTX.Process(target=main, args=(config, self._stop, send), daemon=True)
        self._process.start()
        # The window starts once the floods are built and sending (spawning and building take seconds).
        if not self._receive.poll(120) or self._receive.recv() != "started":
            self.stop(0)
            raise RuntimeError("the hostile client did not start")

    def stop(self, timeout: float = 60.0) -> dict[str, Any] | None:
        """Stop it and return what it measured (None if it died or did not report in time)."""
        self._stop.set()
        found = self._receive.poll(timeout)
        result = self._receive.recv() if found else None
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(2)
        return result
