"""`compression: auto` in a running agent against a real backend: compressible batches go out with the
fewest bytes within the CPU budget, incompressible ones plain, a codec the backend refuses (HTTP 415, gRPC
UNIMPLEMENTED) is dropped and the same batch goes again with the next best, and the metrics say what was
chosen and why."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from tests.support.agent_runner import RunningAgent, agent_running
from tests.support.otlp_backend import Fault, OtlpBackend
from tests.support.waiting import eventually


@pytest.fixture
def backend() -> Iterator[OtlpBackend]:
    with OtlpBackend() as started:
        yield started


def spans(count: int, seed: int, blob: int = 0) -> bytes:
    """`count` spans with the attributes an HTTP server span has; `blob` random bytes each make them
    incompressible."""
    rng = random.Random(seed)
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for index in range(count):
        span = scope.spans.add(
            name="GET /api/v1/orders", trace_id=rng.randbytes(16), span_id=rng.randbytes(8)
        )
        for key, value in (
            ("http.method", "GET"),
            ("http.route", "/api/v1/orders/{id}"),
            ("url.scheme", "https"),
        ):
            span.attributes.add(key=key, value=common_pb2.AnyValue(string_value=value))
        span.attributes.add(key="index", value=common_pb2.AnyValue(int_value=index))
        if blob:
            span.attributes.add(key="blob", value=common_pb2.AnyValue(bytes_value=rng.randbytes(blob)))
    return bytes(request.SerializeToString())


def pipeline(backend: OtlpBackend, protocol: str = "http/protobuf", **auto: Any) -> dict[str, Any]:
    endpoint = backend.grpc_endpoint if protocol == "grpc" else backend.http_endpoint
    exporter = {"name": "backend", "endpoint": endpoint, "protocol": protocol, "compression": "auto"}
    exporter |= {"tls": {"insecure": True}, "retry": {"initialInterval": "10ms", "maxInterval": "10ms"}}
    # One export at a time, so the first batch learns a refusal before a second one is sent: with two
    # consumers a loaded machine can send two batches with the refused codec at once (both re-sent, as
    # promised, but the order the tests read would vary).
    exporter["queue"] = {"consumers": 1}
    if auto:
        exporter["compressionAuto"] = auto
    return {"exporters": [exporter], "processors": {"batch": {"timeout": "20ms"}}}


async def send(agent: RunningAgent, body: bytes) -> None:
    answer = await agent.post_traces(body)
    assert answer.status == 200, answer.body


def chosen(agent: RunningAgent, codec: str) -> float:
    return agent.metric("otlp_agent_exporter_compression_chosen", exporter="backend", codec=codec)


def encodings(backend: OtlpBackend) -> list[tuple[str, str]]:
    return [(r.content_encoding, r.outcome) for r in backend.requests]


async def test_compressible_batches_go_out_with_the_fewest_bytes_within_the_budget(
    backend: OtlpBackend,
) -> None:
    # A budget every codec fits, so bytes alone decide (which codec fits 5 ms per MiB depends on the
    # machine and its load; the budget's effect is tested with exact figures in test_codec_choice).
    async with agent_running(pipeline(backend, cpuBudget="1s")) as agent:
        for seed in range(5):
            await send(agent, spans(200, seed))
        await backend.wait_for_items_async("traces", 1000)
        assert {encoding for encoding, _ in encodings(backend)} == {"zstd"}
        assert chosen(agent, "zstd") == 1 and chosen(agent, "gzip") == 0 and chosen(agent, "none") == 0
        ratio = agent.metric(
            "otlp_agent_exporter_compression_measured_ratio", exporter="backend", codec="zstd"
        )
        cpu = agent.metric(
            "otlp_agent_exporter_compression_measured_cpu_seconds_per_mib", exporter="backend", codec="gzip"
        )
        assert ratio > 3 and cpu > 0


async def test_incompressible_batches_go_out_plain(backend: OtlpBackend) -> None:
    async with agent_running(pipeline(backend)) as agent:
        for seed in range(3):
            await send(agent, spans(20, seed, blob=30_000))  # ~0.5% of each span compresses
        await backend.wait_for_items_async("traces", 60)
        assert {encoding for encoding, _ in encodings(backend)} == {"identity"}
        assert chosen(agent, "none") == 1


async def test_a_zero_budget_sends_plain(
    backend: OtlpBackend,
) -> None:
    async with agent_running(pipeline(backend, cpuBudget="0s")) as agent:
        await send(agent, spans(200, 1))
        await backend.wait_for_items_async("traces", 200)
        assert encodings(backend) == [("identity", "accepted")]


async def test_a_backend_refusing_zstd_gets_the_same_batch_again_with_gzip_and_loses_nothing(
    backend: OtlpBackend,
) -> None:
    backend.default_fault = Fault.refusing_encodings("zstd")
    # A budget every codec fits even on a loaded machine, so the choice goes by bytes alone: zstd, then gzip
    # (with the default 5 ms per MiB, a busy CPU can measure gzip over budget and choose none).
    async with agent_running(pipeline(backend, cpuBudget="1s")) as agent:
        for seed in range(4):
            await send(agent, spans(200, seed))
        await backend.wait_for_items_async("traces", 800)
        seen = encodings(backend)
        assert seen[0] == ("zstd", "error") and backend.requests[0].status == "415"
        assert seen[1:] == [("gzip", "accepted")] * (len(seen) - 1)
        assert backend.accepted_items("traces") == 800
        assert (
            agent.metric("otlp_agent_exporter_compression_refused_total", exporter="backend", codec="zstd")
            == 1
        )
        assert chosen(agent, "gzip") == 1
        assert (
            agent.metric(
                "otlp_agent_failed_items_total", exporter="backend", signal="traces", reason="rejected"
            )
            == 0
        )


async def test_a_grpc_backend_refusing_gzip_gets_plain_messages(backend: OtlpBackend) -> None:
    backend.default_fault = Fault.refusing_encodings("gzip")
    # A budget grpcio's zlib level 6 fits, so gzip is chosen first.
    async with agent_running(pipeline(backend, "grpc", cpuBudget="1s")) as agent:
        for seed in range(3):
            await send(agent, spans(200, seed))
        await backend.wait_for_items_async("traces", 600)
        seen = encodings(backend)
        assert seen[0] == ("gzip", "error") and backend.requests[0].status == "UNIMPLEMENTED"
        assert set(seen[1:]) == {("identity", "accepted")}
        assert chosen(agent, "none") == 1


async def test_grpc_gzip_costs_more_than_the_default_budget_so_grpc_goes_plain(backend: OtlpBackend) -> None:
    async with agent_running(pipeline(backend, "grpc")) as agent:
        await send(agent, spans(500, 2))
        await backend.wait_for_items_async("traces", 500)
        await eventually(lambda: chosen(agent, "none") == 1, what="the choice is reported")
        cpu = agent.metric(
            "otlp_agent_exporter_compression_measured_cpu_seconds_per_mib", exporter="backend", codec="gzip"
        )
        assert cpu > 0.005  # grpcio compresses at zlib level 6: more than 5 ms per MiB
        assert encodings(backend) == [("identity", "accepted")]
