"""The hostile-input scenario the hostile tests share (test_hostile_agent, _websocket, _routing): a real
agent's spec and limits, the pathological requests, the well-behaved clients measured during an attack, and
what is judged afterwards (peak RSS, log lines, delivery exactly once).

`OTLP_HOSTILE_SCALE` scales the floods (1.0 = the sizes of issue 14: ~8M empty spans or resource entries in
15-16 MiB, 16 MiB bodies); the default, 0.25, keeps CI short while a flood still costs an unbounded agent
several times the memory bound.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import pathlib
import threading
import time
from typing import Any

import aiohttp
import grpc
import grpc.aio
import yaml
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from otlp_agent.otlp import wire

from tests.support import agent_process
from tests.support.otlp_backend import OtlpBackend
from tests.support.waiting import eventually

SCALE = float(os.environ.get("OTLP_HOSTILE_SCALE", "0.25"))
MiB = 1024 * 1024
FLOOD_ITEMS = int(8_000_000 * SCALE)
BIG_BODY = max(MiB, int(16 * MiB * SCALE))
LIMIT_MIB = 64
#: The documented overhead above memoryLimiter.limit (docs/agent.md, "Memory").
OVERHEAD_MIB = 256
QUEUE_MAX_ITEMS = 5000
TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def agent_spec(backend: OtlpBackend, **receivers: Any) -> dict[str, Any]:
    otlp: dict[str, dict[str, Any]] = {"grpc": {}, "http": {}}
    for kind, settings in receivers.items():
        otlp[kind].update(settings)
    exporter = {
        "name": "backend",
        "endpoint": backend.http_endpoint,
        "protocol": "http/protobuf",
        "compression": "none",
        "queue": {"maxItems": QUEUE_MAX_ITEMS, "maxBytes": "48Mi"},
    }
    return {
        "receivers": {"otlp": otlp},
        "processors": {
            "memoryLimiter": {"limit": f"{LIMIT_MIB}Mi", "spikeLimit": "16Mi"},
            "batch": {"maxItems": 2000, "timeout": "50ms"},
        },
        "exporters": [exporter],
        "lifecycle": {"shutdownGracePeriod": "5s"},
    }


def spans(names: list[str], attribute_bytes: int = 0) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for index, name in enumerate(names):
        span = scope.spans.add(name=name, trace_id=b"\x05" * 16, span_id=(index + 1).to_bytes(8, "big"))
        if attribute_bytes:
            span.attributes.add(key="blob").value.string_value = "x" * attribute_bytes
    return bytes(request.SerializeToString())


def p90(values: list[float]) -> float:
    """The 90th percentile of `values`."""
    return sorted(values)[int(0.9 * len(values))]


def flood_of_empty_spans(count: int) -> bytes:
    return wire.length_delimited(1, wire.length_delimited(2, b"\x12\x00" * count))


def flood_of_empty_resources(count: int) -> bytes:
    return b"\x0a\x00" * count


def big_valid_body(size: int) -> bytes:
    per_span = 256 * 1024
    return spans([f"big-{i}" for i in range(max(1, size // per_span))], per_span - 100)


class GoodClients:
    """Well-behaved clients on a thread of their own (so the floods the test sends do not delay them):
    small requests of uniquely named spans over HTTP and gRPC, sent again after a retryable refusal.
    Records each answer's latency and the names the agent acknowledged."""

    def __init__(self, http_url: str, grpc_target: str, per_transport: int = 2) -> None:
        self.http_url = http_url
        self.grpc_target = grpc_target
        self.per_transport = per_transport
        self.latencies: list[float] = []
        self.acknowledged: list[str] = []
        self.unexpected: list[str] = []
        self._stop = threading.Event()
        self._next = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="good-clients")

    def __enter__(self) -> GoodClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _names(self) -> list[str]:
        self._next += 10
        return [f"good-{self._next - i}" for i in range(10)]

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session, grpc.aio.insecure_channel(self.grpc_target) as channel:
            export = channel.unary_unary(TRACES)
            loops = [self._http(session) for _ in range(self.per_transport)]
            loops += [self._grpc(export) for _ in range(self.per_transport)]
            await asyncio.gather(*loops)

    async def _http(self, session: aiohttp.ClientSession) -> None:
        while not self._stop.is_set():
            names = self._names()
            while not self._stop.is_set():
                started = time.monotonic()
                async with session.post(self.http_url, data=spans(names), headers=PROTOBUF) as response:
                    await response.read()
                self.latencies.append(time.monotonic() - started)
                if response.status == 200:
                    self.acknowledged += names
                    break
                if response.status != 503:
                    self.unexpected.append(f"HTTP {response.status}")
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.02)

    async def _grpc(self, export: Any) -> None:
        while not self._stop.is_set():
            names = self._names()
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    await export(spans(names), timeout=30)
                except grpc.aio.AioRpcError as exc:
                    self.latencies.append(time.monotonic() - started)
                    if exc.code() != grpc.StatusCode.UNAVAILABLE:
                        self.unexpected.append(f"gRPC {exc.code()}")
                    await asyncio.sleep(0.05)
                    continue
                self.latencies.append(time.monotonic() - started)
                self.acknowledged += names
                break
            await asyncio.sleep(0.02)


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, str]:
    async with session.post(url, data=body, headers=PROTOBUF) as response:
        raw = await response.read()
        message = status_pb2.Status.FromString(raw).message if response.status != 200 else ""
        return response.status, message


def write_config(folder: pathlib.Path, spec: dict[str, Any]) -> pathlib.Path:
    config = folder / "pipeline.yaml"
    manifest = {
        "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
        "kind": "OTLPPipeline",
        "metadata": {"name": "hostile", "namespace": "tests"},
        "spec": spec,
    }
    config.write_text(yaml.safe_dump(manifest))
    return config


def peak_rss_mib(agent: agent_process.AgentProcess) -> float:
    """VmHWM: the agent process's peak resident set, from /proc."""
    for line in pathlib.Path(f"/proc/{agent.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def non_json_lines(agent: agent_process.AgentProcess) -> list[str]:
    """Lines of the agent's output that are not JSON objects (there should be none)."""
    bad = []
    for line in agent.log_text().splitlines():
        try:
            if not isinstance(json.loads(line), dict):
                bad.append(line)
        except ValueError:
            bad.append(line)
    return bad


async def assert_delivered_once(backend: OtlpBackend, acknowledged: list[str]) -> None:
    """Every span a good client was told was accepted was acknowledged once and reaches the backend, exactly
    once (good clients name their spans `good-...`)."""
    counts = collections.Counter(acknowledged)
    assert all(count == 1 for count in counts.values())

    def delivered() -> collections.Counter[str]:
        return collections.Counter(
            span.name for _, _, span in backend.spans() if span.name.startswith("good-")
        )

    await eventually(
        lambda: set(counts) <= set(delivered()), timeout=60, what="acknowledged spans at the backend"
    )
    duplicated = {name: n for name, n in delivered().items() if n > 1}
    assert not duplicated, f"delivered more than once: {sorted(duplicated)[:5]}"
