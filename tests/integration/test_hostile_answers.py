"""What a client hears about requests the agent can never take, or has nothing to export from: refused for
good (413 / RESOURCE_EXHAUSTED without RetryInfo) naming the limit, or answered without an export."""

from __future__ import annotations

import asyncio
import gzip
import os
from typing import Any

import grpc
import grpc.aio
import orjson
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.support.agent_runner import RunningAgent, agent_running
from tests.support.otlp_backend import OtlpBackend
from tests.support.raw_http import post
from tests.support.trace_requests import TRACE_METHOD, valid_request


def spec_for(backend: OtlpBackend, **receiver: Any) -> dict[str, Any]:
    return {
        "receivers": {"otlp": {"grpc": dict(receiver), "http": dict(receiver)}},
        "processors": {"batch": {"timeout": "10ms"}},
        "exporters": [{"name": "backend", "endpoint": backend.http_endpoint, "protocol": "http/protobuf"}],
    }


async def grpc_refusal(agent: RunningAgent, body: bytes) -> tuple[grpc.StatusCode, str, bool]:
    """(code, details, whether RetryInfo came along) of a refused call."""
    async with grpc.aio.insecure_channel(agent.grpc_endpoint) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.unary_unary(TRACE_METHOD)(body, timeout=10)
    trailers = refused.value.trailing_metadata() or ()
    retry_info = any(key == "grpc-status-details-bin" for key, _ in trailers)
    return refused.value.code(), refused.value.details() or "", retry_info


async def test_a_request_over_max_items_per_request_is_refused_for_good_naming_the_limit() -> None:
    with OtlpBackend() as backend:
        async with agent_running(spec_for(backend, maxItemsPerRequest=100)) as agent:
            # 1 resource + 1 scope + 98 spans = 100 entries: taken; one span more is one too many.
            assert (await post(agent, valid_request(98)))[0] == 200
            status, answer, headers = await post(agent, valid_request(99))
            assert status == 413 and "Retry-After" not in headers
            assert "maxItemsPerRequest" in status_pb2.Status.FromString(answer).message
            code, details, retry_info = await grpc_refusal(agent, valid_request(99))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and not retry_info
            assert "more than 100 entries" in details and "maxItemsPerRequest" in details
            await backend.wait_for_items_async("traces", 98)
            await asyncio.sleep(0.1)  # an export of the refused requests would have arrived by now
            assert backend.accepted_items("traces") == 98
            refused = agent.metric(
                "otlp_agent_refused_requests_total",
                signal="traces",
                transport="grpc",
                reason="too_many_items",
            )
            assert refused == 1


async def test_a_json_request_whose_only_item_is_rejected_is_not_exported() -> None:
    bad = {"traceId": "not-hex", "spanId": "0102030405060708", "name": "bad"}
    body = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [bad]}]}]})
    with OtlpBackend() as backend:
        async with agent_running(spec_for(backend)) as agent:
            status, answer, _ = await post(agent, body, "application/json")
            assert status == 200
            assert orjson.loads(answer)["partialSuccess"]["rejectedSpans"] == "1"
            empty = b""  # a protobuf request with no items at all
            assert (await post(agent, empty))[0] == 200
            async with grpc.aio.insecure_channel(agent.grpc_endpoint) as channel:
                await channel.unary_unary(TRACE_METHOD)(empty, timeout=10)
            assert (await post(agent, valid_request(1)))[0] == 200  # a real one, to know exports happen
            await backend.wait_for_items_async("traces", 1)
            await agent.agent.pipeline.flush()
        # The agent stopped (everything flushed): the backend saw exactly one export, the real one.
        assert len(backend.requests) == 1


async def test_json_that_could_never_be_converted_within_the_memory_limit_is_refused_for_good() -> None:
    """OTLP/JSON reserves 90x its size while it is converted; a body needing more than the whole limit is
    413 (naming the limit) before it is parsed, not 503 forever."""
    span = {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": "x"}
    body = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span] * 6000}]}]})
    assert 90 * len(body) > 32 * 1024 * 1024
    with OtlpBackend() as backend:
        spec = {**spec_for(backend), "processors": {"memoryLimiter": {"limit": "32Mi", "spikeLimit": "8Mi"}}}
        async with agent_running(spec) as agent:
            status, answer, headers = await post(agent, body, "application/json")
            assert status == 413 and "Retry-After" not in headers
            assert "memory limit of 33554432 bytes" in orjson.loads(answer)["message"]
            assert (
                await post(
                    agent,
                    orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}),
                    "application/json",
                )
            )[0] == 200


async def test_large_compressed_bodies_are_decompressed_within_the_limits() -> None:
    """Bodies over 64 KiB are decompressed on the worker thread, within a reservation: a large valid one is
    taken, a bomb is refused at the size limit."""
    large = gzip.compress(trace_with_random_attributes(spans=300, attribute_bytes=600), compresslevel=1)
    assert len(large) > 64 * 1024
    bomb = gzip.compress(b"\0" * (200 * 1024 * 1024), compresslevel=9)
    assert len(bomb) > 64 * 1024
    with OtlpBackend() as backend:
        async with agent_running(spec_for(backend)) as agent:
            status, _, _ = await post(agent, large, "application/x-protobuf", **{"Content-Encoding": "gzip"})
            assert status == 200
            status, answer, headers = await post(
                agent, bomb, "application/x-protobuf", **{"Content-Encoding": "gzip"}
            )
            assert status == 413 and "Retry-After" not in headers
            assert "limit" in status_pb2.Status.FromString(answer).message
            await backend.wait_for_items_async("traces", 300)
            assert agent.agent.pipeline.limiter.receiving == 0


def trace_with_random_attributes(spans: int, attribute_bytes: int) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for index in range(spans):
        span = scope.spans.add(name=f"r-{index}", trace_id=os.urandom(16), span_id=os.urandom(8))
        span.attributes.add(key="noise").value.string_value = os.urandom(attribute_bytes).hex()
    return bytes(request.SerializeToString())
