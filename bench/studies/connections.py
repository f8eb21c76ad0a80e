"""Study `connections`: an exporter's connection pool against a backend with per-connection latency.

The counting sink (its own process, on the client CPU) holds every answer for `LATENCY_S`; an HTTP/1.1
connection carries one request at a time, so each connection delivers at most one batch per `LATENCY_S`.
The real HTTP exporter transport (zstd) sends batches of 1,000 spans (the benchmark's requests, 10 at a
time) from `CONSUMERS` concurrent exports — as `queue.consumers` would — for `seconds`, once without
`connections` (one aiohttp session that opens a connection per export in flight) and once per
`connections.count`. Measured: spans/s the sink counted, CPU seconds per million spans of this process,
export latency (p50/p99, from the call to the answer, waiting for a connection included) and connections
opened.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.transport import http_transport
from otlp_agent.telemetry.metrics import AgentMetrics

from bench import fleet, payloads, runner, sink, stats

LATENCY_S = 0.02
CONSUMERS = 8
COUNTS: tuple[int | None, ...] = (None, 1, 2, 4, 8)
SPANS_PER_BATCH = 1000


async def drive(port: int, count: int | None, batches: list[bytes], seconds: float) -> dict[str, Any]:
    settings: dict[str, Any] = {"name": "sink", "endpoint": f"http://127.0.0.1:{port}"}
    settings |= {"protocol": "http/protobuf", "compression": "zstd"}
    if count is not None:
        settings["connections"] = {"count": count}
    metrics = AgentMetrics()
    transport = http_transport.HttpTransport(spec.Exporter.model_validate(settings), metrics)
    latencies: list[float] = []
    delivered = 0
    deadline = time.monotonic() + seconds

    async def consumer(index: int) -> None:
        nonlocal delivered
        while time.monotonic() < deadline:
            payload = batches[index % len(batches)]
            index += CONSUMERS
            began = time.monotonic()
            result = await transport.export(
                Batch(spec.Signal.traces, [payload], SPANS_PER_BATCH, len(payload)), 30
            )
            if not result.ok:
                raise RuntimeError(result.message)
            latencies.append(time.monotonic() - began)
            delivered += SPANS_PER_BATCH

    cpu = time.process_time()
    started = time.monotonic()
    try:
        await asyncio.gather(*(consumer(index) for index in range(CONSUMERS)))
    finally:
        await transport.close()
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    latencies.sort()
    opened = metrics.value("otlp_agent_exporter_connections_total", exporter="sink", event="opened")
    return {
        "connections": "unset" if count is None else count,
        "spans_per_s": delivered / elapsed,
        "cpu_s_per_million_spans": cpu / delivered * 1e6,
        "latency_p50_ms": statistics.median(latencies) * 1000,
        "latency_p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
        "connections_opened": opened if count is not None else None,
    }


def run(quick: bool) -> dict[str, Any]:
    seconds, rounds = (2.0, 1) if quick else (5.0, 3)
    bodies = payloads.build_bodies(80, 100)
    batches = [b"".join(bodies[i : i + 10]) for i in range(0, 80, 10)]
    config = sink.SinkConfig(
        latency_s=LATENCY_S, cpus=runner.CLIENT_CPUS if runner.placement()["pinned"] else None
    )
    handle = fleet.Sink.start(config)
    samples: dict[Any, list[dict[str, Any]]] = {count: [] for count in COUNTS}
    try:
        for _ in range(rounds):
            for count in COUNTS:
                samples[count].append(asyncio.run(drive(handle.http_port, count, batches, seconds)))
    finally:
        handle.stop()
    rows = [stats.median_run(runs, "spans_per_s") for runs in samples.values()]
    return {
        "rows": rows,
        "notes": [
            f"Backend latency {LATENCY_S * 1000:g} ms per request; {CONSUMERS} exports in flight; batches "
            f"of {SPANS_PER_BATCH} spans, zstd; {seconds:g} s per setting, {rounds} round(s), median by "
            "throughput.",
            "`unset`: no `connections` — one aiohttp session, which opens a connection per export in flight.",
        ],
    }


def markdown(result: dict[str, Any]) -> list[str]:
    from bench import report  # here, not at the top: the study's own process needs no matplotlib

    fmt = report.fmt
    lines = [
        "| connections.count | spans/s | CPU-s / M spans | export latency p50 / p99 ms | opened |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        latency = f"{fmt(row['latency_p50_ms'], 1)} / {fmt(row['latency_p99_ms'], 1)}"
        lines.append(
            f"| {row['connections']} | {fmt(row['spans_per_s'])} | {fmt(row['cpu_s_per_million_spans'], 2)} "
            f"| {latency} | {fmt(row['connections_opened'])} |"
        )
    return [*lines, ""]
