"""Study `compression-auto`: `compression: auto` against every fixed codec, on two payload shapes.

The real HTTP exporter transport (`HttpTransport`, OTLP/HTTP protobuf) sends the same batches, over and
over for a fixed wall time, to the counting sink (its own process, on the client CPU) once per codec: none,
gzip, zstd (fixed, level 1) and auto (its default candidates zstd, gzip, none and default budget of 5 ms per
MiB). Auto re-measures every `EVALUATE_EVERY`, 60 times as often as its default, and each run lasts
several of those periods: the figures show auto in its steady state with its measuring cost included (a run
of a few batches would instead show one measurement against almost no data, which no stream sees).
Measured: CPU seconds of this process per GB of batch data (compression, measurement and sending; worker
threads included) and wire bytes per batch byte.

The best fixed codec is the one the documented objective picks from the fixed runs' own figures (ratio;
CPU beyond the `none` run's, per MiB). The target: auto within 10% of it in CPU and in bytes, per shape.

Shapes: `traces`, the benchmark's requests (100 spans of ~11 attributes) batched 82 at a time (~4 MB, what
8192-span batches are); `binary`, spans that each carry 4 KiB of random bytes (encrypted or already
compressed payloads), which no codec shrinks.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.transport import codec_choice, http_transport

from bench import fleet, payloads, runner, sink, stats

CODECS = ("none", "gzip", "zstd", "auto")
TOLERANCE = 0.10
EVALUATE_EVERY = "1s"
BUDGET = spec.CompressionAuto().cpu_budget
_MIB = 1024 * 1024


def trace_batches(count: int) -> list[tuple[bytes, int]]:
    bodies = payloads.build_bodies(count * 82, 100)
    return [(b"".join(bodies[i * 82 : (i + 1) * 82]), 8200) for i in range(count)]


def binary_batches(count: int) -> list[tuple[bytes, int]]:
    rng = random.Random(7)
    batches = []
    for _ in range(count):
        request = trace_service_pb2.ExportTraceServiceRequest()
        scope = request.resource_spans.add().scope_spans.add()
        for index in range(500):
            span = scope.spans.add(name="upload", trace_id=rng.randbytes(16), span_id=rng.randbytes(8))
            span.attributes.add(key="payload", value=common_pb2.AnyValue(bytes_value=rng.randbytes(4096)))
            span.attributes.add(key="chunk", value=common_pb2.AnyValue(int_value=index))
        batches.append((request.SerializeToString(), 500))
    return batches


async def export_all(
    port: int, codec: str, batches: list[tuple[bytes, int]], seconds: float
) -> dict[str, float]:
    """Send `batches` round and round for `seconds` of wall time (at least once each) with `codec`."""
    exporter = spec.Exporter.model_validate(
        {
            "name": "sink",
            "endpoint": f"http://127.0.0.1:{port}",
            "protocol": "http/protobuf",
            "compression": codec,
        }
        | ({"compressionAuto": {"evaluateEvery": EVALUATE_EVERY}} if codec == "auto" else {})
    )
    transport = http_transport.HttpTransport(exporter)
    wire_bytes = raw = 0
    try:
        began, deadline = time.process_time(), time.monotonic() + seconds
        for payload, items in _round_and_round(batches, deadline):
            result = await transport.export(Batch(spec.Signal.traces, [payload], items, len(payload)), 30.0)
            if not result.ok:
                raise RuntimeError(f"{codec}: {result.message}")
            wire_bytes += result.wire_bytes
            raw += len(payload)
        cpu = time.process_time() - began
        chosen = transport.codec.label
    finally:
        await transport.close()
    return {
        "cpu_s_per_gb": cpu / raw * 1e9,
        "wire_fraction": wire_bytes / raw,
        "cpu_s": cpu,
        "chosen": chosen,
    }


def _round_and_round(batches: list[tuple[bytes, int]], deadline: float) -> Iterator[tuple[bytes, int]]:
    yield from batches
    while time.monotonic() < deadline:
        yield from batches


def best_fixed(rows: dict[str, dict[str, float]]) -> str:
    """The fixed codec the objective picks from the fixed runs' figures."""
    none_cpu = rows["none"]["cpu_s_per_gb"]
    figures = {
        codec_choice.Codec(name): codec_choice.Figures(
            1 / rows[name]["wire_fraction"], max(0.0, rows[name]["cpu_s_per_gb"] - none_cpu) * _MIB / 1e9
        )
        for name in ("none", "gzip", "zstd")
    }
    return codec_choice.choose(figures, BUDGET, None).name


def run(quick: bool) -> dict[str, Any]:
    count, rounds, seconds = (12, 3, 1.5) if quick else (40, 5, 4.0)
    shapes = {"traces": trace_batches(count), "binary": binary_batches(count)}
    handle = fleet.Sink.start(
        sink.SinkConfig(cpus=runner.CLIENT_CPUS if runner.placement()["pinned"] else None)
    )
    results: dict[str, Any] = {}
    try:
        for shape, batches in shapes.items():
            runs: dict[str, list[dict[str, float]]] = {codec: [] for codec in CODECS}
            for _ in range(rounds):  # alternating codecs, so drift hits all alike
                for codec in CODECS:
                    runs[codec].append(asyncio.run(export_all(handle.http_port, codec, batches, seconds)))
            results[shape] = {codec: _median(samples) for codec, samples in runs.items()}
    finally:
        handle.stop()
    return _verdict(results, count, rounds, seconds)


def _median(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {**stats.median_run(samples, "cpu_s_per_gb"), "runs": len(samples)}


def _verdict(results: dict[str, Any], count: int, rounds: int, seconds: float) -> dict[str, Any]:
    checks = {}
    for shape, rows in results.items():
        best = best_fixed(rows)
        auto, fixed = rows["auto"], rows[best]
        cpu_ratio = auto["cpu_s_per_gb"] / fixed["cpu_s_per_gb"]
        bytes_ratio = auto["wire_fraction"] / fixed["wire_fraction"]
        ok = cpu_ratio <= 1 + TOLERANCE and bytes_ratio <= 1 + TOLERANCE
        checks[shape] = {"best_fixed": best, "cpu_ratio": cpu_ratio, "bytes_ratio": bytes_ratio, "met": ok}
    measured = {
        f"{shape} cpu×/bytes× vs {c['best_fixed']}": f"{c['cpu_ratio']:.2f}/{c['bytes_ratio']:.2f}"
        for shape, c in checks.items()
    }
    return {
        "shapes": results,
        "checks": checks,
        "target": {
            "met": all(c["met"] for c in checks.values()),
            "measured": measured,
            "target": "compression auto within 10% of the best fixed codec's CPU and bytes, on both shapes",
        },
        "notes": [
            f"{count} distinct batches sent round and round for {seconds:g} s per run, {rounds} run(s) per "
            f"codec (median by CPU), codecs alternating; auto re-measures every {EVALUATE_EVERY} during the "
            f"run (its default: 60 s); default budget {BUDGET * 1000:g} ms/MiB.",
            "CPU is this process's (the exporter's, worker threads included) over the whole run.",
        ],
    }


def markdown(result: dict[str, Any]) -> list[str]:
    from bench import report  # here, not at the top: the study's own process needs no matplotlib

    lines = []
    for shape, rows in result["shapes"].items():
        check = result["checks"][shape]
        lines += [
            f"Shape `{shape}` — best fixed codec by the objective: **{check['best_fixed']}**; auto chose "
            f"`{rows['auto']['chosen']}`: CPU {check['cpu_ratio']:.2f}×, bytes {check['bytes_ratio']:.2f}× "
            f"the best fixed ({'within' if check['met'] else '**outside**'} 10%).",
            "",
            "| codec | CPU-s per GB of batches | wire bytes per batch byte |",
            "|---|---|---|",
        ]
        for codec, row in rows.items():
            lines.append(
                f"| {codec} | {report.fmt(row['cpu_s_per_gb'], 2)} | {report.fmt(row['wire_fraction'], 3)} |"
            )
        lines.append("")
    return lines
