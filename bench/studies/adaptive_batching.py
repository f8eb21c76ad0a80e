"""Study `adaptive-batching`: `batch.timeout: auto` against the fixed 200 ms default, at 1% and 100% load.

A real exporter lane (batcher, queue, consumers, retry sender, the HTTP transport with zstd) runs in this
process and exports to the counting sink (its own process, on the client CPU), which answers each request
after `LATENCY_S`, a backend's round trip. Requests are the benchmark's (100 spans of ~11 attributes),
handed to `lane.accept` as a receiver does. 100% load: `PRODUCERS` producers hand requests over as fast as
the lane takes them (the queue blocks when full), so this process's CPU is the limit. 1% load: one request
at a fixed rate, 1% of what the fixed-timeout lane delivered at 100%.

Measured: spans/s, CPU seconds per million spans (this process: producers, batching, compression, sending),
exports per second and mean batch size, and the latency that batching adds for the data — from the moment
the lane accepted a request to the end of the export that carried it (p50 and p99).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.lane import ExporterLane
from otlp_agent.exporter.memory import MemoryLimiter
from otlp_agent.exporter.result import ExportResult
from otlp_agent.exporter.transport import http_transport
from otlp_agent.telemetry.metrics import AgentMetrics

from bench import fleet, payloads, runner, sink, stats

LATENCY_S = 0.005
PRODUCERS = 8
SPANS = 100
TIMEOUTS = ("200ms", "auto")


class TimedTransport:
    """The real transport, timing each request from its acceptance to the end of its export."""

    def __init__(self, inner: http_transport.HttpTransport, accepted: dict[int, float]) -> None:
        self.inner = inner
        self.accepted = accepted
        self.latencies: list[float] = []
        self.exports = 0
        self.spans = 0

    async def export(self, batch: Batch, timeout: float) -> ExportResult:
        keys = [id(chunk) for chunk in batch.chunks]  # the requests, before payload() joins them
        result = await self.inner.export(batch, timeout)
        done = time.monotonic()
        self.latencies += [done - self.accepted.pop(key) for key in keys if key in self.accepted]
        self.exports += 1
        self.spans += batch.items
        return result

    async def close(self) -> None:
        await self.inner.close()


async def drive(
    port: int, timeout: str, rate: float | None, seconds: float, bodies: list[bytes]
) -> dict[str, Any]:
    """One run: `rate` requests/s (open loop), or None for as fast as the lane takes them."""
    exporter = spec.Exporter.model_validate(
        {"name": "sink", "endpoint": f"http://127.0.0.1:{port}", "protocol": "http/protobuf"}
        | {"compression": "zstd", "queue": {"whenFull": "block", "maxBytes": "8Mi"}}
    )
    accepted: dict[int, float] = {}
    transport = TimedTransport(http_transport.HttpTransport(exporter), accepted)
    batching = spec.BatchSettings.model_validate({"timeout": timeout})
    lane = ExporterLane(exporter, batching, MemoryLimiter(1 << 34, 0), AgentMetrics(), transport)
    await lane.start()
    sent = 0

    async def hand_over(index: int) -> None:
        body = bytes(bytearray(bodies[index % len(bodies)]))  # a new object: known by its id() until exported
        accepted[id(body)] = time.monotonic()
        await lane.accept(spec.Signal.traces, body, SPANS)

    async def producer(first: int) -> None:
        nonlocal sent
        index = first
        while time.monotonic() < deadline:
            await hand_over(index)
            index += PRODUCERS
            sent += 1

    async def paced() -> None:
        nonlocal sent
        began = time.monotonic()
        while time.monotonic() < deadline:
            await hand_over(sent)
            sent += 1
            await asyncio.sleep(max(0.0, began + sent / (rate or 1) - time.monotonic()))

    cpu, started = time.process_time(), time.monotonic()
    deadline = started + seconds
    try:
        await (asyncio.gather(*(producer(i) for i in range(PRODUCERS))) if rate is None else paced())
        await lane.flush()
        await lane.drain(None)
    finally:
        await lane.stop()
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    latencies = sorted(transport.latencies)
    return {
        "timeout": timeout,
        "load": "100%" if rate is None else "1%",
        "requests_per_s": sent / elapsed,
        "spans_per_s": transport.spans / elapsed,
        "cpu_s_per_million_spans": cpu / transport.spans * 1e6 if transport.spans else None,
        "exports_per_s": transport.exports / elapsed,
        "mean_batch_spans": transport.spans / transport.exports if transport.exports else None,
        "latency_p50_ms": statistics.median(latencies) * 1000,
        "latency_p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
    }


def run(quick: bool) -> dict[str, Any]:
    full_s, low_s, rounds = (3.0, 5.0, 1) if quick else (8.0, 15.0, 3)
    bodies = payloads.build_bodies(16, SPANS)
    config = sink.SinkConfig(
        latency_s=LATENCY_S, cpus=runner.CLIENT_CPUS if runner.placement()["pinned"] else None
    )
    handle = fleet.Sink.start(config)
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    try:
        for _ in range(rounds):
            full = {t: asyncio.run(drive(handle.http_port, t, None, full_s, bodies)) for t in TIMEOUTS}
            rate = 0.01 * full["200ms"]["requests_per_s"]
            low = {t: asyncio.run(drive(handle.http_port, t, rate, low_s, bodies)) for t in TIMEOUTS}
            for result in (*full.values(), *low.values()):
                runs.setdefault((result["load"], result["timeout"]), []).append(result)
    finally:
        handle.stop()
    rows = [stats.median_run(r, "latency_p50_ms") for r in runs.values()]
    return {
        "rows": rows,
        "notes": [
            f"Backend round trip {LATENCY_S * 1000:g} ms; {PRODUCERS} producers at 100%; 2 consumers; "
            f"{full_s:g} s at 100% and {low_s:g} s at 1% per run, {rounds} round(s), median by p50.",
            "Latency: from the lane accepting a request to the end of the export carrying it.",
        ],
    }


def markdown(result: dict[str, Any]) -> list[str]:
    from bench import report  # here, not at the top: the study's own process needs no matplotlib

    fmt = report.fmt
    lines = [
        "| load | batch.timeout | latency p50 / p99 ms | spans/s | CPU-s / M spans | exports/s "
        "| spans / export |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        latency = f"{fmt(row['latency_p50_ms'], 1)} / {fmt(row['latency_p99_ms'], 1)}"
        lines.append(
            f"| {row['load']} | {row['timeout']} | {latency} | {fmt(row['spans_per_s'])} "
            f"| {fmt(row['cpu_s_per_million_spans'], 2)} | {fmt(row['exports_per_s'], 1)} "
            f"| {fmt(row['mean_batch_spans'])} |"
        )
    return [*lines, ""]
