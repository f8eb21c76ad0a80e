"""A gRPC call whose message does not arrive within readTimeout is refused DEADLINE_EXCEEDED and counted
(`otlp_agent_refused_requests_total{transport="grpc",reason="timeout"}`), however many such calls wait at
once, while calls that send their message are served. The clock is real (grpc runs its own I/O): the
client's own deadline is generous and only catches a hang; no duration is asserted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.support.agent_runner import RunningAgent, agent_running
from tests.support.otlp_backend import OtlpBackend
from tests.support.trace_requests import TRACE_METHOD

READ_TIMEOUT = 0.5
STALLED_CALLS = 20
#: The client's deadline: far beyond readTimeout plus the agent's deadline tick, only to catch a hang.
HANG = 60.0
REFUSAL = f"request message not received within {READ_TIMEOUT:g}s"


def valid_request() -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        name="prompt", trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9))
    )
    return bytes(request.SerializeToString())


def spec_for(backend: OtlpBackend) -> dict[str, Any]:
    return {
        "receivers": {"otlp": {"grpc": {"readTimeout": f"{READ_TIMEOUT:g}s"}, "http": {"enabled": False}}},
        "processors": {"batch": {"timeout": "10ms"}},
        "exporters": [{"name": "backend", "endpoint": backend.http_endpoint, "protocol": "http/protobuf"}],
    }


async def stalled_call(channel: grpc.aio.Channel, release: asyncio.Event) -> tuple[grpc.StatusCode, str]:
    """A call that opens its stream and sends no message until `release` (set only after the test): its
    status and message (the agent's, not the client's own deadline)."""

    async def never() -> AsyncIterator[bytes]:
        await release.wait()
        yield valid_request()

    call = channel.stream_unary(TRACE_METHOD)(never(), timeout=HANG)
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def refused_for_timeout(agent: RunningAgent) -> float:
    return agent.metric(
        "otlp_agent_refused_requests_total", signal="traces", transport="grpc", reason="timeout"
    )


async def test_calls_without_their_message_are_refused_deadline_exceeded_and_counted() -> None:
    release = asyncio.Event()
    with OtlpBackend() as backend:
        async with agent_running(spec_for(backend)) as agent:
            async with grpc.aio.insecure_channel(agent.grpc_endpoint) as channel:
                stalled = [asyncio.create_task(stalled_call(channel, release)) for _ in range(STALLED_CALLS)]
                # A prompt call on the same connection is served while they wait.
                await channel.unary_unary(TRACE_METHOD)(valid_request(), timeout=HANG)
                answers = await asyncio.gather(*stalled)
                release.set()
            assert answers == [(grpc.StatusCode.DEADLINE_EXCEEDED, REFUSAL)] * STALLED_CALLS
            assert refused_for_timeout(agent) == STALLED_CALLS
            await backend.wait_for_items_async("traces", 1)
            # Nothing is left waiting: a later stalled call is refused the same way.
            async with grpc.aio.insecure_channel(agent.grpc_endpoint) as channel:
                assert await stalled_call(channel, asyncio.Event()) == (
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    REFUSAL,
                )
            assert refused_for_timeout(agent) == STALLED_CALLS + 1
