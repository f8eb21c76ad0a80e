"""Study `json-ingest`: OTLP/JSON request bodies to validated protobuf bytes, per core.

Bodies: the benchmark's requests (100 spans of ~11 attributes, a resource of 14) in OTLP/JSON. Measured on
the same bodies, alternating, as CPU time of this (pinned) process:
- the agent: `otlp_json.parse_request` then `wire.validate_and_count`, what the HTTP receiver does;
- `google.protobuf.json_format.Parse` then `SerializeToString`, the reference converter, on the proto3 JSON
  of the same requests (base64 ids: it cannot read OTLP's hex ids), to reach the same result;
- for scale, the upb parse of the same requests as protobuf (what a protobuf body costs the receiver).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import otlp_json, wire

from bench import payloads, stats

TARGET_SPANS_PER_S = 50_000
SPANS = 100
DISTINCT = 16


def _agent(body: bytes) -> None:
    wire.validate_and_count(Signal.traces, otlp_json.parse_request(Signal.traces, body).payload)


def _json_format(body: bytes) -> None:
    json_format.Parse(body, trace_service_pb2.ExportTraceServiceRequest()).SerializeToString()


def _protobuf(body: bytes) -> None:
    wire.validate_and_count(Signal.traces, body)


def spans_per_cpu_second(convert: Callable[[bytes], None], bodies: list[bytes], seconds: float) -> float:
    """Spans converted per CPU-second, over at least `seconds` of CPU."""
    began = time.process_time()
    spans = 0
    while time.process_time() - began < seconds:
        for body in bodies:
            convert(body)
        spans += SPANS * len(bodies)
    return spans / (time.process_time() - began)


def run(quick: bool) -> dict[str, Any]:
    requests = [payloads.build_request(seed, SPANS) for seed in range(DISTINCT)]
    inputs = {
        "agent (orjson → wire bytes → upb validate)": (_agent, [otlp_json.to_json(r) for r in requests]),
        "google.protobuf.json_format": (
            _json_format,
            [json_format.MessageToJson(r, indent=None).encode() for r in requests],
        ),
        "protobuf body, upb parse (for scale)": (_protobuf, [r.SerializeToString() for r in requests]),
    }
    rounds, seconds = (3, 0.5) if quick else (7, 2.0)
    samples: dict[str, list[float]] = {name: [] for name in inputs}
    for _ in range(rounds):  # alternating, so drift on a shared machine hits every converter alike
        for name, (convert, bodies) in inputs.items():
            samples[name].append(spans_per_cpu_second(convert, bodies, seconds))
    rows = [
        {
            "converter": name,
            "spans_per_cpu_s": stats.spread(values),
            "body_bytes_per_span": sum(map(len, inputs[name][1])) / (SPANS * DISTINCT),
        }
        for name, values in samples.items()
    ]
    agent = rows[0]["spans_per_cpu_s"]["median"]
    reference = rows[1]["spans_per_cpu_s"]["median"]
    return {
        "rows": rows,
        "speedup_over_json_format": agent / reference if reference else None,
        "target": stats.verdict(
            agent >= TARGET_SPANS_PER_S, agent, f"OTLP/JSON ingest ≥ {TARGET_SPANS_PER_S:,} spans/s per core"
        ),
        "notes": [
            f"{DISTINCT} distinct requests of {SPANS} spans; {rounds} rounds of ≥ {seconds:g} CPU-s per "
            "converter, alternating; CPU time of one process pinned to the system CPU.",
        ],
    }


def markdown(result: dict[str, Any]) -> list[str]:
    from bench import report  # here, not at the top: the study's own process needs no matplotlib

    fmt, fmt_spread = report.fmt, report.fmt_spread
    lines = ["| converter | spans per CPU-second (median, min–max) | body bytes per span |", "|---|---|---|"]
    for row in result["rows"]:
        rate, size = fmt_spread(row["spans_per_cpu_s"]), fmt(row["body_bytes_per_span"], 0)
        lines.append(f"| {row['converter']} | {rate} | {size} |")
    lines += [
        "",
        f"The agent converts {fmt(result['speedup_over_json_format'], 1)}× faster than json_format.",
        "",
    ]
    return lines
