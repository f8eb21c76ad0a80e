"""Payload too large in a running agent against a real backend with a size limit (HTTP 413, gRPC
RESOURCE_EXHAUSTED about size): the batch is split and every span arrives once; the exporter learns the
limit and builds its batches within it; a span that can never fit is dropped alone, counted and logged, and
a client waiting for end-to-end delivery hears that not all of its data was exported."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from tests.support.agent_runner import RunningAgent, agent_running
from tests.support.otlp_backend import Fault, OtlpBackend
from tests.support.waiting import eventually

LIMIT = 8_000  # bytes the backend takes in one request (decompressed)


@pytest.fixture
def backend() -> Iterator[OtlpBackend]:
    with OtlpBackend() as started:
        started.default_fault = Fault.size_limit(LIMIT)
        yield started


def pipeline(backend: OtlpBackend, protocol: str, **exporter: Any) -> dict[str, Any]:
    endpoint = backend.grpc_endpoint if protocol == "grpc" else backend.http_endpoint
    settings = {"name": "backend", "endpoint": endpoint, "protocol": protocol, "tls": {"insecure": True}}
    return {"exporters": [settings | exporter], "processors": {"batch": {"timeout": "50ms"}}}


def request(first: int, count: int, blob: int = 300) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.add(key="service.name", value=common_pb2.AnyValue(string_value="checkout"))
    scope = resource.scope_spans.add()
    for index in range(first, first + count):
        span = scope.spans.add(name=f"span-{index}", trace_id=b"\x01" * 16, span_id=index.to_bytes(8, "big"))
        span.attributes.add(key="blob", value=common_pb2.AnyValue(string_value="x" * blob))
    return bytes(request.SerializeToString())


async def post(agent: RunningAgent, body: bytes) -> int:
    return (await agent.post_traces(body)).status


def delivered(backend: OtlpBackend) -> list[str]:
    return sorted(span.name for _, _, span in backend.spans())


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_a_batch_over_the_limit_arrives_in_parts_and_later_batches_fit(
    backend: OtlpBackend, protocol: str
) -> None:
    async with agent_running(pipeline(backend, protocol)) as agent:
        assert await post(agent, request(0, 100)) == 200  # ~35 KB in one batch
        await backend.wait_for_items_async("traces", 100)
        assert delivered(backend) == sorted(f"span-{i}" for i in range(100))  # every span, once
        refused = [r for r in backend.requests if r.outcome == "error"]
        assert refused and {r.status for r in refused} == {
            "413" if protocol != "grpc" else "RESOURCE_EXHAUSTED"
        }
        cap = agent.metric("otlp_agent_exporter_batch_bytes_cap", exporter="backend")
        assert 0 < cap <= LIMIT
        backend.reset()
        for first in range(100, 400, 100):
            assert await post(agent, request(first, 100)) == 200
            await backend.wait_for_items_async("traces", first)
        await backend.wait_for_items_async("traces", 300)
        late_refusals = sum(1 for r in backend.requests if r.outcome == "error")
        assert late_refusals <= 2  # at most a probe or two while the cap closes in; no batch refused whole
        assert all(len(r.body) <= LIMIT for r in backend.requests if r.accepted)
        assert (
            agent.metric(
                "otlp_agent_dropped_items_total", exporter="backend", signal="traces", reason="too_large"
            )
            == 0
        )


async def test_a_span_that_can_never_fit_is_dropped_alone_and_counted(backend: OtlpBackend) -> None:
    async with agent_running(pipeline(backend, "http/protobuf")) as agent:
        assert await post(agent, request(0, 10)) == 200
        assert await post(agent, request(10, 1, blob=20_000)) == 200  # one span over the limit by itself
        assert await post(agent, request(11, 10)) == 200
        await eventually(
            lambda: (
                agent.metric(
                    "otlp_agent_dropped_items_total", exporter="backend", signal="traces", reason="too_large"
                )
                == 1
            ),
            what="the oversized span to be dropped",
        )
        await backend.wait_for_items_async("traces", 20)
        assert "span-10" not in delivered(backend) and len(delivered(backend)) == 20
        await eventually(  # the lane counts a batch once its export returned, just after the backend has it
            lambda: agent.metric("otelcol_exporter_sent_spans_total", exporter="backend") == 20,
            what="20 spans counted as exported (the dropped one not among them)",
        )


async def test_an_end_to_end_client_hears_that_its_oversized_span_was_not_exported(
    backend: OtlpBackend,
) -> None:
    async with agent_running(pipeline(backend, "http/protobuf", delivery="endToEnd")) as agent:
        assert await post(agent, request(0, 5)) == 200
        assert await post(agent, request(5, 1, blob=20_000)) == 400  # refused downstream for good
        assert await post(agent, request(6, 5)) == 200
        assert len(delivered(backend)) == 10
